//! The benchmark in miniature: a few hundred clients, a few seconds of rows. Only delivery is
//! asserted (every row reaches every client once, in order); figures belong to `make bench`.

use std::time::Duration;

use pgsse::bench::{run_load, Load, Target};
use tokio::time::timeout;

use crate::support::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_clients_and_twenty_stalled_ones_receive_every_row_once_and_in_order() {
    let app = spawn_app().await;
    let target = Target {
        gateway: app.addr,
        database_url: app.database_url.clone(),
    };
    let mut load = Load::new(300, 100.0, 2.0);
    load.stalled = 20;
    // From the default address, so that the test needs no loopback aliases.
    load.sources = 0;
    let report = timeout(Duration::from_secs(60), run_load(&target, &load, |_| {}))
        .await
        .expect("the load finishes in time")
        .expect("the load runs");
    assert_eq!((report.clients_held, report.clients_failed), (300, 0));
    assert_eq!(report.rows_written, 200);
    let gateway = &report.gateway;
    assert_eq!(gateway.expected, 300 * 200);
    assert_eq!(
        (
            gateway.lost,
            gateway.duplicated,
            gateway.out_of_order,
            gateway.foreign
        ),
        (0, 0, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.floor.lost, 0, "{report:?}");
    assert_eq!(report.streams_ended, 0);
    // The stalled clients read nothing until the others had every row, then got them all.
    let stalled = report
        .stalled
        .as_ref()
        .expect("a report on the stalled clients");
    assert_eq!((stalled.clients_held, stalled.clients_failed), (20, 0));
    assert_eq!(stalled.received_before_resuming, 0);
    let d = &stalled.deliveries;
    assert_eq!(d.expected, 20 * 200);
    assert_eq!(
        (d.received, d.lost, d.duplicated, d.out_of_order, d.foreign),
        (20 * 200, 0, 0, 0, 0),
        "{report:?}"
    );
    assert_eq!(stalled.streams_ended, 0);
}
