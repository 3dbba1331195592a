//! Response events: one answer from one respondent at one touchpoint, as it travels on the queue.

use crate::survey::{check_slug, clip, Survey, SurveyKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest comment kept, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;
/// Most properties on one response.
pub const MAX_PROPERTIES: usize = 20;
/// Longest property value, in characters.
pub const MAX_PROPERTY_VALUE_CHARS: usize = 200;
/// Longest respondent id, in bytes.
pub const MAX_RESPONDENT_LEN: usize = 200;
/// Longest send name, in bytes.
pub const MAX_SEND_LEN: usize = 64;

/// Where a response came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A signed one-click email link.
    Link,
    /// A campaign link whose respondent id comes from a merge tag (unsigned respondent).
    Campaign,
    /// The submission API.
    Api,
    /// An e-commerce webhook invitation.
    Webhook,
    /// A past answer imported from another tool (`sondeo import`, `POST /v1/imports`), with its
    /// original answer time.
    Import,
}

impl Source {
    /// Every source, in the order metrics list them.
    pub const ALL: [Source; 5] = [
        Source::Link,
        Source::Campaign,
        Source::Api,
        Source::Webhook,
        Source::Import,
    ];

    /// Whether the respondent id was signed by this deployment (a respondent's own link or an
    /// invitation), as opposed to given by whoever sent the answer (a campaign link's `rid`, a
    /// survey's public key). Unsigned answers live in their own namespace.
    ///
    /// Imports count as signed: only the holder of the API key can import, so an imported
    /// answer and a respondent's own link answer for the same touchpoint and send are one
    /// response, and the later of the two by answer time wins.
    pub fn is_signed(self) -> bool {
        matches!(self, Source::Link | Source::Webhook | Source::Import)
    }

    /// The source a name from [`Source::as_str`] stands for.
    pub fn parse(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The source's name in metrics and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Link => "link",
            Source::Campaign => "campaign",
            Source::Api => "api",
            Source::Webhook => "webhook",
            Source::Import => "import",
        }
    }
}

/// One answer, as enqueued by the HTTP functions and applied by the aggregator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseEvent {
    /// Unique id of this submission; redeliveries of the same message carry the same id.
    pub event_id: String,
    /// Survey id.
    pub survey: String,
    /// Touchpoint slug.
    pub touchpoint: String,
    /// Respondent id.
    pub respondent: String,
    /// The survey kind at the time of answering, which fixes the histogram slot.
    pub kind: SurveyKind,
    /// The score on the survey's scale.
    pub score: i64,
    /// Free-text answer to the follow-up question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Key/value properties such as plan or country.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// When the respondent acted, Unix milliseconds: the last answer by this time wins.
    pub answered_at: i64,
    /// Where the answer came from.
    pub source: Source,
    /// The send it answers (campaign wave, order, ticket); empty for the default send.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub send: String,
    /// A provisional click on an email link (`GET`), as opposed to an explicit answer: clicks
    /// count unless several scores of one email arrive within seconds (a link scanner), and
    /// never replace an explicit answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub click: bool,
}

/// The identity of a response: one per (survey, touchpoint, respondent, send, namespace), whatever
/// the answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResponseKey {
    /// Survey id.
    pub survey: String,
    /// Hex digest of survey, touchpoint and respondent (so respondent ids never appear in keys).
    pub digest: String,
}

/// The version of an answer: later `answered_at` wins, and the event id breaks ties.
pub type AnswerVersion = (i64, String);

/// A response that cannot be accepted, with a message for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidResponse(pub String);

impl ResponseEvent {
    /// The deterministic key of the response this event answers.
    pub fn key(&self) -> ResponseKey {
        scoped_response_key(
            &self.survey,
            &self.touchpoint,
            &self.respondent,
            &self.send,
            self.source.is_signed(),
        )
    }

    /// The answer version used to decide which answer wins.
    pub fn version(&self) -> AnswerVersion {
        (self.answered_at, self.event_id.clone())
    }

    /// Whether the answer carries a comment (blank text is none).
    pub fn has_comment(&self) -> bool {
        self.comment.as_ref().is_some_and(|c| !c.trim().is_empty())
    }

    /// Checks the event against its survey: touchpoint, score, and the size of every field.
    pub fn validate_for(&self, survey: &Survey) -> Result<(), InvalidResponse> {
        if self.survey != survey.id {
            return Err(InvalidResponse(format!(
                "response is for survey '{}', not '{}'",
                clip(&self.survey, 64),
                survey.id
            )));
        }
        survey
            .require_touchpoint(&self.touchpoint)
            .map_err(InvalidResponse)?;
        if self.kind != survey.kind {
            return Err(InvalidResponse(format!(
                "survey '{}' is a {} survey, not {}",
                survey.id, survey.kind, self.kind
            )));
        }
        self.validate_shape()
    }

