//! What every service runs: the database, the NATS connection, the auth key watch, the outbox
//! relay, its consumers and its HTTP server, stopped together by one cancellation token.

use std::{net::SocketAddr, sync::Arc};

use async_nats::jetstream;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::Verifier,
    bus::{self, ConsumerSpec},
    config::CommonConfig,
    consumer::{self, Handler},
    db::Db,
    http::{self, Readiness},
    outbox::Relay,
};

/// A started service's shared machinery. Build it, register consumers, then [`Runtime::serve`].
#[derive(Debug)]
pub struct Runtime {
    pub name: &'static str,
    pub db: Db,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub verifier: Verifier,
    pub stop: CancellationToken,
    tasks: TaskTracker,
}

impl Runtime {
    /// Opens and migrates the database, connects to NATS, makes sure the stream exists, loads
    /// the auth keys and starts the outbox relay.
    pub async fn start(
        name: &'static str,
        config: &CommonConfig,
        migrations: &'static [&'static str],
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let db = Db::open(&config.db_path(name), migrations).await?;
        let nats = bus::connect(&config.nats_url, name).await?;
        let js = jetstream::new(nats.clone());
        bus::ensure_stream(&js).await?;
        let verifier = Verifier::new();
        verifier.watch(&js, stop.clone()).await?;
        let tasks = TaskTracker::new();
        tasks.spawn(Relay::new(db.clone(), js.clone()).run(stop.clone()));
        Ok(Runtime { name, db, nats, js, verifier, stop, tasks })
    }

    /// Starts `handler`'s idempotent durable consumer, filtered to the events it declares.
    pub fn consume(&self, handler: impl Handler) {
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let spec = ConsumerSpec::of(&*handler);
        self.tasks.spawn(consumer::run(self.js.clone(), spec, self.db.clone(), handler, self.stop.clone()));
    }

    /// Spawns a background task that ends with the service.
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Serves `routes` on `listener` until the stop token is cancelled, then waits for the relay
    /// and consumers to finish their current step.
    pub async fn serve(self, listener: TcpListener, routes: Router) -> anyhow::Result<()> {
        let addr: SocketAddr = listener.local_addr()?;
        let app = http::finish_router(routes, Readiness { db: self.db.clone(), nats: self.nats.clone() });
        tracing::info!(service = self.name, %addr, "listening");
        let stop = self.stop.clone();
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        // Flush what the client still buffers (e.g. acks) before the connection goes.
        let _ = self.nats.flush().await;
        tracing::info!(service = self.name, "stopped");
        Ok(served?)
    }
}

/// A token cancelled on Ctrl-C or SIGTERM, and, when `STOP_ON_STDIN_EOF` is set, when stdin
/// closes: a supervisor (`shopctl up`) holds the other end of that pipe, so its death, even by
/// SIGKILL, stops the service instead of orphaning it.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    if std::env::var_os("STOP_ON_STDIN_EOF").is_some() {
        let cancel = token.clone();
        // A plain thread: a blocking read must not hold up the runtime's shutdown.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            tracing::info!("stdin closed: the supervisor is gone, shutting down");
            cancel.cancel();
        });
    }
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}
