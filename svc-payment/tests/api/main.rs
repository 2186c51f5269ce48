//! svc-payment's integration tests: the real service against a real nats-server.

mod helpers;
mod payments;
mod saga;
