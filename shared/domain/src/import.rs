//! Imported answers: past responses from another tool, with their original answer time.
//!
//! An imported row becomes a [`ResponseEvent`] of source [`Source::Import`] whose event id is
//! deterministic (a digest of the survey and the source's response id, or of the normalised row
//! when the export has no id), so importing the same row twice changes nothing, and whose key is
//! in the signed namespace, so it and a live answer of the same respondent are one response where
//! the later answer by time wins.

use crate::response::{clean_comment, clean_value, to_hex, InvalidResponse, ResponseEvent, Source};
use crate::survey::Survey;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Most rows in one `POST /v1/imports`.
pub const MAX_IMPORT_ROWS: usize = 500;
/// Largest `POST /v1/imports` body, in bytes.
pub const IMPORT_BODY_BYTES: usize = 1 << 20;
/// How far in the future an answer time may be (clock skew between the exporter and us), in ms.
pub const FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;
/// Longest source response id, in bytes.
pub const MAX_SOURCE_ID_LEN: usize = 200;

/// One row of an import, as `POST /v1/imports` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRow {
    /// The response id in the tool it comes from; absent: the row's own digest stands for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Respondent id; absent: the response id (or the row digest), one respondent per row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respondent: Option<String>,
    /// Touchpoint slug (must be one of the survey's).
    pub touchpoint: String,
    /// The score on the survey's scale.
    pub score: i64,
    /// Free-text answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When the respondent answered, Unix milliseconds.
    pub answered_at: i64,
    /// The send (campaign wave); absent: the default send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// Key/value properties.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// Hashes length-prefixed parts, so no two different part lists share a digest.
fn digest_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    to_hex(&h.finalize()[..16])
}

impl ImportRow {
    /// The row's identity: the source's response id when it has one, otherwise a digest of the
    /// normalised row (every field, properties in key order), so a re-export in another column
    /// order has the same identity.
    pub fn identity(&self) -> String {
        match self
            .id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
        {
            Some(id) => format!("id:{id}"),
            None => {
                let score = self.score.to_string();
                let at = self.answered_at.to_string();
                let mut parts = vec![
                    self.touchpoint.as_str(),
                    self.respondent.as_deref().unwrap_or(""),
                    score.as_str(),
                    self.comment.as_deref().unwrap_or(""),
                    at.as_str(),
                    self.send.as_deref().unwrap_or(""),
                ];
                for (k, v) in &self.properties {
                    parts.push(k);
                    parts.push(v);
                }
                format!("row:{}", digest_of(&parts))
            }
        }
    }

    /// The response event this row imports into `survey`, or why it cannot be imported.
    /// `now_ms` is the current time: answers later than it (beyond [`FUTURE_SKEW_MS`]) are
    /// refused; answers older than the survey are accepted.
    pub fn to_event(&self, survey: &Survey, now_ms: i64) -> Result<ResponseEvent, InvalidResponse> {
        if let Some(id) = &self.id {
            if id.len() > MAX_SOURCE_ID_LEN || id.chars().any(char::is_control) {
                return Err(InvalidResponse(format!(
                    "id must be at most {MAX_SOURCE_ID_LEN} bytes of printable text"
                )));
            }
        }
        if self.answered_at > now_ms.saturating_add(FUTURE_SKEW_MS) {
            return Err(InvalidResponse(
                "answered_at is in the future; only past answers can be imported".into(),
            ));
        }
        let identity = self.identity();
        // The respondent as links name them, so a live answer and an imported one meet.
        let respondent = match self.respondent.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => crate::mailbox::canonical_respondent(r),
            _ => format!("import:{identity}"),
        };
        let event = ResponseEvent {
            event_id: format!("imp{}", digest_of(&[&survey.id, &identity])),
            survey: survey.id.clone(),
            touchpoint: self.touchpoint.trim().to_string(),
            respondent,
            kind: survey.kind,
            score: self.score,
            comment: self.comment.as_deref().and_then(clean_comment),
            properties: self
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), clean_value(v)))
                .collect(),
            answered_at: self.answered_at,
            source: Source::Import,
            send: self
                .send
                .as_deref()
                .map(str::trim)
                .unwrap_or_default()
                .to_string(),
            click: false,
        };
        event.validate_for(survey)?;
        Ok(event)
    }
}

