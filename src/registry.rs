//! The streams connected to this gateway: who is on each (for `/api/sse/clients`), the cap on
//! streams (`MAX_STREAMS`, HTTP/1.1 and HTTP/2 streams alike), and the per-user limit: when a
//! user opens more than `MAX_STREAMS_PER_USER` streams, the oldest is closed, so that a tab
//! reopening never locks its user out.
//!
//! No I/O: registering, listing and closing are a few map operations under a short lock.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::Value;
use tokio::sync::Notify;

use crate::event::Viewer;

pub struct Registry {
    // A std mutex: each critical section is a map update and never awaits.
    inner: Mutex<Inner>,
    max_per_user: usize,
    /// Streams connected at once, at most.
    max_streams: usize,
}

/// Who a new stream says it is.
pub struct Claim {
    pub user: Option<String>,
    /// Made up when the client gave none.
    pub client_id: Option<String>,
    pub session_id: Option<String>,
    /// Whether `user` comes from a verified token (authentication is on).
    pub authenticated: bool,
}

/// The registry already holds `MAX_STREAMS` streams.
#[derive(Debug)]
pub struct Full {
    pub max_streams: usize,
}

#[derive(Default)]
struct Inner {
    next_key: u64,
    streams: BTreeMap<u64, Arc<Entry>>,
    /// Each user's open streams, oldest first.
    by_user: HashMap<String, VecDeque<u64>>,
}

/// One connected stream.
pub struct Entry {
    pub key: u64,
    pub viewer: Viewer,
    /// The stream's filters, as given, for listings.
    pub filters: Value,
    pub connected_at: SystemTime,
    /// The id of the last event sent to the stream.
    pub last_event_id: AtomicI64,
    /// Notified when the stream must close because its user opened too many.
    pub evicted: Notify,
}

/// A stream's place in the registry; dropping it removes the stream.
pub struct Registration {
    registry: Arc<Registry>,
    pub entry: Arc<Entry>,
}

impl Registry {
    pub fn new(max_per_user: usize, max_streams: usize) -> Registry {
        Registry {
            inner: Mutex::new(Inner::default()),
            max_per_user,
            max_streams,
        }
    }

    /// Adds a stream, unless `MAX_STREAMS` are connected. If the user now has more than the
    /// allowed streams, the oldest of them is told to close.
    pub fn register(self: &Arc<Self>, claim: Claim, filters: Value) -> Result<Registration, Full> {
        let user = claim.user.clone();
        let mut inner = self.lock();
        self.room_in(&inner)?;
        inner.next_key += 1;
        let entry = Arc::new(Entry::new(inner.next_key, claim, filters));
        inner.streams.insert(entry.key, entry.clone());
        if let Some(user) = user {
            self.limit_user(&mut inner, user, entry.key);
        }
        Ok(Registration {
            registry: self.clone(),
            entry,
        })
    }

    /// Whether a stream would be registered now, without registering one (for a `HEAD`, which
    /// must be refused where the `GET` would be).
    pub fn room(&self) -> Result<(), Full> {
        self.room_in(&self.lock())
    }

    fn room_in(&self, inner: &Inner) -> Result<(), Full> {
        match inner.streams.len() < self.max_streams {
            true => Ok(()),
            false => Err(Full {
                max_streams: self.max_streams,
            }),
        }
    }

    /// How many streams are connected now.
    pub fn connected(&self) -> usize {
        self.lock().streams.len()
    }

    /// Every connected stream, oldest first.
    pub fn list(&self) -> Vec<Arc<Entry>> {
        self.lock().streams.values().cloned().collect()
    }

    fn remove(&self, entry: &Entry) {
        let mut inner = self.lock();
        inner.streams.remove(&entry.key);
        if let Some(user) = &entry.viewer.user {
            if let Some(queue) = inner.by_user.get_mut(user) {
                queue.retain(|k| *k != entry.key);
                if queue.is_empty() {
                    inner.by_user.remove(user);
                }
            }
        }
    }

