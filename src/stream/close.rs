//! How a stream ends on the server's side: shutdown, its user opening too many streams, or its
//! access token expiring; one future per stream that completes with the first of them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;

use crate::registry::Entry;
use crate::shutdown::Shutdown;

/// Why a stream ends on the server's side.
pub(super) enum Close {
    Shutdown,
    Evicted,
    Expired,
}

/// The future that ends a stream: the first of shutdown, eviction and token expiry.
pub(super) fn closing(
    mut shutdown: Shutdown,
    entry: Arc<Entry>,
    expires_at: Option<Instant>,
) -> Pin<Box<dyn Future<Output = Close> + Send>> {
    Box::pin(async move {
        let expiry = async {
            match expires_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.fired() => Close::Shutdown,
            () = entry.evicted.notified() => Close::Evicted,
            () = expiry => Close::Expired,
        }
    })
}
