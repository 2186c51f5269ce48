//! Wake-ups for requests waiting on an order's outcome (`Prefer: wait=N`).
//!
//! A waiting request holds no database connection and no thread: it holds a [`Subscription`] and
//! sleeps until a signal that its order's saga may have ended, then re-reads the order. Signals
//! carry no data; the database stays the only source of truth. Two sources signal:
//!
//! - this instance's saga consumer and expiry sweep, as soon as they commit an event that can end
//!   a saga (a payment's outcome, a rejection, an expiry: not every step, each wake costs a
//!   re-read);
//! - [`Waiters::follow`]: svc-order's own announcements of a saga's end (`order.paid`,
//!   `order.failed`, `order.expired`, `order.cancelled`), read by core subscription as they are
//!   published. With several instances on one database, the instance that applied the outcome
//!   is often not the one holding the request; its relay publishes the announcement only after
//!   the commit, so the re-read finds the outcome.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use common::EventType;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The announcements that end a saga, whichever instance made them: what [`Waiters::follow`]
/// subscribes to (and svc-order's NATS user may subscribe to, [`common::permissions`]).
pub const SAGA_ENDS: [EventType; 4] =
    [EventType::OrderPaid, EventType::OrderFailed, EventType::OrderExpired, EventType::OrderCancelled];

/// Who waits for which order. Cheap to clone; one per service instance.
#[derive(Clone, Debug, Default)]
pub struct Waiters {
    by_order: Arc<Mutex<HashMap<Uuid, watch::Sender<()>>>>,
}

impl Waiters {
    /// Starts listening for changes to `order`. Subscribe *before* reading the order: a change
    /// committed in between then still wakes the subscription, so no wake-up is lost.
    pub fn subscribe(&self, order: Uuid) -> Subscription {
        let rx = self.lock().entry(order).or_insert_with(|| watch::channel(()).0).subscribe();
        Subscription { waiters: self.clone(), order, rx: Some(rx) }
    }

    /// Wakes every subscription to `order`; a no-op when nobody waits.
    pub fn notify(&self, order: Uuid) {
        if let Some(tx) = self.lock().get(&order) {
            tx.send_replace(());
        }
    }

    /// Subscribes to every instance's announcements of a saga's end ([`SAGA_ENDS`]) and returns
    /// the task that, until `stop`, wakes this instance's waiters on each. Subscribed when this
    /// returns, so a request accepted afterwards misses none; the client subscribes again by
    /// itself after a reconnect (a wake lost meanwhile leaves the request to its `wait`
    /// deadline, then it answers with what the database holds).
    pub async fn follow(
        &self,
        nats: &async_nats::Client,
        stop: CancellationToken,
    ) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
        let mut subscriptions = Vec::with_capacity(SAGA_ENDS.len());
        for end in SAGA_ENDS {
            subscriptions.push(nats.subscribe(end.filter_subject()).await?);
        }
        let mut ends = futures_util::stream::select_all(subscriptions);
        let waiters = self.clone();
        Ok(async move {
            loop {
                let msg = tokio::select! {
                    _ = stop.cancelled() => return,
                    msg = ends.next() => match msg { Some(msg) => msg, None => return },
                };
                // The order id is the subject's key; anything else is nobody's order.
                if let Some(order) = msg.subject.rsplit('.').next().and_then(|key| Uuid::parse_str(key).ok()) {
                    waiters.notify(order);
                }
            }
        })
    }

    /// How many orders have waiters (for tests: the registry must not leak).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, watch::Sender<()>>> {
        // The critical sections cannot panic halfway, so a poisoned map is still consistent.
        self.by_order.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One request's interest in one order. Dropping it (the request ended, or its client went away)
/// removes the order's entry once nobody else waits for it.
#[derive(Debug)]
pub struct Subscription {
    waiters: Waiters,
    order: Uuid,
    rx: Option<watch::Receiver<()>>,
}

impl Subscription {
    /// Resolves at the first notification since the subscription was made or last woke.
    pub async fn changed(&mut self) {
        if let Some(rx) = self.rx.as_mut() {
            // The sender lives in the registry for as long as this receiver does: it cannot close.
            let _ = rx.changed().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut by_order = self.waiters.lock();
        // Drop our receiver under the lock, so a concurrent `subscribe` either sees the entry
        // with its own receiver counted or creates a fresh one.
        self.rx.take();
        if by_order.get(&self.order).is_some_and(|tx| tx.receiver_count() == 0) {
            by_order.remove(&self.order);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn woken(sub: &mut Subscription) -> bool {
        tokio::time::timeout(Duration::from_millis(50), sub.changed()).await.is_ok()
    }

    #[tokio::test]
    async fn a_notification_after_subscribing_wakes_the_subscriber() {
        let waiters = Waiters::default();
        let order = Uuid::now_v7();
        let mut sub = waiters.subscribe(order);
        waiters.notify(order);
        assert!(woken(&mut sub).await);
        assert!(!woken(&mut sub).await, "one notification wakes once");
    }

    #[tokio::test]
    async fn a_notification_for_another_order_does_not_wake() {
        let waiters = Waiters::default();
        let mut sub = waiters.subscribe(Uuid::now_v7());
        waiters.notify(Uuid::now_v7());
        assert!(!woken(&mut sub).await);
    }

    #[tokio::test]
    async fn every_subscriber_to_an_order_is_woken() {
        let waiters = Waiters::default();
        let order = Uuid::now_v7();
        let (mut a, mut b) = (waiters.subscribe(order), waiters.subscribe(order));
        waiters.notify(order);
        assert!(woken(&mut a).await && woken(&mut b).await);
    }

    #[test]
    fn svc_order_may_subscribe_to_exactly_the_ends_it_follows() {
        let user = common::permissions::SERVICES.iter().find(|s| s.name == crate::SERVICE).unwrap();
        let follows: Vec<String> = SAGA_ENDS.iter().map(|t| t.filter_subject()).collect();
        assert_eq!(user.follows, follows.iter().map(String::as_str).collect::<Vec<_>>().as_slice());
    }

    #[tokio::test]
    async fn the_entry_goes_when_the_last_subscriber_leaves() {
        let waiters = Waiters::default();
        let order = Uuid::now_v7();
        let a = waiters.subscribe(order);
        let b = waiters.subscribe(order);
        drop(a);
        assert_eq!(waiters.len(), 1);
        drop(b);
        assert!(waiters.is_empty());
        waiters.notify(order); // nobody waits: nothing happens, nothing is created
        assert!(waiters.is_empty());
    }
}
