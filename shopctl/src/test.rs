//! `shopctl test`: the workspace test suite, against the pinned nats-server.

use std::env;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::checkout::Checkout;
use crate::nats::ensure_nats_server;
use crate::proc::cargo;

pub fn run(checkout: &Checkout, extra_args: &[String]) -> Result<ExitCode> {
    let nats_server = ensure_nats_server(checkout)?;
    eprintln!("shopctl: testing with NATS_SERVER_BIN={}", nats_server.display());

    let mut cmd = Command::new(cargo());
    cmd.current_dir(checkout.root()).args(cargo_test_args(extra_args)).env("NATS_SERVER_BIN", &nats_server);
    // Tests must never write snapshots unless the developer asks for it explicitly.
    if env::var_os("INSTA_UPDATE").is_none() {
        cmd.env("INSTA_UPDATE", "no");
    }
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;

    Ok(match status.code() {
        // Exit codes are 0..=255 on Unix, so this never saturates in practice.
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Killed by a signal: report it the way shells do (128 + signal number).
        None => ExitCode::from(status.signal().and_then(|s| u8::try_from(128 + s).ok()).unwrap_or(1)),
    })
}

/// `cargo test` arguments: the whole workspace unless the caller picks packages itself
/// (cargo would silently ignore `-p` next to `--workspace`).
fn cargo_test_args(extra: &[String]) -> Vec<String> {
    // Only look before a `--`: what follows goes to the test binaries.
    let cargo_part = extra.split(|a| a == "--").next().unwrap_or_default();
    let picks_packages = cargo_part
        .iter()
        .any(|a| a == "-p" || a == "--package" || a.starts_with("--package=") || is_short_p_with_value(a));
    let mut args = vec!["test".to_owned()];
    if !picks_packages {
        args.push("--workspace".to_owned());
    }
    args.push("--all-targets".to_owned());
    args.extend(extra.iter().cloned());
    args
}

/// `-pcommon` is cargo's short form of `-p common`.
fn is_short_p_with_value(arg: &str) -> bool {
    arg.strip_prefix("-p").is_some_and(|rest| !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Vec<String> {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        cargo_test_args(&extra)
    }

    #[test]
    fn whole_workspace_by_default() {
        assert_eq!(args(&[]), ["test", "--workspace", "--all-targets"]);
        assert_eq!(
            args(&["--release", "--", "--nocapture"]),
            ["test", "--workspace", "--all-targets", "--release", "--", "--nocapture"]
        );
    }

    #[test]
    fn explicit_packages_replace_workspace() {
        assert_eq!(args(&["-p", "common"]), ["test", "--all-targets", "-p", "common"]);
        assert_eq!(args(&["-pcommon"]), ["test", "--all-targets", "-pcommon"]);
        assert_eq!(args(&["--package=common"]), ["test", "--all-targets", "--package=common"]);
    }

    #[test]
    fn test_binary_args_do_not_count_as_packages() {
        assert_eq!(args(&["--", "-p"]), ["test", "--workspace", "--all-targets", "--", "-p"]);
    }
}
