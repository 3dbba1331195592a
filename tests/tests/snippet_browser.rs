//! The email snippet and the branded landing page in a real browser (Debian's headless Chromium
//! at a phone-sized viewport): every score link is there, the layout fits a phone, the brand
//! shows, and a `<script>` injected through a brand name or a question never runs.

use sondeo_domain::ports::SurveyStore;
use sondeo_domain::survey::{Brand, Locale, Survey, SurveyKind, Touchpoint};
use sondeo_domain::token::LinkClaims;
use sondeo_http::snippet::{render_snippet, MergeTool, SnippetLinks};
use sondeo_local::local::LocalStack;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Phone-sized viewport (an iPhone 12–15 in CSS pixels).
const PHONE: &str = "--window-size=390,844";

/// Sets the title and adds a marker element if it ever runs.
const INJECTED: &str = "<script>document.title='pwned';document.documentElement.setAttribute('data-pwned','1')</script>";

fn chromium() -> String {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(c).exists() {
            return c.to_string();
        }
    }
    panic!("Chromium is needed for browser tests: `apt-get install chromium` (scripts/test.sh installs it)");
}

/// Runs headless Chromium at phone size on `url` with `mode` (`--dump-dom` or `--screenshot=…`)
/// and returns its standard output.
fn chromium_run(url: &str, mode: &str) -> String {
    let profile =
        std::env::temp_dir().join(format!("sondeo-chromium-{:08x}", rand::random::<u32>()));
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            PHONE,
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(url)
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sondeo-snippet-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// An email-like page around a snippet, in a column as wide as a phone's screen (headless
/// Chromium's `--dump-dom` lays pages out at least 500 px wide, whatever `--window-size` says).
/// The harness's own script (the snippet has none) reports what a person would see: the score
/// links, and whether anything is wider than the phone.
fn email_page(snippet_html: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>email</title></head>\
<body style=\"margin:0\"><div id=\"phone\" style=\"width:390px;overflow:auto\">{snippet_html}</div><script>(function(){{var d=document.documentElement,p=document.getElementById('phone');\
d.setAttribute('data-score-links',p.querySelectorAll('a[href*=\"score=\"]').length);\
d.setAttribute('data-phone-width',p.clientWidth);\
d.setAttribute('data-overflow',p.scrollWidth>p.clientWidth?'yes':'no')}})()</script></body></html>"
    )
}

/// Writes a page and loads it from `file://`, returning the final DOM.
fn dom_of(page: &str) -> String {
    let path = scratch("email.html");
    std::fs::write(&path, page).unwrap();
    let dom = chromium_run(&format!("file://{}", path.display()), "--dump-dom");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    dom
}

/// Whether the injected script (or handler) ran: the title or the marker attribute it sets.
fn ran_injected(dom: &str) -> bool {
    dom.contains("data-pwned=\"1\"") || dom.contains("<title>pwned</title>")
}

fn survey(id: &str, brand_name: &str, question: &str) -> Survey {
    Survey {
        id: id.into(),
        kind: SurveyKind::Nps,
        question: question.into(),
        follow_up: String::new(),
        locale: Locale::En,
        touchpoints: vec![Touchpoint {
            slug: "post-purchase".into(),
            stage: None,
        }],
        public_key: None,
        brand: Some(Brand {
            name: brand_name.into(),
            accent: Some("#0b5cad".into()),
            logo_url: Some("https://cdn.example.com/logo.png".into()),
        }),
        frequency_cap_days: None,
    }
}

#[test]
fn the_detector_sees_an_injected_script_that_is_not_escaped() {
    // Without this, the assertions below could never fail.
    let dom = dom_of(&email_page(&format!("<p>{INJECTED}</p>")));
    assert!(ran_injected(&dom), "{dom}");
}

