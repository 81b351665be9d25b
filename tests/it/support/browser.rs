//! A real browser for the tests: headless Chromium, driven over WebDriver by chromedriver, both
//! from Debian's `chromium` and `chromium-driver` packages (`make test` installs them). Nothing
//! is downloaded at run time.
//!
//! WebDriver is JSON over HTTP, and the few commands the tests need (open a page, run a script,
//! type, click, take a screenshot) are spoken here with the harness's own HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::{sleep, timeout, Instant};

use super::http::{self, WAIT};

/// Chromium's flags for running headless as root in a container, with nothing fetched in the
/// background; the profile directory is added per browser.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-crash-reporter",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// The key WebDriver gives an element reference under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One headless Chromium with its own chromedriver and a fresh profile.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    /// Holds the profile and chromedriver's log; deleted when the browser is dropped. Every
    /// process of this browser (chromedriver, Chromium and its helpers) names it on its command
    /// line, which is how they are found to be ended.
    dir: PathBuf,
}

impl Browser {
    pub async fn start() -> Browser {
        static BROWSERS: AtomicUsize = AtomicUsize::new(0);
        let n = BROWSERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pgsse-browser-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the browser directory");
        let (driver, port) = start_driver(&dir).await;
        let mut browser = Browser {
            driver,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
            dir,
        };
        browser.watch_for_exit();
        browser.open_session().await;
        browser
    }

    async fn open_session(&mut self) {
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            self.dir.join("profile").display()
        ));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // The HTTPS tests' certificates are made by the tests themselves.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": program("chromium"), "args": args},
            "timeouts": {"script": WAIT.as_millis() as u64, "pageLoad": WAIT.as_millis() as u64},
        }}});
        let created = self.command("POST", "/session", Some(capabilities)).await;
        self.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
    }

    /// Opens `url` and waits until the page has loaded.
    pub async fn goto(&self, url: &str) {
        self.session_command("POST", "/url", json!({ "url": url }))
            .await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page; its return value.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        let body = json!({"script": script, "args": args});
        self.session_command("POST", "/execute/sync", body).await
    }

    /// Polls `script` until it returns something other than `null` or `false`, and returns that.
    /// Gives up after [`WAIT`], saving a screenshot and showing the page's text.
    pub async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.eval(script, args.clone()).await;
            if !value.is_null() && value != json!(false) {
                return value;
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("failed-{}", slug(what))).await;
                let text = self.eval("return document.body.innerText", json!([])).await;
                panic!(
                    "waited {WAIT:?} for {what}; the page shows:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element matching `css` shows text containing `needle`; returns its text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let script = "const el = document.querySelector(arguments[0]);
            return el && el.innerText.includes(arguments[1]) ? el.innerText : null;";
        let what = format!("{css} to show {needle:?}");
        let text = self.wait_for(&what, script, json!([css, needle])).await;
        text.as_str().unwrap().to_owned()
    }

    /// Waits until a child of the element matching `list` shows `needle`; returns that child's text.
    pub async fn wait_for_item(&self, list: &str, needle: &str) -> String {
        let script = "const items = document.querySelectorAll(arguments[0] + ' > *');
            const item = [...items].find((el) => el.innerText.includes(arguments[1]));
            return item ? item.innerText : null;";
        let what = format!("an item of {list} showing {needle:?}");
        let text = self.wait_for(&what, script, json!([list, needle])).await;
        text.as_str().unwrap().to_owned()
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let text = self
            .session_command("GET", &format!("/element/{element}/text"), Value::Null)
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Replaces what the field matching `css` holds by typing `text`, as a person would.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.session_command("POST", &format!("/element/{element}/clear"), json!({}))
            .await;
        self.session_command(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.session_command("POST", &format!("/element/{element}/click"), json!({}))
            .await;
    }

    /// Opens a new window (a tab) and switches to it; returns the handle of the one left.
    pub async fn open_window(&self) -> String {
        let current = self.session_command("GET", "/window", Value::Null).await;
        let created = self
            .session_command("POST", "/window/new", json!({"type": "tab"}))
            .await;
        self.switch_to(created["handle"].as_str().expect("a window handle"))
            .await;
        current.as_str().expect("a window handle").to_owned()
    }

    /// The handle of the window in use.
    pub async fn window(&self) -> String {
        let current = self.session_command("GET", "/window", Value::Null).await;
        current.as_str().expect("a window handle").to_owned()
    }

    pub async fn switch_to(&self, handle: &str) {
        self.session_command("POST", "/window", json!({ "handle": handle }))
            .await;
    }

    /// Resizes the window, e.g. to a phone's 390 × 844.
    pub async fn resize(&self, width: u32, height: u32) {
        let rect = json!({"width": width, "height": height});
        self.session_command("POST", "/window/rect", rect).await;
    }

    /// Saves what the window shows as `target/screenshots/{name}.png`, for a person to look at.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .session_command("GET", "/screenshot", Value::Null)
            .await;
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, base64_decode(png.as_str().expect("base64 PNG")))
            .expect("write the screenshot");
        path
    }

    async fn find(&self, css: &str) -> String {
        let body = json!({"using": "css selector", "value": css});
        let found = self.session_command("POST", "/element", body).await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    async fn session_command(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = (!body.is_null()).then_some(body);
        self.command(method, &path, body).await
    }

    /// One WebDriver command; its `value`, or a panic with the driver's error.
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        let exchange = driver_request(self.addr, method, path, body.as_deref());
        let (status, mut answer) = timeout(WAIT, exchange)
            .await
            .unwrap_or_else(|_| panic!("WebDriver {method} {path}: no answer within {WAIT:?}"));
        if status != 200 {
            panic!("WebDriver {method} {path}: {status} {answer}");
        }
        answer["value"].take()
    }

    /// Starts a process that, if this test process dies without dropping the browser, ends
    /// every process of this browser and deletes its directory.
    fn watch_for_exit(&self) {
        super::after_exit(&format!(
            "for p in /proc/[0-9]*; do \
               pid=${{p#/proc/}}; [ \"$pid\" = \"$$\" ] && continue; \
               grep -qF '{dir}' $p/cmdline 2>/dev/null && kill -9 $pid; \
             done; rm -rf '{dir}'",
            dir = self.dir.display(),
        ));
    }
}

