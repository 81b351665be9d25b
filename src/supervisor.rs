//! Tasks that must not stay dead: a panic in one is caught, logged, counted
//! (`pgsse_task_panics_total`) and the task started again.
//!
//! Nothing a client or a database role sends is meant to panic the gateway; this is the net under
//! that promise, so that a bug costs a restart of one task instead of delivery until the process
//! is restarted.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;

use crate::metrics::Metrics;

/// The pause before a task that panicked starts again, so that a task that panics at once cannot
/// spin.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Runs `task`, turning a panic into an error that says what it was.
pub async fn catch<T>(task: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(task).catch_unwind().await.map_err(message)
}

/// Runs the task `start` makes until it returns, starting it again each time it panics.
pub async fn restart_on_panic<F, T>(name: &'static str, metrics: &Metrics, mut start: F)
where
    F: FnMut() -> T,
    T: Future<Output = ()>,
{
    while let Err(panic) = catch(start()).await {
        metrics.task_panicked(name);
        log::error!("{name} failed ({panic}); starting it again");
        tokio::time::sleep(RESTART_AFTER).await;
    }
}

/// What a panic said.
fn message(panic: Box<dyn Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned());
    format!("panic: {}", text.as_deref().unwrap_or("no message"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_counted_and_started_again_until_it_returns() {
        let metrics = Metrics::default();
        let runs = AtomicUsize::new(0);
        restart_on_panic("the test task", &metrics, || async {
            if runs.fetch_add(1, Relaxed) < 2 {
                panic!("run {}", runs.load(Relaxed));
            }
        })
        .await;
        assert_eq!(runs.load(Relaxed), 3);
        assert_eq!(metrics.task_panics("the test task"), 2);
    }

    #[tokio::test]
    async fn a_caught_panic_says_what_it_was() {
        let caught = catch(async { panic!("the {} reason", "real") }).await;
        assert_eq!(caught, Err::<(), _>("panic: the real reason".to_owned()));
    }
}
