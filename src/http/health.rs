//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{with_state, State};
use crate::db::{self, QueryError};
use crate::metrics::{DatabaseFigures, Format, Snapshot};
use crate::store::events;

pub fn routes(
    state: Arc<State>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let health = warp::path!("healthz").and(super::read()).map(health);
    let ready = warp::path!("readyz")
        .and(super::read())
        .and(with_state(state.clone()))
        .map(ready);
    let metrics = warp::path!("metrics")
        .and(super::read())
        .and(warp::header::optional::<String>("accept"))
        .and(with_state(state))
        .then(metrics);
    health.or(ready).or(metrics)
}

/// What a probe answers.
#[derive(Serialize, ToSchema)]
struct Status {
    /// `ok` (`/healthz`), `ready` or `not ready` (`/readyz`).
    status: &'static str,
    /// `listening` when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    listener: Option<&'static str>,
    /// What the gateway waits for, and why, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// What works, but worse than it should (`/readyz`): PostgreSQL's notification queue filling.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// GET /healthz: the process is up.
#[utoipa::path(get, operation_id = "health", path = "/healthz", tag = "probes", responses(
    (status = 200, description = "The process is up: `{\"status\": \"ok\"}`.", body = Status),
))]
fn health() -> impl Reply {
    let status = Status {
        status: "ok",
        listener: None,
        reason: None,
        warnings: Vec::new(),
    };
    super::json(&status)
}

/// GET /readyz: ready once migrations are done, the listener is listening and the identity
/// provider's keys (with a JWKS) are loaded; otherwise 503 with the reason (the database cannot be
/// reached, and why; the listener reconnecting; the keys not read yet, and why).
#[utoipa::path(get, operation_id = "ready", path = "/readyz", tag = "probes", responses(
    (status = 200, description = "Migrations are done, the listener is listening and (with a JWKS) the keys are read.",
        body = Status),
    (status = 503, description = "Not ready: `reason` says what it waits for and why.",
        body = Status),
))]
fn ready(state: Arc<State>) -> impl Reply {
    let keys = state.auth.as_ref().and_then(|auth| auth.not_ready());
    if keys.is_none() && state.metrics().is_listening() {
        let body = Status {
            status: "ready",
            listener: Some("listening"),
            reason: None,
            warnings: warnings(&state),
        };
        return warp::reply::with_status(super::json(&body), StatusCode::OK);
    }
    let why = keys.or_else(|| state.metrics().not_ready());
    let why = why.unwrap_or_else(|| "the listener is connecting to PostgreSQL".to_owned());
    let body = Status {
        status: "not ready",
        listener: None,
        reason: Some(why),
        warnings: warnings(&state),
    };
    warp::reply::with_status(super::json(&body), StatusCode::SERVICE_UNAVAILABLE)
}

/// What degrades delivery without stopping it. A full notification queue is the database's, so
/// it is a warning on every gateway, not a reason to take them all out of service.
fn warnings(state: &State) -> Vec<String> {
    let queue = state.metrics().queue_fill();
    if !queue.unnotified() {
        return Vec::new();
    }
    vec![format!(
        "PostgreSQL's notification queue is {:.1}% full (pgsse.notify_queue_limit is {:.1}%): \
         events are committed without a notification and delivered from pgsse.event, up to a \
         second later; a session that LISTENs and does not read holds the queue",
        queue.usage * 100.0,
        queue.limit * 100.0
    )]
}

/// GET /metrics, as OpenMetrics text when the scraper asks for it (Prometheus does) and as
/// Prometheus text otherwise.
#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "probes", responses(
    (status = 200, description = "The gateway's metrics: OpenMetrics text when the Accept \
        header names application/openmetrics-text, Prometheus text 0.0.4 otherwise.",
        content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
))]
async fn metrics(accept: Option<String>, state: Arc<State>) -> impl Reply {
    let position = state.hub().position();
    let database = match database_figures(&state).await {
        Ok(figures) => Some(figures),
        Err(err) => {
            log::warn!("metrics: database figures left out: {err}");
            None
        }
    };
    let now = Snapshot {
        clients_connected: state.registry().connected() as i64,
        last_event_id: position.last_id,
        pruned_through: position.pruned_through,
        database,
    };
    let format = Format::accepted(accept.as_deref());
    let body = state.metrics().encode(&now, format);
    warp::reply::with_header(body, "content-type", format.content_type())
}

/// How long a scrape waits for the database figures before answering without them.
const FIGURES_TIMEOUT: Duration = Duration::from_secs(2);

async fn database_figures(state: &State) -> Result<DatabaseFigures, QueryError> {
    let figures = db::query_within(state.pool(), FIGURES_TIMEOUT, async |client| {
        events::figures(client).await
    })
    .await?;
    Ok(DatabaseFigures {
        queue_usage: figures.queue_usage,
        rows_estimate: figures.rows_estimate,
        bytes_estimate: figures.bytes_estimate,
    })
}
