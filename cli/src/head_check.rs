//! Request heads checked before hyper reads them, so that a request the HTTP parser refuses (a
//! URL too long, too many headers, bytes a URL cannot hold) gets a one-line reason instead of
//! hyper's empty 400, 414 or 431.
//!
//! Each connection is read through [`CheckedIo`]: it hands hyper a request head only once the
//! whole head is read and found acceptable, then lets the body through (by `Content-Length`).
//! A head it refuses is replaced by a short synthetic request that [`refusal`] recognises by a
//! per-process nonce and answers with the reason; hyper answers it in order, after any earlier
//! request on the connection, and then closes the connection as it would have.
//!
//! Limits: a chunked request (`Transfer-Encoding`) is checked, but what follows it on the same
//! connection goes to hyper unchecked (and gets hyper's own empty answer if refused).

use axum::serve::Listener;
use http::StatusCode;
use sondeo_http::HttpError;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request target (path and query) accepted, in bytes.
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// Longest request head (request line and headers) accepted, in bytes; below hyper's own limit.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers accepted in one request: hyper's own limit.
pub const MAX_HEADERS: usize = 100;

/// The header of a synthetic request standing for a refused one: `<nonce> <refusal>`.
const REFUSAL_HEADER: &str = "x-sondeo-refused";
/// The path of a synthetic request standing for a refused one.
const REFUSAL_PATH: &str = "/.sondeo/refused";

/// Why a request head is refused, as the synthetic request carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request target is longer than [`MAX_URL_BYTES`].
    UrlTooLong,
    /// The request carries more than [`MAX_HEADERS`] headers.
    TooManyHeaders,
    /// The head is longer than [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// The request target holds bytes a URL cannot hold.
    InvalidUrl,
    /// The method or a header name holds a byte a token cannot hold.
    InvalidToken,
    /// A header value holds a control byte.
    InvalidHeaderValue,
    /// The request line is not `METHOD target HTTP/1.x`.
    MalformedRequestLine,
    /// `Content-Length` is not one number.
    InvalidContentLength,
}

impl Refusal {
    const ALL: [Refusal; 8] = [
        Refusal::UrlTooLong,
        Refusal::TooManyHeaders,
        Refusal::HeadTooLarge,
        Refusal::InvalidUrl,
        Refusal::InvalidToken,
        Refusal::InvalidHeaderValue,
        Refusal::MalformedRequestLine,
        Refusal::InvalidContentLength,
    ];

    /// Stable code, as in the JSON error body.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::UrlTooLong => "url_too_long",
            Refusal::TooManyHeaders => "too_many_headers",
            Refusal::HeadTooLarge => "headers_too_large",
            Refusal::InvalidUrl => "invalid_url",
            Refusal::InvalidToken => "invalid_token",
            Refusal::InvalidHeaderValue => "invalid_header_value",
            Refusal::MalformedRequestLine => "malformed_request_line",
            Refusal::InvalidContentLength => "invalid_content_length",
        }
    }

    /// The answer: status, code and a one-line reason.
    pub fn error(self) -> HttpError {
        let (status, message) = match self {
            Refusal::UrlTooLong => (
                StatusCode::URI_TOO_LONG,
                format!("request line too long: the URL is over {MAX_URL_BYTES} bytes"),
            ),
            Refusal::TooManyHeaders => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("too many headers: the limit is {MAX_HEADERS}"),
            ),
            Refusal::HeadTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request headers too large: the limit is {MAX_HEAD_BYTES} bytes"),
            ),
            Refusal::InvalidUrl => (
                StatusCode::BAD_REQUEST,
                "invalid URL: the path or query holds bytes a URL cannot hold (percent-encode them)"
                    .to_string(),
            ),
            Refusal::InvalidToken => (
                StatusCode::BAD_REQUEST,
                "invalid request: the method or a header name holds a character it cannot hold"
                    .to_string(),
            ),
            Refusal::InvalidHeaderValue => (
                StatusCode::BAD_REQUEST,
                "invalid request: a header value holds a control character".to_string(),
            ),
            Refusal::MalformedRequestLine => (
                StatusCode::BAD_REQUEST,
                "malformed request line: expected 'METHOD /path HTTP/1.1'".to_string(),
            ),
            Refusal::InvalidContentLength => (
                StatusCode::BAD_REQUEST,
                "invalid Content-Length: it must be one whole number".to_string(),
            ),
        };
        HttpError::new(status, self.code(), message)
    }
}

/// What the bytes read so far say about the next request head.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// More bytes are needed.
    Partial,
    /// An acceptable head of `len` bytes, followed by a body of `body` bytes (`None`: chunked or
    /// otherwise framed; hyper reads the rest of the connection unchecked).
    Complete { len: usize, body: Option<u64> },
    /// A head to refuse.
    Refused(Refusal),
}

