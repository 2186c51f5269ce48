//! One way to run any service under test: [`TestApp`], built by [`TestApp::builder`], on a
//! [`TestBus`] that one or several services share.
//!
//! A service under test runs as its binary runs it ([`Service::build`], then
//! [`App::run_until_stopped`]), on a runtime and thread of its own, as if in its own process. That
//! is what lets the end-of-test check in `Drop` block the test while the service keeps working:
//! a test that passes has left its service quiet (outbox drained, its consumers caught up) and
//! without a dead letter the test did not look at (crates.io's `TestApp` asserts no failed jobs
//! the same way). A fault that today would pass silently fails the test that caused it.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    EventLog, NatsServer, TestIssuer,
    events::{durable_info, quiet},
    eventually,
};
use crate::{
    Envelope, Role,
    db::Db,
    runtime::{App, Service},
};

/// How long a test waits for anything asynchronous (an event, a reaction, the system going
/// quiet) before it fails. One deadline for every wait in every service's tests.
pub const WAIT: Duration = Duration::from_secs(30);

/// The stream as the tests see it: one real nats-server, a recorder of every event stored, a
/// client to publish events by hand, and a token issuer the services trust.
#[derive(Debug)]
pub struct TestBus {
    pub nats: NatsServer,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub events: EventLog,
    issuer: Option<TestIssuer>,
}

impl TestBus {
    /// A fresh nats-server, with the test issuer's key in the key bucket.
    pub async fn start() -> Arc<TestBus> {
        Self::on(NatsServer::start().await, true).await
    }

    /// The bus on `nats`, with a test issuer (published before any service starts, so its
    /// verifier knows the key from its first request on) if `issuer`. svc-user's tests go
    /// without: svc-user signs its own tokens, and the bucket holds only its keys.
    pub async fn on(nats: NatsServer, issuer: bool) -> Arc<TestBus> {
        let issuer = if issuer { Some(TestIssuer::publish(&nats).await) } else { None };
        let client = nats.client().await;
        let events = EventLog::record(&client, nats.replicas()).await;
        Arc::new(TestBus { js: jetstream::new(client.clone()), client, events, issuer, nats })
    }

    /// A bearer token for `user` with `role`, valid for an hour.
    pub fn token_for(&self, user: Uuid, role: Role) -> String {
        self.issuer.as_ref().expect("this bus has no test issuer").token(user, role)
    }

    /// A fresh user with `role`, and a bearer token for them.
    pub fn user(&self, role: Role) -> (Uuid, String) {
        let id = Uuid::now_v7();
        (id, self.token_for(id, role))
    }

    /// Publishes `env` as its producer's relay would (`Nats-Msg-Id` = event id) and returns the
    /// stream sequence it is stored at (the first copy's, if JetStream dropped it as a duplicate).
    pub async fn publish(&self, env: &Envelope) -> u64 {
        self.send(env, Some(&env.id.to_string())).await.await.expect("JetStream acked the event").sequence
    }

    /// Publishes `env` under another message id, as a re-publish past the dedupe window would.
    pub async fn publish_as(&self, env: &Envelope, msg_id: &str) -> u64 {
        let ack = self.send(env, Some(msg_id)).await.await.expect("JetStream acked the event");
        assert!(!ack.duplicate, "JetStream dropped {msg_id} as a duplicate");
        ack.sequence
    }

    /// Publishes `env` without any `Nats-Msg-Id`: JetStream cannot dedupe it at all.
    pub async fn publish_bare(&self, env: &Envelope) -> u64 {
        self.send(env, None).await.await.expect("JetStream acked the event").sequence
    }

    /// Sends `env` as a person with the `nats` CLI would, on its subject with `msg_id` if given,
    /// without waiting for the ack: several can be in flight at once, and the ack says whether
    /// JetStream dropped it as a duplicate.
    pub async fn send(&self, env: &Envelope, msg_id: Option<&str>) -> PublishAckFuture {
        let mut msg = PublishMessage::build().payload(env.to_json().into());
        if let Some(id) = msg_id {
            msg = msg.message_id(id);
        }
        self.js.send_publish(env.subject(), msg).await.expect("publish sent")
    }

