//! The agent's HTTP endpoint (`--metrics ADDR`, loopback only), served with hyper:
//!
//! - `GET /metrics`: the engine's metrics, as OpenMetrics text
//!   (`application/openmetrics-text; version=1.0.0; charset=utf-8`) when `Accept` prefers it,
//!   as Prometheus does, else in the Prometheus text format
//!   (`text/plain; version=0.0.4; charset=utf-8`), which is also the answer without `Accept`;
//!   see [`podport_engine::exposition`];
//! - `GET /healthz`: 200 while the engine runs, else 503;
//! - `GET /readyz`: 200 when the engine runs and its OVSDB and switch connections are up,
//!   else 503 with one line saying why;
//! - `HEAD` of each of those; another method: 405; another path: 404.
//!
//! Bounds: one request per connection (`Connection: close`); at most
//! [`MAX_HTTP_CONNECTIONS`] at once (more wait in the listen backlog); a request head within
//! [`HTTP_HEAD_TIMEOUT`] (else the connection is closed) and [`MAX_HTTP_HEAD`] bytes (hyper
//! answers 431 to a longer head, 400 to a malformed one); a whole connection within
//! [`HTTP_CONNECTION_TIMEOUT`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE, VARY};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use podport_engine::{Engine, MetricsFormat};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::health::{healthz, readyz, HttpAnswer};

/// Connections served at once.
pub const MAX_HTTP_CONNECTIONS: usize = 64;

/// The longest request head read (hyper's smallest buffer).
pub const MAX_HTTP_HEAD: usize = 8 * 1024;

/// How long a client may take to send its request head.
pub const HTTP_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one connection may last, from the accept to the last byte of the answer (a
/// health answer may wait up to [`crate::health::HEALTH_TIMEOUT`] for the engine).
pub const HTTP_CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);

const PLAIN: &str = "text/plain; charset=utf-8";

/// Serves until `stop` resolves; connections still open then are dropped.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    stop: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    let mut conns = JoinSet::new();
    tokio::pin!(stop);
    loop {
        // A free slot first, then a connection: past the cap, clients wait in the backlog.
        let slot = tokio::select! {
            () = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break, // never closed
            },
        };
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let engine = engine.clone();
                    conns.spawn(async move {
                        let _slot = slot;
                        match tokio::time::timeout(HTTP_CONNECTION_TIMEOUT, connection(stream, engine)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => debug!(%peer, error = %e, "metrics connection failed"),
                            Err(_) => debug!(%peer, "metrics connection closed: it took longer than {HTTP_CONNECTION_TIMEOUT:?}"),
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "accepting a metrics connection failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

async fn connection(stream: tokio::net::TcpStream, engine: Arc<Engine>) -> hyper::Result<()> {
    let service = hyper::service::service_fn(move |req| {
        let engine = engine.clone();
        async move { Ok::<_, Infallible>(answer(&engine, &req).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HTTP_HEAD_TIMEOUT)
        .max_buf_size(MAX_HTTP_HEAD)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        .await
}

async fn answer(engine: &Engine, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    let response = if !known {
        reply(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: this server answers GET /metrics, /healthz and /readyz\n".into(),
        )
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            format!("method not allowed: {path} answers GET and HEAD\n"),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else {
        match path {
            "/metrics" => {
                let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
                let format = MetricsFormat::negotiate(accept);
                let mut r = reply(
                    StatusCode::OK,
                    format.content_type(),
                    engine.metrics_exposition(format),
                );
                r.headers_mut()
                    .insert(VARY, HeaderValue::from_static("Accept"));
                r
            }
            "/healthz" => health_reply(healthz(engine).await),
            _ => health_reply(readyz(engine).await),
        }
    };
    debug!(method = %req.method(), %path, status = %response.status(), "metrics request");
    response
}

fn health_reply((status, body): HttpAnswer) -> Response<Full<Bytes>> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(code, PLAIN, body)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
