//! `shopctl api-check` as part of the suite: schemathesis fuzzes every service's OpenAPI document
//! against the whole system as separate processes (the binaries this test build made); nothing
//! may answer a 5xx or anything the document does not describe. Installs the pinned
//! schemathesis into `.tools/venv` when it is missing.

use std::process::Command;

mod support;

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_the_documents_do_not_describe() {
    let (shopctl, bin_dir) = support::built();
    let data = tempfile::tempdir().expect("temp dir");
    // Ports of their own, below the kernel's ephemeral range (32768 and up), where a client
    // connection may hold one. The offset ends in 50: every other stack (`./shop up`, the other
    // stack tests, the defaults) shifts by whole hundreds, so none of their ports is one of these.
    let offset = 4_050 + (std::process::id() % 20) as u16 * 100;
    let out = Command::new(shopctl)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["api-check", "--port-offset", &offset.to_string()])
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .expect("shopctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "api-check failed ({}):\n{stdout}\n--- stderr ---\n{stderr}", out.status);
    let services = ["svc-user", "svc-product", "svc-order", "svc-payment", "svc-settlement"];
    for service in services {
        assert!(stderr.contains(&format!("api-check: checking {service} (")), "{service} was not checked:\n{stderr}");
        assert!(stderr.contains(&format!("api-check: {service}: nothing found")), "{stderr}");
    }
    // The gateway is checked once it serves a document, and says so when it does not.
    assert!(
        stderr.contains("api-check: checking payment-gateway (")
            || stderr.contains("api-check: skipping payment-gateway"),
        "{stderr}"
    );
    // Each run reports what it sent; a run that sent nothing would pass without checking.
    let runs: Vec<&str> = stdout.lines().filter(|l| l.contains(" generated, ")).collect();
    assert!(runs.len() >= services.len(), "one schemathesis run per document:\n{stdout}");
    assert!(runs.iter().all(|l| l.trim_end().ends_with(" passed") && !l.contains(" 0 generated")), "{stdout}");
    assert!(stdout.contains("api-check: PASSED"), "{stdout}");
}
