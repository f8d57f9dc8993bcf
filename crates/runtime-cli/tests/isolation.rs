//! What `config.json` asks for is what the process gets: namespaces,
//! mounts, devices, users and capabilities, limits, hooks.

mod common;
use common::*;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespace, LinuxNamespaceType};

fn run_sh(rt: &Rt, b: &Bundle) -> (i32, String, String) {
    let o = rt.run(b.path());
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

#[test]
fn namespaces_hostname_and_pid_one() {
    if !require_root("namespaces_hostname_and_pid_one") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&[
        "sh",
        "-c",
        "echo $$; hostname; ps -o pid | wc -l; ls /sys/class/net",
    ]);
    b.spec.set_hostname(Some("boxed".into()));
    b.save().unwrap();
    let (code, out, err) = run_sh(&rt, &b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the process is PID 1 of its own namespace");
    assert_eq!(lines[1], "boxed");
    // ps sees itself, sh and the header only: no host process.
    assert!(lines[2].trim().parse::<u32>().unwrap() <= 4, "{out}");
    assert_eq!(lines[3], "lo", "a new network namespace has only lo");
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
        "boxed"
    );
}

#[test]
fn readonly_root_masked_and_readonly_paths() {
    if !require_root("readonly_root_masked_and_readonly_paths") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo root-writable; echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable; \
         wc -c < /proc/keys; wc -c < /proc/timer_list; ls /proc/acpi | wc -l; touch /tmp/ok && echo tmp-ok",
    ]);
    let mut root = b.spec.root().clone().unwrap();
    root.set_readonly(Some(true));
    b.spec.set_root(Some(root));
    b.edit_mounts(|mounts| {
        mounts.push(serde_json::from_str(r#"{"destination":"/tmp","type":"tmpfs","source":"tmpfs","options":["nosuid","nodev"]}"#).unwrap());
    });
    b.save().unwrap();
    let (code, out, err) = run_sh(&rt, &b);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("root-writable"), "{out}");
    assert!(!out.contains("sys-writable"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    // These exist on this host's /proc (checked below) and are in the
    // default maskedPaths: files read as /dev/null, directories as empty.
    assert!(
        std::path::Path::new("/proc/keys").exists() && std::path::Path::new("/proc/acpi").exists()
    );
    assert_eq!(
        lines[0].trim(),
        "0",
        "/proc/keys is masked by /dev/null: {out}"
    );
    assert_eq!(lines[1].trim(), "0", "/proc/timer_list is masked: {out}");
    assert_eq!(
        lines[2].trim(),
        "0",
        "/proc/acpi is masked by an empty tmpfs: {out}"
    );
    assert_eq!(lines[3], "tmp-ok");
}

#[test]
fn devices_and_dev_symlinks() {
    if !require_root("devices_and_dev_symlinks") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&["sh", "-c", "ls -l /dev/null /dev/zero /dev/fuse; readlink /dev/fd; readlink /dev/ptmx; echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c"]);
    b.edit_linux(|linux| {
        linux.set_devices(Some(vec![serde_json::from_str(
            r#"{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":432,"uid":0,"gid":0}"#,
        )
        .unwrap()]));
    });
    b.save().unwrap();
    let (code, out, err) = run_sh(&rt, &b);
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(
        out.contains("crw-rw-rw-") && out.contains("1,   3"),
        "{out}"
    );
    assert!(
        out.contains("crw-rw----") && out.contains("10, 229"),
        "/dev/fuse with mode 0660: {out}"
    );
    assert!(
        out.contains("/proc/self/fd") && out.contains("pts/ptmx"),
        "{out}"
    );
    assert!(
        out.contains("null-ok") && out.trim_end().ends_with('4'),
        "{out}"
    );
}

#[test]
fn user_groups_and_capabilities() {
    if !require_root("user_groups_and_capabilities") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&[
        "sh",
        "-c",
        "id; grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status; grep NoNewPrivs /proc/self/status",
    ]);
    b.edit_process(|p| {
        p.set_user(
            serde_json::from_str(r#"{"uid":1000,"gid":1000,"additionalGids":[2000],"umask":18}"#)
                .unwrap(),
        );
        p.set_capabilities(Some(serde_json::from_str(r#"{"bounding":["CAP_KILL","CAP_NET_BIND_SERVICE"],"effective":["CAP_NET_BIND_SERVICE"],"permitted":["CAP_NET_BIND_SERVICE"],"inheritable":["CAP_NET_BIND_SERVICE"],"ambient":["CAP_NET_BIND_SERVICE"]}"#).unwrap()));
    });
    b.save().unwrap();
    let (code, out, err) = run_sh(&rt, &b);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("uid=1000(user) gid=1000(user)") && out.contains("2000(extra)"),
        "{out}"
    );
    // bounding = KILL (bit 5) + NET_BIND_SERVICE (bit 10); a non-root user
    // keeps across exec only its ambient capabilities, as with runc.
    assert!(out.contains("CapBnd:\t0000000000000420"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000400"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn rlimit_above_the_host_hard_limit_names_the_limit() {
    if !require_root("rlimit_above_the_host_hard_limit_names_the_limit") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&["sh", "-c", "ulimit -n"]);
    b.edit_process(|p| {
        p.set_rlimits(Some(vec![serde_json::from_str(
            r#"{"type":"RLIMIT_NOFILE","soft":512,"hard":512}"#,
        )
        .unwrap()]));
    });
    b.save().unwrap();
    let (code, out, err) = run_sh(&rt, &b);
    assert_eq!((code, out.trim()), (0, "512"), "{err}");
    // A hard limit beyond what the host allows (only CAP_SYS_RESOURCE could raise it).
    let host_hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    if let Some(h) = host_hard.filter(|h| *h < u64::MAX / 2) {
        let big = h * 4;
        let can_raise = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(h),
                maximum: Some(big),
            },
        )
        .is_ok();
        if !can_raise {
            b.edit_process(|p| {
                p.set_rlimits(Some(vec![serde_json::from_value(
                    serde_json::json!({"type":"RLIMIT_NOFILE","soft":big,"hard":big}),
                )
                .unwrap()]));
            });
            b.save().unwrap();
            let (code, _, err) = run_sh(&rt, &b);
            assert_ne!(code, 0);
            assert!(err.contains("RLIMIT_NOFILE"), "{err}");
        }
    }
}

#[test]
fn user_namespace_maps_ids() {
    if !require_root("user_namespace_maps_ids") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&["sh", "-c", "cat /proc/self/uid_map; id -u"]);
    // The rootfs must be usable by the mapped root.
    let status = std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(status.success());
    b.edit_linux(|linux| {
        let mut ns = linux.namespaces().clone().unwrap();
        ns.push(serde_json::from_str::<LinuxNamespace>(r#"{"type":"user"}"#).unwrap());
        // sysfs and cgroup need privileges a user namespace lacks: bind them instead.
        linux.set_namespaces(Some(
            ns.into_iter()
                .filter(|n| n.typ() != LinuxNamespaceType::Network)
                .collect(),
        ));
        let map: LinuxIdMapping =
            serde_json::from_str(r#"{"containerID":0,"hostID":100000,"size":65536}"#).unwrap();
        linux.set_uid_mappings(Some(vec![map]));
        linux.set_gid_mappings(Some(vec![map]));
        linux.set_resources(None);
    });
    b.edit_mounts(|mounts| {
        mounts.retain(|m| {
            !matches!(
                m.typ().as_deref(),
                Some("sysfs") | Some("cgroup") | Some("mqueue")
            )
        })
    });
    b.save().unwrap();
    let (code, out, err) = run_sh(&rt, &b);
    assert_eq!(code, 0, "{err}\n{out}");
    let first = out.lines().next().unwrap_or("");
    let f: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(f, vec!["0", "100000", "65536"], "{out}");
    assert_eq!(out.lines().nth(1), Some("0"));
}

#[test]
fn hooks_run_in_order_with_state() {
    if !require_root("hooks_run_in_order_with_state") {
        return;
    }
    let rt = Rt::new();
    let log = tmp_path("hooks.log");
    let mut b = bundle(&["true"]);
    let h = |name: &str| serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("read s; echo \"{name} $s\" >> {}", log.display())]}]);
    let hooks = serde_json::json!({
        "createRuntime": h("createRuntime"),
        "poststart": h("poststart"),
        "poststop": h("poststop"),
    });
    b.spec
        .set_hooks(Some(serde_json::from_value(hooks).unwrap()));
    b.save().unwrap();
    let (code, _, err) = run_sh(&rt, &b);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        order,
        vec!["createRuntime", "poststart", "poststop"],
        "{text}"
    );
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("\"status\":\"creating\""),
        "{text}"
    );
    assert!(text.contains("\"status\":\"stopped\""), "{text}");
    let _ = std::fs::remove_file(log);
}

