//! A private berth for one test: its own --root and --runroot, an
//! imported busybox image, and a guard that removes every container, mount
//! and directory it made.

#![allow(dead_code)]

pub mod netslot;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Berth {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub runroot: PathBuf,
    /// This test's own default bridge, subnets and nftables table.
    pub net: netslot::Slot,
    /// Run every command inside this network namespace (see `in_netns`).
    pub netns: Option<PathBuf>,
}

pub fn bin() -> PathBuf {
    let b = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    let m = b.with_file_name("berth-monitor");
    assert!(
        m.exists(),
        "{} is missing: build it first (cargo build -p berth-monitor, or cargo test --workspace)",
        m.display()
    );
    b
}

impl Berth {
    pub fn new() -> Berth {
        let dir = tempfile::Builder::new()
            .prefix("berth-cli-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("root");
        let runroot = dir.path().join("run");
        let net = netslot::Slot::acquire(dir.path());
        Berth {
            dir,
            root,
            runroot,
            net,
            netns: None,
        }
    }

    /// Runs berth (and so its bridges, tables and DNS servers) inside the
    /// network namespace at `ns` from now on; mounts stay the host's.
    pub fn in_netns(mut self, ns: &Path) -> Berth {
        self.netns = Some(ns.to_path_buf());
        self
    }

    /// A new berth with busybox imported as `bb`.
    pub fn with_image() -> Berth {
        let b = Berth::new();
        let tar = b.dir.path().join("rootfs.tar");
        berth_testutil::rootfs_tar(&tar).unwrap();
        let out = b.ok(&["import", tar.to_str().unwrap(), "bb"]);
        assert!(out.starts_with("sha256:"), "{out}");
        b
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        c.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(args);
        c.env("BERTH_CONFIG", &self.net.config);
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "berth {args:?}: {:?}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs, expecting exit code `code` with `why` in the error.
    pub fn fails(&self, args: &[&str], code: i32, why: &str) {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "berth {args:?}: {err}");
        assert!(err.contains(why), "berth {args:?}: {err}");
    }

    /// Runs `script` with busybox's sh in a new container `name` of the
    /// image `bb`, to its end (the container stays); returns its stdout.
    pub fn sh(&self, name: &str, script: &str) -> String {
        self.ok(&["run", "--name", name, "bb", "sh", "-c", script])
    }

    /// Mount points under this test's directories still mounted.
    pub fn mounts(&self) -> Vec<String> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir = self.dir.path().to_str().unwrap().to_string();
        mi.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
            .map(String::from)
            .collect()
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        if let Ok(o) = self.cmd(&["ps", "-aq", "--no-trunc"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).lines() {
                let _ = self.cmd(&["rm", "-f", id]).output();
                // The cgroup by path, in case rm failed half way.
                for cg in cgroup_dirs(id) {
                    let _ = std::fs::remove_dir(cg);
                }
            }
        }
        // The test's user networks (the slot removes its default one).
        let _ = self.cmd(&["network", "prune", "-f"]).output();
        for m in self.mounts().iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `berth inspect NAME`: the one object it lists.
pub fn inspect(b: &Berth, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", name])).unwrap();
    v[0].clone()
}

/// The value of line `key` (e.g. `CapEff:`) of a /proc/PID/status text.
pub fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("{key} missing: {status}"))
        .trim()
        .to_string()
}

/// Runs `script` in a `--rm` container of `bb` with `flags`; its stdout.
pub fn sh(b: &Berth, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "sh", "-c", script]);
    b.ok(&args)
}

/// Every cgroup directory of container `id` on this host.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            for p in [
                e.path().join("berth").join(id),
                Path::new("/sys/fs/cgroup/berth").join(id),
            ] {
                if p.exists() {
                    v.push(p);
                }
            }
        }
    }
    v.sort();
    v.dedup();
    v
}
