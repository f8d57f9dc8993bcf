//! More of what config.json can ask for: a terminal through the console
//! socket, sysctls, joining namespaces by path, --no-pivot, every hook
//! stage, kill --all, update from a file, OOM kills reported.

mod common;
use common::*;
use std::io::IoSliceMut;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;

fn recv_fd(stream: &std::os::unix::net::UnixStream) -> (String, OwnedFd) {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut buf = [0u8; 256];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let n = recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut buf)],
        &mut anc,
        RecvFlags::empty(),
    )
    .unwrap()
    .bytes;
    let mut fd = None;
    for m in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            fd = fds.next();
        }
    }
    (
        String::from_utf8_lossy(&buf[..n]).into_owned(),
        fd.expect("no fd in the console message"),
    )
}

#[test]
fn terminal_through_the_console_socket() {
    if !require_root("terminal_through_the_console_socket") {
        return;
    }
    let rt = Rt::new();
    let sock = tmp_path("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (name, master) = recv_fd(&stream);
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        // The slave closes when the container exits: EIO ends the read.
        let _ = std::io::Read::read_to_end(&mut f, &mut out);
        (name, String::from_utf8_lossy(&out).into_owned())
    });
    let mut b = bundle(&[
        "sh",
        "-c",
        "tty; stty size; [ -t 0 ] && echo stdin-is-tty; ls -l /dev/console | cut -c1",
    ]);
    b.edit_process(|p| {
        p.set_terminal(Some(true));
        p.set_console_size(Some(
            serde_json::from_str(r#"{"height":24,"width":100}"#).unwrap(),
        ));
    });
    b.save().unwrap();
    let o = rt.out(&[
        "run",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &unique_id("tty"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (name, out) = reader.join().unwrap();
    assert_eq!(name, "/dev/ptmx");
    let out = out.replace('\r', "");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("24 100"), "{out}");
    assert!(out.contains("stdin-is-tty"), "{out}");
    assert!(
        out.lines().any(|l| l == "c"),
        "/dev/console is the pty: {out}"
    );
    let _ = std::fs::remove_file(sock);
    // Without a console socket a terminal cannot be made for a detached create.
    let o = rt.out(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        &unique_id("tty2"),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("console-socket"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn sysctl_and_joined_network_namespace() {
    if !require_root("sysctl_and_joined_network_namespace") {
        return;
    }
    let rt = Rt::new();
    // A network namespace of the test's own, bound to a file.
    let ns = tmp_path("netns");
    std::fs::write(&ns, "").unwrap();
    let st = std::process::Command::new("unshare")
        .arg(format!("--net={}", ns.display()))
        .args([
            "sh",
            "-c",
            "ip link add berthv0 type veth peer name berthv1",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let mut b = bundle(&["sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '; echo; cat /proc/sys/net/ipv4/ip_forward; cat /proc/sys/kernel/msgmax"]);
    b.edit_linux(|linux| {
        let mut namespaces = linux.namespaces().clone().unwrap();
        for n in namespaces.iter_mut() {
            if n.typ() == oci_spec::runtime::LinuxNamespaceType::Network {
                n.set_path(Some(ns.clone()));
            }
        }
        linux.set_namespaces(Some(namespaces));
        linux.set_sysctl(Some(
            [
                ("net.ipv4.ip_forward".to_string(), "1".to_string()),
                ("kernel.msgmax".to_string(), "12345".to_string()),
            ]
            .into(),
        ));
    });
    b.save().unwrap();
    let o = rt.run(b.path());
    let _ = rustix::mount::unmount(&ns, rustix::mount::UnmountFlags::DETACH);
    let _ = std::fs::remove_file(&ns);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("lo") && lines[0].contains("berthv0"),
        "joined the test's netns: {out}"
    );
    assert_eq!(lines[1], "1", "net sysctl in the container's netns: {out}");
    assert_eq!(
        lines[2], "12345",
        "ipc sysctl in the container's ipc ns: {out}"
    );
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/msgmax")
            .unwrap()
            .trim(),
        "12345"
    );
}

#[test]
fn no_pivot_and_rootfs_propagation() {
    if !require_root("no_pivot_and_rootfs_propagation") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&[
        "sh",
        "-c",
        "ls /; awk '$5 == \"/\"' /proc/self/mountinfo | grep -c shared",
    ]);
    b.edit_linux(|linux| {
        linux.set_rootfs_propagation(Some("rshared".into()));
    });
    b.save().unwrap();
    let o = rt.out(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.path().to_str().unwrap(),
        &unique_id("nopivot"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("bin") && out.contains("etc") && !out.contains("work"),
        "{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some("1"),
        "the root is shared as asked: {out}"
    );
}

#[test]
fn every_hook_stage_runs_where_the_spec_says() {
    if !require_root("every_hook_stage_runs_where_the_spec_says") {
        return;
    }
    let rt = Rt::new();
    let log = tmp_path("hooks-all.log");
    let mut b = bundle(&["true"]);
    // createContainer and startContainer run in the container's namespaces:
    // their hostname is the container's.
    let h = |name: &str| serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} $(cat /proc/sys/kernel/hostname) >> {}", log.display())]}]);
    b.spec.set_hostname(Some("hooked".into()));
    let hooks = serde_json::json!({
        "prestart": h("prestart"),
        "createRuntime": h("createRuntime"),
        "createContainer": h("createContainer"),
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer $(hostname) > /tmp/started"]}],
        "poststart": h("poststart"),
        "poststop": h("poststop"),
    });
    b.spec
        .set_hooks(Some(serde_json::from_value(hooks).unwrap()));
    b.save().unwrap();
    let o = rt.run(b.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&log).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let expect = format!(
        "prestart {h}\ncreateRuntime {h}\ncreateContainer hooked\npoststart {h}\npoststop {h}\n",
        h = host.trim()
    );
    assert_eq!(text, expect);
    // startContainer ran inside the container, after the pivot.
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("tmp/started")).unwrap(),
        "startContainer hooked\n"
    );
    let _ = std::fs::remove_file(log);
}

#[test]
fn kill_all_and_update_from_a_resources_file() {
    if !require_root("kill_all_and_update_from_a_resources_file") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    let id = rt.run_detached(&b, "killall");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut pids: Vec<i32> = Vec::new();
    while pids.len() < 3 && std::time::Instant::now() < deadline {
        pids = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    }
    assert_eq!(pids.len(), 3, "{pids:?}");
    let table = rt.ok(&["ps", &id]);
    assert!(table.lines().next().unwrap().contains("PID"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.ends_with(" sleep 100")).count(),
        2,
        "{table}"
    );
    let res = tmp_path("res.json");
    std::fs::write(&res, r#"{"pids":{"limit":17},"cpu":{"shares":512}}"#).unwrap();
    rt.ok(&["update", "--resources", res.to_str().unwrap(), &id]);
    let ev: serde_json::Value = serde_json::from_str(&rt.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(ev["data"]["pids"]["limit"], 17);
    let o = rt.out(&["update", &id]);
    assert!(!o.status.success(), "update without limits must fail");
    rt.ok(&["kill", "--all", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    for p in pids {
        let st = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        assert!(
            st.is_empty() || st.contains(") Z"),
            "pid {p} survived kill --all: {st}"
        );
    }
    rt.ok(&["delete", &id]);
    let _ = std::fs::remove_file(res);
}

#[test]
fn oom_kill_is_reported() {
    if !require_root("oom_kill_is_reported") {
        return;
    }
    let rt = Rt::new();
    // A hog that the 8 MiB limit stops: /dev/shm is memory-backed tmpfs.
    let mut b = bundle(&[
        "sh",
        "-c",
        "sleep 0.5; head -c 64m /dev/zero > /dev/shm/hog; sleep 100",
    ]);
    b.edit_linux(|linux| {
        let mut res = linux.resources().clone().unwrap_or_default();
        res.set_memory(Some(
            serde_json::from_str(r#"{"limit":8388608,"swap":8388608}"#).unwrap(),
        ));
        linux.set_resources(Some(res));
    });
    b.edit_mounts(|mounts| {
        mounts.retain(|m| m.destination() != std::path::Path::new("/dev/shm"));
        mounts.push(serde_json::from_str(r#"{"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","nodev","size=128m"]}"#).unwrap());
    });
    b.save().unwrap();
    let id = rt.run_detached(&b, "oom");
    // The event stream reports the kill as an "oom" line.
    let mut child = rt
        .cmd()
        .args(["events", "--interval", "100ms", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let found = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("\"type\":\"oom\"") {
                return true;
            }
        }
        false
    });
    let t0 = std::time::Instant::now();
    let mut ok = false;
    while t0.elapsed() < std::time::Duration::from_secs(15) {
        if found.is_finished() {
            ok = found.join().unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    rt.ok(&["delete", "--force", &id]);
    assert!(ok, "no oom event within 15 s");
}

/// runc's interactive `run`: config.json asks for a terminal and no console
/// socket is given, so the runtime proxies the pty to its own terminal
/// (driven here through tmux, a real terminal).
#[test]
fn interactive_run_proxies_a_terminal() {
    if !require_root("interactive_run_proxies_a_terminal") {
        return;
    }
    let have_tmux = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_tmux {
        assert!(
            std::env::var("BERTH_REQUIRE_ROOT").as_deref() != Ok("1"),
            "tmux is not installed (make test installs it)"
        );
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&["sh"]);
    b.edit_process(|p| {
        p.set_terminal(Some(true));
    });
    b.save().unwrap();
    let session = unique_id("tty");
    let rc = tmp_path("rc");
    let cmd = format!(
        "{BIN} --root {} run --bundle {} {}; echo $? > {}",
        rt.root.path().display(),
        b.path().display(),
        unique_id("itty"),
        rc.display()
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .unwrap()
    };
    assert!(tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "100",
        "-y",
        "30",
        &cmd
    ])
    .status
    .success());
    let pane = |s: &str| {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-t", s, "-p"]).stdout).into_owned()
    };
    let wait_for = |what: &str| {
        let t0 = std::time::Instant::now();
        while !pane(&session).contains(what) {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "no {what:?} in:\n{}",
                pane(&session)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for("/ #");
    tmux(&[
        "send-keys",
        "-t",
        &session,
        "echo sum-$((40+2)); stty size",
        "Enter",
    ]);
    wait_for("sum-42");
    wait_for("30 100");
    tmux(&["send-keys", "-t", &session, "exit 5", "Enter"]);
    let t0 = std::time::Instant::now();
    while !rc.exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "run did not end:\n{}",
            pane(&session)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let code = std::fs::read_to_string(&rc).unwrap();
    tmux(&["kill-session", "-t", &session]);
    let _ = std::fs::remove_file(&rc);
    assert_eq!(code.trim(), "5");
}

#[test]
fn recursive_read_only_bind_and_overlay_mounts() {
    if !require_root("recursive_read_only_bind_and_overlay_mounts") {
        return;
    }
    let rt = Rt::new();
    // A host tree with a submount: plain "ro" would leave the submount
    // writable; "rro" covers it too.
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("sub")).unwrap();
    rustix::mount::mount(
        "tmpfs",
        host.path().join("sub").as_path(),
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap();
    let layers = tempfile::tempdir().unwrap();
    for d in ["lower", "upper", "work"] {
        std::fs::create_dir(layers.path().join(d)).unwrap();
    }
    std::fs::write(layers.path().join("lower/from-lower"), "low\n").unwrap();
    let mut b = bundle(&[
        "sh",
        "-c",
        "touch /data/x 2>/dev/null && echo top-writable; touch /data/sub/x 2>/dev/null && echo sub-writable; \
         cat /ov/from-lower; echo new > /ov/from-upper && echo ov-written",
    ]);
    b.edit_mounts(|mounts| {
        mounts.push(serde_json::from_value(serde_json::json!({"destination": "/data", "type": "bind", "source": host.path(), "options": ["rbind", "rro"]})).unwrap());
        let ov = format!(
            "lowerdir={},upperdir={},workdir={}",
            layers.path().join("lower").display(),
            layers.path().join("upper").display(),
            layers.path().join("work").display()
        );
        mounts.push(serde_json::from_value(serde_json::json!({"destination": "/ov", "type": "overlay", "source": "overlay", "options": [ov]})).unwrap());
    });
    b.save().unwrap();
    let o = rt.run(b.path());
    let _ = rustix::mount::unmount(
        host.path().join("sub").as_path(),
        rustix::mount::UnmountFlags::DETACH,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        !out.contains("top-writable") && !out.contains("sub-writable"),
        "{out}"
    );
    assert!(out.contains("low\n") && out.contains("ov-written"), "{out}");
    assert_eq!(
        std::fs::read_to_string(layers.path().join("upper/from-upper")).unwrap(),
        "new\n"
    );
}

#[test]
fn time_namespace_offsets_domainname_umask_oom_score() {
    if !require_root("time_namespace_offsets_domainname_umask_oom_score") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&["sh", "-c", "cut -d. -f1 /proc/uptime; cat /proc/sys/kernel/domainname; umask; cat /proc/self/oom_score_adj"]);
    b.edit_linux(|linux| {
        let mut ns = linux.namespaces().clone().unwrap();
        ns.push(serde_json::from_str(r#"{"type":"time"}"#).unwrap());
        linux.set_namespaces(Some(ns));
        linux.set_time_offsets(Some(
            [(
                "boottime".to_string(),
                serde_json::from_str(r#"{"secs":86400000}"#).unwrap(),
            )]
            .into(),
        ));
    });
    b.spec.set_domainname(Some("example.test".into()));
    b.edit_process(|p| {
        p.user_mut().set_umask(Some(0o027));
        p.set_oom_score_adj(Some(123));
    });
    b.save().unwrap();
    let o = rt.run(b.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let uptime: u64 = lines[0].parse().unwrap();
    assert!(
        uptime >= 86_400_000,
        "boottime offset of 1000 days not seen: {out}"
    );
    assert_eq!(&lines[1..], &["example.test", "0027", "123"], "{out}");
}

#[test]
fn apparmor_and_selinux_requests_fail_clearly() {
    let rt = Rt::new();
    let mut b = bundle(&["true"]);
    b.edit_process(|p| {
        p.set_apparmor_profile(Some("docker-default".into()));
    });
    b.save().unwrap();
    let o = rt.out(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        &unique_id("aa"),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("AppArmor"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn exec_detached_and_with_a_tty() {
    if !require_root("exec_detached_and_with_a_tty") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sleep", "100"]);
    let id = rt.run_detached(&b, "exectty");
    let pidfile = tmp_path("exec.pid");
    rt.ok(&[
        "exec",
        "--detach",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "sleep 1; touch /tmp/detached-done",
    ]);
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert!(pid > 0);
    let t0 = std::time::Instant::now();
    while !b.rootfs().join("tmp/detached-done").exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "detached exec never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sock = tmp_path("exec-console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (_, master) = recv_fd(&stream);
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::fs::File::from(master), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    let o = rt.out(&[
        "exec",
        "--tty",
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "tty; [ -t 1 ] && echo is-a-tty",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = reader.join().unwrap().replace('\r', "");
    assert!(
        out.contains("/dev/pts/") && out.contains("is-a-tty"),
        "{out}"
    );
    rt.ok(&["delete", "--force", &id]);
    let _ = std::fs::remove_file(pidfile);
    let _ = std::fs::remove_file(sock);
}

/// An idmapped bind: files the host owns as 1234 appear as root inside,
/// and what root writes inside lands on the host as 1234.
#[test]
fn idmapped_bind_mount() {
    if !require_root("idmapped_bind_mount") {
        return;
    }
    let rt = Rt::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "x").unwrap();
    rustix::fs::chown(
        host.path().join("f").as_path(),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(1234)),
    )
    .unwrap();
    rustix::fs::chown(
        host.path(),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(1234)),
    )
    .unwrap();
    let mut b = bundle(&[
        "sh",
        "-c",
        "stat -c '%u %g' /data/f; echo y > /data/g && echo wrote",
    ]);
    b.edit_mounts(|mounts| {
        mounts.push(
            serde_json::from_value(serde_json::json!({
                "destination": "/data", "type": "bind", "source": host.path(), "options": ["bind", "idmap"],
                // The kernel's reading: on-disk ids are the user namespace's
                // "inside" (containerID), shown ids its "outside" (hostID).
                "uidMappings": [{"containerID": 1234, "hostID": 0, "size": 1}],
                "gidMappings": [{"containerID": 1234, "hostID": 0, "size": 1}],
            }))
            .unwrap(),
        );
    });
    b.save().unwrap();
    let o = rt.run(b.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "0 0\nwrote\n");
    let st = rustix::fs::stat(host.path().join("g").as_path()).unwrap();
    assert_eq!(
        (st.st_uid, st.st_gid),
        (1234, 1234),
        "the write kept the mapping"
    );
}

/// SCMP_ACT_NOTIFY: the listener reaches the agent at listenerPath with the
/// container process state; once the agent closes it, the notified call
/// fails with ENOSYS.
#[test]
fn seccomp_notify_reaches_the_agent() {
    if !require_root("seccomp_notify_reaches_the_agent") {
        return;
    }
    let rt = Rt::new();
    let sock = tmp_path("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let agent = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (state, fd) = recv_fd(&stream);
        drop(fd);
        state
    });
    let mut b = bundle(&["sh", "-c", "mkdir /tmp/d; echo rc=$?"]);
    b.edit_linux(|linux| {
        linux.set_seccomp(Some(
            serde_json::from_value(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": sock,
                "listenerMetadata": "meta-42",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
            }))
            .unwrap(),
        ));
    });
    b.save().unwrap();
    let o = rt.run(b.path());
    let state = agent.join().unwrap();
    let _ = std::fs::remove_file(&sock);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "rc=1\n");
    assert!(
        stderr(&o).contains("Function not implemented"),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(v["metadata"], "meta-42");
    assert!(v["pid"].as_i64().unwrap() > 0);
    assert_eq!(v["state"]["status"], "creating");
}
