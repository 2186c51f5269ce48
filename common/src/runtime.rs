//! What every service runs: the database, the NATS connection, the auth key watch, the outbox
//! relay, its consumers and its HTTP server, stopped together by one cancellation token.
//!
//! A service is its flags plus how it wires itself: [`Service`], implemented by each service's
//! `Config` in its `app.rs`. Its binary's `main` is [`main`], and the test harness starts it
//! through the same trait, so a test runs exactly what the binary runs.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;

use async_nats::jetstream;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::Verifier,
    bus::{self, ConsumerSpec},
    config::CommonConfig,
    consumer::{self, Attached, Handler},
    db::Db,
    http::{self, Readiness},
    micro::Ops,
    openapi::OpenApiRouter,
    outbox::Relay,
};

/// One service, as its binary and the test harness start it: the flags it parses, and how it
/// wires its runtime, consumers and routes into an [`App`].
pub trait Service: clap::Parser + Clone + Send + Sync + 'static {
    /// The service's name: its database file, its NATS connection, the `producer` of its events.
    const NAME: &'static str;

    /// Binds the listener, starts the [`Runtime`] and the consumers, builds the router. Serving
    /// starts with [`App::run_until_stopped`]; cancelling `stop` ends it.
    fn build(self, stop: CancellationToken) -> impl Future<Output = anyhow::Result<App>> + Send;
}

/// A service binary's whole `main`: logs, flags, a stop on Ctrl-C or SIGTERM, build, serve.
pub async fn main<S: Service>() -> anyhow::Result<()> {
    crate::telemetry::init();
    crate::faults::configure_from_env()?;
    S::parse().build(shutdown_on_signal()).await?.run_until_stopped().await
}

/// A started service's shared machinery. Start it, register consumers, then [`Runtime::serving`]
/// the routes.
#[derive(Debug)]
pub struct Runtime {
    pub name: &'static str,
    pub db: Db,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub verifier: Verifier,
    pub stop: CancellationToken,
    /// The stream's and the key bucket's replica count (`NATS_REPLICAS`).
    pub replicas: usize,
    listener: TcpListener,
    consumers: Vec<Attached>,
    ops: Ops,
    ack_wait: std::time::Duration,
    http_limits: http::Limits,
    max_backlog: i64,
    tasks: TaskTracker,
}

