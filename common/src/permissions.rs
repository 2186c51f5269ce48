//! Who may connect to NATS and what each may publish and subscribe, declared in code like the
//! topology ([`crate::bus`]) and rendered into `nats/accounts.conf`, which nats-server includes
//! (`./shop up`, compose) and the test harness starts every server with, so every test runs under
//! the production permissions. A test keeps the file equal to [`accounts_conf`].
//!
//! - No anonymous connection: every client is one of these users.
//! - Each service publishes only the events it owns, plus the JetStream API its stream, its
//!   durable consumers and the key watch need (ADR-32, "logical user permissions"), and reads
//!   replies only on its own inbox prefix ([`inbox_prefix`]), so no one reads another's replies.
//! - Every service answers on the NATS services API ([`crate::micro`]): it subscribes to its own
//!   `ops.<service>.>` endpoints and the `$SRV` discovery subjects, and answers through
//!   `allow_responses` (only to the reply subject of a request it received). Only the console's
//!   host ([`CONSOLE`]) and the operator may ask (publish on `ops.>`).
//! - Only svc-user writes the `auth-keys` bucket.
//! - The operator (a person, or shopctl on their behalf) watches every subject and publishes
//!   events by hand, but cannot touch the keys.
//!
//! Passwords are never in the file: nats-server reads each from its environment
//! ([`password_env`]), which `./shop up` fills from the credentials it generates on first start.

use crate::{auth::KEYS_BUCKET, bus::STREAM};

/// A service's NATS user: the events it owns and the durable consumers it reads through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceUser {
    pub name: &'static str,
    /// The subjects of the events it publishes.
    pub publishes: &'static [&'static str],
    /// Its durable consumers on the event stream.
    pub durables: &'static [&'static str],
    /// Events it reads as they are published, by core subscription (no durable, nothing
    /// acknowledged): svc-order's instances learn of each saga's end, whichever instance
    /// applied it, to wake the requests waiting on it (`Prefer: wait`).
    pub follows: &'static [&'static str],
    /// Whether it may run sharded: declare its own shard stream (`SHARDS_<SERVICE>`, sourced
    /// from the event stream and partitioned by order id, [`crate::bus::Shards`]) and a
    /// durable per shard on it.
    pub sharded: bool,
}

/// Every service, as NATS knows it.
pub const SERVICES: [ServiceUser; 5] = [
    ServiceUser { name: "svc-user", publishes: &["user.>"], durables: &[], follows: &[], sharded: false },
    ServiceUser {
        name: "svc-product",
        publishes: &["stock.>"],
        durables: &["svc-product"],
        follows: &[],
        sharded: false,
    },
    ServiceUser {
        name: "svc-order",
        publishes: &["order.>"],
        durables: &["svc-order"],
        follows: &["order.paid.*", "order.failed.*", "order.expired.*", "order.cancelled.*"],
        sharded: false,
    },
    ServiceUser {
        name: "svc-payment",
        publishes: &["payment.>"],
        durables: &["svc-payment"],
        follows: &[],
        sharded: true,
    },
    ServiceUser {
        name: "svc-settlement",
        publishes: &["settlement.>"],
        durables: &["svc-settlement"],
        follows: &[],
        sharded: false,
    },
];

/// The service that hosts the saga console: it alone (and the operator) may ask the services'
/// `ops` endpoints.
pub const CONSOLE: &str = "svc-order";

/// The one service that may write the keys bucket.
pub const KEY_OWNER: &str = "svc-user";

/// Environment variables nats-server reads the operator's name and password from.
pub const OPERATOR_USER_ENV: &str = "NATS_OPERATOR_USER";
pub const OPERATOR_PASSWORD_ENV: &str = "NATS_OPERATOR_PASSWORD";

/// The environment variable nats-server reads `user`'s password from: `NATS_PASSWORD_SVC_ORDER`.
pub fn password_env(user: &str) -> String {
    format!("NATS_PASSWORD_{}", user.to_ascii_uppercase().replace('-', "_"))
}

/// The inbox prefix of `user`'s connection: replies to its requests (PubAcks, JetStream API
/// answers, key watch deliveries) arrive below it, and only it may subscribe there.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX.{user}")
}

/// What every service may publish: its stream's API (created or updated at start), the key
/// bucket's read side (an ordered consumer for the watch, direct gets) and JetStream's account
/// info.
fn service_api() -> Vec<String> {
    let kv = format!("KV_{KEYS_BUCKET}");
    vec![
        "$JS.API.INFO".to_owned(),
        format!("$JS.API.STREAM.INFO.{STREAM}"),
        format!("$JS.API.STREAM.CREATE.{STREAM}"),
        format!("$JS.API.STREAM.UPDATE.{STREAM}"),
        format!("$JS.API.STREAM.INFO.{kv}"),
        format!("$JS.API.CONSUMER.CREATE.{kv}"),
        format!("$JS.API.CONSUMER.CREATE.{kv}.>"),
        format!("$JS.API.CONSUMER.DELETE.{kv}.>"),
        format!("$JS.API.CONSUMER.INFO.{kv}.>"),
        format!("$JS.API.DIRECT.GET.{kv}.>"),
        format!("$JS.API.STREAM.MSG.GET.{kv}"),
        format!("$JS.FC.{kv}.>"),
    ]
}

