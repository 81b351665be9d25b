//! `/metrics` as a scraper sees it: the series users rely on, in both text formats, and what the
//! histograms, the build and the process report after real traffic.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::support::http::{get, request, Response};
use crate::support::sse::SseClient;
use crate::support::{insert_board, metric, spawn_app, spawn_app_with, TestApp, WAIT};

/// What Prometheus 3 sends when it scrapes a text target.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// Every series users had before the registry, by type: gauges, then counters.
const GAUGES: [&str; 10] = [
    "pgsse_clients_connected",
    "pgsse_connections_open",
    "pgsse_connections_max",
    "pgsse_listener_up",
    "pgsse_hub_last_event_id",
    "pgsse_event_log_pruned_through",
    "pgsse_seconds_since_last_notification",
    "pgsse_notification_queue_usage",
    "pgsse_event_table_bytes_estimate",
    "pgsse_event_table_rows_estimate",
];
/// The counters, with their values after [`app_after_one_event`]: one event received by
/// notification and delivered to one client, nothing else.
const COUNTERS: [(&str, f64); 10] = [
    ("pgsse_events_received", 1.0),
    ("pgsse_notifications_received", 1.0),
    ("pgsse_notifications_rejected", 0.0),
    ("pgsse_frames_delivered", 1.0),
    ("pgsse_replayed_from_ring", 0.0),
    ("pgsse_replayed_from_table", 0.0),
    ("pgsse_lag_resyncs", 0.0),
    ("pgsse_forced_disconnects", 0.0),
    ("pgsse_streams_refused", 0.0),
    ("pgsse_listener_reconnects", 0.0),
];

