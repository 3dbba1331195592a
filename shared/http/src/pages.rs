//! Respondent-facing HTML pages (English and Spanish): the answer page, thanks, and errors.

use crate::respond::{html_response, HttpError, Response};
use sondeo_domain::survey::{Brand, Locale, Survey, SurveyKind};

struct Text {
    lang: &'static str,
    you_chose: &'static str,
    your_score: &'static str,
    change: &'static str,
    pick: &'static str,
    default_follow_up: &'static str,
    send: &'static str,
    recorded: &'static str,
    not_recorded: &'static str,
    kept: &'static str,
    noscript: &'static str,
    thanks_title: &'static str,
    thanks_body: &'static str,
    error_title: &'static str,
    not_likely: &'static str,
    very_likely: &'static str,
}

const EN: Text = Text {
    lang: "en",
    you_chose: "Thank you! Your answer:",
    your_score: "Your answer:",
    change: "Changed your mind? Pick another score.",
    pick: "Pick a score.",
    default_follow_up: "What is the main reason for your score?",
    send: "Send",
    recorded: "Your answer has been recorded.",
    not_recorded: "Your answer could not be recorded yet; press Send to try again.",
    kept: "This is the score you gave on this page before; pick another to change it.",
    noscript: "Press Send to change your score or add a comment.",
    thanks_title: "Thank you!",
    thanks_body: "Your answer has been recorded. You can close this page.",
    error_title: "Sorry",
    not_likely: "Not at all likely",
    very_likely: "Extremely likely",
};

const ES: Text = Text {
    lang: "es",
    you_chose: "¡Gracias! Su respuesta:",
    your_score: "Su respuesta:",
    change: "¿Cambió de opinión? Elija otra puntuación.",
    pick: "Elija una puntuación.",
    default_follow_up: "¿Cuál es el motivo principal de su puntuación?",
    send: "Enviar",
    recorded: "Su respuesta ha quedado registrada.",
    not_recorded: "Aún no pudimos registrar su respuesta; pulse Enviar para intentarlo de nuevo.",
    kept: "Esta es la puntuación que dio antes en esta página; elija otra para cambiarla.",
    noscript: "Pulse Enviar para cambiar su puntuación o añadir un comentario.",
    thanks_title: "¡Gracias!",
    thanks_body: "Su respuesta ha quedado registrada. Puede cerrar esta página.",
    error_title: "Lo sentimos",
    not_likely: "Nada probable",
    very_likely: "Muy probable",
};

