//! A local-mode server on an ephemeral port and a plain HTTP client for it, as the end-to-end
//! tests use them.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use sondeo_local::local::LocalStack;
use sondeo_local::server::{start, RunningServer};
use std::path::Path;
use std::sync::Arc;

/// What the server answered.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body, as text.
    pub body: String,
}

/// A client bound to one local server's base URL.
pub struct LocalHttp {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl LocalHttp {
    /// Sends one request to `path` and reads the whole answer.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .client
            .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
            .expect("server answers");
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            retry_after,
            body: String::from_utf8_lossy(&bytes).to_string(),
        }
    }

    /// [`LocalHttp::send`], keeping only the status and the body.
    pub async fn status_and_body(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        let reply = self.send(method, path, headers, body).await;
        (reply.status, reply.body)
    }
}

/// Opens (or reopens) the local stack in `dir` and serves it on an ephemeral loopback port.
pub async fn boot(dir: &Path) -> (Arc<LocalStack>, RunningServer, LocalHttp) {
    let stack = Arc::new(LocalStack::open(dir, None).await.unwrap());
    let server = start(stack.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = LocalHttp {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{}", server.addr),
    };
    (stack, server, http)
}
