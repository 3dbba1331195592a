//! The post-order invitation email: the survey snippet with the respondent's links, a plain-text
//! part and the unsubscribe headers, as one MIME message.
//!
//! Rendering is pure: [`render_invitation`] writes the subject, the HTML document and the text
//! alternative in the survey's language from the survey, the order's invitation and the store's
//! connection; [`to_mime`] wraps them into a `multipart/alternative` message with CRLF line ends,
//! both parts UTF-8 in base64 (76-character lines), headers folded at 78 characters and the RFC
//! 8058 one-click unsubscribe headers.
//!
//! Text from the store or the order (store name, order reference, first name) is put on one line
//! (control characters become spaces) before it goes anywhere, and HTML-escaped in the HTML part;
//! the subject is RFC 2047 encoded when it is not plain ASCII. No header value can hold a line
//! break, so nothing can add a header.

use crate::pages::escape;
use crate::snippet::{render_snippet, SnippetLinks, SCORE_PLACEHOLDER};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sondeo_domain::mailbox::{is_phrase_special, quoted_string, Mailbox};
use sondeo_domain::orders::{Connection, Invitation};
use sondeo_domain::survey::{Locale, Survey};
use sondeo_domain::time::Day;

/// The invitation email of one order, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationEmail {
    /// The subject as the recipient reads it (one line, not yet encoded).
    pub subject: String,
    /// The HTML part: a whole document around the survey snippet.
    pub html: String,
    /// The plain-text part (`\n` line ends; [`to_mime`] makes them CRLF).
    pub text: String,
    /// The respondent's unsubscribe link, also sent in the `List-Unsubscribe` header.
    pub unsubscribe_url: String,
}

/// The concrete links of one respondent: `{base}/r/{token}?score=N`, the page `{base}/r/{token}`
/// and unsubscribe `{base}/u/{token}`. A trailing slash of the base is dropped; a byte of the
/// token outside the URL-safe set (`A-Z a-z 0-9 - . _ ~`) is percent-encoded.
pub fn invitation_links(base_url: &str, token: &str) -> SnippetLinks {
    let base = base_url.trim().trim_end_matches('/');
    let token = url_segment(token);
    SnippetLinks {
        score_url: format!("{base}/r/{token}?score={SCORE_PLACEHOLDER}"),
        page_url: format!("{base}/r/{token}"),
        unsubscribe_url: format!("{base}/u/{token}"),
    }
}

