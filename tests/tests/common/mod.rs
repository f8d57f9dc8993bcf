//! What the tests of `berth serve` share: a private server with busybox
//! imported, the docker client pointed at it, and raw requests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::peers::{Daemon, PrivateDir};
use berth_testutil::rootfs_tar;

#[allow(dead_code)]
#[path = "../../../crates/cli/tests/common/netslot.rs"]
pub mod netslot;

/// A binary built beside this test (`cargo build --workspace`).
pub fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

pub const DOCKER: &str = "/usr/bin/docker";

pub fn have_docker() -> bool {
    let ok = Path::new(DOCKER).exists();
    if !ok && std::env::var("BERTH_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{DOCKER} is missing (make test installs docker.io)");
    }
    ok
}

pub fn show(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `berth serve` on a private store and socket, torn down on drop with
/// every container it ran.
pub struct Served {
    // Dropped after `Drop::drop` removed the containers: the server
    // stops, then its directory goes.
    pub _daemon: Daemon,
    pub slot: netslot::Slot,
    pub dir: PrivateDir,
}

impl Served {
    pub fn start() -> Served {
        Served::start_with(false)
    }

    /// `activated`: systemd-socket-activate binds the socket and passes it
    /// (`--host fd://`), as the shipped berth.socket does.
    pub fn start_with(activated: bool) -> Served {
        let dir = PrivateDir::new("bs");
        let slot = netslot::Slot::acquire(&dir.0);
        let s = |p: &str| dir.0.join(p);
        let tar = s("rootfs.tar");
        rootfs_tar(&tar).unwrap();
        let log = std::fs::File::create(s("serve.log")).unwrap();
        let mut berth = Command::new(built("berth"));
        berth
            .arg("--root")
            .arg(s("root"))
            .arg("--runroot")
            .arg(s("run"))
            .env("BERTH_CONFIG", &slot.config);
        let o = Command::new(built("berth"))
            .arg("--root")
            .arg(s("root"))
            .arg("--runroot")
            .arg(s("run"))
            .arg("import")
            .arg(&tar)
            .arg("bb")
            .output()
            .unwrap();
        assert!(o.status.success(), "import: {}", show(&o));
        let sock = s("api.sock");
        let mut cmd = if activated {
            let mut c = Command::new("systemd-socket-activate");
            c.arg("-l")
                .arg(&sock)
                .arg(berth.get_program())
                .args(berth.get_args());
            c.env("BERTH_CONFIG", &slot.config);
            c.args(["serve", "--host", "fd://"]);
            c
        } else {
            berth
                .arg("serve")
                .arg("--host")
                .arg(format!("unix://{}", sock.display()));
            berth
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let served = Served {
            _daemon: Daemon {
                child,
                dir: dir.0.clone(),
            },
            slot,
            dir,
        };
        let start = Instant::now();
        while !served
            .docker(&["version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "berth serve did not answer: {}",
                served.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("serve.log")).unwrap_or_default()
    }

    pub fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.env(
            "DOCKER_HOST",
            format!("unix://{}", self.dir.0.join("api.sock").display()),
        )
        // No user config: nothing of the machine's docker setup leaks in.
        .env("DOCKER_CONFIG", self.dir.0.join("docker-config"))
        .args(args)
        .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.docker(args).output().unwrap()
    }

    /// Runs and asserts success; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}\nserver log: {}",
            show(&o),
            self.log()
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// `docker run -d --name NAME --network none bb sh -c SCRIPT`; stdout.
    pub fn sh_detached(&self, name: &str, script: &str) -> String {
        self.sh_detached_with(name, &[], script)
    }

    /// [`Served::sh_detached`] with more `docker run` flags.
    pub fn sh_detached_with(&self, name: &str, flags: &[&str], script: &str) -> String {
        let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb", "sh", "-c", script]);
        self.ok(&args)
    }

    /// A Python venv of the server's own with `packages` from PyPI;
    /// its directory.
    pub fn venv(&self, packages: &[&str]) -> PathBuf {
        let venv = self.dir.0.join("venv");
        let o = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .output()
            .unwrap();
        assert!(o.status.success(), "venv: {}", show(&o));
        let o = Command::new(venv.join("bin/pip"))
            .args(["install", "-q"])
            .args(packages)
            .output()
            .unwrap();
        assert!(o.status.success(), "pip install {packages:?}: {}", show(&o));
        venv
    }

    /// A raw request through curl: the status and the body.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
        let mut c = Command::new("curl");
        c.arg("-s")
            .arg("--unix-socket")
            .arg(self.dir.0.join("api.sock"))
            // curl waits for a HEAD's announced body unless told -I.
            .args(if method == "HEAD" {
                vec!["-I", "-o", "/dev/null"]
            } else {
                vec!["-X", method]
            })
            .arg("-w")
            .arg("\n%{http_code}");
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        let o = c.arg(format!("http://berth/v1.41{path}")).output().unwrap();
        assert!(o.status.success(), "curl {path}: {}", show(&o));
        let mut out = o.stdout;
        let nl = out.iter().rposition(|b| *b == b'\n').unwrap();
        let code = String::from_utf8_lossy(&out[nl + 1..]).parse().unwrap();
        out.truncate(nl);
        (code, out)
    }

    /// A raw request that must answer 2xx with JSON.
    pub fn api_json(&self, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
        let (code, out) = self.api(method, path, body);
        assert!(
            (200..300).contains(&code),
            "{method} {path}: {code} {}",
            String::from_utf8_lossy(&out)
        );
        serde_json::from_slice(&out).unwrap()
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new(built("berth"))
            .arg("--root")
            .arg(self.dir.0.join("root"))
            .arg("--runroot")
            .arg(self.dir.0.join("run"))
            .env("BERTH_CONFIG", &self.slot.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let o = self.berth(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&o.stdout).lines() {
            let _ = self.berth(&["rm", "-f", id]);
        }
        let _ = self.berth(&["network", "prune", "-f"]);
    }
}
