//! berth's archives against docker, podman and skopeo (Debian packages),
//! both ways. Root only: each tool runs with private state under /tmp.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_image::archive::{load, save, ArchiveFormat, SaveOptions};
use berth_image::layer::Compression;
use common::{busybox, rootfs_has_busybox, store};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A private dockerd, torn down (mounts included) on drop.
struct Dockerd {
    child: Child,
    dir: PathBuf,
    sock: String,
}

impl Dockerd {
    fn start() -> Dockerd {
        let dir = PathBuf::from(format!("/tmp/{}", berth_testutil::unique_id("bd")));
        fs::create_dir_all(&dir).unwrap();
        let sock = format!("unix://{}/d.sock", dir.display());
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
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .unwrap();
        let d = Dockerd { child, dir, sock };
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
                fs::read_to_string(d.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn docker(&self) -> Command {
        // Debian's client speaks to Debian's daemon.
        let mut c = Command::new("/usr/bin/docker");
        c.args(["-H", &self.sock]);
        c
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        unmount_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Lazily unmounts everything a daemon left mounted below `dir`.
fn unmount_under(dir: &Path) {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
}

/// podman with private storage under a short path.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new() -> Podman {
        let dir = PathBuf::from(format!("/tmp/{}", berth_testutil::unique_id("p")));
        fs::create_dir_all(dir.join("tmp")).unwrap();
        fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        Podman { dir }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "vfs"]);
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        unmount_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn archives_saved_by_berth_load_in_docker_podman_and_skopeo() {
    if !berth_testutil::require_root("archives_saved_by_berth_load_in_docker_podman_and_skopeo") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    busybox(&s, "bbsave:1");
    let plain = t.path().join("plain.tar");
    let gzip = t.path().join("gzip.tar");
    let oci = t.path().join("oci.tar");
    for (path, format, compression) in [
        (&plain, ArchiveFormat::Docker, Compression::None),
        (&gzip, ArchiveFormat::Docker, Compression::Gzip),
        (&oci, ArchiveFormat::Oci, Compression::Zstd),
    ] {
        save(
            &s,
            &["bbsave:1"],
            fs::File::create(path).unwrap(),
            &SaveOptions {
                format,
                compression,
            },
        )
        .unwrap();
    }

    for (file, transport) in [
        (&plain, "docker-archive"),
        (&gzip, "docker-archive"),
        (&oci, "oci-archive"),
    ] {
        let out =
            run(Command::new("skopeo")
                .args(["inspect", &format!("{transport}:{}", file.display())]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{v}");
    }

    let d = Dockerd::start();
    for file in [&plain, &gzip] {
        let out = run(d.docker().arg("load").arg("-i").arg(file));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("bbsave:1"),
            "{out:?}"
        );
        run(d.docker().args([
            "run",
            "--rm",
            "--network",
            "none",
            "bbsave:1",
            "/bin/busybox",
            "true",
        ]));
        run(d.docker().args(["rmi", "bbsave:1"]));
    }
    drop(d);

    let p = Podman::new();
    for file in [&plain, &gzip, &oci] {
        run(p.cmd().arg("load").arg("-i").arg(file));
        run(p
            .cmd()
            .args(["image", "exists", "docker.io/library/bbsave:1"]));
        run(p.cmd().args(["rmi", "docker.io/library/bbsave:1"]));
    }
}

#[test]
fn archives_saved_by_docker_and_podman_load_into_berth_and_run() {
    if !berth_testutil::require_root("archives_saved_by_docker_and_podman_load_into_berth_and_run")
    {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs.tar");
    berth_testutil::rootfs_tar(&rootfs).unwrap();
    let oci_src = t.path().join("src-oci.tar");
    berth_testutil::oci_archive(&oci_src, "docker.io/library/bbsrc:latest", &["/bin/sh"]).unwrap();

    let d = Dockerd::start();
    run(d.docker().arg("import").arg(&rootfs).arg("bbdock:1"));
    let from_docker = t.path().join("docker.tar");
    run(d
        .docker()
        .arg("save")
        .arg("-o")
        .arg(&from_docker)
        .arg("bbdock:1"));
    drop(d);

    let p = Podman::new();
    run(p.cmd().arg("load").arg("-i").arg(&oci_src));
    let from_podman = t.path().join("podman.tar");
    let from_podman_oci = t.path().join("podman-oci.tar");
    run(p
        .cmd()
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(&from_podman)
        .arg("docker.io/library/bbsrc:latest"));
    run(p
        .cmd()
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&from_podman_oci)
        .arg("docker.io/library/bbsrc:latest"));
    drop(p);

    let s = store(&t.path().join("berth"));
    for (i, (file, name)) in [
        (&from_docker, "bbdock:1"),
        (&from_podman, "bbsrc"),
        (&from_podman_oci, ""),
    ]
    .into_iter()
    .enumerate()
    {
        let images = load(&s, fs::File::open(file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(images.len(), 1);
        if !name.is_empty() {
            assert_eq!(s.image(name).unwrap().id, images[0].id);
        }
        assert!(
            rootfs_has_busybox(&s, &images[0], &format!("ctr-{i}")),
            "{}",
            file.display()
        );
    }
    let check = s.system_check().unwrap();
    assert!(check.is_consistent(), "{check:?}");
}
