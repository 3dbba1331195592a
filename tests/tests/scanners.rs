//! Counting people, not scanners (issue 10, items 1 and 5), through local mode over real HTTP on
//! 127.0.0.1: a person's script-less click counts; a link scanner opening several score links of
//! one email within seconds, in any order, is set aside as automated; HEAD requests and
//! prefetches record nothing; reloading, going Back or reopening the email never reverts a score
//! changed on the page nor erases its comment; an explicit Send beats the scanner's record; an
//! unsigned (campaign) answer never replaces a signed one; a second send counts separately; the
//! metrics show, per touchpoint, the answers set aside and the answers per source.
//!
//! Not tested here: a person who clicks *after* a scanner visited the email. The scanner's burst
//! and the person's click are told apart by the 60 s burst window (`BURST_WINDOW_MS`), so over
//! HTTP it takes waiting a minute: `tests/tests/scanner_then_person.rs` does, once, and the
//! aggregator's domain tests cover every order (`a_person_clicking_after_a_scanner_is_counted_and_before_one_too`
//! in `shared/domain/src/aggregate.rs`).

use sondeo_domain::aggregate::BURST_WINDOW_MS;
use sondeo_domain::response::{ResponseEvent, Source};
use sondeo_domain::time::{now_ms, Day};
use sondeo_domain::token::{LinkClaims, LinkScope, CAMPAIGN_RESPONDENT};
use sondeo_local::local::LocalStack;
use sondeo_local::server::RunningServer;
use sondeo_tests::local_http::{boot, LocalHttp, Reply};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The survey every scenario answers.
const SURVEY: &str = "scanners";

/// A local stack in its own data directory, serving [`SURVEY`] on an ephemeral loopback port.
struct Local {
    dir: PathBuf,
    stack: Arc<LocalStack>,
    server: RunningServer,
    http: Arc<LocalHttp>,
    auth: String,
}

impl Local {
    /// Opens a fresh data directory and creates an NPS survey with these touchpoints.
    async fn open(name: &str, touchpoints: &[&str]) -> Local {
        let dir = std::env::temp_dir().join(format!(
            "sondeo-scanners-{name}-{:08x}",
            rand::random::<u32>()
        ));
        let (stack, server, http) = boot(&dir).await;
        assert!(
            http.base.starts_with("http://127.0.0.1:"),
            "loopback only: {}",
            http.base
        );
        let auth = format!("Bearer {}", stack.api_key);
        let survey = serde_json::json!({
            "id": SURVEY,
            "kind": "nps",
            "question": "How likely are you to recommend us?",
            "touchpoints": touchpoints.iter().map(|t| serde_json::json!({"slug": t})).collect::<Vec<_>>(),
        });
        let created = http
            .send(
                "POST",
                "/v1/surveys",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                &survey.to_string(),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        Local {
            dir,
            stack,
            server,
            http: Arc::new(http),
            auth,
        }
    }

    async fn close(self) {
        self.server.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// A link token for `respondent` at `touchpoint`, in this send or campaign.
    fn token(&self, touchpoint: &str, respondent: &str, scope: &LinkScope) -> String {
        let now = now_ms() / 1000;
        let claims = LinkClaims {
            survey: SURVEY.into(),
            touchpoint: touchpoint.into(),
            respondent: respondent.into(),
            issued_at: now,
            expires_at: now + 3600,
        };
        self.stack.keyring.sign_scoped(&claims, scope).unwrap()
    }

    /// A signed link token in the default send.
    fn signed(&self, touchpoint: &str, respondent: &str) -> String {
        self.token(touchpoint, respondent, &LinkScope::default())
    }

    /// Waits until every queued answer is applied (the local queue is polled every 50 ms; a
    /// message leaves the queue only once its aggregation committed). Nothing may be dead-lettered.
    async fn drained(&self) {
        for _ in 0..400 {
            let (queued, dead) = self.stack.store.queue_depth_async().await.unwrap();
            assert_eq!(dead, 0, "an answer was dead-lettered");
            if queued == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the local queue did not drain within 10 s");
    }

    /// The counters of one touchpoint over the days around today (every send), read through the
    /// metrics API once the queue drained.
    async fn tally(&self, touchpoint: &str) -> Tally {
        let report = self.metrics().await;
        let total = &report["touchpoints"][touchpoint]["total"];
        let count = |v: &serde_json::Value| v.as_i64().unwrap_or_else(|| panic!("{total}"));
        let nonzero = |field: &str| -> BTreeMap<String, i64> {
            total[field]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), count(v)))
                        .filter(|(_, c)| *c != 0)
                        .collect()
                })
                .unwrap_or_default()
        };
        Tally {
            n: count(&total["n"]),
            scores: nonzero("distribution")
                .into_iter()
                .map(|(k, c)| (k.parse().unwrap(), c))
                .collect(),
            automated: count(&total["automated"]),
            sources: nonzero("sources"),
        }
    }

    /// The stored response records of one respondent at one touchpoint (every send and source).
    async fn records(&self, touchpoint: &str, respondent: &str) -> Vec<ResponseEvent> {
        self.drained().await;
        let mut all = self.stack.store.all_responses_async(SURVEY).await.unwrap();
        all.retain(|e| e.touchpoint == touchpoint && e.respondent == respondent);
        all.sort_by(|a, b| (&a.send, a.source).cmp(&(&b.send, b.source)));
        all
    }

    /// The metrics report of [`SURVEY`] over the days around today, through the API.
    async fn metrics(&self) -> serde_json::Value {
        let today = Day::from_unix_ms(now_ms());
        let path = format!(
            "/v1/metrics?survey={SURVEY}&from={}&to={}",
            today.plus(-1),
            today.plus(1)
        );
        self.drained().await;
        let r = self
            .http
            .send("GET", &path, &[("authorization", &self.auth)], "")
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }
}

