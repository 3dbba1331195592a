//! Alerts: rules that post matching answers (a score range, a touchpoint, with or without a
//! comment) to a Slack incoming webhook or any HTTPS endpoint; the jobs that carry one answer to
//! one rule's endpoint; their payloads, signature and retry schedule.
//!
//! Signature: every delivery carries `Sondeo-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(secret, "<t>.<body>")>` and `Sondeo-Delivery: <delivery id>`. A receiver checks
//! the HMAC with the rule's `whsec_…` secret, refuses timestamps more than
//! [`SIGNATURE_TOLERANCE_SECS`] away from its clock (so a captured request cannot be replayed
//! later), and ignores a delivery id it has already seen.

use crate::addresses::{refusal, AddressAllowlist};
use crate::response::{to_hex, ResponseEvent, Source};
use crate::survey::{clip, Survey, SurveyKind};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "Sondeo-Signature";
/// The delivery id header's name: receivers deduplicate on it.
pub const DELIVERY_HEADER: &str = "Sondeo-Delivery";
/// How far a signature's timestamp may be from the receiver's clock, in seconds.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;
/// Delays before each retry, in seconds: 30 s, 2 min, 8 min, 30 min, 2 h.
pub const RETRY_DELAYS_SECS: [u64; 5] = [30, 120, 480, 1800, 7200];
/// Attempts at one delivery, the first included.
pub const MAX_ATTEMPTS: u32 = RETRY_DELAYS_SECS.len() as u32 + 1;
/// Longest endpoint URL, in bytes.
pub const MAX_URL_BYTES: usize = 2000;
/// Most alert rules per survey.
pub const MAX_RULES_PER_SURVEY: usize = 50;

/// Where an alert goes and in which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A Slack incoming webhook: `{"text": …}`.
    Slack,
    /// Any HTTPS endpoint: the answer as JSON.
    #[default]
    Generic,
}

/// An alert's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertTarget {
    /// The URL posted to (HTTPS).
    pub url: String,
    /// The payload format.
    #[serde(default)]
    pub kind: AlertKind,
}

/// A rule: answers of one survey that match it are posted to its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Unique id (`al_` and hex).
    #[serde(default)]
    pub id: String,
    /// The survey whose answers it watches.
    pub survey: String,
    /// Only answers at this touchpoint (None: every touchpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touchpoint: Option<String>,
    /// Lowest matching score (None: the scale's lowest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<i64>,
    /// Highest matching score (None: the scale's highest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_score: Option<i64>,
    /// Only answers with (true) or without (false) a comment (None: either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_comment: Option<bool>,
    /// Where matching answers are posted.
    pub target: AlertTarget,
    /// When the rule was created, Unix ms.
    #[serde(default)]
    pub created_at: i64,
}

/// A rule's signing secret (`whsec_` and 64 hex digits); never logged or listed.
#[derive(Clone, PartialEq, Eq)]
pub struct AlertSecret(String);

impl std::fmt::Debug for AlertSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertSecret(…)")
    }
}

impl AlertSecret {
    /// A new random secret: 32 random bytes as hex, prefixed `whsec_`.
    pub fn generate() -> AlertSecret {
        let mut b = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut b);
        AlertSecret(format!("whsec_{}", to_hex(&b)))
    }

    /// A stored secret.
    pub fn new(secret: impl Into<String>) -> AlertSecret {
        AlertSecret(secret.into())
    }

    /// The secret's text, for storing and signing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A new rule id: `al_` and 16 hex digits.
pub fn new_rule_id() -> String {
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    format!("al_{}", to_hex(&b))
}

