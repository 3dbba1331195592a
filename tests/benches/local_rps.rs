//! Local mode throughput on the click routes, as a ratio to a bare hyper "hello" server measured
//! in the same run, same process, same client. Bounded: a fixed number of requests per target on
//! 127.0.0.1 only. After the load, checks that every accepted click was counted.
//!
//! Run: `cargo bench -p sondeo-tests --bench local_rps` (env REQUESTS, CONCURRENCY to change the load)

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sondeo_domain::token::LinkClaims;
use sondeo_local::local::{LocalStack, DEMO_SURVEY};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn hello_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"hello"),
                    )))
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

struct Load {
    rps: f64,
    ok: usize,
    errors: usize,
}

/// Sends `requests` requests over `concurrency` keep-alive connections; `make(i)` builds request i.
async fn load<F>(requests: usize, concurrency: usize, make: F) -> Load
where
    F: Fn(usize) -> http::Request<Full<Bytes>> + Send + Sync + 'static,
{
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http();
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, make, next, ok, errors) = (
            client.clone(),
            make.clone(),
            next.clone(),
            ok.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return;
                }
                match client.request(make(i)).await {
                    Ok(resp) => {
                        let good = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        if good {
                            ok.fetch_add(1, Ordering::Relaxed)
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed)
                        };
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    Load {
        rps: requests as f64 / secs,
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let requests = env_usize("REQUESTS", 20_000);
    let concurrency = env_usize("CONCURRENCY", 32);
    let dir = std::env::temp_dir().join(format!("sondeo-rps-{:08x}", rand::random::<u32>()));
    let stack = Arc::new(LocalStack::open(&dir, None).await.unwrap());
    stack.ensure_demo_survey().await.unwrap();
    let server = sondeo_local::server::start(stack.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let hello = hello_server().await;
    let now = sondeo_domain::time::now_ms() / 1000;
    // One token per respondent, so every accepted click is a distinct response to count.
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..requests)
            .map(|i| {
                stack
                    .keyring
                    .sign(&LinkClaims {
                        survey: DEMO_SURVEY.into(),
                        touchpoint: "post-purchase".into(),
                        respondent: format!("r{i}@example.com"),
                        issued_at: now,
                        expires_at: now + 3600,
                    })
                    .unwrap()
            })
            .collect(),
    );
    let base = format!("http://{}", server.addr);
    let hello_uri = format!("http://{hello}/");

    // Warm up both servers.
    let h = hello_uri.clone();
    load(2_000, concurrency, move |_| {
        http::Request::get(h.as_str())
            .body(Full::default())
            .unwrap()
    })
    .await;

    let h = hello_uri.clone();
    let baseline = load(requests, concurrency, move |_| {
        http::Request::get(h.as_str())
            .body(Full::default())
            .unwrap()
    })
    .await;

    let (b, t) = (base.clone(), tokens.clone());
    let page = load(requests, concurrency, move |i| {
        http::Request::get(format!("{b}/r/{}?score=9", t[i]))
            .body(Full::default())
            .unwrap()
    })
    .await;

    let (b, t) = (base.clone(), tokens.clone());
    let clicks = load(requests, concurrency, move |i| {
        http::Request::post(format!("{b}/r/{}", t[i]))
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(b"score=9")))
            .unwrap()
    })
    .await;

    // Every accepted click must be counted once the local queue drains.
    let deadline = Instant::now() + Duration::from_secs(120);
    let counted = loop {
        use sondeo_domain::ports::CounterReader;
        let today = sondeo_domain::time::Day::from_unix_ms(sondeo_domain::time::now_ms());
        let rows = stack
            .store
            .read_counters(DEMO_SURVEY, today.plus(-1), today)
            .await
            .unwrap();
        let n: i64 = rows.iter().map(|r| r.histogram.n).sum();
        if n as usize >= clicks.ok || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!("local mode throughput, {requests} requests per target, {concurrency} connections, 127.0.0.1");
    println!(
        "{:<36} {:>10} {:>8} {:>8} {:>8}",
        "target", "req/s", "ratio", "ok", "errors"
    );
    for (name, l) in [
        ("bare hyper hello (baseline)", &baseline),
        ("GET /r/{token}?score=9 (page)", &page),
        ("POST /r/{token} (the click's answer)", &clicks),
    ] {
        println!(
            "{name:<36} {:>10.0} {:>8.2} {:>8} {:>8}",
            l.rps,
            l.rps / baseline.rps,
            l.ok,
            l.errors
        );
    }
    println!(
        "accepted clicks: {}, counted: {counted} ({})",
        clicks.ok,
        if counted as usize == clicks.ok {
            "all counted"
        } else {
            "MISMATCH"
        }
    );
    if counted as usize != clicks.ok || clicks.errors > 0 || page.errors > 0 {
        std::process::exit(1);
    }
}
