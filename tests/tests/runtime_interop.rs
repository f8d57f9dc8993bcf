//! berth-runtime under the engines people run: podman, docker (dockerd
//! with `--add-runtime`) and containerd (`ctr run --runc-binary`). Each
//! test starts its peer on private roots and sockets and tears it down.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::peers::{Daemon, Dockerd, Podman};
use berth_testutil::{oci_archive, require_root, rootfs_tar};

/// The berth-runtime binary built beside this test (`cargo build
/// --workspace` puts both in the same profile directory).
fn berth_runtime() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join("berth-runtime");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// A peer tool that `make test` installs; missing is a failure under
/// BERTH_REQUIRE_ROOT (CI), a skip elsewhere.
fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok && std::env::var("BERTH_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{tool} is not installed (make test installs it)");
    }
    ok
}

fn out_str(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up within {secs}s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn podman_runs_containers_with_berth_runtime() {
    if !require_root("podman_runs_containers_with_berth_runtime") || !have("podman") {
        return;
    }
    let p = Podman::new();
    let tar = p.dir().join("rootfs.tar");
    rootfs_tar(&tar).unwrap();
    let podman =
        |args: &[&str]| -> Output { run(p.cmd().arg("--runtime").arg(berth_runtime()).args(args)) };
    let o = podman(&["import", tar.to_str().unwrap(), "localhost/bbtest:latest"]);
    assert!(o.status.success(), "import: {}", out_str(&o));
    let o = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/bbtest",
        "echo",
        "ok",
    ]);
    assert!(o.status.success(), "run: {}", out_str(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
    let o = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/bbtest",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", out_str(&o));
    let _ = podman(&["rm", "-af"]);
    let _ = podman(&["rmi", "-af"]);
}

#[test]
fn docker_runs_execs_and_stops_with_berth_runtime() {
    if !require_root("docker_runs_execs_and_stops_with_berth_runtime") || !have("dockerd") {
        return;
    }
    let d = Dockerd::start(&[
        "--add-runtime".to_string(),
        format!("berth={}", berth_runtime().display()),
    ]);
    let docker = |args: &[&str]| -> Output { run(d.docker().args(args)) };
    let tar = d.dir().join("rootfs.tar");
    rootfs_tar(&tar).unwrap();
    let o = docker(&["import", tar.to_str().unwrap(), "bbtest:latest"]);
    assert!(o.status.success(), "import: {}", out_str(&o));
    let o = docker(&[
        "run",
        "--runtime",
        "berth",
        "--rm",
        "--network",
        "none",
        "bbtest",
        "echo",
        "ok",
    ]);
    assert!(o.status.success(), "run: {}\n{}", out_str(&o), d.log());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
    let o = docker(&[
        "run",
        "-d",
        "--runtime",
        "berth",
        "--network",
        "none",
        "--name",
        "sleeper",
        "bbtest",
        "sleep",
        "300",
    ]);
    assert!(o.status.success(), "run -d: {}", out_str(&o));
    let o = docker(&[
        "exec",
        "sleeper",
        "sh",
        "-c",
        "echo exec-ok; cat /proc/1/comm",
    ]);
    assert!(o.status.success(), "exec: {}", out_str(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "exec-ok\nsleep\n");
    let t0 = Instant::now();
    let o = docker(&["stop", "-t", "2", "sleeper"]);
    assert!(o.status.success(), "stop: {}", out_str(&o));
    assert!(t0.elapsed() < Duration::from_secs(30));
    let o = docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.HostConfig.Runtime}}",
        "sleeper",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "exited berth",
        "{}",
        out_str(&o)
    );
    let _ = docker(&["rm", "-f", "sleeper"]);
}

#[test]
fn containerd_ctr_runs_with_berth_runtime() {
    if !require_root("containerd_ctr_runs_with_berth_runtime")
        || !have("containerd")
        || !have("ctr")
    {
        return;
    }
    let dir = PathBuf::from(format!("/tmp/bc{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = dir.join("containerd.sock");
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\naddress = \"{}\"\n",
            dir.join("root").display(),
            dir.join("state").display(),
            addr.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
    let child = Command::new("containerd")
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _d = Daemon {
        child,
        dir: dir.clone(),
    };
    let ctr = |args: &[&str]| -> Output {
        run(Command::new("ctr")
            .arg("--address")
            .arg(&addr)
            .args(["--namespace", "berthtest"])
            .args(args))
    };
    wait_until("containerd", 30, || ctr(&["version"]).status.success());
    let archive = dir.join("image.tar");
    oci_archive(&archive, "docker.io/library/bbtest:latest", &["sh"]).unwrap();
    let o = ctr(&["images", "import", archive.to_str().unwrap()]);
    assert!(o.status.success(), "import: {}", out_str(&o));
    let rt = berth_runtime();
    let o = ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        rt.to_str().unwrap(),
        "docker.io/library/bbtest:latest",
        "c1",
        "echo",
        "ok",
    ]);
    assert!(
        o.status.success(),
        "run: {}\n{}",
        out_str(&o),
        std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
    let _ = ctr(&["images", "rm", "docker.io/library/bbtest:latest"]);
}
