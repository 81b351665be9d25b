//! Debian's real nginx in front of gateways, run with the repository's recipe
//! (`deploy/nginx.conf`) as it is but for the addresses, port and certificate of the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::WAIT;

/// The recipe, as users copy it.
pub const RECIPE: &str = include_str!("../../../deploy/nginx.conf");

pub struct Nginx {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Runs the recipe in front of `gateways` on a free loopback port, with `cert` and `key`.
    pub async fn start(gateways: &[SocketAddr], cert: &Path, key: &Path, dir: &Path) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let servers: String = gateways
            .iter()
            .map(|g| format!("    server {g};\n"))
            .collect();
        let replacements = [
            (
                "    server 127.0.0.1:8001;\n    server 127.0.0.1:8002;\n    server 127.0.0.1:8003;\n",
                servers,
            ),
            (
                "listen 443 ssl http2;",
                format!("listen 127.0.0.1:{port} ssl http2;"),
            ),
            ("/etc/ssl/pgsse/cert.pem", cert.display().to_string()),
            ("/etc/ssl/pgsse/key.pem", key.display().to_string()),
        ];
        let mut conf = RECIPE.to_owned();
        for (example, real) in replacements {
            assert!(
                conf.contains(example),
                "the recipe no longer has {example:?}"
            );
            conf = conf.replace(example, &real);
        }
        // Debian's log directory, wherever the recipe names it, is the test's.
        let conf = conf.replace("/var/log/nginx/", &format!("{}/", dir.display()));
        std::fs::write(dir.join("pgsse.conf"), conf).unwrap();
        let d = dir.display();
        // What Debian's /etc/nginx/nginx.conf would give (its access log in the default
        // format included), kept inside the test's directory.
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             {user}events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/pgsse.conf;\n}}\n",
            user = if is_root() { "user root;\n" } else { "" },
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let child = Command::new(program())
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts (make test installs it)");
        super::after_exit(&format!("kill {} 2>/dev/null", child.id()));
        // Owned from here on, so that nginx is ended if it never listens.
        let nginx = Nginx {
            port,
            child,
            dir: dir.to_owned(),
        };
        let up = async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(WAIT, up).await.is_err() {
            panic!("nginx did not listen on {port}: {}", nginx.log());
        }
        nginx
    }

    /// nginx's own address for clients.
    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// What nginx logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// nginx's access log: a line for each request that has ended.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM, nginx's fast shutdown, in which the master ends its workers (SIGKILL would end
    /// the master alone and leave its workers serving); SIGKILL if it has not exited within
    /// [`WAIT`].
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child, not yet reaped, so the pid is still its.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + WAIT;
            while std::time::Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx on PATH, or where Debian puts it.
fn program() -> &'static str {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("nginx").is_file()));
    if on_path {
        "nginx"
    } else {
        "/usr/sbin/nginx"
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
