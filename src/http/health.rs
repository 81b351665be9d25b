//! `/healthz`, `/readyz` and `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{with_state, State};

pub fn routes(
    state: Arc<State>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let health = warp::path!("healthz")
        .and(super::read())
        .map(|| super::json(&json!({"status": "ok"})));
    let ready = warp::path!("readyz")
        .and(super::read())
        .and(with_state(state.clone()))
        .map(ready);
    let metrics = warp::path!("metrics")
        .and(super::read())
        .and(with_state(state))
        .then(metrics);
    health.or(ready).or(metrics)
}

/// GET /readyz: ready once migrations are done, the listener is listening and the identity
/// provider's keys (with a JWKS) are loaded; otherwise 503 with the reason (the database cannot be
/// reached, and why; the listener reconnecting; the keys not read yet, and why).
fn ready(state: Arc<State>) -> impl Reply {
    if let Some(why) = state.auth.as_ref().and_then(|auth| auth.not_ready()) {
        let body = json!({"status": "not ready", "reason": why});
        return warp::reply::with_status(super::json(&body), StatusCode::SERVICE_UNAVAILABLE);
    }
    if state.metrics.is_listening() {
        let body = json!({"status": "ready", "listener": "listening"});
        warp::reply::with_status(super::json(&body), StatusCode::OK)
    } else {
        let why = state
            .metrics
            .not_ready()
            .unwrap_or_else(|| "the listener is connecting to PostgreSQL".to_owned());
        let body = json!({"status": "not ready", "reason": why});
        warp::reply::with_status(super::json(&body), StatusCode::SERVICE_UNAVAILABLE)
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
    gauge(
        "event_log_pruned_through",
        "Id through which pgsse.event has been pruned, as the gateway last read pgsse.horizon.",
        state.hub.position().pruned_through as f64,
    );
    if let Some(seconds) = m.seconds_since_notification() {
        gauge(
            "seconds_since_last_notification",
            "Seconds since the listener last received a notification.",
            seconds,
        );
    }
    match database_figures(&state).await {
        Ok(figures) => {
            gauge(
                "notification_queue_usage",
                "pg_notification_queue_usage(): fraction of the NOTIFY queue in use.",
                figures.queue_usage,
            );
            gauge(
                "event_table_bytes_estimate",
                "The planner's estimate of the size of pgsse.event with its indexes, as of its \
                 last vacuum or analyze.",
                figures.bytes_estimate as f64,
            );
            // Before the table's first vacuum or analyze the planner has no estimate.
            if figures.rows_estimate >= 0.0 {
                gauge(
                    "event_table_rows_estimate",
                    "The planner's estimate of the events retained in pgsse.event, as of its \
                     last vacuum or analyze.",
                    figures.rows_estimate,
                );
            }
        }
        Err(err) => log::warn!("metrics: database figures left out: {err}"),
    }
    let counters: [(&str, &str, &AtomicU64); 10] = [
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
            "notifications_rejected_total",
            "Notifications dropped because the gateway's functions did not sign them (sent by \
             another role, or under a replaced pgsse.notify_key).",
            &m.notifications_rejected,
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

/// What `/metrics` reads from the database: catalog figures only (see `sql/metrics.sql`).
struct DatabaseFigures {
    queue_usage: f64,
    rows_estimate: f64,
    bytes_estimate: i64,
}

/// How long a scrape waits for the database figures before answering without them.
const FIGURES_TIMEOUT: Duration = Duration::from_secs(2);

async fn database_figures(state: &State) -> Result<DatabaseFigures, String> {
    let read = async {
        let client = state.pool.get().await.map_err(|e| e.to_string())?;
        client
            .query_one(include_str!("../../sql/metrics.sql"), &[])
            .await
            .map_err(|e| e.to_string())
    };
    let row = tokio::time::timeout(FIGURES_TIMEOUT, read)
        .await
        .map_err(|_| format!("no answer within {FIGURES_TIMEOUT:?}"))??;
    Ok(DatabaseFigures {
        queue_usage: row.get("queue_usage"),
        rows_estimate: row.get("rows_estimate"),
        bytes_estimate: row.get("bytes_estimate"),
    })
}
