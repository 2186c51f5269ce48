//! `compose.yaml` against what it claims to run. No Docker engine runs where msa-shop is built,
//! so these tests read the file (anchors and merge keys resolved, as compose does) and hold it to
//! the truth in code: every variable it sets is one the binary reads, every port and health check
//! is the service's own as `./shop up` runs it, its NATS is the pinned server with the project's
//! config and users, and `./shop up`'s settings are there too.

use std::collections::BTreeMap;

use clap::CommandFactory;
use serde_yaml_ng::Value;

use crate::nats::NATS_SERVER_VERSION;
use crate::up::{ADMIN_DEFAULTS, DEV_DEFAULTS, RUNTIME_DEFAULTS, SERVICES};

const COMPOSE: &str = include_str!("../../compose.yaml");
const DOCKERFILE: &str = include_str!("../../Dockerfile");

/// Variables a binary reads outside its flags: the log filter and format, the tokio runtime's
/// worker count.
const READ_OUTSIDE_FLAGS: &[&str] = &["RUST_LOG", "LOG_FORMAT", "TOKIO_WORKER_THREADS"];

fn compose() -> Value {
    let mut doc: Value = serde_yaml_ng::from_str(COMPOSE).expect("compose.yaml is YAML");
    doc.apply_merge().expect("compose.yaml's merge keys resolve");
    doc
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["services"].get(name).unwrap_or_else(|| panic!("compose.yaml has no service {name}"))
}

/// A service's `environment`, as strings.
fn environment(service: &Value) -> BTreeMap<String, String> {
    let map = service["environment"].as_mapping().expect("environment is a mapping");
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("{k:?}: an environment value that is not a scalar: {other:?}"),
            };
            (k.as_str().expect("variable names are strings").to_owned(), value)
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_sequence().into_iter().flatten().map(|v| v.as_str().expect("a string").to_owned()).collect()
}

/// The environment variables a binary's flags are read from.
fn flag_env(name: &str) -> Vec<String> {
    let command = match name {
        "svc-user" => svc_user::Config::command(),
        "svc-product" => svc_product::Config::command(),
        "svc-order" => svc_order::Config::command(),
        "svc-payment" => svc_payment::Config::command(),
        "svc-settlement" => svc_settlement::Config::command(),
        "payment-gateway" => payment_gateway::Config::command(),
        other => panic!("no binary {other}"),
    };
    command.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect()
}

#[test]
fn compose_runs_exactly_the_services_shop_up_runs_and_nats() {
    let doc = compose();
    let mut names: Vec<String> =
        doc["services"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()).collect();
    names.sort();
    let mut expected: Vec<String> = SERVICES.iter().map(|s| s.name.to_owned()).chain(["nats".into()]).collect();
    expected.sort();
    assert_eq!(names, expected);
    for s in SERVICES {
        assert_eq!(strings(&service(&doc, s.name)["command"]), [s.name], "{}: runs its own binary", s.name);
    }
}

#[test]
fn every_environment_variable_compose_sets_is_one_the_binary_reads() {
    let doc = compose();
    for s in SERVICES {
        let reads = flag_env(s.name);
        for var in environment(service(&doc, s.name)).keys() {
            assert!(
                reads.contains(var) || READ_OUTSIDE_FLAGS.contains(&var.as_str()),
                "{}: compose sets {var}, which the binary does not read (it reads {reads:?})",
                s.name
            );
        }
    }
}

#[test]
fn each_service_listens_publishes_and_is_checked_on_its_own_port() {
    let doc = compose();
    for s in SERVICES {
        let svc = service(&doc, s.name);
        let env = environment(svc);
        assert_eq!(env["HTTP_ADDR"], format!("0.0.0.0:{}", s.port), "{}", s.name);
        assert_eq!(strings(&svc["ports"]), [format!("127.0.0.1:{0}:{0}", s.port)], "{}: ./shop up's port", s.name);
        let check = strings(&svc["healthcheck"]["test"]);
        let url = format!("http://127.0.0.1:{}/health/ready", s.port);
        assert!(
            check.first().is_some_and(|c| c == "CMD") && check.contains(&url),
            "{}: health check {check:?}",
            s.name
        );
        // The check's tool is in the image.
        assert!(DOCKERFILE.contains(&format!("install -y --no-install-recommends {}", check[1])), "{}", check[1]);
        // Its database is on its own volume.
        assert_eq!(env["DATA_DIR"], "/data", "{}", s.name);
        let volumes = strings(&svc["volumes"]);
        assert!(volumes.len() == 1 && volumes[0].ends_with(":/data"), "{}: {volumes:?}", s.name);
        let volume = volumes[0].split(':').next().unwrap();
        assert!(doc["volumes"].get(volume).is_some(), "{}: volume {volume} is declared", s.name);
    }
}

