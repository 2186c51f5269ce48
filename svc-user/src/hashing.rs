//! A bound on password hashing. Sign-up and login are unauthenticated and each costs an Argon2
//! run (19 MiB and tens of milliseconds of CPU), so without a bound a burst of requests queues
//! unbounded blocking work and memory. At most one hash per CPU runs at a time; a request that
//! cannot get a turn within [`Hashing::WAIT`] is answered 503 `BUSY` with `Retry-After: 1`.

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use axum::http::header;
use common::http::{ApiError, Code};
use tokio::sync::Semaphore;

/// Runs hashing work on the blocking pool, a bounded number at a time. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Hashing {
    permits: Arc<Semaphore>,
    wait: Duration,
}

/// Why hashing work did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("every hashing slot stayed busy")]
    Busy,
    #[error("the hashing task failed: {0}")]
    Failed(#[from] tokio::task::JoinError),
}

impl Hashing {
    /// How long a request waits for a turn before it is told to come back.
    pub const WAIT: Duration = Duration::from_secs(5);

    /// At most `permits` (at least 1) runs at once; waiting longer than `wait` for one is `Busy`.
    pub fn new(permits: usize, wait: Duration) -> Self {
        Hashing { permits: Arc::new(Semaphore::new(permits.max(1))), wait }
    }

    /// One run per CPU this process may use, waiting up to [`Hashing::WAIT`].
    pub fn per_cpu() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, NonZeroUsize::get), Self::WAIT)
    }

    /// Runs `work` on the blocking pool once a permit is free.
    pub async fn run<T, F>(&self, work: F) -> Result<T, HashingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| HashingError::Busy)?
            .expect("the hashing semaphore is never closed");
        // The permit moves into the blocking task: a request dropped mid-hash (client gone) does
        // not free its turn while the hash still runs.
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await?)
    }
}

impl From<HashingError> for ApiError {
    fn from(e: HashingError) -> Self {
        match e {
            HashingError::Busy => ApiError::new(Code::Busy, "too many sign-ups and logins at once; retry")
                .with_header(header::RETRY_AFTER, "1"),
            HashingError::Failed(e) => ApiError::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    };

    use axum::response::IntoResponse;
    use tokio::time::Instant;

    use super::*;

    #[tokio::test]
    async fn with_every_permit_held_a_hash_is_busy_after_the_wait_and_never_runs() {
        let hashing = Hashing::new(2, Duration::from_millis(20));
        let _held = hashing.permits.clone().try_acquire_many_owned(2).unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let started = Instant::now();

        let result = hashing.run({
            let ran = ran.clone();
            move || ran.store(true, Ordering::SeqCst)
        });

        assert!(matches!(result.await, Err(HashingError::Busy)));
        assert!(started.elapsed() < Duration::from_secs(2), "busy comes after the configured wait, not later");
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_permit_freed_within_the_wait_lets_the_hash_run() {
        let hashing = Hashing::new(1, Duration::from_secs(60));
        let held = hashing.permits.clone().try_acquire_owned().unwrap();

        let pending = tokio::spawn({
            let hashing = hashing.clone();
            async move { hashing.run(|| 42).await }
        });
        drop(held);

        assert_eq!(pending.await.unwrap().unwrap(), 42);
    }

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_there_are_permits() {
        let hashing = Hashing::new(2, Duration::from_secs(60));
        let (running, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let mut releases = Vec::new();
        let mut runs = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let (release, released) = mpsc::channel::<()>();
            releases.push(release);
            let (hashing, running, max, started_tx) =
                (hashing.clone(), running.clone(), max.clone(), started_tx.clone());
            runs.spawn(async move {
                hashing
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        started_tx.send(()).unwrap();
                        // Blocks like a hash until the test lets it finish (or drops its sender).
                        let _ = released.recv();
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            });
        }

        // Two start; the third cannot until one of them ends.
        started.recv().await.unwrap();
        started.recv().await.unwrap();
        assert_eq!(hashing.permits.available_permits(), 0);
        assert!(started.try_recv().is_err(), "a third hash started with two permits");
        // Releasing all three ends the two running ones and lets the third through as soon as
        // it starts (its sender is already gone).
        drop(releases);
        started.recv().await.unwrap();
        while let Some(result) = runs.join_next().await {
            result.unwrap().unwrap();
        }
        assert_eq!(max.load(Ordering::SeqCst), 2);
        assert_eq!(hashing.permits.available_permits(), 2);
    }

    #[tokio::test]
    async fn busy_is_a_503_problem_that_says_when_to_retry() {
        let res = ApiError::from(HashingError::Busy).into_response();

        assert_eq!(res.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(res.into_body(), 64 * 1024).await.unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "BUSY");
    }
}
