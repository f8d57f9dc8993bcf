//! The peers the interop tests drive, each on private state and torn
//! down, mounts included, when dropped: a dockerd of its own, podman with
//! its own storage, and Debian's distribution registry on a loopback port.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Lazily unmounts everything mounted below `dir` (deepest first), then
/// removes it: what a daemon leaves behind when it is stopped.
pub fn teardown_dir(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A short private directory (podman's attach socket path must fit in a
/// unix socket's 108 bytes), torn down on drop.
pub struct PrivateDir(pub PathBuf);

impl PrivateDir {
    pub fn new(prefix: &str) -> PrivateDir {
        PrivateDir(short_dir(prefix))
    }
}

fn short_dir(prefix: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/{}", crate::unique_id(prefix)));
    std::fs::create_dir_all(&dir).expect("creating a private directory");
    dir
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        teardown_dir(&self.0);
    }
}

/// A daemon we started: SIGTERM, a grace period, SIGKILL, then its
/// directory goes.
pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        teardown_dir(&self.dir);
    }
}

/// A dockerd of our own (no bridge, no iptables) on its own socket.
pub struct Dockerd {
    daemon: Daemon,
    sock: String,
}

impl Dockerd {
    /// Starts it with `extra` flags (e.g. `--add-runtime`) and waits up to
    /// a minute for it to answer.
    pub fn start(extra: &[String]) -> Dockerd {
        let dir = short_dir("bd");
        let sock = format!("unix://{}/d.sock", dir.display());
        let log = std::fs::File::create(dir.join("log")).expect("dockerd log");
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("d.pid"))
            .args([
                "-H",
                &sock,
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dockerd log"))
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let d = Dockerd {
            daemon: Daemon { child, dir },
            sock,
        };
        let start = Instant::now();
        while !d
            .docker()
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dockerd did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    /// Debian's client, which speaks Debian's daemon's API.
    pub fn docker(&self) -> Command {
        let mut c = Command::new("/usr/bin/docker");
        c.args(["-H", &self.sock]);
        c
    }

    pub fn dir(&self) -> &Path {
        &self.daemon.dir
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.daemon.dir.join("log")).unwrap_or_default()
    }
}

/// This host's hard limits are below podman's defaults: podman gets ours.
const CONTAINERS_CONF: &str = "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n";

/// podman with private storage under a short path.
pub struct Podman {
    dir: PrivateDir,
}

impl Podman {
    pub fn new() -> Podman {
        let dir = PrivateDir::new("p");
        std::fs::create_dir_all(dir.0.join("tmp")).expect("podman tmpdir");
        std::fs::write(dir.0.join("containers.conf"), CONTAINERS_CONF).expect("containers.conf");
        Podman { dir }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.0.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.0.join("root"))
            .arg("--runroot")
            .arg(self.dir.0.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.0.join("tmp"));
        c
    }

    pub fn dir(&self) -> &Path {
        &self.dir.0
    }
}

impl Default for Podman {
    fn default() -> Self {
        Podman::new()
    }
}

/// `docker-registry serve` on 127.0.0.1 with its storage in a temporary
/// directory; killed when dropped.
/// Debian's distribution registry.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

/// What to add to the registry's config beyond storage and address.
#[derive(Default)]
pub struct RegistryOptions {
    /// (certificate, key) PEM paths for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Extra YAML for the `auth:` section, already indented by two.
    pub auth: Option<String>,
    /// With `tls`: a CA bundle; clients must show a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(RegistryOptions::default())
    }

    pub fn start_with(opts: RegistryOptions) -> Registry {
        assert!(
            Path::new(REGISTRY_BINARY).exists(),
            "{REGISTRY_BINARY} is missing: apt-get install docker-registry"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key)) = &opts.tls {
            yaml += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            if let Some(ca) = &opts.client_ca {
                yaml += &format!("    clientcas:\n      - {}\n", ca.display());
            }
        }
        if let Some(auth) = &opts.auth {
            yaml += &format!("auth:\n{auth}");
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut r = Registry { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("registry exited ({status}): {}", r.log());
            }
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps the bytes of the blob whose sha256 is `hex`.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
