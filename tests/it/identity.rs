//! Tokens from an identity provider: RS256, ES256 and EdDSA tokens signed with the test's own
//! keys and checked against a JWKS the test serves (or a file), with issuer, audience, leeway,
//! key rotation, a failing provider and algorithm confusion, observed through the HTTP API.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support::http::{request, Response};
use crate::support::jwks::JwksServer;
use crate::support::{fresh_database, pg, spawn_app_unready, spawn_app_with, TestApp, WAIT};

const ISSUER: &str = "https://idp.example/realms/main";
const AUDIENCE: &str = "pgsse";
const SECRET: &str = "a test secret that is long enough for HS256";

/// A signing key of the test's identity provider.
struct TestKey {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
    /// Its public half, as the JWKS publishes it.
    jwk: Value,
}

impl TestKey {
    /// The RSA key checked in under `keys/` (generating one takes too long for a test).
    fn rsa(kid: &'static str) -> TestKey {
        let pem = include_bytes!("keys/rsa-test-key.pem");
        let encoding = EncodingKey::from_rsa_pem(pem).unwrap();
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk["kid"] = kid.into();
        TestKey {
            kid,
            alg: Algorithm::RS256,
            encoding,
            jwk,
        }
    }

    /// A fresh P-256 key.
    fn ec(kid: &'static str) -> TestKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        // The uncompressed point: 0x04, then x and y.
        let point = pair.public_key_raw();
        TestKey {
            kid,
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                        "x": b64(&point[1..33]), "y": b64(&point[33..])}),
        }
    }

    /// A fresh Ed25519 key.
    fn ed(kid: &'static str) -> TestKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        TestKey {
            kid,
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap(),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
                        "x": b64(pair.public_key_raw())}),
        }
    }

    /// A token for `claims`, its header naming this key.
    fn sign(&self, claims: &Value) -> String {
        self.sign_naming(self.kid, claims)
    }

    /// A token for `claims` signed with this key, its header naming key `kid`.
    fn sign_naming(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn document(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

/// Claims an identity provider would issue to `user`, expiring in `exp_in` seconds.
fn claims(user: &str, admin: bool, exp_in: i64) -> Value {
    let mut claims = json!({
        "sub": user,
        "exp": pgsse::auth::now() as i64 + exp_in,
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
    });
    if admin {
        claims["role"] = "admin".into();
    }
    claims
}

/// A gateway that checks tokens against `jwks`, with issuer and audience.
async fn gateway(jwks: &JwksServer) -> TestApp {
    spawn_app_with(&[
        ("AUTH_JWKS_URL", &jwks.url),
        ("AUTH_ISSUER", ISSUER),
        ("AUTH_AUDIENCE", AUDIENCE),
        ("AUTH_LEEWAY_SECS", "30"),
    ])
    .await
}

/// A stream request with `token` as its bearer token.
async fn open(app: &TestApp, token: &str) -> Response {
    let bearer = format!("Bearer {token}");
    let headers = [("Authorization", bearer.as_str())];
    request(
        app.addr,
        "GET",
        "/sse/notifications/?lastEventId=0",
        &headers,
        None,
    )
    .await
}

/// The status and error message a stream request with `token` gets.
async fn refusal(app: &TestApp, token: &str) -> (u16, String) {
    let response = open(app, token).await;
    let error = response.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (response.status, error)
}

/// Opens a stream with `token` and returns the user it is for.
async fn stream_user(app: &TestApp, token: &str) -> Value {
    let stream = app
        .sse(&format!("/sse/notifications/?access_token={token}"), &[])
        .await;
    assert_eq!(stream.status, 200, "{}", stream.text());
    stream.connection.as_ref().unwrap().json()["user"].clone()
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_open_streams_and_an_administrators_reaches_the_admin_api() {
    let keys = [TestKey::rsa("rsa"), TestKey::ec("ec"), TestKey::ed("ed")];
    let jwks = JwksServer::start(&document(&keys.iter().collect::<Vec<_>>())).await;
    let app = gateway(&jwks).await;
    for key in &keys {
        let user = format!("user-{}", key.kid);
        let token = key.sign(&claims(&user, false, 600));
        assert_eq!(
            stream_user(&app, &token).await,
            user.as_str(),
            "{:?}",
            key.alg
        );
        let admin = format!("Bearer {}", key.sign(&claims("root", true, 600)));
        let listed = request(
            app.addr,
            "GET",
            "/api/sse/clients",
            &[("Authorization", &admin)],
            None,
        )
        .await;
        assert_eq!(listed.status, 200, "{:?}: {}", key.alg, listed.text());
        let user = format!("Bearer {token}");
        let denied = request(
            app.addr,
            "GET",
            "/api/sse/clients",
            &[("Authorization", &user)],
            None,
        )
        .await;
        assert_eq!(denied.status, 403, "{}", denied.text());
    }
    assert_eq!(jwks.requests(), 1, "the keys were fetched once, at start");
}

#[tokio::test]
async fn wrong_issuers_audiences_expiries_and_algorithms_are_refused_with_their_reason() {
    let (rsa, ec) = (TestKey::rsa("rsa"), TestKey::ec("ec"));
    let jwks = JwksServer::start(&document(&[&rsa, &ec])).await;
    let app = gateway(&jwks).await;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims("alice", false, 600);
        change(&mut claims);
        claims
    };
    // The HMAC of the public key: the forgery of gateways that check HS256 with an RSA key.
    let public = serde_json::to_vec(&rsa.jwk).unwrap();
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("alice", true, 600),
        &EncodingKey::from_secret(&public).unwrap(),
    )
    .unwrap();
    let good = rsa.sign(&claims("alice", false, 600));
    let (signed, _) = good.rsplit_once('.').unwrap();
    let forged_payload = format!(
        "{}.{}",
        b64(br#"{"alg":"RS256","kid":"rsa"}"#),
        b64(br#"{"sub":"root","role":"admin","exp":9900000000}"#)
    );
    let cases = [
        (rsa.sign(&with(&|c| c["iss"] = "https://evil.example".into())), 401, format!("the access token's issuer (iss) is not {ISSUER:?}")),
        (rsa.sign(&with(&|c| c["aud"] = "account".into())), 401, format!("the access token's audience (aud) does not include {AUDIENCE:?}")),
        (rsa.sign(&with(&|c| drop(c.as_object_mut().unwrap().remove("aud")))), 401, "the access token lacks a valid \"aud\" claim".into()),
        (rsa.sign(&claims("alice", false, -120)), 401, "the access token has expired".into()),
        (confused, 401, "the access token uses algorithm \"HS256\"; only RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA is accepted".into()),
        (rsa.sign_naming("ec", &claims("alice", false, 600)), 401, "the access token uses algorithm \"RS256\", which its key \"ec\" is not for".into()),
        (format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(br#"{"sub":"root","exp":9900000000}"#)), 401, "the access token uses algorithm \"none\"; only RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA is accepted".into()),
        (format!("{forged_payload}.{}", good.rsplit_once('.').unwrap().1), 401, "the access token's signature is not valid".into()),
        (format!("{signed}.{}", b64(b"not the signature")), 401, "the access token's signature is not valid".into()),
    ];
    for (token, status, message) in cases {
        assert_eq!(refusal(&app, &token).await, (status, message));
    }
    // Within the leeway a token just expired by the gateway's clock is still taken.
    let skewed = ec.sign(&claims("bob", false, -5));
    assert_eq!(stream_user(&app, &skewed).await, "bob");
}

#[tokio::test]
async fn a_key_rotated_into_the_jwks_is_picked_up_and_made_up_key_ids_do_not_hammer_the_provider() {
    let (old, new) = (TestKey::ec("2026-old"), TestKey::ed("2026-new"));
    let jwks = JwksServer::start(&document(&[&old])).await;
    let app = gateway(&jwks).await;
    assert_eq!(jwks.requests(), 1);
    jwks.set(&document(&[&old, &new]));
    // The first tokens signed with the new key, coming together, make the gateway fetch the
    // keys again, once, and all wait for it.
    let users = ["alice", "bob", "carol", "dave"];
    let tokens: Vec<String> = users
        .iter()
        .map(|u| new.sign(&claims(u, false, 600)))
        .collect();
    let opened = futures_util::future::join_all(tokens.iter().map(|t| stream_user(&app, t)));
    assert_eq!(opened.await, users);
    assert_eq!(jwks.requests(), 2);
    let made_up = TestKey::ec("made-up");
    for _ in 0..20 {
        let token = made_up.sign(&claims("mallory", true, 600));
        let refused = (
            401,
            "the access token's key \"made-up\" is not one of the identity provider's".to_owned(),
        );
        assert_eq!(refusal(&app, &token).await, refused);
    }
    assert_eq!(
        jwks.requests(),
        2,
        "tokens with unknown keys refresh the keys at most every 30 s"
    );
    assert_eq!(
        stream_user(&app, &old.sign(&claims("erin", false, 600))).await,
        "erin"
    );
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_keys_the_gateway_had() {
    let key = TestKey::rsa("rsa");
    let jwks = JwksServer::start(&document(&[&key])).await;
    let app = gateway(&jwks).await;
    jwks.fail(true);
    let unknown = TestKey::ed("unknown").sign(&claims("mallory", false, 600));
    let (status, _) = refusal(&app, &unknown).await;
    assert_eq!(status, 401);
    assert_eq!(jwks.requests(), 1 + 3, "the refresh was tried three times");
    assert_eq!(
        stream_user(&app, &key.sign(&claims("alice", false, 600))).await,
        "alice"
    );
    assert_eq!(app.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn a_jwks_file_checks_provider_tokens_beside_hs256_demo_tokens() {
    let key = TestKey::ed("offline");
    let path = std::env::temp_dir().join(format!("pgsse-jwks-{}.json", std::process::id()));
    std::fs::write(&path, document(&[&key])).unwrap();
    let app = spawn_app_with(&[
        ("AUTH_JWKS_FILE", path.to_str().unwrap()),
        ("AUTH_JWT_SECRET", SECRET),
        ("DEMO_TOKENS", "1"),
    ])
    .await;
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        stream_user(&app, &key.sign(&claims("alice", false, 600))).await,
        "alice"
    );
    let demo = app
        .post("/api/demo/token", &json!({"username": "bob"}))
        .await;
    assert_eq!(demo.status, 200, "{}", demo.text());
    let token = demo.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(stream_user(&app, &token).await, "bob");
}

#[tokio::test]
async fn with_auth_user_claim_the_user_is_the_claim_it_names_and_a_token_without_it_is_refused() {
    let key = TestKey::rsa("rsa");
    let jwks = JwksServer::start(&document(&[&key])).await;
    let app = spawn_app_with(&[
        ("AUTH_JWKS_URL", &jwks.url),
        ("AUTH_ISSUER", ISSUER),
        ("AUTH_AUDIENCE", AUDIENCE),
        ("AUTH_USER_CLAIM", "preferred_username"),
    ])
    .await;
    // The provider's sub is an opaque id; preferred_username is the name the application uses.
    let mut named = claims("0c9e7f52-4a51-4f0e-9d8e-2b7c1a3f6e11", false, 600);
    named["preferred_username"] = "alice".into();
    let token = key.sign(&named);
    let mut alice = app
        .sse(&format!("/sse/notifications/?access_token={token}"), &[])
        .await;
    assert_eq!(alice.status, 200, "{}", alice.text());
    assert_eq!(alice.connection.as_ref().unwrap().json()["user"], "alice");
    let sql = app.sql().await;
    sql.exec(
        "select pgsse.publish('by.sub', '{}', '0c9e7f52-4a51-4f0e-9d8e-2b7c1a3f6e11'); \
         select pgsse.publish('by.name', '{}', 'alice')",
    )
    .await;
    assert_eq!(alice.next_event().await.event, "by.name");

    let (status, error) = refusal(&app, &key.sign(&claims("alice", false, 600))).await;
    assert_eq!(
        (status, error.as_str()),
        (
            401,
            "the access token lacks a valid \"preferred_username\" claim"
        )
    );
}

/// What `/readyz` answers once the first reading of the keys is over: the status and the reason
/// if it failed, and `200` once the gateway is ready if it worked.
async fn first_reading(app: &TestApp) -> (u16, String) {
    let over = async {
        loop {
            let ready = app.get("/readyz").await;
            let reason = ready.json()["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let keys = reason.starts_with("the identity provider's keys");
            if ready.status == 200 || (keys && !reason.ends_with("not read yet")) {
                return (ready.status, reason);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, over)
        .await
        .expect("the first reading ends")
}

#[tokio::test]
async fn an_https_jwks_must_have_a_certificate_from_the_public_roots() {
    // Another gateway serves HTTPS with a self-signed certificate: TLS is spoken, and refused.
    let dir = crate::support::tls::scratch("jwks-tls");
    let (cert, key) = crate::support::tls::certificate(&dir);
    let database = fresh_database(pg::shared()).await;
    let tls = [
        ("TLS_CERT_FILE", cert.to_str().unwrap()),
        ("TLS_KEY_FILE", key.to_str().unwrap()),
    ];
    // It answers TLS handshakes once bound; whether it is ready does not matter here.
    let server = spawn_app_unready(&database, &tls).await;
    let url = format!("https://localhost:{}/healthz", server.addr.port());
    let app = spawn_app_unready(&database, &[("AUTH_JWKS_URL", &url)]).await;
    let (status, reason) = first_reading(&app).await;
    assert_eq!(status, 503);
    assert!(
        reason.contains("invalid peer certificate: UnknownIssuer"),
        "{reason}"
    );
}

#[tokio::test]
async fn until_the_keys_can_be_fetched_provider_tokens_get_503_and_readyz_says_why() {
    let key = TestKey::ec("ec");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let url = format!("http://{addr}/jwks");
    let database = fresh_database(pg::shared()).await;
    let app = spawn_app_unready(&database, &[("AUTH_JWKS_URL", &url)]).await;
    let token = key.sign(&claims("alice", false, 600));
    let (status, reason) = first_reading(&app).await;
    assert_eq!(status, 503);
    assert!(
        reason.starts_with(&format!("the identity provider's keys from {url}: ")),
        "{reason}"
    );
    let refused = open(&app, &token).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("5"));
    let error = refused.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with("the identity provider's keys are not loaded yet ("),
        "{error}"
    );
    // Once the provider answers, the gateway gets ready and takes the token.
    let _jwks = JwksServer::start_on(addr, &document(&[&key])).await;
    app.wait_ready().await;
    assert_eq!(stream_user(&app, &token).await, "alice");
}

#[tokio::test]
async fn the_keys_are_read_again_on_a_timer_so_a_withdrawn_key_stops_working() {
    let (kept, withdrawn) = (TestKey::ec("kept"), TestKey::ed("withdrawn"));
    let jwks = JwksServer::start(&document(&[&kept, &withdrawn])).await;
    let app = spawn_app_with(&[
        ("AUTH_JWKS_URL", &jwks.url),
        ("AUTH_JWKS_REFRESH_SECS", "1"),
    ])
    .await;
    let token = withdrawn.sign(&claims("alice", false, 600));
    assert_eq!(stream_user(&app, &token).await, "alice");
    jwks.set(&document(&[&kept]));
    let path = format!("/sse/notifications/?access_token={token}");
    let refused = async {
        loop {
            let stream = app.sse(&path, &[]).await;
            if stream.status == 401 {
                return stream.text();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let body = tokio::time::timeout(WAIT, refused)
        .await
        .expect("the withdrawn key is dropped at the next reading");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["error"],
        "the access token's key \"withdrawn\" is not one of the identity provider's"
    );
    let still = kept.sign(&claims("bob", false, 600));
    assert_eq!(stream_user(&app, &still).await, "bob");
}

#[tokio::test]
async fn a_jwks_url_that_redirects_is_not_followed_so_the_keys_come_only_from_the_url_set() {
    // The configured address answers with a redirect to another server, which serves the key
    // of someone who could then sign administrators' tokens.
    let mallory = TestKey::ec("mallory");
    let elsewhere = JwksServer::start(&document(&[&mallory])).await;
    let configured = JwksServer::start(&document(&[])).await;
    configured.redirect(&elsewhere.url);
    let database = fresh_database(pg::shared()).await;
    let app = spawn_app_unready(&database, &[("AUTH_JWKS_URL", &configured.url)]).await;
    let (status, reason) = first_reading(&app).await;
    assert_eq!(status, 503, "the redirect was followed");
    let why = format!(
        "the identity provider's keys from {}: the server answered 302 Found, a redirect to {}; \
         redirects are not followed: set AUTH_JWKS_URL to the keys' own address",
        configured.url, elsewhere.url
    );
    assert_eq!(reason, why);
    let admin = format!("Bearer {}", mallory.sign(&claims("mallory", true, 600)));
    let listed = request(
        app.addr,
        "GET",
        "/api/sse/clients",
        &[("Authorization", &admin)],
        None,
    )
    .await;
    assert_eq!(listed.status, 503, "{}", listed.text());
    assert_eq!(elsewhere.requests(), 0);
}
