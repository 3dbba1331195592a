//! 1,000,000 rows imported locally by the real binary in bounded memory: the process's peak
//! resident memory stays small while the file is 45 MB, every answer is counted once per
//! respondent (200,000 respondents answering five times each: the latest wins), and the rate
//! (rows per second) and peak memory are printed.
//!
//! About 1.5 minutes in a debug build on 2 cores; for the release rate:
//! `cargo test --release -p sondeo-cli --test import_million -- --nocapture`.

use sondeo_local::client::ApiClient;
use sondeo_local::local::LocalStack;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROWS: u64 = 1_000_000;
const PEOPLE: u64 = 200_000;

/// Peak resident memory of a running process so far, in KiB (`VmHWM`).
fn peak_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test]
async fn a_million_rows_import_in_bounded_memory() {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "sondeo-import-million-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rows.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(w, "id,email,score,answered_at").unwrap();
        for i in 0..ROWS {
            // 2024-01-01 backwards, one answer every 30 s; each person answers five times.
            writeln!(
                w,
                "r{i},person{}@example.com,{},{}",
                i % PEOPLE,
                i % 11,
                1_704_067_200 - i * 30
            )
            .unwrap();
        }
    }
    let data = dir.join("data");
    let bin = env!("CARGO_BIN_EXE_sondeo");
    let created = Command::new(bin)
        .arg("--data-dir")
        .arg(&data)
        .args(["survey", "create", "--id", "big", "--kind", "nps"])
        .args(["--question", "Q", "--touchpoint", "checkout"])
        .env_remove("SONDEO_API_URL")
        .output()
        .unwrap();
    assert!(created.status.success());
    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg("--data-dir")
        .arg(&data)
        .args(["import", "--survey", "big", "--touchpoint", "checkout"])
        .args(["--map", "id=id", "--map", "respondent=email"])
        .args(["--map", "score=score", "--map", "answered-at=answered_at"])
        .arg(&file)
        .env_remove("SONDEO_API_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = started.elapsed().as_secs_f64();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("1000000 rows read, 1000000 imported, 0 refused"),
        "{out}"
    );
    println!(
        "imported {ROWS} rows locally in {secs:.1} s: {:.0} rows/s, peak resident memory {:.1} MiB",
        ROWS as f64 / secs,
        peak as f64 / 1024.0
    );
    // Bounded: one batch in memory, not the 45 MB file nor a million events.
    assert!(peak < 100 * 1024, "peak {peak} KiB");
    let client = ApiClient::Local(Arc::new(LocalStack::open(&data, None).await.unwrap()));
    let m = client
        .call(
            http::Method::GET,
            "/v1/metrics?survey=big&from=2023-01-01&to=2024-01-31&bucket=month",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        m["overall"]["total"]["n"], PEOPLE,
        "{}",
        m["overall"]["total"]
    );
    assert_eq!(
        m["overall"]["total"]["sources"],
        serde_json::json!({"import": PEOPLE})
    );
    let _ = std::fs::remove_dir_all(&dir);
}