/// Opens one score link (`GET /r/{token}?score=N`) with these headers; returns the status.
async fn click(http: &LocalHttp, token: &str, score: i64, headers: &[(&str, &str)]) -> u16 {
    http.send("GET", &format!("/r/{token}?score={score}"), headers, "")
        .await
        .status
}

/// The page's Send button: `POST /r/{token}{query}` with a score and maybe a comment, as JSON.
async fn send_answer(
    http: &LocalHttp,
    token: &str,
    query: &str,
    score: i64,
    comment: Option<&str>,
) -> Reply {
    let mut form = vec![("score", score.to_string())];
    if let Some(c) = comment {
        form.push(("comment", c.to_string()));
    }
    http.send(
        "POST",
        &format!("/r/{token}{query}"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
        ],
        &serde_urlencoded::to_string(&form).unwrap(),
    )
    .await
}

/// One touchpoint's counters, as the metrics API reports them.
#[derive(Debug)]
struct Tally {
    /// Answers counted.
    n: i64,
    /// Counted answers per score, for the scores that have any.
    scores: BTreeMap<i64, i64>,
    /// Answers set aside as automated.
    automated: i64,
    /// Counted answers per source, for the sources that have any.
    sources: BTreeMap<String, i64>,
}

/// Counted answers with this score.
fn at(h: &Tally, score: i64) -> i64 {
    h.scores.get(&score).copied().unwrap_or(0)
}

/// A tally in a few words, for failure messages.
fn show(h: &Tally) -> String {
    format!(
        "counted {} {:?}, automated {}, sources {:?}",
        h.n, h.scores, h.automated, h.sources
    )
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    /// Must be rejected: nothing counted.
    Scanner,
    /// Must be counted.
    Person,
}

/// What one scenario did.
struct Outcome {
    name: &'static str,
    who: Who,
    /// The touchpoint it used, and how many of its emails are left set aside as automated.
    touchpoint: &'static str,
    automated_emails: i64,
    /// Whether the product did what it must.
    ok: bool,
    /// What was observed.
    detail: String,
}

/// Every score of an NPS email, in a fixed shuffled order (not 0..=10, so order cannot matter).
const SHUFFLED: [i64; 11] = [7, 0, 10, 3, 5, 9, 1, 8, 2, 6, 4];
const SHUFFLED_2: [i64; 11] = [4, 9, 0, 6, 10, 2, 8, 1, 7, 3, 5];

