//! `shopctl console-check` as part of the suite: the saga console in headless Chromium against
//! the whole system as separate processes (the binaries this test build made). Needs Debian's
//! Chromium and, in `.tools/venv`, Playwright and nats-py, which `console-check` installs when
//! they are missing.

use std::process::Command;

mod support;

#[test]
fn the_saga_console_shows_live_sagas_stuck_ones_timelines_and_replays_a_fixed_dead_letter() {
    let (shopctl, bin_dir) = support::built();
    let data = tempfile::tempdir().expect("temp dir");
    let screenshots = data.path().join("screenshots");
    // Ports of their own, away from `./shop up`'s and console-check's default, and below the
    // kernel's ephemeral range (32768 and up), where a client connection may hold one.
    let offset = 16_000 + (std::process::id() % 20) as u16 * 100;
    let out = Command::new(shopctl)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["console-check", "--port-offset", &offset.to_string()])
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--data-dir")
        .arg(data.path().join("stack"))
        .arg("--screenshots")
        .arg(&screenshots)
        .output()
        .expect("shopctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "console-check failed ({}):\n{stdout}\n--- stderr ---\n{stderr}", out.status);
    assert!(stdout.contains("console-check: PASSED"), "{stdout}");
    for view in ["login", "overview", "feed", "stuck", "saga", "dead-letters"] {
        let shot = screenshots.join(format!("{view}.png"));
        assert!(shot.is_file(), "no screenshot of the {view} view in {}:\n{stdout}", screenshots.display());
    }
}
