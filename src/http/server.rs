//! The HTTP server: accept loop, hyper `http1` connections, graceful
//! drain. It owns connections and their limits; it never looks inside a
//! request (the router does).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{ops, router};
use crate::config::Limits;
use crate::error::Result;
use crate::App;

/// Most bytes a request head (request line and headers) may take.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long in-flight requests get to finish after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Which of latch's listeners a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The public one: the API, forward auth, the pages.
    Main,
    /// `[ops] listen`: `/healthz`, `/metrics`, `/openapi.yaml`.
    Ops,
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and
/// lets open requests finish (up to `DRAIN_TIMEOUT`).
pub async fn serve(
    listener: TcpListener,
    kind: Listener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let builder = builder(&app.config.limits);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(app.config.limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        // At the limit, stop accepting: new connections wait in the
        // kernel's backlog rather than being refused.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.map_err(crate::Error::internal)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little
                    // rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Each request holds a handle to its connection's own, not to the
        // app's: only this connection counts references to it, so requests
        // on two cores do not fight over one shared count.
        let own = Arc::new(app.clone());
        let service = service_fn(move |req| {
            let own = own.clone();
            async move {
                let app: &App = &own;
                Ok::<_, Infallible>(match kind {
                    Listener::Main => router::route(app, req, peer).await,
                    Listener::Ops => ops::route(app, req).await,
                })
            }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    drain(graceful, kind).await;
    Ok(())
}

/// hyper's connection settings, from `[limits]`.
fn builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        // A head over 64 KiB: 431 from hyper. (More than 100 headers is
        // 431 too: hyper's default, left implicit because setting it makes
        // hyper initialise its header arrays on every request.)
        .max_header_size(MAX_HEAD_BYTES);
    builder
}

/// Lets open requests finish, for at most `DRAIN_TIMEOUT`.
async fn drain(graceful: GracefulShutdown, kind: Listener) {
    if kind == Listener::Main {
        tracing::info!("shutting down: draining open connections");
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing the remaining connections");
    }
}