impl Runtime {
    /// Binds `http_addr` (port 0 picks a free one), opens and migrates the database, connects
    /// to NATS, makes sure the stream exists, loads the auth keys and starts the outbox relay.
    pub async fn start(
        name: &'static str,
        config: &CommonConfig,
        http_addr: SocketAddr,
        migrations: &'static [&'static str],
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        crate::metrics::install();
        let listener = TcpListener::bind(http_addr).await.with_context(|| format!("binding {http_addr}"))?;
        let db = Db::open(&config.db_path(name), migrations).await?;
        let nats = bus::connect(&config.nats_url, name, &config.nats_auth).await?;
        let js = jetstream::new(nats.clone());
        bus::ensure_stream(&js, config.replicas()).await?;
        let verifier = Verifier::new();
        verifier.watch(&js, stop.clone()).await?;
        let tasks = TaskTracker::new();
        let relay = Relay::new(name, db.clone(), js.clone()).with_resend_window(config.outbox_resend());
        tasks.spawn(relay.run(stop.clone()));
        let ack_wait = config.ack_wait();
        let http_limits = config.http_limits();
        Ok(Runtime {
            name,
            db,
            nats,
            js,
            verifier,
            stop,
            replicas: config.replicas(),
            listener,
            consumers: Vec::new(),
            ops: Ops::default(),
            ack_wait,
            http_limits,
            max_backlog: i64::from(config.ready_max_outbox_backlog),
            tasks,
        })
    }

    /// Starts `handler`'s idempotent durable consumer, filtered to the events it declares.
    pub fn consume(&mut self, handler: impl Handler) {
        let spec = ConsumerSpec::of(&handler);
        self.start_consumer(handler, spec);
    }

    /// Starts `handler`'s consumer of one shard of its events (see [`crate::bus::Shards`]), or of
    /// all of them without `shards`.
    pub fn consume_shard(&mut self, handler: impl Handler, shards: Option<crate::bus::Shards>) {
        let spec = match shards {
            Some(shards) => ConsumerSpec::shard(&handler, shards),
            None => ConsumerSpec::of(&handler),
        };
        self.start_consumer(handler, spec);
    }

    fn start_consumer(&mut self, handler: impl Handler, mut spec: ConsumerSpec) {
        let handler: Arc<dyn Handler> = Arc::new(handler);
        spec.ack_wait = self.ack_wait;
        spec.replicas = self.replicas;
        let attached = Attached::new(handler.name(), &spec.stream_name(), spec.durable());
        self.consumers.push(attached.clone());
        self.tasks.spawn(consumer::run(self.js.clone(), spec, self.db.clone(), handler, attached, self.stop.clone()));
    }

    /// Spawns a background task that ends with the service.
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// What the service adds to its endpoints on the NATS services API ([`crate::micro`]).
    pub fn ops(&mut self) -> &mut Ops {
        &mut self.ops
    }

    /// The service, ready to serve `routes`, the admin routes every service has
    /// ([`crate::admin`]), `/metrics`, and its OpenAPI document (`/openapi.json`, Swagger UI at
    /// `/docs`) made of `routes`' annotations and the common routes'; registered on the NATS
    /// services API ([`crate::micro`]).
    pub fn serving(self, routes: OpenApiRouter) -> anyhow::Result<App> {
        let addr = self.listener.local_addr()?;
        self.tasks.spawn(crate::micro::serve(
            self.name,
            env!("CARGO_PKG_VERSION"),
            self.nats.clone(),
            self.db.clone(),
            self.consumers.iter().map(|a| (a.stream().to_owned(), a.durable().to_owned())).collect(),
            self.ops.clone(),
            self.stop.clone(),
        ));
        let (routes, api) = routes.split_for_parts();
        let doc = crate::openapi::document(self.name, env!("CARGO_PKG_VERSION"), api);
        let routes = routes
            .merge(crate::admin::routes(self.name, self.db.clone(), self.verifier.clone()))
            .merge(crate::metrics::routes(self.name, self.db.clone()))
            .merge(crate::openapi::routes(doc));
        Ok(App { runtime: self, addr, routes })
    }
}

/// A built service: listener bound, runtime and consumers started, ready to serve.
#[derive(Debug)]
pub struct App {
    runtime: Runtime,
    addr: SocketAddr,
    routes: Router,
}

impl App {
    /// The address the HTTP API listens on (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service's database, for tests and tools that look behind the API.
    pub fn db(&self) -> &Db {
        &self.runtime.db
    }

    /// The durable consumers the service started, by durable name.
    pub fn consumers(&self) -> Vec<String> {
        self.runtime.consumers.iter().map(|a| a.durable().to_owned()).collect()
    }

    /// Serves until the stop token is cancelled, then waits for the relay, the consumers and
    /// any other task to finish their current step.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let App { runtime, addr, routes } = self;
        let readiness = Readiness {
            db: runtime.db.clone(),
            nats: runtime.nats.clone(),
            verifier: runtime.verifier.clone(),
            consumers: runtime.consumers.clone(),
            max_backlog: runtime.max_backlog,
        };
        let app = http::finish_router(runtime.name, routes, readiness);
        tracing::info!(service = runtime.name, %addr, "listening");
        let served = http::serve(runtime.listener, app, runtime.http_limits, runtime.stop.clone()).await;
        runtime.stop.cancel();
        runtime.tasks.close();
        runtime.tasks.wait().await;
        // Flush what the client still buffers (e.g. acks) before the connection goes.
        let _ = runtime.nats.flush().await;
        tracing::info!(service = runtime.name, "stopped");
        served
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