/// Checks the request head at the start of `bytes` as hyper would parse it, within our limits.
fn check_head(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(bytes);
    // The request target can be judged before the head is complete.
    let line_end = bytes.windows(2).position(|w| w == b"\r\n");
    if let Some(path) = req.path {
        if path.len() > MAX_URL_BYTES {
            return Head::Refused(Refusal::UrlTooLong);
        }
    } else if line_end.is_none() && bytes.len() > MAX_URL_BYTES + 64 {
        return Head::Refused(Refusal::UrlTooLong);
    }
    let len = match parsed {
        Ok(httparse::Status::Partial) if bytes.len() > MAX_HEAD_BYTES => {
            return Head::Refused(Refusal::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Head::Partial,
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => {
            return Head::Refused(Refusal::HeadTooLarge)
        }
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => return Head::Refused(Refusal::TooManyHeaders),
        Err(httparse::Error::Token | httparse::Error::HeaderName) => {
            // A bad byte in the request target shows up as a token error too.
            return Head::Refused(if req.method.is_some() && req.path.is_none() {
                Refusal::InvalidUrl
            } else {
                Refusal::InvalidToken
            });
        }
        Err(httparse::Error::HeaderValue) => return Head::Refused(Refusal::InvalidHeaderValue),
        Err(_) => return Head::Refused(Refusal::MalformedRequestLine),
    };
    if req
        .path
        .is_none_or(|p| http::Uri::try_from(p.as_bytes()).is_err())
    {
        return Head::Refused(Refusal::InvalidUrl);
    }
    let mut length: Option<u64> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Head::Complete { len, body: None };
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            // As hyper: repeated values (in one header or several) must all be the same number.
            let Ok(text) = std::str::from_utf8(h.value) else {
                return Head::Refused(Refusal::InvalidContentLength);
            };
            for v in text.split(',').map(str::trim) {
                let n = Some(v)
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok());
                match (n, length) {
                    (Some(n), None) => length = Some(n),
                    (Some(n), Some(seen)) if n == seen => {}
                    _ => return Head::Refused(Refusal::InvalidContentLength),
                }
            }
        }
    }
    Head::Complete {
        len,
        body: Some(length.unwrap_or(0)),
    }
}

/// Where a connection's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Waiting for a whole request head.
    Head,
    /// Passing this many more body bytes.
    Body(u64),
    /// Passing everything (after a chunked request).
    Unchecked,
    /// A refusal was handed over: nothing more is read.
    Refused,
}

/// A connection whose request heads are checked before hyper reads them.
pub struct CheckedIo<T> {
    inner: T,
    nonce: Arc<str>,
    reading: Reading,
    /// Bytes read from the connection and not yet checked or handed over.
    inbound: Vec<u8>,
    /// Bytes cleared for hyper, from `handed` on.
    cleared: Vec<u8>,
    handed: usize,
    eof: bool,
}

impl<T> CheckedIo<T> {
    /// Wraps a connection; refusals carry `nonce`.
    pub fn new(inner: T, nonce: Arc<str>) -> CheckedIo<T> {
        CheckedIo {
            inner,
            nonce,
            reading: Reading::Head,
            inbound: Vec::new(),
            cleared: Vec::new(),
            handed: 0,
            eof: false,
        }
    }

    /// Moves the first `n` inbound bytes to the cleared bytes.
    fn clear(&mut self, n: usize) {
        if self.handed == self.cleared.len() {
            self.cleared.clear();
            self.handed = 0;
        }
        self.cleared.extend(self.inbound.drain(..n));
    }

