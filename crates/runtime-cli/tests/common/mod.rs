//! Helpers for driving the `berth-runtime` binary in tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use berth_testutil::{require_root, unique_id, Bundle};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// A runtime state root of its own that deletes its containers on drop.
pub struct Rt {
    pub root: tempfile::TempDir,
}

impl Rt {
    pub fn new() -> Rt {
        Rt {
            root: tempfile::Builder::new()
                .prefix("berth-rt-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs to the command's exit. Output goes through files, not pipes: a
    /// created or detached container keeps the runtime's stdio open, and a
    /// pipe would not reach EOF until it exits.
    pub fn out(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(args);
        output_via_files(c)
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "berth-runtime {args:?} failed: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn run(&self, bundle: &Path) -> Output {
        let id = unique_id("run");
        let mut c = self.cmd();
        c.args(["run", "--bundle"]).arg(bundle).arg(&id);
        output_via_files(c)
    }

    /// `run --detach` of `b` under a fresh id made from `prefix`; returns the id.
    pub fn run_detached(&self, b: &Bundle, prefix: &str) -> String {
        let id = unique_id(prefix);
        self.ok(&[
            "run",
            "--detach",
            "--bundle",
            b.path().to_str().unwrap(),
            &id,
        ]);
        id
    }

    pub fn status(&self, id: &str) -> String {
        let s: serde_json::Value = serde_json::from_str(&self.ok(&["state", id])).unwrap();
        s["status"].as_str().unwrap().to_string()
    }

    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.status(id);
            if s == want {
                return;
            }
            assert!(Instant::now() < deadline, "{id} stayed {s}, wanted {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        let Ok(out) = self.cmd().args(["list", "-q"]).output() else {
            return;
        };
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.cmd().args(["delete", "--force", id]).output();
        }
    }
}

pub fn output_via_files(mut c: Command) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let status = c
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

pub fn bundle(args: &[&str]) -> Bundle {
    Bundle::new(args).unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn tmp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}-{name}", unique_id("berth")))
}