fn text(locale: Locale) -> &'static Text {
    match locale {
        Locale::En => &EN,
        Locale::Es => &ES,
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// Appends `s` to `out`, escaped for HTML.
fn escape_into(out: &mut String, s: &str) {
    // A byte scan: every character escaped is ASCII, so each cut is on a character boundary.
    let mut rest = s;
    while let Some(i) = rest
        .bytes()
        .position(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
    {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1f24;line-height:1.5}\
h1{font-size:1.35rem}fieldset{border:0;padding:0;margin:1rem 0}.scale{display:grid;grid-auto-flow:column;grid-auto-columns:1fr;gap:.25rem}\
.scale label{text-align:center;min-width:0}legend{position:absolute;left:-9999px}.scale input{position:absolute;opacity:0}\
.scale span{display:block;padding:.6rem 0;font-variant-numeric:tabular-nums;border:1px solid #8c959f;border-radius:.4rem;cursor:pointer}\
.scale input:checked+span{background:#0969da;color:#fff;border-color:#0969da}.scale input:focus-visible+span{outline:2px solid #0969da;outline-offset:2px}\
.ends{display:flex;justify-content:space-between;font-size:.85rem;color:#57606a}\
textarea{width:100%;min-height:6rem;font:inherit;box-sizing:border-box}button{font:inherit;padding:.5rem 1.4rem;margin-top:.6rem}\
#status{min-height:1.5rem;color:#1a7f37}";

fn layout(lang: &str, title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

/// The brand header's layout, added to a page's style only when the survey has a brand.
const BRAND_STYLE: &str =
    ".brand{display:flex;align-items:center;gap:.6rem;margin:0 0 1rem;font-weight:600}\
.brand img{display:block;height:3rem;width:auto;max-width:10rem;object-fit:contain}.brand span{min-width:0;overflow-wrap:anywhere}";

/// Appends the style rules a brand needs: the header, and the accent on the chosen score and
/// the button (the accent is a checked `#rrggbb`, so it cannot leave the rule).
fn push_brand_style(out: &mut String, brand: Option<&Brand>) {
    let Some(brand) = brand else { return };
    out.push_str(BRAND_STYLE);
    if let Some(a) = brand.usable_accent() {
        for part in [
            ".scale input:checked+span{background:",
            a,
            ";border-color:",
            a,
            "}.scale input:focus-visible+span{outline-color:",
            a,
            "}button{background:",
            a,
            ";color:#fff;border:1px solid ",
            a,
            ";border-radius:.4rem;cursor:pointer}.score{color:",
            a,
            "}",
        ] {
            out.push_str(part);
        }
    }
}

/// Appends the brand header: the logo (an `https` image, alt text the name) and the name.
fn push_brand_header(out: &mut String, brand: Option<&Brand>) {
    let Some(brand) = brand else { return };
    out.push_str("<header class=\"brand\">");
    if let Some(logo) = brand.usable_logo_url() {
        out.push_str("<img src=\"");
        escape_into(out, logo);
        out.push_str("\" alt=\"");
        escape_into(out, &brand.name);
        out.push_str("\" height=\"48\" referrerpolicy=\"no-referrer\">");
    }
    out.push_str("<span>");
    escape_into(out, &brand.name);
    out.push_str("</span></header>");
}

/// The page a one-click link opens: the chosen score (changeable), the follow-up question, Send.
///
/// Opening a score's link has already recorded it as a provisional click (the collect route
/// does, unless several scores of the same email arrive within seconds: a link scanner). The
/// page's script records nothing on load, so a scanner running scripts in a real browser adds
/// nothing to its clicks; it records the score explicitly when a person changes it (not under
/// automation), and Send records the score with the comment. Explicit answers always beat
/// clicks, so reloading the page or opening the email again never reverts them.
///
/// `recorded` is false when the click could not be queued: the page then says so instead of
/// thanking, and its script records the score as soon as it loads (Send records it too).
pub fn answer_page(survey: &Survey, token: &str, score: Option<i64>, recorded: bool) -> String {
    let t = text(survey.locale);
    let (min, max) = survey.kind.range();
    // Built with appends into one buffer: this page is served on every click.
    let mut out = String::with_capacity(6 * 1024);
    out.push_str("<!doctype html><html lang=\"");
    out.push_str(t.lang);
    out.push_str("\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"robots\" content=\"noindex\"><title>");
    escape_into(&mut out, &survey.question);
    out.push_str("</title><style>");
    out.push_str(STYLE);
    push_brand_style(&mut out, survey.brand.as_ref());
    out.push_str("</style></head><body><main>");
    push_brand_header(&mut out, survey.brand.as_ref());
    out.push_str("<h1>");
    escape_into(&mut out, &survey.question);
    out.push_str("</h1><p>");
    out.push_str(match (score, recorded) {
        (Some(_), true) => t.you_chose,
        (Some(_), false) => t.your_score,
        (None, _) => t.pick,
    });
    out.push_str("</p><form id=\"answer\" method=\"post\" action=\"/r/");
    escape_into(&mut out, token);
    if !recorded {
        out.push_str("\" data-unsaved=\"1");
    }
    out.push_str("\"><fieldset><legend class=\"ends\">");
    escape_into(&mut out, &survey.question);
    out.push_str("</legend><div class=\"scale\">");
    if survey.kind.is_discrete() {
        for s in min..=max {
            let number = s.to_string();
            let label = match (survey.kind, s, survey.locale) {
                (SurveyKind::YesNo, 1, Locale::Es) => "Sí",
                (SurveyKind::YesNo, 1, _) => "Yes",
                (SurveyKind::YesNo, _, _) => "No",
                _ => number.as_str(),
            };
            out.push_str("<label><input type=\"radio\" name=\"score\" value=\"");
            out.push_str(&number);
            out.push('"');
            if score == Some(s) {
                out.push_str(" checked");
            }
            out.push_str(" required><span>");
            out.push_str(label);
            out.push_str("</span></label>");
        }
    } else {
        out.push_str("<label><input type=\"number\" name=\"score\" min=\"0\" step=\"1\" value=\"");
        if let Some(s) = score {
            out.push_str(&s.to_string());
        }
        out.push_str("\" required style=\"position:static;opacity:1\"></label>");
    }
    out.push_str("</div>");
    if survey.kind == SurveyKind::Nps {
        out.push_str("<div class=\"ends\"><span>");
        out.push_str(t.not_likely);
        out.push_str("</span><span>");
        out.push_str(t.very_likely);
        out.push_str("</span></div>");
    }
    out.push_str("</fieldset>");
    if score.is_some() {
        out.push_str("<p class=\"ends\">");
        out.push_str(t.change);
        out.push_str("</p>");
    }
    out.push_str("<p><label for=\"comment\">");
    if survey.follow_up.trim().is_empty() {
        out.push_str(t.default_follow_up);
    } else {
        escape_into(&mut out, &survey.follow_up);
    }
    out.push_str("</label></p><textarea id=\"comment\" name=\"comment\" maxlength=\"2000\"></textarea><button type=\"submit\">");
    out.push_str(t.send);
    out.push_str("</button></form><p id=\"status\" role=\"status\" data-recorded=\"");
    escape_into(&mut out, t.recorded);
    out.push_str("\" data-failed=\"");
    escape_into(&mut out, t.not_recorded);
    out.push_str("\" data-kept=\"");
    escape_into(&mut out, t.kept);
    out.push_str("\">");
    if score.is_some() && !recorded {
        out.push_str(t.not_recorded);
    }
    out.push_str("</p><noscript><p>");
    out.push_str(t.noscript);
    out.push_str("</p></noscript></main><script>");
    out.push_str(SCRIPT);
    out.push_str("</script></body></html>");
    out
}

/// Records the score explicitly when a person changes it on the page, with the comment typed
/// so far; on load only when the click could not be queued (`data-unsaved`), and then as the
/// click it was (`provisional=1`), which a scanner's burst still sets aside. The scores a person
/// records or sends are remembered in this browser for the link, so reloading the page, going
/// Back or opening the email link again shows the score they gave, not the link's.
const SCRIPT: &str = "(function(){var f=document.getElementById('answer'),st=document.getElementById('status'),\
box=document.getElementById('comment'),k='sondeo:'+f.getAttribute('action'),sent=null;\
function chosen(){var c=f.querySelector('input[name=score]:checked')||f.querySelector('input[type=number]');return c&&c.value!==''?c.value:null}\
function keep(s){try{localStorage.setItem(k,s)}catch(e){}}\
function record(p){var s=chosen();if(s===null||s===sent||navigator.webdriver)return;sent=s;var c=box.value.trim();\
fetch(f.action,{method:'POST',credentials:'omit',headers:{'Accept':'application/json','Content-Type':'application/x-www-form-urlencoded'},body:'score='+encodeURIComponent(s)+(p?'&provisional=1':c?'&comment='+encodeURIComponent(c):'')})\
.then(function(r){st.textContent=r.ok?st.dataset.recorded:st.dataset.failed;if(r.ok&&!p)keep(s);if(!r.ok)sent=null}).catch(function(){st.textContent=st.dataset.failed;sent=null})}\
var was=null;try{was=localStorage.getItem(k)}catch(e){}\
var old=was&&/^[0-9]+$/.test(was)&&f.querySelector('input[name=score][value=\"'+was+'\"]');\
if(old&&!old.checked){old.checked=true;st.textContent=st.dataset.kept}\
if(f.dataset.unsaved)record(1);else sent=chosen();\
f.addEventListener('change',function(e){if(e.target.name==='score')record(0)});\
f.addEventListener('submit',function(){var s=chosen();if(s!==null)keep(s)})})();";

/// The page shown after Send, under the survey's brand if it has one.
pub fn thanks_page(survey: &Survey, score: i64) -> String {
    let t = text(survey.locale);
    let mut out = page_head(survey, t.thanks_title, t.thanks_body);
    out.push_str("<p class=\"ends\">");
    out.push_str(t.you_chose);
    out.push_str(" <strong class=\"score\">");
    out.push_str(&score.to_string());
    out.push_str("</strong></p></main></body></html>");
    out
}

/// Words of the unsubscribe pages.
struct Unsubscribe {
    title: &'static str,
    ask: &'static str,
    button: &'static str,
    done_title: &'static str,
    done: &'static str,
    shared: &'static str,
}

fn unsubscribe_text(locale: Locale) -> Unsubscribe {
    match locale {
        Locale::Es => Unsubscribe {
            title: "Darse de baja",
            ask: "¿No quiere recibir más encuestas nuestras? Confírmelo con el botón.",
            button: "Darme de baja",
            done_title: "Baja confirmada",
            done: "No le enviaremos más encuestas. Puede cerrar esta página.",
            shared: "Este enlace lo comparten todos los destinatarios de una campaña, así que no \
                     puede dar de baja a nadie. Use el enlace para darse de baja del pie del correo \
                     que recibió: lo gestiona quien se lo envió.",
        },
        Locale::En => Unsubscribe {
            title: "Unsubscribe",
            ask: "Don't want any more surveys from us? Confirm with the button.",
            button: "Unsubscribe me",
            done_title: "You are unsubscribed",
            done: "We won't send you any more surveys. You can close this page.",
            shared: "Every recipient of a campaign shares this link, so it cannot unsubscribe \
                     anyone. Use the unsubscribe link at the foot of the email you received: the \
                     sender's email tool handles it.",
        },
    }
}

/// The page an unsubscribe link opens: a button that confirms (opening the link changes
/// nothing, so link scanners cannot unsubscribe anyone). `target` is the token, and a campaign
/// link's `?rid=…`.
pub fn unsubscribe_page(survey: &Survey, target: &str) -> String {
    let u = unsubscribe_text(survey.locale);
    let mut out = page_head(survey, u.title, u.ask);
    out.push_str("<form method=\"post\" action=\"/u/");
    escape_into(&mut out, target);
    out.push_str("\"><button type=\"submit\">");
    out.push_str(u.button);
    out.push_str("</button></form></main></body></html>");
    out
}

/// The page a campaign link's unsubscribe address shows: it unsubscribes nobody, since anyone
/// holding the link could name any address; the email tool's own unsubscribe link does.
pub fn campaign_unsubscribe_page(survey: &Survey) -> String {
    let u = unsubscribe_text(survey.locale);
    let mut out = page_head(survey, u.title, u.shared);
    out.push_str("</main></body></html>");
    out
}

/// The page shown once a respondent is on the suppression list.
pub fn unsubscribed_page(survey: &Survey) -> String {
    let u = unsubscribe_text(survey.locale);
    let mut out = page_head(survey, u.done_title, u.done);
    out.push_str("</main></body></html>");
    out
}

/// The start of a small page under the survey's brand: its heading and first paragraph, inside
/// an opened `<main>`.
fn page_head(survey: &Survey, title: &str, first: &str) -> String {
    let t = text(survey.locale);
    let brand = survey.brand.as_ref();
    let mut out = String::with_capacity(2 * 1024);
    out.push_str("<!doctype html><html lang=\"");
    out.push_str(t.lang);
    out.push_str("\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"robots\" content=\"noindex\"><title>");
    out.push_str(title);
    out.push_str("</title><style>");
    out.push_str(STYLE);
    push_brand_style(&mut out, brand);
    out.push_str("</style></head><body><main>");
    push_brand_header(&mut out, brand);
    out.push_str("<h1>");
    out.push_str(title);
    out.push_str("</h1><p>");
    out.push_str(first);
    out.push_str("</p>");
    out
}

/// A short error page in the survey's language.
pub fn error_page(e: &HttpError, locale: Locale) -> String {
    let t = text(locale);
    let message = match (locale, e.code) {
        (Locale::Es, "link_expired") => "Este enlace de encuesta ha caducado.".to_string(),
        (Locale::Es, "invalid_link") => {
            "Este enlace no es válido: fue alterado o no procede de nosotros.".to_string()
        }
        (Locale::Es, "survey_closed") => "Esta encuesta ya no está activa.".to_string(),
        (Locale::Es, "invalid_score") => {
            "Puntuación no válida: elija una de las de la escala.".to_string()
        }
        (Locale::Es, "invalid_response") => {
            "No hemos podido guardar la respuesta: compruebe la puntuación y que el comentario \
             no pase de 2000 caracteres."
                .to_string()
        }
        (Locale::Es, "invalid_rid") => {
            "Este enlace lleva un destinatario que no es válido, así que no se ha guardado nada."
                .to_string()
        }
        (Locale::Es, "missing_score") => "Elija una puntuación.".to_string(),
        (Locale::Es, "invalid_token" | "unknown_key") => {
            "Este enlace no es válido: llegó cortado o alterado.".to_string()
        }
        (Locale::Es, "missing_rid" | "unfilled_rid") => {
            "Este enlace no lleva el destinatario: la herramienta de correo no lo completó \
             (¿un envío de prueba?), así que no se ha guardado nada."
                .to_string()
        }
        (Locale::Es, "method_not_allowed") => {
            "Abra el enlace o envíe el formulario de la página.".to_string()
        }
        (Locale::Es, "body_too_large") => {
            "El comentario es demasiado largo: acórtelo y vuelva a enviarlo.".to_string()
        }
        (Locale::Es, "prefetch") => "Las precargas no registran respuestas.".to_string(),
        (Locale::Es, "out_of_space") => {
            "El servidor se ha quedado sin espacio en disco y no ha guardado nada; inténtelo de nuevo en unos segundos.".to_string()
        }
        (Locale::Es, "unavailable") => {
            "El servicio no está disponible en este momento y no ha guardado nada; inténtelo de nuevo en unos segundos.".to_string()
        }
        (Locale::Es, _) => "No hemos podido atender esta petición.".to_string(),
        _ => e.message.clone(),
    };
    let body = format!(
        "<main><h1>{}</h1><p>{}</p></main>",
        t.error_title,
        escape(&message)
    );
    layout(t.lang, t.error_title, &body)
}

/// The error as an HTML page in the survey's language.
pub fn html_error(e: &HttpError, locale: Locale) -> Response {
    html_response(e.status, error_page(e, locale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sondeo_domain::survey::{Brand, Locale, Survey, SurveyKind};

    #[test]
    fn a_full_disk_is_explained_in_spanish_too() {
        for code in ["out_of_space", "unavailable"] {
            let e = HttpError::new(http::StatusCode::SERVICE_UNAVAILABLE, code, "try again");
            let page = error_page(&e, Locale::Es);
            assert!(page.contains("inténtelo de nuevo"), "{code}: {page}");
            assert!(!page.contains("try again"));
        }
    }

    #[test]
    fn spanish_error_pages_carry_no_english_detail() {
        for code in [
            "invalid_score",
            "invalid_token",
            "unfilled_rid",
            "some_new_code",
        ] {
            let e = HttpError::bad_request(code, "score 99 is outside 0-10 (English detail)");
            let page = error_page(&e, Locale::Es);
            assert!(!page.contains("English detail"), "{code}: {page}");
            assert!(page.contains("lang=\"es\""), "{page}");
        }
    }

    #[test]
    fn answer_page_escapes_survey_text_and_checks_the_clicked_score() {
        let survey = Survey {
            id: "s".into(),
            kind: SurveyKind::Csat,
            question: "Was it <b>good</b> & \"fast\"?".into(),
            follow_up: "<script>alert(1)</script>".into(),
            locale: Locale::Es,
            touchpoints: vec![],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        };
        let page = answer_page(&survey, "tok.en", Some(4), true);
        assert!(page.contains("Was it &lt;b&gt;good&lt;/b&gt; &amp; &quot;fast&quot;?"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("value=\"4\" checked"));
        assert_eq!(page.matches("type=\"radio\"").count(), 5, "CSAT is 1 to 5");
        assert!(page.contains("lang=\"es\"") && page.contains("Enviar"));
        assert!(page.contains("action=\"/r/tok.en\""));
    }

    fn branded(brand: Option<Brand>) -> Survey {
        Survey {
            id: "s".into(),
            kind: SurveyKind::Nps,
            question: "How likely?".into(),
            follow_up: String::new(),
            locale: Locale::En,
            touchpoints: vec![],
            public_key: None,
            brand,
            frequency_cap_days: None,
        }
    }

    #[test]
    fn branded_pages_show_the_escaped_name_the_logo_and_the_accent() {
        let survey = branded(Some(Brand {
            name: "Café \"Sol\" <script>document.title='x'</script>".into(),
            accent: Some("#0b5cad".into()),
            logo_url: Some("https://cdn.example.com/logo.png?v=1&s=2".into()),
        }));
        let name = "Café &quot;Sol&quot; &lt;script&gt;document.title=&#39;x&#39;&lt;/script&gt;";
        for page in [
            answer_page(&survey, "t.k", Some(9), true),
            thanks_page(&survey, 9),
        ] {
            assert!(
                page.contains(&format!(
                    "<header class=\"brand\"><img src=\"https://cdn.example.com/logo.png?v=1&amp;s=2\" alt=\"{name}\" height=\"48\" referrerpolicy=\"no-referrer\"><span>{name}</span></header>"
                )),
                "{page}"
            );
            assert!(
                page.contains(".scale input:checked+span{background:#0b5cad;border-color:#0b5cad}")
            );
            assert!(page.contains("button{background:#0b5cad;color:#fff"));
            assert!(!page.contains("<script>document"));
        }
        let thanks = thanks_page(&survey, 9);
        assert!(
            thanks.contains("<strong class=\"score\">9</strong>"),
            "{thanks}"
        );
    }

    #[test]
    fn pages_without_a_brand_have_no_brand_markup_and_bad_stored_values_are_skipped() {
        for page in [
            answer_page(&branded(None), "t.k", None, true),
            thanks_page(&branded(None), 3),
        ] {
            assert!(!page.contains("brand") && !page.contains("<img"), "{page}");
        }
        // Written to the store before validation existed: neither may reach the page.
        let survey = branded(Some(Brand {
            name: "Sol".into(),
            accent: Some("red}body{display:none".into()),
            logo_url: Some("javascript:alert(1)".into()),
        }));
        let page = answer_page(&survey, "t.k", Some(9), true);
        assert!(page.contains("<span>Sol</span>"));
        assert!(
            !page.contains("javascript:") && !page.contains("display:none"),
            "{page}"
        );
        assert!(!page.contains("<img"));
    }

    #[test]
    fn landing_page_sizes_fit_in_the_first_round_trip() {
        let brand = Brand {
            name: "Café Sol".into(),
            accent: Some("#0b5cad".into()),
            logo_url: Some("https://cdn.example.com/logo.png".into()),
        };
        let mut survey = branded(None);
        survey.question = "How likely are you to recommend Café Sol to a friend?".into();
        let plain = answer_page(&survey, &"t".repeat(120), Some(9), true).len();
        survey.brand = Some(brand);
        let with_brand = answer_page(&survey, &"t".repeat(120), Some(9), true).len();
        let thanks = thanks_page(&survey, 9).len();
        println!("NPS landing page (en, 120-byte token): {plain} bytes; branded: {with_brand} bytes; branded thank-you page: {thanks} bytes");
        // A TCP initial window (10 segments) carries about 14 KB with the headers.
        assert!(with_brand < 12 * 1024 && with_brand > plain);
    }

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape("<script>\"x\"&'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;"
        );
        assert_eq!(escape("ñandú <b>"), "ñandú &lt;b&gt;");
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape(""), "");
        assert_eq!(escape("a&&b€>"), "a&amp;&amp;b€&gt;");
    }
}
