//! The shutdown protocol: tell every task to stop, then wait until every task is gone.
//!
//! Each long-lived task (the listener, every SSE stream) holds a [`Shutdown`]. The owner of the
//! [`Trigger`] fires it once and then waits until every `Shutdown` has been dropped.

use tokio::sync::watch;

/// Fires the shutdown and waits for the tasks that watch it.
pub struct Trigger {
    sender: watch::Sender<bool>,
}

/// A task's view of the shutdown; dropping it tells the [`Trigger`] the task is gone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// Creates a trigger and the first handle to watch it.
pub fn channel() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Trigger { sender }, Shutdown { receiver })
}

impl Trigger {
    /// Tells every task to stop.
    pub fn fire(&self) {
        self.sender.send_replace(true);
    }

    /// Completes once every [`Shutdown`] handle has been dropped.
    pub async fn wait_for_tasks(&self) {
        self.sender.closed().await;
    }

    /// A new handle, for a task started after the first.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            receiver: self.sender.subscribe(),
        }
    }
}

impl Shutdown {
    /// Completes when shutdown has been fired (or its trigger dropped).
    pub async fn fired(&mut self) {
        // An error means the trigger is gone, which also means: stop.
        let _ = self.receiver.wait_for(|&fired| fired).await;
    }
}
