use std::time::Duration;

use super::*;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
}

#[test]
fn defaults_apply_when_only_the_database_is_given() {
    let c = config(&[("DATABASE_URL", "postgres://u@localhost/db")]).unwrap();
    assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8000");
    assert_eq!(c.keepalive, Duration::from_secs(15));
    assert_eq!(c.database.get_dbname(), Some("db"));
}

#[test]
fn a_streams_send_buffer_is_64_kib_unless_set_and_0_leaves_the_kernels() {
    let url = ("DATABASE_URL", "postgres://x/y");
    assert_eq!(config(&[url]).unwrap().send_buffer(), Some(65536));
    let set = |v| config(&[url, ("STREAM_SEND_BUFFER", v)]);
    assert_eq!(set("4096").unwrap().send_buffer(), Some(4096));
    assert_eq!(set("0").unwrap().send_buffer(), None);
    let err = set("64k").unwrap_err().to_string();
    assert_eq!(
        err,
        "STREAM_SEND_BUFFER=\"64k\" is invalid: expected a whole number of bytes"
    );
}

#[test]
fn the_coalescing_window_is_10_ms_unless_set_and_0_turns_it_off() {
    let url = ("DATABASE_URL", "postgres://x/y");
    let window = Duration::from_millis(10);
    assert_eq!(config(&[url]).unwrap().coalesce_window, window);
    let set = |v| config(&[url, ("COALESCE_WINDOW_MS", v)]);
    assert_eq!(set("0").unwrap().coalesce_window, Duration::ZERO);
    assert_eq!(
        set("25").unwrap().coalesce_window,
        Duration::from_millis(25)
    );
    for bad in ["5ms", "1001", "-1"] {
        let err = set(bad).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "COALESCE_WINDOW_MS=\"{bad}\" is invalid: expected a whole number of \
                 milliseconds, at most 1000"
            )
        );
    }
}

#[test]
fn cors_origins_are_none_any_or_a_list_of_origins() {
    let url = ("DATABASE_URL", "postgres://x/y");
    assert_eq!(config(&[url]).unwrap().cors, CorsOrigins::None);
    let any = config(&[url, ("CORS_ORIGINS", "*")]).unwrap().cors;
    assert_eq!(any, CorsOrigins::Any);
    assert!(!any.allows_credentials("https://a.example"));
    let listed = config(&[url, ("CORS_ORIGINS", "https://A.example, http://b:8080")]);
    let listed = listed.unwrap().cors;
    assert!(listed.allows_credentials("https://a.example"));
    assert!(listed.allows_credentials("http://b:8080"));
    assert!(!listed.allows_credentials("http://b:8081"));
    for bad in ["a.example", "https://a.example/path", "ftp://a"] {
        let err = config(&[url, ("CORS_ORIGINS", bad)])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("CORS_ORIGINS="), "{err}");
    }
}

#[test]
fn a_missing_database_url_names_the_variable() {
    let err = config(&[]).unwrap_err().to_string();
    assert!(err.starts_with("DATABASE_URL is not set"), "{err}");
}

#[test]
fn a_bad_value_names_the_variable_and_the_value() {
    let err = config(&[("DATABASE_URL", "postgres://x/y"), ("KEEPALIVE_SECS", "0")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "KEEPALIVE_SECS=\"0\" is invalid: expected a positive whole number"
    );
    let err = config(&[
        ("DATABASE_URL", "postgres://x/y"),
        ("BIND_ADDR", "localhost"),
    ])
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "BIND_ADDR=\"localhost\" is invalid: expected host:port, as in 127.0.0.1:8000 or \
         localhost:8000"
    );
}

