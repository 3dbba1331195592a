//! One-click link tokens: which survey, touchpoint and respondent a link answers for, sealed so
//! that only this deployment can mint them or read them.
//!
//! **Version 2** (minted): `base64url(2 | kid_len | kid | siv | ciphertext)`. The plaintext is
//! `survey | touchpoint | respondent` (each a length byte and bytes) then issued-at and expires-at
//! as big-endian u32 Unix seconds; it is encrypted with AES-256-SIV (RFC 5297) under a 64-byte key
//! `HKDF-SHA256(ikm = secret[kid], salt = none, info = "sondeo link token v2 aes-256-siv")`, with
//! `2 | kid_len | kid` as associated data. `siv` is the 16-byte synthetic IV, which is also the
//! authentication tag. Only the version, the key id and the token's length are readable: the
//! respondent id (often an email address), the survey and the touchpoint are not, so a forwarded
//! or logged link discloses none of them.
//!
//! Why AES-SIV: it needs no nonce. The IV is a pseudo-random function of the key, the header and
//! the plaintext, so no nonce has to be carried in the link, stored, or kept unique. Sealing the
//! same claims twice gives the same token (as version 1 did), which shows only that the two are
//! equal. AES-GCM fails badly when a nonce repeats, and AES-GCM-SIV or a random nonce would add
//! 12 or more bytes (16 or more characters) to every link. SIV's 16 bytes replace version 1's
//! 16-byte HMAC tag, so version 2 links are no longer than version 1 links. The HKDF label
//! separates the encryption key from the same secret's use as a version-1 HMAC key, so one
//! configured secret serves both.
//!
//! **Version 1** (verified only, until its key id leaves the keyring):
//! `base64url(payload) "." base64url(tag)`, where the payload is
//! `1 | kid | survey | touchpoint | respondent` (each a length byte and bytes) then issued-at and
//! expires-at as big-endian u32, and the tag is the first 16 bytes of
//! HMAC-SHA256(secret[kid], payload). Its fields are signed but readable.
//!
//! Version 2 may carry extensions after the two times (each a tag byte): `1 | len | send` names
//! the send the link belongs to (a campaign wave, an order, a ticket; without it the default
//! send), and `2` marks a campaign link, whose respondent comes from the URL (`rid`) instead of
//! the token. A token without extensions is byte for byte what version 2 minted before they
//! existed.
//!
//! The score is in neither version: one token serves all the links of a scale.

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

type HmacSha256 = Hmac<Sha256>;

/// Version 1: signed (HMAC-SHA256), readable.
const V1: u8 = 1;
/// Version 2: sealed (AES-256-SIV).
const V2: u8 = 2;
const TAG_LEN: usize = 16;
/// The synthetic IV (and tag) of an AES-SIV ciphertext.
const SIV_LEN: usize = 16;
/// HKDF label of the version-2 sealing key.
const SEAL_KEY_INFO: &[u8] = b"sondeo link token v2 aes-256-siv";
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

/// What a link is for beyond who answers: its send, and whether it is a campaign link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkScope {
    /// The send (campaign wave, order, ticket); empty for the default send.
    pub send: String,
    /// A campaign link: one per survey, touchpoint and send, the respondent taken from the URL.
    pub campaign: bool,
}

/// The respondent field sealed in a campaign token (its respondent comes from the URL).
pub const CAMPAIGN_RESPONDENT: &str = "*";
/// Extension tag: the send.
const EXT_SEND: u8 = 1;
/// Extension tag: a campaign link.
const EXT_CAMPAIGN: u8 = 2;

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

/// One key id's material, ready for either token version.
#[derive(Clone)]
struct LinkKey {
    /// Version 1: the HMAC state with the secret already absorbed, cloned per token.
    mac: HmacSha256,
    /// Version 2: the AES-256-SIV key derived from the secret.
    seal: [u8; 64],
}

impl LinkKey {
    fn new(secret: &[u8]) -> Result<LinkKey, KeyringError> {
        let mac = <HmacSha256 as Mac>::new_from_slice(secret)
            .map_err(|_| KeyringError("unusable key".into()))?;
        let mut seal = [0u8; 64];
        Hkdf::<Sha256>::new(None, secret)
            .expand(SEAL_KEY_INFO, &mut seal)
            .map_err(|_| KeyringError("unusable key".into()))?;
        Ok(LinkKey { mac, seal })
    }

