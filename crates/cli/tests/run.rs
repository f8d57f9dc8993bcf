//! `berth import`, `images` and `run` end to end, as root: output, exit
//! codes, the default profile seen from inside, and that `--rm` leaves
//! nothing behind.

mod common;

use common::Berth;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn import_then_images_lists_it() {
    if !berth_testutil::require_root("import_then_images_lists_it") {
        return;
    }
    let b = Berth::with_image();
    let table = b.ok(&["images"]);
    let mut lines = table.lines();
    let head = lines.next().unwrap();
    assert!(
        head.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{table}"
    );
    assert!(head.ends_with("SIZE"), "{table}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], &["bb", "latest"], "{table}");
    assert_eq!(row[2].len(), 12);
    let q = b.ok(&["images", "-q"]);
    assert_eq!(q.trim(), row[2]);
    let o = b.run(&["import", "/nonexistent.tar", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent.tar"), "{}", stderr(&o));
}

#[test]
fn run_streams_output_and_exits_with_the_containers_code() {
    if !berth_testutil::require_root("run_streams_output_and_exits_with_the_containers_code") {
        return;
    }
    let b = Berth::with_image();
    let o = b.run(&[
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert!(stderr(&o).contains("err\n"));
    // Docker's codes: 127 not found, 126 cannot invoke, 125 the engine.
    let o = b.run(&["run", "--rm", "bb", "nosuchcommand"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("nosuchcommand"));
    let o = b.run(&["run", "--rm", "bb", "/etc"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    // --pull never: without it berth would try Docker Hub first, as docker does.
    let o = b.run(&["run", "--rm", "--pull", "never", "nosuchimage"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("no such image: nosuchimage"),
        "{}",
        stderr(&o)
    );
    assert_eq!(b.ok(&["ps", "-aq"]), "", "--rm left containers behind");
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
}

#[test]
fn unsupported_flags_fail_clearly() {
    if !berth_testutil::require_root("unsupported_flags_fail_clearly") {
        return;
    }
    let b = Berth::with_image();
    for (args, want) in [
        (
            &["run", "--userns", "keep-id", "bb", "true"][..],
            "invalid value \"keep-id\" for --userns",
        ),
        (
            &["create", "-a", "stdout", "bb", "true"][..],
            "create --attach is not supported yet",
        ),
        (
            &["run", "--gpus", "all", "bb", "true"][..],
            "--gpus is not supported yet",
        ),
        (
            &["run", "--network", "host", "-p", "80:80", "bb", "true"][..],
            "--publish cannot be used with --network host",
        ),
        (
            &["run", "--network", "nosuchnet", "bb", "true"][..],
            "network nosuchnet not found",
        ),
    ] {
        let o = b.run(args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(
        b.ok(&["ps", "-aq"]),
        "",
        "a refused run created a container"
    );
    // The refused runs left the image unused: rmi removes it.
    assert!(b.ok(&["rmi", "bb"]).starts_with("Untagged: bb:latest\n"));
    assert_eq!(b.ok(&["images", "-q"]), "");
}

#[test]
fn the_default_profile_from_inside() {
    if !berth_testutil::require_root("the_default_profile_from_inside") {
        return;
    }
    let b = Berth::with_image();
    let script = "hostname; echo pid=$$; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; ulimit -n; \
                  touch /sys/x 2>/dev/null && echo sys-rw || echo sys-ro; df -k /dev/shm | tail -1; \
                  cat /proc/kcore 2>/dev/null | head -c1 | wc -c; ps -o pid | wc -l; ls /dev; id -u; pwd";
    let id = b
        .ok(&["run", "-d", "-w", "/tmp", "bb", "sh", "-c", script])
        .trim()
        .to_string();
    assert_eq!(b.ok(&["wait", &id]).trim(), "0");
    let out = b.ok(&["logs", &id]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], &id[..12], "hostname is the short id: {out}");
    assert_eq!(lines[1], "pid=1", "{out}");
    // Docker's 14 capabilities.
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    let host_hard = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard: u64 = host_hard
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    let nofile: u64 = lines.iter().find_map(|l| l.parse().ok()).unwrap();
    assert_eq!(nofile, hard.min(1_048_576), "{out}");
    assert!(out.contains("sys-ro"), "{out}");
    assert!(out.contains(" 65536 "), "/dev/shm is 64m: {out}");
    assert!(out.contains("\n0\n"), "/proc/kcore is masked: {out}");
    for dev in ["null", "zero", "urandom", "pts", "shm", "mqueue"] {
        assert!(lines.contains(&dev), "/dev/{dev}: {out}");
    }
    assert!(out.ends_with("0\n/tmp\n"), "{out}");
    b.ok(&["rm", &id]);
}

#[test]
fn network_none_has_only_loopback_and_host_sees_the_host() {
    if !berth_testutil::require_root("network_none_has_only_loopback_and_host_sees_the_host") {
        return;
    }
    let b = Berth::with_image();
    let none = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(none.trim(), "lo");
    let host = b.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "bb",
        "ls",
        "/sys/class/net",
    ]);
    let ours: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(host.split_whitespace().count(), ours.len(), "{host}");
    let hn = b.ok(&[
        "run",
        "--rm",
        "-h",
        "box",
        "-e",
        "A=1",
        "-e",
        "B",
        "bb",
        "sh",
        "-c",
        "hostname; echo $A$HOSTNAME",
    ]);
    assert_eq!(hn, "box\n1box\n");
}

#[test]
fn run_attach_picks_the_streams() {
    if !berth_testutil::require_root("run_attach_picks_the_streams") {
        return;
    }
    let b = Berth::with_image();
    let script = "echo out; echo err >&2; exit 3";
    let o = b.run(&["run", "--rm", "-a", "stdout", "bb", "sh", "-c", script]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(stderr(&o), "");
    let o = b.run(&["run", "--rm", "-a", "STDERR", "bb", "sh", "-c", script]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    assert_eq!(stderr(&o), "err\n");
    // -a stdin passes our input on, as -i does.
    let mut c = b.cmd(&[
        "run",
        "--rm",
        "-a",
        "stdin",
        "-a",
        "stdout",
        "bb",
        "sh",
        "-c",
        "cat; echo end",
    ]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"typed\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "typed\nend\n");
    for (args, want) in [
        (
            &["run", "-d", "-a", "stdout", "bb", "true"][..],
            "conflicting options: --attach and --detach",
        ),
        (
            &["run", "--rm", "-a", "stdio", "bb", "true"][..],
            "valid streams are STDIN, STDOUT and STDERR",
        ),
    ] {
        let o = b.run(args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}
