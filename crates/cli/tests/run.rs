//! `berth import`, `images` and `run` end to end, as root: output, exit
//! codes, the default profile seen from inside, and that `--rm` leaves
//! nothing behind.

mod common;

use std::process::{Command, Stdio};

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
    // A file without execute permission: refused at create, with why.
    let o = b.run(&["run", "--rm", "bb", "/etc/hostname"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("exec: \"/etc/hostname\": permission denied"),
        "{}",
        stderr(&o)
    );
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

/// A platform this project's machines are not.
const FOREIGN: &str = "linux/s390x";

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
            &["run", "--network", "host", "--link", "other", "bb", "true"][..],
            "--link cannot be used with --network host",
        ),
        (
            &["run", "--network", "nosuchnet", "bb", "true"][..],
            "network nosuchnet not found",
        ),
        // A flag berth does not know is named as docker names it, not
        // taken for the image (or exec's container).
        (
            &["run", "--bogus=1", "bb", "true"][..],
            "unknown flag: --bogus",
        ),
        (
            &["exec", "--bogus", "x", "true"][..],
            "unknown flag: --bogus",
        ),
        (
            &["run", "--blkio-weight-device", "/dev/vda:10", "bb", "true"][..],
            "--blkio-weight-device is not supported yet",
        ),
        (
            &["run", "--disable-content-trust=false", "bb", "true"][..],
            "--disable-content-trust=false (image signatures) is not supported yet",
        ),
        // No emulation: another platform than this machine's is refused.
        (
            &["run", "--platform", FOREIGN, "bb", "true"][..],
            "--platform linux/s390x (berth runs this machine's platform only",
        ),
        (
            &["create", "--platform", "linux//", "bb", "true"][..],
            "invalid platform \"linux//\"",
        ),
    ] {
        let o = b.run(args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    // This machine's own platform, which the image is of, runs.
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--platform",
            &berth_testutil::host_platform(),
            "bb",
            "echo",
            "here"
        ]),
        "here\n"
    );
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

/// The root of a `--rm` container is a volatile overlay (its unmount does
/// not sync the host's filesystem: its changes are thrown away anyway);
/// a kept container's root is not.
#[test]
fn rm_containers_root_is_volatile_and_kept_ones_are_not() {
    if !berth_testutil::require_root("rm_containers_root_is_volatile_and_kept_ones_are_not") {
        return;
    }
    let b = Berth::with_image();
    let root_line = |rm: bool| {
        let mut args = vec!["run", "--network", "none"];
        if rm {
            args.push("--rm");
        }
        args.extend(["bb", "cat", "/proc/self/mountinfo"]);
        let out = b.ok(&args);
        out.lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .unwrap_or_else(|| panic!("no root mount in {out}"))
            .to_string()
    };
    let rm = root_line(true);
    assert!(rm.contains(" overlay ") && rm.contains("volatile"), "{rm}");
    let kept = root_line(false);
    assert!(kept.contains(" overlay "), "{kept}");
    assert!(!kept.contains("volatile"), "{kept}");
}

/// Entries of `dir`, sorted; none when it does not exist.
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The monitors of `b` once they stopped or 30 seconds passed (they name
/// its root in their command lines).
fn monitors_after_a_while(b: &Berth) -> usize {
    let root = b.root.to_string_lossy().into_owned();
    let monitors = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("berth-monitor") && c.contains(&root)
                })
            })
            .count()
    };
    for _ in 0..600 {
        if monitors() == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    monitors()
}