    /// A fresh AES-SIV instance (encrypting and decrypting take it mutably).
    fn siv(&self) -> Aes256Siv {
        Aes256Siv::new(&self.seal.into())
    }
}

/// The link-signing keys: one active key that signs, and older ones that still verify.
#[derive(Clone)]
pub struct LinkKeyring {
    active: String,
    keys: BTreeMap<String, LinkKey>,
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
            .map(|(kid, key)| LinkKey::new(&key).map(|k| (kid, k)))
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

    /// Mints a sealed (version 2) token for these claims with the active key, in the default send.
    pub fn sign(&self, claims: &LinkClaims) -> Result<String, TokenError> {
        self.sign_scoped(claims, &LinkScope::default())
    }

    /// Mints a sealed (version 2) token for these claims and this send or campaign.
    pub fn sign_scoped(
        &self,
        claims: &LinkClaims,
        scope: &LinkScope,
    ) -> Result<String, TokenError> {
        let key = self.keys.get(&self.active).ok_or(TokenError::UnknownKey)?;
        let mut token = Vec::with_capacity(96);
        token.push(V2);
        push_field(&mut token, "key id", &self.active)?;
        let mut plaintext = Vec::with_capacity(64);
        // One person is one respondent however their address was typed.
        let claims = LinkClaims {
            respondent: crate::mailbox::canonical_respondent(&claims.respondent),
            ..claims.clone()
        };
        push_claims(&mut plaintext, &claims)?;
        if !scope.send.is_empty() {
            plaintext.push(EXT_SEND);
            push_field(&mut plaintext, "send", &scope.send)?;
        }
        if scope.campaign {
            plaintext.push(EXT_CAMPAIGN);
        }
        let sealed = key
            .siv()
            .encrypt([&token], &plaintext)
            .map_err(|_| TokenError::Unmintable("the claims could not be sealed".into()))?;
        token.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(&token))
    }

    /// Checks a token (either version) and its expiry at `now` (Unix seconds) and returns its claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<LinkClaims, TokenError> {
        self.verify_scoped(token, now).map(|(claims, _)| claims)
    }

    /// Checks a token's seal (either version) but not its expiry, and returns its claims and
    /// scope: for unsubscribe links, which must keep working after the survey link expires.
    pub fn verify_ignoring_expiry(
        &self,
        token: &str,
    ) -> Result<(LinkClaims, LinkScope), TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        match token.split_once('.') {
            Some((payload, tag)) => Ok((self.open_v1(payload, tag)?, LinkScope::default())),
            None => self.open_v2(token),
        }
    }

    /// Checks a token (either version) and its expiry at `now`, and returns its claims and scope.
    pub fn verify_scoped(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(LinkClaims, LinkScope), TokenError> {
        let (claims, scope) = self.verify_ignoring_expiry(token)?;
        if now >= claims.expires_at || claims.issued_at > now + MAX_SKEW_SECS {
            return Err(TokenError::Expired);
        }
        Ok((claims, scope))
    }

    /// Checks a version-1 token's HMAC and reads its claims.
    fn open_v1(&self, payload_b64: &str, tag_b64: &str) -> Result<LinkClaims, TokenError> {
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
        if reader.byte()? != V1 {
            return Err(TokenError::Malformed);
        }
        let kid = reader.field()?;
        let mut m = self
            .keys
            .get(kid)
            .ok_or(TokenError::UnknownKey)?
            .mac
            .clone();
        m.update(&payload);
        // Constant-time comparison of the truncated tag.
        m.verify_truncated_left(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        reader.claims()
    }

    /// Opens a version-2 token's sealed claims and extensions.
    fn open_v2(&self, token: &str) -> Result<(LinkClaims, LinkScope), TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        let mut reader = Reader {
            bytes: &bytes,
            pos: 0,
        };
        if reader.byte()? != V2 {
            return Err(TokenError::Malformed);
        }
        let kid = reader.field()?;
        let key = self.keys.get(kid).ok_or(TokenError::UnknownKey)?;
        let (header, sealed) = bytes.split_at(reader.pos);
        if sealed.len() < SIV_LEN {
            return Err(TokenError::Malformed);
        }
        // Checks the synthetic IV in constant time before returning any plaintext.
        let plaintext = key
            .siv()
            .decrypt([header], sealed)
            .map_err(|_| TokenError::BadSignature)?;
        let mut reader = Reader {
            bytes: &plaintext,
            pos: 0,
        };
        let claims = reader.fields()?;
        let mut scope = LinkScope::default();
        while reader.pos < reader.bytes.len() {
            match reader.byte()? {
                EXT_SEND if scope.send.is_empty() => scope.send = reader.field()?.to_string(),
                EXT_CAMPAIGN if !scope.campaign => scope.campaign = true,
                _ => return Err(TokenError::Malformed),
            }
        }
        Ok((claims, scope))
    }
}