/// Why a time cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Empty cell.
    #[error("the time is empty")]
    Empty,
    /// A date and time without an offset, and no zone to read it in.
    #[error("'{0}' has no UTC offset: give the zone it is in (--tz Europe/Paris)")]
    Naive(String),
    /// Not a time this importer reads.
    #[error(
        "'{0}' is not an ISO 8601 time (2024-03-10T14:30:00+01:00) or Unix seconds or milliseconds"
    )]
    Unreadable(String),
}

/// Reads an answer time as Unix milliseconds: ISO 8601 / RFC 3339 with an offset or `Z`; Unix
/// seconds (up to 11 digits, an optional fraction) or milliseconds (12 digits or more); or a
/// date and time without offset (`2024-03-10 02:30:00`, `2024-03-10T02:30`, `2024-03-10`) read
/// in `zone`.
///
/// Naive times use jiff's "compatible" rule (as RFC 5545 and `java.time`): a time that a
/// daylight-saving gap skips is moved forward by the gap's length (02:30 on a spring-forward
/// night is read as 03:30 local), and a time that a fall-back fold repeats is read as the first
/// (earlier, daylight-time) occurrence.
pub fn parse_time(text: &str, zone: Option<&TimeZone>) -> Result<i64, TimeError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(TimeError::Empty);
    }
    let unreadable = || TimeError::Unreadable(crate::survey::clip(t, 40).to_string());
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty() || fraction.contains('.') {
            return Err(unreadable());
        }
        let n: i64 = whole.parse().map_err(|_| unreadable())?;
        if whole.len() <= 11 {
            let frac_ms = format!("{:0<3}", fraction.get(..3).unwrap_or(fraction));
            let ms: i64 = frac_ms.parse().map_err(|_| unreadable())?;
            return n
                .checked_mul(1000)
                .and_then(|s| s.checked_add(ms))
                .ok_or_else(unreadable);
        }
        return Ok(n);
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    // `2024-03-10 14:30:00 +0100` and `2024-03-10 14:30:00 UTC`, as some exports write them.
    for format in ["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S %:z"] {
        if let Ok(ts) = jiff::Timestamp::strptime(format, t) {
            return Ok(ts.as_millisecond());
        }
    }
    if let Some(utc) = t.strip_suffix(" UTC") {
        return parse_time(utc, Some(&TimeZone::UTC));
    }
    let civil = t
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| {
            t.parse::<jiff::civil::Date>()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })
        .map_err(|_| unreadable())?;
    let Some(zone) = zone else {
        return Err(TimeError::Naive(crate::survey::clip(t, 40).to_string()));
    };
    let zoned = zone
        .to_ambiguous_zoned(civil)
        .compatible()
        .map_err(|_| unreadable())?;
    Ok(zoned.timestamp().as_millisecond())
}

/// How imported answers are split into sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendRule {
    /// The default send: one answer per person and touchpoint, the latest wins.
    Default,
    /// One named send for every row.
    Named(String),
    /// One send per calendar month of the answer (`2024-03`).
    PerMonth,
    /// One send per calendar quarter of the answer (`2024-Q1`).
    PerQuarter,
}