#[test]
fn the_snippet_shows_all_11_score_links_fits_a_phone_and_runs_no_injected_script() {
    let names = [
        "Sol<script>document.title='pwned'</script>",
        "Sol\"><img src=x onerror=\"document.title='pwned'\">",
    ];
    let question = format!("How likely are you to recommend us? {INJECTED}");
    for (name, (tool, links)) in names.iter().zip([
        (
            MergeTool::Klaviyo,
            SnippetLinks::campaign("https://nps.example.com", "c2.Tok-en_1", MergeTool::Klaviyo)
                .unwrap(),
        ),
        (
            MergeTool::Mailchimp,
            SnippetLinks::per_recipient("https://nps.example.com", MergeTool::Mailchimp).unwrap(),
        ),
    ]) {
        let s = survey("snip", name, &question);
        assert_eq!(s.validate(), Ok(()), "a name a marketer may really store");
        let snippet = render_snippet(&s, &links);
        let dom = dom_of(&email_page(&snippet.html));
        assert!(!ran_injected(&dom), "{tool}: an injected script ran: {dom}");
        assert!(dom.contains("data-score-links=\"11\""), "{tool}: {dom}");
        assert!(
            dom.contains("data-phone-width=\"390\""),
            "{tool}: not at phone size: {dom}"
        );
        assert!(
            dom.contains("data-overflow=\"no\""),
            "{tool}: wider than a phone: {dom}"
        );
        assert!(
            dom.contains("How likely are you to recommend us? &lt;script&gt;document.title="),
            "{tool}: the question shows as text: {dom}"
        );
        let shown = name.replace('<', "&lt;").replace('>', "&gt;");
        assert!(
            dom.contains(&format!(">{shown}</td>")),
            "{tool}: the name shows as text: {dom}"
        );
        for score in 0..=10 {
            let href = match tool {
                MergeTool::Klaviyo => format!(
                    "href=\"https://nps.example.com/r/c2.Tok-en_1?score={score}&amp;rid={{{{ email }}}}\""
                ),
                _ => format!("href=\"https://nps.example.com/r/*|SONDEOTKN|*?score={score}\""),
            };
            assert!(dom.contains(&href), "{tool}: no {href} in {dom}");
        }
        assert!(dom.contains(">Not likely<") && dom.contains(">Very likely<"));
        assert!(dom.contains(">Unsubscribe</a>"));
    }

    // And a screenshot at phone size, kept where SONDEO_SCREENSHOT_DIR says (for reviewing).
    let links =
        SnippetLinks::per_recipient("https://nps.example.com", MergeTool::Mailchimp).unwrap();
    let s = survey(
        "snip",
        "Café Sol",
        "How likely are you to recommend Café Sol to a friend?",
    );
    let page = email_page(&render_snippet(&s, &links).html);
    let html = scratch("email.html");
    std::fs::write(&html, page).unwrap();
    let png = match std::env::var("SONDEO_SCREENSHOT_DIR") {
        Ok(dir) => {
            std::fs::copy(&html, PathBuf::from(&dir).join("snippet.html")).unwrap();
            PathBuf::from(dir).join("snippet-phone.png")
        }
        Err(_) => html.with_file_name("snippet.png"),
    };
    chromium_run(
        &format!("file://{}", html.display()),
        &format!("--screenshot={}", png.display()),
    );
    let bytes = std::fs::read(&png).expect("the screenshot is written");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 2_000,
        "{} bytes",
        bytes.len()
    );
    // The PNG's IHDR width is the viewport's.
    assert_eq!(
        u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
        390
    );
    let _ = std::fs::remove_dir_all(html.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_branded_landing_page_shows_the_brand_and_runs_no_injected_script() {
    let dir = std::env::temp_dir().join(format!("sondeo-brand-{:08x}", rand::random::<u32>()));
    let stack = Arc::new(LocalStack::open(&dir, None).await.unwrap());
    let name = "Café Sol <script>document.title='pwned'</script>";
    let s = survey("branded", name, "How likely are you to recommend Café Sol?");
    assert_eq!(s.validate(), Ok(()));
    stack.store.create_survey(&s).await.unwrap();
    let server = sondeo_local::server::start(stack.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let now = sondeo_domain::time::now_ms() / 1000;
    let claims = LinkClaims {
        survey: "branded".into(),
        touchpoint: "post-purchase".into(),
        respondent: "ana@example.com".into(),
        issued_at: now,
        expires_at: now + 3600,
    };
    let url = format!(
        "http://{}/r/{}?score=9",
        server.addr,
        stack.keyring.sign(&claims).unwrap()
    );
    let dom = chromium_run(&url, "--dump-dom");
    assert!(!ran_injected(&dom), "an injected script ran: {dom}");
    assert!(
        dom.contains("<span>Café Sol &lt;script&gt;document.title='pwned'&lt;/script&gt;</span>"),
        "{dom}"
    );
    assert!(
        dom.contains("<img src=\"https://cdn.example.com/logo.png\""),
        "{dom}"
    );
    assert!(dom.contains("<title>How likely are you to recommend Café Sol?</title>"));
    assert!(
        dom.contains("value=\"9\" checked"),
        "the clicked score is shown: {dom}"
    );
    if let Ok(dir) = std::env::var("SONDEO_SCREENSHOT_DIR") {
        let png = PathBuf::from(dir).join("landing-phone.png");
        chromium_run(&url, &format!("--screenshot={}", png.display()));
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
