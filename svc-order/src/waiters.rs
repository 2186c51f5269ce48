//! In-process wake-ups for requests waiting on an order's outcome (`Prefer: wait=N`).
//!
//! A waiting request holds no database connection and no thread: it holds a [`Subscription`] and
//! sleeps until the saga consumer signals that an event that can end its order's saga committed
//! (a payment's outcome, a rejection, an expiry: not every step, each wake costs a re-read), then
//! re-reads the order. Signals carry no data; the database stays the only source of truth.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;
use uuid::Uuid;

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