    /// Waits until each of `consumers` has acknowledged everything up to stream sequence `seq`
    /// (applied, skipped as a duplicate, or dead-lettered): after that their effects are committed.
    /// The message at `seq` must be one they all take: a consumer's ack floor moves only over
    /// what its filter matches. (Not `num_pending == 0`: right after a publish it can still read
    /// 0 for a message the consumer has not yet counted.)
    /// Not for a shard's durable: its sequence numbers are its shard stream's (use `settled`).
    pub async fn consumed_through(&self, consumers: &[impl AsRef<str>], seq: u64) {
        let caught_up = eventually(WAIT, || async {
            let stream = self.js.get_stream(crate::bus::STREAM).await.ok()?;
            for name in consumers {
                let info = stream.consumer_info(name.as_ref()).await.ok()?;
                if info.ack_floor.stream_sequence < seq {
                    return None;
                }
            }
            Some(())
        })
        .await;
        let names: Vec<&str> = consumers.iter().map(AsRef::as_ref).collect();
        caught_up.unwrap_or_else(|| panic!("{names:?} did not consume through sequence {seq}"));
    }

    /// Waits until nothing more can happen by itself (see [`super::settled`]) with `databases`
    /// as the outboxes to drain; panics if that takes longer than [`WAIT`].
    pub async fn settled(&self, databases: &[PathBuf]) {
        assert!(super::settled(&self.js, databases, &self.events, WAIT).await, "the system did not settle");
    }
}

/// A message a consumer refused, as its `dead_letter` row has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub consumer: String,
    pub subject: String,
    pub message_id: Option<String>,
    pub deliveries: i64,
    pub reason: String,
}

/// Derefs a service's own test app, `struct TestApp { app: harness::TestApp<Config>, .. }` with
/// the requests its tests are written in, to the harness's [`TestApp`].
#[macro_export]
macro_rules! deref_test_app {
    ($wrapper:ty => $config:ty) => {
        impl ::std::ops::Deref for $wrapper {
            type Target = $crate::harness::TestApp<$config>;
            fn deref(&self) -> &Self::Target {
                &self.app
            }
        }

        impl ::std::ops::DerefMut for $wrapper {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.app
            }
        }
    };
}

type BuildFn<S> = Arc<dyn Fn(S, CancellationToken) -> BoxFuture<'static, anyhow::Result<App>> + Send + Sync>;

/// How a [`TestApp`] starts: extra flags, the bus, the data directory, the build.
pub struct Builder<S: Service> {
    args: Vec<String>,
    bus: Option<Arc<TestBus>>,
    issuer: bool,
    data: Option<Arc<tempfile::TempDir>>,
    build: BuildFn<S>,
}

impl<S: Service> Builder<S> {
    /// Flags after the ones every test app gets (`--http-addr 127.0.0.1:0 --nats-url
    /// <test server> --data-dir <fresh dir>`), parsed as the binary parses its command line.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// Runs on `bus`, which other services may share; by default a fresh one.
    pub fn on(mut self, bus: &Arc<TestBus>) -> Self {
        self.bus = Some(bus.clone());
        self
    }

    /// A fresh bus without a test issuer (see [`TestBus::on`]).
    pub fn without_issuer(mut self) -> Self {
        self.issuer = false;
        self
    }

    /// Runs on `data`, which may hold the database of an earlier run.
    pub fn data_dir(mut self, data: tempfile::TempDir) -> Self {
        self.data = Some(Arc::new(data));
        self
    }

    /// Runs as a second instance of `other`: on its bus and its data directory (one SQLite
    /// file, one outbox, one durable consumer shared by both, as two processes of one
    /// deployment would).
    pub fn beside(mut self, other: &TestApp<S>) -> Self {
        self.bus = Some(other.bus.clone());
        self.data = other.data.clone();
        self
    }

