//! What the tests that run whole stacks through `shopctl` (chaos, console, load) share.

use std::path::Path;

/// The shopctl this test build made, and the folder beside it that holds every service binary
/// (the whole suite, `./shop test`, builds them all; a filtered `cargo test` may not have).
pub fn built() -> (&'static Path, &'static Path) {
    let shopctl = Path::new(env!("CARGO_BIN_EXE_shopctl"));
    let bin_dir = shopctl.parent().expect("the binaries' folder");
    for service in ["svc-user", "svc-product", "svc-order", "svc-payment", "svc-settlement", "payment-gateway"] {
        assert!(
            bin_dir.join(service).is_file(),
            "{service} is not built in {}: run the whole suite (`./shop test`), which builds every binary",
            bin_dir.display()
        );
    }
    (shopctl, bin_dir)
}
