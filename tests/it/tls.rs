//! HTTPS with HTTP/2: a certificate made by the test, real TLS clients (curl), and startup errors
//! that name the file at fault.

use pgsse::{App, Config};

use crate::support::tls::{certificate, curl, scratch, wait_ready, CurlStream};
use crate::support::{fresh_database, insert_board, pg, spawn_app_unready};

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
        let mut stream = CurlStream::open(&[version, &format!("{base}/sse/notifications/")]);
        stream.line_with("event:connection").await;
        let name = format!("over {version}");
        insert_board(&app.sql().await, "alice", &name).await;
        let line = stream.line_with(&name).await;
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

#[tokio::test]
async fn over_https_the_demo_token_cookie_is_secure_so_a_browser_never_sends_it_over_plain_http() {
    let dir = scratch("tls-cookie");
    let (cert, key) = certificate(&dir);
    let url = fresh_database(pg::shared()).await;
    let app = spawn_app_unready(
        &url,
        &[
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
            (
                "AUTH_JWT_SECRET",
                "a test secret that is long enough for HS256",
            ),
            ("DEMO_TOKENS", "1"),
        ],
    )
    .await;
    let base = format!("https://127.0.0.1:{}", app.addr.port());
    wait_ready(&base).await;
    let endpoint = format!("{base}/api/demo/token");
    // The response's head, one line each; the body is left out.
    let head = |method: &'static str, body: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            let args = [
                "-sk",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "-X",
                method,
                "-H",
                "Content-Type: application/json",
                "--data",
                body,
                &endpoint,
            ];
            curl(&args).await
        }
    };
    let set_cookie = |head: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix("set-cookie: "))
            .unwrap_or_else(|| panic!("no cookie in {head}"))
            .trim_end()
            .to_owned()
    };
    let signed_in = head("POST", r#"{"username": "alice"}"#).await;
    let cookie = set_cookie(&signed_in);
    assert!(cookie.starts_with("pgsse_token="), "{cookie}");
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert!(attributes.contains(&"HttpOnly"), "{cookie}");
    assert!(attributes.contains(&"Secure"), "{cookie}");
    let signed_out = head("DELETE", "").await;
    let cleared = set_cookie(&signed_out);
    assert!(cleared.starts_with("pgsse_token=;"), "{cleared}");
    assert!(cleared.split("; ").any(|a| a == "Secure"), "{cleared}");
    let _ = std::fs::remove_dir_all(dir);
}
