//! HTTPS with HTTP/2: a certificate made by the test, real TLS clients (curl), and startup errors
//! that name the file at fault.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use pgsse::{App, Config};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::timeout;

use crate::support::{fresh_database, insert_board, pg, spawn_app_unready, WAIT};

/// A self-signed certificate for 127.0.0.1 and localhost, and its key, written under `dir`.
pub fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

/// A directory of this test's own, removed first if a previous run left it.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pgsse-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `curl` with `args`, its output as text.
async fn curl(args: &[&str]) -> String {
    let out = timeout(
        WAIT,
        tokio::process::Command::new("curl").args(args).output(),
    )
    .await
    .expect("curl in time")
    .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `{base}/readyz` answers 200 over HTTPS.
pub async fn wait_ready(base: &str) {
    let ready = format!("{base}/readyz");
    let poll = async {
        while curl(&["-sk", "-o", "/dev/null", "-w", "%{http_code}", &ready]).await != "200" {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    timeout(WAIT, poll).await.expect("the gateway gets ready");
}

#[tokio::test]
async fn https_speaks_http2_and_http1_and_streams_over_both() {
    let dir = scratch("tls");
    let (cert, key) = certificate(&dir);
    let url = fresh_database(pg::shared()).await;
    let app = spawn_app_unready(
        &url,
        &[
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    )
    .await;
    let base = format!("https://127.0.0.1:{}", app.addr.port());
    wait_ready(&base).await;
    let health = format!("{base}/healthz");
    let how = [
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
    ];
    let h2 = curl(&[&how[..], &["--http2", &health]].concat()).await;
    assert_eq!(h2, "2 200");
    let h1 = curl(&[&how[..], &["--http1.1", &health]].concat()).await;
    assert_eq!(h1, "1.1 200");
    // Plain HTTP on the HTTPS port is not served.
    let plain = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{}/healthz", app.addr.port()),
    ])
    .await;
    assert_eq!(plain, "000");

    for version in ["--http2", "--http1.1"] {
        let mut stream = tokio::process::Command::new("curl")
            .args(["-skN", version, &format!("{base}/sse/notifications/")])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(stream.stdout.take().unwrap()).lines();
        let opened = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("event:connection") {
                    return;
                }
            }
            panic!("the stream ended before opening");
        };
        timeout(WAIT, opened).await.expect("the stream opens");
        let name = format!("over {version}");
        insert_board(&app.sql().await, "alice", &name).await;
        let received = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains(&name) {
                    return line;
                }
            }
            panic!("the stream ended before the board");
        };
        let line = timeout(WAIT, received).await.expect("the board arrives");
        assert!(line.starts_with("data:"), "{line}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_missing_or_mismatched_certificate_or_key_stops_startup_naming_it() {
    let dir = scratch("tls-errors");
    let (cert, key) = certificate(&dir.join("one"));
    let (_, other_key) = certificate(&dir.join("two"));
    let url = fresh_database(pg::shared()).await;
    let start = |cert: &str, key: &str| {
        let vars = [
            ("DATABASE_URL", url.clone()),
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("TLS_CERT_FILE", cert.to_owned()),
            ("TLS_KEY_FILE", key.to_owned()),
        ];
        async move {
            let config = Config::from_lookup(|name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            })
            .map_err(|e| e.to_string())?;
            App::build(config)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    let (cert, key, other_key) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        other_key.to_str().unwrap(),
    );
    let missing = dir.join("nowhere.pem");
    let missing = missing.to_str().unwrap();
    let cases = [
        (missing, key, "TLS_CERT_FILE="),
        (cert, missing, "TLS_KEY_FILE="),
        (key, key, "TLS_CERT_FILE="),
        (cert, other_key, "does not go with TLS_CERT_FILE"),
        (cert, "", "HTTPS needs TLS_KEY_FILE as well"),
        ("", key, "HTTPS needs TLS_CERT_FILE as well"),
    ];
    for (cert, key, says) in cases {
        let err = start(cert, key).await.expect_err("startup fails");
        assert!(err.contains(says), "{cert} {key}: {err}");
    }
    assert!(start(cert, key).await.is_ok());
    let _ = std::fs::remove_dir_all(dir);
}
