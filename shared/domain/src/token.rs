//! Signed one-click link tokens: HMAC-SHA256 over survey, touchpoint, respondent, issue time and expiry.
//!
//! Wire form: `base64url(payload) "." base64url(tag)`, where the payload is
//! `version | kid | survey | touchpoint | respondent` (each a length byte and bytes) then
//! issued-at and expires-at as big-endian u32 Unix seconds, and the tag is the first 16 bytes
//! (128 bits) of HMAC-SHA256(key[kid], payload). The score is not signed: one token serves all
//! the links of a scale.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
/// Shortest signing key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Longest token accepted before decoding, in characters.
const MAX_TOKEN_LEN: usize = 1024;
/// Clock skew tolerated for tokens issued "in the future", in seconds.
const MAX_SKEW_SECS: i64 = 300;

/// What a link token says about who is answering what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    /// Survey id.
    pub survey: String,
    /// Touchpoint slug.
    pub touchpoint: String,
    /// Respondent id (customer id, order id or email address).
    pub respondent: String,
    /// When the token was minted, Unix seconds.
    pub issued_at: i64,
    /// When the token stops being accepted, Unix seconds.
    pub expires_at: i64,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all, or damaged in transit.
    #[error("this link is incomplete or damaged; please open it again from the original email")]
    Malformed,
    /// Signed with a key id this deployment does not know.
    #[error("this link was signed with a key this survey no longer accepts")]
    UnknownKey,
    /// The signature does not match: forged or altered.
    #[error("this link is not valid: it was altered or did not come from us")]
    BadSignature,
    /// Past its expiry time.
    #[error("this survey link has expired")]
    Expired,
    /// Claims a field that cannot be put in a token (too long), at minting.
    #[error("{0}")]
    Unmintable(String),
}

/// The link-signing keys: one active key that signs, and older ones that still verify.
#[derive(Clone)]
pub struct LinkKeyring {
    active: String,
    /// Each key's HMAC state with the key already absorbed, cloned per token.
    keys: BTreeMap<String, HmacSha256>,
}

/// A keyring definition that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("link signing keys: {0}")]
pub struct KeyringError(pub String);

