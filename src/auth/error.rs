//! Why a token was refused, in words its bearer can act on.

use jsonwebtoken::errors::{Error, ErrorKind};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("an access token is required")]
    Missing,
    #[error("the access token is malformed")]
    Malformed,
    /// The token's `alg`, and the algorithms the gateway accepts.
    #[error("the access token uses algorithm {0:?}; only {1} is accepted")]
    Algorithm(String, String),
    /// The token's `alg` and `kid`, which names a key for other algorithms.
    #[error("the access token uses algorithm {0:?}, which its key {1:?} is not for")]
    KeyAlgorithm(String, String),
    /// The token's `kid`.
    #[error("{}", unknown_key(.0))]
    UnknownKey(Option<String>),
    /// Why the identity provider's keys could not be read.
    #[error("the identity provider's keys are not loaded yet ({0}); try again shortly")]
    KeysUnavailable(String),
    #[error("the access token's signature is not valid")]
    Signature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// The issuer the token must name.
    #[error("the access token's issuer (iss) is not {0:?}")]
    Issuer(String),
    /// The audience the token must name.
    #[error("the access token's audience (aud) does not include {0:?}")]
    Audience(String),
    /// The claim's name.
    #[error("the access token lacks a valid {0:?} claim")]
    Claim(String),
}

fn unknown_key(kid: &Option<String>) -> String {
    match kid {
        Some(kid) => {
            format!("the access token's key {kid:?} is not one of the identity provider's")
        }
        None => "the access token names no key (kid), and the identity provider has no single \
                 key for its algorithm"
            .into(),
    }
}

/// What to tell the bearer of a token `jsonwebtoken` refused.
pub fn refusal(error: Error, issuer: &Option<String>, audience: &Option<String>) -> TokenError {
    match error.into_kind() {
        // Json: a payload that is not a JSON object.
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::Json(_) => TokenError::Malformed,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer(issuer.clone().unwrap_or_default()),
        ErrorKind::InvalidAudience => TokenError::Audience(audience.clone().unwrap_or_default()),
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            TokenError::Claim(claim)
        }
        _ => TokenError::Signature,
    }
}
