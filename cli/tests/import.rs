//! `sondeo import` through the real binary in local mode: each preset against an export shaped
//! like the real one, idempotent re-imports, overlapping files, dry runs and rejects; and
//! `POST /v1/imports` through the in-process API (limits, malformed batches, future times).

use http::{Method, StatusCode};
use sondeo_local::client::{ApiClient, ClientError};
use sondeo_local::local::LocalStack;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sondeo-cli-import-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
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

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn create_survey(data: &Path) {
    ok(&sondeo(
        data,
        &[
            "survey",
            "create",
            "--id",
            "nps",
            "--kind",
            "nps",
            "--question",
            "How likely?",
            "--touchpoint",
            "support",
            "--touchpoint",
            "onboarding",
        ],
    ));
}

/// The survey's whole-history metrics: (answers, NPS, answers per source).
async fn metrics(data: &Path) -> (i64, Option<f64>, serde_json::Value) {
    let client = ApiClient::Local(Arc::new(LocalStack::open(data, None).await.unwrap()));
    let m = client
        .call(
            Method::GET,
            "/v1/metrics?survey=nps&from=2023-01-01&to=2025-12-31&bucket=month",
            None,
        )
        .await
        .unwrap();
    let total = &m["overall"]["total"];
    (
        total["n"].as_i64().unwrap_or(0),
        total["nps"].as_f64(),
        total["sources"].clone(),
    )
}

fn rejects(path: &str) -> Vec<Vec<String>> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn the_delighted_csv_export_imports_with_its_original_times_and_bad_rows_go_to_rejects() {
    let data = data_dir("delighted");
    create_survey(&data);
    let rejects_file = data.join("rejects.csv").display().to_string();
    let out = ok(&sondeo(
        &data,
        &[
            "import",
            "--survey",
            "nps",
            "--touchpoint",
            "support",
            "--preset",
            "delighted",
            "--map",
            "properties=plan",
            "--rejects",
            &rejects_file,
            &fixture("delighted.csv"),
        ],
    ));
    assert!(out.contains("4 rows read, 3 imported, 1 refused"), "{out}");
    assert!(
        out.contains("support") && out.contains("3 imported"),
        "{out}"
    );
    let (n, nps, sources) = metrics(&data).await;
    assert_eq!(n, 3);
    // 9, 3, 10: two promoters, one detractor.
    assert_eq!(nps.map(f64::round), Some(33.0));
    assert_eq!(sources, serde_json::json!({"import": 3}));
    let bad = rejects(&rejects_file);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0][0], "4");
    assert_eq!(bad[0][1], "no score");
    assert!(bad[0][2].starts_with("90013,cy@example.com"), "{bad:?}");
}

#[tokio::test]
async fn delighted_api_pages_import_one_page_or_one_response_per_line() {
    let data = data_dir("delighted-json");
    create_survey(&data);
    let rejects_file = data.join("rejects.csv").display().to_string();
    let out = ok(&sondeo(
        &data,
        &[
            "import",
            "--survey",
            "nps",
            "--touchpoint",
            "onboarding",
            "--preset",
            "delighted-json",
            "--rejects",
            &rejects_file,
            &fixture("delighted.jsonl"),
        ],
    ));
    assert!(out.contains("4 rows read, 3 imported, 1 refused"), "{out}");
    let (n, _, sources) = metrics(&data).await;
    assert_eq!(n, 3);
    assert_eq!(sources, serde_json::json!({"import": 3}));
    let bad = rejects(&rejects_file);
    assert_eq!(bad[0][0], "3");
    assert!(
        bad[0][1].contains("0 to 10") || bad[0][1].contains("score"),
        "{bad:?}"
    );
}