#[test]
fn failing_hook_fails_create_and_cleans_up() {
    if !require_root("failing_hook_fails_create_and_cleans_up") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&["true"]);
    b.spec.set_hooks(Some(
        serde_json::from_value(serde_json::json!({"createRuntime":[{"path":"/bin/false"}]}))
            .unwrap(),
    ));
    b.save().unwrap();
    let id = unique_id("hookfail");
    let o = rt.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/bin/false") && stderr(&o).contains("createRuntime"),
        "{}",
        stderr(&o)
    );
    assert_eq!(rt.ok(&["list", "-q"]), "");
}

#[test]
fn seccomp_rules_apply_to_the_process() {
    if !require_root("seccomp_rules_apply_to_the_process") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&[
        "sh",
        "-c",
        "mkdir /tmp/d; echo rc=$?; ls / > /dev/null && echo ls-ok",
    ]);
    b.edit_linux(|linux| {
        linux.set_seccomp(Some(
            serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#).unwrap(),
        ));
    });
    b.save().unwrap();
    let (code, out, err) = run_sh(&rt, &b);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("rc=1") && out.contains("ls-ok"),
        "{out}\n{err}"
    );
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn exec_joins_the_container() {
    if !require_root("exec_joins_the_container") {
        return;
    }
    let rt = Rt::new();
    let mut b = bundle(&["sleep", "100"]);
    b.spec.set_hostname(Some("inside".into()));
    b.save().unwrap();
    let id = unique_id("exec");
    rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    rt.ok(&["start", &id]);
    let out = rt.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; cat /proc/1/comm; echo $FOO",
    ]);
    assert_eq!(out, "inside\nsleep\n\n");
    let out = rt.ok(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u",
    ]);
    assert_eq!(out, "bar\n/tmp\n1000\n");
    let o = rt.out(&["exec", &id, "sh", "-c", "exit 42"]);
    assert_eq!(o.status.code(), Some(42));
    let o = rt.out(&["exec", &id, "nope"]);
    assert!(
        !o.status.success() && stderr(&o).contains("not found"),
        "{}",
        stderr(&o)
    );
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids.len(), 1, "exec'd processes are gone: {pids:?}");
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
}

