//! Surveys: their kind and scale, questions, locale and touchpoints.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Longest survey id, touchpoint slug or property key, in bytes.
pub const MAX_SLUG_LEN: usize = 64;

/// What kind of question a survey asks, which fixes its scale and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurveyKind {
    /// Net Promoter Score, 0–10.
    Nps,
    /// Customer satisfaction, 1–5.
    Csat,
    /// Customer effort score, 1–7 (7 = strongly agree it was easy).
    Ces,
    /// Likert scale 1–5.
    Likert5,
    /// Likert scale 1–7.
    Likert7,
    /// Yes (1) or no (0).
    YesNo,
    /// A duration in whole seconds, from 0 to [`MAX_DURATION_SECS`] (ten years).
    Duration,
}

/// Longest duration a response may report: ten years of 365.25 days, in seconds. Bounded so
/// that no number of answers on one day can overflow a counter's 64-bit sum (2.9·10¹⁰ answers).
pub const MAX_DURATION_SECS: i64 = 315_576_000;

/// A score outside its survey's scale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("score {score} is outside this {kind} survey's scale of {min} to {max}")]
pub struct ScoreOutOfRange {
    /// The score given.
    pub score: i64,
    /// The survey kind.
    pub kind: SurveyKind,
    /// Lowest allowed score.
    pub min: i64,
    /// Highest allowed score.
    pub max: i64,
}

/// Number of histogram slots for duration surveys: slot 0 holds 0 s, then two slots per power of two.
pub const DURATION_SLOTS: u16 = 127;

impl SurveyKind {
    /// Every kind, in display order.
    pub const ALL: [SurveyKind; 7] = [
        SurveyKind::Nps,
        SurveyKind::Csat,
        SurveyKind::Ces,
        SurveyKind::Likert5,
        SurveyKind::Likert7,
        SurveyKind::YesNo,
        SurveyKind::Duration,
    ];

    /// The lowest and highest score on this kind's scale.
    pub fn range(self) -> (i64, i64) {
        match self {
            SurveyKind::Nps => (0, 10),
            SurveyKind::Csat | SurveyKind::Likert5 => (1, 5),
            SurveyKind::Ces | SurveyKind::Likert7 => (1, 7),
            SurveyKind::YesNo => (0, 1),
            SurveyKind::Duration => (0, MAX_DURATION_SECS),
        }
    }

    /// Checks that a score is on this kind's scale.
    pub fn validate(self, score: i64) -> Result<(), ScoreOutOfRange> {
        let (min, max) = self.range();
        if (min..=max).contains(&score) {
            Ok(())
        } else {
            Err(ScoreOutOfRange {
                score,
                kind: self,
                min,
                max,
            })
        }
    }

    /// The histogram slot a valid score is counted in.
    pub fn slot(self, score: i64) -> u16 {
        match self {
            SurveyKind::Duration => duration_slot(score),
            _ => score.clamp(0, 10) as u16,
        }
    }

    /// Whether the scale is a small set of scores a respondent picks from (every kind but duration).
    pub fn is_discrete(self) -> bool {
        self != SurveyKind::Duration
    }

    /// The lowest score a slot holds.
    pub fn slot_floor(self, slot: u16) -> i64 {
        match self {
            SurveyKind::Duration => duration_slot_floor(slot),
            _ => i64::from(slot),
        }
    }
}

impl fmt::Display for SurveyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SurveyKind::Nps => "nps",
            SurveyKind::Csat => "csat",
            SurveyKind::Ces => "ces",
            SurveyKind::Likert5 => "likert5",
            SurveyKind::Likert7 => "likert7",
            SurveyKind::YesNo => "yes_no",
            SurveyKind::Duration => "duration",
        })
    }
}

impl FromStr for SurveyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<SurveyKind, String> {
        SurveyKind::ALL
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| format!("unknown survey kind '{}': use one of nps, csat, ces, likert5, likert7, yes_no, duration", clip(s, 20)))
    }
}

