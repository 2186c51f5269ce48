//! `shopctl api-check`: schemathesis against every service's OpenAPI document, on a stack of
//! its own (`.data/api-check/`, ports shifted by `--port-offset`, logs in `logs/`).
//!
//! It signs a seller and a customer up, gives the seller a product and the customer a paid order
//! for it, then fuzzes each service's `/openapi.json` with schemathesis (pinned, installed into
//! the project venv): generated requests, valid and invalid, checked for what issue 14 asks: no
//! 5xx (`not_a_server_error`), and no answer the document does not describe (its status, content
//! type, headers and body schema). Each service gets a schemathesis config of its own
//! (`<data dir>/schemathesis/<service>.toml`): the admin's token by default and the owner's where
//! only an owner gets past the role check, and the ids of the data made here offered for path and
//! query parameters, so the generated requests also reach real rows. The tokens reach
//! schemathesis by environment, never in a file or on a command line. The payment gateway is
//! checked too once it serves a document. Exits non-zero, schemathesis's report above, on any
//! finding.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::audit::{self, Endpoints};
use crate::browser;
use crate::checkout::Checkout;
use crate::own_stack::{self, expect, sign_up};
use crate::up::{self, Layout, Stack};

/// The schemathesis the documents are checked with.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// What an answer must not do: the "no 5xx, no response that contradicts the document".
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// The services checked, as `./shop up` names them; the gateway only once it serves a document.
const SERVICES: [&str; 6] =
    ["svc-user", "svc-product", "svc-order", "svc-payment", "svc-settlement", "payment-gateway"];

/// Operations never sent. Two inject faults (a failpoint makes a service fail on purpose, the
/// gateway's faults make it refuse or stall), which would turn every later answer of the run
/// into a failure of the fault, not of the document; the fault tests and `shopctl chaos` check
/// them. The console's event stream never ends, and schemathesis reads a stream to its end; the
/// console's browser test (`shopctl console-check`) reads its events.
const EXCLUDED: [(&str, &str); 3] =
    [("PUT", "/admin/failpoints/{name}"), ("PUT", "/v1/faults"), ("GET", "/console/api/stream")];

/// Who is let past the role check where the admin is not: (service, a regex over schemathesis's
/// operation names, `METHOD /path`, whose token). Everything else is sent with the admin's.
const OWNERS: [(&str, &str, Who); 5] = [
    ("svc-user", "^GET /users/", Who::Customer),
    ("svc-product", "^POST /products", Who::Seller),
    ("svc-order", "^[A-Z]+ /orders", Who::Customer),
    ("svc-payment", "^[A-Z]+ /payments", Who::Customer),
    // A seller's reports: its own rows, and a 403 for naming another seller.
    ("svc-settlement", "^GET /settlements/", Who::Seller),
];

#[derive(Debug, Clone, Copy)]
enum Who {
    Customer,
    Seller,
}

impl Who {
    /// The environment variable schemathesis reads the token from.
    fn token_env(self) -> &'static str {
        match self {
            Who::Customer => "API_CHECK_CUSTOMER_TOKEN",
            Who::Seller => "API_CHECK_SELLER_TOKEN",
        }
    }
}
const ADMIN_TOKEN_ENV: &str = "API_CHECK_ADMIN_TOKEN";

/// What `shopctl api-check` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Added to every port `./shop up` uses, so both can run at once.
    #[arg(long, default_value_t = 18_000)]
    pub port_offset: u16,
    /// Use the binaries in this folder (e.g. `target/debug`) instead of building release ones.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where the run keeps its state, logs and reports (emptied first); default `.data/api-check`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Generated requests per operation and phase.
    #[arg(long, default_value_t = 50)]
    pub max_examples: u32,
    /// The generator's seed: the same seed sends the same requests.
    #[arg(long, default_value_t = 14)]
    pub seed: u64,
    /// Requests in flight at once. With more than one, their order (and so what the data looks
    /// like when each arrives) may differ from run to run.
    #[arg(long, default_value_t = 1)]
    pub workers: u8,
    #[arg(long, env = "ADMIN_EMAIL", default_value = audit::DEV_ADMIN_EMAIL)]
    pub admin_email: String,
    #[arg(long, env = "ADMIN_PASSWORD", default_value = audit::DEV_ADMIN_PASSWORD, hide_env_values = true)]
    pub admin_password: String,
}

