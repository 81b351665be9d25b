//! The stream engine, served from memory: streams whose database is never reached.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::render::event;
use super::{ClientStream, EventFilter, Opening, Settings};
use crate::event::Frame;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::registry::{Claim, Registry};
use crate::{config::Config, db, shutdown};

/// Settings whose database is never reached: these streams are served from memory.
fn settings(slow_client: Duration) -> (Arc<Settings>, shutdown::Trigger) {
    let config = Config::from_lookup(|name| {
        (name == "DATABASE_URL").then(|| "postgres://nobody@127.0.0.1:1/none".to_owned())
    })
    .unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let ring = crate::hub::RingBounds {
        frames: 100,
        bytes: 64 * 1024,
    };
    let hub = Arc::new(Hub::new(4, ring, crate::hub::Coalescing::OFF));
    hub.start(Default::default());
    let settings = Settings {
        pool: db::pool(&config),
        hub,
        metrics: Arc::new(Metrics::default()),
        registry: Arc::new(Registry::new(10, 10)),
        keepalive: Duration::from_secs(60),
        slow_client,
        shutdown,
    };
    (Arc::new(settings), trigger)
}

fn opening() -> Opening {
    let claim = Claim {
        user: None,
        client_id: None,
        session_id: None,
        authenticated: false,
    };
    Opening {
        last_event_id: None,
        history: 0,
        envelope: false,
        filter: EventFilter::default(),
        registration: Arc::new(Registry::new(10, 10))
            .register(claim, Value::Null)
            .unwrap(),
        expires_at: None,
    }
}

/// Publishes events `ids` and returns their messages as a client would get them.
fn publish(settings: &Settings, ids: std::ops::RangeInclusive<i64>) -> Vec<String> {
    let mut expected = Vec::new();
    for id in ids {
        let frame = Frame::render(id, "newBoard", &json!({ "board_id": id }).to_string(), None);
        expected.push(event(&frame).to_string());
        settings.hub.publish(frame);
    }
    expected
}

async fn next(stream: &mut ClientStream, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(stream.next_event().await.unwrap().to_string());
    }
    got
}

#[tokio::test]
async fn a_stream_opens_with_its_position_then_who_it_is_for() {
    let (settings, _trigger) = settings(Duration::from_secs(3600));
    let mut stream = ClientStream::start(settings.clone(), opening());
    let opening = next(&mut stream, 2).await;
    assert_eq!(opening[0], ": pgsse stream open\nid:0\nretry:2000\n\n");
    assert!(
        opening[1].starts_with("event:connection\ndata:{\"client_id\":"),
        "{}",
        opening[1]
    );
}

#[tokio::test]
async fn a_client_that_lags_behind_the_broadcast_catches_up_from_the_ring_in_order() {
    let (settings, _trigger) = settings(Duration::from_secs(3600));
    let mut stream = ClientStream::start(settings.clone(), opening());
    next(&mut stream, 2).await;
    // Ten events into a broadcast that holds four: the receiver has lagged.
    let expected = publish(&settings, 1..=10);
    assert_eq!(next(&mut stream, 10).await, expected);
    assert_eq!(settings.metrics.lag_resyncs.get(), 1);
    assert_eq!(settings.metrics.replayed_from_ring.get(), 10);
    // Back to live, with the copies still in the receiver skipped.
    let later = publish(&settings, 11..=11);
    assert_eq!(next(&mut stream, 1).await, later);
}

/// Publishes events `ids` of 20,000 bytes of data each (the ring holds three of them) and
/// returns their messages.
fn publish_large(settings: &Settings, ids: std::ops::RangeInclusive<i64>) -> Vec<String> {
    let mut expected = Vec::new();
    for id in ids {
        let data = format!("\"{}\"", "x".repeat(19_998));
        let frame = Frame::render(id, "big", &data, None);
        expected.push(event(&frame).to_string());
        settings.hub.publish(frame);
    }
    expected
}

#[tokio::test]
async fn a_client_that_reaches_a_large_event_the_ring_let_go_reads_it_from_history() {
    let (settings, _trigger) = settings(Duration::from_secs(3600));
    let mut stream = ClientStream::start(settings.clone(), opening());
    next(&mut stream, 2).await;
    // Four events into a broadcast of four: no lag there, but the ring let event 1 go.
    publish_large(&settings, 1..=4);
    assert_eq!(settings.hub.position().floor, 1);
    // Not event 2: event 1 must come first, from the table (which these settings never
    // reach).
    let waiting = next(&mut stream, 1).await;
    assert_eq!(
        waiting,
        [": waiting for the database to replay history\n\n"]
    );
    assert_eq!(settings.metrics.lag_resyncs.get(), 1);
}

#[tokio::test]
async fn a_large_event_gone_from_the_ring_that_a_client_already_has_is_skipped() {
    let (settings, _trigger) = settings(Duration::from_secs(3600));
    let resuming = Opening {
        last_event_id: Some(1),
        ..opening()
    };
    let mut stream = ClientStream::start(settings.clone(), resuming);
    let published = publish_large(&settings, 1..=4);
    next(&mut stream, 2).await;
    assert_eq!(next(&mut stream, 3).await, published[1..]);
    let live = publish_large(&settings, 5..=5);
    assert_eq!(next(&mut stream, 1).await, live);
    assert_eq!(settings.metrics.lag_resyncs.get(), 0);
}

#[tokio::test]
async fn a_client_behind_for_too_long_is_disconnected_to_resume() {
    let (settings, _trigger) = settings(Duration::ZERO);
    let mut stream = ClientStream::start(settings.clone(), opening());
    next(&mut stream, 2).await;
    publish(&settings, 1..=10);
    assert!(stream.next_event().await.is_none());
    assert_eq!(settings.metrics.forced_disconnects.get(), 1);
}

#[tokio::test]
async fn a_new_stream_with_history_replays_the_last_ids_then_follows_live_ones() {
    let (settings, _trigger) = settings(Duration::from_secs(3600));
    let published = publish(&settings, 1..=10);
    let with_history = Opening {
        history: 3,
        ..opening()
    };
    let mut stream = ClientStream::start(settings.clone(), with_history);
    let opening = next(&mut stream, 2).await;
    assert_eq!(opening[0], ": pgsse stream open\nid:7\nretry:2000\n\n");
    assert_eq!(next(&mut stream, 3).await, published[7..]);
    let live = publish(&settings, 11..=11);
    assert_eq!(next(&mut stream, 1).await, live);
}

#[tokio::test]
async fn an_enveloped_stream_names_no_event_and_carries_each_kind_in_its_data() {
    let (settings, _trigger) = settings(Duration::from_secs(3600));
    let enveloped = Opening {
        envelope: true,
        ..opening()
    };
    let mut stream = ClientStream::start(settings.clone(), enveloped);
    let opening = next(&mut stream, 2).await;
    assert!(
        opening[1].starts_with("data:{\"kind\":\"connection\",\"data\":{\"client_id\":"),
        "{}",
        opening[1]
    );
    publish(&settings, 1..=1);
    settings.hub.pruned(5);
    let got = next(&mut stream, 2).await;
    assert_eq!(
        got[0],
        "data:{\"kind\":\"newBoard\",\"data\":{\"board_id\":1}}\nid:1\n\n"
    );
    assert!(
        got[1].starts_with("data:{\"kind\":\"resync\",\"data\":{\"reason\":\"pruned\""),
        "{}",
        got[1]
    );
    assert!(got.iter().chain(&opening).all(|m| !m.contains("event:")));
}
