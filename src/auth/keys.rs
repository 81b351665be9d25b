//! An identity provider's signing keys, read from a JWKS document (RFC 7517).
//!
//! Each key is tied to the algorithms its type allows: an RSA key to RS256…PS512 (or to the one
//! its `alg` names), a P-256 key to ES256, a P-384 key to ES384, an Ed25519 key to EdDSA. Keys a
//! token cannot be checked with are left out: symmetric (`oct`) keys, so that no HS256 token is
//! ever checked against a published key, encryption keys, and types or curves not supported.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;

/// The most keys kept from one document: identity providers publish a handful, and a document
/// with thousands would make every lookup slow.
pub const MAX_KEYS: usize = 64;

/// One signing key.
pub struct Key {
    pub kid: Option<String>,
    /// The algorithms a token checked with this key may name.
    pub algorithms: Vec<Algorithm>,
    pub decoding: DecodingKey,
}

/// The usable keys of one JWKS document.
pub struct KeySet {
    pub keys: Vec<Key>,
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// The usable keys of a JWKS document; an error when it is not one or has none.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        let document: Document = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a JWKS document (a JSON object with \"keys\"): {e}"))?;
        let mut keys = Vec::new();
        for value in document.keys {
            match usable(value) {
                Ok(key) if keys.len() < MAX_KEYS => keys.push(key),
                Ok(_) => log::warn!("the JWKS has more than {MAX_KEYS} keys; the rest are ignored"),
                Err(why) => log::info!("ignoring {why}"),
            }
        }
        if keys.is_empty() {
            return Err("the JWKS has no usable signing key".into());
        }
        Ok(KeySet { keys })
    }

    /// The key a token with header `kid` and `alg` names: the one with that `kid`, or, for a
    /// token without one, the only key for its algorithm.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.algorithms.contains(&alg));
                fitting.next().filter(|_| fitting.next().is_none())
            }
        }
    }

    /// The key ids, for the log.
    pub fn describe(&self) -> String {
        let ids: Vec<&str> = self
            .keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("(no kid)"))
            .collect();
        let plural = if ids.len() == 1 { "" } else { "s" };
        format!("{} signing key{plural} ({})", ids.len(), ids.join(", "))
    }
}

/// A key of the document, if a token can be checked with it.
fn usable(value: serde_json::Value) -> Result<Key, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("not a JWK: {e}"))?;
    let kid = jwk.common.key_id.clone();
    let name = kid
        .as_deref()
        .map_or("a key without a kid".into(), |kid| format!("key {kid:?}"));
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err(format!("{name} is an encryption key"));
    }
    let allowed = family_algorithms(&jwk).map_err(|e| format!("{name}: {e}"))?;
    let algorithms = match jwk.common.key_algorithm {
        None => allowed,
        Some(named) => match Algorithm::try_from(named) {
            Ok(alg) if allowed.contains(&alg) => vec![alg],
            _ => {
                return Err(format!(
                    "{name} names algorithm {named}, not one for its key type"
                ))
            }
        },
    };
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("{name}: {e}"))?;
    Ok(Key {
        kid,
        algorithms,
        decoding,
    })
}

/// The signature algorithms a key of this type and curve can check.
fn family_algorithms(jwk: &Jwk) -> Result<Vec<Algorithm>, &'static str> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Ok(AlgorithmFamily::Rsa.algorithms().to_vec()),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Ok(vec![Algorithm::ES256]),
            EllipticCurve::P384 => Ok(vec![Algorithm::ES384]),
            _ => Err("unsupported elliptic curve"),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Ok(vec![Algorithm::EdDSA])
        }
        AlgorithmParameters::OctetKey(_) => {
            Err("a symmetric (oct) key: HS256 tokens are checked only with AUTH_JWT_SECRET")
        }
        _ => Err("unsupported key type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn keys_are_tied_to_their_types_algorithms_and_unusable_ones_left_out() {
        let document = format!(
            r#"{{"keys":[{P256},
            {{"kty":"oct","kid":"shared","k":"c2VjcmV0"}},
            {{"kty":"EC","crv":"P-256","kid":"enc","use":"enc","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}},
            {{"kty":"EC","crv":"P-256","kid":"lying","alg":"RS256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}},
            {{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}]}}"#
        );
        let set = KeySet::parse(document.as_bytes()).unwrap();
        assert_eq!(set.describe(), "2 signing keys (ec, ed)");
        let ec = set.find(Some("ec"), Algorithm::ES256).unwrap();
        assert_eq!(ec.algorithms, vec![Algorithm::ES256]);
        assert!(set.find(Some("shared"), Algorithm::HS256).is_none());
        // Without a kid, the only key for the token's algorithm.
        assert_eq!(
            set.find(None, Algorithm::EdDSA).unwrap().kid.as_deref(),
            Some("ed")
        );
        assert!(set.find(None, Algorithm::RS256).is_none());
    }

    #[test]
    fn a_document_without_usable_keys_is_an_error_that_says_so() {
        let only_oct = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
        let err = KeySet::parse(only_oct).err().unwrap();
        assert_eq!(err, "the JWKS has no usable signing key");
        let err = KeySet::parse(b"<html>").err().unwrap();
        assert!(err.starts_with("not a JWKS document"), "{err}");
    }
}
