//! Retrying with jittered exponential backoff, for everything that waits for the database: the
//! listener's reconnects and the migrations at startup.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// Exponential backoff from 100 ms to 10 s, each delay jittered to between half and all of it so
/// that many gateways do not reconnect in step.
#[derive(Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = (100u64 << self.attempt.min(7)).min(10_000);
        self.attempt += 1;
        // RandomState is randomly seeded per instance: a source of jitter without a crate.
        let random = RandomState::new().hash_one(self.attempt);
        Duration::from_millis(ceiling / 2 + random % (ceiling / 2 + 1))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_ten_seconds_with_jitter_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<u128> = (0..30).map(|_| backoff.next_delay().as_millis()).collect();
        // The ceiling doubles from 100 ms; each delay lies between half the ceiling and all of it.
        for (attempt, ms) in delays.iter().enumerate().take(7) {
            let ceiling = 100u128 << attempt;
            assert!((ceiling / 2..=ceiling).contains(ms), "{delays:?}");
        }
        assert!(
            delays[7..].iter().all(|ms| (5_000..=10_000).contains(ms)),
            "{delays:?}"
        );
        assert!(
            delays[7..].windows(2).any(|w| w[0] != w[1]),
            "no jitter: {delays:?}"
        );
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
