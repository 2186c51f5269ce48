//! For tests (feature `harness`): a real gateway on port 0 with a fresh SQLite file in a temporary
//! directory, on a runtime thread of its own (so it keeps answering while the test's runtime is
//! blocked, e.g. in a service's end-of-test check), stopped when dropped. svc-payment's and the
//! saga's tests charge through it exactly as the binary would be charged through.

use std::{net::SocketAddr, path::Path, sync::mpsc, thread::JoinHandle};

use clap::Parser;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{App, Config};

/// A running gateway; stopped (and its directory removed) when dropped.
#[derive(Debug)]
pub struct TestGateway {
    addr: SocketAddr,
    http: reqwest::Client,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
    // Declared last: removed after the server stopped.
    dir: Option<tempfile::TempDir>,
}

impl TestGateway {
    /// Starts a gateway on a fresh data directory with `args` (flags such as `--payment-limit=10`
    /// or `--payment-limit 10`). Panics if it cannot start: this is for tests.
    pub async fn start(args: &[&str]) -> TestGateway {
        let dir = tempfile::tempdir().expect("temp dir for the gateway");
        let mut gateway = TestGateway::start_in(dir.path(), args).await;
        gateway.dir = Some(dir);
        gateway
    }

    /// Starts a gateway on the data directory `dir`, which the caller keeps (to restart on it).
    pub async fn start_in(dir: &Path, args: &[&str]) -> TestGateway {
        let data_dir = format!("--data-dir={}", dir.display());
        let all = ["payment-gateway", "--http-addr=127.0.0.1:0", &data_dir].into_iter().chain(args.iter().copied());
        let config = Config::try_parse_from(all).unwrap_or_else(|e| panic!("gateway flags {args:?}: {e}"));
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::channel();
        let token = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build();
            rt.expect("a runtime for the gateway").block_on(async move {
                let app = App::build(config, token).await.expect("the gateway starts");
                tx.send(app.addr()).expect("the test waits for the address");
                app.run_until_stopped().await.expect("the gateway ran");
            });
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv().expect("the gateway started")).await.expect("join");
        TestGateway { addr, http: reqwest::Client::new(), stop, thread: Some(thread), dir: None }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, without a trailing slash: `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `PUT /v1/faults` with `settings` (e.g. `{"down": true}`); returns the new state.
    pub async fn faults(&self, settings: Value) -> Value {
        let res = self.http.put(format!("{}/v1/faults", self.url())).json(&settings).send().await.expect("request");
        assert_eq!(res.status(), 200, "PUT /v1/faults {settings}");
        res.json().await.expect("json")
    }

    /// The fault settings and how often each fault fired.
    pub async fn fault_state(&self) -> Value {
        self.faults(json!({})).await
    }

    /// Every charge in the ledger, oldest first.
    pub async fn charges(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let url = format!("{}/v1/charges?after={after}&limit=1000", self.url());
            let page: Value = self.http.get(url).send().await.expect("request").json().await.expect("json");
            all.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next"].as_i64() {
                Some(next) => after = next,
                None => return all,
            }
        }
    }

    /// The charges whose reference is `order`.
    pub async fn charges_of(&self, order: &str) -> Vec<Value> {
        self.charges().await.into_iter().filter(|c| c["reference"] == order).collect()
    }

    /// Stops serving and waits until the server has ended.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join()).await.expect("join").expect("the gateway thread");
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
