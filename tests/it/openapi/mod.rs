//! The API's description at `/api/openapi.json`, walked: every route it lists answers the
//! methods, statuses and bodies it claims, and every route of the gateway under `/api/` is in it.

mod probes;

use std::collections::{BTreeMap, BTreeSet};

use pgsse::auth::{Claims, Verifier};
use serde_json::{json, Value};

use self::probes::{Gateway, Probe, Rows};
use crate::support::http::{request, Response};
use crate::support::sse::SseClient;
use crate::support::{pg, spawn_app_unready, spawn_app_with, TestApp};

const SECRET: &str = "a test secret that is long enough for HS256";
const SETTINGS: &[(&str, &str)] = &[
    ("AUTH_JWT_SECRET", SECRET),
    ("DEMO_TOKENS", "1"),
    ("BODY_READ_TIMEOUT_SECS", "1"),
];
/// The methods a 405 is looked for with.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// The description, as the gateway serves it.
pub struct Doc(Value);

impl Doc {
    fn paths(&self) -> &serde_json::Map<String, Value> {
        self.0["paths"]
            .as_object()
            .expect("the description has paths")
    }

    pub fn operation(&self, template: &str, method: &str) -> &Value {
        let op = &self.0["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "the description has no {method} {template}");
        op
    }

    /// The statuses listed for an operation.
    fn statuses(&self, template: &str, method: &str) -> BTreeSet<u16> {
        let responses = self.operation(template, method)["responses"].as_object();
        let codes = responses.expect("an operation lists its responses").keys();
        codes
            .map(|code| code.parse().expect("a numeric status"))
            .collect()
    }

    pub fn lists(&self, template: &str, method: &str, status: u16) -> bool {
        self.statuses(template, method).contains(&status)
    }

    /// Whether an operation needs a token (its security does not include the empty requirement).
    pub fn requires_token(&self, op: &Value) -> bool {
        op["security"].as_array().is_some_and(|ways| {
            !ways
                .iter()
                .any(|w| w.as_object().is_some_and(|w| w.is_empty()))
        })
    }

    /// Each documented path as `ALLOWED` writes it, with its methods.
    fn routes(&self) -> BTreeMap<String, BTreeSet<String>> {
        let routes = self.paths().iter().map(|(path, item)| {
            let methods = item.as_object().unwrap().keys().map(|m| m.to_uppercase());
            (pattern(path), methods.collect())
        });
        routes.collect()
    }

    /// Checks a response against what the description lists for its status.
    fn check(&self, probe: &Probe, response: &Response) {
        let what = format!("{} {} ({:?})", probe.method, probe.url, probe.gateway);
        assert_eq!(response.status, probe.status, "{what}: {}", response.text());
        let listed = &self.operation(probe.template, probe.method)["responses"]
            [probe.status.to_string()]["content"];
        let Some((kind, media)) = listed.as_object().and_then(|c| c.iter().next()) else {
            assert!(
                response.body.is_empty(),
                "{what}: a body where none is listed"
            );
            return;
        };
        assert_eq!(
            response.header("content-type"),
            Some(kind.as_str()),
            "{what}"
        );
        if kind == "application/json" {
            self.validate(&what, &media["schema"], &response.json());
        }
    }

    /// Validates a body with the schema the description gives it (and the schemas it refers to).
    fn validate(&self, what: &str, schema: &Value, body: &Value) {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.0["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::validator_for(&root).expect("the schema compiles");
        if let Err(err) = validator.validate(body) {
            panic!("{what}: the body does not match its schema: {err}\n{body}");
        }
    }
}

/// A documented path written as in `ALLOWED`: no trailing slash, `*` for a parameter.
fn pattern(path: &str) -> String {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segments = path.split('/').map(|s| match s.starts_with('{') {
        true => "*",
        false => s,
    });
    segments.collect::<Vec<_>>().join("/")
}

/// The gateway's routes under `/api/`, and the others the description says it covers.
fn allowed(covered: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let routes = pgsse::http::ALLOWED.iter();
    let described =
        routes.filter(|(path, _)| path.starts_with("/api/") || covered.contains_key(*path));
    described
        .map(|(path, methods)| {
            (
                path.to_string(),
                methods.split(", ").map(str::to_owned).collect(),
            )
        })
        .collect()
}

fn token(user: &str, role: Option<&str>) -> String {
    Verifier::new(SECRET).sign(&Claims {
        sub: user.into(),
        role: role.map(Into::into),
        exp: pgsse::auth::now() + 3600,
        nbf: None,
    })
}

async fn fetch(app: &TestApp) -> Doc {
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let doc = response.json();
    assert_eq!(doc["openapi"], "3.1.0");
    Doc(doc)
}

#[tokio::test]
async fn the_description_lists_every_api_route_with_the_methods_it_takes() {
    let app = spawn_app_with(SETTINGS).await;
    let doc = fetch(&app).await;
    let documented = doc.routes();
    let routes = allowed(&documented);
    let undescribed: Vec<_> = routes
        .iter()
        .filter(|(p, m)| documented.get(*p) != Some(m))
        .collect();
    let unrouted: Vec<_> = documented
        .iter()
        .filter(|(p, m)| routes.get(*p) != Some(m))
        .collect();
    assert!(
        undescribed.is_empty() && unrouted.is_empty(),
        "routes (ALLOWED) missing from the description or with other methods there: \
         {undescribed:?}; described otherwise than routed: {unrouted:?}"
    );
    for (path, listed) in &documented {
        let url = path.replace('*', "1");
        for method in METHODS.iter().filter(|m| !listed.contains(**m)) {
            let response = request(app.addr, method, &url, &[], None).await;
            assert_eq!(response.status, 405, "{method} {url}: {}", response.text());
            let allow = response
                .header("allow")
                .expect("a 405 says what is allowed");
            let allow: BTreeSet<String> = allow.split(", ").map(str::to_owned).collect();
            assert_eq!(&allow, listed, "{method} {url}: Allow");
            if *method != "HEAD" {
                let error = &json!({"$ref": "#/components/schemas/Error"});
                doc.validate(&format!("{method} {url}"), error, &response.json());
            }
        }
    }
}

#[tokio::test]
async fn every_documented_status_is_answered_with_the_documented_body() {
    let main = spawn_app_with(SETTINGS).await;
    let (unready, full, _stream) = other_gateways().await;
    let doc = fetch(&main).await;
    let rows = rows(&main).await;
    let (admin, user) = (token("root", Some("admin")), token("alice", None));
    // A stream for GET /api/sse/clients to list.
    let path = format!("/sse/notifications/?access_token={user}&clientId=tab1&events=newPath");
    let _listed = SseClient::connect(main.addr, &path, &[]).await;
    let mut probes = probes::written(&rows, &admin, &user);
    probes.extend(probes::derived(&doc, &probes, &admin));
    assert_covered(&doc, &probes);
    for probe in &probes {
        let addr = match probe.gateway {
            Gateway::Main => main.addr,
            Gateway::Unready => unready.addr,
            Gateway::Full => full.addr,
        };
        let headers: Vec<(&str, &str)> = probe
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if is_stream(&doc, probe) {
            let stream = SseClient::connect(addr, &probe.url, &headers).await;
            assert_eq!(stream.status, 200, "GET {}: {}", probe.url, stream.text());
            assert_eq!(stream.header("content-type"), Some("text/event-stream"));
            assert!(
                stream.connection.is_some(),
                "the stream opens with its connection event"
            );
            continue;
        }
        let response = request(
            addr,
            probe.method,
            &probe.url,
            &headers,
            probe.body.as_deref(),
        );
        doc.check(probe, &response.await);
    }
}

/// Every status the description lists is probed, and every probe's status is listed.
fn assert_covered(doc: &Doc, probes: &[Probe]) {
    let probed: BTreeSet<(String, String, u16)> = probes
        .iter()
        .map(|p| (p.template.to_owned(), p.method.to_owned(), p.status))
        .collect();
    let mut listed = BTreeSet::new();
    for (template, item) in doc.paths() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            for status in doc.statuses(template, &method) {
                listed.insert((template.clone(), method.clone(), status));
            }
        }
    }
    let unprobed: Vec<_> = listed.difference(&probed).collect();
    assert!(unprobed.is_empty(), "listed but not probed: {unprobed:?}");
    let unlisted: Vec<_> = probed.difference(&listed).collect();
    assert!(unlisted.is_empty(), "probed but not listed: {unlisted:?}");
}

