//! The saga deadline. An order whose saga has not ended (PENDING or STOCK_RESERVED) when its
//! `deadline_at` passes becomes EXPIRED, announced by `order.expired`, in one transaction; svc-product
//! then releases its stock and svc-payment refunds (or never makes) its charge. The deadline is a
//! column, not a timer: a restart loses none, and an order overdue while svc-order was down
//! expires on the first round after it starts.

use std::time::Duration;

use common::{
    Envelope, Event,
    db::{Db, DbError, to_ms},
    outbox,
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    SERVICE,
    domain::{Change, Transition},
    store,
    waiters::Waiters,
};

/// How often the expiry looks for overdue orders: an order expires at most this late.
pub const TICK: Duration = Duration::from_secs(1);
/// Orders expired per round at most; a backlog takes several rounds, none holds the lock long.
const BATCH: usize = 100;

/// Expires overdue orders, once a [`TICK`], until stopped.
#[derive(Debug, Clone)]
pub struct Expiry {
    db: Db,
    waiters: Waiters,
}

impl Expiry {
    pub fn new(db: Db, waiters: Waiters) -> Self {
        Expiry { db, waiters }
    }

    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(error) = self.expire_due(common::db::now()).await {
                tracing::warn!(%error, "expiring overdue orders failed; trying again next round");
            }
        }
    }

    /// Expires the orders overdue at `now`, each in its own transaction with its
    /// `order.expired`, and wakes their waiting requests. An order that ended meanwhile (paid or
    /// failed by a reaction that committed first) is left as it is. Returns the expired ids.
    pub async fn expire_due(&self, now: OffsetDateTime) -> Result<Vec<Uuid>, DbError> {
        let due = self.db.read(move |c| store::due_orders(c, to_ms(now), BATCH)).await?;
        let mut expired = Vec::with_capacity(due.len());
        for id in due {
            let moved = self
                .db
                .write(move |tx| {
                    let Some(order) = store::find_order(tx, id)? else { return Ok(false) };
                    let Transition::Applied(next) = order.apply(Change::Expired, now) else { return Ok(false) };
                    store::update_order(tx, &next)?;
                    outbox::append(tx, &Envelope::new(SERVICE, Event::OrderExpired(next.expired_event())))?;
                    tracing::info!(order.id = %id, from = %order.status, "order expired");
                    Ok::<_, DbError>(true)
                })
                .await?;
            if moved {
                self.waiters.notify(id);
                expired.push(id);
            }
        }
        Ok(expired)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use common::{PaymentMethod, db::DbError};

    use super::*;
    use crate::domain::{NewOrder, Order, OrderStatus, Quantity};

    const DEADLINE: Duration = Duration::from_secs(600);

    async fn database(dir: &tempfile::TempDir) -> Db {
        Db::open(&dir.path().join("svc-order.db"), crate::app::MIGRATIONS).await.unwrap()
    }

    /// A PENDING order placed at `at`, stored.
    async fn placed(db: &Db, at: OffsetDateTime) -> Order {
        let new = NewOrder {
            product_id: Uuid::now_v7(),
            quantity: Quantity::new(1).unwrap(),
            payment_method: PaymentMethod::Card,
        };
        let order = Order::place(Uuid::now_v7(), Uuid::now_v7(), new, at, DEADLINE);
        let stored = order.clone();
        db.write(move |tx| store::insert_order(tx, &stored, None).map_err(DbError::from)).await.unwrap();
        order
    }

    async fn status(db: &Db, id: Uuid) -> OrderStatus {
        db.read(move |c| store::find_order(c, id)).await.unwrap().unwrap().status
    }

    async fn announced(db: &Db) -> Vec<String> {
        db.read(|c| {
            let mut stmt = c.prepare("SELECT subject FROM outbox ORDER BY seq")?;
            stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn an_order_expires_at_its_deadline_once_and_a_finished_one_never() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        let t0 = OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap();
        let pending = placed(&db, t0).await;
        let paid = placed(&db, t0).await;
        let mut done = paid.clone();
        done.status = OrderStatus::Paid;
        db.write(move |tx| store::update_order(tx, &done).map_err(DbError::from)).await.unwrap();
        let expiry = Expiry::new(db.clone(), Waiters::default());

        assert!(expiry.expire_due(t0 + DEADLINE - Duration::from_millis(1)).await.unwrap().is_empty());
        assert_eq!(expiry.expire_due(t0 + DEADLINE).await.unwrap(), [pending.id]);
        assert!(expiry.expire_due(t0 + DEADLINE * 2).await.unwrap().is_empty(), "expired once");

        assert_eq!(status(&db, pending.id).await, OrderStatus::Expired);
        assert_eq!(status(&db, paid.id).await, OrderStatus::Paid);
        assert_eq!(announced(&db).await, [format!("order.expired.{}", pending.id)]);
    }

    /// The deadline is a column: a service that was down when it passed expires the order on the
    /// first round after it starts again, on a database opened afresh.
    #[tokio::test]
    async fn a_deadline_that_passed_while_the_service_was_down_expires_the_order_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap();
        let order = placed(&database(&dir).await, t0).await;

        let reopened = database(&dir).await;
        let expired = Expiry::new(reopened.clone(), Waiters::default()).expire_due(t0 + DEADLINE * 3).await.unwrap();

        assert_eq!(expired, [order.id]);
        assert_eq!(status(&reopened, order.id).await, OrderStatus::Expired);
    }
}
