//! Authentication: JSON Web Tokens, checked by `jsonwebtoken`.
//!
//! Two kinds of token are accepted, each only with its own key: HS256 tokens signed with
//! `AUTH_JWT_SECRET`, and RS256, ES256 or EdDSA tokens (the other RSA and ECDSA variants too)
//! signed with one of the identity provider's keys ([`jwks`]). The header's `alg` must be one
//! that the key it names allows, so `alg: none` is refused, and an HS256 token is never checked
//! against a published key (the "algorithm confusion" forgery). The claim that names the user
//! (`AUTH_USER_CLAIM`: `sub` unless set, e.g. `preferred_username` where the provider's `sub` is
//! an opaque id), a non-empty string, and `exp` are required, `nbf` is honoured, both with
//! `AUTH_LEEWAY_SECS` of clock skew; `iss` and `aud` must be `AUTH_ISSUER` and `AUTH_AUDIENCE`
//! when those are set; `role: "admin"` marks an administrator.

mod error;
pub mod jwks;
mod keys;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::error::TokenError;
use self::jwks::Jwks;
use crate::config::Config;

/// What a valid token says about its bearer.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Claims {
    /// The username: the claim `AUTH_USER_CLAIM` names, `sub` unless set (a token the gateway
    /// signs carries it under that name).
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

    /// The claims of a checked token's payload (`exp` and `nbf` were checked with it), its user
    /// read from `user_claim`.
    fn from_payload(payload: &Value, user_claim: &str) -> Result<Claims, TokenError> {
        let refused = |claim: &str| TokenError::Claim(claim.to_owned());
        let user = payload.get(user_claim).and_then(Value::as_str);
        let user = user
            .filter(|user| !user.trim().is_empty())
            .ok_or_else(|| refused(user_claim))?;
        let nbf = match &payload["nbf"] {
            Value::Null => None,
            nbf => Some(nbf.as_u64().ok_or_else(|| refused("nbf"))?),
        };
        let role = match &payload["role"] {
            Value::Null => None,
            Value::String(role) => Some(role.clone()),
            _ => return Err(refused("role")),
        };
        Ok(Claims {
            sub: user.to_owned(),
            role,
            exp: payload["exp"].as_u64().ok_or_else(|| refused("exp"))?,
            nbf,
        })
    }
}

/// The algorithms tokens checked with the identity provider's keys may use.
const PROVIDER_ALGORITHMS: &str = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA";

/// Checks tokens, and signs them when it has a secret.
pub struct Verifier {
    /// The HS256 key, from `AUTH_JWT_SECRET`.
    secret: Option<(EncodingKey, DecodingKey)>,
    /// The identity provider's keys.
    jwks: Option<Arc<Jwks>>,
    issuer: Option<String>,
    audience: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    leeway: u64,
    /// The claim that names the user (`AUTH_USER_CLAIM`).
    user_claim: String,
}

/// The part of a token's header read before its key is chosen.
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

impl Verifier {
    /// A verifier of HS256 tokens signed with `secret`, allowing no clock skew.
    pub fn new(secret: &str) -> Verifier {
        Verifier {
            secret: Some(hs256(secret)),
            jwks: None,
            issuer: None,
            audience: None,
            leeway: 0,
            user_claim: "sub".into(),
        }
    }

    /// The verifier the settings ask for; `None` when authentication is off.
    pub fn from_config(config: &Config) -> Option<Verifier> {
        let jwks = config
            .jwks()
            .map(|source| Arc::new(Jwks::new(source, config.jwks_refresh)));
        if config.auth_secret.is_none() && jwks.is_none() {
            return None;
        }
        Some(Verifier {
            secret: config.auth_secret.as_deref().map(hs256),
            jwks,
            issuer: config.auth_issuer.clone(),
            audience: config.auth_audience.clone(),
            leeway: config.auth_leeway.as_secs(),
            user_claim: config.auth_user_claim.clone(),
        })
    }

    /// The identity provider's keys, to keep fresh.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    /// Which tokens are accepted, for the startup log.
    pub fn describe(&self) -> String {
        let mut kinds = Vec::new();
        if self.secret.is_some() {
            kinds.push("HS256 tokens signed with AUTH_JWT_SECRET".to_owned());
        }
        if let Some(jwks) = &self.jwks {
            kinds.push(format!(
                "identity provider tokens checked with the keys of {}",
                jwks.source()
            ));
        }
        format!(
            "{}, whose {:?} claim names their user",
            kinds.join(" and "),
            self.user_claim
        )
    }