    /// Checks and clears what the inbound bytes allow; false when more bytes are needed.
    fn advance(&mut self) -> bool {
        match self.reading {
            Reading::Refused => true,
            _ if self.inbound.is_empty() => false,
            Reading::Unchecked => {
                self.clear(self.inbound.len());
                true
            }
            Reading::Body(left) => {
                let n = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(self.inbound.len());
                self.clear(n);
                let left = left - n as u64;
                self.reading = if left == 0 {
                    Reading::Head
                } else {
                    Reading::Body(left)
                };
                true
            }
            Reading::Head => match check_head(&self.inbound) {
                Head::Partial if self.eof => {
                    // An unfinished head at the end of the connection: hyper deals with it.
                    self.reading = Reading::Unchecked;
                    true
                }
                Head::Partial => false,
                Head::Complete { len, body } => {
                    self.clear(len);
                    self.reading = match body {
                        Some(0) => Reading::Head,
                        Some(n) => Reading::Body(n),
                        None => Reading::Unchecked,
                    };
                    true
                }
                Head::Refused(why) => {
                    tracing::info!(code = why.code(), "request refused before parsing");
                    self.inbound = format!(
                        "GET {REFUSAL_PATH} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{REFUSAL_HEADER}: {} {}\r\n\r\n",
                        self.nonce,
                        why.code()
                    )
                    .into_bytes();
                    self.clear(self.inbound.len());
                    self.reading = Reading::Refused;
                    true
                }
            },
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CheckedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.handed < this.cleared.len() {
                let n = (this.cleared.len() - this.handed).min(buf.remaining());
                buf.put_slice(&this.cleared[this.handed..this.handed + n]);
                this.handed += n;
                return Poll::Ready(Ok(()));
            }
            if this.advance() {
                if this.reading == Reading::Refused && this.handed == this.cleared.len() {
                    // The refusal was handed over; nothing more is read. Not an end of file:
                    // hyper would drop the connection without answering. It answers the
                    // refusal (in order) and closes the connection, as the refusal asks.
                    return Poll::Pending;
                }
                continue;
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
            } else {
                this.inbound.extend_from_slice(read.filled());
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CheckedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A listener whose connections check request heads (see [`CheckedIo`]).
pub struct CheckedListener<L> {
    inner: L,
    nonce: Arc<str>,
}

impl<L> CheckedListener<L> {
    /// Wraps a listener; its refusals carry `nonce`.
    pub fn new(inner: L, nonce: Arc<str>) -> CheckedListener<L> {
        CheckedListener { inner, nonce }
    }
}

impl<L: Listener> Listener for CheckedListener<L> {
    type Io = CheckedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        (CheckedIo::new(io, self.nonce.clone()), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The refusal a synthetic request stands for, if it is one carrying this process's `nonce`.
pub fn refusal<B>(req: &http::Request<B>, nonce: &str) -> Option<Refusal> {
    if req.uri().path() != REFUSAL_PATH {
        return None;
    }
    let value = req.headers().get(REFUSAL_HEADER)?.to_str().ok()?;
    let (given, code) = value.split_once(' ')?;
    if given != nonce {
        return None;
    }
    Refusal::ALL.into_iter().find(|r| r.code() == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptable_heads_are_complete_with_their_body_length() {
        let get = b"GET /r/a.b?score=9 HTTP/1.1\r\nhost: x\r\n\r\nGET /next";
        assert_eq!(
            check_head(get),
            Head::Complete {
                len: get.len() - 9,
                body: Some(0)
            }
        );
        let post =
            b"POST /v1/responses HTTP/1.1\r\ncontent-length: 12\r\nContent-Length: 12, 12\r\n\r\n";
        assert!(matches!(
            check_head(post),
            Head::Complete { body: Some(12), .. }
        ));
        let chunked = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(matches!(
            check_head(chunked),
            Head::Complete { body: None, .. }
        ));
        assert_eq!(check_head(b"GET /r/a.b HTTP/1.1\r\nhost:"), Head::Partial);
    }

    #[test]
    fn heads_the_parser_would_refuse_are_refused_with_their_reason() {
        let long_url = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URL_BYTES));
        assert_eq!(
            check_head(long_url.as_bytes()),
            Head::Refused(Refusal::UrlTooLong)
        );
        // Judged before the request line even ends.
        let unfinished = format!("GET /{}", "a".repeat(MAX_URL_BYTES + 100));
        assert_eq!(
            check_head(unfinished.as_bytes()),
            Head::Refused(Refusal::UrlTooLong)
        );
        let many: String = (0..=MAX_HEADERS)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect();
        assert_eq!(
            check_head(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Head::Refused(Refusal::TooManyHeaders)
        );
        let big = format!("GET / HTTP/1.1\r\nx-big: {}", "v".repeat(MAX_HEAD_BYTES));
        assert_eq!(
            check_head(big.as_bytes()),
            Head::Refused(Refusal::HeadTooLarge)
        );
        for bad_url in [
            &b"GET /a\x7fb HTTP/1.1\r\n\r\n"[..],
            b"GET /a\x01b HTTP/1.1\r\n\r\n",
            b"GET /a<c> HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                check_head(bad_url),
                Head::Refused(Refusal::InvalidUrl),
                "{}",
                String::from_utf8_lossy(bad_url)
            );
        }
        assert_eq!(
            check_head(b"GET / HTTP/1.1\r\nbad name: v\r\n\r\n"),
            Head::Refused(Refusal::InvalidToken)
        );
        assert_eq!(
            check_head(b"GET / HTTP/1.1\r\nx: a\x01b\r\n\r\n"),
            Head::Refused(Refusal::InvalidHeaderValue)
        );
        assert_eq!(
            check_head(b"GET / HTTP/9.9\r\n\r\n"),
            Head::Refused(Refusal::MalformedRequestLine)
        );
        for length in ["-1", "1, 2", "", "x"] {
            let req = format!("POST / HTTP/1.1\r\ncontent-length: {length}\r\n\r\n");
            assert_eq!(
                check_head(req.as_bytes()),
                Head::Refused(Refusal::InvalidContentLength),
                "{length}"
            );
        }
        let twice = b"POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(
            check_head(twice),
            Head::Refused(Refusal::InvalidContentLength)
        );
    }

    #[test]
    fn a_synthetic_refusal_is_recognised_only_with_this_process_nonce() {
        let req = |value: &str| {
            http::Request::builder()
                .uri(REFUSAL_PATH)
                .header(REFUSAL_HEADER, value)
                .body(())
                .unwrap()
        };
        assert_eq!(
            refusal(&req("n0nce url_too_long"), "n0nce"),
            Some(Refusal::UrlTooLong)
        );
        assert_eq!(refusal(&req("guess url_too_long"), "n0nce"), None);
        assert_eq!(refusal(&req("n0nce nonsense"), "n0nce"), None);
        for r in Refusal::ALL {
            assert_eq!(refusal(&req(&format!("k {}", r.code())), "k"), Some(r));
            assert!(!r.error().message.is_empty());
        }
    }
}
