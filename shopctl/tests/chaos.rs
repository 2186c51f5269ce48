//! A small `shopctl chaos` run as part of the suite: the whole system as separate processes (the
//! binaries this test build made), 240 orders over 12 s, a fault every half second, then the
//! audit. The full run (2,000 orders) is `./shop chaos`; its figures are in
//! docs/FAILURE-SCENARIOS.md.

use std::process::Command;

mod support;

#[test]
fn a_short_chaos_run_loses_nothing_leaves_nothing_stuck_and_applies_nothing_twice() {
    let (shopctl, bin_dir) = support::built();
    let data = tempfile::tempdir().expect("temp dir");
    // Ports of their own, away from `./shop up`'s and from the default chaos offset.
    let offset = 20_000 + (std::process::id() % 20) as u16 * 100;
    let out = Command::new(shopctl)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["chaos", "--orders", "240", "--rate", "20", "--concurrency", "4", "--fault-every-ms", "500"])
        .args(["--seed", "7", "--port-offset", &offset.to_string()])
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .expect("shopctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chaos failed ({}):\n{stdout}\n--- stderr ---\n{stderr}", out.status);
    for line in ["lost                 0", "stuck                0", "duplicate effects    0", "unpublished rows     0"]
    {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
    let faults: usize = stderr.lines().filter(|l| l.starts_with("chaos: ") && l.contains(" s  ")).count();
    // A fault every half second over 12 s of load; fewer when the machine is busy (a fault waits
    // for the one before it), but never a run without them.
    assert!(faults >= 5, "only {faults} faults were applied:\n{stderr}");
    assert!(stdout.contains("chaos: PASSED"), "{stdout}");
}