/// Renders the invitation: greeting with the customer's first name when known, the store's name
/// and the order reference, the survey question with its score buttons as in the snippet (one
/// "Answer" link for a survey answered with a typed number), the unsubscribe link and a line
/// saying why the email came; in the survey's language.
pub fn render_invitation(
    survey: &Survey,
    invitation: &Invitation,
    connection: &Connection,
    base_url: &str,
    token: &str,
) -> InvitationEmail {
    let links = invitation_links(base_url, token);
    let snippet = render_snippet(survey, &links);
    let locale = survey.locale;
    let store = one_line(&connection.store_name);
    let order = order_label(&invitation.order_ref);
    let name = invitation
        .name
        .as_deref()
        .map(one_line)
        .filter(|n| !n.is_empty());
    let subject = subject(locale, &order, &store);

    let (e_store, e_order, e_name) = (escape(&store), escape(&order), name.as_deref().map(escape));
    let lang = match locale {
        Locale::En => "en",
        Locale::Es => "es",
    };
    let mut html = String::with_capacity(snippet.html.len() + 2048);
    html.push_str("<!DOCTYPE html>\n<html lang=\"");
    html.push_str(lang);
    html.push_str("\" dir=\"ltr\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"color-scheme\" content=\"light dark\"><meta name=\"supported-color-schemes\" content=\"light dark\">\n<title>");
    html.push_str(&escape(&subject));
    html.push_str("</title>\n</head>\n<body bgcolor=\"");
    html.push_str(PAPER);
    html.push_str("\" style=\"margin:0;padding:0;background-color:");
    html.push_str(PAPER);
    html.push_str(";color:");
    html.push_str(INK);
    html.push_str("\">\n");
    let block = |html: &mut String, padding: &str, colour: &str, size: &str, inner: &str| {
        html.push_str(&format!(
            "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" bgcolor=\"{PAPER}\" style=\"width:100%;max-width:600px;margin:0 auto;border-collapse:collapse;background-color:{PAPER}\"><tr><td bgcolor=\"{PAPER}\" style=\"padding:{padding};background-color:{PAPER};color:{colour};{FONT}font-size:{size};line-height:1.4;word-break:break-word;overflow-wrap:anywhere\">\n{inner}</td></tr></table>\n"
        ));
    };
    let greeting_html = format!(
        "<p style=\"margin:0 0 12px;color:{INK}\">{}</p>\n<p style=\"margin:0;color:{INK}\">{}</p>\n",
        greeting(locale, e_name.as_deref()),
        thanks(locale, &e_order, &e_store)
    );
    block(&mut html, "16px 8px 0", INK, "16px", &greeting_html);
    html.push_str(&snippet.html);
    let why_html = format!(
        "<p style=\"margin:0;color:{MUTED}\">{}</p>\n",
        why(locale, &e_order, &e_store)
    );
    block(&mut html, "0 8px 16px", MUTED, "12px", &why_html);
    html.push_str("</body>\n</html>\n");

    let mut text = String::with_capacity(snippet.text.len() + 512);
    text.push_str(&greeting(locale, name.as_deref()));
    text.push_str("\n\n");
    text.push_str(&thanks(locale, &order, &store));
    text.push_str("\n\n");
    text.push_str(&snippet.text);
    text.push('\n');
    text.push_str(&why(locale, &order, &store));
    text.push('\n');

    InvitationEmail {
        subject,
        html,
        text,
        unsubscribe_url: links.unsubscribe_url,
    }
}

