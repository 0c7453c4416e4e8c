//! The HTTP/1.1 server: each request is routed, handed to a fresh instance of its
//! component, and the component's response body is streamed back as it is written.
//!
//! Shutdown is passed in: when the future resolves, the listener closes, connections finish
//! their in-flight requests (bounded by a drain deadline), and `serve` returns once every
//! connection and guest task has ended or the deadline has passed.
//!
//! This module accepts connections and spreads them over the serving threads;
//! [`dispatch`] runs one request in its component; [`spin_request`] shapes the request the
//! way Spin hands it to a component; [`guard`] bounds what one client or route can hold.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

mod dispatch;
mod guard;
mod spin_request;

pub(crate) use dispatch::{App, ServedComponent};
pub use guard::RequestLimits;
pub(crate) use guard::{ClientLimiter, InstancePool};

/// A connection handed from the accept loop to a serving thread.
type Handoff = (std::net::TcpStream, SocketAddr, Watcher, mpsc::Sender<()>);

/// Serves `listener` until `shutdown` resolves, then drains for at most `drain_deadline`.
///
/// Connections are served by `threads` threads, each running a single-threaded runtime;
/// a connection, its requests and their guest tasks all stay on one thread. A request
/// on a work-stealing runtime hops between threads (the connection task, the guest task
/// and their wake-ups), which costs more than the guest itself for small answers.
pub(crate) async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain_deadline: Duration,
    threads: ServingThreads,
) {
    let ServingThreads {
        mut servers,
        stop,
        in_flight,
        mut all_done,
    } = threads;
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next = 0usize;
    loop {
        let (stream, client_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Running out of file descriptors is transient: wait instead of spinning.
                    tracing::warn!(error = %err, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(client = %client_addr, error = %err, "failed to hand over a connection");
                continue;
            }
        };
        let mut handoff = (stream, client_addr, graceful.watcher(), in_flight.clone());
        // Round robin; a thread that has gone away passes its turn to the next.
        for _ in 0..servers.len() {
            let server = &servers[next % servers.len()];
            next = next.wrapping_add(1);
            match server.connections.send(handoff) {
                Ok(()) => break,
                Err(mpsc::error::SendError(back)) => handoff = back,
            }
        }
    }
    drop(listener);
    drop(in_flight);
    for server in &mut servers {
        server.close();
    }
    tracing::info!("shutting down: draining in-flight requests");
    let drained = tokio::time::timeout(drain_deadline, async {
        graceful.shutdown().await;
        let _ = all_done.recv().await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("all requests finished"),
        Err(_) => {
            tracing::warn!(deadline = ?drain_deadline, "drain deadline passed; dropping the remaining requests")
        }
    }
    let _ = stop.send(true);
    // Joining waits for each runtime's blocking work (DNS lookups, KV commits): off the
    // async threads, so that whatever else runs beside the host keeps going.
    let joined = tokio::task::spawn_blocking(move || {
        for server in servers {
            server.join();
        }
    })
    .await;
    if joined.is_err() {
        tracing::error!("failed to join the serving threads");
    }
}

/// The serving threads of a host, started before it serves so that a failure to start
/// them is a start-up error.
pub(crate) struct ServingThreads {
    servers: Vec<ServingThread>,
    /// Tells the threads to drop what is left once draining is over.
    stop: watch::Sender<bool>,
    /// Every connection and guest task holds a clone; when all are dropped, `all_done` ends.
    in_flight: mpsc::Sender<()>,
    all_done: mpsc::Receiver<()>,
}

impl ServingThreads {
    /// Starts `count` (at least one) serving threads for `app`.
    pub(crate) fn start(app: &Arc<App>, count: usize) -> std::io::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let (in_flight, all_done) = mpsc::channel::<()>(1);
        let mut servers = Vec::new();
        for n in 0..count.max(1) {
            match ServingThread::start(n, Arc::clone(app), stopped.clone()) {
                Ok(server) => servers.push(server),
                Err(err) => {
                    let _ = stop.send(true);
                    for mut server in servers {
                        server.close();
                        server.join();
                    }
                    return Err(err);
                }
            }
        }
        Ok(Self {
            servers,
            stop,
            in_flight,
            all_done,
        })
    }
}

impl std::fmt::Debug for ServingThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingThreads")
            .field("threads", &self.servers.len())
            .finish_non_exhaustive()
    }
}

/// One serving thread: a single-threaded runtime fed connections over a channel.
struct ServingThread {
    connections: mpsc::UnboundedSender<Handoff>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServingThread {
    fn start(n: usize, app: Arc<App>, mut stopped: watch::Receiver<bool>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (connections, mut incoming) = mpsc::unbounded_channel::<Handoff>();
        let thread = std::thread::Builder::new()
            .name(format!("bindery-serve-{n}"))
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some((stream, client_addr, watcher, guard)) = incoming.recv().await
                    {
                        match tokio::net::TcpStream::from_std(stream) {
                            Ok(stream) => {
                                tokio::spawn(connection(
                                    Arc::clone(&app),
                                    stream,
                                    client_addr,
                                    watcher,
                                    guard,
                                ));
                            }
                            Err(err) => {
                                tracing::warn!(client = %client_addr, error = %err, "failed to take over a connection");
                            }
                        }
                    }
                    // No more connections: keep serving those open until draining ends.
                    let _ = stopped.wait_for(|stop| *stop).await;
                });
            })?;
        Ok(Self {
            connections,
            thread: Some(thread),
        })
    }

    /// No more connections for this thread; those it has go on until the stop signal.
    fn close(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.connections, closed));
    }

    fn join(mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("a serving thread panicked");
        }
    }
}

/// Serves one connection's requests.
async fn connection(
    app: Arc<App>,
    stream: tokio::net::TcpStream,
    client_addr: SocketAddr,
    watcher: Watcher,
    in_flight: mpsc::Sender<()>,
) {
    // The service owns `in_flight`, so the connection counts as in flight until it ends.
    let service = service_fn(move |req| {
        let app = Arc::clone(&app);
        let guard = in_flight.clone();
        async move { Ok::<_, Infallible>(app.handle(req, client_addr, guard).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service);
    if let Err(err) = watcher.watch(connection).await {
        tracing::debug!(client = %client_addr, error = %err, "connection ended with an error");
    }
}
