//! Test helpers shared by every crate's tests: root rootfs and OCI bundles
//! made from the host's busybox-static, with no network, and the rule that
//! root-only tests fail instead of skipping under `BERTH_REQUIRE_ROOT=1`.
//!
//! This crate is a dev-dependency only; nothing in it ships.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::Spec;

pub mod peers;

/// Deterministic bytes (xorshift of `seed`) that gzip cannot shrink, so
/// layers and blobs are as big on disk as the test says.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Where Debian's busybox-static puts its binary.
pub const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// This machine's platform as docker names it (`linux/amd64`): what the
/// images made from its busybox are.
pub fn host_platform() -> String {
    format!(
        "linux/{}",
        std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64")
    )
}

/// The host's static busybox, or a panic that says which package to install.
pub fn busybox() -> PathBuf {
    for c in BUSYBOX_CANDIDATES {
        let p = Path::new(c);
        if p.exists() {
            return p.to_path_buf();
        }
    }
    panic!("busybox-static is not installed (apt-get install busybox-static)");
}

/// True when the current process is root. Root-only tests call
/// [`require_root`] instead, which knows about `BERTH_REQUIRE_ROOT`.
pub fn is_root() -> bool {
    rustix_free_geteuid() == 0
}

fn rustix_free_geteuid() -> u32 {
    // /proc/self/status avoids a libc dependency for one number.
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Gate for tests that need root, namespaces, mounts or cgroups. Returns
/// false (the test should return early) when they cannot run here, unless
/// `BERTH_REQUIRE_ROOT=1`, in which case the test fails: in CI a root test
/// that cannot run must not count as a pass.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("BERTH_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test}: needs root and BERTH_REQUIRE_ROOT=1 is set");
    }
    eprintln!("{test}: skipped, needs root");
    false
}

/// Lays out a minimal root filesystem in `root`: busybox with every applet
/// linked, the usual top-level directories, and /etc/passwd and /etc/group
/// with root, nobody and a plain user (1000).
pub fn make_rootfs(root: &Path) -> io::Result<()> {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "home/user",
        "var",
        "run",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    let bb = root.join("bin/busybox");
    fs::copy(busybox(), &bb)?;
    fs::set_permissions(&bb, fs::Permissions::from_mode(0o755))?;
    let out = Command::new(busybox()).arg("--list-full").output()?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = root.join(applet);
        if link.exists() || link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink("/bin/busybox", &link)?;
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(
        root.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nextra:x:2000:user\nnogroup:x:65534:\n",
    )?;
    Ok(())
}

/// An OCI bundle in a temporary directory: `rootfs/` from [`make_rootfs`]
/// and a `config.json` from the spec's defaults, with `args` as the process.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub spec: Spec,
}

impl Bundle {
    pub fn new(args: &[&str]) -> io::Result<Bundle> {
        let dir = tempfile::Builder::new().prefix("berth-bundle-").tempdir()?;
        make_rootfs(&dir.path().join("rootfs"))?;
        let mut spec = Spec::default();
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        process.set_terminal(Some(false));
        spec.set_process(Some(process));
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path(PathBuf::from("rootfs"));
        root.set_readonly(Some(false));
        spec.set_root(Some(root));
        let b = Bundle { dir, spec };
        b.save()?;
        Ok(b)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Changes the spec's `linux` section in place (call [`Bundle::save`] after).
    pub fn edit_linux(&mut self, f: impl FnOnce(&mut oci_spec::runtime::Linux)) {
        let mut l = self.spec.linux().clone().unwrap_or_default();
        f(&mut l);
        self.spec.set_linux(Some(l));
    }

    /// Changes the spec's `process` in place (call [`Bundle::save`] after).
    pub fn edit_process(&mut self, f: impl FnOnce(&mut oci_spec::runtime::Process)) {
        let mut p = self.spec.process().clone().unwrap_or_default();
        f(&mut p);
        self.spec.set_process(Some(p));
    }

    /// Changes the spec's mounts in place (call [`Bundle::save`] after).
    pub fn edit_mounts(&mut self, f: impl FnOnce(&mut Vec<oci_spec::runtime::Mount>)) {
        let mut m = self.spec.mounts().clone().unwrap_or_default();
        f(&mut m);
        self.spec.set_mounts(Some(m));
    }

    /// Writes `self.spec` to config.json; call after changing the spec.
    pub fn save(&self) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.spec).map_err(io::Error::other)?;
        fs::write(self.dir.path().join("config.json"), json)
    }
}