/// Why a rule cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAlertRule {
    /// The URL does not parse or has no host.
    #[error("target url is not a valid URL: {0}")]
    Url(String),
    /// The URL is not HTTPS.
    #[error(
        "target url must use https (plain http only to addresses in SONDEO_ALERT_ALLOW_ADDRESSES)"
    )]
    Insecure,
    /// The URL names a private, loopback or otherwise special address.
    #[error("target url points at {0}, which alerts never call")]
    PrivateAddress(String),
    /// The score range is empty or off the survey's scale.
    #[error("{0}")]
    ScoreRange(String),
    /// Any other field is wrong.
    #[error("{0}")]
    Field(String),
}

impl InvalidAlertRule {
    /// A short machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            InvalidAlertRule::Url(_) => "invalid_url",
            InvalidAlertRule::Insecure => "insecure_url",
            InvalidAlertRule::PrivateAddress(_) => "private_address",
            InvalidAlertRule::ScoreRange(_) => "invalid_score_range",
            InvalidAlertRule::Field(_) => "invalid_rule",
        }
    }
}

/// Checks a target URL: parses, HTTPS (or HTTP when an allowlist exists), and no literal
/// special address outside the allowlist. Names are checked again at every delivery.
pub fn check_target_url(url: &str, allow: &AddressAllowlist) -> Result<url::Url, InvalidAlertRule> {
    if url.len() > MAX_URL_BYTES {
        return Err(InvalidAlertRule::Url(format!(
            "longer than {MAX_URL_BYTES} bytes"
        )));
    }
    let parsed = url::Url::parse(url).map_err(|e| InvalidAlertRule::Url(e.to_string()))?;
    match parsed.scheme() {
        "https" => {}
        "http" if !allow.is_empty() => {}
        "http" => return Err(InvalidAlertRule::Insecure),
        other => {
            return Err(InvalidAlertRule::Url(format!(
                "scheme '{}' is not https",
                clip(other, 16)
            )))
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(InvalidAlertRule::Url(
            "credentials in the URL are not allowed".into(),
        ));
    }
    let literal: Option<IpAddr> = match parsed.host() {
        None => return Err(InvalidAlertRule::Url("the URL has no host".into())),
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(_)) => None,
    };
    if let Some(ip) = literal {
        if let Some(why) = refusal(ip, allow) {
            return Err(InvalidAlertRule::PrivateAddress(format!("{ip} ({why})")));
        }
        if parsed.scheme() == "http" && !allow.allows(ip) {
            return Err(InvalidAlertRule::Insecure);
        }
    }
    Ok(parsed)
}

impl AlertRule {
    /// Checks the rule against its survey (touchpoint, score range) and its target URL.
    pub fn validate(
        &self,
        survey: &Survey,
        allow: &AddressAllowlist,
    ) -> Result<(), InvalidAlertRule> {
        if self.survey != survey.id {
            return Err(InvalidAlertRule::Field(format!(
                "rule is for survey '{}', not '{}'",
                clip(&self.survey, 64),
                survey.id
            )));
        }
        if let Some(t) = &self.touchpoint {
            survey
                .require_touchpoint(t)
                .map_err(InvalidAlertRule::Field)?;
        }
        let (lo, hi) = survey.kind.range();
        for (name, v) in [("min_score", self.min_score), ("max_score", self.max_score)] {
            if let Some(v) = v {
                if !(lo..=hi).contains(&v) {
                    return Err(InvalidAlertRule::ScoreRange(format!(
                        "{name} {v} is outside this {} survey's scale of {lo} to {hi}",
                        survey.kind
                    )));
                }
            }
        }
        if let (Some(a), Some(b)) = (self.min_score, self.max_score) {
            if a > b {
                return Err(InvalidAlertRule::ScoreRange(format!(
                    "min_score {a} is above max_score {b}"
                )));
            }
        }
        check_target_url(&self.target.url, allow)?;
        Ok(())
    }

    /// Whether an answer matches the rule.
    pub fn matches(&self, event: &ResponseEvent) -> bool {
        matches(self, event)
    }
}

