//! `POST /v1/links/bulk` through local mode over real HTTP: a call of the largest size streams
//! its answer in chunks (no `content-length`) with every row and its links, a suppressed
//! recipient keeps its row with the reason, and a file that cannot be used is refused before
//! anything is streamed, with a status and a reason.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sondeo_domain::ports::SuppressionList;
use sondeo_domain::response::Suppression;
use sondeo_http::admin::MAX_BULK_ROWS;
use sondeo_local::local::DEMO_SURVEY;
use sondeo_tests::local_http::boot;

#[tokio::test]
async fn the_largest_bulk_call_streams_every_row_and_a_bad_file_is_refused_up_front() {
    let dir = std::env::temp_dir().join(format!("sondeo-bulk-{:08x}", rand::random::<u32>()));
    let (stack, server, http) = boot(&dir).await;
    stack.ensure_demo_survey().await.unwrap();
    stack
        .store
        .suppress(&Suppression {
            respondent: "r77@example.com".into(),
            at: 0,
            via: "api".into(),
        })
        .await
        .unwrap();
    let key = format!("Bearer {}", stack.api_key);
    let path = format!("/v1/links/bulk?survey={DEMO_SURVEY}&touchpoint=post-purchase&send=2026-q4");
    let mut csv = String::from("\u{feff}email,name\n");
    for i in 0..MAX_BULK_ROWS {
        csv.push_str(&format!("R{i}@example.com,\"Name, {i}\"\n"));
    }

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(format!("{}{path}", http.base))
        .header("authorization", &key)
        .header("content-type", "text/csv")
        .body(Full::new(Bytes::from(csv.clone())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("content-length").is_none(),
        "a streamed answer has no length: {:?}",
        resp.headers()
    );
    assert_eq!(
        resp.headers()
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("chunked")
    );
    let mut body = resp.into_body();
    let mut frames = 0;
    let mut answer = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames += 1;
            answer.extend_from_slice(&data);
        }
    }
    assert!(frames > 10, "the answer came in {frames} chunks");

    let mut reader = csv::Reader::from_reader(&answer[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[..3], ["email", "name", "survey_url"]);
    assert_eq!(header.len(), 2 + 1 + 11 + 1, "{header:?}");
    assert_eq!(header.last().map(String::as_str), Some("sondeo_error"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len() as u64, MAX_BULK_ROWS);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], format!("R{i}@example.com"));
        assert_eq!(row[1], format!("Name, {i}"));
        if i == 77 {
            assert_eq!(&row[2], "", "a suppressed recipient gets no link");
            assert!(row[14].contains("unsubscribed"), "{row:?}");
        } else {
            assert_eq!(&row[14], "", "{row:?}");
            assert!(row[2].starts_with(&format!("{}/r/", http.base)), "{row:?}");
            assert_eq!(row[3], format!("{}?score=0", &row[2]));
        }
    }
    // The links carry the send.
    let token = rows[5][2].rsplit('/').next().unwrap();
    let (claims, scope) = stack
        .keyring
        .verify_scoped(token, sondeo_domain::time::now_ms() / 1000)
        .unwrap();
    // The person as every other list sees them: the address in its canonical (lower) case.
    assert_eq!(claims.respondent, "r5@example.com");
    assert_eq!(scope.send, "2026-q4");

    // Refused before anything is streamed: one row too many, no id column, not a CSV header.
    let mut too_many = csv.clone();
    too_many.push_str("one@more.example,x\n");
    let cases = [
        (too_many.as_str(), 413, "more than 10000"),
        (
            "name,city\nAna,Lima\n",
            422,
            "no column holds the respondent id",
        ),
        ("", 422, "empty"),
        (
            "email,name,Email\na@x.com,A,b@x.com\n",
            422,
            "'Email' appears twice",
        ),
    ];
    for (body, status, reason) in cases {
        let reply = http
            .send(
                "POST",
                &path,
                &[("authorization", &key), ("content-type", "text/csv")],
                body,
            )
            .await;
        assert_eq!(reply.status, status, "{}", reply.body);
        assert!(reply.body.contains(reason), "{}", reply.body);
    }

    // Kept in place with the reason: a recipient's second row and a row whose quote is never
    // closed; the old link columns of a previous answer give way to the fresh ones.
    let previous = "email,survey_url,sondeo_error,name\n\
                    a@x.com,old,,A\n\
                    A@X.com,old,,A again\n\
                    b@x.com,old,,\"B\n\
                    c@x.com,old,,C\n";
    let reply = http
        .send(
            "POST",
            &path,
            &[("authorization", &key), ("content-type", "text/csv")],
            previous,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut reader = csv::Reader::from_reader(reply.body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[..3], ["email", "name", "survey_url"]);
    assert_eq!(header.len(), 2 + 12 + 1, "{header:?}");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows[0][2].starts_with(&format!("{}/r/", http.base)),
        "{rows:?}"
    );
    assert_eq!(&rows[1][14], "A@X.com already appears on line 2");
    assert_eq!((&rows[2][0], &rows[2][1], &rows[2][2]), ("b@x.com", "", ""));
    assert!(
        rows[2][14].starts_with("a quoted field opened on this line is never closed")
            && rows[2][14].contains("swallowed line 5"),
        "{rows:?}"
    );

    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
