//! The post-order invitation email as a mail client reads it: rendered in English and in Spanish
//! for a store whose name tries HTML and header injection, written through the local outbox, then
//! parsed by Python's `email` package (the strict `email.policy.default`), which must find a
//! valid `multipart/alternative` message with no defect, the one-click unsubscribe headers, the
//! decoded subject, every score link in both parts and nothing injected.

use serde_json::Value;
use sondeo_domain::orders::{
    new_invitation, sender_address, Connection, Invitation, OrderEvent, Platform,
};
use sondeo_domain::ports::Mailer;
use sondeo_domain::survey::{Locale, Survey, SurveyKind, Touchpoint};
use sondeo_domain::token::{LinkClaims, LinkKeyring, LinkScope};
use sondeo_embedded::outbox::Outbox;
use sondeo_http::mail::{render_invitation, to_mime};
use std::path::Path;
use std::process::Command;

const BASE: &str = "https://nps.tiendasol.example";
const KEYS: &str = "k1:0123456789abcdef0123456789abcdef-invitation";
const STORE: &str = "Tienda Sol <script>alert(1)</script>\r\nBcc: victim@example.com";
/// The store's name as every part shows it: the line break a space.
const STORE_ONE_LINE: &str = "Tienda Sol <script>alert(1)</script> Bcc: victim@example.com";
const SENDER: &str = "Tienda Sol <hola@tiendasol.example>";

/// Prints the message as Python's `email` package reads it, as JSON.
const PARSE: &str = r#"
import email, email.policy, json, sys
with open(sys.argv[1], "rb") as f:
    msg = email.message_from_bytes(f.read(), policy=email.policy.default)
headers = [[k, str(v)] for k, v in msg.items()]
defects = [repr(d) for d in msg.defects]
for k, v in msg.items():
    defects += [k + ": " + repr(d) for d in getattr(v, "defects", ())]
parts = []
for part in (msg.iter_parts() if msg.is_multipart() else []):
    defects += [repr(d) for d in part.defects]
    parts.append({
        "content_type": part.get_content_type(),
        "charset": part.get_content_charset(),
        "text": part.get_content(),
    })
print(json.dumps({
    "headers": headers,
    "is_multipart": msg.is_multipart(),
    "content_type": msg.get_content_type(),
    "parts": parts,
    "defects": defects,
}))
"#;

fn survey(locale: Locale) -> Survey {
    Survey {
        id: "nps-2026".into(),
        kind: SurveyKind::Nps,
        question: match locale {
            Locale::En => "How likely are you to recommend Tienda Sol to a friend?".into(),
            Locale::Es => "¿Con qué probabilidad recomendaría Tienda Sol a un amigo?".into(),
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

fn connection() -> Connection {
    Connection {
        id: "tienda-sol".into(),
        platform: Platform::Shopify,
        survey: "nps-2026".into(),
        touchpoint: "post-purchase".into(),
        delay_minutes: 0,
        sender: SENDER.into(),
        store_name: STORE.into(),
    }
}

fn invitation(name: &str) -> Invitation {
    let order = OrderEvent {
        order_id: "820982911946154508".into(),
        order_ref: "#1001".into(),
        email: Some("ana.garcia@example.com".into()),
        name: Some(name.into()),
        delivery_id: None,
    };
    new_invitation(&connection(), &order, 1_772_532_000_000).unwrap()
}

/// The respondent's token, as the sender mints it for the order's send.
fn token(invitation: &Invitation) -> String {
    LinkKeyring::from_spec(KEYS)
        .unwrap()
        .sign_scoped(
            &LinkClaims {
                survey: invitation.survey.clone(),
                touchpoint: invitation.touchpoint.clone(),
                respondent: invitation.email.clone(),
                issued_at: 1_772_532_000,
                expires_at: 1_772_532_000 + 90 * 86_400,
            },
            &LinkScope {
                send: invitation.send(),
                campaign: false,
            },
        )
        .unwrap()
}

/// The `.eml` file as Python's `email.policy.default` parses it.
fn parse_with_python(path: &Path) -> Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PARSE)
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn header<'a>(parsed: &'a Value, name: &str) -> Vec<&'a str> {
    parsed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap())
        .collect()
}

/// Every `href` of an HTML document, unescaped (`&amp;` only: the links hold no other entity).
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

