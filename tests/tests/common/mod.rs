//! What the tests of `berth serve` share: a private server with busybox
//! imported, the docker client pointed at it, and raw requests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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
    have_client(DOCKER, "docker.io")
}

/// Whether a client binary is installed; under BERTH_REQUIRE_ROOT=1 its
/// absence fails the test instead of skipping it.
pub fn have_client(path: &str, package: &str) -> bool {
    let ok = Path::new(path).exists();
    if !ok && std::env::var("BERTH_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{path} is missing (make test installs {package})");
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
        Served::start_hosts(activated, &[])
    }

    /// `extra`: more `--host`s (and their flags) beside the unix socket.
    pub fn start_hosts(activated: bool, extra: &[String]) -> Served {
        let dir = PrivateDir::new("bs");
        let slot = netslot::Slot::acquire(&dir.0);
        let tar = dir.0.join("rootfs.tar");
        rootfs_tar(&tar).unwrap();
        let o = Command::new(built("berth"))
            .arg("--root")
            .arg(dir.0.join("root"))
            .arg("--runroot")
            .arg(dir.0.join("run"))
            .env("BERTH_CONFIG", &slot.config)
            .arg("import")
            .arg(&tar)
            .arg("bb")
            .output()
            .unwrap();
        assert!(o.status.success(), "import: {}", show(&o));
        let child = spawn_server(&dir.0, &slot, activated, extra);
        let served = Served {
            _daemon: Daemon {
                child,
                dir: dir.0.clone(),
            },
            slot,
            dir,
        };
        served.wait_ready();
        served
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while !self
            .docker(&["version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "berth serve did not answer: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self._daemon.child.id()
    }

    /// Kills the server (SIGKILL: no chance to tidy) and starts another
    /// on the same store and socket.
    pub fn kill_and_restart(&mut self) {
        self._daemon.child.kill().unwrap();
        self._daemon.child.wait().unwrap();
        self._daemon.child = spawn_server(&self.dir.0, &self.slot, false, &[]);
        self.wait_ready();
    }

    /// The server's fds when idle: it closes its database and image
    /// store a moment after its last call, and then holds only what is
    /// its own (listeners, logs) and what its clients hold open.
    pub fn idle_fds(&self) -> usize {
        let (code, _) = http(&self.socket(), "GET", "/containers/json", None).unwrap();
        assert_eq!(code, 200);
        let busy = fd_count(self.pid());
        let settle = Instant::now() + Duration::from_secs(30);
        while fd_count(self.pid()) >= busy && Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(50));
        }
        fd_count(self.pid())
    }

    /// Asserts that the server is back to `before` fds (from
    /// [`Served::idle_fds`]), and says which it holds if not.
    pub fn assert_fds_back(&self, before: usize) {
        let settle = Instant::now() + Duration::from_secs(30);
        let mut now = self.idle_fds();
        while now > before && Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(200));
            now = self.idle_fds();
        }
        assert!(
            now <= before,
            "the server holds {now} fds, {before} before: {:?}",
            std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
                .unwrap()
                .flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .collect::<Vec<_>>()
        );
    }

    /// A build context `ctx` in the test's directory holding `files`.
    pub fn context(&self, files: &[(&str, &str)]) -> PathBuf {
        let ctx = self.dir.0.join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        for (name, text) in files {
            std::fs::write(ctx.join(name), text).unwrap();
        }
        ctx
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.0.join("api.sock")
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

/// `berth serve` on the store under `dir`, its output appended to
/// dir/serve.log.
fn spawn_server(dir: &Path, slot: &netslot::Slot, activated: bool, extra: &[String]) -> Child {
    let sock = dir.join("api.sock");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("serve.log"))
        .unwrap();
    let mut berth = Command::new(built("berth"));
    berth
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .env("BERTH_CONFIG", &slot.config);
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
            .arg(format!("unix://{}", sock.display()))
            .args(extra);
        berth
    };
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// One HTTP/1.1 request on a connection of its own (closed after the
/// answer), for tests that need the wire itself: no curl, no docker.
pub fn http(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock)?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} /v1.41{path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    parse_response(&out)
}

/// The status and the (de-chunked) body of a whole HTTP/1.1 answer.
pub fn parse_response(raw: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut rest = &raw[end + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return Ok((code, rest.to_vec()));
    }
    let mut body = Vec::new();
    loop {
        let nl = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated chunk"))?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16)
            .map_err(|_| bad("bad chunk size"))?;
        rest = &rest[nl + 2..];
        if size == 0 {
            return Ok((code, body));
        }
        if rest.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The command lines of processes that name `root` (monitors, CLIs),
/// but for `except` (the server) and its spare monitor.
pub fn processes_naming(root: &Path, except: u32) -> Vec<String> {
    commands_naming(root, except)
        .into_iter()
        .filter(|c| !c.contains(SPARE))
        .collect()
}

/// How a server's spare monitor shows in its command line: the one
/// monitor it keeps started ahead of the next container's start.
const SPARE: &str = " start --spare";

/// The spare monitors naming `root`: a server holds one at most.
pub fn spares_naming(root: &Path) -> usize {
    commands_naming(root, 0)
        .iter()
        .filter(|c| c.contains(SPARE))
        .count()
}

fn commands_naming(root: &Path, except: u32) -> Vec<String> {
    let root = root.to_str().unwrap().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .parse::<u32>()
                .is_ok_and(|p| p != except)
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&root))
        .collect()
}

/// The open fds of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

impl Drop for Served {
    fn drop(&mut self) {
        let o = self.berth(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&o.stdout).lines() {
            let _ = self.berth(&["rm", "-f", id]);
        }
        let _ = self.berth(&["network", "prune", "-f"]);
        // Named volumes (a compose project's) outlive their containers.
        let _ = self.berth(&["volume", "prune", "-a", "-f"]);
    }
}
