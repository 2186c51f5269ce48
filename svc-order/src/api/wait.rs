//! `Prefer: wait=N` (RFC 7240), shared by `POST /orders` and `GET /orders/{id}`: hold the answer
//! until the order's saga has settled or N seconds have passed, holding no connection or thread.

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue},
    response::Response,
};
use tokio::time::Instant;

use crate::{
    app::AppState,
    domain::{Order, Wait},
    store,
};

const PREFER: HeaderName = HeaderName::from_static("prefer");
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// The wait a request asks for, if any (an invalid `wait` means no waiting).
pub fn requested(headers: &HeaderMap) -> Option<Wait> {
    Wait::from_prefer(headers.get_all(PREFER).iter().filter_map(|v| v.to_str().ok()))
}

/// Says in the answer that the wait was honoured.
pub fn applied(wait: Wait, mut res: Response) -> Response {
    let value = HeaderValue::from_str(&wait.to_string()).expect("`wait=<digits>` is a valid header value");
    res.headers_mut().insert(PREFERENCE_APPLIED, value);
    res
}

/// Waits, holding no connection, until the order's saga has settled, `wait` has passed or the
/// service stops; returns the order as it then is.
///
/// This never fails: for `POST /orders` the order is committed by now, and were the answer an
/// error, a client without an `Idempotency-Key` would retry into a second order. If the order
/// cannot be read again, the error is logged and the order is returned as last read (so the
/// client gets the order and its `Location` to follow it).
pub async fn until_settled(state: &AppState, last_read: Order, wait: Wait) -> Order {
    let deadline = Instant::now() + wait.duration();
    let id = last_read.id;
    // Subscribe before (re-)reading, so a change committed in between still wakes us.
    let mut changes = state.waiters.subscribe(id);
    let mut current = last_read;
    loop {
        match state.db.lookup(|c| store::find_order(c, id)) {
            Ok(Some(order)) => current = order,
            Ok(None) => {
                tracing::error!(order.id = %id, "an order vanished while a request waited for it");
                return current;
            }
            Err(error) => {
                tracing::error!(order.id = %id, %error, "cannot re-read an order while a request waits for it");
                return current;
            }
        }
        if current.status.is_settled() {
            return current;
        }
        tokio::select! {
            _ = state.stop.cancelled() => return current,
            woke = tokio::time::timeout_at(deadline, changes.changed()) => {
                if woke.is_err() {
                    // Only the saga's end wakes a waiter: read once more, for the steps between.
                    return state.db.lookup(|c| store::find_order(c, id)).ok().flatten().unwrap_or(current);
                }
            }
        }
    }
}