#[tokio::test]
async fn the_formbricks_download_needs_the_score_question_and_reads_naive_times_in_the_zone() {
    let data = data_dir("formbricks");
    create_survey(&data);
    let file = fixture("formbricks.csv");
    // Without the question's column: a clear error, nothing imported.
    let out = sondeo(
        &data,
        &[
            "import",
            "--survey",
            "nps",
            "--touchpoint",
            "support",
            "--preset",
            "formbricks",
            "--tz",
            "Europe/Paris",
            &file,
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--map score=") && err.contains("formbricks preset"),
        "{err}"
    );
    // A mapped column the file does not have.
    let out = sondeo(
        &data,
        &[
            "import",
            "--survey",
            "nps",
            "--touchpoint",
            "support",
            "--preset",
            "formbricks",
            "--map",
            "score=NPS",
            &file,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("column 'NPS'"),
        "{err}"
    );
    // A run stopped by its mapping leaves no rejects file behind (here: next to the fixture).
    assert!(!Path::new(&format!("{file}.rejects.csv")).exists());
    let rejects_file = data.join("rejects.csv").display().to_string();
    let out = ok(&sondeo(
        &data,
        &[
            "import",
            "--survey",
            "nps",
            "--touchpoint",
            "support",
            "--preset",
            "formbricks",
            "--tz",
            "Europe/Paris",
            "--map",
            "score=How likely are you to recommend us to a friend or colleague?",
            "--map",
            "comment=What is the main reason for your score?",
            "--rejects",
            &rejects_file,
            &file,
        ],
    ));
    assert!(out.contains("3 rows read, 2 imported, 1 refused"), "{out}");
    assert_eq!(metrics(&data).await.0, 2);
    // The unfinished response (line 4) has no score.
    assert_eq!(rejects(&rejects_file)[0][0], "4");
}

#[tokio::test]
async fn the_typeform_export_reads_utc_submit_dates_and_a_hidden_email_field() {
    let data = data_dir("typeform");
    create_survey(&data);
    let rejects_file = data.join("rejects.csv").display().to_string();
    let out = ok(&sondeo(
        &data,
        &[
            "import",
            "--survey",
            "nps",
            "--touchpoint",
            "support",
            "--preset",
            "typeform",
            "--map",
            "score=How likely are you to recommend us to a friend or colleague?",
            "--map",
            "respondent=email",
            "--send-per",
            "quarter",
            "--rejects",
            &rejects_file,
            &fixture("typeform.csv"),
        ],
    ));
    assert!(out.contains("3 rows read, 2 imported, 1 refused"), "{out}");
    let (n, nps, sources) = metrics(&data).await;
    assert_eq!((n, nps.map(f64::round)), (2, Some(50.0)));
    assert_eq!(sources, serde_json::json!({"import": 2}));
    let bad = rejects(&rejects_file);
    assert_eq!(bad[0][0], "4");
}

fn write_rows(path: &Path, rows: &[(&str, &str, i64, &str)]) {
    let mut text = String::from("id,email,score,answered_at\n");
    for (id, email, score, at) in rows {
        text.push_str(&format!("{id},{email},{score},{at}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn import_plain(data: &Path, file: &Path, extra: &[&str]) -> String {
    let file = file.display().to_string();
    let mut args = vec![
        "import",
        "--survey",
        "nps",
        "--touchpoint",
        "support",
        "--map",
        "id=id",
        "--map",
        "respondent=email",
        "--map",
        "score=score",
        "--map",
        "answered-at=answered_at",
    ];
    args.extend_from_slice(extra);
    args.push(&file);
    ok(&sondeo(data, &args))
}

#[tokio::test]
async fn importing_the_same_file_twice_or_an_overlapping_file_counts_each_answer_once() {
    let data = data_dir("idempotent");
    create_survey(&data);
    let first = data.join("first.csv");
    write_rows(
        &first,
        &[
            ("1", "ana@example.com", 9, "2024-01-10T10:00:00Z"),
            ("2", "bo@example.com", 3, "2024-01-11T10:00:00Z"),
            ("3", "cy@example.com", 10, "1705000000"),
        ],
    );
    import_plain(&data, &first, &[]);
    let once = metrics(&data).await;
    assert_eq!(once.0, 3);
    // GIVEN the same file again WHEN imported THEN nothing changes
    import_plain(&data, &first, &[]);
    assert_eq!(metrics(&data).await, once);
    // GIVEN a file overlapping the first (rows 2 and 3) with two new rows
    let overlap = data.join("overlap.csv");
    write_rows(
        &overlap,
        &[
            ("2", "bo@example.com", 3, "2024-01-11T10:00:00Z"),
            ("3", "cy@example.com", 10, "1705000000"),
            ("4", "di@example.com", 8, "1705100000000"),
            ("5", "eve@example.com", 0, "2024-02-01T00:00:00+01:00"),
        ],
    );
    import_plain(&data, &overlap, &[]);
    // THEN only the new rows count
    let after = metrics(&data).await;
    assert_eq!(after.0, 5);
    assert_eq!(after.2, serde_json::json!({"import": 5}));
    // AND rows without ids (identity from the whole row) are idempotent too
    let no_ids = data.join("no-ids.csv");
    std::fs::write(
        &no_ids,
        "email,score,answered_at\nfay@example.com,7,2024-03-01T00:00:00Z\n",
    )
    .unwrap();
    let args = |f: &str| {
        vec![
            "import".to_string(),
            "--survey".into(),
            "nps".into(),
            "--touchpoint".into(),
            "onboarding".into(),
            "--map".into(),
            "respondent=email".into(),
            "--map".into(),
            "score=score".into(),
            "--map".into(),
            "answered-at=answered_at".into(),
            f.to_string(),
        ]
    };
    let f = no_ids.display().to_string();
    let a = args(&f);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    ok(&sondeo(&data, &a));
    ok(&sondeo(&data, &a));
    assert_eq!(metrics(&data).await.0, 6);
}

#[tokio::test]
async fn a_dry_run_counts_per_touchpoint_and_imports_nothing() {
    let data = data_dir("dry");
    create_survey(&data);
    let file = data.join("mixed.csv");
    std::fs::write(
        &file,
        "id,email,score,when,where\n1,ana@example.com,9,2024-01-10 10:00,support\n2,bo@example.com,4,2024-01-10 11:00,onboarding\n3,cy@example.com,5,2024-01-10 12:00,nowhere\n4,di@example.com,8,2999-01-01 00:00,support\n5,eve@example.com,6,2024-01-10 13:00,support\n",
    )
    .unwrap();
    let rejects_file = data.join("r.csv").display().to_string();
    let f = file.display().to_string();
    let out = ok(&sondeo(
        &data,
        &[
            "import",
            "--survey",
            "nps",
            "--map",
            "touchpoint=where",
            "--map",
            "score=score",
            "--map",
            "answered-at=when",
            "--map",
            "respondent=email",
            "--tz",
            "America/New_York",
            "--dry-run",
            "--rejects",
            &rejects_file,
            &f,
        ],
    ));
    assert!(
        out.contains("5 rows read, 3 would import, 2 refused"),
        "{out}"
    );
    assert!(
        out.contains("onboarding") && out.contains("support"),
        "{out}"
    );
    let support = out.lines().find(|l| l.contains("support")).unwrap();
    assert!(support.contains(" 2 would import"), "{out}");
    assert_eq!(metrics(&data).await.0, 0);
    let bad = rejects(&rejects_file);
    assert_eq!(bad.len(), 2);
    assert_eq!(bad[0][0], "4");
    assert!(bad[0][1].contains("touchpoint"), "{bad:?}");
    assert_eq!(bad[1][0], "5");
    assert!(bad[1][1].contains("future"), "{bad:?}");
}

#[tokio::test]
async fn the_import_route_limits_batches_and_refuses_rows_one_by_one() {
    let data = data_dir("route");
    create_survey(&data);
    let client = ApiClient::Local(Arc::new(LocalStack::open(&data, None).await.unwrap()));
    let row = |i: usize, at: i64| {
        serde_json::json!({"id": i.to_string(), "respondent": format!("r{i}"),
            "touchpoint": "support", "score": 9, "answered_at": at})
    };
    let past = 1_700_000_000_000i64;
    let status = |e: ClientError| match e {
        ClientError::Api { status, message } => (status, message),
        other => panic!("{other}"),
    };
    // More than 500 rows: 413.
    let rows: Vec<_> = (0..501).map(|i| row(i, past)).collect();
    let e = client
        .call(
            Method::POST,
            "/v1/imports",
            Some(serde_json::json!({"survey": "nps", "rows": rows})),
        )
        .await
        .unwrap_err();
    assert_eq!(status(e).0, StatusCode::PAYLOAD_TOO_LARGE);
    // A malformed batch: 400 with a message.
    let e = client
        .call(
            Method::POST,
            "/v1/imports",
            Some(serde_json::json!({"rows": []})),
        )
        .await
        .unwrap_err();
    assert_eq!(status(e).0, StatusCode::BAD_REQUEST);
    // An unknown survey: 404.
    let e = client
        .call(
            Method::POST,
            "/v1/imports",
            Some(serde_json::json!({"survey": "nope", "rows": []})),
        )
        .await
        .unwrap_err();
    assert_eq!(status(e).0, StatusCode::NOT_FOUND);
    // Good and bad rows together: the bad ones are refused with their index and reason.
    let future = sondeo_domain::time::now_ms() + 3_600_000;
    let rows = vec![
        row(0, past),
        row(1, future),
        serde_json::json!({"touchpoint": "support", "score": "nine", "answered_at": past}),
        serde_json::json!({"touchpoint": "elsewhere", "score": 9, "answered_at": past}),
        row(4, past),
    ];
    let out = client
        .call(
            Method::POST,
            "/v1/imports",
            Some(serde_json::json!({"survey": "nps", "rows": rows})),
        )
        .await
        .unwrap();
    assert_eq!(out["accepted"], 2, "{out}");
    let refused: Vec<(u64, String)> = out["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(refused.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(refused[0].1.contains("future"), "{refused:?}");
    assert!(refused[1].1.contains("malformed row"), "{refused:?}");
    assert!(refused[2].1.contains("elsewhere"), "{refused:?}");
}

#[tokio::test]
async fn a_mapping_file_maps_json_lines_and_flags_override_it() {
    let data = data_dir("mapping-file");
    create_survey(&data);
    let mapping = data.join("mapping.txt");
    std::fs::write(
        &mapping,
        "# our old tool's export\nid = uuid\nrespondent = customer.email\nscore = nps\nanswered-at = at\ntouchpoint = channel\nproperties = plan\n",
    )
    .unwrap();
    let file = data.join("export.ndjson");
    std::fs::write(
        &file,
        concat!(
            r#"{"uuid":"a1","customer":{"email":"ana@example.com"},"nps":9,"at":"2024-03-10T01:30:00","channel":"support","plan":"pro"}"#,
            "\n",
            r#"{"uuid":"a2","customer":{"email":"bo@example.com"},"nps":2,"at":"2024-03-10T02:30:00","channel":"onboarding"}"#,
            "\n",
            "not json\n",
        ),
    )
    .unwrap();
    let rejects_file = data.join("r.csv").display().to_string();
    let m = mapping.display().to_string();
    let f = file.display().to_string();
    let out = ok(&sondeo(
        &data,
        &[
            "import",
            "--survey",
            "nps",
            "--mapping",
            &m,
            "--map",
            "score=nps",
            "--tz",
            "America/New_York",
            "--rejects",
            &rejects_file,
            &f,
        ],
    ));
    assert!(out.contains("3 rows read, 2 imported, 1 refused"), "{out}");
    let bad = rejects(&rejects_file);
    assert_eq!(bad[0][0], "3");
    assert!(bad[0][1].contains("unreadable JSON"), "{bad:?}");
    assert_eq!(metrics(&data).await.0, 2);
    // A flag naming an unknown field stops the run before anything is read.
    let out = sondeo(
        &data,
        &[
            "import",
            "--survey",
            "nps",
            "--mapping",
            &m,
            "--map",
            "mood=x",
            &f,
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'mood' is not a field"));
}