/// Each sample's value by its name with labels, e.g. `pgsse_build_info{version="0.1.0",…}`.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of one sample, which must be there.
fn sample(text: &str, name: &str) -> f64 {
    *samples(text)
        .get(name)
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

async fn scrape(app: &TestApp, accept: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    let response = request(app.addr, "GET", "/metrics", &headers, None).await;
    assert_eq!(response.status, 200, "{}", response.text());
    response
}

/// A gateway that has published an event, a client has received it, and the planner has an
/// estimate of the event table, so that every series users had is there.
async fn app_after_one_event() -> (TestApp, OneEvent) {
    let app = spawn_app().await;
    let mut client = app.stream().await;
    let sql = app.sql().await;
    let inserted = Instant::now();
    insert_board(&sql, "alice", "counted").await;
    let id = client.next_event().await.id();
    sql.exec("analyze pgsse.event").await;
    let event = OneEvent {
        id,
        inserted,
        _client: client,
    };
    (app, event)
}

/// The event [`app_after_one_event`] published.
struct OneEvent {
    id: i64,
    /// Just before it was inserted: whatever the gateway measured of it came after.
    inserted: Instant,
    /// The client that received it, still connected.
    _client: SseClient,
}

/// What each series users had says after [`app_after_one_event`]: each counts or measures its
/// own thing (a series reporting another's field, or in other units, fails here).
fn assert_after_one_event(text: &str, event: &OneEvent) {
    let value = |name: &str| sample(text, name);
    for (name, expected) in COUNTERS {
        assert_eq!(
            value(&format!("{name}_total")),
            expected,
            "{name} in\n{text}"
        );
    }
    assert_eq!(value("pgsse_clients_connected"), 1.0, "{text}");
    assert_eq!(value("pgsse_listener_up"), 1.0, "{text}");
    assert_eq!(value("pgsse_hub_last_event_id"), event.id as f64);
    assert_eq!(value("pgsse_event_log_pruned_through"), 0.0);
    assert_eq!(value("pgsse_event_table_rows_estimate"), 1.0);
    // The stream's connection and this scrape's, at least, and no more than are served.
    let open = value("pgsse_connections_open");
    assert!(open >= 2.0, "{text}");
    assert!(value("pgsse_connections_max") >= open, "{text}");
    // Seconds since the notification, which came after the insert began.
    let since = value("pgsse_seconds_since_last_notification");
    let elapsed = event.inserted.elapsed().as_secs_f64();
    assert!(since <= elapsed + 0.002, "{since} s > {elapsed} s");
    // A fraction of the queue, below the limit: the event came with its notification.
    let (usage, limit) = (
        value("pgsse_notification_queue_usage"),
        value("pgsse_notification_queue_limit"),
    );
    assert!((0.0..limit).contains(&usage), "{usage} of {limit}");
    // Bytes, not pages: at least the table's one page of 8 KiB.
    assert!(
        value("pgsse_event_table_bytes_estimate") >= 8192.0,
        "{text}"
    );
}

#[tokio::test]
async fn a_plain_scrape_gets_prometheus_text_with_every_series_users_had() {
    let (app, event) = app_after_one_event().await;
    let response = scrape(&app, None).await;
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.text();
    for name in GAUGES {
        assert!(
            text.contains(&format!("\n# TYPE {name} gauge\n")),
            "{name} in\n{text}"
        );
    }
    for (name, _) in COUNTERS {
        let type_line = format!("\n# TYPE {name}_total counter\n");
        assert!(text.contains(&type_line), "{name} in\n{text}");
    }
    assert_after_one_event(&text, &event);
    assert!(!text.contains("# EOF"), "{text}");
}

#[tokio::test]
async fn prometheus_gets_openmetrics_with_the_same_series() {
    let (app, event) = app_after_one_event().await;
    let response = scrape(&app, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(
        response.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = response.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    for name in GAUGES {
        assert!(
            text.contains(&format!("\n# TYPE {name} gauge\n")),
            "{name} in\n{text}"
        );
    }
    // OpenMetrics names a counter's family without `_total`, and its sample with it: the series
    // Prometheus stores is the same.
    for (name, _) in COUNTERS {
        assert!(
            text.contains(&format!("\n# TYPE {name} counter\n")),
            "{name} in\n{text}"
        );
    }
    assert_after_one_event(&text, &event);
    assert!(text.contains("\n# TYPE pgsse_build info\n"), "{text}");
    assert!(text.contains("\n# TYPE pgsse_received_to_first_write_seconds histogram\n"));
    assert!(text.contains("\n# TYPE pgsse_commit_to_first_write_seconds histogram\n"));
    assert!(
        text.contains("\n# TYPE process_cpu_seconds counter\n"),
        "{text}"
    );
}

#[tokio::test]
async fn an_event_two_clients_received_is_one_first_write_and_two_deliveries() {
    let app = spawn_app().await;
    let mut clients = [app.stream().await, app.stream().await];
    let inserted = Instant::now();
    insert_board(&app.sql().await, "alice", "timed").await;
    for client in &mut clients {
        assert_eq!(client.next_event().await.json()["board_name"], "timed");
    }
    let text = scrape(&app, None).await.text();
    assert_eq!(sample(&text, "pgsse_frames_delivered_total"), 2.0);
    let first_write = "pgsse_received_to_first_write_seconds";
    assert_eq!(sample(&text, &format!("{first_write}_count")), 1.0);
    let inf = format!("{first_write}_bucket{{le=\"+Inf\"}}");
    assert_eq!(sample(&text, &inf), 1.0);
    // Seconds, measured from the listener receiving the event, which came after the insert.
    let delay = sample(&text, &format!("{first_write}_sum"));
    let elapsed = inserted.elapsed().as_secs_f64();
    assert!(delay <= elapsed, "{delay} s > {elapsed} s");
}

#[tokio::test]
async fn the_delay_from_commit_to_first_write_is_measured_for_notified_and_read_events() {
    let app = spawn_app().await;
    let mut client = app.stream().await;
    let sql = app.sql().await;
    let commit = "pgsse_commit_to_first_write_seconds";
    let received = "pgsse_received_to_first_write_seconds";
    // A board's notification carries its event, and the event's commit time.
    insert_board(&sql, "alice", "timed").await;
    assert_eq!(client.next_event().await.json()["board_name"], "timed");
    let text = scrape(&app, None).await.text();
    assert_eq!(sample(&text, &format!("{commit}_count")), 1.0);
    // One clock on this machine: the commit came before the notification reached the gateway.
    let (since_commit, since_received) = (
        sample(&text, &format!("{commit}_sum")),
        sample(&text, &format!("{received}_sum")),
    );
    assert!(
        since_commit >= since_received,
        "{since_commit} < {since_received}"
    );
    assert!(since_commit < 10.0, "{since_commit}");
    // An event too large for pg_notify is only referred to, and read from pgsse.event.
    sql.exec("select pgsse.publish('large', jsonb_build_object('text', repeat('a', 8000)))")
        .await;
    assert_eq!(client.next_event().await.kind(), "large");
    let text = scrape(&app, None).await.text();
    assert_eq!(sample(&text, &format!("{commit}_count")), 2.0);
    assert!(sample(&text, &format!("{commit}_sum")) > since_commit);
}

#[tokio::test]
async fn a_client_resuming_from_the_table_is_counted_as_a_catch_up_read() {
    // A ring of one event, so that a resume from the start is read from the table.
    let app = spawn_app_with(&[("RING_CAPACITY", "1")]).await;
    let sql = app.sql().await;
    let mut last = 0;
    for i in 0..3 {
        last = insert_board(&sql, "alice", &format!("b{i}")).await;
    }
    let published = async {
        while metric(&app, "hub_last_event_id").await < 3.0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, published)
        .await
        .expect("the listener published the events");
    let mut client = app
        .sse("/sse/notifications/", &[("Last-Event-ID", "0")])
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(client.next_event().await.id());
    }
    assert_eq!(*ids.last().unwrap(), last);
    let text = scrape(&app, None).await.text();
    let stream = "{reader=\"stream\"}";
    assert_eq!(
        sample(&text, &format!("pgsse_catch_up_read_seconds_count{stream}")),
        1.0
    );
    assert_eq!(
        sample(&text, &format!("pgsse_catch_up_read_events_sum{stream}")),
        3.0
    );
    assert_eq!(sample(&text, "pgsse_replayed_from_table_total"), 3.0);
    // The listener read the table once at least, when it connected.
    let listener = "pgsse_catch_up_read_seconds_count{reader=\"listener\"}";
    assert!(sample(&text, listener) >= 1.0, "{text}");
}

/// The commit `pgsse_build_info` should name: git's, when the package is a checkout of its own.
fn expected_commit() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        output.status.success().then(|| text.trim().to_owned())
    };
    let own = git(&["rev-parse", "--show-toplevel"]).is_some_and(|top| {
        Path::new(&top).canonicalize().ok() == Path::new(root).canonicalize().ok()
    });
    let commit = own
        .then(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .flatten();
    commit.unwrap_or_else(|| "unknown".to_owned())
}

#[tokio::test]
async fn build_info_names_the_version_and_the_commit() {
    let app = spawn_app().await;
    let text = get(app.addr, "/metrics").await.text();
    let version = env!("CARGO_PKG_VERSION");
    let commit = expected_commit();
    let info = format!("pgsse_build_info{{version=\"{version}\",commit=\"{commit}\"}}");
    assert_eq!(sample(&text, &info), 1.0);
}

#[tokio::test]
async fn process_metrics_report_the_gateways_own_process() {
    let app = spawn_app().await;
    let text = get(app.addr, "/metrics").await.text();
    assert!(sample(&text, "process_cpu_seconds_total") > 0.0, "{text}");
    assert!(sample(&text, "process_resident_memory_bytes") > 0.0);
    assert!(
        sample(&text, "process_virtual_memory_bytes")
            >= sample(&text, "process_resident_memory_bytes")
    );
    let open = sample(&text, "process_open_fds");
    // Its listening socket and this scrape's connection, at least.
    assert!(open >= 2.0, "{text}");
    assert!(sample(&text, "process_max_fds") >= open);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = sample(&text, "process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 86_400.0,
        "{started} vs {now}"
    );
}