/// Duration slot: 0 for 0 s; for s ≥ 1 with 2^k ≤ s < 2^(k+1), slot 2k+1 below 2^k·√2 and 2k+2 from there.
fn duration_slot(seconds: i64) -> u16 {
    if seconds <= 0 {
        return 0;
    }
    let s = seconds as u128;
    let k = 127 - s.leading_zeros(); // floor(log2 s)
    let upper_half = s * s >= 1u128 << (2 * k + 1);
    (1 + 2 * k + u32::from(upper_half)) as u16
}

/// Smallest number of seconds that falls in a duration slot.
fn duration_slot_floor(slot: u16) -> i64 {
    if slot == 0 {
        return 0;
    }
    let k = u32::from(slot - 1) / 2;
    let base = 1i128 << k.min(62);
    if (slot - 1) % 2 == 0 {
        return base as i64;
    }
    // Smallest s with s² ≥ 2^(2k+1), i.e. ceil(2^k·√2).
    let target = 1u128 << (2 * k.min(62) + 1);
    let mut s = ((base as f64) * std::f64::consts::SQRT_2).floor() as u128;
    while s * s < target {
        s += 1;
    }
    while s > 1 && (s - 1) * (s - 1) >= target {
        s -= 1;
    }
    s.min(i64::MAX as u128) as i64
}

/// A customer-journey stage a touchpoint can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JourneyStage {
    /// The customer learns the business exists.
    Awareness,
    /// The customer first engages.
    Connection,
    /// The customer weighs a purchase.
    Consideration,
    /// The customer buys.
    Conversion,
    /// The customer stays.
    Retention,
}

impl JourneyStage {
    /// Every stage, in journey order.
    pub const ALL: [JourneyStage; 5] = [
        JourneyStage::Awareness,
        JourneyStage::Connection,
        JourneyStage::Consideration,
        JourneyStage::Conversion,
        JourneyStage::Retention,
    ];

    /// The stage's lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            JourneyStage::Awareness => "awareness",
            JourneyStage::Connection => "connection",
            JourneyStage::Consideration => "consideration",
            JourneyStage::Conversion => "conversion",
            JourneyStage::Retention => "retention",
        }
    }
}

impl FromStr for JourneyStage {
    type Err = String;
    fn from_str(s: &str) -> Result<JourneyStage, String> {
        JourneyStage::ALL.into_iter().find(|j| j.as_str() == s).ok_or_else(|| {
            format!(
                "unknown journey stage '{}': use awareness, connection, consideration, conversion or retention",
                clip(s, 20)
            )
        })
    }
}

/// The language respondent-facing pages are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// English.
    #[default]
    En,
    /// Spanish.
    Es,
}

impl FromStr for Locale {
    type Err = String;
    fn from_str(s: &str) -> Result<Locale, String> {
        match s {
            "en" => Ok(Locale::En),
            "es" => Ok(Locale::Es),
            other => Err(format!(
                "unknown locale '{}': use en or es",
                clip(other, 10)
            )),
        }
    }
}

/// A place in the customer journey where a survey is asked, such as `post-purchase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touchpoint {
    /// Short lowercase slug carried by every link and submission.
    pub slug: String,
    /// The journey stage this touchpoint belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<JourneyStage>,
}

/// A survey definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    /// Unique slug naming the survey.
    pub id: String,
    /// The question kind and scale.
    pub kind: SurveyKind,
    /// The question asked, such as "How likely are you to recommend us to a friend?".
    pub question: String,
    /// The open question asked after the score ("What is the main reason for your score?").
    #[serde(default)]
    pub follow_up: String,
    /// The language of respondent-facing pages.
    #[serde(default)]
    pub locale: Locale,
    /// The touchpoints this survey is asked at.
    pub touchpoints: Vec<Touchpoint>,
    /// Public key that websites and widgets send with `POST /v1/responses` (not a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The business's name, accent colour and logo, shown on respondent pages and in the snippet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<Brand>,
    /// Post-order invitations: nobody is invited to this survey again within this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_cap_days: Option<u32>,
}

/// Longest frequency cap, in days.
pub const MAX_FREQUENCY_CAP_DAYS: u32 = 3650;

/// Longest brand name, in characters.
pub const MAX_BRAND_NAME_CHARS: usize = 80;

