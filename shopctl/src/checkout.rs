//! The checkout shopctl works on, found at run time from the working directory.
//!
//! Never from the compile-time `CARGO_MANIFEST_DIR`: with a target folder shared by several clones
//! (`CARGO_TARGET_DIR`), a shopctl binary built in one clone can be run from another, and it must
//! then build, run and keep its state in the clone it was started from.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Files that only the msa-shop workspace root has, relative to it.
const MARKERS: [&str; 3] = ["Cargo.toml", "shopctl/Cargo.toml", "nats/nats-server.conf"];

/// A msa-shop checkout: the workspace root and the paths `shopctl` uses inside it.
#[derive(Debug, Clone)]
pub struct Checkout {
    root: PathBuf,
}

impl Checkout {
    /// The checkout containing `start` (the working directory: `./shop` runs shopctl from the
    /// root; run directly, shopctl works from any folder of the checkout).
    pub fn containing(start: &Path) -> Result<Self> {
        for dir in start.ancestors() {
            if MARKERS.iter().all(|m| dir.join(m).is_file()) {
                return Ok(Self { root: dir.to_path_buf() });
            }
        }
        bail!(
            "{} is not inside a msa-shop checkout (no folder above it has {}); run ./shop from the checkout",
            start.display(),
            MARKERS.join(", ")
        )
    }

    /// The workspace root: the folder holding the workspace `Cargo.toml` and `./shop`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where project-local tools (the Python venv with nats-server) are installed.
    pub fn tools_dir(&self) -> PathBuf {
        self.root.join(".tools")
    }

    /// Where `shopctl up` keeps the state of NATS and the services between runs.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join(".data")
    }

    /// The nats-server configuration `shopctl up` starts NATS with.
    pub fn nats_conf(&self) -> PathBuf {
        self.root.join("nats/nats-server.conf")
    }

    /// The configuration of node `node` (1, 2, 3) of the cluster `shopctl up --cluster` starts.
    pub fn nats_cluster_conf(&self, node: u16) -> PathBuf {
        self.root.join(format!("nats/cluster/node-{node}.conf"))
    }

    /// `<dir or .data/<service>>/<service>.db`, the layout `shopctl up` and the services use.
    pub fn service_db(&self, service: &str, dir: Option<&Path>) -> PathBuf {
        let dir = dir.map_or_else(|| self.service_data_dir(service), Path::to_path_buf);
        dir.join(format!("{service}.db"))
    }

    /// A service's `DATA_DIR` under `shopctl up`.
    pub fn service_data_dir(&self, service: &str) -> PathBuf {
        self.data_dir().join(service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_checkout() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for marker in MARKERS {
            let path = dir.path().join(marker);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        dir
    }

    #[test]
    fn the_checkout_is_found_from_its_root_and_from_any_folder_inside_it() {
        let dir = fake_checkout();
        let inside = dir.path().join("svc-order/src");
        std::fs::create_dir_all(&inside).unwrap();
        assert_eq!(Checkout::containing(dir.path()).unwrap().root(), dir.path());
        assert_eq!(Checkout::containing(&inside).unwrap().root(), dir.path());
    }

    #[test]
    fn a_folder_outside_any_checkout_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap(); // some other Rust project
        let err = Checkout::containing(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&*dir.path().to_string_lossy()), "{err}");
    }

    #[test]
    fn a_service_database_follows_the_up_layout() {
        let checkout = Checkout { root: PathBuf::from("/repo") };
        assert_eq!(checkout.service_db("svc-order", None), Path::new("/repo/.data/svc-order/svc-order.db"));
        assert_eq!(checkout.service_db("svc-order", Some(Path::new("/x"))), Path::new("/x/svc-order.db"));
    }
}
