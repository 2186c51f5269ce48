//! What `shopctl up` does when a child dies: it says so, waits a little longer after each death
//! in a row (1 s doubling to 30 s, back to 1 s once the child has run for a minute) and starts it
//! again with the command it was first started with. The others keep running meanwhile: services
//! ride out a broker restart (their outboxes keep what they commit, their durable consumers pick up
//! where they stopped) and each other's (they never call each other).

use std::time::Duration;

use anyhow::Result;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::process::Command;
use tokio::time::Instant;

use crate::proc::Managed;

/// A child that has run this long is healthy again: its next death waits the shortest delay.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);

fn delays() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(30))
        .without_max_times()
        .build()
}

/// How to start one child again, and when.
pub struct Restarts {
    command: Box<dyn Fn() -> Command + Send>,
    delays: ExponentialBackoff,
    started: Instant,
    restart_at: Option<Instant>,
    restarts: u32,
}

impl Restarts {
    /// For a child just started (at `now`) from `command()`.
    pub fn new(command: impl Fn() -> Command + Send + 'static, now: Instant) -> Self {
        Restarts { command: Box::new(command), delays: delays(), started: now, restart_at: None, restarts: 0 }
    }

    /// One look at `child` at `now`: reports its death and schedules its restart, or restarts it
    /// if that is due. Fails only if the command cannot be started at all.
    pub fn watch(&mut self, child: &mut Managed, now: Instant) -> Result<()> {
        match self.restart_at {
            None => {
                if let Some(status) = child.try_exit_status() {
                    let delay = self.died(now);
                    eprintln!(
                        "shopctl: {} exited unexpectedly ({status}); restarting it in {} s, the others keep running",
                        child.name,
                        delay.as_secs()
                    );
                }
            }
            Some(at) if now >= at => {
                let name = child.name.clone();
                *child = Managed::spawn(&name, &mut (self.command)())?;
                self.started = now;
                self.restart_at = None;
                self.restarts += 1;
                let pid = child.pid().map_or_else(|| "?".to_owned(), |p| p.to_string());
                eprintln!("shopctl: restarted {name} (pid {pid}, restart {})", self.restarts);
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// The child died at `now`: when to start it again.
    fn died(&mut self, now: Instant) -> Duration {
        if now.duration_since(self.started) >= HEALTHY_AFTER {
            self.delays = delays();
        }
        let delay = self.delays.next().unwrap_or(Duration::from_secs(30));
        self.restart_at = Some(now + delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restarts(now: Instant) -> Restarts {
        Restarts::new(|| Command::new("true"), now)
    }

    #[test]
    fn deaths_in_a_row_wait_longer_up_to_30_s_and_a_healthy_run_starts_over() {
        let t0 = Instant::now();
        let mut r = restarts(t0);
        let waits: Vec<u64> = (0..7).map(|_| r.died(t0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);

        r.started = t0;
        assert_eq!(r.died(t0 + HEALTHY_AFTER).as_secs(), 1, "after a minute up, the first delay again");
    }

    #[tokio::test]
    async fn a_dead_child_is_reported_then_started_again_when_due() {
        let t0 = Instant::now();
        let mut r = restarts(t0);
        let mut child = Managed::spawn("true", &mut Command::new("true")).unwrap();
        let exited = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("`true` exits");
        assert!(exited.is_ok());

        r.watch(&mut child, t0).unwrap();
        assert_eq!(r.restart_at, Some(t0 + Duration::from_secs(1)), "scheduled, not yet restarted");
        let first = child.pid();
        r.watch(&mut child, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!((r.restarts, r.restart_at), (1, None));
        assert_ne!(child.pid(), first, "a new process");
    }
}
