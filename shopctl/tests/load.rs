//! A short `shopctl load` run as part of the suite, on the binaries this test build made: it
//! must drive orders to their end, measure every process and print the figures it promises. The
//! figures themselves (release build, longer phases) are in docs/PERFORMANCE.md.

use std::process::Command;

mod support;

#[test]
fn a_short_load_run_ends_every_saga_paid_and_prints_its_figures() {
    let (shopctl, bin_dir) = support::built();
    let data = tempfile::tempdir().expect("temp dir");
    // Ports of their own, away from `./shop up`'s and the chaos test's, and below the kernel's
    // ephemeral range (32768 and up), where a client connection may hold one.
    let offset = 12_000 + (std::process::id() % 20) as u16 * 100;
    let out = Command::new(shopctl)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["load", "--concurrency", "1,4", "--duration-secs", "2", "--warm-up", "20", "--raw-messages", "2000"])
        .args(["--port-offset", &offset.to_string()])
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--json")
        .arg(data.path().join("figures.json"))
        .output()
        .expect("shopctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "load failed ({}):\n{stdout}\n--- stderr ---\n{stderr}", out.status);
    for line in
        ["raw JetStream publish rate", "1 client ", "4 clients ", "svc-order ", "nats-server ", "ready ms", "ratio ≥"]
    {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
    assert!(stdout.contains("load: PASSED"), "{stdout}");

    let figures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("figures.json")).expect("the JSON figures")).unwrap();
    let phases = figures["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 2, "{figures}");
    for phase in phases {
        assert!(phase["orders"].as_u64() > Some(0), "{phase}");
        assert!(phase["ordersPerSec"].as_f64() > Some(0.0), "{phase}");
        assert!(phase["cpuUsPerOrder"].as_f64() > Some(0.0), "every process's CPU time was read: {phase}");
        assert!(phase["p50Ms"].as_f64() > Some(0.0), "{phase}");
        // Four events per order on the happy path: created, reserved, completed, paid.
        assert_eq!(phase["eventsPerOrder"].as_f64(), Some(4.0), "{phase}");
    }
    assert!(figures["raw"]["defaultSync"].as_f64() > Some(0.0), "{figures}");
    assert!(figures["memory"]["svc-order"]["peakMb"].as_f64() > Some(0.0), "{figures}");
    for service in ["svc-user", "svc-product", "svc-order", "svc-payment", "svc-settlement", "payment-gateway"] {
        assert!(figures["ready"][service]["firstStartMs"].as_f64() > Some(0.0), "{service} was started: {figures}");
        assert!(figures["ready"][service]["restartMs"].as_f64() > Some(0.0), "{service} was restarted: {figures}");
    }
    assert_eq!(figures["auditClean"], true);
}
