//! Building responses: the body type every handler returns and the few shapes they share.

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

pub fn page(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(full(body))
        .expect("valid response")
}

pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    page(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}

/// A redirect for this moment only (302, never cached) to `location`.
pub fn redirect_now(location: &str) -> Response<Body> {
    let mut r = redirect(location);
    if r.status() == StatusCode::PERMANENT_REDIRECT {
        *r.status_mut() = StatusCode::FOUND;
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A permanent redirect (308 keeps the method) to `location`.
pub fn redirect(location: &str) -> Response<Body> {
    let mut r = plain(StatusCode::PERMANENT_REDIRECT, "");
    match HeaderValue::from_str(location) {
        Ok(v) => drop(r.headers_mut().insert(header::LOCATION, v)),
        Err(_) => *r.status_mut() = StatusCode::BAD_REQUEST,
    }
    r
}

/// A body that sends what `stream` yields, as it yields it (the dashboard's events). The stream
/// runs in a task of its own; it ends when the client goes away.
pub fn streamed(mut stream: futures_util::stream::BoxStream<'static, Bytes>) -> Body {
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    Streamed(rx).boxed()
}

struct Streamed(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}