/// A scanner opening these links of one email one after the other; returns how long it took.
async fn scan(local: &Local, token: &str, scores: &[i64]) -> Duration {
    let started = Instant::now();
    for s in scores {
        assert_eq!(click(&local.http, token, *s, &[]).await, 200);
    }
    started.elapsed()
}

/// Scenario 1: a person's single script-less GET of the 9 (they close the page at once).
async fn person_clicks_once(local: &Local) -> Outcome {
    let tp = "click";
    let token = local.signed(tp, "person@example.com");
    assert_eq!(click(&local.http, &token, 9, &[]).await, 200);
    let h = local.tally(tp).await;
    Outcome {
        name: "a person's single click of the 9",
        who: Who::Person,
        touchpoint: tp,
        automated_emails: 0,
        ok: h.n == 1 && at(&h, 9) == 1 && h.automated == 0,
        detail: show(&h),
    }
}

/// Scenario 2: a scanner opening all 11 links of one email in a shuffled order, one at a time.
async fn scanner_opens_all_links(local: &Local) -> Outcome {
    let tp = "scan-all";
    let token = local.signed(tp, "scanned-all@example.com");
    let took = scan(local, &token, &SHUFFLED).await;
    assert!(took.as_millis() < BURST_WINDOW_MS as u128, "{took:?}");
    let h = local.tally(tp).await;
    Outcome {
        name: "a scanner opening all 11 links in a shuffled order",
        who: Who::Scanner,
        touchpoint: tp,
        automated_emails: 1,
        ok: h.n == 0 && h.automated == 1,
        detail: format!("{} (the 11 GETs took {took:?})", show(&h)),
    }
}

