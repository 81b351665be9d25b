//! The requests that exercise each documented status: written out for the successes and the
//! errors that need data, derived from the description for the rest (a body's 400, 408, 413 and
//! 415, a missing token's 401, HEAD from GET, 503 from a gateway without its database).

use serde_json::{json, Value};

use super::Doc;

/// One request, and the status the description says it gets.
#[derive(Clone)]
pub struct Probe {
    pub method: &'static str,
    /// The path as the description names it (`/api/users/{id}`).
    pub template: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub status: u16,
    /// Which gateway it is sent to.
    pub gateway: Gateway,
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Gateway {
    /// Authentication and demo tokens on, a one-second body timeout.
    Main,
    /// The same settings without demo tokens, and no database.
    Unready,
    /// One connection at most (`MAX_CONNECTIONS`), held by a stream the test opened.
    Full,
}

/// Ids of rows the probes refer to.
pub struct Rows {
    pub user: i64,
    pub board: i64,
    pub path: i64,
}

pub fn probe(method: &'static str, template: &'static str, url: &str, status: u16) -> Probe {
    Probe {
        method,
        template,
        url: url.to_owned(),
        headers: Vec::new(),
        body: None,
        status,
        gateway: Gateway::Main,
    }
}

impl Probe {
    pub fn json(mut self, body: Value) -> Probe {
        self.body = Some(serde_json::to_vec(&body).unwrap());
        self.header("Content-Type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Probe {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn bearer(self, token: &str) -> Probe {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    fn on(mut self, gateway: Gateway) -> Probe {
        self.gateway = gateway;
        self
    }
}

/// The probes written out: each documented success, and each error that needs data to provoke.
pub fn written(rows: &Rows, admin: &str, user: &str) -> Vec<Probe> {
    let mut probes = users(rows);
    probes.extend(boards(rows));
    probes.extend(paths(rows));
    probes.extend(events(admin, user));
    probes.extend(probes_and_document());
    probes
}

fn users(rows: &Rows) -> Vec<Probe> {
    let user = format!("/api/users/{}", rows.user);
    vec![
        probe("POST", "/api/users", "/api/users", 201).json(json!({"username": "bob"})),
        probe("POST", "/api/users", "/api/users", 400).json(json!({"username": " "})),
        probe("POST", "/api/users", "/api/users", 409).json(json!({"username": "alice"})),
        probe("GET", "/api/users/{id}", &user, 200),
        probe("GET", "/api/users/{id}", "/api/users/999999", 404),
    ]
}

fn boards(rows: &Rows) -> Vec<Probe> {
    let board = format!("/api/boards/{}", rows.board);
    let new = json!({"name": "grid", "creator": "alice", "rows": 3, "cols": 4, "dots": [[0, 0]]});
    vec![
        probe("POST", "/api/boards", "/api/boards", 201).json(new),
        probe("POST", "/api/boards", "/api/boards", 422)
            .json(json!({"name": "grid", "creator": "nobody"})),
        probe("GET", "/api/boards", "/api/boards?limit=2", 200),
        probe("GET", "/api/boards", "/api/boards?limit=0", 400),
        probe("GET", "/api/boards/{id}", &board, 200),
        probe("GET", "/api/boards/{id}", "/api/boards/999999", 404),
    ]
}

fn paths(rows: &Rows) -> Vec<Probe> {
    let t = "/api/boards/{id}/paths";
    let on_board = format!("/api/boards/{}/paths", rows.board);
    let path = json!({"user": "alice", "points": [[0, 0], [1, 1]]});
    vec![
        probe("POST", t, &on_board, 201).json(path.clone()),
        probe("POST", t, "/api/boards/999999/paths", 404).json(path),
        probe("POST", t, &on_board, 422).json(json!({"user": "nobody", "points": [[0, 0]]})),
        probe("GET", t, &on_board, 200),
        probe("GET", t, &format!("{on_board}?after=-1"), 400),
        probe("GET", t, "/api/boards/999999/paths", 404),
        probe(
            "GET",
            "/api/paths/{id}",
            &format!("/api/paths/{}", rows.path),
            200,
        ),
        probe("GET", "/api/paths/{id}", "/api/paths/999999", 404),
    ]
}

fn events(admin: &str, user: &str) -> Vec<Probe> {
    let (send, clients, token) = ("/api/sse/send", "/api/sse/clients", "/api/demo/token");
    let stream = "/sse/notifications/";
    vec![
        probe("POST", send, send, 202)
            .bearer(admin)
            .json(json!({"type": "hello"})),
        probe("POST", send, send, 403)
            .bearer(user)
            .json(json!({"type": "hello"})),
        probe("POST", send, send, 422)
            .bearer(admin)
            .json(json!({"type": "hello", "target": {"userId": 999999}})),
        probe("GET", clients, clients, 200).bearer(admin),
        probe("GET", clients, clients, 403).bearer(user),
        probe("GET", clients, clients, 400)
            .bearer(admin)
            .bearer(admin),
        probe("POST", token, token, 200).json(json!({"username": "alice"})),
        probe("POST", token, token, 404)
            .json(json!({"username": "alice"}))
            .on(Gateway::Unready),
        probe("DELETE", token, token, 204).bearer(user),
        probe("DELETE", token, token, 400).bearer(user).bearer(user),
        probe("DELETE", token, token, 403)
            .header("Cookie", &format!("pgsse_token={user}"))
            .header("Origin", "http://elsewhere.example"),
        probe("GET", stream, &format!("{stream}?access_token={user}"), 200),
        probe(
            "GET",
            stream,
            &format!("{stream}?access_token={user}&board_id=x"),
            400,
        ),
        probe("GET", stream, stream, 401),
        probe("GET", stream, &format!("{stream}?access_token={user}"), 503).on(Gateway::Full),
    ]
}

fn probes_and_document() -> Vec<Probe> {
    vec![
        probe("GET", "/healthz", "/healthz", 200),
        probe("GET", "/readyz", "/readyz", 200),
        probe("GET", "/readyz", "/readyz", 503).on(Gateway::Unready),
        probe("GET", "/metrics", "/metrics", 200),
        probe("GET", "/api/openapi.json", "/api/openapi.json", 200),
        probe("GET", "/api/events", "/api/events", 200),
    ]
}

/// The probes the description implies, given the written ones.
pub fn derived(doc: &Doc, written: &[Probe], admin: &str) -> Vec<Probe> {
    let mut probes = Vec::new();
    for probe in written.iter().filter(|p| p.gateway == Gateway::Main) {
        let op = doc.operation(probe.template, probe.method);
        let success = (200..300).contains(&probe.status);
        if op["requestBody"].is_object() && success {
            probes.extend(body_errors(probe, admin));
        }
        if doc.requires_token(op) && success {
            let mut anonymous = probe.clone();
            anonymous
                .headers
                .retain(|(name, _)| name != "Authorization");
            anonymous.status = 401;
            probes.push(anonymous);
        }
        let written_503 = written
            .iter()
            .any(|p| (p.template, p.method, p.status) == (probe.template, probe.method, 503));
        if doc.lists(probe.template, probe.method, 503) && success && !written_503 {
            let mut unready = probe.clone().on(Gateway::Unready);
            unready.status = 503;
            probes.push(unready);
        }
    }
    let heads: Vec<Probe> = written
        .iter()
        .chain(&probes)
        .filter(|p| p.method == "GET")
        .map(|p| Probe {
            method: "HEAD",
            ..p.clone()
        })
        .collect();
    probes.extend(heads);
    probes
}

/// A body's own errors, for a request whose body is accepted.
fn body_errors(good: &Probe, admin: &str) -> Vec<Probe> {
    let base = Probe {
        headers: Vec::new(),
        body: None,
        ..good.clone()
    };
    let with = |status: u16, headers: &[(&str, &str)], body: Option<&[u8]>| {
        let mut probe = base.clone().bearer(admin);
        for (name, value) in headers {
            probe = probe.header(name, value);
        }
        probe.body = body.map(<[u8]>::to_vec);
        probe.status = status;
        probe
    };
    let json = ("Content-Type", "application/json");
    vec![
        with(400, &[json], Some(b"{")),
        // A declared length the client never sends: the body timeout (one second) runs out.
        with(408, &[json, ("Content-Length", "10")], None),
        // A declared length over the limit is refused before a byte is read.
        with(413, &[json, ("Content-Length", "70000")], None),
        with(415, &[("Content-Type", "text/plain")], Some(b"{}")),
    ]
}