/// Renders, sends through the outbox and parses one invitation, checking what holds in every
/// language; returns the parsed message and the expected unsubscribe URL.
async fn send_and_parse(outbox: &Outbox, locale: Locale, name: &str) -> (Value, Vec<u8>, String) {
    // GIVEN an NPS survey, an order of a store whose name tries script and header injection
    let invitation = invitation(name);
    let token = token(&invitation);
    let email = render_invitation(&survey(locale), &invitation, &connection(), BASE, &token);
    assert!(sender_address(SENDER).is_some());
    let from = SENDER;
    let mime = to_mime(
        from,
        &invitation.email,
        &email,
        1_772_532_000,
        &invitation.schedule_name(),
    );
    // WHEN it is sent through the outbox and the file is parsed by Python's email package
    let id = outbox
        .send_raw(from, &invitation.email, &mime)
        .await
        .unwrap();
    let file = outbox.dir().join(id.strip_prefix("outbox-").unwrap());
    assert_eq!(std::fs::read(&file).unwrap(), mime);
    let parsed = parse_with_python(&file);

    // THEN it is a valid multipart/alternative message, text then HTML, with no defect
    assert_eq!(parsed["defects"], serde_json::json!([]), "{parsed:#}");
    assert_eq!(parsed["is_multipart"], true);
    assert_eq!(parsed["content_type"], "multipart/alternative");
    let parts = parsed["parts"].as_array().unwrap();
    let types: Vec<&str> = parts
        .iter()
        .map(|p| p["content_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert!(parts.iter().all(|p| p["charset"] == "utf-8"));

    // AND exactly the headers written, each once: nothing injected by the store's name
    let names: Vec<&str> = parsed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
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
        ],
        "{parsed:#}"
    );
    assert!(header(&parsed, "Bcc").is_empty());
    assert_eq!(header(&parsed, "From"), [SENDER]);
    assert_eq!(header(&parsed, "To"), ["ana.garcia@example.com"]);
    assert_eq!(header(&parsed, "Date"), ["Tue, 03 Mar 2026 10:00:00 +0000"]);
    let message_id = header(&parsed, "Message-ID")[0];
    assert!(
        message_id.starts_with("<sondeo-tienda-sol-")
            && message_id.ends_with("@tiendasol.example>"),
        "{message_id}"
    );
    let unsubscribe = format!("{BASE}/u/{token}");
    assert_eq!(
        header(&parsed, "List-Unsubscribe"),
        [format!("<{unsubscribe}>").as_str()]
    );
    assert_eq!(
        header(&parsed, "List-Unsubscribe-Post"),
        ["List-Unsubscribe=One-Click"]
    );

    // AND every score's link and the unsubscribe link are in both parts
    let text = parts[0]["text"].as_str().unwrap().replace("\r\n", "\n");
    let html = parts[1]["text"].as_str().unwrap().replace("\r\n", "\n");
    let links = hrefs(&html);
    for score in 0..=10 {
        let url = format!("{BASE}/r/{token}?score={score}");
        assert_eq!(
            links.iter().filter(|l| **l == url).count(),
            1,
            "{score}: {links:?}"
        );
        assert!(text.contains(&format!("{url}\n")), "{score}: {text}");
    }
    assert_eq!(links.iter().filter(|l| l.contains("?score=")).count(), 11);
    assert!(links.contains(&unsubscribe), "{links:?}");
    assert!(text.contains(&format!(": {unsubscribe}\n")), "{text}");

    // AND the store's markup is shown as text, never run
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "{html}");
    assert!(
        html.contains("Tienda Sol &lt;script&gt;alert(1)&lt;/script&gt; Bcc: victim@example.com")
    );
    assert!(text.contains(STORE_ONE_LINE), "{text}");
    assert!(!text.contains('\r'));

    // AND every line of the file ends in CRLF, and only the unbreakable URL line passes 78
    let raw = std::str::from_utf8(&mime).unwrap();
    assert!(raw.ends_with("\r\n") && !raw.replace("\r\n", "").contains(['\r', '\n']));
    for line in raw.split("\r\n") {
        assert!(
            line.len() <= 78 || (line.starts_with("List-Unsubscribe: <") && line.len() <= 998),
            "{line}"
        );
    }
    (parsed, mime, unsubscribe)
}

#[tokio::test]
async fn invitation_emails_in_english_and_spanish_are_valid_mime_a_mail_client_reads() {
    let dir = std::env::temp_dir().join(format!("sondeo-invitation-{:08x}", rand::random::<u32>()));
    let outbox = Outbox::new(&dir).unwrap();

    let (en, en_mime, _) = send_and_parse(&outbox, Locale::En, "Ana").await;
    assert_eq!(
        header(&en, "Subject"),
        [format!("How was your order #1001 from {STORE_ONE_LINE}?").as_str()]
    );
    let en_html = en["parts"][1]["text"].as_str().unwrap();
    assert!(en_html.contains("<html lang=\"en\""));
    assert!(en_html.contains(">Hi Ana,</p>") && en_html.contains(">Unsubscribe</a>"));
    assert!(en["parts"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("Hi Ana,"));
    // An ASCII subject goes as it is.
    assert!(std::str::from_utf8(&en_mime)
        .unwrap()
        .contains("Subject: How was your order #1001 from Tienda Sol"));

    let (es, es_mime, _) = send_and_parse(&outbox, Locale::Es, "José").await;
    assert_eq!(
        header(&es, "Subject"),
        [format!("¿Qué tal su pedido #1001 de {STORE_ONE_LINE}?").as_str()]
    );
    // The accents travel as RFC 2047 encoded words: the header block itself is ASCII.
    let es_raw = std::str::from_utf8(&es_mime).unwrap();
    let head = es_raw.split("\r\n\r\n").next().unwrap();
    assert!(
        head.is_ascii() && head.contains("Subject: =?UTF-8?B?"),
        "{head}"
    );
    let es_html = es["parts"][1]["text"].as_str().unwrap();
    assert!(es_html.contains("<html lang=\"es\""));
    assert!(es_html.contains(">Hola, José:</p>") && es_html.contains(">Darse de baja</a>"));
    assert!(es_html.contains("Nada probable") && !es_html.contains("Unsubscribe"));
    let es_text = es["parts"][0]["text"].as_str().unwrap();
    assert!(es_text.starts_with("Hola, José:"), "{es_text}");
    assert!(es_text.contains("Gracias por su pedido #1001 de Tienda Sol"));

    // The outbox holds the two messages and nothing else.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files.iter().all(|f| f.ends_with("-a___@example.com.eml")),
        "{files:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
