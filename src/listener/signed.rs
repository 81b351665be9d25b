//! Signed notifications: the only ones the listener believes.
//!
//! `NOTIFY` needs no privilege, so any role that can connect may send on the channel. `pgsse.emit`
//! signs every notification with HMAC-SHA256 under the key in `pgsse.notify_key`, which only the
//! gateway's role can read, and appends the signature as the JSON object's last member:
//! `{"id" : 7, "kind" : "newBoard", "data" : {…}, "sig" : "<64 hex digits>"}`, signed over the
//! same text without that member, `{"id" : 7, "kind" : "newBoard", "data" : {…}}`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What `pgsse.emit` puts between the signed message (without its final `}`) and the signature.
const SIG_MEMBER: &[u8] = b", \"sig\" : \"";
/// The signature member with the object's closing: `, "sig" : "<hex>"}`.
const TRAILER_LEN: usize = SIG_MEMBER.len() + 64 + 2;

/// The key notifications are signed with.
#[derive(Clone)]
pub struct NotifyKey {
    /// The HMAC state after the key, cloned for each notification.
    mac: Hmac<Sha256>,
}

impl NotifyKey {
    pub fn new(key: &[u8]) -> NotifyKey {
        NotifyKey {
            mac: Hmac::new_from_slice(key).expect("HMAC takes a key of any length"),
        }
    }

    /// Whether `payload` carries a valid signature under this key.
    pub fn verifies(&self, payload: &str) -> bool {
        let Some((message, tag)) = split(payload.as_bytes()) else {
            return false;
        };
        let mut mac = self.mac.clone();
        mac.update(message);
        mac.update(b"}");
        // Constant time: the comparison does not tell a forger how much of its guess was right.
        mac.verify_slice(&tag).is_ok()
    }
}

/// Whether `payload` is shaped like a signed notification, whatever its signature's worth: a
/// genuine one that fails to verify means the key has been replaced.
pub fn looks_signed(payload: &str) -> bool {
    split(payload.as_bytes()).is_some()
}

/// The signed message (without its final `}`) and the signature.
fn split(payload: &[u8]) -> Option<(&[u8], [u8; 32])> {
    let at = payload.len().checked_sub(TRAILER_LEN)?;
    let (message, trailer) = payload.split_at(at);
    let hex = trailer.strip_prefix(SIG_MEMBER)?.strip_suffix(b"\"}")?;
    let mut tag = [0u8; 32];
    for (byte, pair) in tag.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some((message, tag))
}

fn digit(hex: u8) -> Option<u8> {
    match hex {
        b'0'..=b'9' => Some(hex - b'0'),
        b'a'..=b'f' => Some(hex - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs like `pgsse.emit`, for the tests.
    fn sign(key: &[u8], message: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(message.as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!(
            "{}, \"sig\" : \"{hex}\"}}",
            message.strip_suffix('}').unwrap()
        )
    }

    #[test]
    fn a_notification_signed_with_the_key_verifies_and_nothing_else_does() {
        let key = NotifyKey::new(b"0123456789abcdef0123456789abcdef");
        let message = r#"{"id" : 7, "kind" : "newBoard", "data" : {"board_id" : 3}}"#;
        let signed = sign(b"0123456789abcdef0123456789abcdef", message);
        assert!(key.verifies(&signed));
        assert!(looks_signed(&signed));
        // Another key, a changed message, an unsigned one, a truncated one.
        assert!(!key.verifies(&sign(b"another key", message)));
        assert!(!key.verifies(&signed.replace("\"board_id\" : 3", "\"board_id\" : 4")));
        assert!(!key.verifies(message));
        assert!(!looks_signed(message));
        assert!(!key.verifies(&signed[1..]));
        assert!(!key.verifies(""));
        // Upper-case hex is not what the database writes.
        let upper = format!(
            "{}{}",
            &signed[..signed.len() - 66],
            signed[signed.len() - 66..].to_uppercase()
        );
        assert!(!key.verifies(&upper));
    }
}
