//! Where the service reads the time and waits for it to pass, so tests set it instead of
//! sleeping: [`SystemClock`] in service, [`ManualClock`] in tests. Below every module that takes
//! a clock (gate, adapters, notifications, review routing, admission), depending on nothing in
//! the crate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// The current time, and waiting for time to pass.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Completes once `duration` has passed by this clock. A deadline is still a monotonic
    /// `tokio::time::Instant`: this is only for waits whose length is the point (a retry after
    /// a server's `Retry-After`), so a test can see how long was waited without waiting.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// Completes once this clock reads `at` or later, without moving it: a cadence (a
    /// background job's next round) that a test drives by advancing a [`ManualClock`].
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let left = (at - self.now()).to_std().unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(left))
    }
}

/// The system's wall clock; waits are tokio timers (so tokio's paused time applies).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that stands still until it is set or advanced (tests). Sleeping on it advances it by
/// the time slept and returns at once: a wait takes no real time, and the clock shows how long
/// it was. [`Clock::sleep_until`] on it waits for someone else to move it that far.
#[derive(Debug)]
pub struct ManualClock(tokio::sync::watch::Sender<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(tokio::sync::watch::Sender::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        self.0.send_replace(at);
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.0.send_modify(|now| *now += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.borrow()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let mut moved = self.0.subscribe();
        Box::pin(async move {
            // Only fails once the clock is gone, when nothing is left to wait for.
            let _ = moved.wait_for(|now| *now >= at).await;
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        // Beyond chrono's range nothing can be waited for anyway; such a wait moves the clock
        // as far as it goes rather than not at all.
        self.advance(chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX));
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_set_advanced_or_slept_on() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = ManualClock::new(t0);
        assert_eq!(clock.now(), t0);
        clock.advance(chrono::Duration::seconds(5));
        assert_eq!(clock.now(), t0 + chrono::Duration::seconds(5));
        clock.sleep(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), t0 + chrono::Duration::milliseconds(6500));
        clock.set(t0);
        assert_eq!(clock.now(), t0);
    }

    #[tokio::test]
    async fn sleeping_until_a_time_on_a_manual_clock_waits_for_it_to_be_advanced_there() {
        use futures::FutureExt as _;
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = ManualClock::new(t0);
        let mut wait = clock.sleep_until(t0 + chrono::Duration::seconds(10));
        assert!((&mut wait).now_or_never().is_none());
        clock.advance(chrono::Duration::seconds(9));
        assert!((&mut wait).now_or_never().is_none());
        clock.advance(chrono::Duration::seconds(1));
        assert!(wait.now_or_never().is_some());
        assert_eq!(clock.now(), t0 + chrono::Duration::seconds(10));
    }
}
