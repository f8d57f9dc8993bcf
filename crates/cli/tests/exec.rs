//! `berth exec -d` (returns at once, the process runs on under a monitor
//! of its own) and `exec --privileged` (every capability, no seccomp).

mod common;

use common::{status_field, Berth};

#[test]
fn exec_detach_returns_and_the_process_runs_on() {
    if !berth_testutil::require_root("exec_detach_returns_and_the_process_runs_on") {
        return;
    }
    let b = Berth::with_image();
    b.ok(&["run", "-d", "--name", "box", "bb", "sleep", "1000"]);
    // It has returned (its output is collected) while the command still
    // runs: the command ends only when the container does.
    let out = b.ok(&[
        "exec",
        "-d",
        "box",
        "sh",
        "-c",
        "echo lost; echo ran > /tmp/ran; exec sleep 4545",
    ]);
    assert_eq!(out, "", "exec -d prints nothing and keeps no output");
    let mut ps = String::new();
    for _ in 0..100 {
        ps = b.ok(&["exec", "box", "ps", "-o", "args"]);
        if ps.contains("sleep 4545") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ps.contains("sleep 4545"), "{ps}");
    assert_eq!(b.ok(&["exec", "box", "cat", "/tmp/ran"]), "ran\n");
    // Its output went nowhere: not into the container's log.
    assert_eq!(b.ok(&["logs", "box"]), "");

    // A command that cannot start fails as the foreground exec does.
    let o = b.run(&["exec", "-d", "box", "nosuchcommand"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nosuchcommand"));
    let o = b.run(&["exec", "-d", "-t", "box", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--detach cannot be used with --tty"));

    // Its monitor goes with the container.
    b.ok(&["rm", "-f", "box"]);
    let dir = b.dir.path().to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            assert!(!cmd.contains(&dir), "left running: {cmd}");
        }
    }
}

#[test]
fn exec_privileged_has_every_capability_and_keeps_seccomp() {
    if !berth_testutil::require_root("exec_privileged_has_every_capability_and_keeps_seccomp") {
        return;
    }
    let b = Berth::with_image();
    b.ok(&["run", "-d", "--name", "box", "bb", "sleep", "1000"]);
    let plain = b.ok(&["exec", "box", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&plain, "CapEff:"), "00000000a80425fb");
    assert_eq!(status_field(&plain, "Seccomp:"), "2");
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = status_field(&ours, "CapBnd:");
    let privileged = b.ok(&["exec", "--privileged", "box", "cat", "/proc/self/status"]);
    for f in ["CapEff:", "CapPrm:", "CapBnd:", "CapInh:"] {
        assert_eq!(status_field(&privileged, f), all, "{f} {privileged}");
    }
    // docker widens only the capabilities: the container's seccomp filter,
    // made for its own capabilities, still holds.
    assert_eq!(status_field(&privileged, "Seccomp:"), "2");
    // So a capability the container lacks is the exec's (renice -n -5
    // needs CAP_SYS_NICE, not in docker's default set).
    let nice = "renice -n -5 $$";
    let o = b.run(&["exec", "box", "sh", "-c", nice]);
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    b.ok(&["exec", "--privileged", "box", "sh", "-c", nice]);
    // The container itself is unchanged.
    let again = b.ok(&["exec", "box", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&again, "CapEff:"), "00000000a80425fb");
    b.ok(&["rm", "-f", "box"]);
}
