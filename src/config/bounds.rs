//! The bounds and figures that the settings' help quotes. They live here, beside the settings,
//! and the modules that keep them take them from here, so `pgsse --help` cannot drift from what
//! the gateway does.

use std::time::Duration;

/// Connections accepted beyond `MAX_CONNECTIONS`, for anything but streams (the server's
/// reserve). They come out of the file descriptors the default cap leaves free.
pub const CONNECTION_RESERVE: usize = 16;

/// File descriptors kept free for the database connections and the process itself when the
/// connection cap comes from the open-file limit: a gateway whose streams took every descriptor
/// could no longer reconnect its listener.
pub const RESERVED_FILES: usize = 64;

/// The longest COALESCE_WINDOW_MS: an event waits no longer than a second whatever the setting.
pub const MAX_COALESCE_WINDOW_MS: u64 = 1000;

/// The coalescing window is at most this much per open stream: about what one event costs the
/// gateway per stream it is written to (measured: 5–10 µs of CPU, most of it the write), so no
/// event waits longer than writing it to every stream takes.
pub const COALESCE_PER_STREAM: Duration = Duration::from_micros(10);

/// The fewest characters an HS256 secret (AUTH_JWT_SECRET) may have.
pub const MIN_SECRET_LEN: usize = 32;

/// The most clock skew AUTH_LEEWAY_SECS may allow: more would keep expired tokens alive.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// The least time between two readings of the JWKS asked for by tokens with unknown keys, so
/// that tokens with made-up key ids cannot make the gateway hammer the identity provider.
pub const JWKS_UNKNOWN_KEY_REFRESH: Duration = Duration::from_secs(30);