/// Whether an answer matches a rule: same survey, the rule's touchpoint (if any), a score in
/// its range, and a comment present or absent as it asks.
pub fn matches(rule: &AlertRule, event: &ResponseEvent) -> bool {
    let has_comment = event
        .comment
        .as_deref()
        .is_some_and(|c| !c.trim().is_empty());
    rule.survey == event.survey
        && rule
            .touchpoint
            .as_deref()
            .is_none_or(|t| t == event.touchpoint)
        && rule.min_score.is_none_or(|m| event.score >= m)
        && rule.max_score.is_none_or(|m| event.score <= m)
        && rule.has_comment.is_none_or(|want| want == has_comment)
}

/// What an alert tells about an answer (no respondent id: it never leaves the deployment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAnswer {
    /// Survey id.
    pub survey: String,
    /// Touchpoint slug.
    pub touchpoint: String,
    /// The survey kind.
    pub kind: SurveyKind,
    /// The score.
    pub score: i64,
    /// The comment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The answer's properties.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// The send it answers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub send: String,
    /// When the respondent answered, Unix ms.
    pub answered_at: i64,
    /// Where the answer came from.
    pub source: Source,
    /// The answer's event id (its version).
    pub event_id: String,
}

/// One answer to deliver to one rule's endpoint, at one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertJob {
    /// The rule.
    pub rule_id: String,
    /// Hex digest of (rule id, response key digest, event id): one per rule and answer version.
    pub delivery_id: String,
    /// The answer.
    pub answer: AlertAnswer,
    /// Attempts made before this one.
    #[serde(default)]
    pub attempt: u32,
    /// Not to be attempted before this time, Unix ms (queues with a shorter delay limit).
    #[serde(default)]
    pub not_before: i64,
}

/// The delivery id of one answer version to one rule.
pub fn delivery_id(rule_id: &str, key_digest: &str, event_id: &str) -> String {
    let mut h = Sha256::new();
    for part in [rule_id, key_digest, event_id] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    to_hex(&h.finalize()[..16])
}

impl AlertJob {
    /// The first attempt at delivering `event` to `rule`.
    pub fn new(rule: &AlertRule, event: &ResponseEvent) -> AlertJob {
        AlertJob {
            rule_id: rule.id.clone(),
            delivery_id: delivery_id(&rule.id, &event.key().digest, &event.event_id),
            answer: AlertAnswer {
                survey: event.survey.clone(),
                touchpoint: event.touchpoint.clone(),
                kind: event.kind,
                score: event.score,
                comment: event.comment.clone(),
                properties: event.properties.clone(),
                send: event.send.clone(),
                answered_at: event.answered_at,
                source: event.source,
                event_id: event.event_id.clone(),
            },
            attempt: 0,
            not_before: 0,
        }
    }

    /// The job of the next attempt, due at `at_ms`.
    pub fn next_attempt(&self, at_ms: i64) -> AlertJob {
        AlertJob {
            attempt: self.attempt.saturating_add(1),
            not_before: at_ms,
            ..self.clone()
        }
    }
}

/// Escapes text for Slack's message format (`&`, `<`, `>`).
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The body posted for a job: Slack's `{"text": …}` or the generic JSON document.
pub fn payload(kind: AlertKind, job: &AlertJob) -> String {
    match kind {
        AlertKind::Slack => slack_payload(job),
        AlertKind::Generic => generic_payload(job),
    }
}

/// Slack's message: score, survey, touchpoint, send and the comment, escaped.
pub fn slack_payload(job: &AlertJob) -> String {
    let a = &job.answer;
    let (_, max) = a.kind.range();
    let mut text = format!(
        "New {} answer: *{}*{} at `{}` (survey `{}`",
        a.kind,
        a.score,
        if a.kind.is_discrete() {
            format!("/{max}")
        } else {
            String::new()
        },
        slack_escape(&a.touchpoint),
        slack_escape(&a.survey)
    );
    if !a.send.is_empty() {
        text.push_str(&format!(", send `{}`", slack_escape(&a.send)));
    }
    text.push(')');
    match a.comment.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(c) => {
            text.push_str("\n> ");
            text.push_str(&slack_escape(c).replace('\n', "\n> "));
        }
        None => text.push_str("\n(no comment)"),
    }
    serde_json::json!({ "text": text }).to_string()
}

