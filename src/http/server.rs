//! The HTTP server: accept loop, hyper `http1` connections, graceful
//! drain. It owns connections and their limits; it never looks inside a
//! request (the router does).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

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
    let open = Arc::new(Open::default());
    let max = app.config.limits.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    tokio::pin!(shutdown);
    loop {
        // At the limit, stop accepting: new connections wait in the
        // kernel's backlog rather than being refused.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.map_err(crate::Error::internal)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
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
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let (registered, stop) = Open::register(&open);
        tokio::spawn(async move {
            let (_permit, _registered) = (permit, registered);
            tokio::pin!(conn);
            let ended = tokio::select! {
                biased;
                ended = conn.as_mut() => ended,
                _ = stop => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    drain(&open, &slots, max, kind).await;
    Ok(())
}

/// The next connection. A failed accept (out of file descriptors and the
/// like) is logged and tried again after a pause, rather than spun on.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(conn) => return conn,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The stop signals of the open connections. Each connection waits on a
/// signal of its own: polling it touches nothing another connection
/// shares. (hyper-util's graceful watcher has every connection take one
/// shared lock on every poll.)
#[derive(Default)]
struct Open {
    stops: Mutex<(u64, HashMap<u64, oneshot::Sender<()>>)>,
}

/// A connection's place in [`Open`]; leaves it when dropped.
struct Registered {
    open: Arc<Open>,
    key: u64,
}

impl Open {
    /// Adds a connection: its place and the signal it stops at.
    fn register(open: &Arc<Open>) -> (Registered, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut stops = open.stops.lock().unwrap_or_else(|e| e.into_inner());
        let key = stops.0;
        stops.0 += 1;
        stops.1.insert(key, tx);
        let registered = Registered {
            open: open.clone(),
            key,
        };
        (registered, rx)
    }

    /// Tells every open connection to stop after its request in flight.
    fn stop_all(&self) {
        let stops = std::mem::take(&mut self.stops.lock().unwrap_or_else(|e| e.into_inner()).1);
        for stop in stops.into_values() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut stops = self.open.stops.lock().unwrap_or_else(|e| e.into_inner());
        stops.1.remove(&self.key);
    }
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

/// Lets open requests finish, for at most `DRAIN_TIMEOUT`: every
/// connection holds one of the `max` slots until it ends, so all of them
/// free means all connections are done.
async fn drain(open: &Open, slots: &Semaphore, max: usize, kind: Listener) {
    if kind == Listener::Main {
        tracing::info!("shutting down: draining open connections");
    }
    open.stop_all();
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing the remaining connections");
    }
}