/// The monitor starts while the root is mounted and the spec written; a
/// start that fails there leaves the container created, nothing mounted
/// and no monitor behind.
#[test]
fn a_start_that_fails_before_the_monitor_is_told_leaves_nothing_running() {
    if !berth_testutil::require_root(
        "a_start_that_fails_before_the_monitor_is_told_leaves_nothing_running",
    ) {
        return;
    }
    let b = Berth::with_image();
    b.ok(&["create", "--name", "usr", "-u", "nosuch", "bb", "true"]);
    let o = b.run(&["start", "usr"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unable to find user nosuch"),
        "{}",
        stderr(&o)
    );
    let ps = b.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert_eq!(ps.trim(), "usr Created", "{ps}");
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    assert_eq!(monitors_after_a_while(&b), 0, "a monitor stayed");
    // And it starts once the user is one the image has.
    let o = b.run(&["run", "--rm", "-u", "root", "bb", "id", "-u"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\n", "{}", stderr(&o));
}

/// `run` starts its container's monitor before it creates the container;
/// a `run` that fails before the start (no such image, a name taken)
/// leaves that monitor to end by itself, with nothing made; one that
/// fails in the start (no such user) has it report the failure.
#[test]
fn a_run_that_fails_leaves_no_monitor_behind() {
    if !berth_testutil::require_root("a_run_that_fails_leaves_no_monitor_behind") {
        return;
    }
    let b = Berth::with_image();
    let o = b.run(&["run", "--rm", "--pull", "never", "nosuch/image", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    b.ok(&["create", "--name", "taken", "bb", "true"]);
    let o = b.run(&["run", "--name", "taken", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("taken"), "{}", stderr(&o));
    let o = b.run(&["run", "-u", "nosuch", "bb", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("nosuch"), "{}", stderr(&o));
    assert_eq!(monitors_after_a_while(&b), 0, "a monitor stayed");
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    // The monitors that ran containers served them: their output and codes.
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        "echo out; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(monitors_after_a_while(&b), 0, "a monitor stayed");
}

/// `run` has a parser of its own (see main.rs `RunOnly`): the global
/// flags still go anywhere and in either form, and `--help` still shows
/// run's usage.
#[test]
fn run_takes_global_flags_anywhere_and_shows_its_help() {
    if !berth_testutil::require_root("run_takes_global_flags_anywhere_and_shows_its_help") {
        return;
    }
    let b = Berth::with_image();
    let (root, runroot) = (b.root.to_str().unwrap(), b.runroot.to_str().unwrap());
    let go = |args: &[&str]| {
        let o = Command::new(common::bin())
            .args(args)
            .env("BERTH_CONFIG", &b.net.config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let tail = ["--rm", "--network", "none", "bb", "echo", "ok"];
    let after: Vec<&str> = ["run", "--root", root, "--runroot", runroot]
        .into_iter()
        .chain(tail)
        .collect();
    assert_eq!(go(&after), (Some(0), "ok\n".to_string()));
    let r = format!("--root={root}");
    let rr = format!("--runroot={runroot}");
    let eq: Vec<&str> = [r.as_str(), rr.as_str(), "run"]
        .into_iter()
        .chain(tail)
        .collect();
    assert_eq!(go(&eq), (Some(0), "ok\n".to_string()));
    let (code, help) = go(&["run", "--help"]);
    assert_eq!(code, Some(0));
    assert!(help.contains("Usage: berth run"), "{help}");
    // Nothing ran anywhere else.
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

/// `run --rm` returns once the container is gone from `ps -a` and
/// unmounted; its monitor deletes the directories after answering, and
/// when it is done nothing of the container is left on disk.
#[test]
fn rm_leaves_no_files_once_its_monitor_is_done() {
    if !berth_testutil::require_root("rm_leaves_no_files_once_its_monitor_is_done") {
        return;
    }
    let b = Berth::with_image();
    let snapshots = b.root.join("snapshots").join("snapshots");
    let layers = entries(&snapshots);
    let mut ids = Vec::new();
    for _ in 0..3 {
        // The hostname is the short id, which starts the cgroup's name.
        let out = b.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "bb",
            "sh",
            "-c",
            "echo x > /f; hostname",
        ]);
        ids.push(out.trim().to_string());
        assert_eq!(b.ok(&["ps", "-aq"]), "");
        assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    }
    assert_eq!(monitors_after_a_while(&b), 0, "monitors still running");
    // Nothing either in the trash where removals move what they delete.
    for parent in [b.root.join("containers"), b.runroot.join("containers")] {
        let left: Vec<String> = entries(&parent)
            .into_iter()
            .filter(|e| e != ".trash")
            .chain(entries(&parent.join(".trash")))
            .collect();
        assert_eq!(left, Vec::<String>::new(), "in {}", parent.display());
    }
    assert_eq!(entries(&snapshots), layers);
    assert_eq!(entries(&snapshots.join(".work")), Vec::<String>::new());
    // The runtime's states and the cgroups too.
    let states: Vec<String> = entries(&b.runroot.join("runtime"))
        .into_iter()
        .filter(|e| !e.starts_with('.'))
        .collect();
    assert_eq!(states, Vec::<String>::new());
    for c in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let left: Vec<String> = entries(&c.path().join("berth"))
            .into_iter()
            .filter(|e| ids.iter().any(|id| e.starts_with(id.as_str())))
            .collect();
        assert_eq!(left, Vec::<String>::new(), "in {}", c.path().display());
    }
}

/// The json-file log is made at the first line of output: a container
/// that writes nothing has none, and `logs` shows nothing for it.
#[test]
fn a_silent_container_has_no_log_file() {
    if !berth_testutil::require_root("a_silent_container_has_no_log_file") {
        return;
    }
    let b = Berth::with_image();
    let log_of = |name: &str| {
        let id = b.ok(&["inspect", "-f", "{{.Id}}", name]).trim().to_string();
        b.root
            .join("containers")
            .join(&id)
            .join(format!("{id}-json.log"))
    };
    b.ok(&["run", "--name", "quiet", "--network", "none", "bb", "true"]);
    assert!(!log_of("quiet").exists());
    let o = b.run(&["logs", "quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    b.ok(&[
        "run",
        "--name",
        "loud",
        "--network",
        "none",
        "bb",
        "echo",
        "hi",
    ]);
    assert!(log_of("loud").exists());
    assert_eq!(b.ok(&["logs", "loud"]), "hi\n");
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
