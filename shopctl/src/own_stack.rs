//! A stack of its own for the runs that measure the whole system (`shopctl chaos`, `shopctl
//! load`): `up`'s machinery in a folder emptied first, on shifted ports, each child's output in a
//! log file, stopped whatever happens; and the few client calls both make against it.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use async_nats::jetstream;
use serde_json::{Value, json};

use crate::audit::{self, Endpoints};
use crate::proc::Signals;
use crate::up::{self, Layout, Stack};

/// Runs `future` on the runtime both runs use: two workers, as many as the machine's cores.
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(future))
}

/// The layout of a run's stack in `root`, which is emptied first: state and NATS store there,
/// logs in `root/logs`, ports shifted by `port_offset`, `env` for every service; NATS the
/// 3-node cluster if `cluster`.
pub fn layout(
    root: PathBuf,
    port_offset: u16,
    env: Vec<(String, String)>,
    bin_dir: Option<PathBuf>,
    cluster: bool,
) -> Result<Layout> {
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("cannot clear {}", root.display()))?;
    }
    Ok(Layout {
        data_root: root.clone(),
        nats_cwd: root.clone(),
        port_offset,
        env,
        logs: Some(root.join("logs")),
        build_args: up::BUILD_ARGS.to_vec(),
        bin_dir,
        cluster,
    })
}

/// Runs `drive` with a stack it fills (through [`up::launch`]), then stops the stack, also when
/// `drive` fails or a signal (Ctrl-C) comes first. `run` names the run in what it says.
pub async fn with_stack<T>(run: &str, drive: impl AsyncFnOnce(&mut Stack) -> Result<T>) -> Result<T> {
    let mut signals = Signals::install()?;
    let mut stack = Stack::default();
    let outcome = tokio::select! {
        result = drive(&mut stack) => result,
        sig = signals.recv() => Err(anyhow!("{sig} received")),
    };
    eprintln!("{run}: stopping the stack");
    stack.shutdown(&mut signals).await;
    outcome
}

pub fn endpoints(layout: &Layout) -> Endpoints {
    Endpoints {
        user: layout.url("svc-user"),
        product: layout.url("svc-product"),
        order: layout.url("svc-order"),
        payment: layout.url("svc-payment"),
        settlement: layout.url("svc-settlement"),
        gateway: layout.url("payment-gateway"),
    }
}

/// Signs `email` up as `role` and logs in; returns the token.
pub async fn sign_up(http: &reqwest::Client, endpoints: &Endpoints, email: &str, role: &str) -> Result<String> {
    let password = "chaos-password-1";
    let body = json!({"email": email, "password": password, "name": "Chaos", "role": role});
    let res = http.post(format!("{}/users", endpoints.user)).json(&body).send().await?;
    expect(res, 201).await?;
    audit::login(http, &endpoints.user, email, password).await
}

/// The JSON body of `res`, if it has the `status` expected.
pub async fn expect(res: reqwest::Response, status: u16) -> Result<Value> {
    let got = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if got != status {
        bail!("expected {status}, got {got}: {body}");
    }
    Ok(body)
}

/// Waits (10 s at most) until every service accepts `token`. On a fresh stack a service is ready
/// before it has read svc-user's signing keys from their bucket (it keeps watching for them), and
/// refuses every token until then.
pub async fn until_tokens_accepted(http: &reqwest::Client, endpoints: &Endpoints, token: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let e = endpoints;
    for base in [&e.user, &e.product, &e.order, &e.payment, &e.settlement] {
        loop {
            let res = http.get(format!("{base}/admin/outbox")).bearer_auth(token).send().await?;
            let status = res.status().as_u16();
            if status == 200 {
                break;
            }
            if status != 401 || tokio::time::Instant::now() >= deadline {
                let body = res.text().await.unwrap_or_default();
                bail!("{base} does not accept the admin's token ({status}): {body}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Whether every durable consumer of the event stream has been delivered and has acknowledged
/// everything.
pub async fn consumers_caught_up(js: &jetstream::Context) -> Result<bool> {
    use futures_util::StreamExt;
    let stream = js.get_stream(common::bus::STREAM).await?;
    let mut names = stream.consumer_names();
    while let Some(name) = names.next().await {
        let info = stream.consumer_info(name?).await?;
        if info.num_pending > 0 || info.num_ack_pending > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}
