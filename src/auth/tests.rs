use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::*;

const SECRET: &str = "a secret long enough for HS256";

fn claims(exp_in: i64) -> Claims {
    Claims {
        sub: "alice".into(),
        role: None,
        exp: (now() as i64 + exp_in) as u64,
        nbf: None,
    }
}

/// A token with this header and payload, signed with [`SECRET`].
fn forge(header: &str, payload: &str) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(
        signed.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{signed}.{signature}")
}

fn check(verifier: &Verifier, token: &str) -> Result<Claims, TokenError> {
    verifier.check(token)
}

#[test]
fn a_signed_token_verifies_and_round_trips_its_claims() {
    let verifier = Verifier::new(SECRET);
    let token = verifier.sign(&claims(60));
    assert_eq!(check(&verifier, &token), Ok(claims(60)));
}

#[test]
fn bad_tokens_are_refused_with_their_reason() {
    let verifier = Verifier::new(SECRET);
    let other = Verifier::new("another secret entirely, also long");
    let good = verifier.sign(&claims(60));
    assert_eq!(check(&verifier, ""), Err(TokenError::Malformed));
    assert_eq!(check(&verifier, "a.b"), Err(TokenError::Malformed));
    let foreign = other.sign(&claims(60));
    assert_eq!(check(&verifier, &foreign), Err(TokenError::Signature));
    let (unsigned, _) = good.rsplit_once('.').unwrap();
    assert_eq!(
        check(&verifier, &format!("{unsigned}.")),
        Err(TokenError::Signature)
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","exp":9900000000}"#)
    );
    assert_eq!(
        check(&verifier, &none),
        Err(TokenError::Algorithm("none".into(), "HS256".into()))
    );
    assert_eq!(
        check(&verifier, &verifier.sign(&claims(-1))),
        Err(TokenError::Expired)
    );
    let early = Claims {
        nbf: Some(now() + 10),
        ..claims(60)
    };
    assert_eq!(
        check(&verifier, &verifier.sign(&early)),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn required_claims_are_named_when_missing() {
    let verifier = Verifier::new(SECRET);
    let header = r#"{"alg":"HS256"}"#;
    let no_exp = forge(header, r#"{"sub":"alice"}"#);
    assert_eq!(
        check(&verifier, &no_exp),
        Err(TokenError::Claim("exp".into()))
    );
    let no_sub = forge(header, r#"{"exp":9900000000}"#);
    assert_eq!(
        check(&verifier, &no_sub),
        Err(TokenError::Claim("sub".into()))
    );
    let blank_sub = forge(header, r#"{"sub":" ","exp":9900000000}"#);
    assert_eq!(
        check(&verifier, &blank_sub),
        Err(TokenError::Claim("sub".into()))
    );
}

#[test]
fn the_user_is_read_from_the_claim_set_and_signed_under_it() {
    let verifier = Verifier {
        user_claim: "preferred_username".into(),
        ..Verifier::new(SECRET)
    };
    let header = r#"{"alg":"HS256"}"#;
    let named = forge(
        header,
        r#"{"sub":"f3b1c2","preferred_username":"alice","exp":9900000000}"#,
    );
    assert_eq!(check(&verifier, &named).map(|c| c.sub), Ok("alice".into()));
    for payload in [
        r#"{"sub":"alice","exp":9900000000}"#,
        r#"{"preferred_username":"","exp":9900000000}"#,
        r#"{"preferred_username":7,"exp":9900000000}"#,
    ] {
        let token = forge(header, payload);
        assert_eq!(
            check(&verifier, &token),
            Err(TokenError::Claim("preferred_username".into())),
            "{payload}"
        );
    }
    let own = verifier.sign(&claims(60));
    let payload = own.split('.').nth(1).unwrap();
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(payload["preferred_username"], "alice");
    assert_eq!(check(&verifier, &own), Ok(claims(60)));
}

#[test]
fn the_leeway_forgives_clock_skew_and_no_more() {
    let verifier = Verifier {
        leeway: 30,
        ..Verifier::new(SECRET)
    };
    let late = verifier.sign(&claims(-20));
    assert_eq!(check(&verifier, &late), Ok(claims(-20)));
    let expired = verifier.sign(&claims(-60));
    assert_eq!(check(&verifier, &expired), Err(TokenError::Expired));
}

#[test]
fn issuer_and_audience_are_required_when_set_and_signed_into_demo_tokens() {
    let verifier = Verifier {
        issuer: Some("https://idp.example".into()),
        audience: Some("pgsse".into()),
        ..Verifier::new(SECRET)
    };
    let own = verifier.sign(&claims(60));
    assert_eq!(check(&verifier, &own), Ok(claims(60)));
    let header = r#"{"alg":"HS256"}"#;
    let exp = now() + 60;
    let cases = [
        (
            format!(r#"{{"sub":"a","exp":{exp},"iss":"https://evil.example","aud":"pgsse"}}"#),
            TokenError::Issuer("https://idp.example".into()),
        ),
        (
            format!(r#"{{"sub":"a","exp":{exp},"iss":"https://idp.example","aud":["other"]}}"#),
            TokenError::Audience("pgsse".into()),
        ),
        (
            format!(r#"{{"sub":"a","exp":{exp},"aud":"pgsse"}}"#),
            TokenError::Claim("iss".into()),
        ),
    ];
    for (payload, refusal) in cases {
        assert_eq!(check(&verifier, &forge(header, &payload)), Err(refusal));
    }
    let listed =
        format!(r#"{{"sub":"a","exp":{exp},"iss":"https://idp.example","aud":["x","pgsse"]}}"#);
    assert!(check(&verifier, &forge(header, &listed)).is_ok());
}

#[test]
fn without_an_identity_provider_other_algorithms_are_refused_by_name() {
    let verifier = Verifier::new(SECRET);
    let rs256 = forge(
        r#"{"alg":"RS256","kid":"k"}"#,
        r#"{"sub":"a","exp":9900000000}"#,
    );
    assert_eq!(
        check(&verifier, &rs256),
        Err(TokenError::Algorithm("RS256".into(), "HS256".into()))
    );
}

#[test]
fn a_jwks_without_an_audience_or_an_issuer_is_named_as_unchecked() {
    let unchecked = |vars: &[(&str, &str)]| {
        let config = Config::from_lookup(|name| {
            let database = ("DATABASE_URL", "postgres://u@127.0.0.1/d");
            let jwks = ("AUTH_JWKS_URL", "https://idp.example/certs");
            [database, jwks]
                .iter()
                .chain(vars)
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        let verifier = Verifier::from_config(&config).unwrap();
        verifier
            .unchecked()
            .map(|why| why.split(':').next().unwrap().to_owned())
    };
    let (issuer, audience) = (
        ("AUTH_ISSUER", "https://idp.example"),
        ("AUTH_AUDIENCE", "pgsse"),
    );
    let named = |setting: &str| Some(format!("{setting} not set"));
    assert_eq!(unchecked(&[]), named("AUTH_AUDIENCE and AUTH_ISSUER are"));
    assert_eq!(unchecked(&[issuer]), named("AUTH_AUDIENCE is"));
    assert_eq!(unchecked(&[audience]), named("AUTH_ISSUER is"));
    assert_eq!(unchecked(&[issuer, audience]), None);
}
