//! Accepting connections: a connection is taken from the listen backlog only while it has
//! somewhere to go, one of the `MAX_CONNECTIONS` slots or else one of the [`RESERVE`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::RESERVE;

/// Pause after an accept error such as running out of file descriptors, which would otherwise
/// repeat at once.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Why acquiring a slot cannot fail.
const OPEN: &str = "the semaphores are never closed";

/// The listening socket and the slots its connections take (as mini-redis's `Listener`).
pub(super) struct Listener {
    tcp: TcpListener,
    slots: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    max_connections: usize,
    /// Whether the last connection went to the reserve: the log says when that changes.
    full: bool,
}

/// What a connection counts against while it is open: one of the `MAX_CONNECTIONS`, or one of
/// the [`RESERVE`] beyond them (no streams there).
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    pub(super) reserve: bool,
}

impl Listener {
    pub(super) fn new(tcp: TcpListener, max_connections: usize) -> Listener {
        Listener {
            tcp,
            slots: Arc::new(Semaphore::new(max_connections)),
            reserve: Arc::new(Semaphore::new(RESERVE)),
            max_connections,
            full: false,
        }
    }

    /// The next connection, with the slot it holds until it ends. Waits while every slot and
    /// the reserve are in use; after an error that would repeat at once, pauses first. Cancel
    /// safe: a connection is taken from the backlog only when it is returned.
    pub(super) async fn accept(&mut self) -> (TcpStream, Slot) {
        loop {
            let slot = self.slot().await;
            match self.tcp.accept().await {
                Ok((socket, _)) => return (socket, self.freshest(slot)),
                Err(err) if accept_failed(&err) => tokio::time::sleep(ACCEPT_PAUSE).await,
                Err(_) => {}
            }
        }
    }

    /// A slot, or else one of the reserve, whichever comes free first.
    async fn slot(&self) -> Slot {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Slot::served(permit);
        }
        if let Ok(permit) = self.reserve.clone().try_acquire_owned() {
            return Slot::reserve(permit);
        }
        tokio::select! {
            permit = self.slots.clone().acquire_owned() => Slot::served(permit.expect(OPEN)),
            permit = self.reserve.clone().acquire_owned() => Slot::reserve(permit.expect(OPEN)),
        }
    }

    /// `slot`, or a slot that came free while the connection was awaited: the wait may be long,
    /// and a stream is refused only if the slots are all in use when it arrives. Logs when the
    /// gateway becomes full, or is no longer.
    fn freshest(&mut self, slot: Slot) -> Slot {
        let slot = match slot.reserve {
            true => self
                .slots
                .clone()
                .try_acquire_owned()
                .map_or(slot, Slot::served),
            false => slot,
        };
        if slot.reserve && !self.full {
            log::warn!(
                "{} connections open (MAX_CONNECTIONS): new stream requests are refused with 503 \
                 until some close; up to {RESERVE} other requests are still answered",
                self.max_connections
            );
        } else if !slot.reserve && self.full {
            log::info!("below MAX_CONNECTIONS again: serving streams");
        }
        self.full = slot.reserve;
        slot
    }
}

impl Slot {
    fn served(permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            _permit: permit,
            reserve: false,
        }
    }

    fn reserve(permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            _permit: permit,
            reserve: true,
        }
    }
}

/// Logs an accept error; returns whether accepting should pause.
fn accept_failed(err: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        // The client gave up before its connection was accepted.
        return false;
    }
    log::error!(
        "cannot accept a connection: {err}; pausing {} s (at the open-file limit, new \
         connections wait until streams close)",
        ACCEPT_PAUSE.as_secs()
    );
    true
}