    /// Builds with `build` instead of [`Service::build`] (e.g. on a test clock); used again by
    /// every [`TestApp::start`].
    pub fn build_with<F, Fut>(mut self, build: F) -> Self
    where
        F: Fn(S, CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<App>> + Send + 'static,
    {
        self.build = Arc::new(move |config, stop| Box::pin(build(config, stop)));
        self
    }

    /// Starts the service and waits until it listens; panics if it does not start.
    pub async fn start(self) -> TestApp<S> {
        let bus = match self.bus {
            Some(bus) => bus,
            None => TestBus::on(NatsServer::start().await, self.issuer).await,
        };
        let data = match self.data {
            Some(data) => data,
            None => Arc::new(tempfile::tempdir().expect("temp data dir")),
        };
        let config = parse::<S>(&bus, data.path(), &self.args);
        let mut app = TestApp {
            addr: ([127, 0, 0, 1], 0).into(),
            http: reqwest::Client::new(),
            js: bus.js.clone(),
            events: bus.events.clone(),
            bus,
            config,
            args: self.args,
            build: self.build,
            data: Some(data),
            db: None,
            consumers: Vec::new(),
            running: None,
            seen_dead_letters: Mutex::default(),
        };
        app.start().await;
        app
    }
}

fn parse<S: Service>(bus: &TestBus, data: &Path, args: &[String]) -> S {
    let data = data.to_str().expect("utf-8 temp path").to_owned();
    let auth = bus.nats.auth(S::NAME);
    let base = [
        S::NAME.to_owned(),
        "--http-addr".into(),
        "127.0.0.1:0".into(),
        "--nats-url".into(),
        bus.nats.url(),
        "--nats-replicas".into(),
        bus.nats.replicas().to_string(),
        "--nats-user".into(),
        auth.user.clone().unwrap_or_default(),
        "--nats-password".into(),
        auth.password.clone().unwrap_or_default(),
    ];
    let all = base.into_iter().chain(["--data-dir".to_owned(), data]).chain(args.iter().cloned());
    S::try_parse_from(all).unwrap_or_else(|e| panic!("{} flags: {e}", S::NAME))
}

/// A service started on its own runtime thread.
struct Running {
    stop: CancellationToken,
    runtime: tokio::runtime::Handle,
    /// What `run_until_stopped` returned, sent as the thread ends.
    done: mpsc::Receiver<anyhow::Result<()>>,
}

/// One service under test, started as its binary starts it, on a [`TestBus`].
///
/// Dropping it at the end of a test that did not panic checks, while the service still runs,
/// that it has gone quiet within [`WAIT`] (its outbox drained and its consumers caught up) and
/// that its `dead_letter` table holds nothing the test did not look at through
/// [`TestApp::dead_letters`] or [`TestApp::dead_letter`]; then it stops the service.
pub struct TestApp<S: Service> {
    /// Where the HTTP API listens (a free port, new on every start).
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    pub js: jetstream::Context,
    /// Every event stored on the bus (across restarts of the service, as the bus outlives them).
    pub events: EventLog,
    pub bus: Arc<TestBus>,
    config: S,
    args: Vec<String>,
    build: BuildFn<S>,
    /// Shared by the instances started [`Builder::beside`] this one.
    data: Option<Arc<tempfile::TempDir>>,
    db: Option<Db>,
    consumers: Vec<String>,
    running: Option<Running>,
    seen_dead_letters: Mutex<HashSet<i64>>,
}

impl<S: Service> TestApp<S> {
    /// The service on a fresh bus and data directory, built by [`Service::build`].
    pub async fn spawn() -> Self {
        Self::builder().start().await
    }

    pub fn builder() -> Builder<S> {
        Builder {
            args: Vec::new(),
            bus: None,
            issuer: true,
            data: None,
            build: Arc::new(|config: S, stop| Box::pin(config.build(stop))),
        }
    }

