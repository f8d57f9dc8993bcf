//! berth's archives against docker, podman and skopeo (Debian packages),
//! both ways. Root only: each tool runs with private state under /tmp.

mod common;

use std::fs;
use std::process::{Command, Output};

use berth_image::archive::{load, save, ArchiveFormat, SaveOptions};
use berth_image::layer::Compression;
use berth_testutil::peers::{Dockerd, Podman};
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

/// podman on its own storage; vfs keeps it off overlay-on-overlay.
fn podman(p: &Podman) -> Command {
    let mut c = p.cmd();
    c.args(["--storage-driver", "vfs"]);
    c
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

    let d = Dockerd::start(&[]);
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
        run(podman(&p).arg("load").arg("-i").arg(file));
        run(podman(&p).args(["image", "exists", "docker.io/library/bbsave:1"]));
        run(podman(&p).args(["rmi", "docker.io/library/bbsave:1"]));
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

    let d = Dockerd::start(&[]);
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
    run(podman(&p).arg("load").arg("-i").arg(&oci_src));
    let from_podman = t.path().join("podman.tar");
    let from_podman_oci = t.path().join("podman-oci.tar");
    run(podman(&p)
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(&from_podman)
        .arg("docker.io/library/bbsrc:latest"));
    run(podman(&p)
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
