//! The `sondeo` binary refuses to send its API key over plain HTTP, except to this machine.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

fn sondeo(api: &str) -> Output {
    let data = std::env::temp_dir().join(format!("sondeo-cli-url-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_sondeo"))
        .args(["--data-dir"])
        .arg(&data)
        .args(["--api", api, "--api-key", "sk_secret", "survey", "list"])
        .env_remove("SONDEO_API_URL")
        .env_remove("SONDEO_API_KEY")
        .output()
        .expect("sondeo runs")
}

#[test]
fn plain_http_to_another_host_is_refused_with_a_clear_error() {
    let out = sondeo("http://example.com");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to send the API key over plain HTTP to 'example.com'")
            && stderr.contains("https://"),
        "{stderr}"
    );
}

#[test]
fn plain_http_to_loopback_is_allowed_and_carries_the_key() {
    // GIVEN a stand-in API on 127.0.0.1 that answers one request with an empty survey list
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let api = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        let body = br#"{"surveys":[]}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(reply.as_bytes()).unwrap();
        conn.write_all(body).unwrap();
        String::from_utf8_lossy(&head).to_lowercase()
    });
    // WHEN sondeo lists surveys against it over plain HTTP
    let out = sondeo(&format!("http://127.0.0.1:{port}"));
    // THEN the call goes through, with the key
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = api.join().unwrap();
    assert!(head.starts_with("get /v1/surveys "), "{head}");
    assert!(head.contains("authorization: bearer sk_secret"), "{head}");
}
