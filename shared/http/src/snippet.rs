//! The email snippet: the HTML block a marketer pastes into an email template (the question and
//! one link per score, coloured by band) and its plain-text alternative.
//!
//! Rendering is pure and takes URL templates, not tokens: [`SnippetLinks`] builds them with an
//! email tool's merge tags, for per-recipient tokens (a contact field holding the `token` column
//! of `sondeo links`) or for campaign links (one shared token, the respondent's email appended).
//!
//! The markup is what email clients render alike (Outlook's Word engine, Gmail, Apple Mail):
//! nested tables, inline styles only, `bgcolor` attributes and explicit colours on every cell so
//! dark modes that invert or darken colours keep the text readable, no script, no style block, and
//! no external asset but the brand's logo.

use crate::pages::escape;
use serde::{Deserialize, Serialize};
use sondeo_domain::survey::{Locale, Survey, SurveyKind};
use std::fmt;
use std::str::FromStr;

/// An email tool, whose merge-tag syntax the snippet's links are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeTool {
    /// Mailchimp (`*|TAG|*`; audience field tags are at most 10 characters, uppercase).
    Mailchimp,
    /// Klaviyo (`{{ person.property }}`).
    Klaviyo,
    /// HubSpot (HubL, `{{ contact.property }}`).
    HubSpot,
    /// Brevo, formerly Sendinblue (`{{ contact.ATTRIBUTE }}`).
    Brevo,
    /// Any tool with `{{name}}` placeholders, or a script that fills them in.
    Plain,
}

impl MergeTool {
    /// Every tool, in the order they are listed to users.
    pub const ALL: [MergeTool; 5] = [
        MergeTool::Mailchimp,
        MergeTool::Klaviyo,
        MergeTool::HubSpot,
        MergeTool::Brevo,
        MergeTool::Plain,
    ];

    /// The tool's lowercase name, as accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            MergeTool::Mailchimp => "mailchimp",
            MergeTool::Klaviyo => "klaviyo",
            MergeTool::HubSpot => "hubspot",
            MergeTool::Brevo => "brevo",
            MergeTool::Plain => "plain",
        }
    }

    /// The contact field the marketer imports the `token` column of `sondeo links` into.
    pub fn token_field(self) -> &'static str {
        match self {
            MergeTool::Mailchimp => "SONDEOTKN",
            MergeTool::Klaviyo | MergeTool::HubSpot => "sondeo_token",
            MergeTool::Brevo => "SONDEO_TOKEN",
            MergeTool::Plain => "token",
        }
    }

    /// The merge tag that inserts the recipient's token.
    pub fn token_tag(self) -> &'static str {
        match self {
            MergeTool::Mailchimp => "*|SONDEOTKN|*",
            MergeTool::Klaviyo => "{{ person.sondeo_token }}",
            MergeTool::HubSpot => "{{ contact.sondeo_token }}",
            MergeTool::Brevo => "{{ contact.SONDEO_TOKEN }}",
            MergeTool::Plain => "{{token}}",
        }
    }

    /// The tool's own tag for the recipient's unsubscribe link (the URL, for an `href`).
    pub fn unsubscribe_tag(self) -> &'static str {
        match self {
            MergeTool::Mailchimp => "*|UNSUB|*",
            MergeTool::Klaviyo => "{% unsubscribe_link %}",
            MergeTool::HubSpot => "{{ unsubscribe_link }}",
            MergeTool::Brevo => "{{ unsubscribe }}",
            MergeTool::Plain => "{{unsubscribe_url}}",
        }
    }

    /// The merge tag that inserts the recipient's email address.
    pub fn email_tag(self) -> &'static str {
        match self {
            MergeTool::Mailchimp => "*|EMAIL|*",
            MergeTool::Klaviyo => "{{ email }}",
            MergeTool::HubSpot => "{{contact.email}}",
            MergeTool::Brevo => "{{ contact.EMAIL }}",
            MergeTool::Plain => "{{email}}",
        }
    }
}

