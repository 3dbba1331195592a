//! A local Lambda Runtime API (version 2018-06-01) that hands one event at a time to a function
//! process started with `AWS_LAMBDA_RUNTIME_API` pointing at it, and records what the process
//! reports for that event: its response, an invocation error or an init error.
//!
//! Used by the cold-start bench (which also measures init and the first invocation) and by the
//! arm64 smoke test (which starts each arm64 bootstrap under qemu-user).
//!
//! ```no_run
//! # async fn demo() {
//! use sondeo_tests::runtime_api::{Outcome, RuntimeApi};
//! use std::time::Duration;
//! let api = RuntimeApi::start().await;
//! let armed = api.arm(r#"{"Records":[]}"#);
//! // ... spawn the bootstrap with AWS_LAMBDA_RUNTIME_API = api.addr().to_string() ...
//! let invocation = api.wait(armed, Duration::from_secs(30)).await.expect("an answer");
//! assert!(matches!(invocation.outcome, Outcome::Response(_)));
//! api.release(); // then stop the process
//! # }
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// The function ARN handed out with each event.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:sondeo-local";

/// What the function reported for the armed event.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `POST /runtime/invocation/{id}/response`: the handler's answer.
    Response(Bytes),
    /// `POST /runtime/invocation/{id}/error`: the handler failed.
    InvocationError(Bytes),
    /// `POST /runtime/init/error`: the process failed before asking for an event.
    InitError(Bytes),
}

/// One finished invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The request id the function answered under (from the response path; empty for an init error).
    pub request_id: String,
    /// When the process first asked for an event (`GET /runtime/invocation/next`): the end of init.
    pub first_next: Option<Instant>,
    /// When the outcome arrived.
    pub finished: Instant,
    /// CPU time of the watched process (see [`RuntimeApi::watch_process`]) at its first `/next`.
    pub init_cpu: Option<Duration>,
    pub outcome: Outcome,
}

/// An event waiting for a process to ask for it.
pub struct Armed {
    /// The request id the event is handed out under.
    pub request_id: String,
    done: oneshot::Receiver<()>,
}

/// Why [`RuntimeApi::wait`] returned no invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAnswer {
    /// Whether the process asked for the event at all.
    pub saw_next: bool,
}

/// The invocation in flight: one process talks to the emulator at a time.
#[derive(Default)]
struct Current {
    /// The process whose CPU time is read at its first /next.
    pid: Option<u32>,
    init_cpu: Option<Duration>,
    request_id: String,
    event: Option<Bytes>,
    first_next: Option<Instant>,
    finished: Option<Instant>,
    answered_id: String,
    outcome: Option<Outcome>,
    done: Option<oneshot::Sender<()>>,
}

/// The emulator: an HTTP/1 server on 127.0.0.1 (a random port) for the process's lifetime.
pub struct RuntimeApi {
    addr: SocketAddr,
    current: Arc<Mutex<Current>>,
    /// Bumped by [`RuntimeApi::release`], answering `/next` polls parked after the event.
    generation: watch::Sender<u64>,
}

impl RuntimeApi {
    /// Starts listening; the server task runs on the current tokio runtime.
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Runtime API emulator");
        let addr = listener.local_addr().expect("emulator address");
        let current = Arc::new(Mutex::new(Current::default()));
        let (generation, _) = watch::channel(0u64);
        let state = (current.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (current, generation) = state.clone();
                        async move { serve(req, current, generation).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi {
            addr,
            current,
            generation,
        }
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `event` the answer to the next `GET /runtime/invocation/next`, under a fresh request
    /// id; forgets any earlier event and outcome.
    pub fn arm(&self, event: impl Into<Bytes>) -> Armed {
        let (done_tx, done) = oneshot::channel();
        let request_id = format!("{:032x}", rand::random::<u128>());
        *self.current.lock().expect("emulator state") = Current {
            request_id: request_id.clone(),
            event: Some(event.into()),
            done: Some(done_tx),
            ..Current::default()
        };
        Armed { request_id, done }
    }

    /// Reads this process's CPU time when its first `/next` arrives (it is then blocked on that
    /// request, so the figure is exactly its init's). Linux only; `None` elsewhere.
    pub fn watch_process(&self, pid: Option<u32>) {
        self.current.lock().expect("emulator state").pid = pid;
    }

    /// Waits up to `timeout` for the outcome of the armed event.
    pub async fn wait(&self, armed: Armed, timeout: Duration) -> Result<Invocation, NoAnswer> {
        let answered = tokio::time::timeout(timeout, armed.done).await;
        let mut cur = self.current.lock().expect("emulator state");
        match (answered, cur.outcome.take(), cur.finished) {
            (Ok(Ok(())), Some(outcome), Some(finished)) => Ok(Invocation {
                request_id: std::mem::take(&mut cur.answered_id),
                first_next: cur.first_next,
                finished,
                init_cpu: cur.init_cpu,
                outcome,
            }),
            _ => Err(NoAnswer {
                saw_next: cur.first_next.is_some(),
            }),
        }
    }

    /// Answers the `/next` polls parked since the event was handed out (with 410 Gone, as if
    /// the run were over); call it before stopping the process.
    pub fn release(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// CPU time used so far by every thread of a live process, from /proc (Linux).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Some(Duration::from_nanos(nanos))
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// The Runtime API: next, response, error and init error.
async fn serve(
    req: Request<Incoming>,
    current: Arc<Mutex<Current>>,
    generation: watch::Sender<u64>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let arrived = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    if method == Method::GET && rest == "invocation/next" {
        let mut parked = generation.subscribe();
        let handed = {
            let mut cur = current.lock().expect("emulator state");
            if cur.first_next.is_none() {
                cur.first_next = Some(arrived);
                cur.init_cpu = cur.pid.and_then(cpu_time);
            }
            cur.event.take().map(|e| (e, cur.request_id.clone()))
        };
        return Ok(match handed {
            Some((event, request_id)) => {
                let deadline = now_ms() + 30_000;
                let mut r = reply(StatusCode::OK, event);
                let h = r.headers_mut();
                let mut set = |k: &'static str, v: String| {
                    if let Ok(v) = v.parse() {
                        h.insert(k, v);
                    }
                };
                set("lambda-runtime-aws-request-id", request_id);
                set("lambda-runtime-deadline-ms", deadline.to_string());
                set("lambda-runtime-invoked-function-arn", FUNCTION_ARN.into());
                set(
                    "lambda-runtime-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
                        .into(),
                );
                set("content-type", "application/json".into());
                r
            }
            None => {
                // No second event: park the poll until the run is over, as Lambda would
                // freeze the process.
                let _ = parked.changed().await;
                reply(StatusCode::GONE, "run over")
            }
        });
    }
    if method != Method::POST {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET next or POST",
        ));
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (request_id, outcome) = if rest == "init/error" {
        (String::new(), Outcome::InitError(body))
    } else if let Some(tail) = rest.strip_prefix("invocation/") {
        match tail.rsplit_once('/') {
            Some((id, "response")) => (id.to_string(), Outcome::Response(body)),
            Some((id, "error")) => (id.to_string(), Outcome::InvocationError(body)),
            _ => return Ok(reply(StatusCode::NOT_FOUND, "unknown invocation path")),
        }
    } else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    let mut cur = current.lock().expect("emulator state");
    if cur.outcome.is_none() {
        cur.finished = Some(arrived);
        cur.answered_id = request_id;
        cur.outcome = Some(outcome);
        if let Some(done) = cur.done.take() {
            let _ = done.send(());
        }
    }
    Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
}
