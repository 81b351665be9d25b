//! Authentication: HS256 JSON Web Tokens.
//!
//! Only what pgsse needs, checked strictly: the header must name HS256 (so `alg: none` and every
//! other algorithm are refused), the signature is compared in constant time, `sub` (the username)
//! and `exp` are required, `nbf` is honoured, and `role: "admin"` marks an administrator.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a valid token says about its bearer.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Claims {
    /// The username.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
    /// Not valid before, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("an access token is required")]
    Missing,
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token uses algorithm {0:?}; only HS256 is accepted")]
    Algorithm(String),
    #[error("the access token's signature is not valid")]
    Signature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token lacks a valid {0:?} claim")]
    Claim(&'static str),
}

/// Checks and issues tokens signed with one secret.
pub struct Verifier {
    secret: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

impl Verifier {
    pub fn new(secret: &str) -> Verifier {
        Verifier {
            secret: secret.as_bytes().to_vec(),
        }
    }

    /// The claims of a valid token at time `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let token = token.trim();
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signed = &token[..header.len() + 1 + payload.len()];
        let header: Header = decode_json(header)?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(signed)
            .verify_slice(&signature)
            .map_err(|_| TokenError::Signature)?;
        let claims: serde_json::Value = decode_json(payload)?;
        let claims: Claims = serde_json::from_value(claims).map_err(|_| missing_claim(payload))?;
        if claims.sub.trim().is_empty() {
            return Err(TokenError::Claim("sub"));
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now < nbf) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// A token for `claims`, signed with this secret.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signed = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&signed).finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    fn mac(&self, signed: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(signed.as_bytes());
        mac
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Which required claim is missing or mistyped, for the error message.
fn missing_claim(payload: &str) -> TokenError {
    let claims: serde_json::Value = decode_json(payload).unwrap_or_default();
    if !claims["sub"].is_string() {
        TokenError::Claim("sub")
    } else if !claims["exp"].is_u64() {
        TokenError::Claim("exp")
    } else if !claims["nbf"].is_null() && !claims["nbf"].is_u64() {
        TokenError::Claim("nbf")
    } else {
        TokenError::Claim("role")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn claims() -> Claims {
        Claims {
            sub: "alice".into(),
            role: None,
            exp: NOW + 60,
            nbf: None,
        }
    }

    fn forge(header: &str, payload: &str, signature: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            signature
        )
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let verifier = Verifier::new("a secret long enough for HS256");
        let token = verifier.sign(&claims());
        assert_eq!(verifier.verify(&token, NOW), Ok(claims()));
    }

    #[test]
    fn bad_tokens_are_refused_with_their_reason() {
        let verifier = Verifier::new("a secret long enough for HS256");
        let other = Verifier::new("another secret entirely, also long");
        let good = verifier.sign(&claims());
        assert_eq!(verifier.verify("", NOW), Err(TokenError::Malformed));
        assert_eq!(verifier.verify("a.b", NOW), Err(TokenError::Malformed));
        assert_eq!(
            verifier.verify(&other.sign(&claims()), NOW),
            Err(TokenError::Signature)
        );
        let (unsigned, _) = good.rsplit_once('.').unwrap();
        assert_eq!(
            verifier.verify(&format!("{unsigned}."), NOW),
            Err(TokenError::Signature)
        );
        let none = forge(
            r#"{"alg":"none"}"#,
            r#"{"sub":"alice","exp":1900000000}"#,
            "",
        );
        assert_eq!(
            verifier.verify(&none, NOW),
            Err(TokenError::Algorithm("none".into()))
        );
        let expired = Claims {
            exp: NOW,
            ..claims()
        };
        assert_eq!(
            verifier.verify(&verifier.sign(&expired), NOW),
            Err(TokenError::Expired)
        );
        let early = Claims {
            nbf: Some(NOW + 10),
            ..claims()
        };
        assert_eq!(
            verifier.verify(&verifier.sign(&early), NOW),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn required_claims_are_named_when_missing() {
        let verifier = Verifier::new("a secret long enough for HS256");
        let sign = |payload: &str| {
            let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
            let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
            let signature = URL_SAFE_NO_PAD.encode(verifier.mac(&signed).finalize().into_bytes());
            format!("{signed}.{signature}")
        };
        let no_exp = sign(r#"{"sub":"alice"}"#);
        assert_eq!(verifier.verify(&no_exp, NOW), Err(TokenError::Claim("exp")));
        let no_sub = sign(r#"{"exp":1900000000}"#);
        assert_eq!(verifier.verify(&no_sub, NOW), Err(TokenError::Claim("sub")));
    }
}