    /// What the settings leave unchecked in the identity provider's tokens, for a warning at
    /// start: its keys sign tokens for every application it serves (and, with keys shared by
    /// several tenants or realms, for more than one issuer), so OpenID Connect asks a relying
    /// party to check both the audience and the issuer.
    pub fn unchecked(&self) -> Option<&'static str> {
        self.jwks.as_ref()?;
        match (&self.audience, &self.issuer) {
            (Some(_), Some(_)) => None,
            (None, None) => Some(
                "AUTH_AUDIENCE and AUTH_ISSUER are not set: any token the identity provider \
                 signs is accepted, whatever application it was issued for (and, if its keys \
                 serve several tenants or realms, whichever of them issued it); set \
                 AUTH_AUDIENCE to the audience the provider puts in this gateway's tokens (its \
                 client id) and AUTH_ISSUER to the provider's issuer",
            ),
            (None, Some(_)) => Some(
                "AUTH_AUDIENCE is not set: any token the identity provider signs is accepted, \
                 whatever application it was issued for; set AUTH_AUDIENCE to the audience the \
                 provider puts in this gateway's tokens (its client id)",
            ),
            (Some(_), None) => Some(
                "AUTH_ISSUER is not set: a token for AUTH_AUDIENCE is accepted from any issuer \
                 whose tokens the provider's keys sign (keys shared by several tenants or \
                 realms); set AUTH_ISSUER to the provider's issuer",
            ),
        }
    }

    /// Why tokens of the identity provider cannot be checked yet, if they cannot.
    pub fn not_ready(&self) -> Option<String> {
        let jwks = self.jwks.as_ref()?;
        let loaded = jwks.loaded();
        loaded.keys.is_none().then(|| {
            let why = loaded.error.unwrap_or_else(|| "not read yet".into());
            format!("the identity provider's keys from {}: {why}", jwks.source())
        })
    }

    /// The claims of a valid token. A token naming a key the gateway does not know waits for
    /// the keys to be refreshed once, unless they were lately.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match (self.check(token), &self.jwks) {
            (Err(TokenError::UnknownKey(_)), Some(jwks))
                if jwks.refresh_for_unknown_key().await =>
            {
                self.check(token)
            }
            (result, _) => result,
        }
    }

    /// A token for `claims`, signed with the secret of a verifier made with one ([`Verifier::new`],
    /// or `AUTH_JWT_SECRET`).
    pub fn sign(&self, claims: &Claims) -> String {
        self.try_sign(claims).expect("a verifier with a secret")
    }

    /// A token for `claims` (the user under `AUTH_USER_CLAIM`'s name, with `AUTH_ISSUER` and
    /// `AUTH_AUDIENCE` when set), signed with the secret; `None` without one.
    pub fn try_sign(&self, claims: &Claims) -> Option<String> {
        let (encoding, _) = self.secret.as_ref()?;
        let mut issued = serde_json::to_value(claims).expect("claims are JSON");
        let fields = issued.as_object_mut().expect("claims are an object");
        let user = fields.remove("sub").expect("claims name a user");
        fields.insert(self.user_claim.clone(), user);
        if let Some(issuer) = &self.issuer {
            fields.insert("iss".into(), issuer.as_str().into());
        }
        if let Some(audience) = &self.audience {
            fields.insert("aud".into(), audience.as_str().into());
        }
        let header = jsonwebtoken::Header::new(Algorithm::HS256);
        Some(jsonwebtoken::encode(&header, &issued, encoding).expect("HS256 signs any claims"))
    }

    /// Checks a token with the keys the gateway has now.
    fn check(&self, token: &str) -> Result<Claims, TokenError> {
        let token = token.trim();
        let header = header(token)?;
        match (header.alg.as_str(), &self.secret, &self.jwks) {
            ("HS256", Some((_, key)), _) => self.decode(token, key, Algorithm::HS256),
            (_, _, Some(jwks)) => self.check_with_provider(jwks, header, token),
            _ => Err(self.wrong(&header.alg)),
        }
    }

    /// Checks a token with the identity provider's key that its header names.
    fn check_with_provider(
        &self,
        jwks: &Jwks,
        header: Header,
        token: &str,
    ) -> Result<Claims, TokenError> {
        let alg = match header.alg.parse::<Algorithm>() {
            Ok(alg) if alg.family() != AlgorithmFamily::Hmac => alg,
            _ => return Err(self.wrong(&header.alg)),
        };
        let loaded = jwks.loaded();
        let keys = loaded.keys.ok_or_else(|| {
            TokenError::KeysUnavailable(loaded.error.unwrap_or_else(|| "not read yet".into()))
        })?;
        let key = keys
            .find(header.kid.as_deref(), alg)
            .ok_or(TokenError::UnknownKey(header.kid.clone()))?;
        if !key.algorithms.contains(&alg) {
            let kid = header.kid.unwrap_or_default();
            return Err(TokenError::KeyAlgorithm(header.alg, kid));
        }
        self.decode(token, &key.decoding, alg)
    }

    /// The refusal of a token whose algorithm is not accepted.
    fn wrong(&self, alg: &str) -> TokenError {
        let accepted = match (&self.secret, &self.jwks) {
            (Some(_), None) => "HS256".to_owned(),
            (None, _) => PROVIDER_ALGORITHMS.to_owned(),
            (Some(_), Some(_)) => format!("HS256, {PROVIDER_ALGORITHMS}"),
        };
        TokenError::Algorithm(alg.to_owned(), accepted)
    }

    fn decode(&self, token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Claims, TokenError> {
        let payload = jsonwebtoken::decode::<Value>(token, key, &self.validation(alg))
            .map_err(|e| error::refusal(e, &self.issuer, &self.audience))?
            .claims;
        Claims::from_payload(&payload, &self.user_claim)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Tokens of identity providers carry audiences of their own (Keycloak's "account"):
            // without AUTH_AUDIENCE none is expected.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

fn hs256(secret: &str) -> (EncodingKey, DecodingKey) {
    (
        EncodingKey::from_secret(secret.as_bytes()).expect("HMAC takes any non-empty key"),
        DecodingKey::from_secret(secret.as_bytes()).expect("HMAC takes any non-empty key"),
    )
}

/// The token's header, read as it is: the name of an algorithm `jsonwebtoken` does not know
/// (`none`) is kept, to say which was refused.
fn header(token: &str) -> Result<Header, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
