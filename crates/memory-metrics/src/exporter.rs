//! `GET /metrics` over HTTP (hyper), in the Prometheus text format.

use std::convert::Infallible;
use std::net::SocketAddr;

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Method, Request, Response, Server, StatusCode};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the endpoint listens unless told otherwise: loopback only, port 9184.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9184);

/// A running metrics endpoint; [`shutdown`](Self::shutdown) stops it cleanly (dropping it
/// stops it too).
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), hyper::Error>>>,
}

impl MetricsServer {
    /// The address it listens on (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in progress finish, and waits for the server.
    pub async fn shutdown(mut self) -> Result<(), hyper::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn respond(registry: &Registry, request: &Request<Body>) -> Response<Body> {
    if request.method() != Method::GET || request.uri().path() != "/metrics" {
        let mut response =
            Response::new(Body::from("not found: the metrics are at GET /metrics\n"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => {
            let mut response = Response::new(Body::from(body));
            if let Ok(value) = encoder.format_type().parse() {
                response
                    .headers_mut()
                    .insert(hyper::header::CONTENT_TYPE, value);
            }
            response
        }
        Err(e) => {
            let mut response = Response::new(Body::from(format!("encoding the metrics: {e}\n")));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// Serves `registry` at `GET /metrics` on `addr` ([`DEFAULT_ADDR`], loopback, unless the
/// endpoint must be reachable from elsewhere: it exposes counts and timings, never stored
/// data). Must be called inside a tokio runtime.
///
/// ```
/// use memory_metrics::serve_metrics;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let registry = prometheus::Registry::new();
/// let server = serve_metrics(([127, 0, 0, 1], 0).into(), registry)?;
/// assert!(server.addr().ip().is_loopback());
/// server.shutdown().await?;
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
pub fn serve_metrics(addr: SocketAddr, registry: Registry) -> Result<MetricsServer, hyper::Error> {
    let make = make_service_fn(move |_| {
        let registry = registry.clone();
        async move {
            Ok::<_, Infallible>(service_fn(move |request: Request<Body>| {
                let response = respond(&registry, &request);
                async move { Ok::<_, Infallible>(response) }
            }))
        }
    });
    let server = Server::try_bind(&addr)?.serve(make);
    let bound = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let graceful = server.with_graceful_shutdown(async {
        let _ = stopped.await;
    });
    Ok(MetricsServer {
        addr: bound,
        stop: Some(stop),
        task: Some(tokio::spawn(graceful)),
    })
}