/// What `durable` on `stream` needs: create (or update) itself, its info, pull, and acknowledge.
fn durable_api(stream: &str, durable: &str) -> Vec<String> {
    vec![
        format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}.>"),
        format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"),
        format!("$JS.ACK.{stream}.{durable}.>"),
    ]
}

/// Everything `service` may publish.
pub fn service_publish(service: &ServiceUser) -> Vec<String> {
    let mut allow = service_api();
    allow.extend(service.publishes.iter().map(|s| (*s).to_owned()));
    for durable in service.durables {
        allow.extend(durable_api(STREAM, durable));
    }
    if service.sharded {
        // Its shard stream, and its durables on it (one per shard, `<service>-<shard>`: the
        // stream is the service's own, so any name on it).
        let shards = crate::bus::Shards::stream_name(service.name);
        for verb in ["CREATE", "UPDATE", "INFO"] {
            allow.push(format!("$JS.API.STREAM.{verb}.{shards}"));
        }
        allow.extend(durable_api(&shards, "*"));
    }
    if service.name == CONSOLE {
        allow.push(format!("{}.>", crate::micro::PREFIX));
    }
    if service.name == KEY_OWNER {
        allow.push(format!("$KV.{KEYS_BUCKET}.>"));
        allow.push(format!("$JS.API.STREAM.CREATE.KV_{KEYS_BUCKET}"));
        allow.push(format!("$JS.API.STREAM.UPDATE.KV_{KEYS_BUCKET}"));
    }
    allow
}

/// Everything `service` may subscribe to: its inbox, its `ops` endpoints, the events it follows,
/// and the services API's discovery subjects (`$SRV.PING`, `$SRV.INFO.<name>`, `$SRV.STATS.<name>.<id>`, ...).
pub fn service_subscribe(service: &ServiceUser) -> Vec<String> {
    let mut allow = vec![
        format!("{}.>", inbox_prefix(service.name)),
        format!("{}.{}.>", crate::micro::PREFIX, service.name),
        "$SRV.*".to_owned(),
        format!("$SRV.*.{}", service.name),
        format!("$SRV.*.{}.>", service.name),
    ];
    allow.extend(service.follows.iter().map(|s| (*s).to_owned()));
    allow
}

/// What the operator may not publish: anything that writes, replaces or removes the keys.
pub fn operator_deny() -> Vec<String> {
    let kv = format!("KV_{KEYS_BUCKET}");
    vec![
        format!("$KV.{KEYS_BUCKET}.>"),
        format!("$JS.API.STREAM.CREATE.{kv}"),
        format!("$JS.API.STREAM.UPDATE.{kv}"),
        format!("$JS.API.STREAM.DELETE.{kv}"),
        format!("$JS.API.STREAM.PURGE.{kv}"),
        format!("$JS.API.STREAM.MSG.DELETE.{kv}"),
    ]
}

fn list(items: &[String], indent: &str) -> String {
    items.iter().map(|s| format!("{indent}\"{s}\"\n")).collect()
}

/// The text of `nats/accounts.conf`.
pub fn accounts_conf() -> String {
    let mut out = String::from(
        "# Who may connect to msa-shop's NATS and what each may publish and subscribe.\n\
         # GENERATED from common/src/permissions.rs (a test keeps them equal): edit that, then run\n\
         # `cargo test -p common --test permissions` with UPDATE_ACCOUNTS_CONF=1.\n\
         # Included by nats-server.conf; the test harness starts every server with it. Passwords come\n\
         # from nats-server's environment, never from this file.\n\n\
         accounts {\n  SHOP: {\n    jetstream: enabled\n    users: [\n",
    );
    for service in &SERVICES {
        out.push_str(&format!(
            "      {{\n        user: \"{name}\"\n        password: ${env}\n        permissions: {{\n          publish: {{ allow: [\n{allow}          ] }}\n          subscribe: {{ allow: [\n{subscribe}          ] }}\n          allow_responses: true\n        }}\n      }}\n",
            name = service.name,
            env = password_env(service.name),
            allow = list(&service_publish(service), "            "),
            subscribe = list(&service_subscribe(service), "            "),
        ));
    }
    out.push_str(&format!(
        "      {{\n        user: ${OPERATOR_USER_ENV}\n        password: ${OPERATOR_PASSWORD_ENV}\n        permissions: {{\n          publish: {{ allow: [\">\"], deny: [\n{deny}          ] }}\n          subscribe: {{ allow: [\">\"] }}\n        }}\n      }}\n",
        deny = list(&operator_deny(), "            "),
    ));
    out.push_str("    ]\n  }\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_variables_are_valid_environment_names() {
        assert_eq!(password_env("svc-order"), "NATS_PASSWORD_SVC_ORDER");
        for s in &SERVICES {
            assert!(password_env(s.name).chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        }
    }

    #[test]
    fn a_service_may_publish_its_own_events_and_only_svc_user_the_keys() {
        let payment = SERVICES.iter().find(|s| s.name == "svc-payment").unwrap();
        let allowed = service_publish(payment);
        assert!(allowed.contains(&"payment.>".to_owned()));
        assert!(!allowed.iter().any(|s| s.starts_with("order.") || s.starts_with("$KV.")), "{allowed:?}");
        let user = SERVICES.iter().find(|s| s.name == KEY_OWNER).unwrap();
        assert!(service_publish(user).contains(&"$KV.auth-keys.>".to_owned()));
    }
}