impl std::fmt::Debug for LinkKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("LinkKeyring")
            .field("active", &self.active)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl LinkKeyring {
    /// A keyring from key ids and key material; `active` names the signing key.
    pub fn new(
        active: &str,
        keys: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<LinkKeyring, KeyringError> {
        let keys: BTreeMap<String, Vec<u8>> = keys.into_iter().collect();
        for (kid, key) in &keys {
            if kid.is_empty()
                || kid.len() > 32
                || !kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(KeyringError(format!(
                    "key id '{}' must be 1 to 32 letters, digits, '-' or '_'",
                    crate::survey::clip(kid, 32)
                )));
            }
            if key.len() < MIN_KEY_LEN {
                return Err(KeyringError(format!(
                    "key '{kid}' is {} bytes; use at least {MIN_KEY_LEN} random bytes",
                    key.len()
                )));
            }
        }
        if !keys.contains_key(active) {
            return Err(KeyringError(format!(
                "the active key id '{}' has no key",
                crate::survey::clip(active, 32)
            )));
        }
        let keys = keys
            .into_iter()
            .map(|(kid, key)| {
                HmacSha256::new_from_slice(&key)
                    .map(|mac| (kid, mac))
                    .map_err(|_| KeyringError("unusable key".into()))
            })
            .collect::<Result<_, _>>()?;
        Ok(LinkKeyring {
            active: active.to_string(),
            keys,
        })
    }

    /// Parses `kid:secret,kid:secret`; the first key signs, the others only verify.
    pub fn from_spec(spec: &str) -> Result<LinkKeyring, KeyringError> {
        let mut active = None;
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, secret) = part.split_once(':').ok_or_else(|| {
                KeyringError("expected kid:secret pairs separated by commas".into())
            })?;
            active.get_or_insert_with(|| kid.to_string());
            keys.push((kid.to_string(), secret.as_bytes().to_vec()));
        }
        let active = active.ok_or_else(|| KeyringError("no key given".into()))?;
        LinkKeyring::new(&active, keys)
    }

    /// Parses the secret's JSON: `{"active": "k2", "k2": "…", "k1": "…"}`.
    pub fn from_secret_json(json: &str) -> Result<LinkKeyring, KeyringError> {
        let map: BTreeMap<String, String> = serde_json::from_str(json)
            .map_err(|e| KeyringError(format!("secret is not a JSON object of strings: {e}")))?;
        let active = map
            .get("active")
            .ok_or_else(|| KeyringError("secret has no \"active\" field".into()))?;
        LinkKeyring::new(
            active,
            map.iter()
                .filter(|(k, _)| k.as_str() != "active")
                .map(|(k, v)| (k.clone(), v.as_bytes().to_vec())),
        )
    }

    /// The id of the key that signs new tokens.
    pub fn active_kid(&self) -> &str {
        &self.active
    }

    /// Mints a token for these claims with the active key.
    pub fn sign(&self, claims: &LinkClaims) -> Result<String, TokenError> {
        let mut payload = Vec::with_capacity(64);
        payload.push(VERSION);
        for (what, field) in [
            ("key id", self.active.as_str()),
            ("survey", &claims.survey),
            ("touchpoint", &claims.touchpoint),
            ("respondent", &claims.respondent),
        ] {
            let len = u8::try_from(field.len())
                .map_err(|_| TokenError::Unmintable(format!("{what} is longer than 255 bytes")))?;
            if field.is_empty() {
                return Err(TokenError::Unmintable(format!("{what} is empty")));
            }
            payload.push(len);
            payload.extend_from_slice(field.as_bytes());
        }
        for (what, t) in [
            ("issue time", claims.issued_at),
            ("expiry", claims.expires_at),
        ] {
            let t = u32::try_from(t)
                .map_err(|_| TokenError::Unmintable(format!("{what} {t} is outside 1970–2106")))?;
            payload.extend_from_slice(&t.to_be_bytes());
        }
        let mut mac = self
            .keys
            .get(&self.active)
            .ok_or(TokenError::UnknownKey)?
            .clone();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        ))
    }

    /// Checks a token's signature and expiry at `now` (Unix seconds) and returns its claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<LinkClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload_b64, tag_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag_b64)
            .map_err(|_| TokenError::Malformed)?;
        if tag.len() != TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let mut reader = Reader {
            bytes: &payload,
            pos: 0,
        };
        if reader.byte()? != VERSION {
            return Err(TokenError::Malformed);
        }
        let kid = reader.field()?;
        let mut m = self.keys.get(kid).ok_or(TokenError::UnknownKey)?.clone();
        m.update(&payload);
        // Constant-time comparison of the truncated tag.
        m.verify_truncated_left(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let survey = reader.field()?.to_string();
        let touchpoint = reader.field()?.to_string();
        let respondent = reader.field()?.to_string();
        let issued_at = i64::from(reader.u32()?);
        let expires_at = i64::from(reader.u32()?);
        if reader.pos != payload.len() {
            return Err(TokenError::Malformed);
        }
        if now >= expires_at || issued_at > now + MAX_SKEW_SECS {
            return Err(TokenError::Expired);
        }
        Ok(LinkClaims {
            survey,
            touchpoint,
            respondent,
            issued_at,
            expires_at,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, TokenError> {
        let b = *self.bytes.get(self.pos).ok_or(TokenError::Malformed)?;
        self.pos += 1;
        Ok(b)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        let end = self.pos.checked_add(n).ok_or(TokenError::Malformed)?;
        let s = self.bytes.get(self.pos..end).ok_or(TokenError::Malformed)?;
        self.pos = end;
        Ok(s)
    }
    fn field(&mut self) -> Result<&'a str, TokenError> {
        let len = self.byte()? as usize;
        if len == 0 {
            return Err(TokenError::Malformed);
        }
        std::str::from_utf8(self.take(len)?).map_err(|_| TokenError::Malformed)
    }
    fn u32(&mut self) -> Result<u32, TokenError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    fn ring() -> LinkKeyring {
        LinkKeyring::from_spec(
            "k2:0123456789abcdef0123456789abcdef-new,k1:0123456789abcdef0123456789abcdef-old",
        )
        .unwrap()
    }

    fn claims() -> LinkClaims {
        LinkClaims {
            survey: "nps-2026".into(),
            touchpoint: "post-purchase".into(),
            respondent: "ana@example.com".into(),
            issued_at: NOW - 10,
            expires_at: NOW + 86_400,
        }
    }

    #[test]
    fn signed_token_verifies_to_the_same_claims_and_is_url_safe() {
        let t = ring().sign(&claims()).unwrap();
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
            "{t}"
        );
        assert_eq!(ring().verify(&t, NOW), Ok(claims()));
    }

    #[test]
    fn changing_any_field_breaks_the_signature() {
        let ring = ring();
        let good = ring.sign(&claims()).unwrap();
        let (payload_b64, tag) = good.split_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).unwrap();
        // Flip every byte of the payload in turn: version, key id, survey, touchpoint, respondent, times.
        for i in 0..payload.len() {
            let mut p = payload.clone();
            p[i] ^= 0x01;
            let forged = format!("{}.{}", URL_SAFE_NO_PAD.encode(&p), tag);
            let r = ring.verify(&forged, NOW);
            assert!(
                matches!(
                    r,
                    Err(TokenError::BadSignature | TokenError::Malformed | TokenError::UnknownKey)
                ),
                "byte {i}: {r:?}"
            );
        }
        // Re-signing changed claims with a different key of the right id does not help.
        let attacker =
            LinkKeyring::from_spec("k2:attacker-attacker-attacker-attacker-key").unwrap();
        let mut c = claims();
        c.respondent = "mallory@example.com".into();
        assert_eq!(
            ring.verify(&attacker.sign(&c).unwrap(), NOW),
            Err(TokenError::BadSignature)
        );
        // A changed tag fails too.
        let mut t = good.clone().into_bytes();
        let first_tag_char = good.find('.').unwrap() + 1;
        t[first_tag_char] = if t[first_tag_char] == b'A' {
            b'B'
        } else {
            b'A'
        };
        assert_eq!(
            ring.verify(std::str::from_utf8(&t).unwrap(), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expired_and_future_tokens_are_refused() {
        let ring = ring();
        let t = ring.sign(&claims()).unwrap();
        assert_eq!(ring.verify(&t, NOW + 86_400), Err(TokenError::Expired));
        assert!(ring.verify(&t, NOW + 86_399).is_ok());
        let mut future = claims();
        future.issued_at = NOW + 3600;
        assert_eq!(
            ring.verify(&ring.sign(&future).unwrap(), NOW),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn old_keys_still_verify_and_unknown_key_ids_are_refused() {
        let old = LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-old").unwrap();
        let t = old.sign(&claims()).unwrap();
        assert_eq!(ring().verify(&t, NOW), Ok(claims()));
        let retired = LinkKeyring::from_spec("k0:0123456789abcdef0123456789abcdef-ret").unwrap();
        assert_eq!(
            ring().verify(&retired.sign(&claims()).unwrap(), NOW),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in [
            "",
            ".",
            "abc",
            "abc.def",
            "!!!.???",
            "AQ.AAAAAAAAAAAAAAAAAAAAAA",
            &"A".repeat(2000),
        ] {
            assert!(ring().verify(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn keyrings_refuse_short_keys_and_parse_the_secret_json() {
        assert!(LinkKeyring::from_spec("k1:short").is_err());
        assert!(LinkKeyring::from_spec("").is_err());
        let r = LinkKeyring::from_secret_json(r#"{"active":"k2","k2":"0123456789abcdef0123456789abcdef-new","k1":"0123456789abcdef0123456789abcdef-old"}"#).unwrap();
        assert_eq!(r.active_kid(), "k2");
        assert_eq!(
            r.verify(&ring().sign(&claims()).unwrap(), NOW),
            Ok(claims())
        );
        assert!(
            LinkKeyring::from_secret_json(r#"{"k1":"0123456789abcdef0123456789abcdef"}"#).is_err()
        );
        assert!(!format!("{r:?}").contains("0123456789"));
    }
}
