//! HTTPS for the tests: certificates made on the spot, and curl as the TLS client (it speaks
//! HTTP/2 and HTTP/1.1 over TLS, as browsers do).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

use super::WAIT;

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
pub async fn curl(args: &[&str]) -> String {
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

/// A stream read through curl, line by line.
pub struct CurlStream {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl CurlStream {
    /// `curl -skN` with `args`, its output read as it comes (`-i` shows the status line first).
    pub fn open(args: &[&str]) -> CurlStream {
        let mut child = Command::new("curl")
            .arg("-skN")
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("curl runs");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        CurlStream {
            _child: child,
            lines,
        }
    }

    /// The next line that contains `needle`, waiting at most [`WAIT`].
    pub async fn line_with(&mut self, needle: &str) -> String {
        let find = async {
            while let Some(line) = self.lines.next_line().await.expect("read curl's output") {
                if line.contains(needle) {
                    return line;
                }
            }
            panic!("the stream ended before a line with {needle:?}");
        };
        timeout(WAIT, find)
            .await
            .unwrap_or_else(|_| panic!("no line with {needle:?} within {WAIT:?}"))
    }
}