    /// Checks everything that does not need the survey: ids, score scale, sizes.
    pub fn validate_shape(&self) -> Result<(), InvalidResponse> {
        check_slug("survey", &self.survey).map_err(InvalidResponse)?;
        check_slug("touchpoint", &self.touchpoint).map_err(InvalidResponse)?;
        check_respondent(&self.respondent)?;
        if !self.send.is_empty() {
            check_send(&self.send)?;
        }
        self.kind
            .validate(self.score)
            .map_err(|e| InvalidResponse(e.to_string()))?;
        if self.event_id.is_empty() || self.event_id.len() > 64 {
            return Err(InvalidResponse(
                "event id must be 1 to 64 characters".into(),
            ));
        }
        if let Some(c) = &self.comment {
            if c.chars().count() > MAX_COMMENT_CHARS {
                return Err(InvalidResponse(format!(
                    "comment is {} characters; the limit is {MAX_COMMENT_CHARS}",
                    c.chars().count()
                )));
            }
        }
        check_properties(&self.properties)?;
        if self.answered_at < 0 {
            return Err(InvalidResponse(
                "answered_at must not be before 1970".into(),
            ));
        }
        Ok(())
    }
}

/// Checks a respondent id: 1–200 bytes, no control characters.
pub fn check_respondent(respondent: &str) -> Result<(), InvalidResponse> {
    if respondent.trim().is_empty()
        || respondent.len() > MAX_RESPONDENT_LEN
        || respondent.chars().any(char::is_control)
    {
        return Err(InvalidResponse(format!(
            "respondent must be 1 to {MAX_RESPONDENT_LEN} bytes of printable text"
        )));
    }
    Ok(())
}

/// Checks a send name: 1–64 bytes of printable text.
pub fn check_send(send: &str) -> Result<(), InvalidResponse> {
    if send.trim().is_empty() || send.len() > MAX_SEND_LEN || send.chars().any(char::is_control) {
        return Err(InvalidResponse(format!(
            "send must be 1 to {MAX_SEND_LEN} bytes of printable text"
        )));
    }
    Ok(())
}

/// One respondent on the suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// The respondent id, normalised ([`suppression_id`]).
    pub respondent: String,
    /// When it was added, Unix ms.
    pub at: i64,
    /// How: `link` (the respondent's unsubscribe link), `one-click` (RFC 8058), `api`, `cli`.
    pub via: String,
}

