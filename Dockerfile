# One image with every service binary; compose.yaml picks the binary per container.
# Not used by ./shop or CI (no Docker engine there): it is for users who run compose.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p svc-user -p svc-product -p svc-order -p svc-payment -p svc-settlement -p payment-gateway

FROM debian:bookworm-slim
# curl: compose.yaml's health checks ask each service's /health/ready.
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 shop && mkdir /data && chown shop /data
COPY --from=build /src/target/release/svc-user /src/target/release/svc-product /src/target/release/svc-order \
     /src/target/release/svc-payment /src/target/release/svc-settlement \
     /src/target/release/payment-gateway /usr/local/bin/
USER shop
ENV DATA_DIR=/data
