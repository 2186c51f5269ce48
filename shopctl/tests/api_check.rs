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
    // Ports of their own, away from `./shop up`'s and the other stack tests', and below the
    // kernel's ephemeral range (32768 and up), where a client connection may hold one.
    let offset = 4_000 + (std::process::id() % 20) as u16 * 100;
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
    for service in ["svc-user", "svc-product", "svc-order", "svc-payment", "svc-settlement"] {
        assert!(stderr.contains(&format!("api-check: schemathesis on {service} ")), "{service} was not checked");
    }
    // Each service's run reports its requests; none may have found anything.
    let runs = stdout.matches(" generated, ").count();
    assert_eq!(runs, 5, "one schemathesis run per service:\n{stdout}");
    assert!(!stdout.contains(" failures"), "{stdout}");
    assert!(stdout.contains("api-check: PASSED"), "{stdout}");
}
