//! `sondeo links`: a recipients CSV in, a mail-merge CSV out, through the real binary in local
//! mode; every written link verifies to its recipient.

use sondeo_local::local::LocalStack;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sondeo-cli-links-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sondeo(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sondeo"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("SONDEO_API_URL")
        .env_remove("SONDEO_API_KEY")
        .output()
        .expect("sondeo runs")
}

fn create_survey(data: &Path) {
    let out = sondeo(
        data,
        &[
            "survey",
            "create",
            "--id",
            "nps-q4",
            "--kind",
            "nps",
            "--question",
            "How likely?",
            "--touchpoint",
            "newsletter",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rows(path: &Path) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn a_recipients_csv_becomes_a_mail_merge_csv_and_bad_rows_are_reported_by_line() {
    let data = data_dir("edge");
    create_survey(&data);
    let input = data.join("recipients.csv");
    // A BOM, CRLF line ends, quoted commas and quotes, UTF-8 names, empty lines, a row with a
    // stray comma (line 5) and one without an email (line 6) in the middle.
    std::fs::write(
        &input,
        "\u{feff}email,name,plan\r\nana@example.com,\"López, Ana\",pro\r\n\r\n\"bo@example.com\",\"Bo \"\"B\"\" Ñandú\",free\r\nbad@example.com,Bad,row,extra\r\n,No email,pro\r\nzoë@example.com,Zoë,pro\r\n",
    )
    .unwrap();
    let out_file = data.join("out.csv");
    let out = sondeo(
        &data,
        &[
            "links",
            "--survey",
            "nps-q4",
            "--touchpoint",
            "newsletter",
            "--out",
            out_file.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("line 5: it has 4 fields; the header has 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 6: no respondent id in column 'email'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 recipients got links, 2 rows left out"),
        "{stderr}"
    );
    let rows = rows(&out_file);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let mut header = vec!["email", "name", "plan", "survey_url"];
    let scores: Vec<String> = (0..=10).map(|s| format!("score_{s}")).collect();
    header.extend(scores.iter().map(String::as_str));
    assert_eq!(rows[0], header);
    assert_eq!(
        rows[1..]
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str()))
            .collect::<Vec<_>>(),
        [
            ("ana@example.com", "López, Ana"),
            ("bo@example.com", "Bo \"B\" Ñandú"),
            ("zoë@example.com", "Zoë")
        ]
    );
    let stack = LocalStack::open(&data, None).await.unwrap();
    let now = sondeo_domain::time::now_ms() / 1000;
    for row in &rows[1..] {
        let (prefix, token) = row[3].split_once("/r/").unwrap();
        // Local links point at `sondeo serve`'s default address.
        assert_eq!(prefix, "http://127.0.0.1:8787");
        let claims = stack.keyring.verify(token, now).unwrap();
        assert_eq!(
            (
                claims.respondent.as_str(),
                claims.survey.as_str(),
                claims.touchpoint.as_str()
            ),
            (row[0].as_str(), "nps-q4", "newsletter")
        );
        assert!((claims.expires_at - now - 30 * 86_400).abs() < 60);
        for s in 0..=10 {
            assert_eq!(row[4 + s], format!("{}?score={s}", row[3]));
        }
    }
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn ten_thousand_recipients_in_token_format_from_standard_input() {
    let data = data_dir("many");
    create_survey(&data);
    let mut input = String::from("customer_id,first_name\n");
    for i in 0..10_000 {
        input.push_str(&format!("c{i},Name {i}\n"));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_sondeo"))
        .arg("--data-dir")
        .arg(&data)
        .args([
            "links",
            "--survey",
            "nps-q4",
            "--touchpoint",
            "newsletter",
            "--format",
            "token",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(input.as_bytes()).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("10000 recipients got links, 0 rows left out"),
        "{stderr}"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_001);
    assert_eq!(lines[0], "customer_id,first_name,token");
    assert!(
        lines[10_000].starts_with("c9999,Name 9999,"),
        "{}",
        lines[10_000]
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn an_unknown_survey_or_id_column_is_a_clear_error() {
    let data = data_dir("errors");
    create_survey(&data);
    let input = data.join("r.csv");
    std::fs::write(&input, "name,plan\nAna,pro\n").unwrap();
    let out = sondeo(
        &data,
        &[
            "links",
            "--survey",
            "nps-q4",
            "--touchpoint",
            "newsletter",
            input.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no column holds the respondent id") && stderr.contains("name, plan"),
        "{stderr}"
    );
    let out = sondeo(
        &data,
        &[
            "links",
            "--survey",
            "nope",
            "--touchpoint",
            "newsletter",
            input.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("nope"), "{stderr}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_suppressed_recipient_gets_no_links_until_removed() {
    let data = data_dir("suppress");
    create_survey(&data);
    let out = sondeo(&data, &["suppress", "add", "Ana@Example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = sondeo(&data, &["suppress", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("ana@example.com"));
    let input = data.join("r.csv");
    std::fs::write(&input, "email\nana@example.com\nbo@example.com\n").unwrap();
    let args = [
        "links",
        "--survey",
        "nps-q4",
        "--touchpoint",
        "newsletter",
        "--format",
        "token",
        input.to_str().unwrap(),
    ];
    let out = sondeo(&data, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2: unsubscribed"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("ana@example.com") && stdout.contains("bo@example.com"),
        "{stdout}"
    );
    let out = sondeo(&data, &["suppress", "remove", "ana@example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sondeo(&data, &args);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ana@example.com"));
    let out = sondeo(&data, &["suppress", "remove", "ana@example.com"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not on the suppression list"));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_quote_never_closed_a_repeated_recipient_and_old_link_columns_are_caught() {
    let data = data_dir("defects");
    create_survey(&data);
    let run = |input: &str, format: &str| {
        let path = data.join("r.csv");
        std::fs::write(&path, input).unwrap();
        let out = sondeo(
            &data,
            &[
                "links",
                "--survey",
                "nps-q4",
                "--touchpoint",
                "newsletter",
                "--format",
                format,
                path.to_str().unwrap(),
            ],
        );
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // c@x.com is not swallowed silently into b's name: b's row is left out and says so.
    let (ok, stdout, stderr) = run("email,name\na@x.com,A\nb@x.com,\"B\nc@x.com,C\n", "token");
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(
            "line 3: a quoted field opened on this line is never closed (missing \"); it \
             swallowed line 4"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 recipients got links, 1 rows left out"),
        "{stderr}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    // The same person twice (an email in another case) gets one set of links.
    let (ok, stdout, stderr) = run(
        "email,name\nana@example.com,Ana\nbo@example.com,Bo\nANA@example.com,Ana\n",
        "token",
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("line 4: ANA@example.com already appears on line 2"),
        "{stderr}"
    );
    assert_eq!(stdout.lines().count(), 3, "{stdout}");

    // A header naming a column twice is refused as a whole.
    let (ok, _, stderr) = run("email,email\na@x.com,b@x.com\n", "token");
    assert!(!ok);
    assert!(stderr.contains("'email' appears twice"), "{stderr}");

    // A previous output run again: its old link columns give way to the fresh ones.
    let (ok, stdout, stderr) = run("email,token\na@x.com,old-token\n", "token");
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().next(), Some("email,token"), "{stdout}");
    assert!(!stdout.contains("old-token"), "{stdout}");
    assert!(
        stderr.contains("input column token replaced by the fresh links"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run(
        "email,Score_0,survey_url,plan\na@x.com,old,old,pro\n",
        "urls",
    );
    assert!(ok, "{stderr}");
    let header = stdout.lines().next().unwrap();
    assert!(
        header.starts_with("email,plan,survey_url,score_0,")
            && header.matches("score_0").count() == 1,
        "{header}"
    );
    assert!(
        stderr.contains("input columns Score_0, survey_url replaced"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn output_cut_short_by_a_closed_pipe_ends_quietly() {
    let data = data_dir("pipe");
    create_survey(&data);
    let input = data.join("many.csv");
    let mut csv = String::from("email\n");
    for i in 0..3_000 {
        csv.push_str(&format!("p{i}@example.com\n"));
    }
    std::fs::write(&input, csv).unwrap();
    // `sondeo links … | head -1`: the reader goes away long before the megabytes of links do.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sondeo"))
        .arg("--data-dir")
        .arg(&data)
        .args(["links", "--survey", "nps-q4", "--touchpoint", "newsletter"])
        .arg(&input)
        .env_remove("SONDEO_API_URL")
        .env_remove("SONDEO_API_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    let _ = std::fs::remove_dir_all(&data);
}
