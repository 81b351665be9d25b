//! A future polled only after it has woken its task.
//!
//! `select!` polls every branch each time its task wakes. A stream's task wakes for every event,
//! and its rare branches (a stream's closing, a connection's idle watchdog) would be polled each
//! time: about 5% of the gateway's CPU in a fan-out to 10,000 streams, and the shutdown signal's
//! lock, shared by every stream, taken once per stream per event. Behind a [`Gated`], such a
//! future is polled again only when its own waker has fired.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

pub struct Gated<F> {
    future: F,
    gate: Arc<Gate>,
    /// The task's waker as last given to the gate, until the gate has used it: a task polled
    /// again and again (a stream's, for every event) registers it once, not on every poll.
    registered: Option<Waker>,
}

struct Gate {
    /// Set when the inner future has asked to be polled (and at first, so that it registers).
    open: AtomicBool,
    /// The task polling the [`Gated`].
    task: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.open.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F> Gated<F> {
    pub fn new(future: F) -> Gated<F> {
        Gated {
            future,
            gate: Arc::new(Gate {
                open: AtomicBool::new(true),
                task: AtomicWaker::new(),
            }),
            registered: None,
        }
    }
}

impl<F: Future + Unpin> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // Registered before the flag is read: a wake in between is seen now or wakes the task.
        // A gate's wake takes the waker and sets the flag first, so while the flag is unset the
        // waker registered last is still there.
        let known = this.registered.as_ref();
        if !known.is_some_and(|waker| waker.will_wake(cx.waker())) {
            this.gate.task.register(cx.waker());
            this.registered = Some(cx.waker().clone());
        }
        if !this.gate.open.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        // The gate was woken, and its waker used: the next poll registers again.
        this.registered = None;
        let waker = Waker::from(this.gate.clone());
        Pin::new(&mut this.future).poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts its polls of the future inside, which wakes its task only when it is ready.
    struct Counted<F> {
        polls: Arc<AtomicUsize>,
        inner: F,
    }

    impl<F: Future + Unpin> Future for Counted<F> {
        type Output = F::Output;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.inner).poll(cx)
        }
    }

    #[tokio::test]
    async fn the_inner_future_is_polled_first_and_then_only_after_it_woke() {
        let polls = Arc::new(AtomicUsize::new(0));
        let (wake, woken) = tokio::sync::oneshot::channel::<()>();
        let mut gated = Gated::new(Counted {
            polls: polls.clone(),
            inner: woken,
        });
        let noop = Waker::noop();
        let mut cx = Context::from_waker(noop);
        // The first poll reaches the inner future, which registers its waker.
        assert!(Pin::new(&mut gated).poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        // The task is polled again, for its other futures; the inner future has not woken.
        for _ in 0..3 {
            assert!(Pin::new(&mut gated).poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        // Its wake opens the gate: the next poll reaches it, and it is ready.
        wake.send(()).expect("the receiver is alive");
        assert!(Pin::new(&mut gated).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_quiet_future_is_not_polled_until_it_wakes() {
        let mut sleep = Gated::new(Box::pin(tokio::time::sleep(Duration::from_millis(50))));
        let noop = Waker::noop();
        let mut cx = Context::from_waker(noop);
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        assert!(!sleep.gate.open.load(Ordering::Acquire));
        // The timer wakes the gate, and the gated future completes.
        tokio::time::timeout(Duration::from_secs(5), &mut sleep)
            .await
            .expect("the gated sleep completes");
    }
}