/// Appends a length byte and the field's bytes.
fn push_field(out: &mut Vec<u8>, what: &str, field: &str) -> Result<(), TokenError> {
    let len = u8::try_from(field.len())
        .map_err(|_| TokenError::Unmintable(format!("{what} is longer than 255 bytes")))?;
    if field.is_empty() {
        return Err(TokenError::Unmintable(format!("{what} is empty")));
    }
    out.push(len);
    out.extend_from_slice(field.as_bytes());
    Ok(())
}

/// Appends survey, touchpoint and respondent, then issue and expiry times.
fn push_claims(out: &mut Vec<u8>, claims: &LinkClaims) -> Result<(), TokenError> {
    for (what, field) in [
        ("survey", &claims.survey),
        ("touchpoint", &claims.touchpoint),
        ("respondent", &claims.respondent),
    ] {
        push_field(out, what, field)?;
    }
    for (what, t) in [
        ("issue time", claims.issued_at),
        ("expiry", claims.expires_at),
    ] {
        let t = u32::try_from(t)
            .map_err(|_| TokenError::Unmintable(format!("{what} {t} is outside 1970–2106")))?;
        out.extend_from_slice(&t.to_be_bytes());
    }
    Ok(())
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
    /// Reads survey, touchpoint, respondent and the two times, which must end the bytes.
    fn claims(mut self) -> Result<LinkClaims, TokenError> {
        let claims = self.fields()?;
        if self.pos != self.bytes.len() {
            return Err(TokenError::Malformed);
        }
        Ok(claims)
    }

    /// Reads survey, touchpoint, respondent and the two times.
    fn fields(&mut self) -> Result<LinkClaims, TokenError> {
        let survey = self.field()?.to_string();
        let touchpoint = self.field()?.to_string();
        let respondent = self.field()?.to_string();
        let issued_at = i64::from(self.u32()?);
        let expires_at = i64::from(self.u32()?);
        Ok(LinkClaims {
            survey,
            touchpoint,
            respondent,
            issued_at,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;
    const NEW: &str = "k2:0123456789abcdef0123456789abcdef-new";
    const OLD: &str = "k1:0123456789abcdef0123456789abcdef-old";

    fn ring() -> LinkKeyring {
        LinkKeyring::from_spec(&format!("{NEW},{OLD}")).unwrap()
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

    /// Version-1 minting exactly as `sign` did before version 2: the links already sent.
    fn sign_v1(ring: &LinkKeyring, claims: &LinkClaims) -> String {
        let mut payload = vec![V1];
        push_field(&mut payload, "key id", &ring.active).unwrap();
        push_claims(&mut payload, claims).unwrap();
        let mut mac = ring.keys[&ring.active].mac.clone();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        )
    }

    /// Minted by the version-1 code before version 2 existed (commit 5c2dc81), key `OLD`.
    const GOLDEN_V1: &str = "AQJrMQhucHMtMjAyNg1wb3N0LXB1cmNoYXNlIGFuYS5tYXJpYS5sb3BlekBleGFtcGxlLW1haWwuY29tarE7gGrYyIA.Ez_KXz4Ra6KYMO4kHtvepg";

    fn golden_claims() -> LinkClaims {
        LinkClaims {
            survey: "nps-2026".into(),
            touchpoint: "post-purchase".into(),
            respondent: "ana.maria.lopez@example-mail.com".into(),
            issued_at: 1_790_000_000,
            expires_at: 1_792_592_000,
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn minted_tokens_are_version_2_url_safe_and_verify_to_the_same_claims() {
        let t = ring().sign(&claims()).unwrap();
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{t}"
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap()[0], V2);
        assert_eq!(ring().verify(&t, NOW), Ok(claims()));
        // Deterministic: the same claims give the same link.
        assert_eq!(ring().sign(&claims()).unwrap(), t);
    }

    #[test]
    fn no_claim_is_readable_in_a_version_2_token() {
        let ring = ring();
        for respondent in [
            "ana@example.com",
            "ana.maria.lopez@example-mail.com",
            "cust-000123",
            "x",
        ] {
            let mut c = claims();
            c.respondent = respondent.into();
            let t = ring.sign(&c).unwrap();
            let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
            for field in [&c.respondent, &c.survey, &c.touchpoint] {
                if field.len() < 2 {
                    continue;
                }
                assert!(!t.contains(field.as_str()), "{field} in {t}");
                assert!(!contains(&raw, field.as_bytes()), "{field} in {raw:?}");
                // Nor base64 of it at any of the three alignments.
                for shift in 0..3 {
                    let mut padded = vec![0u8; shift];
                    padded.extend_from_slice(field.as_bytes());
                    let b64 = URL_SAFE_NO_PAD.encode(&padded);
                    let inner = &b64[(shift * 4).div_ceil(3) + 1..b64.len().saturating_sub(2)];
                    assert!(
                        inner.len() < 3 || !t.contains(inner),
                        "{field} as {inner} in {t}"
                    );
                }
            }
            for t32 in [c.issued_at, c.expires_at] {
                assert!(!contains(&raw, &(t32 as u32).to_be_bytes()));
            }
        }
        // The same check finds the respondent in a version-1 token: it is readable there.
        let v1 = sign_v1(&ring, &claims());
        let payload = URL_SAFE_NO_PAD
            .decode(v1.split_once('.').unwrap().0)
            .unwrap();
        assert!(contains(&payload, b"ana@example.com"));
    }

    #[test]
    fn every_altered_byte_character_or_length_of_a_version_2_token_is_refused() {
        let ring = ring();
        let good = ring.sign(&claims()).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&good).unwrap();
        let refused = |t: &str, what: &str| {
            let r = ring.verify(t, NOW);
            assert!(
                matches!(
                    r,
                    Err(TokenError::BadSignature | TokenError::Malformed | TokenError::UnknownKey)
                ),
                "{what}: {r:?}"
            );
            r.err()
        };
        // Every bit of the version, key id, synthetic IV and ciphertext.
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut b = raw.clone();
                b[i] ^= 1 << bit;
                let r = refused(&URL_SAFE_NO_PAD.encode(&b), &format!("byte {i} bit {bit}"));
                // Past the header only the seal can notice, and it does.
                if i >= 4 {
                    assert_eq!(r, Some(TokenError::BadSignature), "byte {i} bit {bit}");
                }
            }
        }
        // Every character replaced by every other URL-safe one (including the unused low bits
        // of the last character, which must not give a second spelling of the same token).
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..good.len() {
            for &c in alphabet.iter().filter(|&&c| c != good.as_bytes()[i]) {
                let mut t = good.clone().into_bytes();
                t[i] = c;
                refused(
                    std::str::from_utf8(&t).unwrap(),
                    &format!("char {i} -> {}", c as char),
                );
            }
        }
        // Truncated to any length, or extended.
        for n in 0..good.len() {
            refused(&good[..n], &format!("first {n} characters"));
        }
        for extra in ["A", "AA", "AAAA", "."] {
            refused(&format!("{good}{extra}"), &format!("{good}+{extra}"));
        }
        // Sealed with another secret under the same key id: refused, not decrypted.
        let attacker =
            LinkKeyring::from_spec("k2:attacker-attacker-attacker-attacker-key").unwrap();
        assert_eq!(
            ring.verify(&attacker.sign(&claims()).unwrap(), NOW),
            Err(TokenError::BadSignature)
        );
        // Moved under another known key id: the key id is authenticated too.
        let mut moved = raw.clone();
        moved[3] = b'1';
        assert_eq!(
            ring.verify(&URL_SAFE_NO_PAD.encode(&moved), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn an_address_is_sealed_in_its_canonical_form() {
        let ring = LinkKeyring::from_spec(&format!("k1:{}", "ab".repeat(32))).unwrap();
        let claims = LinkClaims {
            respondent: " Alice@Exämple.COM ".into(),
            ..claims()
        };
        let token = ring.sign(&claims).unwrap();
        let read = ring.verify(&token, claims.issued_at).unwrap();
        assert_eq!(read.respondent, "alice@xn--exmple-cua.com");
        let id = LinkClaims {
            respondent: "CRM-42".into(),
            ..claims
        };
        let read = ring.verify(&ring.sign(&id).unwrap(), id.issued_at).unwrap();
        assert_eq!(read.respondent, "CRM-42");
    }

    #[test]
    fn version_1_links_minted_before_version_2_still_verify() {
        let ring = ring();
        assert_eq!(ring.verify(GOLDEN_V1, NOW), Ok(golden_claims()));
        assert_eq!(
            sign_v1(&LinkKeyring::from_spec(OLD).unwrap(), &golden_claims()),
            GOLDEN_V1
        );
        let v1 = sign_v1(&ring, &claims());
        assert_eq!(ring.verify(&v1, NOW), Ok(claims()));
        assert_eq!(ring.verify(&v1, NOW + 86_400), Err(TokenError::Expired));
    }

    #[test]
    fn changing_any_field_of_a_version_1_token_breaks_the_signature() {
        let ring = ring();
        let good = sign_v1(&ring, &claims());
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
            ring.verify(&sign_v1(&attacker, &c), NOW),
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
        // A version-1 token relabelled as version 2 (and the reverse) is not accepted.
        let mut p = payload.clone();
        p[0] = V2;
        assert!(ring
            .verify(&format!("{}.{}", URL_SAFE_NO_PAD.encode(&p), tag), NOW)
            .is_err());
        let mut v2 = URL_SAFE_NO_PAD
            .decode(ring.sign(&claims()).unwrap())
            .unwrap();
        v2[0] = V1;
        assert!(ring.verify(&URL_SAFE_NO_PAD.encode(&v2), NOW).is_err());
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
    fn rotation_keeps_both_versions_of_old_links_until_their_key_is_removed() {
        // Before rotation: k1 signs; links of both versions are out there.
        let before = LinkKeyring::from_spec(OLD).unwrap();
        let old_v1 = sign_v1(&before, &claims());
        let old_v2 = before.sign(&claims()).unwrap();
        // Rotation: k2 signs, k1 still verifies.
        let during = ring();
        assert_eq!(during.active_kid(), "k2");
        for t in [&old_v1, &old_v2, &GOLDEN_V1.to_string()] {
            assert!(during.verify(t, NOW).is_ok(), "{t}");
        }
        let new = during.sign(&claims()).unwrap();
        assert_eq!(&URL_SAFE_NO_PAD.decode(&new).unwrap()[1..4], b"\x02k2");
        assert_eq!(before.verify(&new, NOW), Err(TokenError::UnknownKey));
        // After: k1 removed; its links stop working, k2's keep working.
        let after = LinkKeyring::from_spec(NEW).unwrap();
        for t in [&old_v1, &old_v2, &GOLDEN_V1.to_string()] {
            assert_eq!(after.verify(t, NOW), Err(TokenError::UnknownKey), "{t}");
        }
        assert_eq!(after.verify(&new, NOW), Ok(claims()));
    }

    #[test]
    fn a_version_2_token_is_no_longer_than_version_1() {
        // A 30-character email address, the fixture's survey and touchpoint, key id "k1".
        let respondent = "maria.fernandez@correo-mail.es";
        assert_eq!(respondent.len(), 30);
        let ring = LinkKeyring::from_spec(OLD).unwrap();
        let c = LinkClaims {
            respondent: respondent.into(),
            ..claims()
        };
        let (v1, v2) = (sign_v1(&ring, &c), ring.sign(&c).unwrap());
        let link =
            |t: &str| format!("https://abcdefghij.lambda-url.us-east-1.on.aws/r/{t}?score=9");
        assert_eq!((v1.len(), v2.len()), (111, 110));
        assert_eq!((link(&v1).len(), link(&v2).len()), (168, 167));
    }

    /// A version-2 token, pinned: changing the format, the HKDF label or the cipher would break
    /// every link already sent. The same string comes out of an independent implementation of
    /// the module doc (Python: RFC 5869 HKDF by hand, `cryptography`'s AESSIV).
    #[test]
    fn the_version_2_format_is_pinned() {
        let ring = LinkKeyring::from_spec(OLD).unwrap();
        let t = ring.sign(&golden_claims()).unwrap();
        assert_eq!(t, GOLDEN_V2);
        assert_eq!(ring.verify(GOLDEN_V2, NOW), Ok(golden_claims()));
    }

    const GOLDEN_V2: &str = "AgJrMVp4c01PEyo0PahB4V_g7aqT53u13YvNhgpIQWc9zp_6mMAufWPGQRfdxAWjbiqBr1BSV8GmjvSqrGWU4phynSMATL3qpUajkqyqXuZC45wy";

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in [
            "",
            ".",
            "abc",
            "abc.def",
            "!!!.???",
            "!!!",
            "AQ.AAAAAAAAAAAAAAAAAAAAAA",
            "AgJrMQ",
            "AgJrMQAAAAAAAAAAAAAAAAAAAA",
            "AgJrMQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
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

    /// Seals raw plaintext as a version-2 token under the ring's active key (for malformed cases).
    fn seal_raw(ring: &LinkKeyring, plaintext: &[u8]) -> String {
        let mut token = vec![V2];
        push_field(&mut token, "key id", &ring.active).unwrap();
        let sealed = ring.keys[&ring.active]
            .siv()
            .encrypt([&token], plaintext)
            .unwrap();
        token.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(&token)
    }

    #[test]
    fn sends_and_campaign_links_round_trip_and_the_default_send_mints_the_same_token() {
        let ring = ring();
        let default = ring.sign(&claims()).unwrap();
        assert_eq!(
            ring.sign_scoped(&claims(), &LinkScope::default()).unwrap(),
            default
        );
        assert_eq!(
            ring.verify_scoped(&default, NOW),
            Ok((claims(), LinkScope::default()))
        );
        for scope in [
            LinkScope {
                send: "2026-q4".into(),
                campaign: false,
            },
            LinkScope {
                send: "order #1234".into(),
                campaign: true,
            },
            LinkScope {
                send: String::new(),
                campaign: true,
            },
        ] {
            let t = ring.sign_scoped(&claims(), &scope).unwrap();
            assert_ne!(t, default);
            assert_eq!(ring.verify_scoped(&t, NOW), Ok((claims(), scope.clone())));
            // The plain verify reads the same claims.
            assert_eq!(ring.verify(&t, NOW), Ok(claims()));
        }
        let long = LinkScope {
            send: "x".repeat(256),
            campaign: false,
        };
        assert!(matches!(
            ring.sign_scoped(&claims(), &long),
            Err(TokenError::Unmintable(_))
        ));
    }

    #[test]
    fn unknown_or_repeated_extensions_are_malformed() {
        let ring = ring();
        let mut base = Vec::new();
        push_claims(&mut base, &claims()).unwrap();
        for tail in [
            &[9u8][..],
            &[EXT_CAMPAIGN, EXT_CAMPAIGN],
            &[EXT_SEND, 1, b'a', EXT_SEND, 1, b'b'],
            &[EXT_SEND, 5, b'a'],
            &[EXT_SEND, 0],
        ] {
            let mut p = base.clone();
            p.extend_from_slice(tail);
            assert_eq!(
                ring.verify(&seal_raw(&ring, &p), NOW),
                Err(TokenError::Malformed),
                "{tail:?}"
            );
        }
        let mut p = base.clone();
        p.extend_from_slice(&[EXT_SEND, 2, b'q', b'4', EXT_CAMPAIGN]);
        assert_eq!(
            ring.verify_scoped(&seal_raw(&ring, &p), NOW).unwrap().1,
            LinkScope {
                send: "q4".into(),
                campaign: true
            }
        );
    }
}