#[test]
fn authentication_is_off_unless_a_long_enough_secret_is_given() {
    let url = ("DATABASE_URL", "postgres://x/y");
    assert_eq!(config(&[url]).unwrap().auth_secret, None);
    let err = config(&[url, ("AUTH_JWT_SECRET", "short secret")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "AUTH_JWT_SECRET=\"…\" is invalid: use at least 32 characters"
    );
    let err = config(&[url, ("DEMO_TOKENS", "1")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("DEMO_TOKENS") && err.contains("AUTH_JWT_SECRET"),
        "{err}"
    );
    let long = "0123456789abcdef0123456789abcdef";
    let on = config(&[url, ("AUTH_JWT_SECRET", long), ("DEMO_TOKENS", "1")]).unwrap();
    assert_eq!(
        (on.auth_secret.as_deref(), on.demo_tokens),
        (Some(long), true)
    );
}

#[test]
fn a_bad_database_url_does_not_echo_it() {
    let err = config(&[("DATABASE_URL", "postgres://u:secret@h:notaport/db")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("DATABASE_URL=") && !err.contains("secret"),
        "{err}"
    );
}

#[test]
fn a_host_name_binds_its_first_ipv4_address() {
    let c = config(&[
        ("DATABASE_URL", "postgres://x/y"),
        ("BIND_ADDR", "localhost:8123"),
    ])
    .unwrap();
    assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8123");
    let err = config(&[
        ("DATABASE_URL", "postgres://x/y"),
        ("BIND_ADDR", "localhost:http"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("BIND_ADDR=\"localhost:http\" is invalid: expected host:port"),
        "{err}"
    );
}

#[test]
fn flags_set_what_the_variables_do_and_errors_name_the_flag() {
    let c = Config::from_args([
        "pgsse",
        "--database-url=postgres://u@h/db",
        "--keepalive-secs",
        "3",
        "--demo-tokens",
        "--auth-jwt-secret=0123456789abcdef0123456789abcdef",
        "--log-format=json",
    ])
    .unwrap();
    assert_eq!(c.keepalive, Duration::from_secs(3));
    assert!(c.demo_tokens);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.database.get_dbname(), Some("db"));
    let err = Config::from_args([
        "pgsse",
        "--database-url=postgres://x/y",
        "--max-streams=none",
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("--max-streams=\"none\" is invalid"),
        "{err}"
    );
    let err = Config::from_args(["pgsse", "--database-url=postgres://x/y", "--log-format=xml"])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "--log-format=\"xml\" is invalid: expected one of text, json"
    );
}

#[test]
fn an_unknown_flag_is_a_usage_error_and_help_is_information() {
    let err = Config::from_args(["pgsse", "--database-url=postgres://x/y", "--bogus"]).unwrap_err();
    assert!(!err.is_information());
    assert!(
        err.to_string().contains("unexpected argument '--bogus'"),
        "{err}"
    );
    assert!(Config::from_args(["pgsse", "--help"])
        .unwrap_err()
        .is_information());
    assert!(Config::from_args(["pgsse", "--version"])
        .unwrap_err()
        .is_information());
}

#[test]
fn the_debug_form_shows_no_secret() {
    let c = config(&[
        ("DATABASE_URL", "postgres://u:hunter2@h/db"),
        ("AUTH_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
    ])
    .unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("0123456789abcdef"),
        "{shown}"
    );
}

#[test]
fn a_secret_given_as_a_flag_is_not_echoed_either() {
    let err = Config::from_args([
        "pgsse",
        "--database-url=postgres://x/y",
        "--auth-jwt-secret=short",
    ])
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "--auth-jwt-secret=\"…\" is invalid: use at least 32 characters"
    );
}

#[test]
fn an_identity_providers_settings_are_checked_and_name_their_variable() {
    let url = ("DATABASE_URL", "postgres://x/y");
    let jwks = ("AUTH_JWKS_URL", "https://idp.example/certs");
    let on = config(&[url, jwks, ("AUTH_ISSUER", "https://idp.example")]).unwrap();
    assert_eq!(on.jwks().unwrap().to_string(), "https://idp.example/certs");
    assert_eq!(on.auth_leeway, Duration::from_secs(30));
    assert_eq!(on.jwks_refresh, Duration::from_secs(900));
    let local = config(&[url, ("AUTH_JWKS_URL", "http://127.0.0.1:9/jwks")]);
    assert!(local.is_ok());
    let cases = [
        (
            vec![("AUTH_JWKS_URL", "http://idp.example/certs")],
            "AUTH_JWKS_URL=\"…\" is invalid: use an https:// URL (plain http:// only to a \
             loopback address)",
        ),
        (
            vec![("AUTH_JWKS_URL", "https://u:p@idp.example/certs")],
            "AUTH_JWKS_URL=\"…\" is invalid: a JWKS needs no credentials: remove them from the URL",
        ),
        (
            vec![jwks, ("AUTH_JWKS_FILE", "keys.json")],
            "AUTH_JWKS_FILE=\"keys.json\" is invalid: set AUTH_JWKS_URL or AUTH_JWKS_FILE, not both",
        ),
        (
            vec![jwks, ("AUTH_LEEWAY_SECS", "301")],
            "AUTH_LEEWAY_SECS=\"301\" is invalid: expected a whole number of seconds, at most 300",
        ),
        (
            vec![("AUTH_AUDIENCE", "pgsse")],
            "AUTH_AUDIENCE=\"pgsse\" is invalid: authentication is off: set AUTH_JWT_SECRET, \
             AUTH_JWKS_URL or AUTH_JWKS_FILE",
        ),
    ];
    for (mut vars, message) in cases {
        vars.push(url);
        assert_eq!(config(&vars).unwrap_err().to_string(), message);
    }
}

#[test]
fn the_demo_schema_is_public_unless_set_to_a_plain_identifier_of_the_applications() {
    let url = ("DATABASE_URL", "postgres://x/y");
    assert_eq!(config(&[url]).unwrap().demo_schema, "public");
    let set = |v| config(&[url, ("DEMO_SCHEMA", v)]);
    assert_eq!(set("pgsse_demo").unwrap().demo_schema, "pgsse_demo");
    assert_eq!(set("_x1").unwrap().demo_schema, "_x1");
    let long = "s".repeat(64);
    for bad in ["Demo", "1demo", "demo-x", "a b", "x\"y", long.as_str()] {
        let err = set(bad).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "DEMO_SCHEMA={bad:?} is invalid: expected a schema name"
            )),
            "{err}"
        );
    }
    for taken in ["pgsse", "pg_catalog", "pg_temp", "information_schema"] {
        let err = set(taken).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "DEMO_SCHEMA={taken:?} is invalid: schema {taken} is not the application's: \
                 use one of its own, as in pgsse_demo"
            )
        );
    }
}

#[test]
fn the_user_claim_is_sub_unless_set_to_a_claims_name() {
    let url = ("DATABASE_URL", "postgres://x/y");
    assert_eq!(config(&[url]).unwrap().auth_user_claim, "sub");
    let set = |v| config(&[url, ("AUTH_USER_CLAIM", v)]);
    assert_eq!(
        set("preferred_username").unwrap().auth_user_claim,
        "preferred_username"
    );
    let err = set("user name").unwrap_err().to_string();
    assert_eq!(
        err,
        "AUTH_USER_CLAIM=\"user name\" is invalid: expected a claim's name, as in sub, \
         preferred_username or email"
    );
}
