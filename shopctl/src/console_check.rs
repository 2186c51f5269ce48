//! `shopctl console-check`: the saga console (svc-order's `GET /console`) driven in headless
//! Chromium against a real system, start to end.
//!
//! Like `shopctl chaos` it runs a stack of its own (`.data/console-check/`, ports shifted by
//! `--port-offset`, each child's output in `logs/`). It signs a seller and a customer up, gives
//! the seller two products with stock (one priced above the gateway's limit), makes sure the browser tooling is installed
//! ([`crate::browser`]), then hands over to `shopctl/tests/console/console_check.py`, which logs
//! in on the page, places orders, takes the payment gateway down and up again, hand-publishes a
//! malformed event and replays it fixed from the page, checking each view against the REST API,
//! and saves a screenshot of each view. Exits non-zero when the script fails.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::audit::{self, Endpoints};
use crate::browser;
use crate::checkout::Checkout;
use crate::credentials::Credentials;
use crate::own_stack::{self, expect, sign_up};
use crate::up::{self, Layout, Stack};

/// What `shopctl console-check` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Added to every port `./shop up` uses, so both can run at once.
    #[arg(long, default_value_t = 14_000)]
    pub port_offset: u16,
    /// Use the binaries in this folder (e.g. `target/debug`) instead of building release ones.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where the run keeps its state and logs (emptied first); default `.data/console-check`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where the screenshots of each view go; default `<data dir>/screenshots`.
    #[arg(long)]
    pub screenshots: Option<PathBuf>,
    #[arg(long, env = "ADMIN_EMAIL", default_value = audit::DEV_ADMIN_EMAIL)]
    pub admin_email: String,
    #[arg(long, env = "ADMIN_PASSWORD", default_value = audit::DEV_ADMIN_PASSWORD, hide_env_values = true)]
    pub admin_password: String,
}

/// The browser script, relative to the checkout.
const SCRIPT: &str = "shopctl/tests/console/console_check.py";
/// The script polls with deadlines of its own; this only stops a hung browser from holding the
/// stack forever.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

pub fn run(checkout: &Checkout, options: &Options) -> Result<ExitCode> {
    // Before the stack: installing can take minutes, and needs none of it.
    let python = browser::ensure(checkout)?;
    own_stack::block_on(check(checkout, options, &python))?
}