/// Longest logo URL, in bytes.
pub const MAX_LOGO_URL_BYTES: usize = 500;

/// Lowest contrast ratio white text must reach on a brand's accent colour (WCAG 2 AA, normal text).
pub const MIN_ACCENT_CONTRAST: f64 = 4.5;

/// A business's branding for one survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brand {
    /// The business's name, shown above the question (1 to 80 characters).
    pub name: String,
    /// Accent colour `#rrggbb` for the chosen score and buttons; white text on it must be readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accent: Option<String>,
    /// The logo's `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
}

impl Brand {
    /// Checks the name's length and characters, the accent's form and contrast, and the logo URL.
    pub fn validate(&self) -> Result<(), InvalidSurvey> {
        let chars = self.name.chars().count();
        if self.name.trim().is_empty() || chars > MAX_BRAND_NAME_CHARS {
            return Err(InvalidSurvey(format!(
                "brand name must be 1 to {MAX_BRAND_NAME_CHARS} characters (it has {chars})"
            )));
        }
        if self.name.chars().any(char::is_control) {
            return Err(InvalidSurvey(
                "brand name must not contain control characters (line breaks, tabs)".into(),
            ));
        }
        if let Some(accent) = &self.accent {
            check_accent(accent).map_err(InvalidSurvey)?;
        }
        if let Some(url) = &self.logo_url {
            check_logo_url(url).map_err(InvalidSurvey)?;
        }
        Ok(())
    }

    /// The accent colour if it is valid (renderers skip one stored before it was checked).
    pub fn usable_accent(&self) -> Option<&str> {
        self.accent.as_deref().filter(|a| check_accent(a).is_ok())
    }

    /// The logo URL if it is valid (renderers skip one stored before it was checked).
    pub fn usable_logo_url(&self) -> Option<&str> {
        self.logo_url
            .as_deref()
            .filter(|u| check_logo_url(u).is_ok())
    }
}

/// The red, green and blue of a `#rrggbb` colour (either case).
pub fn parse_hex_colour(s: &str) -> Option<[u8; 3]> {
    let hex = s.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// WCAG 2 relative luminance of an sRGB colour, from 0 (black) to 1 (white).
pub fn relative_luminance(rgb: [u8; 3]) -> f64 {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * linear(rgb[0]) + 0.7152 * linear(rgb[1]) + 0.0722 * linear(rgb[2])
}

/// WCAG 2 contrast ratio of white text on a colour, from 1 to 21.
pub fn contrast_with_white(rgb: [u8; 3]) -> f64 {
    1.05 / (relative_luminance(rgb) + 0.05)
}

/// Checks an accent colour: `#rrggbb`, with white text on it at [`MIN_ACCENT_CONTRAST`] or more.
pub fn check_accent(accent: &str) -> Result<(), String> {
    let Some(rgb) = parse_hex_colour(accent) else {
        return Err(format!(
            "brand accent '{}' must be a colour written #rrggbb, such as #0b5cad",
            clip(accent, 20)
        ));
    };
    let ratio = contrast_with_white(rgb);
    if ratio >= MIN_ACCENT_CONTRAST {
        return Ok(());
    }
    // The lightest darker shade of the same hue that passes, as a suggestion.
    let darker = (1..=100)
        .rev()
        .map(|pct| rgb.map(|c| (u32::from(c) * pct / 100) as u8))
        .find(|c| contrast_with_white(*c) >= MIN_ACCENT_CONTRAST)
        .unwrap_or([0, 0, 0]);
    Err(format!(
        "brand accent {accent} is too light: white text on it has a contrast of {:.2}:1 and needs at least {MIN_ACCENT_CONTRAST}:1 to be readable (WCAG AA); pick a darker colour, such as #{:02x}{:02x}{:02x}",
        (ratio * 100.0).floor() / 100.0,
        darker[0],
        darker[1],
        darker[2]
    ))
}

/// Checks a logo URL: `https://` and a host, at most 500 bytes of printable ASCII with no quotes,
/// `<`, `>`, backslashes or whitespace.
pub fn check_logo_url(url: &str) -> Result<(), String> {
    // The URL is not repeated in the error: it may hold a password.
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(
            "brand logo_url must start with https:// in lower case (pages only load images over \
             HTTPS)"
                .into(),
        );
    };
    if url.len() > MAX_LOGO_URL_BYTES {
        return Err(format!(
            "brand logo_url must be at most {MAX_LOGO_URL_BYTES} bytes (it has {})",
            url.len()
        ));
    }
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return Err("brand logo_url needs a host after https://".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "brand logo_url must not carry a user name or password (user:password@): every \
             recipient's mail client would see them"
                .into(),
        );
    }
    if let Some(bad) = url
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\'' | '<' | '>' | '\\' | '`'))
    {
        return Err(format!(
            "brand logo_url must not contain {bad:?}: percent-encode spaces, quotes and non-ASCII characters"
        ));
    }
    Ok(())
}