pub fn run(checkout: &Checkout, options: &Options) -> Result<ExitCode> {
    // Before the stack: installing can take a minute, and needs none of it.
    let python = browser::ensure_packages(checkout, &[("schemathesis", SCHEMATHESIS_VERSION)])?;
    let schemathesis = python.with_file_name("schemathesis");
    own_stack::block_on(check(checkout, options, &schemathesis))?
}

async fn check(checkout: &Checkout, options: &Options, schemathesis: &Path) -> Result<ExitCode> {
    let started = Instant::now();
    let root = options.data_dir.clone().unwrap_or_else(|| checkout.data_dir().join("api-check"));
    // No demo catalogue: the data made here is all there is, so its ids are the real ones.
    let env = vec![("SEED_DEMO".into(), "false".into())];
    let layout = own_stack::layout(root.clone(), options.port_offset, env, options.bin_dir.clone(), false)?;
    let runs = own_stack::with_stack("api-check", async |stack: &mut Stack| {
        fuzz(checkout, stack, &layout, options, schemathesis, &root).await
    })
    .await?;
    let failed: Vec<&str> = runs.iter().filter(|(_, passed)| !passed).map(|(s, _)| *s).collect();
    let seconds = started.elapsed().as_secs_f64();
    println!("api-check: reports in {}", root.join("reports").display());
    if failed.is_empty() {
        println!(
            "api-check: PASSED (schemathesis {SCHEMATHESIS_VERSION}, {} documents) after {seconds:.1} s",
            runs.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("api-check: FAILED: schemathesis found problems in {} after {seconds:.1} s", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// Runs schemathesis on each service with a document; returns each one run and whether it passed.
async fn fuzz(
    checkout: &Checkout,
    stack: &mut Stack,
    layout: &Layout,
    options: &Options,
    schemathesis: &Path,
    root: &Path,
) -> Result<Vec<(&'static str, bool)>> {
    up::launch(checkout, stack, layout, &layout.nats_url(), true).await?;
    let endpoints = own_stack::endpoints(layout);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let cast = cast(&http, &endpoints, options).await?;
    eprintln!(
        "api-check: seller {}, customer {}, product {}, order {} (paid: payment {})",
        cast.seller_id, cast.customer_id, cast.product_id, cast.order_id, cast.payment_id
    );
    let configs = root.join("schemathesis");
    std::fs::create_dir_all(&configs)?;
    let mut runs = Vec::new();
    for service in SERVICES {
        let base = layout.url(service);
        let res = http.get(format!("{base}/openapi.json")).send().await?;
        if service == "payment-gateway" && res.status() == reqwest::StatusCode::NOT_FOUND {
            eprintln!("api-check: skipping {service}: it serves no /openapi.json yet (404)");
            continue;
        }
        let document: Value = expect(res, 200).await.with_context(|| format!("{service}'s /openapi.json"))?;
        let (operations, excluded) = operations(&document);
        eprintln!(
            "api-check: checking {service} ({operations} operations, {} excluded) at {base}/openapi.json",
            excluded.len()
        );
        // Kept beside its config, to look a finding up in the document the run saw.
        std::fs::write(configs.join(format!("{service}.openapi.json")), serde_json::to_vec_pretty(&document)?)?;
        let config = configs.join(format!("{service}.toml"));
        std::fs::write(&config, config_toml(service, &cast, &excluded))?;
        let reports = root.join("reports").join(service);
        let mut cmd = tokio::process::Command::new(schemathesis);
        cmd.current_dir(root)
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args(["--checks", CHECKS])
            .args(["--max-examples", &options.max_examples.to_string(), "--seed", &options.seed.to_string()])
            // Stateful needs links between operations, which the documents do not declare.
            .args(["--phases", "examples,coverage,fuzzing"])
            // POST /orders may wait up to 30 s for its saga (`Prefer: wait`).
            .args(["--workers", &options.workers.to_string(), "--request-timeout", "40"])
            .args(["--no-color", "--generation-database", "none", "--report", "junit,vcr"])
            .arg("--report-dir")
            .arg(&reports)
            .env(ADMIN_TOKEN_ENV, &cast.admin_token)
            .env(Who::Customer.token_env(), &cast.customer_token)
            .env(Who::Seller.token_env(), &cast.seller_token)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let status = cmd.status().await.with_context(|| format!("cannot run {}", schemathesis.display()))?;
        eprintln!(
            "api-check: {service}: {}",
            if status.success() { "nothing found" } else { "FOUND PROBLEMS (above)" }
        );
        runs.push((service, status.success()));
        // A process that died under the fuzzing is a finding of its own, which the next
        // document's run must not hide behind refused connections (nothing restarts it here).
        for name in SERVICES {
            let live = http.get(format!("{}/health/live", layout.url(name))).send().await;
            if !live.is_ok_and(|res| res.status().is_success()) {
                let logs = layout.logs.as_ref().map_or_else(String::new, |d| d.display().to_string());
                bail!("{name} no longer answers after schemathesis ran on {service}; its log is in {logs}");
            }
        }
    }
    Ok(runs)
}

/// How many operations `document` holds, and those of [`EXCLUDED`] among them (schemathesis
/// warns of a filter that matches nothing).
fn operations(document: &Value) -> (usize, Vec<(&'static str, &'static str)>) {
    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
    let mut all = 0;
    let mut excluded = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            all += 1;
            excluded.extend(EXCLUDED.iter().filter(|(m, p)| m.eq_ignore_ascii_case(method) && p == path));
        }
    }
    (all, excluded)
}

/// The accounts and data the generated requests act as and on.
struct Cast {
    admin_token: String,
    seller_token: String,
    seller_id: String,
    customer_token: String,
    customer_id: String,
    product_id: String,
    order_id: String,
    payment_id: String,
    /// The business day (`YYYY-MM-DD`) the order's sale is booked on.
    business_date: String,
}

/// The admin; a seller with a product; a customer with a paid order for it, booked in the ledger.
async fn cast(http: &reqwest::Client, endpoints: &Endpoints, options: &Options) -> Result<Cast> {
    let admin_token = audit::login(http, &endpoints.user, &options.admin_email, &options.admin_password).await?;
    own_stack::until_tokens_accepted(http, endpoints, &admin_token).await?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let seller_token = sign_up(http, endpoints, &format!("seller-{run}@api-check.local"), "SELLER").await?;
    let customer_token = sign_up(http, endpoints, &format!("customer-{run}@api-check.local"), "CUSTOMER").await?;
    let me = |token: &str| http.get(format!("{}/users/me", endpoints.user)).bearer_auth(token.to_owned()).send();
    let seller_id = id_of(&expect(me(&seller_token).await?, 200).await?)?;
    let customer_id = id_of(&expect(me(&customer_token).await?, 200).await?)?;

    let body = json!({"name": "API check lamp", "price": 12_500, "stock": 1_000, "category": "api-check"});
    let res =
        http.post(format!("{}/products", endpoints.product)).bearer_auth(&seller_token).json(&body).send().await?;
    let product_id = id_of(&expect(res, 201).await?)?;
    let body = json!({"productId": product_id, "quantity": 1, "paymentMethod": "CARD"});
    let res = http
        .post(format!("{}/orders", endpoints.order))
        .bearer_auth(&customer_token)
        .header("Prefer", "wait=10")
        .json(&body)
        .send()
        .await?;
    let order = expect(res, 201).await.context("the order did not end PAID")?;
    let order_id = id_of(&order)?;
    let payment_id = order["paymentId"].as_str().context("the paid order names no payment")?.to_owned();
    let business_date = booked_on(http, endpoints, &admin_token, &order_id).await?;
    Ok(Cast {
        admin_token,
        seller_token,
        seller_id,
        customer_token,
        customer_id,
        product_id,
        order_id,
        payment_id,
        business_date,
    })
}

fn id_of(body: &Value) -> Result<String> {
    Ok(body["id"].as_str().with_context(|| format!("no id in {body}"))?.to_owned())
}

/// The business date of the order's sale, once svc-settlement has booked it (10 s at most).
async fn booked_on(http: &reqwest::Client, endpoints: &Endpoints, admin: &str, order_id: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = http.get(format!("{}/admin/ledger?size=100", endpoints.settlement)).bearer_auth(admin).send().await?;
        let page = expect(res, 200).await?;
        let entry = page["items"].as_array().into_iter().flatten().find(|e| e["orderId"] == order_id);
        if let Some(date) = entry.and_then(|e| e["businessDate"].as_str()) {
            return Ok(date.to_owned());
        }
        if Instant::now() >= deadline {
            bail!("svc-settlement booked no sale for order {order_id} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The schemathesis config for `service`: tokens (by environment variable), `excluded`, and
/// the made data's values offered for its parameters (each drawn half the time, so generated
/// ones, valid and invalid, are still sent).
fn config_toml(service: &str, cast: &Cast, excluded: &[(&str, &str)]) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
    // No cache: what an earlier run learnt would make this one send other requests.
    let mut toml = "# Written by `shopctl api-check` (shopctl/src/api_check.rs) on every run.\n\n".to_owned();
    toml += "[cache]\nenabled = false\n\n";
    let dictionaries: [(&str, &[&str]); 8] = [
        ("user-ids", &[&cast.customer_id, &cast.seller_id]),
        ("seller-ids", &[&cast.seller_id]),
        ("product-ids", &[&cast.product_id]),
        ("order-ids", &[&cast.order_id]),
        ("payment-ids", &[&cast.payment_id]),
        ("dates", &[&cast.business_date]),
        ("months", &[cast.business_date.get(..7).unwrap_or(&cast.business_date)]),
        ("services", &SERVICES[..5]),
    ];
    toml += "[dictionaries]\n";
    for (name, values) in dictionaries {
        let values: Vec<String> = values.iter().map(|v| q(v)).collect();
        let _ = writeln!(toml, "{name} = {{ values = [{}] }}", values.join(", "));
    }
    // What `id` means depends on the service; the other names mean the same everywhere.
    let path_id = match service {
        "svc-user" => Some("user-ids"),
        "svc-product" => Some("product-ids"),
        "svc-order" => Some("order-ids"),
        "svc-payment" => Some("payment-ids"),
        _ => None,
    };
    let parameters = path_id.map(|d| ("path.id", d)).into_iter().chain([
        ("query.sellerId", "seller-ids"),
        // The saga console's filters and its dead letters' owners (svc-order).
        ("query.user", "user-ids"),
        ("query.product", "product-ids"),
        ("path.service", "services"),
        ("query.orderId", "order-ids"),
        ("query.date", "dates"),
        ("query.month", "months"),
        ("body.productId", "product-ids"),
    ]);
    toml += "\n[parameters]\n";
    for (key, dictionary) in parameters {
        let _ = writeln!(toml, "{} = {{ dictionary = {}, probability = 0.5 }}", q(key), q(dictionary));
    }
    if service != "payment-gateway" {
        let _ = write!(toml, "\n[headers]\nAuthorization = \"Bearer ${{{ADMIN_TOKEN_ENV}}}\"\n");
    }
    // One filter per entry: schemathesis lets an operation in when any of an entry's filters
    // matches it, so `include-method` beside `include-path` would take in every GET.
    for (_, name_regex, who) in OWNERS.iter().filter(|(s, ..)| *s == service) {
        let _ = write!(
            toml,
            "\n[[operations]]\ninclude-name-regex = {}\nheaders = {{ Authorization = \"Bearer ${{{}}}\" }}\n",
            q(name_regex),
            who.token_env()
        );
    }
    for (method, path) in excluded {
        let _ = write!(toml, "\n[[operations]]\ninclude-name = {}\nenabled = false\n", q(&format!("{method} {path}")));
    }
    toml
}
