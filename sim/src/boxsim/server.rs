//! The accept loop. It is ours rather than `axum::serve` so that a request can end its
//! connection without any response: the router marks such a response, and the hyper
//! service turns the mark into an error, on which hyper closes the socket unanswered.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Response extension: "close the connection instead of sending this".
#[derive(Clone, Copy, Debug)]
struct DropConnection;

/// A response that never reaches the client: its connection is closed instead.
pub(crate) fn dropped_connection() -> axum::response::Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

/// Whether `response` is one made by [`dropped_connection`].
pub(crate) fn is_dropped(response: &axum::response::Response) -> bool {
    response.extensions().get::<DropConnection>().is_some()
}

#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for ConnectionDropped {}

/// Serves until `shutdown` fires or its sender is dropped; open connections are aborted
/// then, as the [`JoinSet`] holding them is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(err) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, router: Router) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "set_nodelay failed");
    }
    let app = TowerToHyperService::new(router);
    let service = service_fn(move |request: Request<Incoming>| {
        let response = app.call(request);
        async move {
            let Ok::<Response<Body>, Infallible>(response) = response.await;
            if is_dropped(&response) {
                Err(ConnectionDropped)
            } else {
                Ok(response)
            }
        }
    });
    if let Err(err) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}
