//! The browser tooling `shopctl console-check` drives the saga console with: Debian's Chromium
//! and, in the project venv (`.tools/venv`, the one nats-server comes from), Playwright and
//! nats-py at pinned versions.
//!
//! Playwright is told never to download browsers of its own (`PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD`):
//! it drives the system Chromium, so nothing but PyPI packages and one apt package is fetched.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use crate::checkout::Checkout;
use crate::proc::run_quietly as run;

/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The Playwright for Python the console check is written against.
pub const PLAYWRIGHT_VERSION: &str = "1.65.2";
/// The NATS client it hand-publishes events with.
pub const NATS_PY_VERSION: &str = "2.16.0";

/// What Playwright needs in its environment wherever shopctl runs it.
pub const PLAYWRIGHT_ENV: (&str, &str) = ("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");

/// Makes sure Chromium and the venv's Playwright and nats-py are installed, installing what is
/// missing; returns the venv's Python.
pub fn ensure(checkout: &Checkout) -> Result<PathBuf> {
    ensure_chromium()?;
    ensure_packages(checkout, &[("playwright", PLAYWRIGHT_VERSION), ("nats-py", NATS_PY_VERSION)])
}

fn ensure_chromium() -> Result<()> {
    if Path::new(CHROMIUM).is_file() {
        return Ok(());
    }
    // Only root may install; anyone else is told the command rather than asked for a password.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        bail!(
            "{CHROMIUM} is missing: install Debian's Chromium with `sudo apt-get install -y chromium`, then run again"
        );
    }
    eprintln!("shopctl: {CHROMIUM} is missing; installing Debian's chromium with apt-get");
    let install =
        || run(Command::new("apt-get").args(["install", "-y", "chromium"]).env("DEBIAN_FRONTEND", "noninteractive"));
    if install().is_err() {
        // A fresh container has no package lists yet.
        eprintln!("shopctl: apt-get install failed; updating the package lists and trying again");
        run(Command::new("apt-get").arg("update"))?;
        install()?;
    }
    if !Path::new(CHROMIUM).is_file() {
        bail!("apt-get installed chromium, yet {CHROMIUM} is still missing");
    }
    Ok(())
}

/// The project venv's Python with `packages` (name, version) installed, installing those missing
/// (Playwright, should it be among them, told never to download a browser).
pub fn ensure_packages(checkout: &Checkout, packages: &[(&str, &str)]) -> Result<PathBuf> {
    let python = ensure_venv(checkout)?;
    let missing: Vec<String> = packages
        .iter()
        .filter(|(name, version)| installed_version(&python, name).as_deref() != Some(*version))
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    if !missing.is_empty() {
        eprintln!("shopctl: installing {} into {}", missing.join(" "), python.display());
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(&missing)
            .env(PLAYWRIGHT_ENV.0, PLAYWRIGHT_ENV.1))?;
    }
    Ok(python)
}

/// The project venv's Python, creating the venv if it has none that runs.
fn ensure_venv(checkout: &Checkout) -> Result<PathBuf> {
    let venv = checkout.tools_dir().join("venv");
    let python = venv.join("bin").join("python");
    let works = Command::new(&python).args(["-c", ""]).stdin(Stdio::null()).status().is_ok_and(|s| s.success());
    if !works {
        eprintln!("shopctl: creating Python venv {}", venv.display());
        run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv))?;
    }
    Ok(python)
}

/// The version of the distribution `name` installed for `python`, if any.
fn installed_version(python: &Path, name: &str) -> Option<String> {
    let script = format!("import importlib.metadata as m; print(m.version({name:?}))");
    let out = Command::new(python).args(["-c", &script]).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
