//! A detached container's life through the CLI: ps, logs, exec, stop,
//! wait, kill, inspect, rm; names; and that removal leaves no mount,
//! cgroup, snapshot or row behind.

mod common;

use common::{stderr, Berth};

#[test]
fn detached_container_lifecycle() {
    if !berth_testutil::require_root("detached_container_lifecycle") {
        return;
    }
    let b = Berth::with_image();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "bb",
            "sh",
            "-c",
            "echo out; echo err >&2; exec sleep 100",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let ps = b.ok(&["ps"]);
    assert!(ps.starts_with("CONTAINER ID   IMAGE   COMMAND"), "{ps}");
    let row = ps.lines().nth(1).unwrap();
    assert!(
        row.starts_with(&id[..12]) && row.contains("Up ") && row.ends_with("web"),
        "{ps}"
    );
    assert_eq!(b.ok(&["ps", "-q"]).trim(), &id[..12]);

    // The same name again is refused.
    let o = b.run(&["run", "-d", "--name", "web", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"web\" is already in use"));

    // Logs come back by stream, and the file is docker's json-file.
    let o = b.run(&["logs", "web"]);
    for _ in 0..50 {
        if !o.stdout.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = b.run(&["logs", "web"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    let log = std::fs::read_to_string(
        b.root
            .join("containers")
            .join(&id)
            .join(format!("{id}-json.log")),
    )
    .unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["log"], "out\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));

    // exec: in the container's namespaces, with its env plus ours.
    let out = b.ok(&[
        "exec",
        "-e",
        "X=42",
        "-w",
        "/tmp",
        "web",
        "sh",
        "-c",
        "echo $X $HOSTNAME; pwd; ps -o pid,comm",
    ]);
    assert!(
        out.starts_with(&format!("42 {}\n/tmp\n", &id[..12])),
        "{out}"
    );
    assert!(out.contains("1 sleep"), "{out}");
    assert_eq!(
        b.ok(&["exec", "-u", "1000:1000", "web", "id", "-u"]).trim(),
        "1000"
    );
    // --env-file: its K=V lines, comments skipped; -e after it wins.
    let envf = b.dir.path().join("exec.env");
    std::fs::write(&envf, "# a comment\nFROM_FILE=1\nX=file\n").unwrap();
    assert_eq!(
        b.ok(&[
            "exec",
            "--env-file",
            envf.to_str().unwrap(),
            "-e",
            "X=flag",
            "web",
            "sh",
            "-c",
            "echo $FROM_FILE $X",
        ])
        .trim(),
        "1 flag"
    );
    assert_eq!(
        b.run(&["exec", "web", "sh", "-c", "exit 5"]).status.code(),
        Some(5)
    );
    assert_eq!(b.run(&["exec", "web", "nosuch"]).status.code(), Some(127));

    let inspect: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "web"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
    assert_eq!(inspect[0]["Name"], "/web");
    assert_eq!(inspect[0]["State"]["Status"], "running");
    assert!(inspect[0]["State"]["Pid"].as_i64().unwrap() > 0);

    // A running container is not removed without -f.
    assert_eq!(b.run(&["rm", "web"]).status.code(), Some(1));
    // sleep as PID 1 ignores SIGTERM: stop falls back to SIGKILL.
    let t = std::time::Instant::now();
    assert_eq!(b.ok(&["stop", "-t", "1", "web"]).trim(), "web");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(b.ok(&["wait", "web"]).trim(), "137");
    let ps = b.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert_eq!(b.ok(&["ps", "-q"]), "");
    assert!(
        b.mounts().is_empty(),
        "rootfs still mounted after exit: {:?}",
        b.mounts()
    );
    assert!(
        common::cgroup_dirs(&id).is_empty(),
        "cgroup left: {:?}",
        common::cgroup_dirs(&id)
    );

    // It can be started again, and its log grows; stop takes the signal
    // to send first (-s), a bad one refused.
    b.ok(&["start", "web"]);
    b.fails(&["stop", "-s", "NOPE", "web"], 1, "unknown signal \"NOPE\"");
    assert_eq!(b.ok(&["restart", "web"]).trim(), "web");
    assert_eq!(
        b.ok(&["stop", "-s", "KILL", "-t", "30", "web"]).trim(),
        "web"
    );
    assert_eq!(b.ok(&["wait", "web"]).trim(), "137");
    b.ok(&["start", "web"]);
    assert_eq!(b.ok(&["kill", "-s", "TERM", "web"]).trim(), "web");
    b.ok(&["kill", "web"]);
    assert_eq!(b.ok(&["wait", "web"]).trim(), "137");
    assert_eq!(b.ok(&["logs", "web"]).matches("out").count(), 4);

    b.ok(&["rm", "web"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert!(!b.root.join("containers").join(&id).exists());
    assert!(!b.runroot.join("containers").join(&id).exists());
    assert_eq!(b.run(&["inspect", "web"]).status.code(), Some(1));
}

#[test]
fn rm_force_kills_and_removes() {
    if !berth_testutil::require_root("rm_force_kills_and_removes") {
        return;
    }
    let b = Berth::with_image();
    let id = b
        .ok(&["run", "-d", "bb", "sleep", "100"])
        .trim()
        .to_string();
    let name = b
        .ok(&["ps", "--no-trunc"])
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    assert!(name.contains('_'), "generated name {name:?}");
    b.ok(&["rm", "-f", &name]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    assert!(common::cgroup_dirs(&id).is_empty());
}

#[test]
fn logs_follow_ends_when_the_container_does() {
    if !berth_testutil::require_root("logs_follow_ends_when_the_container_does") {
        return;
    }
    let b = Berth::with_image();
    let id = b
        .ok(&[
            "run",
            "-d",
            "bb",
            "sh",
            "-c",
            "for i in 1 2 3; do echo line$i; sleep 0.2; done",
        ])
        .trim()
        .to_string();
    let out = b.ok(&["logs", "-f", &id]);
    assert_eq!(out, "line1\nline2\nline3\n");
    b.ok(&["rm", &id]);
}

#[test]
fn create_then_start() {
    if !berth_testutil::require_root("create_then_start") {
        return;
    }
    let b = Berth::with_image();
    let id = b
        .ok(&[
            "create",
            "--name",
            "later",
            "bb",
            "sh",
            "-c",
            "echo started",
        ])
        .trim()
        .to_string();
    assert!(b.ok(&["ps", "-a"]).contains("Created"));
    b.ok(&["start", "later"]);
    assert_eq!(b.ok(&["wait", "later"]).trim(), "0");
    assert_eq!(b.ok(&["logs", &id]), "started\n");
    b.ok(&["rm", "later"]);
    // --cidfile: the id written there; a file already there (another
    // container's) refuses the next, and a create that fails leaves none.
    let cid = b.dir.path().join("cid");
    let cid_s = cid.to_str().unwrap();
    let id = b
        .ok(&["create", "--cidfile", cid_s, "bb", "true"])
        .trim()
        .to_string();
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id);
    let o = b.run(&["run", "--rm", "--cidfile", cid_s, "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("container ID file found") && stderr(&o).contains(cid_s),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id, "the file stays");
    std::fs::remove_file(&cid).unwrap();
    let o = b.run(&[
        "run",
        "--rm",
        "--cidfile",
        cid_s,
        "--cpu-period",
        "1",
        "bb",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(!cid.exists(), "a failed create left its id file");
    b.ok(&["run", "--rm", "--cidfile", cid_s, "bb", "true"]);
    assert_eq!(std::fs::read_to_string(&cid).unwrap().len(), 64);
    b.ok(&["rm", &id]);
}

/// `version` and `info` (`system info`), as docker's CLI shows them and
/// through `--format`.
#[test]
fn version_and_info() {
    if !berth_testutil::require_root("version_and_info") {
        return;
    }
    let b = Berth::with_image();
    let v = b.ok(&["version"]);
    assert!(
        v.starts_with("Client:\n Version:") && v.contains("\nServer: berth "),
        "{v}"
    );
    assert_eq!(
        b.ok(&["version", "--format", "{{.Server.Version}}"]).trim(),
        env!("CARGO_PKG_VERSION")
    );
    b.ok(&["create", "--name", "counted", "bb", "true"]);
    let info = b.ok(&["info"]);
    assert!(
        info.contains(" Containers: 1\n  Running: 0\n  Paused: 0\n  Stopped: 1\n"),
        "{info}"
    );
    assert!(
        info.contains(&format!(" Docker Root Dir: {}\n", b.root.display())),
        "{info}"
    );
    assert_eq!(
        b.ok(&["info", "-f", "{{.Containers}} {{.Images}}"]),
        "1 1\n"
    );
    assert_eq!(
        b.ok(&["system", "info", "--format", "{{.Driver}}"]),
        "overlay\n"
    );
    let all: serde_json::Value =
        serde_json::from_str(&b.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(all["ContainersStopped"], 1);
    b.ok(&["rm", "counted"]);
}

/// docker's management command: `container CMD` is `CMD` (`container ls`
/// is `ps`), with the same exit codes.
#[test]
fn container_commands_are_the_top_level_ones() {
    if !berth_testutil::require_root("container_commands_are_the_top_level_ones") {
        return;
    }
    let b = Berth::with_image();
    let id = b
        .ok(&[
            "container",
            "create",
            "--name",
            "mc",
            "--network",
            "none",
            "bb",
            "sh",
            "-c",
            "echo out; touch /made",
        ])
        .trim()
        .to_string();
    assert_eq!(b.ok(&["container", "start", "-a", "mc"]), "out\n");
    for ls in ["ls", "ps", "list"] {
        assert_eq!(
            b.ok(&["container", ls, "-a", "--format", "{{.Names}} {{.State}}"]),
            "mc exited\n",
            "container {ls}"
        );
    }
    assert_eq!(
        b.ok(&["container", "inspect", "-f", "{{.Id}}", "mc"])
            .trim(),
        id
    );
    assert_eq!(b.ok(&["container", "logs", "mc"]), "out\n");
    assert!(b
        .ok(&["container", "diff", "mc"])
        .lines()
        .any(|l| l == "A /made"));
    assert_eq!(b.ok(&["container", "wait", "mc"]).trim(), "0");
    b.ok(&["container", "rename", "mc", "mc2"]);
    b.ok(&["container", "rm", "mc2"]);
    assert_eq!(b.ok(&["container", "ls", "-aq"]), "");
    // run's exit codes: the container's, 127 for a missing command.
    let o = b.run(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    let o = b.run(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "bb",
        "nosuchcmd",
    ]);
    assert_eq!(o.status.code(), Some(127));
    b.fails(
        &["container", "inspect", "nothere"],
        1,
        "no such object: nothere",
    );
    b.ok(&["run", "--network", "none", "--name", "gone", "bb", "true"]);
    assert!(b
        .ok(&["container", "prune", "-f"])
        .contains("Deleted Containers:"));
}
