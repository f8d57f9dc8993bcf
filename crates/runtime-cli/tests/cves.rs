//! Reproductions of runc's three best-known escapes, each shown to fail.

mod common;
use common::*;
use std::os::unix::fs::symlink;

/// CVE-2021-30465: a mount target that is a symlink out of the rootfs must
/// land inside the rootfs, never on the host.
#[test]
fn mount_through_symlink_stays_in_rootfs() {
    if !require_root("mount_through_symlink_stays_in_rootfs") {
        return;
    }
    let rt = Rt::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("precious"), "host data").unwrap();
    let mut b = bundle(&["sh", "-c", "ls /evil /rel"]);
    symlink(host.path(), b.rootfs().join("evil")).unwrap();
    symlink(
        "../../../../../../..".to_string() + host.path().to_str().unwrap(),
        b.rootfs().join("rel"),
    )
    .unwrap();
    b.edit_mounts(|mounts| {
        for d in ["/evil", "/rel"] {
            mounts.push(
                serde_json::from_value(
                    serde_json::json!({"destination": d, "type": "tmpfs", "source": "tmpfs"}),
                )
                .unwrap(),
            );
        }
    });
    b.save().unwrap();
    let o = rt.run(b.path());
    assert!(o.status.success(), "{}", stderr(&o));
    // Inside, both names show the (empty) tmpfs; the host dir was untouched.
    assert_eq!(stdout(&o).trim(), "/evil:\n\n/rel:", "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(host.path().join("precious")).unwrap(),
        "host data"
    );
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mi.contains(host.path().to_str().unwrap()),
        "a mount reached the host path"
    );
}

/// CVE-2024-21626: no runtime descriptor reaches the container, and a cwd
/// naming one through /proc/self/fd is refused.
#[test]
fn no_fd_leaks_and_no_cwd_through_proc_fd() {
    if !require_root("no_fd_leaks_and_no_cwd_through_proc_fd") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sh", "-c", "ls /proc/self/fd"]);
    let o = rt.run(b.path());
    assert!(o.status.success(), "{}", stderr(&o));
    // ls itself holds one descriptor (3) for the directory it lists.
    assert_eq!(
        stdout(&o).split_whitespace().collect::<Vec<_>>(),
        vec!["0", "1", "2", "3"],
        "{}",
        stdout(&o)
    );
    for n in 3..10 {
        let mut b = bundle(&["sh", "-c", "ls ../../../"]);
        b.edit_process(|p| {
            p.set_cwd(format!("/proc/self/fd/{n}").into());
        });
        b.save().unwrap();
        let o = rt.run(b.path());
        assert!(
            !o.status.success(),
            "cwd /proc/self/fd/{n} was accepted: {}",
            stdout(&o)
        );
        assert!(stderr(&o).contains("cwd"), "{}", stderr(&o));
    }
}

/// --preserve-fds passes exactly the named descriptors on.
#[test]
fn preserve_fds_passes_extra_descriptors() {
    if !require_root("preserve_fds_passes_extra_descriptors") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sh", "-c", "cat <&3; ls /proc/self/fd | wc -l"]);
    let file = tmp_path("fd3");
    std::fs::write(&file, "through fd 3\n").unwrap();
    // The shell opens fd 3 for the runtime, as a caller such as conmon would.
    let sh = format!("exec 3<{} && exec \"$@\"", file.display());
    let mut c = std::process::Command::new("/bin/sh");
    c.args([
        "-c",
        &sh,
        "sh",
        BIN,
        "--root",
        rt.root.path().to_str().unwrap(),
        "run",
        "--preserve-fds",
        "1",
    ])
    .args(["--bundle", b.path().to_str().unwrap(), &unique_id("pfd")]);
    let o = output_via_files(c);
    assert!(o.status.success(), "{}", stderr(&o));
    // 0, 1, 2, the preserved 3, and ls's own directory descriptor.
    assert_eq!(stdout(&o), "through fd 3\n5\n");
    let _ = std::fs::remove_file(file);
}

/// CVE-2019-5736: while the runtime's code runs inside the container (the
/// init waiting for `start` is exactly that), /proc/PID/exe must not lead
/// a container process to the host's binary, or it could write through it.
#[test]
fn runtime_binary_cannot_be_reached_through_proc_exe() {
    if !require_root("runtime_binary_cannot_be_reached_through_proc_exe") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sleep", "100"]);
    // The trap for `exec`: running /evil makes the kernel execute
    // /proc/self/exe, the runtime itself, inside the container.
    std::fs::write(b.rootfs().join("evil"), "#!/proc/self/exe\n").unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(b.rootfs().join("evil"))
        .status()
        .unwrap();
    let id = unique_id("cve5736");
    rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let before = std::fs::read(BIN).unwrap();
    // The init (the runtime's image, waiting for start) is PID 1 here.
    let o = rt.out(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/1/exe > /dev/null && echo READ; echo pwned > /proc/1/exe && echo WROTE",
    ]);
    assert!(
        !stdout(&o).contains("READ") && !stdout(&o).contains("WROTE"),
        "{}",
        stdout(&o)
    );
    rt.ok(&["start", &id]);
    // `exec` runs from a sealed copy: what /evil reaches is that copy.
    for _ in 0..3 {
        let _ = rt.out(&["exec", &id, "/evil"]);
    }
    let o = rt.out(&[
        "exec",
        &id,
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do echo pwned > $p/exe 2>/dev/null && echo WROTE; done; true",
    ]);
    assert!(!stdout(&o).contains("WROTE"), "{}", stdout(&o));
    assert!(
        before == std::fs::read(BIN).unwrap(),
        "the host binary changed"
    );
    rt.ok(&["delete", "--force", &id]);
}

/// Which invocations re-execute from a sealed copy.
#[test]
fn sealed_copy_is_used_where_the_container_may_hold_processes() {
    use std::ffi::OsString;
    let d = tempfile::tempdir().unwrap();
    let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    let own = r#"{"linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}}"#;
    std::fs::write(d.path().join("config.json"), own).unwrap();
    let b = d.path().to_str().unwrap();
    let f = berth_runtime::cloned::needs_sealed_copy;
    assert!(!f(&args(&[
        "berth-runtime",
        "--root",
        "/x",
        "run",
        "--bundle",
        b,
        "id"
    ])));
    assert!(!f(&args(&[
        "berth-runtime",
        "create",
        &format!("--bundle={b}"),
        "id"
    ])));
    assert!(f(&args(&["berth-runtime", "exec", "id", "true"])));
    assert!(!f(&args(&["berth-runtime", "state", "id"])));
    std::fs::write(
        d.path().join("config.json"),
        r#"{"linux":{"namespaces":[{"type":"pid","path":"/proc/1/ns/pid"}]}}"#,
    )
    .unwrap();
    assert!(f(&args(&["berth-runtime", "run", "-b", b, "id"])));
    std::fs::write(d.path().join("config.json"), "garbage").unwrap();
    assert!(f(&args(&["berth-runtime", "run", "-b", b, "id"])));
}