    /// Starts the service (again, after [`TestApp::stop`]) on the same bus and data directory.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "{} is already running", S::NAME);
        let (config, build, stop) = (self.config.clone(), self.build.clone(), CancellationToken::new());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done) = mpsc::channel();
        let service_stop = stop.clone();
        std::thread::Builder::new()
            .name(S::NAME.to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name(S::NAME)
                    .enable_all()
                    .build()
                    .expect("service runtime");
                let handle = runtime.handle().clone();
                let result = runtime.block_on(async move {
                    let app = match build(config, service_stop).await {
                        Ok(app) => app,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let started = (app.addr(), app.db().clone(), app.consumers().to_vec(), handle);
                    let _ = ready_tx.send(Ok(started));
                    app.run_until_stopped().await
                });
                // Whatever still holds the database or the connection goes with the runtime.
                drop(runtime);
                let _ = done_tx.send(result);
            })
            .expect("service thread");
        let (addr, db, consumers, runtime) = ready_rx
            .await
            .expect("the service thread ended before it started")
            .unwrap_or_else(|e| panic!("{} did not start: {e:#}", S::NAME));
        (self.addr, self.db, self.consumers) = (addr, Some(db), consumers);
        self.running = Some(Running { stop, runtime, done });
        // The consumers attach in the background. Until JetStream lists one, an event published
        // for it is pending nowhere and `settled` would call the system quiet without it.
        for name in self.consumers.clone() {
            let attached = eventually(WAIT, || durable_info(&self.js, &name));
            if attached.await.is_none() {
                tracing::warn!(consumer = name, "the consumer did not attach within the wait");
            }
        }
    }

    /// Stops the service gracefully (the bus and the data directory stay) and checks that it
    /// stopped cleanly.
    pub async fn stop(&mut self) {
        let Some(running) = self.running.take() else { return };
        self.db = None;
        running.stop.cancel();
        let stopped = tokio::task::spawn_blocking(move || running.done.recv_timeout(WAIT)).await.expect("join");
        stopped
            .unwrap_or_else(|_| panic!("{} did not stop within {WAIT:?}", S::NAME))
            .unwrap_or_else(|e| panic!("{} did not stop cleanly: {e:#}", S::NAME));
    }

    /// Stops the service and starts it again on the same bus and data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// Stops the service and starts it again with `args` instead of the flags it had.
    pub async fn restart_with(&mut self, args: &[&str]) {
        self.stop().await;
        self.args = args.iter().map(|a| (*a).to_owned()).collect();
        self.config = parse::<S>(&self.bus, self.data_dir(), &self.args);
        self.start().await;
    }

    /// Stops the service (after the end-of-test check) and hands back what it ran on, e.g. to
    /// start it again on another bus.
    pub async fn shut_down(mut self) -> (Arc<TestBus>, tempfile::TempDir) {
        if let Err(failure) = self.end_check() {
            panic!("{failure}");
        }
        self.stop().await;
        let data = self.data.take().expect("data dir");
        (self.bus.clone(), Arc::try_unwrap(data).expect("no other instance runs on the data directory"))
    }

    /// The configuration the service runs with.
    pub fn config(&self) -> &S {
        &self.config
    }

    /// The configuration the next [`TestApp::start`] uses, to change while the service is stopped.
    pub fn config_mut(&mut self) -> &mut S {
        &mut self.config
    }

    pub fn data_dir(&self) -> &Path {
        self.data.as_ref().expect("data dir").path()
    }

    /// The service's SQLite file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join(format!("{}.db", S::NAME))
    }

    /// The service's own database handle (valid while it runs).
    pub fn db(&self) -> &Db {
        self.db.as_ref().expect("the service has been started")
    }

    /// The service's durable consumers, by name.
    pub fn consumers(&self) -> &[String] {
        &self.consumers
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A fresh user with `role`, and a bearer token for them from the bus's test issuer.
    pub fn user(&self, role: Role) -> (Uuid, String) {
        self.bus.user(role)
    }

    /// A bearer token for `user` with `role` from the bus's test issuer.
    pub fn token_for(&self, user: Uuid, role: Role) -> String {
        self.bus.token_for(user, role)
    }

    /// A connection to the service's SQLite file, for looking behind (or changing under) it.
    /// Never creates the file.
    pub fn connection(&self) -> rusqlite::Connection {
        self.try_connection().expect("open the service's database")
    }

    fn try_connection(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        rusqlite::Connection::open_with_flags(self.db_path(), OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// A single number from the service's database: `sql` with `params`.
    pub fn count(&self, sql: &str, params: impl rusqlite::Params) -> i64 {
        self.connection().query_row(sql, params, |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// See [`TestBus::publish`].
    pub async fn publish(&self, env: &Envelope) -> u64 {
        self.bus.publish(env).await
    }

    /// See [`TestBus::publish_as`].
    pub async fn publish_as(&self, env: &Envelope, msg_id: &str) -> u64 {
        self.bus.publish_as(env, msg_id).await
    }

    /// See [`TestBus::publish_bare`].
    pub async fn publish_bare(&self, env: &Envelope) -> u64 {
        self.bus.publish_bare(env).await
    }

    /// Publishes every envelope in order and waits until the service has consumed them all.
    pub async fn publish_all(&self, envs: &[Envelope]) {
        let mut last = 0;
        for env in envs {
            last = self.publish(env).await;
        }
        self.consumed_through(last).await;
    }

    /// Waits until the service's consumers have acknowledged everything up to stream sequence
    /// `seq` (see [`TestBus::consumed_through`]).
    pub async fn consumed_through(&self, seq: u64) {
        self.bus.consumed_through(&self.consumers, seq).await;
    }

    /// Waits until nothing more can happen by itself: every outbox on the bus drained, every
    /// consumer caught up, the event log read to the end (see [`super::settled`]).
    pub async fn settled(&self) {
        self.bus.settled(&[self.db_path()]).await;
    }

    /// Every dead letter so far. The end-of-test check expects these.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        let rows = self.read_dead_letters();
        self.seen_dead_letters.lock().expect("lock").extend(rows.iter().map(|(seq, _)| *seq));
        rows.into_iter().map(|(_, letter)| letter).collect()
    }

    /// Waits for the dead letter of the message `msg_id`. The end-of-test check expects it.
    pub async fn dead_letter(&self, msg_id: &str) -> DeadLetter {
        let found = eventually(WAIT, || async {
            self.read_dead_letters().into_iter().find(|(_, d)| d.message_id.as_deref() == Some(msg_id))
        });
        let (seq, letter) = found.await.unwrap_or_else(|| panic!("{msg_id} was not dead-lettered"));
        self.seen_dead_letters.lock().expect("lock").insert(seq);
        letter
    }

    fn read_dead_letters(&self) -> Vec<(i64, DeadLetter)> {
        // No file, or one without the plumbing tables (a test replaced it): nothing dead-lettered.
        let Ok(conn) = self.try_connection() else { return Vec::new() };
        let sql = "SELECT seq, consumer, subject, message_id, deliveries, reason FROM dead_letter ORDER BY seq";
        let Ok(mut stmt) = conn.prepare(sql) else { return Vec::new() };
        let rows = stmt.query_map([], |r| {
            let letter = DeadLetter {
                consumer: r.get(1)?,
                subject: r.get(2)?,
                message_id: r.get(3)?,
                deliveries: r.get(4)?,
                reason: r.get(5)?,
            };
            Ok((r.get(0)?, letter))
        });
        rows.and_then(Iterator::collect).expect("dead letters")
    }

    /// What the end of a passing test must find: the service quiet (if it still runs), and no
    /// dead letter the test did not look at.
    fn end_check(&self) -> Result<(), String> {
        if self.data.is_none() {
            return Ok(()); // handed back by `shut_down`, which checked
        }
        if let Some(running) = &self.running {
            // Run on the service's own runtime: this thread, the test's, is blocked meanwhile.
            let (tx, rx) = mpsc::channel();
            let (url, dbs, consumers) = (self.bus.nats.url(), vec![self.db_path()], self.consumers.clone());
            let operator = self.bus.nats.operator();
            running.runtime.spawn(async move {
                let quiet = async {
                    let js = jetstream::new(crate::bus::connect(&url, "end-check", &operator).await.ok()?);
                    eventually(WAIT, || quiet(&js, &dbs, Some(consumers.as_slice()))).await
                };
                let _ = tx.send(quiet.await.is_some());
            });
            if !rx.recv_timeout(WAIT + Duration::from_secs(5)).unwrap_or(false) {
                return Err(format!(
                    "{} did not go quiet by the end of the test within {WAIT:?}: an outbox row unpublished or a \
                     message unacknowledged",
                    S::NAME
                ));
            }
        }
        let seen = self.seen_dead_letters.lock().expect("lock").clone();
        let unexpected: Vec<_> =
            self.read_dead_letters().into_iter().filter(|(seq, _)| !seen.contains(seq)).map(|(_, d)| d).collect();
        if !unexpected.is_empty() {
            return Err(format!(
                "{} dead-lettered what the test did not expect (a test that means to, looks at them through \
                 `dead_letters()` or `dead_letter(id)`): {unexpected:#?}",
                S::NAME
            ));
        }
        Ok(())
    }
}

impl<S: Service> Drop for TestApp<S> {
    fn drop(&mut self) {
        let verdict = if std::thread::panicking() { Ok(()) } else { self.end_check() };
        if let Some(running) = self.running.take() {
            running.stop.cancel();
            // Bounded: the files and the bus go next, and the service should be done with them.
            let _ = running.done.recv_timeout(WAIT);
        }
        if let Err(failure) = verdict {
            panic!("{failure}");
        }
    }
}
