//! Integration tests: a real gateway against a real PostgreSQL, observed the way users observe
//! it: bytes on the SSE stream, statuses and bodies, rows in the tables.

mod adopt;
mod api;
mod auth;
mod bench_smoke;
mod browser;
mod cli;
mod cors;
mod delivery;
mod docs;
mod edge;
mod events;
mod feed;
mod fleet;
mod identity;
mod instances;
mod kinds;
mod metrics;
mod nginx;
mod openapi;
mod options;
mod poison;
mod position;
mod probes;
mod recovery;
mod resume;
mod stream;
mod support;
mod targeted;
mod tls;
mod trust;
mod watch;
mod web;
mod writers;
