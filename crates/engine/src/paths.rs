//! Where the engine keeps things: persistent state under `--root`,
//! what dies with the machine (runtime state, mounted rootfs, monitor
//! sockets) under `--runroot`. Every path is derived here, nowhere else.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub runroot: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>, runroot: impl Into<PathBuf>) -> Paths {
        Paths {
            root: root.into(),
            runroot: runroot.into(),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.root.join("berth.db")
    }

    /// The image store's root (content, snapshots, image records).
    pub fn image_root(&self) -> &Path {
        &self.root
    }

    /// Where every container's directory and bundle are.
    pub fn container_parents(&self) -> [PathBuf; 2] {
        [
            self.root.join("containers"),
            self.runroot.join("containers"),
        ]
    }

    /// Persistent per-container files: the json-file log.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    pub fn log_file(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    /// The OCI bundle: config.json and the mount point of the rootfs.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.runroot.join("containers").join(id)
    }

    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.bundle(id).join("rootfs")
    }

    /// `--userns auto`: where the idmapped views of the container's
    /// layers (while its root is mounted) and volumes are mounted.
    pub fn idmapped(&self, id: &str) -> PathBuf {
        self.bundle(id).join("idmapped")
    }

    /// The monitor's socket: `wait` and `logs -f` learn the exit here.
    pub fn monitor_socket(&self, id: &str) -> PathBuf {
        self.bundle(id).join("monitor.sock")
    }

    /// The monitor's own diagnostics (never the container's output).
    pub fn monitor_log(&self, id: &str) -> PathBuf {
        self.bundle(id).join("monitor.log")
    }

    /// The runtime library's state root.
    pub fn runtime_root(&self) -> PathBuf {
        self.runroot.join("runtime")
    }
}