impl fmt::Display for MergeTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MergeTool {
    type Err = InvalidSnippetLinks;
    fn from_str(s: &str) -> Result<MergeTool, InvalidSnippetLinks> {
        MergeTool::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                InvalidSnippetLinks(format!(
                    "unknown email tool '{}': use mailchimp, klaviyo, hubspot, brevo or plain",
                    sondeo_domain::survey::clip(s, 20)
                ))
            })
    }
}

/// Why snippet links could not be built (a bad base URL, campaign token or tool name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSnippetLinks(pub String);

/// Placeholder for the score in [`SnippetLinks::score_url`].
pub const SCORE_PLACEHOLDER: &str = "{score}";

/// Where a snippet's links go: URL templates holding merge tags, never a token or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnippetLinks {
    /// A score's link, with [`SCORE_PLACEHOLDER`] where the score goes.
    pub score_url: String,
    /// The answer page without a score, for surveys answered with a typed number (duration).
    pub page_url: String,
    /// The unsubscribe link.
    pub unsubscribe_url: String,
}

impl SnippetLinks {
    /// Per-recipient links: `{base}/r/{token tag}?score=N`, unsubscribe `{base}/u/{token tag}`.
    pub fn per_recipient(base: &str, tool: MergeTool) -> Result<SnippetLinks, InvalidSnippetLinks> {
        let base = check_base(base)?;
        let tag = tool.token_tag();
        Ok(SnippetLinks {
            score_url: format!("{base}/r/{tag}?score={SCORE_PLACEHOLDER}"),
            page_url: format!("{base}/r/{tag}"),
            unsubscribe_url: format!("{base}/u/{tag}"),
        })
    }

    /// Campaign links, one token for every recipient and the respondent id from the email tag:
    /// `{base}/r/{campaign_token}?score=N&rid={email tag}`; unsubscribe through the email tool's
    /// own link (its tag), since anyone holding a campaign link could name any address.
    pub fn campaign(
        base: &str,
        campaign_token: &str,
        tool: MergeTool,
    ) -> Result<SnippetLinks, InvalidSnippetLinks> {
        let base = check_base(base)?;
        if campaign_token.is_empty()
            || campaign_token.len() > 2048
            || !campaign_token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        {
            return Err(InvalidSnippetLinks(
                "the campaign token must be 1 to 2048 letters, digits, '-', '_', '.' or '~' (as `sondeo` mints it)".into(),
            ));
        }
        let email = tool.email_tag();
        Ok(SnippetLinks {
            score_url: format!("{base}/r/{campaign_token}?score={SCORE_PLACEHOLDER}&rid={email}"),
            page_url: format!("{base}/r/{campaign_token}?rid={email}"),
            unsubscribe_url: tool.unsubscribe_tag().to_string(),
        })
    }

    /// The link for one score.
    pub fn score(&self, score: i64) -> String {
        self.score_url
            .replace(SCORE_PLACEHOLDER, &score.to_string())
    }
}

