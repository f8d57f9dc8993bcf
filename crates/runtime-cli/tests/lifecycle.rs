//! The OCI lifecycle through the `berth-runtime` binary: states,
//! transitions, errors for operations in the wrong state, exit codes.

mod common;
use common::*;

#[test]
fn run_returns_the_process_exit_code() {
    if !require_root("run_returns_the_process_exit_code") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let o = rt.run(b.path());
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert!(stderr(&o).contains("err"));
    // run deletes what it made
    assert_eq!(rt.ok(&["list", "-q"]), "");
}

#[test]
fn create_start_kill_delete_follow_the_spec_states() {
    if !require_root("create_start_kill_delete_follow_the_spec_states") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sleep", "100"]);
    let id = unique_id("life");
    let pidfile = tmp_path("pid");
    rt.ok(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(rt.status(&id), "created");
    let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    assert_eq!(
        state["bundle"].as_str().unwrap(),
        std::fs::canonicalize(b.path()).unwrap().to_str().unwrap()
    );
    // Before start the process is still our init, not sleep.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");

    // Wrong-state operations are errors that change nothing.
    let o = rt.out(&["pause", &id]);
    assert!(
        !o.status.success() && stderr(&o).contains("created"),
        "{}",
        stderr(&o)
    );

    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    let o = rt.out(&["start", &id]);
    assert!(
        !o.status.success() && stderr(&o).contains("running"),
        "{}",
        stderr(&o)
    );
    let o = rt.out(&["delete", &id]);
    assert!(
        !o.status.success() && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    let listed = rt.ok(&["list", "--format", "json"]);
    assert!(listed.contains(&id) && listed.contains("running"));

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    let o = rt.out(&["kill", &id, "TERM"]);
    assert!(!o.status.success(), "kill of a stopped container must fail");
    rt.ok(&["delete", &id]);
    let o = rt.out(&["state", &id]);
    assert!(
        !o.status.success() && stderr(&o).contains("does not exist"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_file(pidfile);
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    if !require_root("delete_of_a_created_container_kills_its_init") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["true"]);
    let id = unique_id("created");
    rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    rt.ok(&["delete", &id]);
    // The init is gone or a zombie waiting for its parent.
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(st.is_empty() || st.contains(") Z"), "{st}");
}

#[test]
fn duplicate_ids_and_bad_ids_are_refused() {
    if !require_root("duplicate_ids_and_bad_ids_are_refused") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sleep", "30"]);
    let id = unique_id("dup");
    rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let o = rt.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(
        !o.status.success() && stderr(&o).contains("already exists"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        rt.status(&id),
        "created",
        "the failed create must not disturb the first"
    );
    let o = rt.out(&["create", "--bundle", b.path().to_str().unwrap(), "../evil"]);
    assert!(
        !o.status.success() && stderr(&o).contains("invalid container id"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn malformed_config_is_one_clear_error() {
    let rt = Rt::new();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": ",
    )
    .unwrap();
    let o = rt.out(&["create", "--bundle", d.path().to_str().unwrap(), "x"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("config.json") && e.contains("invalid config"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    let o = rt.out(&["create", "--bundle", "/nonexistent-bundle", "x"]);
    assert!(!o.status.success() && stderr(&o).contains("/nonexistent-bundle"));
}

#[test]
fn missing_command_fails_at_create() {
    if !require_root("missing_command_fails_at_create") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["no-such-command"]);
    let id = unique_id("nocmd");
    let o = rt.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("executable file not found"),
        "{}",
        stderr(&o)
    );
    // Nothing is left behind: no state, no cgroup.
    assert_eq!(rt.ok(&["list", "-q"]), "");
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/pids/berth/{id}")).exists());
}

#[test]
fn spec_and_features() {
    let d = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(BIN)
        .args(["spec", "--bundle"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(o.status.success());
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["terminal"], true);
    assert_eq!(spec["root"]["path"], "rootfs");
    let o = std::process::Command::new(BIN)
        .args(["spec", "--bundle"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!o.status.success(), "spec must not overwrite config.json");
    let o = std::process::Command::new(BIN)
        .arg("features")
        .output()
        .unwrap();
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(f["ociVersionMax"], "1.3.0");
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "user"));
    let o = std::process::Command::new(BIN)
        .args(["--systemd-cgroup", "list"])
        .output()
        .unwrap();
    assert!(!o.status.success() && stderr(&o).contains("not supported"));
}

#[test]
fn exec_from_a_process_file_with_an_added_capability() {
    if !require_root("exec_from_a_process_file_with_an_added_capability") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sleep", "100"]);
    let id = rt.run_detached(&b, "execproc");
    let proc_json = tmp_path("process.json");
    std::fs::write(
        &proc_json,
        r#"{"args":["sh","-c","echo $GREETING; pwd; grep CapEff /proc/self/status"],"cwd":"/etc","env":["GREETING=from-file","PATH=/bin"],"user":{"uid":0,"gid":0},
            "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}}"#,
    )
    .unwrap();
    let out = rt.ok(&["exec", "--process", proc_json.to_str().unwrap(), &id]);
    assert_eq!(out, "from-file\n/etc\nCapEff:\t0000000000000020\n");
    // --cap adds to the config's sets: CAP_KILL (5) + CAP_NET_RAW (13).
    let out = rt.ok(&[
        "exec",
        "--process",
        proc_json.to_str().unwrap(),
        "--cap",
        "CAP_NET_RAW",
        &id,
    ]);
    assert!(out.ends_with("CapEff:\t0000000000002020\n"), "{out}");
    let o = rt.out(&["exec", "--cap", "CAP_BOGUS", &id, "true"]);
    assert!(
        !o.status.success() && stderr(&o).contains("CAP_BOGUS"),
        "{}",
        stderr(&o)
    );
    rt.ok(&["delete", "--force", &id]);
    let _ = std::fs::remove_file(proc_json);
}

#[test]
fn rootless_spec_and_json_error_log() {
    let d = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(BIN)
        .args(["spec", "--rootless", "--bundle"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    let ns = spec["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n["type"] == "user") && !ns.iter().any(|n| n["type"] == "network"));
    assert_eq!(spec["linux"]["uidMappings"][0]["size"], 1);
    // containerd reads the runtime's last error from --log in logrus' JSON.
    let log = d.path().join("log.json");
    let rt = Rt::new();
    let o = rt
        .cmd()
        .args([
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let line = std::fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("nope"), "{v}");
    assert!(v["time"].as_str().is_some());
}

/// A foreground exec passes the signals it gets on to its process.
#[test]
fn exec_forwards_signals() {
    if !require_root("exec_forwards_signals") {
        return;
    }
    let rt = Rt::new();
    let b = bundle(&["sleep", "100"]);
    let id = rt.run_detached(&b, "execsig");
    let mut child = rt
        .cmd()
        .args([
            "exec",
            &id,
            "sh",
            "-c",
            "trap 'echo got-term; exit 9' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(9));
    rt.ok(&["delete", "--force", &id]);
}
