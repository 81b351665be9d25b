//! pgsse turns rows written to PostgreSQL into Server-Sent Events.
//!
//! # Codemap
//!
//! A row inserted into `board`, `path` or `notification` by any SQL client, or an event published
//! with `pgsse.publish`, fires a deferred trigger (`migrations/`) that, at commit, records an event
//! in `pgsse.event` with a commit-ordered id (and its recipient, if it has one) and calls
//! `pg_notify`. From there:
//!
//! - [`listener`]: one dedicated connection that `LISTEN`s and forwards each event whose
//!   signature verifies (`listener::signed`) to the hub, and one beside it that reads the table
//!   for anything a notification could not carry or it missed while away.
//! - [`hub`]: the in-memory fan-out (a broadcast of frames serialised once) and a ring of recent
//!   frames for replays, bounded in frames and in bytes.
//! - [`event`]: events as the database records them, the frames made of them, and where the
//!   log stands (the hub starts there).
//! - [`stream`]: the stream engine: opening a stream (`stream::open`: the resume id checked
//!   against the log, the registration, the start), then one client's cursor over the log
//!   (`stream::cursor`, its named phases in `stream::phase`), from history (`stream::history`,
//!   its only reads of the log) to live frames, written as warp SSE events (`stream::render`).
//!   Its [`stream::Settings`] hold the hub, the pool, the metrics and the registry for the whole
//!   gateway; no HTTP in it.
//! - [`http`]: the routes: the stream request (`http::sse`: its query, one derived type, read
//!   into a `stream::Request`, answered with warp's SSE reply of the stream or a JSON error), the
//!   REST API, health and pages.
//! - [`server`]: the transport: accepting connections (`MAX_CONNECTIONS` and its reserve,
//!   `server::accept`), HTTP/1.1 or HTTP/2 through hyper, the timeouts, and the shutdown grace.
//! - [`store`]: the SQL queries, one module per table, and `store::position`: a read of the REST
//!   API with the event log's position in the same snapshot; `store::watches` the watched
//!   kinds and the JSON Schema of their data (`GET /api/events`); the SQL itself lives in `sql/`.
//! - [`auth`]: access tokens (HS256, and an identity provider's keys from a JWKS, kept fresh by
//!   `auth::jwks`); [`registry`]: the connected streams, who is on each, the stream cap and the
//!   per-user stream limit.
//! - [`db`]: the connection pool, the one way to query it under a deadline (`db::query_within`),
//!   and migrations retried until the database is there (the gateway serves before it is), with
//!   the demo's tables in `DEMO_SCHEMA` (`db::schema`);
//!   [`backoff`]: the retry delays; [`config`]: flags and variables, and the bounds their help
//!   quotes (`config::bounds`, which the code uses too); [`metrics`]: each metric registered once
//!   where it is made, with its name and help (prometheus-client); [`retention`]: prunes old
//!   events on a timer; [`supervisor`]: starts a task that panicked again, and counts it;
//!   [`shutdown`]: the stop protocol; [`gate`]: a future polled only after it woke; [`app`]:
//!   wires it all together.
//!
//! # Invariants
//!
//! - Arrows run one way: `config` and `event` use no other module; `store` uses `event` only;
//!   in `http/`, `openapi` lists the handlers and no handler uses `openapi`.
//! - Events are made only by the database; nothing in Rust publishes an event of its own.
//! - An event reaches the hub only from `pgsse.event` or from a notification `pgsse.emit` signed:
//!   any role may `NOTIFY`, so an unsigned notification is never believed.
//! - Only `listener` sees `AsyncMessage`; no pooled connection ever `LISTEN`s.
//! - The gateway never touches a table it did not make: the demo's go in `DEMO_SCHEMA`, and a
//!   schema where one of their names is taken is refused before anything is made.
//! - The hub does no I/O and never waits for a client.
//! - Every client is a cursor (the last id it was sent); what it receives is strictly increasing.
//! - A targeted event reaches only streams whose user, clientId and sessionId match its target;
//!   with authentication on, a client or session belongs to its user.
//! - Every stream is a warp SSE reply through hyper; nothing in `src/` writes HTTP by hand.
//! - Every wait for a client has a deadline, and every buffer a stream holds a bound in bytes.
//! - A token is checked only with a key of its kind: HS256 only with `AUTH_JWT_SECRET`, never with
//!   a key the identity provider published; the JWKS is fetched with deadlines and a size bound,
//!   from `AUTH_JWKS_URL` itself (no redirect is followed).

pub mod app;
pub mod auth;
pub mod backoff;
pub mod config;
pub mod db;
pub mod event;
pub mod gate;
pub mod http;
pub mod hub;
pub mod listener;
pub mod metrics;
pub mod registry;
pub mod retention;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod stream;
pub mod supervisor;

pub use app::App;
pub use config::Config;