    /// Queues stream `key` among `user`'s, and tells the oldest of them to close if the user now
    /// has more than the allowed streams.
    fn limit_user(&self, inner: &mut Inner, user: String, key: u64) {
        let queue = inner.by_user.entry(user.clone()).or_default();
        queue.push_back(key);
        let oldest = (queue.len() > self.max_per_user).then(|| queue.pop_front());
        if let Some(stream) = oldest.flatten().and_then(|k| inner.streams.get(&k)) {
            log::info!(
                "closing the oldest stream of {user:?} (client {}): it has more than {} streams",
                stream.viewer.client_id,
                self.max_per_user
            );
            stream.evicted.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Entry {
    /// A stream with registry key `key`; without a clientId of its own, it is given one.
    fn new(key: u64, claim: Claim, filters: Value) -> Entry {
        let client_id = claim.client_id.unwrap_or_else(|| {
            let random = RandomState::new().hash_one(key) as u32;
            format!("{key:x}-{random:08x}")
        });
        Entry {
            key,
            viewer: Viewer {
                user: claim.user,
                client_id,
                session_id: claim.session_id,
                authenticated: claim.authenticated,
            },
            filters,
            connected_at: SystemTime::now(),
            last_event_id: AtomicI64::new(0),
            evicted: Notify::new(),
        }
    }

    pub fn sent(&self, id: i64) {
        self.last_event_id.store(id, Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.remove(&self.entry);
    }
}

/// A time as RFC 3339 in UTC, e.g. `2026-11-22T03:02:03Z`.
pub fn rfc3339(time: SystemTime) -> String {
    // humantime takes no time before 1970, which only a clock set wrong would give.
    humantime::format_rfc3339_seconds(time.max(SystemTime::UNIX_EPOCH)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_oldest_stream_of_a_user_is_told_to_close_beyond_the_limit() {
        let registry = Arc::new(Registry::new(2, 100));
        let alice = || Some("alice".to_owned());
        let first = registry
            .register(claim(alice(), None), Value::Null)
            .unwrap();
        let second = registry
            .register(claim(alice(), Some("tab")), Value::Null)
            .unwrap();
        let bob = registry
            .register(claim(Some("bob".into()), None), Value::Null)
            .unwrap();
        let third = registry
            .register(claim(alice(), None), Value::Null)
            .unwrap();
        // The first stream has a stored permit; the others none.
        let closed = |r: &Registration| {
            futures_util::FutureExt::now_or_never(r.entry.evicted.notified()).is_some()
        };
        assert!(closed(&first));
        assert!(!closed(&second) && !closed(&third) && !closed(&bob));
        assert_eq!(second.entry.viewer.client_id, "tab");
        assert_eq!(registry.list().len(), 4);
        drop(first);
        let keys: Vec<u64> = registry.list().iter().map(|e| e.key).collect();
        assert_eq!(keys, [2, 3, 4]);
    }

    fn claim(user: Option<String>, client_id: Option<&str>) -> Claim {
        Claim {
            user,
            client_id: client_id.map(str::to_owned),
            session_id: None,
            authenticated: false,
        }
    }

    #[test]
    fn beyond_max_streams_a_stream_is_refused_until_one_leaves() {
        let registry = Arc::new(Registry::new(10, 2));
        let first = registry.register(claim(None, None), Value::Null).unwrap();
        let _second = registry.register(claim(None, None), Value::Null).unwrap();
        let refused = registry.register(claim(None, None), Value::Null);
        assert_eq!(refused.err().map(|f| f.max_streams), Some(2));
        assert_eq!(registry.room().err().map(|f| f.max_streams), Some(2));
        drop(first);
        assert!(registry.room().is_ok());
        assert!(registry.register(claim(None, None), Value::Null).is_ok());
    }

    #[test]
    fn times_are_written_as_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00Z");
        // Whole seconds: the fraction is dropped.
        let fraction = t + Duration::from_millis(999);
        assert_eq!(rfc3339(fraction), "2026-11-18T11:06:40Z");
    }
}