#[test]
fn pause_resume_update_and_stats() {
    if !require_root("pause_resume_update_and_stats") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sleep", "100"]);
    let id = rt.run_detached(&b, "pause");
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["update", "--pids-limit", "42", "--memory", "64m", &id]);
    let ev: serde_json::Value = serde_json::from_str(&rt.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["data"]["pids"]["limit"], 42, "{ev}");
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 64 << 20, "{ev}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn device_rules_of_the_config_are_not_widened() {
    if !require_root("device_rules_of_the_config_are_not_widened") {
        return;
    }
    let rt = Rt::new();
    // /dev/kvm (this host has it) created by linux.devices, granted
    // read-only by a rule: opening it for writing must fail.
    assert!(
        std::path::Path::new("/dev/kvm").exists(),
        "the test needs /dev/kvm"
    );
    let mut b = bundle(&[
        "sh",
        "-c",
        "(exec 3>/dev/kvm) 2>/dev/null && echo wrote; (exec 3</dev/kvm) && echo opened",
    ]);
    b.edit_linux(|linux| {
        linux.set_devices(Some(vec![serde_json::from_str(
            r#"{"path":"/dev/kvm","type":"c","major":10,"minor":232,"fileMode":438}"#,
        )
        .unwrap()]));
        let mut res = linux.resources().clone().unwrap_or_default();
        res.set_devices(Some(
            serde_json::from_str(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":232,"access":"r"}]"#).unwrap(),
        ));
        linux.set_resources(Some(res));
    });
    b.save().unwrap();
    let o = rt.run(b.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("wrote"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("opened"),
        "read access granted: {}{}",
        stdout(&o),
        stderr(&o)
    );
}