impl Drop for Browser {
    /// Closes the session (chromedriver then quits Chromium), ends chromedriver, and ends
    /// whatever is left of the browser, even when the session never opened.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            delete_session(self.addr, &self.session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        end_processes_of(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Ends every process whose command line names `dir` (this browser's own directory).
fn end_processes_of(dir: &Path) {
    let needle = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Sends one request to chromedriver and reads its JSON answer. chromedriver says
/// `Connection: close` but keeps the socket open, so the body is read by its `Content-Length`.
async fn driver_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> (u16, Value) {
    let mut socket = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to chromedriver");
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.expect("write");
    socket.write_all(body).await.expect("write");
    let mut reader = BufReader::new(socket);
    let (status, headers) = http::read_head(&mut reader)
        .await
        .expect("chromedriver answers");
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .expect("chromedriver sends a Content-Length");
    let mut answer = vec![0; length];
    reader
        .read_exact(&mut answer)
        .await
        .expect("read the answer");
    let answer = serde_json::from_slice(&answer)
        .unwrap_or_else(|e| panic!("chromedriver's answer is not JSON ({e})"));
    (status, answer)
}

/// Starts chromedriver on a free port (it picks one for `--port=0` and prints it).
async fn start_driver(dir: &Path) -> (Child, u16) {
    let mut driver = Command::new(program("chromedriver"))
        .arg("--port=0")
        .arg(format!(
            "--log-path={}",
            dir.join("chromedriver.log").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let mut stdout = driver.stdout.take().expect("piped stdout");
    let (port_tx, port_rx) = mpsc::channel();
    // Reads the announcement, then keeps draining stdout so chromedriver never blocks on it.
    std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buf = [0; 1024];
        let mut port_tx = Some(port_tx);
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if let Some(tx) = &port_tx {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                if let Some(port) = announced_port(&seen) {
                    let _ = tx.send(port);
                    port_tx = None;
                }
            }
        }
    });
    let port = tokio::task::spawn_blocking(move || port_rx.recv_timeout(WAIT))
        .await
        .unwrap();
    let Ok(port) = port else {
        let _ = driver.kill();
        let _ = driver.wait();
        panic!("chromedriver did not say its port within {WAIT:?}");
    };
    (driver, port)
}

/// The port in "ChromeDriver was started successfully on port 43215."
fn announced_port(output: &str) -> Option<u16> {
    let rest = output.split("successfully on port ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (rest.len() > digits.len())
        .then(|| digits.parse().ok())
        .flatten()
}

/// Ends a WebDriver session with a plain blocking request (this runs in `Drop`, outside async).
/// Only the status line is awaited: chromedriver leaves the connection open.
fn delete_session(addr: SocketAddr, session: &str) {
    let attempt = || -> std::io::Result<()> {
        let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        socket.set_read_timeout(Some(Duration::from_secs(10)))?;
        socket.set_write_timeout(Some(Duration::from_secs(2)))?;
        write!(
            socket,
            "DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
        )?;
        let _status_line = socket.read(&mut [0; 64])?;
        Ok(())
    };
    let _ = attempt();
}

/// The full path of a program on PATH, or a panic saying how to install it.
fn program(name: &str) -> String {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed; `make test` installs it (Debian: apt-get install \
                 chromium chromium-driver)"
            )
        })
}

/// `target/screenshots`, beside the directory cargo gives integration tests for their files.
fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("screenshots")
}

fn slug(text: &str) -> String {
    let slug: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    slug.chars().take(60).collect()
}

/// Decodes standard base64 (how WebDriver sends screenshots).
fn base64_decode(text: &str) -> Vec<u8> {
    let digit = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let digits: Vec<u32> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(digit)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.chunks(4) {
        let bits = group
            .iter()
            .enumerate()
            .fold(0u32, |bits, (i, d)| bits | d << (18 - 6 * i));
        out.extend_from_slice(&bits.to_be_bytes()[1..group.len()]);
    }
    out
}

#[test]
fn base64_and_the_driver_announcement_are_read_correctly() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(
        announced_port(
            "Starting ChromeDriver on port 0\nChromeDriver was started successfully on port 43215."
        ),
        Some(43215)
    );
    assert_eq!(
        announced_port("ChromeDriver was started successfully on port 432"),
        None
    );
}