/// Checks the stack's base URL (`https://host[/path]`, or `http://` for local mode) and drops a
/// trailing slash.
fn check_base(base: &str) -> Result<&str, InvalidSnippetLinks> {
    let bad = |why: &str| {
        Err(InvalidSnippetLinks(format!(
            "base URL '{}' {why}",
            sondeo_domain::survey::clip(base, 60)
        )))
    };
    let Some(rest) = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
    else {
        return bad("must start with https:// (or http:// for local mode)");
    };
    if rest.is_empty() || rest.starts_with('/') {
        return bad("needs a host");
    }
    if base.len() > 500 {
        return bad("is longer than 500 bytes");
    }
    if base.contains(['?', '#']) {
        return bad("must not have a query or fragment: the snippet adds its own");
    }
    if !base.bytes().all(|b| {
        b.is_ascii_graphic()
            && !matches!(
                b,
                b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`' | b'{' | b'}' | b'|' | b'*'
            )
    }) {
        return bad("must be printable ASCII without quotes, braces, '|', '*', '<' or '>'");
    }
    Ok(base.trim_end_matches('/'))
}

/// Where a score sits on its scale; its button takes the band's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// NPS detractors (0–6), or the lowest third of another scale.
    Low,
    /// NPS passives (7–8), or the middle of another scale.
    Mid,
    /// NPS promoters (9–10), or the highest third of another scale.
    High,
}

impl Band {
    /// The band of a score: NPS by its fixed bands, other scales in thirds (symmetric: 1–2, 3,
    /// 4–5 on a five-point scale; 1–2, 3–5, 6–7 on seven; no and yes on yes/no).
    pub fn of(kind: SurveyKind, score: i64) -> Band {
        if kind == SurveyKind::Nps {
            return match score {
                ..=6 => Band::Low,
                7 | 8 => Band::Mid,
                _ => Band::High,
            };
        }
        let (min, max) = kind.range();
        let (position, points) = (score - min, max - min + 1);
        let third = (points + 1) / 3;
        if position < third {
            Band::Low
        } else if position >= points - third {
            Band::High
        } else {
            Band::Mid
        }
    }

    /// The button colour; white text on each reaches WCAG AA (4.5:1).
    pub fn colour(self) -> &'static str {
        match self {
            Band::Low => "#cf222e",
            Band::Mid => "#9a6700",
            Band::High => "#1a7f37",
        }
    }
}

/// A rendered snippet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The HTML block to paste into an email template.
    pub html: String,
    /// The plain-text alternative, for the text part of the email.
    pub text: String,
}

/// The words around the buttons, in the survey's language.
struct Words {
    unsubscribe: &'static str,
    answer: &'static str,
    yes: &'static str,
    no: &'static str,
}

const EN: Words = Words {
    unsubscribe: "Unsubscribe",
    answer: "Answer",
    yes: "Yes",
    no: "No",
};

const ES: Words = Words {
    unsubscribe: "Darse de baja",
    answer: "Responder",
    yes: "Sí",
    no: "No",
};

/// The labels under the lowest and highest scores, if the kind has them.
fn ends(kind: SurveyKind, locale: Locale) -> Option<(&'static str, &'static str)> {
    Some(match (kind, locale) {
        (SurveyKind::Nps, Locale::En) => ("Not likely", "Very likely"),
        (SurveyKind::Nps, Locale::Es) => ("Nada probable", "Muy probable"),
        (SurveyKind::Csat, Locale::En) => ("Very dissatisfied", "Very satisfied"),
        (SurveyKind::Csat, Locale::Es) => ("Muy insatisfecho", "Muy satisfecho"),
        (SurveyKind::Ces | SurveyKind::Likert5 | SurveyKind::Likert7, Locale::En) => {
            ("Strongly disagree", "Strongly agree")
        }
        (SurveyKind::Ces | SurveyKind::Likert5 | SurveyKind::Likert7, Locale::Es) => {
            ("Totalmente en desacuerdo", "Totalmente de acuerdo")
        }
        (SurveyKind::YesNo | SurveyKind::Duration, _) => return None,
    })
}

const FONT: &str = "font-family:Arial,Helvetica,sans-serif;";
const INK: &str = "#1b1f24";
const MUTED: &str = "#57606a";
const PAPER: &str = "#ffffff";
/// The colour of the single button of a survey answered on the page, when there is no accent.
const DEFAULT_ACCENT: &str = "#0969da";

/// Renders the snippet: brand, question, one link per score (or one "Answer" link for a typed
/// number), end labels, and the unsubscribe link. Everything survey-controlled is HTML-escaped;
/// merge tags stay literal in each `href` (only `&` becomes `&amp;`, which every tool undoes).
pub fn render_snippet(survey: &Survey, links: &SnippetLinks) -> Snippet {
    let words = match survey.locale {
        Locale::En => &EN,
        Locale::Es => &ES,
    };
    let lang = match survey.locale {
        Locale::En => "en",
        Locale::Es => "es",
    };
    let brand = survey.brand.as_ref();
    let accent = brand.and_then(|b| b.usable_accent());
    let mut html = String::with_capacity(8 * 1024);
    let mut text = String::with_capacity(2 * 1024);
    let push = |html: &mut String, parts: &[&str]| parts.iter().for_each(|p| html.push_str(p));

    push(
        &mut html,
        &[
            "<!-- Sondeo survey snippet -->\n<meta name=\"color-scheme\" content=\"light dark\"><meta name=\"supported-color-schemes\" content=\"light dark\">\n",
            "<table role=\"presentation\" lang=\"",
            lang,
            "\" dir=\"ltr\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" bgcolor=\"",
            PAPER,
            "\" style=\"width:100%;max-width:600px;margin:0 auto;border-collapse:collapse;background-color:",
            PAPER,
            ";",
        ],
    );
    if let Some(a) = accent {
        push(&mut html, &["border-top:4px solid ", a, ";"]);
    }
    push(
        &mut html,
        &[
            "\"><tr><td bgcolor=\"",
            PAPER,
            "\" style=\"padding:16px 8px;background-color:",
            PAPER,
            ";color:",
            INK,
            ";",
            FONT,
            "font-size:16px;line-height:1.4\">\n",
        ],
    );

    if let Some(b) = brand {
        let name = escape(&b.name);
        push(
            &mut html,
            &[
                "<table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" bgcolor=\"",
                PAPER,
                "\" style=\"border-collapse:collapse;margin:0 0 12px;background-color:",
                PAPER,
                "\"><tr>",
            ],
        );
        if let Some(logo) = b.usable_logo_url() {
            push(
                &mut html,
                &[
                    "<td bgcolor=\"",
                    PAPER,
                    "\" style=\"padding:0 10px 0 0;background-color:",
                    PAPER,
                    ";vertical-align:middle\"><img src=\"",
                    &escape(logo),
                    "\" alt=\"",
                    &name,
                    "\" height=\"40\" style=\"display:block;height:40px;width:auto;max-width:160px;border:0;outline:none;text-decoration:none\"></td>",
                ],
            );
        }
        push(
            &mut html,
            &[
                "<td bgcolor=\"",
                PAPER,
                "\" style=\"background-color:",
                PAPER,
                ";color:",
                accent.unwrap_or(INK),
                ";",
                FONT,
                "font-size:16px;font-weight:bold;vertical-align:middle;word-break:break-word;overflow-wrap:anywhere\">",
                &name,
                "</td></tr></table>\n",
            ],
        );
        text.push_str(&b.name);
        text.push_str("\n\n");
    }

    push(
        &mut html,
        &[
            "<p style=\"margin:0 0 12px;color:",
            INK,
            ";",
            FONT,
            "font-size:18px;font-weight:bold;line-height:1.35;word-break:break-word;overflow-wrap:anywhere\">",
            &escape(&survey.question),
            "</p>\n",
        ],
    );
    text.push_str(&survey.question);
    text.push_str("\n\n");

    let button = |html: &mut String, href: &str, colour: &str, label: &str, width: &str| {
        push(
            html,
            &[
                "<td align=\"center\" valign=\"middle\" height=\"40\"",
                width,
                " bgcolor=\"",
                colour,
                "\" style=\"background-color:",
                colour,
                ";border-radius:4px;padding:0\"><a href=\"",
                &escape(href),
                "\" style=\"display:block;padding:10px 0;color:#ffffff;",
                FONT,
                "font-size:16px;font-weight:bold;line-height:20px;text-decoration:none\">",
                label,
                "</a></td>",
            ],
        );
    };
    let row_start = [
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"2\" border=\"0\" bgcolor=\"",
        PAPER,
        "\" style=\"width:100%;table-layout:fixed;background-color:",
        PAPER,
        "\"><tr>",
    ];
    if survey.kind.is_discrete() {
        let (min, max) = survey.kind.range();
        let width = format!(" width=\"{}%\"", 100 / (max - min + 1).max(1));
        push(&mut html, &row_start);
        for s in min..=max {
            let label = match (survey.kind, s) {
                (SurveyKind::YesNo, 1) => words.yes.to_string(),
                (SurveyKind::YesNo, _) => words.no.to_string(),
                _ => s.to_string(),
            };
            let href = links.score(s);
            button(
                &mut html,
                &href,
                Band::of(survey.kind, s).colour(),
                &label,
                &width,
            );
            text.push_str(&label);
            if let Some((low, high)) = ends(survey.kind, survey.locale) {
                if s == min {
                    text.push_str(&format!(" ({low})"));
                } else if s == max {
                    text.push_str(&format!(" ({high})"));
                }
            }
            text.push_str(": ");
            text.push_str(&href);
            text.push('\n');
        }
        html.push_str("</tr></table>\n");
        if let Some((low, high)) = ends(survey.kind, survey.locale) {
            let cell = |align: &str, label: &str| {
                format!(
                    "<td align=\"{align}\" bgcolor=\"{PAPER}\" style=\"padding:4px 2px 0;background-color:{PAPER};color:{MUTED};{FONT}font-size:13px\">{label}</td>"
                )
            };
            push(
                &mut html,
                &[
                    "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" bgcolor=\"",
                    PAPER,
                    "\" style=\"width:100%;border-collapse:collapse;background-color:",
                    PAPER,
                    "\"><tr>",
                    &cell("left", low),
                    &cell("right", high),
                    "</tr></table>\n",
                ],
            );
        }
    } else {
        push(&mut html, &row_start);
        button(
            &mut html,
            &links.page_url,
            accent.unwrap_or(DEFAULT_ACCENT),
            words.answer,
            " width=\"160\"",
        );
        html.push_str(
            "<td bgcolor=\"#ffffff\" style=\"background-color:#ffffff\"></td></tr></table>\n",
        );
        text.push_str(words.answer);
        text.push_str(": ");
        text.push_str(&links.page_url);
        text.push('\n');
    }

    push(
        &mut html,
        &[
            "<p style=\"margin:16px 0 0;color:",
            MUTED,
            ";",
            FONT,
            "font-size:12px;line-height:1.4\"><a href=\"",
            &escape(&links.unsubscribe_url),
            "\" style=\"color:",
            MUTED,
            ";text-decoration:underline\">",
            words.unsubscribe,
            "</a></p>\n</td></tr></table>\n",
        ],
    );
    text.push('\n');
    text.push_str(words.unsubscribe);
    text.push_str(": ");
    text.push_str(&links.unsubscribe_url);
    text.push('\n');
    Snippet { html, text }
}

/// The snippet as the API and CLI return it: `{"html": ..., "text": ..., "bytes": <HTML bytes>}`.
pub fn snippet_json(survey: &Survey, links: &SnippetLinks) -> serde_json::Value {
    let s = render_snippet(survey, links);
    serde_json::json!({ "bytes": s.html.len(), "html": s.html, "text": s.text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sondeo_domain::survey::{contrast_with_white, parse_hex_colour, Brand, Touchpoint};

    const BASE: &str = "https://nps.example.com/prod/";

    fn survey(kind: SurveyKind, locale: Locale, brand: Option<Brand>) -> Survey {
        Survey {
            id: "nps".into(),
            kind,
            question: "How likely are you to recommend Café Sol to a friend?".into(),
            follow_up: String::new(),
            locale,
            touchpoints: vec![Touchpoint {
                slug: "post-purchase".into(),
                stage: None,
            }],
            public_key: None,
            brand,
            frequency_cap_days: None,
        }
    }

    fn nps() -> Survey {
        survey(SurveyKind::Nps, Locale::En, None)
    }

    /// Each score button's (cell colour, href as written in the HTML, label).
    fn buttons(html: &str) -> Vec<(String, String, String)> {
        let attr = |s: &str, name: &str| {
            let start = s.find(&format!("{name}=\"")).map(|i| i + name.len() + 2)?;
            let len = s.get(start..)?.find('"')?;
            s.get(start..start + len).map(str::to_string)
        };
        html.split("<td ")
            .filter(|cell| cell.contains("<a href=") && cell.contains("height=\"40\""))
            .map(|cell| {
                let label = cell
                    .split("\">")
                    .nth(2)
                    .and_then(|l| l.split("</a>").next())
                    .unwrap_or_default();
                (
                    attr(cell, "bgcolor").unwrap_or_default(),
                    attr(cell, "href").unwrap_or_default(),
                    label.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn every_score_links_with_the_tools_token_tag() {
        for tool in MergeTool::ALL {
            let links = SnippetLinks::per_recipient(BASE, tool).unwrap();
            let s = render_snippet(&nps(), &links);
            let found = buttons(&s.html);
            assert_eq!(found.len(), 11, "{tool}: {}", s.html);
            let tag = tool.token_tag();
            for (score, (_, href, label)) in found.iter().enumerate() {
                let want = format!("https://nps.example.com/prod/r/{tag}?score={score}");
                assert_eq!(href, &want, "{tool}");
                assert_eq!(label, &score.to_string());
                assert!(s.text.contains(&format!("{score}")) && s.text.contains(&want));
            }
            let unsubscribe = format!("<a href=\"https://nps.example.com/prod/u/{tag}\"");
            assert!(s.html.contains(&unsubscribe), "{tool}: {}", s.html);
            assert!(s.text.contains(&format!(
                "Unsubscribe: https://nps.example.com/prod/u/{tag}\n"
            )));
        }
        assert_eq!(MergeTool::Mailchimp.token_tag(), "*|SONDEOTKN|*");
        assert!(MergeTool::Mailchimp.token_field().len() <= 10);
    }

    #[test]
    fn campaign_links_carry_the_shared_token_and_the_tools_email_tag() {
        let want = [
            (MergeTool::Mailchimp, "*|EMAIL|*"),
            (MergeTool::Klaviyo, "{{ email }}"),
            (MergeTool::HubSpot, "{{contact.email}}"),
            (MergeTool::Brevo, "{{ contact.EMAIL }}"),
            (MergeTool::Plain, "{{email}}"),
        ];
        for (tool, email) in want {
            let links = SnippetLinks::campaign(BASE, "c2.AbC-_9", tool).unwrap();
            let s = render_snippet(&nps(), &links);
            let found = buttons(&s.html);
            assert_eq!(found.len(), 11);
            for (score, (_, href, _)) in found.iter().enumerate() {
                // The merge tag literal, the query separator escaped as every tool expects.
                assert_eq!(
                    href,
                    &format!(
                        "https://nps.example.com/prod/r/c2.AbC-_9?score={score}&amp;rid={email}"
                    )
                );
                let raw =
                    format!("https://nps.example.com/prod/r/c2.AbC-_9?score={score}&rid={email}\n");
                assert!(s.text.contains(&raw), "{}", s.text);
            }
            let unsubscribe = tool.unsubscribe_tag();
            assert!(
                s.html
                    .contains(&format!("<a href=\"{}\"", escape(unsubscribe))),
                "{}",
                s.html
            );
            assert!(s.text.contains(unsubscribe), "{}", s.text);
            assert!(!s.html.contains("/u/"), "{}", s.html);
            assert!(!s.text.contains("&amp;"));
        }
    }

    #[test]
    fn survey_text_is_escaped_and_cannot_break_out_of_attributes_or_add_script() {
        let brand = Brand {
            name: "\"><script>document.title='pwned'</script><b x=\"".into(),
            accent: Some("#0b5cad".into()),
            logo_url: Some("https://cdn.example.com/l.png?a=1&b=2".into()),
        };
        let mut s = survey(SurveyKind::Nps, Locale::En, Some(brand));
        s.question = "Rate <script>alert(1)</script> & \"us\"".into();
        let links = SnippetLinks::per_recipient(BASE, MergeTool::Klaviyo).unwrap();
        let out = render_snippet(&s, &links);
        let lower = out.html.to_ascii_lowercase();
        assert!(
            !lower.contains("<script") && !lower.contains("<style"),
            "{}",
            out.html
        );
        assert!(!lower.contains("javascript:"));
        let name =
            "&quot;&gt;&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;&lt;b x=&quot;";
        assert!(
            out.html.contains(&format!("alt=\"{name}\"")),
            "{}",
            out.html
        );
        assert!(out.html.contains(&format!(">{name}</td>")));
        assert!(out
            .html
            .contains("Rate &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;us&quot;"));
        assert!(out
            .html
            .contains("src=\"https://cdn.example.com/l.png?a=1&amp;b=2\""));
        assert!(out.html.contains("border-top:4px solid #0b5cad"));
        // The text part is plain text: the name as written, for the tool to send as text/plain.
        assert!(out.text.starts_with(&s.brand.as_ref().unwrap().name));
        // The only external asset is the logo.
        assert_eq!(out.html.matches("src=").count(), 1);
    }

    #[test]
    fn bad_stored_brand_values_are_left_out() {
        let brand = Brand {
            name: "Sol".into(),
            accent: Some("#fff;background:url(https://t.example/x)".into()),
            logo_url: Some("http://insecure.example/l.png".into()),
        };
        let s = survey(SurveyKind::Nps, Locale::En, Some(brand));
        let links = SnippetLinks::per_recipient(BASE, MergeTool::Plain).unwrap();
        let html = render_snippet(&s, &links).html;
        assert!(!html.contains("url(") && !html.contains("<img") && !html.contains("border-top"));
        assert!(html.contains(">Sol</td>"));
    }

    #[test]
    fn spanish_surveys_get_spanish_labels() {
        let mut s = survey(SurveyKind::Nps, Locale::Es, None);
        s.question = "¿Recomendaría Café Sol a un amigo?".into();
        let links = SnippetLinks::per_recipient(BASE, MergeTool::Brevo).unwrap();
        let out = render_snippet(&s, &links);
        for words in [
            "Nada probable",
            "Muy probable",
            "Darse de baja",
            "lang=\"es\"",
        ] {
            assert!(out.html.contains(words), "{words}");
        }
        assert!(!out.html.contains("Unsubscribe") && !out.html.contains("likely"));
        assert!(
            out.text.contains("0 (Nada probable): ") && out.text.contains("10 (Muy probable): ")
        );
        let yes_no = render_snippet(&survey(SurveyKind::YesNo, Locale::Es, None), &links);
        let labels: Vec<_> = buttons(&yes_no.html).into_iter().map(|b| b.2).collect();
        assert_eq!(labels, ["No", "Sí"]);
        let csat = render_snippet(&survey(SurveyKind::Csat, Locale::En, None), &links);
        assert!(
            csat.html.contains(">Very dissatisfied</td>")
                && csat.html.contains(">Very satisfied</td>")
        );
    }

    #[test]
    fn buttons_take_their_bands_colour() {
        let links = SnippetLinks::per_recipient(BASE, MergeTool::Plain).unwrap();
        let colours = |kind| {
            buttons(&render_snippet(&survey(kind, Locale::En, None), &links).html)
                .into_iter()
                .map(|b| b.0)
                .collect::<Vec<_>>()
        };
        let (low, mid, high) = (Band::Low.colour(), Band::Mid.colour(), Band::High.colour());
        let mut nps = vec![low; 7];
        nps.extend([mid, mid, high, high]);
        assert_eq!(colours(SurveyKind::Nps), nps);
        assert_eq!(colours(SurveyKind::Csat), [low, low, mid, high, high]);
        assert_eq!(
            colours(SurveyKind::Likert7),
            [low, low, mid, mid, mid, high, high]
        );
        assert_eq!(colours(SurveyKind::YesNo), [low, high]);
        for band in [Band::Low, Band::Mid, Band::High] {
            let ratio = contrast_with_white(parse_hex_colour(band.colour()).unwrap());
            assert!(ratio >= 4.5, "{band:?}: {ratio}");
        }
    }

    #[test]
    fn every_cell_has_an_explicit_background_and_text_has_a_colour() {
        let brand = Brand {
            name: "Sol".into(),
            accent: Some("#0b5cad".into()),
            logo_url: Some("https://cdn.example.com/l.png".into()),
        };
        let links = SnippetLinks::per_recipient(BASE, MergeTool::HubSpot).unwrap();
        for kind in SurveyKind::ALL {
            let html = render_snippet(&survey(kind, Locale::En, Some(brand.clone())), &links).html;
            let cells = html.matches("<td ").count();
            assert!(cells > 3);
            assert_eq!(
                html.matches("<td align").count() + html.matches("<td bgcolor").count(),
                cells
            );
            for cell in html.split("<td ").skip(1) {
                let tag = cell.split('>').next().unwrap_or_default();
                assert!(
                    tag.contains("bgcolor=\"#") && tag.contains("background-color:#"),
                    "{kind}: {tag}"
                );
            }
            for table in html.split("<table ").skip(1) {
                let tag = table.split('>').next().unwrap_or_default();
                assert!(
                    tag.contains("bgcolor=\"#") && tag.contains("role=\"presentation\""),
                    "{tag}"
                );
            }
            for a in html.split("<a ").skip(1) {
                assert!(a.split('>').next().unwrap_or_default().contains("color:#"));
            }
            assert!(html.contains("<meta name=\"color-scheme\" content=\"light dark\">"));
            assert!(
                !html.contains("<style") && !html.contains("<script") && !html.contains("class=")
            );
        }
    }

    #[test]
    fn a_typed_number_survey_gets_one_answer_link_to_the_page() {
        let links = SnippetLinks::campaign(BASE, "tok", MergeTool::Mailchimp).unwrap();
        let out = render_snippet(&survey(SurveyKind::Duration, Locale::En, None), &links);
        let found = buttons(&out.html);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].1,
            "https://nps.example.com/prod/r/tok?rid=*|EMAIL|*"
        );
        assert_eq!(found[0].2, "Answer");
        assert!(!out.html.contains("score="));
    }

    #[test]
    fn bad_bases_tokens_and_tools_are_refused_with_a_reason() {
        for bad in [
            "ftp://x.example",
            "javascript:alert(1)",
            "https://",
            "https:///path",
            "https://x.example/?a=1",
            "https://x.example/#f",
            "https://x.example/a b",
            "https://x.example/\"",
            "https://x.example/{{x}}",
            "https://x.example/*|X|*",
        ] {
            let err = SnippetLinks::per_recipient(bad, MergeTool::Plain).unwrap_err();
            assert!(err.0.starts_with("base URL"), "{bad}: {err}");
        }
        let ok = SnippetLinks::per_recipient("http://127.0.0.1:8080", MergeTool::Plain).unwrap();
        assert_eq!(ok.score(7), "http://127.0.0.1:8080/r/{{token}}?score=7");
        for bad in ["", "a b", "a\"b", "a&b", "{{x}}", &"a".repeat(2049)] {
            assert!(
                SnippetLinks::campaign(BASE, bad, MergeTool::Plain).is_err(),
                "{bad}"
            );
        }
        assert_eq!("HubSpot".parse::<MergeTool>(), Ok(MergeTool::HubSpot));
        assert!("mailjet"
            .parse::<MergeTool>()
            .unwrap_err()
            .0
            .contains("mailchimp, klaviyo"));
        assert_eq!(
            serde_json::to_string(&MergeTool::HubSpot).unwrap(),
            "\"hubspot\""
        );
    }

    #[test]
    fn snippet_json_reports_html_text_and_size_of_an_nps_snippet() {
        let links = SnippetLinks::per_recipient(BASE, MergeTool::Mailchimp).unwrap();
        let plain = snippet_json(&nps(), &links);
        let html = plain["html"].as_str().unwrap();
        assert_eq!(plain["bytes"].as_u64(), Some(html.len() as u64));
        assert!(plain["text"].as_str().unwrap().contains("*|SONDEOTKN|*"));
        let brand = Brand {
            name: "Café Sol".into(),
            accent: Some("#0b5cad".into()),
            logo_url: Some("https://cdn.example.com/logo.png".into()),
        };
        let branded = snippet_json(&survey(SurveyKind::Nps, Locale::En, Some(brand)), &links);
        println!(
            "NPS snippet (en, Mailchimp tokens): {} bytes HTML, {} bytes text; with brand, logo and accent: {} bytes HTML",
            plain["bytes"],
            plain["text"].as_str().unwrap().len(),
            branded["bytes"]
        );
        // Gmail clips messages over 102 KB: the snippet must leave the template room.
        assert!(branded["bytes"].as_u64().unwrap() < 10_000);
    }
}
