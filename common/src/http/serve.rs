//! Serving a router over HTTP/1.1 with the limits `axum::serve` does not have: a slow client may
//! not hold a socket forever, a stuck handler may not hold a request forever, and a crowd may
//! not open more connections than the process can serve.

use std::{sync::Arc, time::Duration};

use axum::extract::ConnectInfo;
use axum::{
    Router,
    extract::Request,
    middleware::Next,
    response::{IntoResponse, Response},
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::{ApiError, Code};

/// What one HTTP server enforces. The defaults ([`Limits::default`]) are the constants below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a connection may take to send a request's complete headers, counted from when
    /// the server starts reading them: on a new connection, and again after every response, so
    /// it also bounds how long a keep-alive connection may sit idle. Past it the connection is
    /// closed without an answer.
    pub header_read_timeout: Duration,
    /// How long a handler may take to answer; past it the request gets a 503 `REQUEST_TIMEOUT`
    /// problem and the handler is dropped.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    /// Long enough for any real client on a slow link; short enough that a slowloris (headers a
    /// byte at a time) gives up a socket quickly.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Above svc-order's longest `Prefer: wait` (30 s), which waits on purpose.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);
    /// Far more than the services see; well under the default open-files limit.
    pub const MAX_CONNECTIONS: usize = 1024;
    /// After the stop, what a request still running gets on top of the request timeout (by then
    /// the timeout has answered it) to write its answer, before its connection is cut.
    const DRAIN_MARGIN: Duration = Duration::from_secs(1);
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Limits::HEADER_READ_TIMEOUT,
            request_timeout: Limits::REQUEST_TIMEOUT,
            max_connections: Limits::MAX_CONNECTIONS,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `stop` is cancelled; then accepts no more
/// connections, closes idle ones, lets the requests in flight finish (for at most the request
/// timeout and a moment) and returns.
///
/// The connection cap makes connections beyond it *wait* rather than be refused: the next one
/// is accepted only once a permit is free, so the others queue in the kernel's listen backlog.
/// Accepting and closing them would turn a short burst into errors (and retries) for requests
/// that a moment later could have been served; waiting is back-pressure, and what bounds it is
/// the backlog's size and the client's own connect timeout.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let request_timeout = limits.request_timeout;
    let app = router
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| answer_within(request_timeout, req, next)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        // Forget the connections that have ended, so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: retrying at once would spin.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        // Each request knows its client's address (`ConnectInfo`), as svc-user's login throttle
        // needs it.
        let service = TowerToHyperService::new(app.clone().map_request(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        }));
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            // A client that went away or timed out its headers is routine, not an error.
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    let drain = limits.request_timeout + Limits::DRAIN_MARGIN;
    let drained = tokio::time::timeout(drain, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(connections = connections.len(), "requests still running after the drain: cutting them off");
        connections.shutdown().await;
    }
    Ok(())
}

/// The handler's answer, or the timeout problem once `limit` has passed. The handler is dropped
/// then, so whatever it had started (a transaction) may or may not have taken effect: a retry
/// with the same idempotency key is safe, a blind retry may not be.
async fn answer_within(limit: Duration, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            // Logged here, once: the request's trace span was dropped with the handler.
            tracing::warn!(http.method = %method, http.path = %path, timeout_secs = limit.as_secs_f64(), "request timed out");
            ApiError::new(
                Code::RequestTimeout,
                format!("no answer within {} s; the request may or may not have taken effect", limit.as_secs_f64()),
            )
            .into_response()
        }
    }
}

/// Errors about one connection that the listener survives (as `axum::serve` treats them).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_request_timeout_outlasts_the_longest_prefer_wait() {
        assert!(Limits::default().request_timeout > Duration::from_secs(30));
    }
}