#[test]
fn shop_ups_settings_are_compose_settings_too() {
    let doc = compose();
    for s in SERVICES {
        let env = environment(service(&doc, s.name));
        let reads = flag_env(s.name);
        for (var, value) in ADMIN_DEFAULTS.iter().chain(&DEV_DEFAULTS) {
            if reads.iter().any(|r| r == var) {
                let set = env.get(*var).unwrap_or_else(|| panic!("{}: ./shop up sets {var}", s.name));
                // A default the user may override: `${ADMIN_EMAIL:-admin@msa-shop.local}`.
                assert!(set == value || set == &format!("${{{var}:-{value}}}"), "{}: {var} = {set}", s.name);
            }
        }
        for (var, value) in RUNTIME_DEFAULTS {
            assert_eq!(env.get(var).map(String::as_str), Some(value), "{}: {var}", s.name);
        }
        if s.name == "svc-payment" {
            assert_eq!(env["GATEWAY_URL"], "http://payment-gateway:8090");
            let after = doc["services"]["svc-payment"]["depends_on"]["payment-gateway"]["condition"].as_str();
            assert_eq!(after, Some("service_healthy"), "svc-payment starts once the gateway is ready");
        }
    }
}

#[test]
fn nats_is_the_pinned_server_with_the_projects_config_and_users() {
    let doc = compose();
    let nats = service(&doc, "nats");
    assert_eq!(nats["image"].as_str(), Some(format!("nats:{NATS_SERVER_VERSION}-alpine").as_str()));
    let volumes = strings(&nats["volumes"]);
    for file in ["nats-server.conf", "accounts.conf"] {
        assert!(volumes.contains(&format!("./nats/{file}:/etc/nats/{file}:ro")), "{file} is mounted: {volumes:?}");
    }
    let command = strings(&nats["command"]);
    assert_eq!(&command[..2], ["-c", "/etc/nats/nats-server.conf"]);
    // nats-server reads every user's password from its environment (nats/accounts.conf): each is
    // set, and each service connects as its own user with that same password.
    let nats_env = environment(nats);
    for var in [common::permissions::OPERATOR_USER_ENV, common::permissions::OPERATOR_PASSWORD_ENV] {
        assert!(nats_env.contains_key(var), "nats: {var}");
    }
    for user in common::permissions::SERVICES {
        let var = common::permissions::password_env(user.name);
        let password = nats_env.get(&var).unwrap_or_else(|| panic!("nats: {var}"));
        assert!(password.starts_with(&format!("${{{var}:-")), "{var} can be set from outside: {password}");
        let env = environment(service(&doc, user.name));
        assert_eq!(env["NATS_USER"], user.name, "{} connects as itself", user.name);
        assert_eq!(&env["NATS_PASSWORD"], password, "{} uses its own password", user.name);
        assert_eq!(env["NATS_URL"], "nats://nats:4222");
        let after = doc["services"][user.name]["depends_on"]["nats"]["condition"].as_str();
        assert_eq!(after, Some("service_healthy"), "{} starts once NATS is ready", user.name);
    }
    let store = include_str!("../../nats/nats-server.conf")
        .lines()
        .find_map(|l| l.trim().strip_prefix("store_dir:"))
        .map(|v| v.trim().trim_matches('"').trim_start_matches("./").to_owned())
        .expect("the config sets store_dir");
    assert!(volumes.iter().any(|v| v.ends_with(&format!(":/{store}"))), "JetStream's store {store} is a volume");
    assert!(strings(&nats["healthcheck"]["test"]).iter().any(|a| a.contains(":8222/healthz")));
}
