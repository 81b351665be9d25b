//! `/healthz`, `/readyz` and `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{with_state, State};

pub fn routes(
    state: Arc<State>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&json!({"status": "ok"})));
    let ready = warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(ready);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state))
        .then(metrics);
    health.or(ready).or(metrics)
}

/// GET /readyz: ready once migrations are done (they are, or the server would not be up) and
/// the listener is listening.
fn ready(state: Arc<State>) -> impl Reply {
    if state.metrics.is_listening() {
        let body = json!({"status": "ready", "listener": "listening"});
        warp::reply::with_status(warp::reply::json(&body), StatusCode::OK)
    } else {
        let body = json!({"status": "not ready", "listener": "reconnecting to PostgreSQL"});
        warp::reply::with_status(warp::reply::json(&body), StatusCode::SERVICE_UNAVAILABLE)
    }
}

/// GET /metrics, in Prometheus' text format.
async fn metrics(state: Arc<State>) -> impl Reply {
    let m = &state.metrics;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = write!(
            out,
            "# HELP pgsse_{name} {help}\n# TYPE pgsse_{name} gauge\npgsse_{name} {value}\n"
        );
    };
    gauge(
        "clients_connected",
        "SSE streams open now.",
        state.registry.connected() as f64,
    );
    gauge(
        "connections_open",
        "HTTP connections open now, streams included.",
        state.metrics.connections_open.load(Relaxed) as f64,
    );
    gauge(
        "connections_max",
        "Connections served at once (MAX_CONNECTIONS); beyond it stream requests get 503.",
        state.metrics.connections_max.load(Relaxed) as f64,
    );
    gauge(
        "listener_up",
        "1 while the listener connection is LISTENing.",
        f64::from(u8::from(m.is_listening())),
    );
    gauge(
        "hub_last_event_id",
        "Id of the last event published to clients.",
        state.hub.position().last_id as f64,
    );
    if let Some(seconds) = m.seconds_since_notification() {
        gauge(
            "seconds_since_last_notification",
            "Seconds since the listener last received a notification.",
            seconds,
        );
    }
    if let Ok(row) = database_figures(&state).await {
        gauge(
            "notification_queue_usage",
            "pg_notification_queue_usage(): fraction of the NOTIFY queue in use.",
            row.0,
        );
        gauge(
            "event_table_bytes",
            "Size of pgsse.event with its indexes.",
            row.1 as f64,
        );
        gauge(
            "event_table_rows",
            "Events retained in pgsse.event.",
            row.2 as f64,
        );
    }
    let counters: [(&str, &str, &AtomicU64); 9] = [
        (
            "events_received_total",
            "Events taken from PostgreSQL and published.",
            &m.events_received,
        ),
        (
            "notifications_received_total",
            "Notifications received on the listener connection.",
            &m.notifications_received,
        ),
        (
            "frames_delivered_total",
            "Event frames handed to client connections.",
            &m.frames_delivered,
        ),
        (
            "replayed_from_ring_total",
            "Frames replayed to resuming or lagging clients from memory.",
            &m.replayed_from_ring,
        ),
        (
            "replayed_from_table_total",
            "Frames replayed to resuming or lagging clients from pgsse.event.",
            &m.replayed_from_table,
        ),
        (
            "lag_resyncs_total",
            "Times a client fell behind the broadcast and caught up from history.",
            &m.lag_resyncs,
        ),
        (
            "forced_disconnects_total",
            "Clients disconnected for being too far behind.",
            &m.forced_disconnects,
        ),
        (
            "streams_refused_total",
            "Stream requests refused with 503 because MAX_CONNECTIONS connections were open.",
            &m.streams_refused,
        ),
        (
            "listener_reconnects_total",
            "Times the listener lost its connection and reconnected.",
            &m.listener_reconnects,
        ),
    ];
    for (name, help, counter) in counters {
        let _ = write!(
            out,
            "# HELP pgsse_{name} {help}\n# TYPE pgsse_{name} counter\npgsse_{name} {}\n",
            counter.load(Relaxed)
        );
    }
    warp::reply::with_header(out, "content-type", "text/plain; version=0.0.4")
}

async fn database_figures(state: &State) -> Result<(f64, i64, i64), Box<dyn std::error::Error>> {
    let client = state.pool.get().await?;
    let row = client
        .query_one(include_str!("../../sql/metrics.sql"), &[])
        .await?;
    Ok((
        row.get("queue_usage"),
        row.get("event_table_bytes"),
        row.get("event_table_rows"),
    ))
}