impl SendRule {
    /// The send of an answer at `answered_at` (Unix ms), months read in `zone`; None: default.
    pub fn send_for(&self, answered_at: i64, zone: &TimeZone) -> Option<String> {
        let date = || {
            jiff::Timestamp::from_millisecond(answered_at)
                .ok()
                .map(|ts| ts.to_zoned(zone.clone()).date())
        };
        match self {
            SendRule::Default => None,
            SendRule::Named(name) => Some(name.clone()),
            SendRule::PerMonth => date().map(|d| format!("{:04}-{:02}", d.year(), d.month())),
            SendRule::PerQuarter => {
                date().map(|d| format!("{:04}-Q{}", d.year(), (d.month() - 1) / 3 + 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survey::{SurveyKind, Touchpoint};

    fn survey() -> Survey {
        let tp = |slug: &str| Touchpoint {
            slug: slug.into(),
            stage: None,
        };
        Survey {
            id: "nps".into(),
            kind: SurveyKind::Nps,
            question: "q".into(),
            follow_up: String::new(),
            locale: Default::default(),
            touchpoints: vec![tp("support"), tp("onboarding")],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        }
    }

    fn row() -> ImportRow {
        ImportRow {
            id: None,
            respondent: Some("ana@example.com".into()),
            touchpoint: "support".into(),
            score: 9,
            comment: Some(" great ".into()),
            answered_at: 1_700_000_000_000,
            send: None,
            properties: BTreeMap::from([("plan".to_string(), "pro".to_string())]),
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn an_imported_row_is_a_signed_import_answer_with_its_original_time() {
        let e = row().to_event(&survey(), NOW).unwrap();
        assert_eq!(e.source, Source::Import);
        assert_eq!(e.answered_at, 1_700_000_000_000);
        assert_eq!(e.comment.as_deref(), Some("great"));
        // Same key as the respondent's live link answer.
        assert_eq!(
            e.key(),
            crate::response::response_key("nps", "support", "ana@example.com")
        );
    }

    #[test]
    fn an_imported_address_meets_the_live_one_and_its_text_is_cleaned_like_a_live_answer() {
        let typed = ImportRow {
            respondent: Some(" Ana@Example.COM ".into()),
            comment: Some("ok\u{202e}gnp.exe\u{0}".into()),
            properties: BTreeMap::from([("plan".to_string(), "pro\u{202e}".to_string())]),
            ..row()
        };
        let e = typed.to_event(&survey(), NOW).unwrap();
        assert_eq!(e.respondent, "ana@example.com");
        assert_eq!(
            e.key(),
            crate::response::response_key("nps", "support", "ana@example.com")
        );
        assert_eq!(e.comment.as_deref(), Some("okgnp.exe"));
        assert_eq!(e.properties["plan"], "pro");
    }

    #[test]
    fn identity_comes_from_the_source_id_or_the_whole_row() {
        let a = row().to_event(&survey(), NOW).unwrap();
        assert_eq!(a.event_id, row().to_event(&survey(), NOW).unwrap().event_id);
        let mut other = row();
        other.score = 8;
        assert_ne!(a.event_id, other.to_event(&survey(), NOW).unwrap().event_id);
        let mut with_id = row();
        with_id.id = Some("r-1".into());
        let mut changed = with_id.clone();
        changed.comment = Some("edited".into());
        assert_eq!(
            with_id.to_event(&survey(), NOW).unwrap().event_id,
            changed.to_event(&survey(), NOW).unwrap().event_id
        );
        assert!(a.event_id.len() <= 64);
    }

    #[test]
    fn a_row_without_respondent_is_its_own_respondent() {
        let mut r = row();
        r.respondent = None;
        r.id = Some("77".into());
        let e = r.to_event(&survey(), NOW).unwrap();
        assert_eq!(e.respondent, "import:id:77");
    }

    #[test]
    fn future_answers_unknown_touchpoints_and_bad_scores_are_refused() {
        let mut r = row();
        r.answered_at = NOW + FUTURE_SKEW_MS + 1;
        assert!(r.to_event(&survey(), NOW).unwrap_err().0.contains("future"));
        r.answered_at = NOW + FUTURE_SKEW_MS;
        assert!(r.to_event(&survey(), NOW).is_ok());
        let mut r = row();
        r.touchpoint = "nope".into();
        assert!(r.to_event(&survey(), NOW).is_err());
        let mut r = row();
        r.score = 11;
        assert!(r.to_event(&survey(), NOW).is_err());
        // Older than the survey (or 1970) is fine; before 1970 is not.
        let mut r = row();
        r.answered_at = 0;
        assert!(r.to_event(&survey(), NOW).is_ok());
        r.answered_at = -1;
        assert!(r.to_event(&survey(), NOW).is_err());
    }

    #[test]
    fn times_with_offsets_and_unix_numbers_are_read() {
        let utc = 1_710_081_000_000; // 2024-03-10T14:30:00Z
        assert_eq!(parse_time("2024-03-10T14:30:00Z", None), Ok(utc));
        assert_eq!(parse_time("2024-03-10T15:30:00+01:00", None), Ok(utc));
        assert_eq!(parse_time("2024-03-10T14:30:00.250Z", None), Ok(utc + 250));
        assert_eq!(parse_time("1710081000", None), Ok(utc));
        assert_eq!(parse_time("1710081000.5", None), Ok(utc + 500));
        assert_eq!(parse_time("1710081000000", None), Ok(utc));
        assert_eq!(parse_time("2024-03-10 15:30:00 +0100", None), Ok(utc));
        assert_eq!(parse_time("2024-03-10 14:30:00 UTC", None), Ok(utc));
        assert_eq!(parse_time("", None), Err(TimeError::Empty));
        assert!(matches!(
            parse_time("yesterday", None),
            Err(TimeError::Unreadable(_))
        ));
        assert!(matches!(
            parse_time("2024-03-10 14:30:00", None),
            Err(TimeError::Naive(_))
        ));
        assert_eq!(
            parse_time("2024-03-10 14:30:00", Some(&TimeZone::UTC)),
            Ok(utc)
        );
    }

    #[test]
    fn naive_times_across_daylight_saving_changes_follow_the_compatible_rule() {
        let ny = TimeZone::get("America/New_York").unwrap();
        // Before the change: EST (-05:00).
        assert_eq!(
            parse_time("2024-03-10 01:30:00", Some(&ny)),
            parse_time("2024-03-10T01:30:00-05:00", None)
        );
        // In the gap (02:00-03:00 does not exist): moved forward by the gap, 03:30 EDT.
        assert_eq!(
            parse_time("2024-03-10 02:30:00", Some(&ny)),
            parse_time("2024-03-10T03:30:00-04:00", None)
        );
        // After: EDT (-04:00).
        assert_eq!(
            parse_time("2024-03-10T03:30", Some(&ny)),
            parse_time("2024-03-10T03:30:00-04:00", None)
        );
        // In the fold (01:00-02:00 happens twice on 2024-11-03): the first, EDT.
        assert_eq!(
            parse_time("2024-11-03 01:30:00", Some(&ny)),
            parse_time("2024-11-03T01:30:00-04:00", None)
        );
        // A date alone is local midnight.
        assert_eq!(
            parse_time("2024-07-01", Some(&ny)),
            parse_time("2024-07-01T00:00:00-04:00", None)
        );
    }

    #[test]
    fn sends_per_month_and_quarter_follow_the_answer_time_in_the_zone() {
        let at = parse_time("2024-03-31T23:30:00-04:00", None).unwrap(); // 04-01 in UTC
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            SendRule::PerMonth.send_for(at, &ny).as_deref(),
            Some("2024-03")
        );
        assert_eq!(
            SendRule::PerMonth.send_for(at, &TimeZone::UTC).as_deref(),
            Some("2024-04")
        );
        assert_eq!(
            SendRule::PerQuarter.send_for(at, &ny).as_deref(),
            Some("2024-Q1")
        );
        assert_eq!(
            SendRule::PerQuarter.send_for(at, &TimeZone::UTC).as_deref(),
            Some("2024-Q2")
        );
        assert_eq!(SendRule::Default.send_for(at, &ny), None);
    }
}