/// The email as one MIME message: `multipart/alternative` with a `text/plain` and a `text/html`
/// part (UTF-8, base64 in 76-character lines), `From` and `To` as given (a display name quoted
/// or RFC 2047 encoded when it needs it), `Subject` (RFC 2047 when not ASCII), `Date` (RFC 5322,
/// UTC), `Message-ID` `<message_id@sender's domain>` (the part of `message_id` before any `@`),
/// `MIME-Version`, `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058 one-click); CRLF line
/// ends, header lines folded at 78 characters where they have a space to fold at.
pub fn to_mime(
    from: &str,
    to: &str,
    email: &InvitationEmail,
    date_unix_secs: i64,
    message_id: &str,
) -> Vec<u8> {
    let mut out = String::with_capacity(4 * (email.html.len() + email.text.len()) / 3 + 2048);
    push_header(&mut out, "From", &mailbox(from));
    push_header(&mut out, "To", &mailbox(to));
    push_header(&mut out, "Subject", &unstructured(&email.subject));
    push_header(&mut out, "Date", &rfc5322_date(date_unix_secs));
    let id = message_id_value(message_id, from);
    push_header(&mut out, "Message-ID", &id);
    push_header(&mut out, "MIME-Version", "1.0");
    push_header(
        &mut out,
        "List-Unsubscribe",
        &format!("<{}>", header_url(&email.unsubscribe_url)),
    );
    push_header(
        &mut out,
        "List-Unsubscribe-Post",
        "List-Unsubscribe=One-Click",
    );
    // "=_" never occurs in base64 text or in the part headers, so the boundary cannot either.
    let boundary = format!(
        "=_sondeo_{:016x}",
        fnv1a(&[
            id.as_bytes(),
            email.subject.as_bytes(),
            email.text.as_bytes()
        ])
    );
    push_header(
        &mut out,
        "Content-Type",
        &format!("multipart/alternative; boundary=\"{boundary}\""),
    );
    out.push_str("\r\nThis is a multi-part message in MIME format.\r\n");
    for (kind, body) in [("text/plain", &email.text), ("text/html", &email.html)] {
        out.push_str("--");
        out.push_str(&boundary);
        out.push_str("\r\nContent-Type: ");
        out.push_str(kind);
        out.push_str("; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
        push_base64_lines(&mut out, crlf(body).as_bytes());
    }
    out.push_str("--");
    out.push_str(&boundary);
    out.push_str("--\r\n");
    out.into_bytes()
}

const FONT: &str = "font-family:Arial,Helvetica,sans-serif;";
const INK: &str = "#1b1f24";
const MUTED: &str = "#57606a";
const PAPER: &str = "#ffffff";

/// Longest header line written where there is a space to fold at (RFC 5322's recommendation).
const HEADER_LINE: usize = 78;
/// Characters of base64 per body line (RFC 2045).
const BASE64_LINE: usize = 76;
/// UTF-8 bytes per RFC 2047 encoded word: 52 base64 characters, a 64-character word.
const ENCODED_WORD_BYTES: usize = 39;

fn subject(locale: Locale, order: &str, store: &str) -> String {
    match (locale, order.is_empty()) {
        (Locale::En, false) => format!("How was your order {order} from {store}?"),
        (Locale::En, true) => format!("How was your order from {store}?"),
        (Locale::Es, false) => format!("¿Qué tal su pedido {order} de {store}?"),
        (Locale::Es, true) => format!("¿Qué tal su pedido de {store}?"),
    }
}

/// The greeting; `name` is already escaped for the part it goes in.
fn greeting(locale: Locale, name: Option<&str>) -> String {
    match (locale, name) {
        (Locale::En, Some(name)) => format!("Hi {name},"),
        (Locale::En, None) => "Hello,".into(),
        (Locale::Es, Some(name)) => format!("Hola, {name}:"),
        (Locale::Es, None) => "Hola:".into(),
    }
}

/// The line thanking for the order; the pieces are already escaped for the part they go in.
fn thanks(locale: Locale, order: &str, store: &str) -> String {
    match (locale, order.is_empty()) {
        (Locale::En, false) => format!(
            "Thank you for your order {order} from {store}. How did we do? It takes one click."
        ),
        (Locale::En, true) => {
            format!("Thank you for your order from {store}. How did we do? It takes one click.")
        }
        (Locale::Es, false) => format!(
            "Gracias por su pedido {order} de {store}. ¿Qué tal lo hicimos? Solo le llevará un clic."
        ),
        (Locale::Es, true) => format!(
            "Gracias por su pedido de {store}. ¿Qué tal lo hicimos? Solo le llevará un clic."
        ),
    }
}

/// Why the email came; the pieces are already escaped for the part they go in.
fn why(locale: Locale, order: &str, store: &str) -> String {
    match (locale, order.is_empty()) {
        (Locale::En, false) => {
            format!("You are receiving this email because you placed order {order} with {store}.")
        }
        (Locale::En, true) => {
            format!("You are receiving this email because you placed an order with {store}.")
        }
        (Locale::Es, false) => {
            format!("Recibe este correo porque hizo el pedido {order} en {store}.")
        }
        (Locale::Es, true) => format!("Recibe este correo porque hizo un pedido en {store}."),
    }
}

/// The order reference as the customer knows it: `#1001` for a bare number.
fn order_label(order_ref: &str) -> String {
    let order = one_line(order_ref);
    if !order.is_empty() && order.bytes().all(|b| b.is_ascii_digit()) {
        format!("#{order}")
    } else {
        order
    }
}

/// `s` on one line: every control character (CR, LF, tab...) becomes a space, runs of
/// whitespace become one space, and the ends are trimmed.
fn one_line(s: &str) -> String {
    let spaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A path segment: URL-safe bytes as they are, every other byte percent-encoded.
fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL for inside `<...>` in a header: printable ASCII but `<`, `>`, `"`, `\`, `^`, `` ` ``,
/// `{`, `|`, `}`; any other byte percent-encoded.
fn header_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.trim().bytes() {
        if b.is_ascii_graphic()
            && !matches!(
                b,
                b'<' | b'>' | b'"' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends `Name: value` and CRLF, folding before a space when a line would pass 78 characters
/// (a word longer than a line stays whole). The value is put on one line first.
fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    let mut line = name.len() + 1;
    for (i, word) in one_line(value).split(' ').enumerate() {
        if i > 0 && line + 1 + word.len() > HEADER_LINE {
            out.push_str("\r\n");
            line = 0;
        }
        out.push(' ');
        out.push_str(word);
        line += 1 + word.len();
    }
    out.push_str("\r\n");
}

/// An unstructured header value (the subject): as it is when plain ASCII, RFC 2047 encoded words
/// otherwise (and when it holds `=?`, which a reader would take for one).
fn unstructured(value: &str) -> String {
    let value = one_line(value);
    if value.is_ascii() && !value.contains("=?") {
        value
    } else {
        encoded_words(&value)
    }
}

/// `s` as RFC 2047 `B` encoded words of whole characters, separated by spaces (which readers drop
/// between encoded words), each at most 64 characters.
fn encoded_words(s: &str) -> String {
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > ENCODED_WORD_BYTES {
            words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(&chunk)));
    }
    words.join(" ")
}

/// A mailbox (`addr`, `Name <addr>` or `"Quoted, Name" <addr>`) for a header: the display name
/// RFC 2047 encoded when it is not ASCII (or holds `=?`), quoted and escaped when it holds a
/// special character (`,` `.` `:` `;` `@` `"`...), as it is otherwise; the address in ASCII
/// (punycode domain). Text that is not one mailbox (refused when the connection was saved) is
/// put on one line as it is.
fn mailbox(s: &str) -> String {
    let Ok(mailbox) = Mailbox::parse(&one_line(s)) else {
        return one_line(s);
    };
    let Some(name) = mailbox.name else {
        return mailbox.address;
    };
    let name = if !name.is_ascii() || name.contains("=?") {
        encoded_words(&name)
    } else if name.contains(is_phrase_special) {
        quoted_string(&name)
    } else {
        name
    };
    format!("{name} <{}>", mailbox.address)
}

/// `<left@domain>`: `message_id` before any `@` (its angle brackets dropped, characters outside
/// a dot-atom replaced by `-`) at the sender's domain.
fn message_id_value(message_id: &str, from: &str) -> String {
    let id = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let left = id.split('@').next().unwrap_or_default();
    let address = Mailbox::parse(from).map_or_else(|_| from.to_string(), |m| m.address);
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d.trim().trim_end_matches('>'))
        .unwrap_or_default();
    format!(
        "<{}@{}>",
        dot_atom(left, "sondeo"),
        dot_atom(domain, "sondeo.invalid")
    )
}

