//! Respondent-facing HTML pages (English and Spanish): the answer page, thanks, and errors.

use super::HttpError;
use crate::survey::{Locale, Survey, SurveyKind};

struct Text {
    lang: &'static str,
    you_chose: &'static str,
    change: &'static str,
    pick: &'static str,
    default_follow_up: &'static str,
    send: &'static str,
    recorded: &'static str,
    not_recorded: &'static str,
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
    change: "Changed your mind? Pick another score.",
    pick: "Pick a score.",
    default_follow_up: "What is the main reason for your score?",
    send: "Send",
    recorded: "Your answer has been recorded.",
    not_recorded: "Your answer could not be recorded yet; press Send to try again.",
    noscript: "Press Send to record your answer.",
    thanks_title: "Thank you!",
    thanks_body: "Your answer has been recorded. You can close this page.",
    error_title: "Sorry",
    not_likely: "Not at all likely",
    very_likely: "Extremely likely",
};

const ES: Text = Text {
    lang: "es",
    you_chose: "¡Gracias! Su respuesta:",
    change: "¿Cambió de opinión? Elija otra puntuación.",
    pick: "Elija una puntuación.",
    default_follow_up: "¿Cuál es el motivo principal de su puntuación?",
    send: "Enviar",
    recorded: "Su respuesta ha quedado registrada.",
    not_recorded: "Aún no pudimos registrar su respuesta; pulse Enviar para intentarlo de nuevo.",
    noscript: "Pulse Enviar para registrar su respuesta.",
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
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

/// The page a one-click link opens: the chosen score (changeable), the follow-up question, Send.
///
/// Loading the page records nothing. Its script records the chosen score once the page is
/// visible to a person (not in a background tab, not under automation) and again whenever the
/// score is changed; Send records the score with the comment. Link scanners that only fetch the
/// URL, and prefetchers, never record anything.
pub fn answer_page(survey: &Survey, token: &str, score: Option<i64>) -> String {
    let t = text(survey.locale);
    let (min, max) = survey.kind.range();
    let mut scale = String::with_capacity(1024);
    if survey.kind.is_discrete() {
        for s in min..=max {
            let checked = if score == Some(s) { " checked" } else { "" };
            let label = match (survey.kind, s) {
                (SurveyKind::YesNo, 1) => if survey.locale == Locale::Es {
                    "Sí"
                } else {
                    "Yes"
                }
                .to_string(),
                (SurveyKind::YesNo, _) => "No".to_string(),
                _ => s.to_string(),
            };
            scale.push_str(&format!("<label><input type=\"radio\" name=\"score\" value=\"{s}\"{checked} required><span>{label}</span></label>"));
        }
    } else {
        let v = score.map(|s| s.to_string()).unwrap_or_default();
        scale.push_str(&format!("<label><input type=\"number\" name=\"score\" min=\"0\" step=\"1\" value=\"{v}\" required style=\"position:static;opacity:1\"></label>"));
    }
    let ends = if survey.kind == SurveyKind::Nps {
        format!(
            "<div class=\"ends\"><span>{}</span><span>{}</span></div>",
            t.not_likely, t.very_likely
        )
    } else {
        String::new()
    };
    let lead = if score.is_some() {
        format!("<p>{}</p>", t.you_chose)
    } else {
        format!("<p>{}</p>", t.pick)
    };
    let change = if score.is_some() {
        format!("<p class=\"ends\">{}</p>", t.change)
    } else {
        String::new()
    };
    let follow_up = if survey.follow_up.trim().is_empty() {
        t.default_follow_up.to_string()
    } else {
        survey.follow_up.clone()
    };
    let action = format!("/r/{}", escape(token));
    let body = format!(
        "<main><h1>{question}</h1>{lead}<form id=\"answer\" method=\"post\" action=\"{action}\">\
<fieldset><legend class=\"ends\">{question}</legend><div class=\"scale\">{scale}</div>{ends}</fieldset>{change}\
<p><label for=\"comment\">{follow_up}</label></p><textarea id=\"comment\" name=\"comment\" maxlength=\"2000\"></textarea>\
<button type=\"submit\">{send}</button></form><p id=\"status\" role=\"status\" data-recorded=\"{recorded}\" data-failed=\"{failed}\"></p>\
<noscript><p>{noscript}</p></noscript></main><script>{SCRIPT}</script>",
        question = escape(&survey.question),
        follow_up = escape(&follow_up),
        send = t.send,
        recorded = escape(t.recorded),
        failed = escape(t.not_recorded),
        noscript = t.noscript,
    );
    layout(t.lang, &survey.question, &body)
}

/// Records the chosen score when a person sees the page, and on every change of score.
const SCRIPT: &str = "(function(){var f=document.getElementById('answer'),st=document.getElementById('status'),sent=null;\
function chosen(){var c=f.querySelector('input[name=score]:checked')||f.querySelector('input[type=number]');return c&&c.value!==''?c.value:null}\
function record(){var s=chosen();if(s===null||s===sent||navigator.webdriver)return;sent=s;\
fetch(f.action,{method:'POST',credentials:'omit',headers:{'Accept':'application/json','Content-Type':'application/x-www-form-urlencoded'},body:'score='+encodeURIComponent(s)})\
.then(function(r){st.textContent=r.ok?st.dataset.recorded:st.dataset.failed;if(!r.ok)sent=null}).catch(function(){st.textContent=st.dataset.failed;sent=null})}\
function whenSeen(){if(document.visibilityState==='visible'){setTimeout(record,400)}else{document.addEventListener('visibilitychange',function v(){if(document.visibilityState==='visible'){document.removeEventListener('visibilitychange',v);setTimeout(record,400)}})}}\
f.addEventListener('change',function(e){if(e.target.name==='score')record()});whenSeen()})();";

/// The page shown after Send.
pub fn thanks_page(survey: &Survey, score: i64) -> String {
    let t = text(survey.locale);
    let body = format!(
        "<main><h1>{}</h1><p>{}</p><p class=\"ends\">{} {score}</p></main>",
        t.thanks_title, t.thanks_body, t.you_chose
    );
    layout(t.lang, t.thanks_title, &body)
}

/// A short error page in the survey's language.
pub fn error_page(e: &HttpError, locale: Locale) -> String {
    let t = text(locale);
    let message = match (locale, e.code) {
        (Locale::Es, "link_expired") => "Este enlace de encuesta ha caducado.".to_string(),
        (Locale::Es, "invalid_link") => {
            "Este enlace no es válido: fue alterado o no procede de nosotros.".to_string()
        }
        (Locale::Es, "unknown_survey" | "unknown_touchpoint") => {
            "Esta encuesta ya no está activa.".to_string()
        }
        (Locale::Es, "invalid_score") => format!("Puntuación no válida. ({})", e.message),
        _ => e.message.clone(),
    };
    let body = format!(
        "<main><h1>{}</h1><p>{}</p></main>",
        t.error_title,
        escape(&message)
    );
    layout(t.lang, t.error_title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape("<script>\"x\"&'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;"
        );
    }
}