/// Why a survey definition is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSurvey(pub String);

impl Survey {
    /// Checks ids, slugs, text lengths, touchpoints and the brand.
    pub fn validate(&self) -> Result<(), InvalidSurvey> {
        check_slug("survey id", &self.id).map_err(InvalidSurvey)?;
        if self
            .frequency_cap_days
            .is_some_and(|d| d == 0 || d > MAX_FREQUENCY_CAP_DAYS)
        {
            return Err(InvalidSurvey(format!(
                "frequency_cap_days must be 1 to {MAX_FREQUENCY_CAP_DAYS} (leave it out for no cap)"
            )));
        }
        if self.question.trim().is_empty() || self.question.chars().count() > 500 {
            return Err(InvalidSurvey("question must be 1 to 500 characters".into()));
        }
        if self.follow_up.chars().count() > 500 {
            return Err(InvalidSurvey(
                "follow_up must be at most 500 characters".into(),
            ));
        }
        if self.touchpoints.is_empty() || self.touchpoints.len() > 100 {
            return Err(InvalidSurvey("a survey needs 1 to 100 touchpoints".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.touchpoints {
            check_slug("touchpoint", &t.slug).map_err(InvalidSurvey)?;
            if !seen.insert(t.slug.as_str()) {
                return Err(InvalidSurvey(format!(
                    "touchpoint '{}' is listed twice",
                    t.slug
                )));
            }
        }
        if let Some(key) = &self.public_key {
            if key.len() < 8
                || key.len() > 128
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(InvalidSurvey(
                    "public_key must be 8 to 128 letters, digits, '-' or '_'".into(),
                ));
            }
        }
        if let Some(brand) = &self.brand {
            brand.validate()?;
        }
        Ok(())
    }

    /// The touchpoint with this slug, if the survey has it.
    pub fn touchpoint(&self, slug: &str) -> Option<&Touchpoint> {
        self.touchpoints.iter().find(|t| t.slug == slug)
    }

    /// The touchpoint with this slug, or an error naming only the slug and survey asked for.
    pub fn require_touchpoint(&self, slug: &str) -> Result<&Touchpoint, String> {
        self.touchpoint(slug).ok_or_else(|| {
            format!(
                "touchpoint '{}' is not part of survey '{}'",
                clip(slug, MAX_SLUG_LEN),
                self.id
            )
        })
    }
}

/// Checks a slug: 1–64 bytes of lowercase letters, digits, '-' and '_', starting with a letter or digit.
pub fn check_slug(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_SLUG_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} '{}' must be 1 to {MAX_SLUG_LEN} lowercase letters, digits, '-' or '_', starting with a letter or digit",
            clip(s, MAX_SLUG_LEN)
        ))
    }
}