/// The generic JSON document: survey, touchpoint, score, comment, properties, send, answer
/// time and delivery id.
pub fn generic_payload(job: &AlertJob) -> String {
    let a = &job.answer;
    serde_json::json!({
        "type": "response.alert",
        "delivery_id": job.delivery_id,
        "rule_id": job.rule_id,
        "survey": a.survey,
        "touchpoint": a.touchpoint,
        "kind": a.kind,
        "score": a.score,
        "comment": a.comment,
        "properties": a.properties,
        "send": a.send,
        "source": a.source,
        "answered_at": crate::time::rfc3339(a.answered_at),
        "answered_at_ms": a.answered_at,
    })
    .to_string()
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `Sondeo-Signature` header value for `body` signed at `t` (Unix seconds).
pub fn sign(secret: &AlertSecret, t: i64, body: &[u8]) -> String {
    let tag = mac(secret.expose(), t, body).finalize().into_bytes();
    format!("t={t},v1={}", to_hex(&tag))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=…,v1=…`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is too far from now: a replay, or a wrong clock.
    #[error("signature timestamp outside the tolerance")]
    Stale,
    /// No `v1` value matches.
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies a `Sondeo-Signature` header over `body` at `now` (Unix seconds), refusing
/// timestamps more than `tolerance_secs` away. Several `v1=` values (secret rotation) are accepted.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut t: Option<i64> = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => tags.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now
        .checked_sub(t)
        .is_none_or(|d| d.unsigned_abs() > tolerance_secs.unsigned_abs())
    {
        return Err(SignatureError::Stale);
    }
    for tag in tags {
        let Some(bytes) = from_hex(&tag) else {
            continue;
        };
        if mac(secret, t, body).verify_slice(&bytes).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The delay before the attempt after `attempt` (0-based), or None after the last.
pub fn retry_delay_secs(attempt: u32) -> Option<u64> {
    RETRY_DELAYS_SECS
        .get(usize::try_from(attempt).ok()?)
        .copied()
}

/// What an endpoint's HTTP status means for a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx: delivered.
    Delivered,
    /// 408, 425, 429 or 5xx: try again later.
    Retry,
    /// Any other status: the endpoint refuses it and will every time.
    GiveUp,
}

/// Classifies an endpoint's HTTP status.
pub fn classify_status(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Delivered,
        408 | 425 | 429 | 500..=599 => StatusClass::Retry,
        _ => StatusClass::GiveUp,
    }
}

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Claimed; delivered or retried later.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up: refused, permanently failing, or out of attempts.
    Failed,
}

impl DeliveryStatus {
    /// The status's stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// The status a stored name stands for.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// The log entry of one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The delivery id.
    pub delivery_id: String,
    /// The rule.
    pub rule_id: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts claimed so far.
    pub attempts: u32,
    /// The last outcome, such as "HTTP 503" or why it was refused.
    pub detail: String,
    /// When it was last updated, Unix ms.
    pub at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survey::Touchpoint;

    fn survey() -> Survey {
        Survey {
            id: "nps".into(),
            kind: SurveyKind::Nps,
            question: "q".into(),
            follow_up: String::new(),
            locale: Default::default(),
            touchpoints: vec![Touchpoint {
                slug: "checkout".into(),
                stage: None,
            }],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        }
    }

    fn rule() -> AlertRule {
        AlertRule {
            id: "al_1".into(),
            survey: "nps".into(),
            touchpoint: Some("checkout".into()),
            min_score: Some(0),
            max_score: Some(6),
            has_comment: None,
            target: AlertTarget {
                url: "https://hooks.slack.com/services/T/B/x".into(),
                kind: AlertKind::Slack,
            },
            created_at: 0,
        }
    }

    fn event(score: i64, comment: Option<&str>) -> ResponseEvent {
        ResponseEvent {
            event_id: "e1".into(),
            survey: "nps".into(),
            touchpoint: "checkout".into(),
            respondent: "ann@example.com".into(),
            kind: SurveyKind::Nps,
            score,
            comment: comment.map(str::to_string),
            properties: BTreeMap::from([("plan".into(), "pro".into())]),
            answered_at: 1_700_000_000_000,
            source: Source::Link,
            send: String::new(),
            click: false,
        }
    }

    #[test]
    fn a_rule_matches_its_score_range_touchpoint_and_comment_condition() {
        let r = rule();
        assert!(r.matches(&event(0, None)));
        assert!(r.matches(&event(6, None)));
        assert!(!r.matches(&event(7, None)));
        let mut other = event(3, None);
        other.touchpoint = "signup".into();
        assert!(!r.matches(&other));
        other.touchpoint = "checkout".into();
        other.survey = "csat".into();
        assert!(!r.matches(&other));
        let with = AlertRule {
            has_comment: Some(true),
            ..rule()
        };
        assert!(!with.matches(&event(2, None)));
        assert!(!with.matches(&event(2, Some("  "))));
        assert!(with.matches(&event(2, Some("slow"))));
        let without = AlertRule {
            has_comment: Some(false),
            touchpoint: None,
            min_score: None,
            max_score: None,
            ..rule()
        };
        assert!(without.matches(&event(10, None)));
        assert!(!without.matches(&event(10, Some("great"))));
    }

    #[test]
    fn rules_off_the_scale_or_with_unsafe_targets_are_refused_with_their_code() {
        let s = survey();
        let none = AddressAllowlist::default();
        assert_eq!(rule().validate(&s, &none), Ok(()));
        let code =
            |r: AlertRule, allow: &AddressAllowlist| r.validate(&s, allow).unwrap_err().code();
        let mut r = rule();
        r.max_score = Some(11);
        assert_eq!(code(r, &none), "invalid_score_range");
        let mut r = rule();
        r.min_score = Some(7);
        assert_eq!(code(r, &none), "invalid_score_range");
        let mut r = rule();
        r.touchpoint = Some("nowhere".into());
        assert_eq!(code(r, &none), "invalid_rule");
        for (url, want) in [
            ("http://example.com/hook", "insecure_url"),
            ("ftp://example.com/hook", "invalid_url"),
            ("not a url", "invalid_url"),
            ("https://user:pw@example.com/", "invalid_url"),
            ("https://127.0.0.1/hook", "private_address"),
            (
                "https://169.254.169.254/latest/meta-data",
                "private_address",
            ),
            ("https://[::1]:8443/", "private_address"),
            ("https://[::ffff:10.0.0.1]/", "private_address"),
            ("https://10.0.0.1/", "private_address"),
            // Numeric forms a browser reads as 127.0.0.1 are parsed as it does.
            ("https://2130706433/", "private_address"),
            ("https://0x7f.0.0.1/", "private_address"),
            ("https://127.1/", "private_address"),
        ] {
            let mut r = rule();
            r.target.url = url.into();
            assert_eq!(code(r, &none), want, "{url}");
        }
        let allow = AddressAllowlist::parse("127.0.0.1").unwrap();
        let mut r = rule();
        r.target.url = "http://127.0.0.1:9000/hook".into();
        assert_eq!(r.validate(&s, &allow), Ok(()));
        r.target.url = "http://127.0.0.2:9000/hook".into();
        assert_eq!(code(r, &allow), "private_address");
    }

    #[test]
    fn a_signature_verifies_and_a_replay_outside_the_tolerance_is_refused() {
        let secret = AlertSecret::generate();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.expose().len(), 6 + 64);
        assert!(!format!("{secret:?}").contains(&secret.expose()[6..]));
        let body = br#"{"score":3}"#;
        let now = 1_700_000_000;
        let header = sign(&secret, now, body);
        assert!(header.starts_with(&format!("t={now},v1=")));
        let s = secret.expose();
        assert_eq!(verify_signature(s, &header, body, now + 299, 300), Ok(()));
        assert_eq!(verify_signature(s, &header, body, now - 300, 300), Ok(()));
        assert_eq!(
            verify_signature(s, &header, body, now + 301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(s, &header, br#"{"score":9}"#, now, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("whsec_other", &header, body, now, 300),
            Err(SignatureError::Mismatch)
        );
        // Re-stamping a captured body with a fresh timestamp needs the secret.
        let tag = header.split_once(",v1=").unwrap().1;
        let restamped = format!("t={},v1={tag}", now + 1000);
        assert_eq!(
            verify_signature(s, &restamped, body, now + 1000, 300),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "v1=00", "t=x,v1=00", "t=5"] {
            assert_eq!(
                verify_signature(s, bad, body, now, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn retries_back_off_then_stop_after_six_attempts() {
        let delays: Vec<Option<u64>> = (0..7).map(retry_delay_secs).collect();
        assert_eq!(
            delays,
            vec![
                Some(30),
                Some(120),
                Some(480),
                Some(1800),
                Some(7200),
                None,
                None
            ]
        );
        assert_eq!(MAX_ATTEMPTS, 6);
        assert_eq!(classify_status(200), StatusClass::Delivered);
        assert_eq!(classify_status(204), StatusClass::Delivered);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify_status(s), StatusClass::Retry, "{s}");
        }
        for s in [301, 302, 400, 401, 403, 404, 410] {
            assert_eq!(classify_status(s), StatusClass::GiveUp, "{s}");
        }
    }

    #[test]
    fn one_delivery_id_per_rule_and_answer_version() {
        let r = rule();
        let a = AlertJob::new(&r, &event(3, None));
        let b = AlertJob::new(&r, &event(3, Some("again")));
        assert_eq!(a.delivery_id, b.delivery_id);
        let mut later = event(3, None);
        later.event_id = "e2".into();
        assert_ne!(AlertJob::new(&r, &later).delivery_id, a.delivery_id);
        let other_rule = AlertRule {
            id: "al_2".into(),
            ..rule()
        };
        assert_ne!(
            AlertJob::new(&other_rule, &event(3, None)).delivery_id,
            a.delivery_id
        );
        assert!(!serde_json::to_string(&a)
            .unwrap()
            .contains("ann@example.com"));
        let next = a.next_attempt(5);
        assert_eq!((next.attempt, next.not_before), (1, 5));
    }

    #[test]
    fn payloads_carry_the_answer_and_slack_text_is_escaped() {
        let job = AlertJob::new(&rule(), &event(2, Some("<!channel> & <b>slow</b>")));
        let slack: serde_json::Value = serde_json::from_str(&slack_payload(&job)).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(text.contains("*2*/10"), "{text}");
        assert!(
            text.contains("&lt;!channel&gt; &amp; &lt;b&gt;slow&lt;/b&gt;"),
            "{text}"
        );
        assert!(!text.contains("<!channel>"));
        let generic: serde_json::Value = serde_json::from_str(&generic_payload(&job)).unwrap();
        assert_eq!(generic["score"], 2);
        assert_eq!(generic["touchpoint"], "checkout");
        assert_eq!(generic["properties"]["plan"], "pro");
        assert_eq!(generic["delivery_id"], job.delivery_id.as_str());
        assert_eq!(generic["comment"], "<!channel> & <b>slow</b>");
        assert!(!generic.to_string().contains("ann@example.com"));
    }
}