/// Bidirectional overrides and isolates, which can make text read as other text.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A comment as kept: line breaks as `\n`, control characters (NUL, escape sequences, …) other
/// than tab and line feed and bidirectional overrides dropped, trimmed; none when nothing is left.
pub fn clean_comment(raw: &str) -> Option<String> {
    let text: String = raw
        .replace("\r\n", "\n")
        .chars()
        .map(|c| if c == '\r' { '\n' } else { c })
        .filter(|c| (!c.is_control() || matches!(c, '\n' | '\t')) && !is_bidi_control(*c))
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// A property value as kept: control characters and bidirectional overrides dropped, trimmed.
pub fn clean_value(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect::<String>()
        .trim()
        .to_string()
}

/// The form a respondent id takes on the suppression list: its canonical form (an address
/// lower-cased, its domain in punycode; see `mailbox::canonical_respondent`).
pub fn suppression_id(respondent: &str) -> String {
    crate::mailbox::canonical_respondent(respondent)
}

/// Checks properties: at most 20, slug keys, values up to 200 characters.
pub fn check_properties(props: &BTreeMap<String, String>) -> Result<(), InvalidResponse> {
    if props.len() > MAX_PROPERTIES {
        return Err(InvalidResponse(format!(
            "{} properties given; the limit is {MAX_PROPERTIES}",
            props.len()
        )));
    }
    for (k, v) in props {
        check_slug("property name", k).map_err(InvalidResponse)?;
        if v.chars().count() > MAX_PROPERTY_VALUE_CHARS || v.chars().any(char::is_control) {
            return Err(InvalidResponse(format!(
                "property '{k}' must be at most {MAX_PROPERTY_VALUE_CHARS} printable characters"
            )));
        }
    }
    Ok(())
}

/// The key of the response of a respondent at a touchpoint of a survey, in the default send and
/// the signed namespace.
pub fn response_key(survey: &str, touchpoint: &str, respondent: &str) -> ResponseKey {
    scoped_response_key(survey, touchpoint, respondent, "", true)
}

/// The key of a response in a send (empty: the default send) and a namespace (signed respondent
/// ids, or ids anyone could have given).
///
/// The default send's signed keys are the keys every response had before sends existed, so
/// links already out answer the responses they always did.
pub fn scoped_response_key(
    survey: &str,
    touchpoint: &str,
    respondent: &str,
    send: &str,
    signed: bool,
) -> ResponseKey {
    let mut h = Sha256::new();
    let namespace = if signed { "signed" } else { "unsigned" };
    let scoped = [survey, touchpoint, respondent, send, namespace];
    let parts = if send.is_empty() && signed {
        &scoped[..3]
    } else {
        &scoped[..]
    };
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let hex = to_hex(&digest[..16]);
    ResponseKey {
        survey: survey.to_string(),
        digest: hex,
    }
}

/// Lowercase hexadecimal of some bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// A new random event id (128 bits, hex).
pub fn new_event_id() -> String {
    let bytes: [u8; 16] = rand::random();
    to_hex(&bytes)
}

/// The last nanosecond handed out by [`answer_stamp`] in this process.
static LAST_STAMP_NS: AtomicU64 = AtomicU64::new(0);

/// The answer time (Unix ms) and event id of an answer being accepted now, ordered after every
/// stamp this process handed out before: an answer sent after another's acknowledgement wins,
/// even within the same millisecond or across a backwards clock step.
///
/// The event id is 16 hex digits of the stamp's nanosecond, then 64 random bits, so for equal
/// answer times the later stamp has the greater id.
pub fn answer_stamp() -> (i64, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut last = LAST_STAMP_NS.load(Ordering::Relaxed);
    let ns = loop {
        let next = now.max(last.saturating_add(1));
        match LAST_STAMP_NS.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    let random: u64 = rand::random();
    let answered_at = i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX);
    (answered_at, format!("{ns:016x}{random:016x}"))
}

/// A respondent id shortened for logs: the first two characters and a digest, never the whole id.
pub fn mask_respondent(respondent: &str) -> String {
    let prefix: String = respondent.chars().take(2).collect();
    let digest = Sha256::digest(respondent.as_bytes());
    format!(
        "{prefix}…{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_values_lose_control_and_bidirectional_characters() {
        assert_eq!(
            clean_comment("  a\u{0}b\u{1b}[31mred\r\nnext\rline\tend \u{7f} "),
            Some("ab[31mred\nnext\nline\tend".to_string())
        );
        assert_eq!(clean_comment(" \u{0}\r\n\t "), None);
        assert_eq!(
            clean_comment("ok\u{202e}gnp.exe\u{2067}x\u{2069}"),
            Some("okgnp.exex".into())
        );
        assert_eq!(clean_comment("¡Muy bien! 👍"), Some("¡Muy bien! 👍".into()));
        assert_eq!(clean_value(" pro\u{202e}orp\n"), "proorp");
    }

    #[test]
    fn response_key_is_deterministic_and_unambiguous() {
        assert_eq!(response_key("s", "t", "r"), response_key("s", "t", "r"));
        assert_ne!(response_key("s", "t", "r"), response_key("s", "t", "r2"));
        // Length-prefixing keeps "ab"+"c" apart from "a"+"bc".
        assert_ne!(response_key("s", "ab", "c"), response_key("s", "a", "bc"));
        assert_eq!(response_key("s", "t", "r").digest.len(), 32);
    }

    #[test]
    fn sends_and_namespaces_have_their_own_keys_and_the_default_keeps_the_old_one() {
        let old = response_key("s", "t", "ana");
        assert_eq!(scoped_response_key("s", "t", "ana", "", true), old);
        let keys = [
            old.clone(),
            scoped_response_key("s", "t", "ana", "", false),
            scoped_response_key("s", "t", "ana", "q4", true),
            scoped_response_key("s", "t", "ana", "q4", false),
            scoped_response_key("s", "t", "ana", "q1", true),
        ];
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        assert!(check_send("2026-q4").is_ok() && check_send("order #12").is_ok());
        assert!(check_send("").is_err() && check_send("a\nb").is_err());
        assert!(check_send(&"x".repeat(65)).is_err());
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(new_event_id().len(), 32);
    }

    #[test]
    fn each_stamp_orders_after_the_one_before_it() {
        let mut previous = answer_stamp();
        for _ in 0..100_000 {
            let next = answer_stamp();
            assert!(next > previous, "{next:?} must order after {previous:?}");
            assert_eq!(next.1.len(), 32);
            previous = next;
        }
        // Stamps from racing threads are all distinct and each thread's stay ordered.
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let stamps: Vec<_> = (0..10_000).map(|_| answer_stamp()).collect();
                    assert!(stamps.windows(2).all(|w| w[1] > w[0]));
                    stamps
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        all.dedup_by(|a, b| a.1[..16] == b.1[..16]);
        assert_eq!(all.len(), 40_000, "no two stamps share a nanosecond");
    }

    #[test]
    fn masked_respondent_hides_the_address() {
        let m = mask_respondent("ana@example.com");
        assert!(!m.contains("example"));
        assert!(m.starts_with("an"));
    }
}
