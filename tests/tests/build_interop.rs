//! An image built by `berth build` is an ordinary image to docker: saved
//! by berth, loaded and run by dockerd, with the config and layers the
//! Dockerfile asked for.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_testutil::peers::Dockerd;
use berth_testutil::{require_root, rootfs_tar};

/// The berth binary built beside this test (`cargo build --workspace`).
fn berth() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    for bin in ["berth", "berth-monitor"] {
        assert!(
            dir.join(bin).exists(),
            "{} is missing: run `cargo build --workspace` first",
            dir.join(bin).display()
        );
    }
    dir.join("berth")
}

fn check(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn docker_runs_an_image_berth_built() {
    if !require_root("docker_runs_an_image_berth_built") {
        return;
    }
    let t = tempfile::Builder::new().prefix("bbi").tempdir().unwrap();
    let b = |args: &[&str]| {
        check(
            Command::new(berth())
                .arg("--root")
                .arg(t.path().join("root"))
                .arg("--runroot")
                .arg(t.path().join("run"))
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
            &format!("berth {args:?}"),
        )
    };
    let tar = t.path().join("rootfs.tar");
    rootfs_tar(&tar).unwrap();
    b(&["import", tar.to_str().unwrap(), "bb"]);
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("greeting"), "hello from the context\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb AS make\n\
         RUN mkdir /out && echo built-in-run > /out/made\n\
         FROM bb\n\
         ENV WHO=docker\n\
         WORKDIR /srv\n\
         COPY --chown=1000:1000 greeting .\n\
         COPY --from=make /out/made /srv/made\n\
         CMD [\"sh\", \"-c\", \"cat greeting made; echo $WHO; stat -c %u /srv/greeting\"]\n",
    )
    .unwrap();
    b(&["build", "-t", "interop/app:1", ctx.to_str().unwrap()]);
    // Squashed: docker checks its history against its layers on load.
    b(&[
        "build",
        "--squash",
        "-t",
        "interop/app:sq",
        ctx.to_str().unwrap(),
    ]);
    let archive = t.path().join("app.tar");
    b(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "interop/app:1",
        "interop/app:sq",
    ]);

    let d = Dockerd::start(&[]);
    check(
        d.docker()
            .args(["load", "-i", archive.to_str().unwrap()])
            .output()
            .unwrap(),
        "docker load",
    );
    let got = check(
        d.docker()
            .args(["run", "--rm", "--network", "none", "interop/app:1"])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
        &format!("docker run\n{}", d.log()),
    );
    assert_eq!(got, "hello from the context\nbuilt-in-run\ndocker\n1000\n");
    let squashed = check(
        d.docker()
            .args(["run", "--rm", "--network", "none", "interop/app:sq"])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
        &format!("docker run (squashed)\n{}", d.log()),
    );
    assert_eq!(squashed, got);
    let layers = |image: &str| {
        let out = check(
            d.docker()
                .args([
                    "image",
                    "inspect",
                    "--format",
                    "{{len .RootFS.Layers}}",
                    image,
                ])
                .output()
                .unwrap(),
            "docker image inspect",
        );
        out.trim().parse::<usize>().unwrap()
    };
    assert_eq!(layers("interop/app:sq"), 2, "busybox's and the merged one");
    assert_eq!(layers("interop/app:1"), 3);
    let cfg = check(
        d.docker()
            .args([
                "image",
                "inspect",
                "--format",
                "{{json .Config}}",
                "interop/app:1",
            ])
            .output()
            .unwrap(),
        "docker image inspect",
    );
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["WorkingDir"], "/srv");
    let history = check(
        d.docker()
            .args(["history", "--no-trunc", "interop/app:1"])
            .output()
            .unwrap(),
        "docker history",
    );
    assert!(history.contains("COPY"), "{history}");
}