/// `s` as an RFC 5322 dot-atom: atext characters kept, others `-`, no empty dot-separated part.
fn dot_atom(s: &str, fallback: &str) -> String {
    let atext: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let atom = atext
        .split('.')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(".");
    if atom.is_empty() {
        fallback.into()
    } else {
        atom
    }
}

/// An RFC 5322 date in UTC: `Thu, 01 Jan 1970 00:00:00 +0000` (clamped to years 1970–9999).
fn rfc5322_date(unix_secs: i64) -> String {
    const DAY: i64 = 86_400;
    let secs = unix_secs.clamp(0, 253_402_300_799);
    let days = secs.div_euclid(DAY);
    let in_day = secs.rem_euclid(DAY);
    let (year, month, day) = Day::from_days(i32::try_from(days).unwrap_or(0)).ymd();
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS
        .get(usize::try_from(days.rem_euclid(7)).unwrap_or(0))
        .unwrap_or(&"Thu");
    let month = MONTHS
        .get(usize::try_from(month).unwrap_or(1).saturating_sub(1))
        .unwrap_or(&"Jan");
    format!(
        "{weekday}, {day:02} {month} {year:04} {:02}:{:02}:{:02} +0000",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Text with CRLF line ends (MIME's canonical form for text).
fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

/// Appends `bytes` in base64, 76 characters and CRLF a line.
fn push_base64_lines(out: &mut String, bytes: &[u8]) {
    let encoded = STANDARD.encode(bytes);
    let mut rest = encoded.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(BASE64_LINE));
        out.push_str(line);
        out.push_str("\r\n");
        rest = tail;
    }
}

/// FNV-1a over the pieces, for a boundary that differs between messages.
fn fnv1a(pieces: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pieces.iter().flat_map(|p| p.iter()) {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use sondeo_domain::orders::{InvitationStatus, Platform};
    use sondeo_domain::survey::{Brand, SurveyKind, Touchpoint};

    const BASE: &str = "https://nps.example.com/prod/";
    const TOKEN: &str = "v2.AbC-_9xyz";

    fn survey(kind: SurveyKind, locale: Locale) -> Survey {
        Survey {
            id: "nps-2026".into(),
            kind,
            question: match locale {
                Locale::En => "How likely are you to recommend Tienda Sol to a friend?".into(),
                Locale::Es => "¿Recomendaría Tienda Sol a un amigo?".into(),
            },
            follow_up: String::new(),
            locale,
            touchpoints: vec![Touchpoint {
                slug: "post-purchase".into(),
                stage: None,
            }],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        }
    }

    fn connection(store_name: &str) -> Connection {
        Connection {
            id: "tienda-sol".into(),
            platform: Platform::Shopify,
            survey: "nps-2026".into(),
            touchpoint: "post-purchase".into(),
            delay_minutes: 0,
            sender: "Tienda Sol <hola@tiendasol.example>".into(),
            store_name: store_name.into(),
        }
    }

    fn invitation(order_ref: &str, name: Option<&str>) -> Invitation {
        Invitation {
            connection: "tienda-sol".into(),
            order: "820982911946154508".into(),
            order_ref: order_ref.into(),
            email: "ana@example.com".into(),
            name: name.map(str::to_string),
            survey: "nps-2026".into(),
            touchpoint: "post-purchase".into(),
            created_at: 0,
            due_at: 0,
            status: InvitationStatus::Scheduled,
            reason: None,
            attempts: 0,
            lease_until: 0,
            sent_at: None,
            message_id: None,
        }
    }

    fn render(locale: Locale, store: &str, order_ref: &str, name: Option<&str>) -> InvitationEmail {
        render_invitation(
            &survey(SurveyKind::Nps, locale),
            &invitation(order_ref, name),
            &connection(store),
            BASE,
            TOKEN,
        )
    }

    /// The message's header block, unfolded, as (name, value) pairs.
    fn headers(mime: &[u8]) -> Vec<(String, String)> {
        let text = std::str::from_utf8(mime).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with(' ') || line.starts_with('\t') {
                out.last_mut().unwrap().1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').unwrap();
                out.push((name.to_string(), value.trim_start().to_string()));
            }
        }
        out
    }

    fn header(mime: &[u8], name: &str) -> String {
        headers(mime)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    /// Decodes a value made of RFC 2047 `B` encoded words (UTF-8).
    fn decode_words(value: &str) -> String {
        let mut bytes = Vec::new();
        for word in value.split_whitespace() {
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap_or_else(|| panic!("not an encoded word: {word}"));
            bytes.extend(STANDARD.decode(b64).unwrap());
        }
        String::from_utf8(bytes).unwrap()
    }

    /// The decoded bodies of the message's parts, with their content types.
    fn parts(mime: &[u8]) -> Vec<(String, String)> {
        let text = std::str::from_utf8(mime).unwrap();
        let boundary = header(mime, "Content-Type")
            .split("boundary=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches('"')
            .to_string();
        let delimiter = format!("--{boundary}");
        let mut out = Vec::new();
        for part in text.split(&delimiter).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let (head, body) = part.split_once("\r\n\r\n").unwrap();
            let kind = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Type: "))
                .unwrap()
                .to_string();
            let b64: String = body.split("\r\n").collect();
            out.push((
                kind,
                String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap(),
            ));
        }
        out
    }

    #[test]
    fn the_subject_names_the_order_and_the_store_in_the_surveys_language() {
        let en = render(Locale::En, "Tienda Sol", "#1001", None);
        assert_eq!(en.subject, "How was your order #1001 from Tienda Sol?");
        let es = render(Locale::Es, "Tienda Sol", "#1001", None);
        assert_eq!(es.subject, "¿Qué tal su pedido #1001 de Tienda Sol?");
        assert_eq!(
            render(Locale::En, "Tienda Sol", "1001", None).subject,
            "How was your order #1001 from Tienda Sol?"
        );
        assert_eq!(
            render(Locale::Es, "Tienda Sol", "  ", None).subject,
            "¿Qué tal su pedido de Tienda Sol?"
        );
    }

    #[test]
    fn the_greeting_uses_the_first_name_when_known() {
        let named = render(Locale::En, "Tienda Sol", "#1001", Some("Ana"));
        assert!(named.text.starts_with("Hi Ana,\n\n"), "{}", named.text);
        assert!(named.html.contains(">Hi Ana,</p>"));
        let anonymous = render(Locale::En, "Tienda Sol", "#1001", None);
        assert!(anonymous.text.starts_with("Hello,\n\n"));
        let es = render(Locale::Es, "Tienda Sol", "#1001", Some("José"));
        assert!(es.text.starts_with("Hola, José:\n\n"));
        assert!(es.html.contains("lang=\"es\"") && es.html.contains("Darse de baja"));
        assert!(es
            .text
            .contains("Gracias por su pedido #1001 de Tienda Sol."));
        assert!(!es.html.contains("Unsubscribe") && !es.text.contains("Thank you"));
    }

    #[test]
    fn every_score_links_to_the_respondents_page_and_unsubscribe_to_theirs() {
        let email = render(Locale::En, "Tienda Sol", "#1001", None);
        for score in 0..=10 {
            let url = format!("https://nps.example.com/prod/r/{TOKEN}?score={score}");
            assert!(email.html.contains(&format!("href=\"{url}\"")), "{score}");
            assert!(email.text.contains(&format!("{url}\n")), "{score}");
        }
        assert_eq!(email.html.matches("?score=").count(), 11);
        assert_eq!(
            email.unsubscribe_url,
            format!("https://nps.example.com/prod/u/{TOKEN}")
        );
        assert!(email
            .html
            .contains(&format!("href=\"{}\"", email.unsubscribe_url)));
        let odd = invitation_links("http://127.0.0.1:8080", "a b/{score}");
        assert_eq!(
            odd.score(3),
            "http://127.0.0.1:8080/r/a%20b%2F%7Bscore%7D?score=3"
        );
        assert_eq!(
            odd.unsubscribe_url,
            "http://127.0.0.1:8080/u/a%20b%2F%7Bscore%7D"
        );
    }

    #[test]
    fn a_typed_number_survey_gets_one_answer_link() {
        let email = render_invitation(
            &survey(SurveyKind::Duration, Locale::En),
            &invitation("#7", None),
            &connection("Sol"),
            BASE,
            TOKEN,
        );
        assert!(!email.html.contains("score="));
        assert!(email
            .text
            .contains(&format!("Answer: https://nps.example.com/prod/r/{TOKEN}\n")));
    }

    #[test]
    fn store_order_and_name_are_escaped_and_kept_on_one_line() {
        let store = "Sol\"><script>alert(1)</script>\r\nBcc: evil@example.com";
        let email = render(
            Locale::En,
            store,
            "#1<b>\n2",
            Some("<img src=x onerror=alert(1)>"),
        );
        let lower = email.html.to_ascii_lowercase();
        assert!(
            !lower.contains("<script") && !lower.contains("<img"),
            "{}",
            email.html
        );
        assert!(email
            .html
            .contains("Sol&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt; Bcc: evil@example.com"));
        assert!(email.html.contains("#1&lt;b&gt; 2"));
        assert!(email
            .html
            .contains("Hi &lt;img src=x onerror=alert(1)&gt;,"));
        assert_eq!(
            email.subject,
            "How was your order #1<b> 2 from Sol\"><script>alert(1)</script> Bcc: evil@example.com?"
        );
        assert!(!email.text.contains('\r'));
        assert!(email
            .text
            .contains("Thank you for your order #1<b> 2 from Sol\"><script>"));
        // With a brand, the snippet's own brand header stays escaped too.
        let mut branded = survey(SurveyKind::Nps, Locale::En);
        branded.brand = Some(Brand {
            name: "<script>x</script>".into(),
            accent: None,
            logo_url: None,
        });
        let html = render_invitation(
            &branded,
            &invitation("#1", None),
            &connection("S"),
            BASE,
            TOKEN,
        )
        .html;
        assert!(!html.to_ascii_lowercase().contains("<script"));
    }

    #[test]
    fn the_message_has_every_header_once_with_crlf_line_ends() {
        let email = render(Locale::En, "Tienda Sol", "#1001", Some("Ana"));
        let mime = to_mime(
            "Tienda Sol <hola@tiendasol.example>",
            "ana@example.com",
            &email,
            1_000_000_000,
            "inv-abc123",
        );
        let text = std::str::from_utf8(&mime).unwrap();
        assert!(
            !text.replace("\r\n", "").contains(['\r', '\n']),
            "bare CR or LF"
        );
        let names: Vec<String> = headers(&mime).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
                "List-Unsubscribe",
                "List-Unsubscribe-Post",
                "Content-Type"
            ]
        );
        assert_eq!(header(&mime, "From"), "Tienda Sol <hola@tiendasol.example>");
        assert_eq!(header(&mime, "To"), "ana@example.com");
        assert_eq!(
            header(&mime, "Subject"),
            "How was your order #1001 from Tienda Sol?"
        );
        assert_eq!(header(&mime, "Date"), "Sun, 09 Sep 2001 01:46:40 +0000");
        assert_eq!(
            header(&mime, "Message-ID"),
            "<inv-abc123@tiendasol.example>"
        );
        assert_eq!(header(&mime, "MIME-Version"), "1.0");
        assert_eq!(
            header(&mime, "List-Unsubscribe"),
            format!("<https://nps.example.com/prod/u/{TOKEN}>")
        );
        assert_eq!(
            header(&mime, "List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        assert!(header(&mime, "Content-Type").starts_with("multipart/alternative; boundary=\"=_"));
        let parts = parts(&mime);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, "text/plain; charset=\"utf-8\"");
        assert_eq!(parts[1].0, "text/html; charset=\"utf-8\"");
        assert_eq!(parts[0].1, email.text.replace('\n', "\r\n"));
        assert_eq!(parts[1].1, email.html.replace('\n', "\r\n"));
        for line in text.split("\r\n") {
            assert!(line.len() <= 78, "{line}");
        }
        assert!(text.ends_with("--\r\n"));
    }

    #[test]
    fn a_spanish_subject_is_encoded_in_words_on_short_lines() {
        let store = "Tienda Sol de Andalucía y Extremadura, Productos Ecológicos";
        let email = render(Locale::Es, store, "#1001", None);
        let mime = to_mime("hola@tiendasol.example", "ana@example.com", &email, 0, "x");
        let text = std::str::from_utf8(&mime).unwrap();
        let raw = text
            .split("\r\n")
            .skip_while(|l| !l.starts_with("Subject:"))
            .take_while(|l| l.starts_with("Subject:") || l.starts_with(' '))
            .collect::<Vec<_>>();
        assert!(raw.len() > 1, "{raw:?}");
        assert!(raw.iter().all(|l| l.len() <= 78 && l.is_ascii()), "{raw:?}");
        assert_eq!(decode_words(&header(&mime, "Subject")), email.subject);
        assert_eq!(header(&mime, "Date"), "Thu, 01 Jan 1970 00:00:00 +0000");
        // An ASCII subject that looks like an encoded word is encoded too.
        let tricky = InvitationEmail {
            subject: "=?UTF-8?B?SGk=?= there".into(),
            ..email
        };
        let mime = to_mime("hola@tiendasol.example", "ana@example.com", &tricky, 0, "x");
        assert_eq!(decode_words(&header(&mime, "Subject")), tricky.subject);
    }

    #[test]
    fn no_value_can_add_a_header() {
        let email = InvitationEmail {
            subject: "Hi\r\nBcc: evil@example.com\nX-Evil: 1".into(),
            html: "<p>x</p>".into(),
            text: "x".into(),
            unsubscribe_url: "https://x.example/u/t>\r\nX-Evil: 2".into(),
        };
        let mime = to_mime(
            "Sol\r\nX-Evil: 3 <hola@tiendasol.example>",
            "ana@example.com\r\nX-Evil: 4",
            &email,
            0,
            "id\r\nX-Evil: 5",
        );
        let names: Vec<String> = headers(&mime).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 9, "{names:?}");
        assert!(!names.iter().any(|n| n.contains("Evil") || n == "Bcc"));
        assert_eq!(
            header(&mime, "Subject"),
            "Hi Bcc: evil@example.com X-Evil: 1"
        );
        assert_eq!(
            header(&mime, "List-Unsubscribe"),
            "<https://x.example/u/t%3E%0D%0AX-Evil:%202>"
        );
        assert_eq!(
            header(&mime, "Message-ID"),
            "<id--X-Evil--5@tiendasol.example>"
        );
    }

    #[test]
    fn display_names_are_quoted_or_encoded_when_they_need_it() {
        assert_eq!(mailbox("hola@sol.example"), "hola@sol.example");
        assert_eq!(mailbox("Sol <hola@sol.example>"), "Sol <hola@sol.example>");
        assert_eq!(
            mailbox("Sol, S.L. <hola@sol.example>"),
            "\"Sol, S.L.\" <hola@sol.example>"
        );
        assert_eq!(mailbox("<hola@sol.example>"), "hola@sol.example");
        let encoded = mailbox("Café Sol <hola@sol.example>");
        let (name, address) = encoded.rsplit_once(' ').unwrap();
        assert_eq!(decode_words(name), "Café Sol");
        assert_eq!(address, "<hola@sol.example>");
    }

    #[test]
    fn quoted_display_names_are_read_once_and_written_back_escaped() {
        assert_eq!(
            mailbox("\"Tienda, Sol\" <a@x.example>"),
            "\"Tienda, Sol\" <a@x.example>"
        );
        assert_eq!(
            mailbox(r#""Sol \"Grande\"" <a@x.example>"#),
            r#""Sol \"Grande\"" <a@x.example>"#
        );
        assert_eq!(mailbox("\"Sol\" <a@x.example>"), "Sol <a@x.example>");
        let encoded = mailbox("\"Tienda, Ñandú\" <a@x.example>");
        let (name, address) = encoded.rsplit_once(' ').unwrap();
        assert_eq!(decode_words(name), "Tienda, Ñandú");
        assert_eq!(address, "<a@x.example>");
    }

    #[test]
    fn addresses_with_a_unicode_domain_are_written_in_punycode() {
        assert_eq!(
            mailbox("Sol <hola@tiendasöl.example>"),
            "Sol <hola@xn--tiendasl-t4a.example>"
        );
        assert_eq!(mailbox("ana@exämple.com"), "ana@xn--exmple-cua.com");
    }

    #[test]
    fn message_ids_take_the_senders_domain() {
        assert_eq!(
            message_id_value("<abc@elsewhere.example>", "Sol <hola@mail.sol.example>"),
            "<abc@mail.sol.example>"
        );
        assert_eq!(message_id_value("", "nonsense"), "<sondeo@sondeo.invalid>");
        assert_eq!(message_id_value("a..b", ""), "<a.b@sondeo.invalid>");
    }

    #[test]
    fn dates_are_rfc_5322_in_utc() {
        assert_eq!(
            rfc5322_date(1_772_532_000),
            "Tue, 03 Mar 2026 10:00:00 +0000"
        );
        assert_eq!(rfc5322_date(-5), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 +0000");
    }
}
