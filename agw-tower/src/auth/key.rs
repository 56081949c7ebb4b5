//! Gateway-issued client keys: generation, hashing, and the record a store keeps.

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The prefix of every key agw issues.
pub const KEY_PREFIX: &str = "agw_";

/// The SHA-256 of a client key: all a store keeps of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only a prefix: enough to tell records apart in a debug print.
        write!(f, "KeyHash({}…)", &self.to_hex()[..8])
    }
}

impl KeyHash {
    /// Hashes a presented key.
    pub fn of(key: &str) -> Self {
        let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let mut out = [0; 32];
        out.copy_from_slice(d.as_ref());
        KeyHash(out)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        // Runs on every authenticated request (the record's hash is checked again): a digit
        // at a time, without `from_str_radix`'s sign and overflow handling.
        fn digit(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        }
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut out = [0; 32];
        for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            *o = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(KeyHash(out))
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// A new key: `agw_` and 32 random bytes in base64url (43 characters), and its hash.
///
/// # Errors
///
/// The system random source failed.
pub fn generate() -> Result<(String, KeyHash), ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = KeyHash::of(&key);
    Ok((key, hash))
}

/// What a store keeps of one key. The key itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Unique name (a person or a service), shown in logs and metrics.
    pub name: Arc<str>,
    /// The team whose limits also apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<Arc<str>>,
    /// SHA-256 of the key, lowercase hex.
    pub hash: String,
    /// Created, seconds since the Unix epoch.
    pub created: u64,
    /// Expires, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Revoked keys stay listed but never authenticate.
    #[serde(default)]
    pub revoked: bool,
}

impl KeyRecord {
    /// Whether the record lets a key in at `now` (Unix seconds).
    pub fn is_valid_at(&self, now: u64) -> bool {
        !self.revoked && self.expires.is_none_or(|e| now < e)
    }

    /// The record's hash, parsed.
    pub fn key_hash(&self) -> Option<KeyHash> {
        KeyHash::from_hex(&self.hash)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hash_round_trips() {
        let (a, ha) = generate().unwrap();
        let (b, hb) = generate().unwrap();
        assert!(a.starts_with(KEY_PREFIX) && a.len() == 4 + 43, "{a}");
        assert_ne!(a, b);
        assert!(!ha.ct_eq(&hb));
        assert!(ha.ct_eq(&KeyHash::of(&a)));
        assert_eq!(KeyHash::from_hex(&ha.to_hex()), Some(ha));
        assert_eq!(KeyHash::from_hex("zz"), None);
        let upper = ha.to_hex().to_ascii_uppercase();
        assert_eq!(KeyHash::from_hex(&upper), Some(ha));
        // (`u8::from_str_radix` once let a sign through: "+f" read as 0x0f.)
        for bad in ["+f", "f+", "++", "-f", "g0", "0 ", "é"] {
            let s = format!("{}{bad}", &ha.to_hex()[..64 - bad.len()]);
            assert_eq!(KeyHash::from_hex(&s), None, "{s}");
        }
        assert_eq!(KeyHash::from_hex(&ha.to_hex()[..62]), None);
        assert!(!format!("{ha:?}").contains(&ha.to_hex()));
    }

    #[test]
    fn revoked_and_expired_records_are_invalid() {
        let r = KeyRecord {
            name: "a".into(),
            team: None,
            hash: String::new(),
            created: 0,
            expires: Some(100),
            revoked: false,
        };
        assert!(r.is_valid_at(99));
        assert!(!r.is_valid_at(100));
        let r = KeyRecord {
            expires: None,
            revoked: true,
            ..r
        };
        assert!(!r.is_valid_at(0));
    }
}