/// A rootfs tarball (uncompressed) of [`make_rootfs`], for image import tests.
pub fn rootfs_tar(out: &Path) -> io::Result<()> {
    let tmp = tempfile::tempdir()?;
    make_rootfs(tmp.path())?;
    let status = Command::new("tar")
        .arg("-C")
        .arg(tmp.path())
        .arg("--numeric-owner")
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("tar failed: {status}")));
    }
    Ok(())
}

/// A unique short name for a test's containers, so parallel tests never
/// collide in a shared runtime root.
pub fn unique_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// An OCI image layout archive (`oci-archive`, what `ctr images import`,
/// `podman load` and `skopeo` read) holding one image: the busybox rootfs
/// as a single uncompressed layer, tagged `reference` (e.g.
/// `docker.io/library/bbtest:latest`), running `cmd` by default.
pub fn oci_archive(out: &Path, reference: &str, cmd: &[&str]) -> io::Result<()> {
    let tmp = tempfile::tempdir()?;
    let layer_path = tmp.path().join("layer.tar");
    rootfs_tar(&layer_path)?;
    let layer = fs::read(&layer_path)?;
    let layer_digest = sha256_hex(&layer);
    let config = serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
    });
    let config = serde_json::to_vec(&config).map_err(io::Error::other)?;
    let config_digest = sha256_hex(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_digest}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_digest}"), "size": layer.len()}],
    });
    let manifest = serde_json::to_vec(&manifest).map_err(io::Error::other)?;
    let manifest_digest = sha256_hex(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "annotations": {"io.containerd.image.name": reference, "org.opencontainers.image.ref.name": reference.rsplit(':').next().unwrap_or("latest")},
        }],
    });
    let dir = tmp.path().join("layout");
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    fs::write(blobs.join(&layer_digest), &layer)?;
    fs::write(blobs.join(&config_digest), &config)?;
    fs::write(blobs.join(&manifest_digest), &manifest)?;
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).map_err(io::Error::other)?,
    )?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let status = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("tar failed: {status}")));
    }
    Ok(())
}

/// Where tests keep what is slow to make and never changes (a
/// debootstrap tree), so CI makes it once per machine.
pub const TEST_CACHE: &str = "/var/cache/berth-test";

/// A tar (uncompressed, numeric owners) of a Debian bookworm minbase with
/// gcc and libc6-dev, made by debootstrap from the mirror apt uses, once:
/// later calls return the cached file. A build container has no internet,
/// so the compiler comes in at debootstrap time, not by a RUN apt-get.
/// Callers in parallel wait for the first (an flock on a file beside it).
pub fn debian_gcc_rootfs_tar() -> io::Result<PathBuf> {
    const SUITE: &str = "bookworm";
    const INCLUDE: &str = "gcc,libc6-dev";
    let cache = Path::new(TEST_CACHE);
    fs::create_dir_all(cache)?;
    let out = cache.join(format!("debian-{SUITE}-gcc.tar"));
    let lock = fs::File::create(cache.join(format!("debian-{SUITE}-gcc.lock")))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
    if out.exists() {
        return Ok(out);
    }
    let tree = cache.join(format!("debian-{SUITE}-gcc.tmp"));
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    let mut cmd = Command::new("debootstrap");
    cmd.arg("--variant=minbase")
        .arg(format!("--include={INCLUDE}"))
        .arg(SUITE)
        .arg(&tree)
        .arg("http://deb.debian.org/debian")
        .stdout(std::process::Stdio::null());
    // debootstrap fetches with wget, which knows only the environment's
    // proxy; apt may have one configured instead.
    if let Some(proxy) = apt_http_proxy() {
        cmd.env("http_proxy", proxy);
    }
    let status = cmd.status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "debootstrap {SUITE} failed ({status}); see {}/debootstrap/debootstrap.log",
            tree.display()
        )));
    }
    // What an image build would clean: downloaded packages and lists.
    for d in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let dir = tree.join(d);
        for e in fs::read_dir(&dir)? {
            let e = e?;
            if e.file_type()?.is_file() && e.file_name() != "lock" {
                fs::remove_file(e.path())?;
            }
        }
    }
    let partial = cache.join(format!("debian-{SUITE}-gcc.tar.partial"));
    let status = Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("--numeric-owner")
        .arg("-cf")
        .arg(&partial)
        .arg(".")
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("tar failed: {status}")));
    }
    fs::rename(&partial, &out)?;
    fs::remove_dir_all(&tree)?;
    Ok(out)
}

/// apt's `Acquire::http::Proxy`, if one is set.
fn apt_http_proxy() -> Option<String> {
    let out = Command::new("apt-config")
        .args(["shell", "P", "Acquire::http::Proxy"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let proxy = text
        .split_once("P=")?
        .1
        .trim()
        .trim_matches(['\'', '"'])
        .to_string();
    (!proxy.is_empty() && proxy != "DIRECT").then_some(proxy)
}