/// The first `n` characters of a string, for quoting user input in error messages.
pub fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).filter(|c| !c.is_control()).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_accepts_its_scale_and_rejects_the_edges_outside() {
        for kind in SurveyKind::ALL {
            let (min, max) = kind.range();
            assert!(kind.validate(min).is_ok());
            assert!(kind.validate(max).is_ok());
            assert!(kind.validate(min - 1).is_err());
            assert!(kind.validate(max + 1).is_err());
            assert!(kind.validate(i64::MAX).is_err());
            assert!(kind.validate(i64::MIN).is_err());
        }
        let err = SurveyKind::Duration
            .validate(MAX_DURATION_SECS + 1)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "score 315576001 is outside this duration survey's scale of 0 to 315576000"
        );
        let err = SurveyKind::Nps.validate(11).unwrap_err().to_string();
        assert_eq!(
            err,
            "score 11 is outside this nps survey's scale of 0 to 10"
        );
    }

    #[test]
    fn duration_slots_are_half_powers_of_two() {
        assert_eq!(duration_slot(0), 0);
        assert_eq!(duration_slot(1), 1);
        assert_eq!(duration_slot(2), 3);
        assert_eq!(duration_slot(3), 4); // 3 ≥ 2·√2
        assert_eq!(duration_slot(4), 5);
        assert_eq!(duration_slot(5), 5);
        assert_eq!(duration_slot(6), 6);
        assert!(duration_slot(i64::MAX) < DURATION_SLOTS);
        // Slot 2 ([√2, 2) s) holds no whole second; every other slot's floor maps back to it.
        for slot in
            (0..DURATION_SLOTS).filter(|s| duration_slot_floor(*s) < duration_slot_floor(s + 1))
        {
            let floor = duration_slot_floor(slot);
            assert_eq!(duration_slot(floor), slot, "slot {slot} floor {floor}");
            if floor > 0 {
                assert!(duration_slot(floor - 1) < slot);
            }
        }
    }

    #[test]
    fn kinds_and_stages_parse_from_their_names() {
        for kind in SurveyKind::ALL {
            assert_eq!(kind.to_string().parse::<SurveyKind>(), Ok(kind));
        }
        for stage in JourneyStage::ALL {
            assert_eq!(stage.as_str().parse::<JourneyStage>(), Ok(stage));
        }
        assert!("net-promoter".parse::<SurveyKind>().is_err());
    }

    #[test]
    fn slugs_reject_uppercase_spaces_and_empty() {
        assert!(check_slug("t", "post-purchase").is_ok());
        for bad in ["", "Post", "a b", "-x", "é", &"a".repeat(65)] {
            assert!(check_slug("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn survey_with_duplicate_touchpoints_is_invalid() {
        let s = Survey {
            id: "s".into(),
            kind: SurveyKind::Nps,
            question: "Q?".into(),
            follow_up: String::new(),
            locale: Locale::En,
            touchpoints: vec![
                Touchpoint {
                    slug: "a".into(),
                    stage: None,
                },
                Touchpoint {
                    slug: "a".into(),
                    stage: None,
                },
            ],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        };
        assert!(s.validate().unwrap_err().0.contains("twice"));
    }

    fn branded(brand: Brand) -> Survey {
        Survey {
            id: "s".into(),
            kind: SurveyKind::Nps,
            question: "Q?".into(),
            follow_up: String::new(),
            locale: Locale::En,
            touchpoints: vec![Touchpoint {
                slug: "a".into(),
                stage: None,
            }],
            public_key: None,
            brand: Some(brand),
            frequency_cap_days: None,
        }
    }

    fn brand(name: &str, accent: Option<&str>, logo_url: Option<&str>) -> Brand {
        Brand {
            name: name.into(),
            accent: accent.map(str::to_string),
            logo_url: logo_url.map(str::to_string),
        }
    }

    #[test]
    fn a_stored_survey_without_a_brand_still_loads_and_none_is_not_written() {
        let stored = r#"{"id":"s","kind":"nps","question":"Q?","touchpoints":[{"slug":"a"}]}"#;
        let survey: Survey = serde_json::from_str(stored).unwrap();
        assert_eq!(survey.brand, None);
        assert!(!serde_json::to_string(&survey).unwrap().contains("brand"));
        let with = branded(brand("Café Sol", Some("#0b5cad"), None));
        let json = serde_json::to_string(&with).unwrap();
        assert!(
            json.contains(r##""brand":{"name":"Café Sol","accent":"#0b5cad"}"##),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Survey>(&json).unwrap(), with);
    }

    #[test]
    fn brand_names_are_1_to_80_characters_without_control_characters() {
        assert!(branded(brand("Café Sol <b>&</b>", None, None))
            .validate()
            .is_ok());
        assert!(branded(brand(&"ñ".repeat(80), None, None))
            .validate()
            .is_ok());
        for bad in ["", "   ", "a\nb", "tab\there", "bell\u{7}"] {
            assert!(
                branded(brand(bad, None, None)).validate().is_err(),
                "{bad:?}"
            );
        }
        let err = branded(brand(&"ñ".repeat(81), None, None))
            .validate()
            .unwrap_err();
        assert_eq!(err.0, "brand name must be 1 to 80 characters (it has 81)");
    }

    #[test]
    fn accents_must_be_hex_and_dark_enough_for_white_text() {
        // #767676 is the lightest grey that passes 4.5:1 against white; #777777 just fails.
        assert!((contrast_with_white([0x76; 3]) - 4.54).abs() < 0.01);
        assert!((contrast_with_white([0, 0, 0]) - 21.0).abs() < 1e-9);
        assert!((contrast_with_white([255, 255, 255]) - 1.0).abs() < 1e-9);
        for good in ["#767676", "#000000", "#0B5CAD", "#0b5cad", "#1a7f37"] {
            assert_eq!(check_accent(good), Ok(()), "{good}");
        }
        let err = check_accent("#777777").unwrap_err();
        assert!(err.contains("4.47:1") && err.contains("4.5:1"), "{err}");
        let err = check_accent("#ffcc00").unwrap_err();
        assert!(err.contains("too light") && err.contains("1.51:1"), "{err}");
        let suggested = err.rsplit("such as ").next().unwrap();
        assert_eq!(
            check_accent(suggested),
            Ok(()),
            "the suggestion {suggested} passes"
        );
        assert_eq!(
            parse_hex_colour(suggested).map(|c| c[2]),
            Some(0),
            "same hue"
        );
        for bad in [
            "0b5cad",
            "#0b5ca",
            "#0b5cadd",
            "#gg0000",
            "red",
            "#0b5cad;x",
            "",
            "#ñ0000",
        ] {
            let err = check_accent(bad).unwrap_err();
            assert!(err.contains("#rrggbb"), "{bad}: {err}");
        }
        assert!(branded(brand("B", Some("#fff000"), None))
            .validate()
            .is_err());
    }

    #[test]
    fn logo_urls_must_be_https_bounded_and_free_of_markup_characters() {
        assert_eq!(
            check_logo_url("https://cdn.example.com/logo.png?v=2&s=1"),
            Ok(())
        );
        let long = format!("https://e.co/{}", "a".repeat(MAX_LOGO_URL_BYTES - 13));
        assert_eq!(long.len(), MAX_LOGO_URL_BYTES);
        assert_eq!(check_logo_url(&long), Ok(()));
        assert!(check_logo_url(&format!("{long}a"))
            .unwrap_err()
            .contains("500 bytes"));
        for bad in [
            "http://e.co/l.png",
            "javascript:alert(1)",
            "//e.co/l.png",
            "https://",
            "https:///l.png",
            "https://e.co/a b.png",
            "https://e.co/\"onerror=\"alert(1)",
            "https://e.co/'x",
            "https://e.co/<script>",
            "https://user:pw@e.co/l.png",
            "HTTPS://u:p@e.co/l.png",
            "https://e.co@evil.example/l.png",
            "https://e.co/logo.png\n",
            "https://e.co/ñ.png",
            "HTTPS://e.co/l.png",
        ] {
            assert!(check_logo_url(bad).is_err(), "{bad}");
            assert!(
                branded(brand("B", None, Some(bad))).validate().is_err(),
                "{bad}"
            );
        }
        let b = brand("B", Some("#ffff00"), Some("http://e.co/l.png"));
        assert_eq!((b.usable_accent(), b.usable_logo_url()), (None, None));
        let b = brand("B", Some("#0b5cad"), Some("https://e.co/l.png"));
        assert_eq!(
            (b.usable_accent(), b.usable_logo_url()),
            (Some("#0b5cad"), Some("https://e.co/l.png"))
        );
    }
}
