//! The one-click page in a real browser (Debian's headless Chromium, started without automation
//! flags, so `navigator.webdriver` is false and the page's script runs as for a person): one
//! click counts once, and a scanner opening every score link of one email counts nothing.

use sondeo_domain::ports::CounterReader;
use sondeo_domain::token::LinkClaims;
use sondeo_local::local::{LocalStack, DEMO_SURVEY};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn chromium() -> String {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(c).exists() {
            return c.to_string();
        }
    }
    panic!("Chromium is needed for browser tests: `apt-get install chromium` (scripts/test.sh installs it)");
}

/// Loads `url` headless, lets the page's timers and requests run, and returns the final DOM.
fn load_page(url: &str, extra: &[&str], screenshot: Option<&str>) -> String {
    let profile =
        std::env::temp_dir().join(format!("sondeo-chromium-{:08x}", rand::random::<u32>()));
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg("--virtual-time-budget=5000")
    .args(extra);
    if let Some(path) = screenshot {
        cmd.arg(format!("--screenshot={path}"))
            .arg("--window-size=480,900");
    } else {
        cmd.arg("--dump-dom");
    }
    let out = cmd.arg(url).output().expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn counted(stack: &LocalStack) -> i64 {
    let today = sondeo_domain::time::Day::from_unix_ms(sondeo_domain::time::now_ms());
    let rows = stack
        .store
        .read_counters(DEMO_SURVEY, today.plus(-1), today.plus(1))
        .await
        .unwrap();
    rows.iter().map(|r| r.histogram.n).sum()
}

/// Waits until the local queue is drained (it is polled every 50 ms), then counts.
async fn counted_after_drain(stack: &LocalStack) -> i64 {
    for _ in 0..400 {
        if stack.store.queue_depth().unwrap().0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    counted(stack).await
}

/// Counts set aside as automated, after the queue is drained.
async fn automated_after_drain(stack: &LocalStack) -> i64 {
    counted_after_drain(stack).await;
    let today = sondeo_domain::time::Day::from_unix_ms(sondeo_domain::time::now_ms());
    let rows = stack
        .store
        .read_counters(DEMO_SURVEY, today.plus(-1), today.plus(1))
        .await
        .unwrap();
    rows.iter().map(|r| r.histogram.automated()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_s_click_counts_once_and_a_browser_scanning_every_link_counts_nothing() {
    let dir = std::env::temp_dir().join(format!("sondeo-browser-{:08x}", rand::random::<u32>()));
    let stack = Arc::new(LocalStack::open(&dir, None).await.unwrap());
    stack.ensure_demo_survey().await.unwrap();
    let server = sondeo_local::server::start(stack.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let now = sondeo_domain::time::now_ms() / 1000;
    let link = |who: &str, score: i64| {
        let claims = LinkClaims {
            survey: DEMO_SURVEY.into(),
            touchpoint: "post-purchase".into(),
            respondent: who.into(),
            issued_at: now,
            expires_at: now + 3600,
        };
        format!(
            "http://{}/r/{}?score={score}",
            server.addr,
            stack.keyring.sign(&claims).unwrap()
        )
    };

    // A person's browser opens the 9: the page shows it chosen, and the click counts once
    // (the page's script adds nothing on load).
    let dom = load_page(&link("person@example.com", 9), &[], None);
    assert!(dom.contains("How likely are you to recommend us"), "{dom}");
    assert!(dom.contains("value=\"9\" checked"), "{dom}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        counted_after_drain(&stack).await,
        1,
        "one click, one answer"
    );

    // A scanner opening all 11 links of another email in a real browser, in a shuffled order,
    // two at a time: set aside as automated, never counted.
    let scanned: Vec<String> = [7, 0, 10, 3, 5, 9, 1, 8, 2, 6, 4]
        .iter()
        .map(|s| link("scanned@example.com", *s))
        .collect();
    std::thread::scope(|scope| {
        for pair in scanned.chunks(2) {
            let handles: Vec<_> = pair
                .iter()
                .map(|url| scope.spawn(move || load_page(url, &[], None)))
                .collect();
            for h in handles {
                assert!(h.join().unwrap().contains("How likely"));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        counted_after_drain(&stack).await,
        1,
        "the scanner added nothing"
    );
    assert_eq!(
        automated_after_drain(&stack).await,
        1,
        "one email set aside"
    );

    if let Ok(path) = std::env::var("SONDEO_SCREENSHOT") {
        load_page(&link("screenshot@example.com", 9), &[], Some(&path));
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
