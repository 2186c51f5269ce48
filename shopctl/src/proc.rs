//! Child-process plumbing shared by the subcommands: graceful termination without `unsafe`
//! (the workspace forbids it, so no libc/nix), and signal handling for `shopctl up`.

use std::io;
use std::os::fd::AsFd;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Instant, timeout_at};

/// A `Stdio` writing to our stderr, so a child's chatter never mixes with what we print on
/// stdout (e.g. the path printed by `ensure-nats`).
pub fn stdout_to_stderr() -> Result<Stdio> {
    let fd = io::stderr().as_fd().try_clone_to_owned().context("cannot duplicate stderr")?;
    Ok(Stdio::from(fd))
}

/// Runs `cmd` to its end (an installer: python, pip, apt-get) with its output on our stderr,
/// stdout being for results; an error names the command.
pub fn run_quietly(cmd: &mut std::process::Command) -> Result<()> {
    let what = format!("{cmd:?}");
    let status =
        cmd.stdin(Stdio::null()).stdout(stdout_to_stderr()?).status().with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed: {status}");
    }
    Ok(())
}

/// The cargo that runs us if we run under cargo, else the one on `PATH`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// A child process we started and must stop.
pub struct Managed {
    pub name: String,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Managed {
    /// Spawns `cmd`. `kill_on_drop` is the last resort: if shopctl unwinds without shutting down
    /// properly, tokio still SIGKILLs the child rather than leaving an orphan.
    pub fn spawn(name: impl Into<String>, cmd: &mut Command) -> Result<Self> {
        let name = name.into();
        let child = cmd
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.as_std().get_program()))?;
        Ok(Self { name, child, exited: None })
    }

    /// The child's stdout, if it was spawned with `Stdio::piped()` and not taken before.
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The exit status if the child has exited (reaping it), `None` while it runs.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            // An error here means the child was already reaped elsewhere, which we never do;
            // treat it as still running so shutdown still tries to stop it.
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Asks the child to exit with SIGTERM, through kill(1) because sending signals other than
    /// SIGKILL needs libc (and `unsafe`) otherwise.
    ///
    /// Safe against pid reuse: the pid stays reserved until we reap the child, and we only
    /// signal a child that `try_wait` has just reported as not yet reaped.
    pub fn terminate(&mut self) -> Result<()> {
        if self.try_exit_status().is_some() {
            return Ok(());
        }
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stdin(Stdio::null())
            .status()
            .context("cannot run kill(1)")?;
        // kill fails if the process became a zombie meanwhile; that is fine if it has exited.
        if !status.success() && self.try_exit_status().is_none() {
            bail!("`kill -TERM {pid}` ({}) failed: {status}", self.name);
        }
        Ok(())
    }

    /// Waits for the child to exit.
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let status = self.child.wait().await.with_context(|| format!("cannot wait for {}", self.name))?;
        self.exited = Some(status);
        Ok(status)
    }

    /// Waits for the child to exit until `deadline`; `None` if it is still running then.
    pub async fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        if let Some(status) = self.exited {
            return Some(status);
        }
        if let Ok(Ok(status)) = timeout_at(deadline, self.child.wait()).await {
            self.exited = Some(status);
        }
        self.exited
    }

    /// SIGKILLs the child (if still running) and reaps it.
    pub async fn kill(&mut self) {
        if self.try_exit_status().is_some() {
            return;
        }
        if let Err(err) = self.child.kill().await {
            eprintln!("shopctl: cannot kill {}: {err}", self.name);
        }
        self.exited = self.child.try_wait().ok().flatten();
    }

    /// SIGTERM, then up to `grace` to exit, then SIGKILL. A further signal from the user cuts
    /// the grace period short.
    pub async fn stop(&mut self, grace: Duration, signals: &mut Signals) {
        stop_all(std::slice::from_mut(self), grace, signals).await;
    }
}

/// Stops all `children` together: SIGTERM to each, then one shared grace period for all of them
/// to exit, then SIGKILL for stragglers. A further signal from the user (a second Ctrl-C) ends
/// the grace period at once.
pub async fn stop_all(children: &mut [Managed], grace: Duration, signals: &mut Signals) {
    // Children that already died were reported when that was noticed; only stop the others.
    let mut running: Vec<&mut Managed> =
        children.iter_mut().filter_map(|c| c.try_exit_status().is_none().then_some(c)).collect();
    for child in &mut running {
        eprintln!("shopctl: stopping {}", child.name);
        if let Err(err) = child.terminate() {
            eprintln!("shopctl: {err:#}");
        }
    }
    let mut deadline = Instant::now() + grace;
    let mut cut_short = false;
    for child in running {
        let exited = tokio::select! {
            status = child.wait_until(deadline) => status,
            sig = signals.recv() => {
                eprintln!("shopctl: {sig} again: killing what is still running");
                deadline = Instant::now();
                cut_short = true;
                child.try_exit_status()
            }
        };
        match exited {
            Some(status) => report_exit(&child.name, status),
            None => {
                if !cut_short {
                    eprintln!(
                        "shopctl: {} did not exit within {}s of SIGTERM; killing it",
                        child.name,
                        grace.as_secs()
                    );
                }
                child.kill().await;
                eprintln!("shopctl: {} killed", child.name);
            }
        }
    }
}

fn report_exit(name: &str, status: ExitStatus) {
    if status.success() {
        eprintln!("shopctl: {name} stopped");
    } else {
        eprintln!("shopctl: {name} stopped ({status})");
    }
}

/// The signals that mean "shut down": Ctrl-C, `kill`, and the terminal going away.
///
/// Installing these handlers replaces the default action (death) for the whole process, so from
/// then on every wait in `up` must also watch for them.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    pub fn install() -> Result<Self> {
        let install = |kind| signal(kind).context("cannot install signal handler");
        Ok(Self {
            int: install(SignalKind::interrupt())?,
            term: install(SignalKind::terminate())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    /// Waits for the next shutdown signal and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}