async fn check(checkout: &Checkout, options: &Options, python: &Path) -> Result<ExitCode> {
    let started = Instant::now();
    let root = options.data_dir.clone().unwrap_or_else(|| checkout.data_dir().join("console-check"));
    let env = vec![
        // Long enough that the order held up by the gateway outage is still waiting, not
        // expired, when the gateway comes back.
        ("ORDER_DEADLINE_SECS".into(), "120".into()),
        ("SEED_DEMO".into(), "false".into()),
    ];
    let layout = own_stack::layout(root.clone(), options.port_offset, env, options.bin_dir.clone(), false)?;
    let screenshots = options.screenshots.clone().unwrap_or_else(|| root.join("screenshots"));
    let passed = own_stack::with_stack("console-check", async |stack: &mut Stack| {
        drive(checkout, stack, &layout, options, python, &screenshots).await
    })
    .await?;
    let logs = layout.logs.as_ref().map_or_else(String::new, |d| d.display().to_string());
    println!("console-check: screenshots in {}, logs in {logs}", screenshots.display());
    println!(
        "console-check: {} after {:.1} s",
        if passed { "PASSED" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Who the script acts as, and on what.
struct Cast {
    admin_token: String,
    customer_token: String,
    customer_id: String,
    customer_email: String,
    product_id: String,
    /// Priced above the gateway's limit.
    dear_product_id: String,
}

/// The customer's password (a throw-away stack's).
const CUSTOMER_PASSWORD: &str = "console-password-1";

async fn drive(
    checkout: &Checkout,
    stack: &mut Stack,
    layout: &Layout,
    options: &Options,
    python: &Path,
    screenshots: &Path,
) -> Result<bool> {
    up::launch(checkout, stack, layout, &layout.nats_url(), true).await?;
    let endpoints = own_stack::endpoints(layout);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let cast = cast(&http, &endpoints, options).await?;
    eprintln!("console-check: customer {}, product {}; starting the browser", cast.customer_id, cast.product_id);

    let operator = Credentials::operator();
    let mut script = tokio::process::Command::new(python);
    script
        .current_dir(checkout.root())
        .arg(checkout.root().join(SCRIPT))
        .args(["--order-url", &endpoints.order, "--gateway-url", &endpoints.gateway])
        .args(["--nats-url", &layout.nats_url()])
        .args(["--product-id", &cast.product_id, "--dear-product-id", &cast.dear_product_id])
        .args(["--customer-id", &cast.customer_id])
        .args(["--admin-email", &options.admin_email, "--customer-email", &cast.customer_email])
        .arg("--screenshots")
        .arg(screenshots)
        .args(["--chromium", browser::CHROMIUM])
        // Secrets by environment, not on a command line others can read.
        .env("CUSTOMER_TOKEN", &cast.customer_token)
        .env("ADMIN_TOKEN", &cast.admin_token)
        .env("ADMIN_PASSWORD", &options.admin_password)
        .env("CUSTOMER_PASSWORD", CUSTOMER_PASSWORD)
        .env("NATS_OPERATOR_USER", operator.user.unwrap_or_default())
        .env("NATS_OPERATOR_PASSWORD", operator.password.unwrap_or_default())
        .env(browser::PLAYWRIGHT_ENV.0, browser::PLAYWRIGHT_ENV.1)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = script.spawn().with_context(|| format!("cannot run {} {SCRIPT}", python.display()))?;
    let status = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            child.kill().await.ok();
            return Err(anyhow!("{SCRIPT} did not finish within {} s", SCRIPT_TIMEOUT.as_secs()));
        }
    };
    up::supervise(stack)?;
    Ok(status.success())
}

/// The admin, a customer, and a seller's product with ample stock.
async fn cast(http: &reqwest::Client, endpoints: &Endpoints, options: &Options) -> Result<Cast> {
    let admin_token = audit::login(http, &endpoints.user, &options.admin_email, &options.admin_password).await?;
    own_stack::until_tokens_accepted(http, endpoints, &admin_token).await?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let seller = sign_up(http, endpoints, &format!("seller-{run}@console.local"), "SELLER").await?;
    let mut products = Vec::new();
    // The second costs more than the gateway's limit: its orders end FAILED.
    for (name, price) in [("Console lamp", 12_500), ("Console throne", 2_000_000)] {
        let body = json!({"name": name, "price": price, "stock": 1_000, "category": "console"});
        let res = http.post(format!("{}/products", endpoints.product)).bearer_auth(&seller).json(&body).send().await?;
        let product: Value = expect(res, 201).await?;
        products.push(product["id"].as_str().context("the product has no id")?.to_owned());
    }
    let [product_id, dear_product_id] = <[String; 2]>::try_from(products).expect("two products");
    // Signed up here rather than with `sign_up`: the script also needs the customer's password,
    // to show that the page refuses anyone but an admin.
    let customer_email = format!("customer-{run}@console.local");
    let body = json!({"email": customer_email, "password": CUSTOMER_PASSWORD, "name": "Console", "role": "CUSTOMER"});
    let res = http.post(format!("{}/users", endpoints.user)).json(&body).send().await?;
    let customer: Value = expect(res, 201).await?;
    let customer_id = customer["id"].as_str().context("the signed-up customer has no id")?.to_owned();
    let customer_token = audit::login(http, &endpoints.user, &customer_email, CUSTOMER_PASSWORD).await?;
    Ok(Cast { admin_token, customer_token, customer_id, customer_email, product_id, dear_product_id })
}
