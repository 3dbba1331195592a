//! API keys for the API-key routes, and constant-time comparison of secrets.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Longest a dashboard session lasts, in seconds (12 hours).
pub const MAX_SESSION_SECS: i64 = 12 * 3600;

/// The version tag of dashboard session tokens.
const SESSION_VERSION: &str = "s1";

/// API keys that cannot be used; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidApiKeys(pub String);

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Comparing digests makes the time independent of the lengths too.
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The API keys that may call the API-key routes.
#[derive(Clone)]
pub struct ApiKeys(Vec<String>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl ApiKeys {
    /// Keys from a comma-separated list; each must be at least 16 characters.
    pub fn from_list(list: &str) -> Result<ApiKeys, InvalidApiKeys> {
        ApiKeys::new(
            list.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Keys from the secret's JSON object: every string value is a key.
    pub fn from_secret_json(json: &str) -> Result<ApiKeys, InvalidApiKeys> {
        let map: BTreeMap<String, String> = serde_json::from_str(json).map_err(|e| {
            InvalidApiKeys(format!(
                "API key secret is not a JSON object of strings: {e}"
            ))
        })?;
        ApiKeys::new(map.into_values().collect())
    }

    fn new(keys: Vec<String>) -> Result<ApiKeys, InvalidApiKeys> {
        if keys.is_empty() {
            return Err(InvalidApiKeys("no API key configured".into()));
        }
        if keys.iter().any(|k| k.len() < 16) {
            return Err(InvalidApiKeys(
                "API keys must be at least 16 characters".into(),
            ));
        }
        Ok(ApiKeys(keys))
    }

    /// A dashboard session token for `given`, valid until `expires_at` (Unix seconds), when
    /// `given` is one of the keys.
    ///
    /// The token is `s1.<expires_at>.<mac>`, the MAC an HMAC-SHA256 keyed with the API key
    /// itself: it never contains the key, cannot be made without it, and stops verifying as soon
    /// as the key is removed from the list (revoking a key ends its sessions).
    pub fn issue_session(&self, given: &str, expires_at: i64) -> Option<String> {
        if !self.accepts(given) {
            return None;
        }
        Some(format!(
            "{SESSION_VERSION}.{expires_at}.{}",
            session_mac(given, expires_at)
        ))
    }

    /// Whether `token` is a session token made with one of the keys and unexpired at `now`
    /// (Unix seconds). Tokens claiming to last longer than [`MAX_SESSION_SECS`] are refused.
    pub fn verify_session(&self, token: &str, now: i64) -> bool {
        let mut parts = token.split('.');
        let (Some(version), Some(expires), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(expires_at) = expires.parse::<i64>() else {
            return false;
        };
        // The expiry is read back exactly as signed: no sign, no leading zeros.
        if version != SESSION_VERSION
            || expires_at.to_string() != expires
            || expires_at <= now
            || expires_at > now.saturating_add(MAX_SESSION_SECS)
        {
            return false;
        }
        // Check every key, so timing does not tell which one matched.
        self.0.iter().fold(false, |ok, k| {
            constant_time_eq(session_mac(k, expires_at).as_bytes(), mac.as_bytes()) | ok
        })
    }

    /// Whether `given` is one of the keys.
    pub fn accepts(&self, given: &str) -> bool {
        // Check every key, so timing does not tell which one matched.
        self.0.iter().fold(false, |ok, k| {
            constant_time_eq(k.as_bytes(), given.as_bytes()) | ok
        })
    }
}

/// The MAC of a session token expiring at `expires_at`, keyed with an API key.
fn session_mac(key: &str, expires_at: i64) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(b"sondeo dashboard session\0");
    mac.update(SESSION_VERSION.as_bytes());
    mac.update(b"\0");
    mac.update(expires_at.to_string().as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_accept_only_their_own_keys() {
        let keys = ApiKeys::from_list("0123456789abcdef-one, 0123456789abcdef-two").unwrap();
        assert!(keys.accepts("0123456789abcdef-two"));
        assert!(!keys.accepts("0123456789abcdef-thr"));
        assert!(!keys.accepts(""));
        assert!(ApiKeys::from_list("short").is_err());
        assert!(ApiKeys::from_list("").is_err());
        let from_secret =
            ApiKeys::from_secret_json(r#"{"api_key":"0123456789abcdef-xyz"}"#).unwrap();
        assert!(from_secret.accepts("0123456789abcdef-xyz"));
        assert!(!format!("{from_secret:?}").contains("0123"));
    }

    #[test]
    fn a_session_token_verifies_until_it_expires_and_never_holds_the_key() {
        let keys = ApiKeys::from_list("0123456789abcdef-one, 0123456789abcdef-two").unwrap();
        let now = 1_800_000_000;
        let token = keys
            .issue_session("0123456789abcdef-two", now + 3600)
            .unwrap();
        assert!(!token.contains("0123456789abcdef"), "{token}");
        assert!(keys.verify_session(&token, now));
        assert!(keys.verify_session(&token, now + 3599));
        assert!(!keys.verify_session(&token, now + 3600), "expired");
        assert!(keys
            .issue_session("0123456789abcdef-thr", now + 3600)
            .is_none());
    }

    #[test]
    fn forged_tampered_or_too_long_session_tokens_are_refused() {
        let keys = ApiKeys::from_list("0123456789abcdef-one").unwrap();
        let now = 1_800_000_000;
        let token = keys
            .issue_session("0123456789abcdef-one", now + 60)
            .unwrap();
        // Another expiry with the same MAC.
        let later = token.replacen(&(now + 60).to_string(), &(now + 600).to_string(), 1);
        assert!(!keys.verify_session(&later, now));
        let padded = token.replacen(&(now + 60).to_string(), &format!("0{}", now + 60), 1);
        assert!(!keys.verify_session(&padded, now));
        // A token made with a key that is not (or no longer) in the list.
        let other = ApiKeys::from_list("0123456789abcdef-old").unwrap();
        let revoked = other
            .issue_session("0123456789abcdef-old", now + 60)
            .unwrap();
        assert!(!keys.verify_session(&revoked, now));
        // A correctly made token that claims to last longer than a session may.
        let long = keys
            .issue_session("0123456789abcdef-one", now + MAX_SESSION_SECS + 1)
            .unwrap();
        assert!(!keys.verify_session(&long, now));
        for junk in [
            "",
            "s1",
            "s1..",
            "s1.x.y",
            &format!("{token}.x"),
            "0123456789abcdef-one",
        ] {
            assert!(!keys.verify_session(junk, now), "{junk}");
        }
    }
}