/// Scenario 2, concurrently: all 11 links in another shuffled order, four at a time.
async fn scanner_opens_all_links_concurrently(local: &Local) -> Outcome {
    let tp = "scan-concurrent";
    let token = Arc::new(local.signed(tp, "scanned-concurrent@example.com"));
    let started = Instant::now();
    for group in SHUFFLED_2.chunks(4) {
        let tasks: Vec<_> = group
            .iter()
            .map(|s| {
                let (http, token, s) = (local.http.clone(), token.clone(), *s);
                tokio::spawn(async move { click(&http, &token, s, &[]).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
    }
    let took = started.elapsed();
    assert!(took.as_millis() < BURST_WINDOW_MS as u128, "{took:?}");
    let h = local.tally(tp).await;
    Outcome {
        name: "a scanner opening all 11 links, four at a time",
        who: Who::Scanner,
        touchpoint: tp,
        automated_emails: 1,
        ok: h.n == 0 && h.automated == 1,
        detail: format!("{} (the 11 GETs took {took:?})", show(&h)),
    }
}

/// Scenario 2, a few links: a scanner opening only the 0, the 10 and the 6.
async fn scanner_opens_three_links(local: &Local) -> Outcome {
    let tp = "scan-three";
    let token = local.signed(tp, "scanned-three@example.com");
    let took = scan(local, &token, &[0, 10, 6]).await;
    let h = local.tally(tp).await;
    Outcome {
        name: "a scanner opening 3 of the links (0, 10, 6)",
        who: Who::Scanner,
        touchpoint: tp,
        automated_emails: 1,
        ok: h.n == 0 && h.automated == 1,
        detail: format!("{} (the 3 GETs took {took:?})", show(&h)),
    }
}

/// Scenario 3: requests that must record nothing at all: `method` with `headers` on all 11 links.
async fn records_nothing(
    local: &Local,
    name: &'static str,
    tp: &'static str,
    method: &str,
    headers: &[(&str, &str)],
) -> Outcome {
    let respondent = format!("{tp}@example.com");
    let token = local.signed(tp, &respondent);
    let mut statuses = Vec::new();
    for s in SHUFFLED {
        let r = local
            .http
            .send(method, &format!("/r/{token}?score={s}"), headers, "")
            .await;
        statuses.push(r.status);
    }
    let h = local.tally(tp).await;
    let stored = local.records(tp, &respondent).await;
    Outcome {
        name,
        who: Who::Scanner,
        touchpoint: tp,
        automated_emails: 0,
        ok: h.n == 0 && h.automated == 0 && h.scores.is_empty() && stored.is_empty(),
        detail: format!(
            "{}, {} record(s) stored, statuses {statuses:?}",
            show(&h),
            stored.len()
        ),
    }
}

/// Scenario 4: the 9 clicked, 7 sent with a comment from the page, then the 9 link reloaded and
/// the email's link opened again, then the page without a score (Back): the answer stays 7 and
/// keeps its comment.
async fn reload_back_and_reopen_keep_the_sent_answer(local: &Local) -> Outcome {
    let tp = "reload";
    let respondent = "reloader@example.com";
    let token = local.signed(tp, respondent);
    let mut steps = Vec::new();

    assert_eq!(click(&local.http, &token, 9, &[]).await, 200);
    let h = local.tally(tp).await;
    let mut ok = h.n == 1 && at(&h, 9) == 1;
    steps.push(format!("after the click of 9: {}", show(&h)));

    let sent = send_answer(&local.http, &token, "", 7, Some("late parcel")).await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let h = local.tally(tp).await;
    ok &= h.n == 1 && at(&h, 7) == 1 && at(&h, 9) == 0;
    steps.push(format!("after sending 7: {}", show(&h)));

    // The reload, then the email's link opened again.
    for _ in 0..2 {
        assert_eq!(click(&local.http, &token, 9, &[]).await, 200);
    }
    let h = local.tally(tp).await;
    ok &= h.n == 1 && at(&h, 7) == 1 && at(&h, 9) == 0;
    steps.push(format!("after two more GETs of 9: {}", show(&h)));

    // Back to the page without a score.
    let page = local
        .http
        .send("GET", &format!("/r/{token}"), &[], "")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let h = local.tally(tp).await;
    ok &= h.n == 1 && at(&h, 7) == 1 && at(&h, 9) == 0 && h.automated == 0;
    steps.push(format!("after the page without a score: {}", show(&h)));

    let stored = local.records(tp, respondent).await;
    let kept = stored.len() == 1
        && stored[0].score == 7
        && stored[0].comment.as_deref() == Some("late parcel")
        && !stored[0].click;
    ok &= kept;
    steps.push(format!(
        "stored: {:?}",
        stored
            .iter()
            .map(|e| (e.score, e.comment.clone(), e.click))
            .collect::<Vec<_>>()
    ));
    Outcome {
        name: "reload, Back and reopening after sending 7 with a comment",
        who: Who::Person,
        touchpoint: tp,
        automated_emails: 0,
        ok,
        detail: steps.join("; "),
    }
}

/// Scenario 5: a scanner opens every link of the email, then the person sends 4 from the page.
async fn explicit_send_beats_the_scanner(local: &Local) -> Outcome {
    let tp = "scan-then-send";
    let token = local.signed(tp, "scanned-then-sent@example.com");
    scan(local, &token, &SHUFFLED_2).await;
    let before = local.tally(tp).await;
    let sent = send_answer(&local.http, &token, "", 4, None).await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let after = local.tally(tp).await;
    Outcome {
        name: "a person sending 4 after a scanner opened every link",
        who: Who::Person,
        touchpoint: tp,
        automated_emails: 0,
        ok: before.n == 0
            && before.automated == 1
            && after.n == 1
            && at(&after, 4) == 1
            && after.automated == 0,
        detail: format!(
            "after the scan: {}; after the Send: {}",
            show(&before),
            show(&after)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanners_are_set_aside_and_people_are_counted() {
    let touchpoints = [
        "click",
        "scan-all",
        "scan-concurrent",
        "scan-three",
        "head",
        "sec-purpose",
        "purpose",
        "preview",
        "reload",
        "scan-then-send",
    ];
    let local = Local::open("main", &touchpoints).await;

    let mut outcomes = vec![
        person_clicks_once(&local).await,
        scanner_opens_all_links(&local).await,
        scanner_opens_all_links_concurrently(&local).await,
        scanner_opens_three_links(&local).await,
        records_nothing(&local, "HEAD on all 11 links", "head", "HEAD", &[]).await,
        records_nothing(
            &local,
            "GETs of all 11 links with Sec-Purpose: prefetch",
            "sec-purpose",
            "GET",
            &[("sec-purpose", "prefetch")],
        )
        .await,
        records_nothing(
            &local,
            "GETs of all 11 links with Purpose: prefetch",
            "purpose",
            "GET",
            &[("purpose", "prefetch")],
        )
        .await,
        records_nothing(
            &local,
            "GETs of all 11 links with X-Purpose: preview (Safari's link preview)",
            "preview",
            "GET",
            &[("x-purpose", "preview")],
        )
        .await,
        reload_back_and_reopen_keep_the_sent_answer(&local).await,
        explicit_send_beats_the_scanner(&local).await,
    ];
    outcomes.sort_by_key(|o| o.who == Who::Person);

    // Scenario 9: the metrics API shows, per touchpoint, the emails set aside and the sources.
    let report = local.metrics().await;
    println!(
        "metrics of touchpoint scan-all: {}",
        report["touchpoints"]["scan-all"]["total"]
    );
    println!(
        "metrics of touchpoint scan-then-send: {}",
        report["touchpoints"]["scan-then-send"]["total"]
    );
    let mut metrics_wrong = Vec::new();
    for o in &outcomes {
        let total = &report["touchpoints"][o.touchpoint]["total"];
        let counted = if o.who == Who::Person { 1 } else { 0 };
        let sources = if counted == 1 {
            serde_json::json!({"link": 1})
        } else {
            serde_json::json!({})
        };
        let got_sources = total
            .get("sources")
            .cloned()
            .unwrap_or(serde_json::json!({}));
        if total["automated"] != o.automated_emails
            || total["n"] != counted
            || got_sources != sources
        {
            metrics_wrong.push(format!(
                "{}: want n {counted}, automated {}, sources {sources}; got {total}",
                o.touchpoint, o.automated_emails
            ));
        }
    }
    let scanned: i64 = outcomes.iter().map(|o| o.automated_emails).sum();
    if report["overall"]["total"]["automated"] != scanned {
        metrics_wrong.push(format!(
            "overall: want automated {scanned}, got {}",
            report["overall"]["total"]
        ));
    }

    // Scenario 10: the shares, from what happened.
    let share = |who: Who| {
        let of: Vec<&Outcome> = outcomes.iter().filter(|o| o.who == who).collect();
        (of.iter().filter(|o| o.ok).count(), of.len())
    };
    let (rejected, scanners) = share(Who::Scanner);
    let (counted, people) = share(Who::Person);
    for o in &outcomes {
        println!(
            "{:<7} {:<4} {}: {}",
            format!("{:?}", o.who),
            if o.ok { "ok" } else { "FAIL" },
            o.name,
            o.detail
        );
    }
    println!(
        "scanner scenarios rejected: {rejected}/{scanners} ({:.0}%), person scenarios counted: {counted}/{people} ({:.0}%)",
        100.0 * rejected as f64 / scanners as f64,
        100.0 * counted as f64 / people as f64
    );
    local.close().await;

    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{}: {}", o.name, o.detail))
        .collect();
    assert!(
        failed.is_empty(),
        "scenarios failed:\n{}",
        failed.join("\n")
    );
    assert_eq!(
        (rejected, counted),
        (scanners, people),
        "goal: 100% and 100%"
    );
    assert!(
        metrics_wrong.is_empty(),
        "metrics:\n{}",
        metrics_wrong.join("\n")
    );
}

/// Scenario 7: a campaign link's answer (unsigned, its respondent from `rid=`) counts in its own
/// namespace and never replaces the answer a respondent gave through their own signed link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_answer_never_replaces_a_signed_one() {
    let tp = "campaign";
    let local = Local::open("unsigned", &[tp]).await;
    let signed = local.signed(tp, "ana@example.com");
    let campaign = local.token(
        tp,
        CAMPAIGN_RESPONDENT,
        &LinkScope {
            send: String::new(),
            campaign: true,
        },
    );

    // Ana answers 10 through her own link; then someone answers 0 for her through the campaign link.
    let r = send_answer(&local.http, &signed, "", 10, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = send_answer(&local.http, &campaign, "?rid=ana@example.com", 0, None).await;
    assert_eq!(r.status, 202, "{}", r.body);

    // Both count, each in its namespace, and the signed 10 is still counted.
    let h = local.tally(tp).await;
    assert_eq!((h.n, at(&h, 10), at(&h, 0)), (2, 1, 1), "{}", show(&h));
    let stored = local.records(tp, "ana@example.com").await;
    let got: Vec<(Source, i64)> = stored.iter().map(|e| (e.source, e.score)).collect();
    assert_eq!(got, vec![(Source::Link, 10), (Source::Campaign, 0)]);
    let report = local.metrics().await;
    let total = &report["touchpoints"][tp]["total"];
    println!("metrics of touchpoint {tp}: {total}");
    assert_eq!(
        total["sources"],
        serde_json::json!({"link": 1, "campaign": 1}),
        "{total}"
    );
    assert_eq!(total["n"], 2, "{total}");
    assert_eq!(total["automated"], 0, "{total}");

    // A campaign link without rid is refused, and says why: as JSON from the Send button, and
    // as a page when the link is opened.
    let r = send_answer(&local.http, &campaign, "", 5, None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let error: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("rid"),
        "{}",
        r.body
    );
    let r = local
        .http
        .send("GET", &format!("/r/{campaign}?score=5"), &[], "")
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("rid"), "{}", r.body);

    // An address put in the URL unencoded: its '+' is a '+', not a space. A second answer for
    // the same address replaces the first.
    let r = send_answer(&local.http, &campaign, "?rid=a+b@example.com", 5, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let h = local.tally(tp).await;
    assert_eq!((h.n, at(&h, 5)), (3, 1), "{}", show(&h));
    let r = send_answer(&local.http, &campaign, "?rid=a+b@example.com", 6, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let h = local.tally(tp).await;
    assert_eq!(
        (h.n, at(&h, 5), at(&h, 6), at(&h, 10)),
        (3, 0, 1, 1),
        "{}",
        show(&h)
    );
    let stored = local.records(tp, "a+b@example.com").await;
    let got: Vec<(Source, i64)> = stored.iter().map(|e| (e.source, e.score)).collect();
    assert_eq!(got, vec![(Source::Campaign, 6)]);
    assert!(local.records(tp, "a b@example.com").await.is_empty());
    assert_eq!(
        h.sources,
        BTreeMap::from([("campaign".to_string(), 2), ("link".to_string(), 1)])
    );
    local.close().await;
}

/// Scenario 8: the same respondent answering through two sends counts twice; twice through the
/// same send counts once, with the last answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_send_counts_separately_and_the_last_answer_wins_within_a_send() {
    let tp = "sends";
    let local = Local::open("sends", &[tp]).await;
    let who = "bo@example.com";
    let default_send = local.signed(tp, who);
    let q4 = local.token(
        tp,
        who,
        &LinkScope {
            send: "2026-q4".into(),
            campaign: false,
        },
    );

    let r = send_answer(&local.http, &default_send, "", 8, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = send_answer(&local.http, &q4, "", 9, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let h = local.tally(tp).await;
    assert_eq!((h.n, at(&h, 8), at(&h, 9)), (2, 1, 1), "{}", show(&h));

    // Answering again through the 2026-q4 link replaces that send's answer only.
    let r = send_answer(&local.http, &q4, "", 3, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let h = local.tally(tp).await;
    assert_eq!(
        (h.n, at(&h, 8), at(&h, 9), at(&h, 3)),
        (2, 1, 0, 1),
        "{}",
        show(&h)
    );
    let stored = local.records(tp, who).await;
    let got: Vec<(&str, i64)> = stored.iter().map(|e| (e.send.as_str(), e.score)).collect();
    assert_eq!(got, vec![("", 8), ("2026-q4", 3)]);
    assert_eq!(h.sources, BTreeMap::from([("link".to_string(), 2)]));
    local.close().await;
}