fn is_stream(doc: &Doc, probe: &Probe) -> bool {
    let content = &doc.operation(probe.template, probe.method)["responses"]
        [probe.status.to_string()]["content"];
    probe.method == "GET" && content["text/event-stream"].is_object()
}

/// A gateway without its database (its schema never migrated) nor demo tokens, and one at its
/// connection cap, with the stream that fills it.
async fn other_gateways() -> (TestApp, TestApp, SseClient) {
    let missing = pg::shared().url("openapi_no_such_database");
    let without_demo: Vec<_> = SETTINGS
        .iter()
        .filter(|(name, _)| *name != "DEMO_TOKENS")
        .collect();
    let without_demo: Vec<(&str, &str)> = without_demo.into_iter().copied().collect();
    let unready = spawn_app_unready(&missing, &without_demo).await;
    let mut settings = SETTINGS.to_vec();
    settings.push(("MAX_CONNECTIONS", "1"));
    let full = spawn_app_with(&settings).await;
    let path = format!("/sse/notifications/?access_token={}", token("carol", None));
    let stream = SseClient::connect(full.addr, &path, &[]).await;
    assert_eq!(stream.status, 200);
    (unready, full, stream)
}

/// A user `alice` with a board and a path on it.
async fn rows(app: &TestApp) -> Rows {
    let user = app
        .post("/api/users", &json!({"username": "alice"}))
        .await
        .json();
    let board = json!({"name": "first", "creator": "alice", "rows": 3, "cols": 4});
    let board = app.post("/api/boards", &board).await.json();
    let path = json!({"user": "alice", "points": [[0, 0]]});
    let path = app
        .post(&format!("/api/boards/{}/paths", board["id"]), &path)
        .await;
    Rows {
        user: user["id"].as_i64().unwrap(),
        board: board["id"].as_i64().unwrap(),
        path: path.json()["id"].as_i64().unwrap(),
    }
}
