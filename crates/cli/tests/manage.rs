//! restart, pause/unpause, top, stats, rename, update, container prune and
//! `--restart` policies end to end, as root.

mod common;

use std::time::{Duration, Instant};

use common::{inspect, Berth};
use serde_json::Value;

/// Polls `inspect` until `f` holds.
fn wait_until(b: &Berth, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = inspect(b, name);
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {v:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pause_top_stats_rename_update_restart_prune() {
    if !berth_testutil::require_root("pause_top_stats_rename_update_restart_prune") {
        return;
    }
    let b = Berth::with_image();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "m1",
            "bb",
            "sh",
            "-c",
            "echo started; sleep 1000; true",
        ])
        .trim()
        .to_string();

    b.ok(&["pause", "m1"]);
    let v = inspect(&b, "m1");
    assert_eq!(v["State"]["Paused"], true);
    assert_eq!(v["State"]["Status"], "paused");
    assert!(b.ok(&["ps"]).contains("(Paused)"));
    let o = b.run(&["pause", "m1"]);
    assert_eq!(o.status.code(), Some(1), "pausing twice");
    b.ok(&["unpause", "m1"]);
    assert_eq!(inspect(&b, "m1")["State"]["Paused"], false);

    let top = b.ok(&["top", "m1"]);
    let mut lines = top.lines();
    assert!(lines.next().unwrap().contains("PID"), "{top}");
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().any(|r| r.ends_with("sleep 1000")), "{top}");
    assert!(rows.len() >= 2, "sh and sleep: {top}");
    let top = b.ok(&["top", "m1", "-o", "pid,comm"]);
    assert!(
        top.lines().any(|l| l.trim_end().ends_with("sleep")),
        "{top}"
    );

    let stats = b.ok(&["stats", "--no-stream", "m1"]);
    let mut lines = stats.lines();
    let head = lines.next().unwrap();
    let cols: Vec<&str> = head
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        cols,
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ],
        "{stats}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&id[..12]) && row.contains(" m1 "),
        "{stats}"
    );
    assert!(row.contains("iB / "), "{stats}");
    assert_eq!(
        row.split_whitespace().last(),
        Some("2"),
        "two processes: {stats}"
    );
    // Templates, as docker's: the name given, the figures, json.
    let f = b.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Container}} {{.Name}} {{.PIDs}} {{.MemPerc}}",
        "m1",
    ]);
    let f: Vec<&str> = f.split_whitespace().collect();
    assert_eq!(f[..3], ["m1", "m1", "2"], "{f:?}");
    assert!(f[3].ends_with('%'), "{f:?}");
    let t = b.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "table {{.Name}}\t{{.PIDs}}",
        "m1",
    ]);
    assert_eq!(
        t.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        ["NAME PIDS", "m1 2"]
    );
    let j: Value =
        serde_json::from_str(&b.ok(&["stats", "--no-stream", "--format", "json", &id])).unwrap();
    assert_eq!(
        (&j["Name"], &j["ID"], &j["Container"]),
        (&"m1".into(), &id[..12].into(), &id.as_str().into())
    );
    // Live: the table is redrawn until the command is interrupted.
    let mut live = b.cmd(&["stats", "m1"]);
    live.stdout(std::process::Stdio::piped());
    let mut child = live.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2600));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.matches("CONTAINER ID").count() >= 2, "{out}");

    b.ok(&["rename", "m1", "m2"]);
    assert_eq!(inspect(&b, "m2")["Name"], "/m2");
    assert_eq!(b.run(&["inspect", "m1"]).status.code(), Some(1));
    b.ok(&["run", "-d", "--name", "other", "bb", "true"]);
    let o = b.run(&["rename", "m2", "other"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already in use"));

    b.ok(&[
        "update",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "20",
        "m2",
    ]);
    let cg = common::cgroup_dirs(&id);
    let read = |f: &str| {
        cg.iter()
            .find_map(|d| std::fs::read_to_string(d.join(f)).ok())
            .unwrap_or_default()
    };
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        assert_eq!(read("memory.max").trim(), "67108864");
        assert_eq!(read("cpu.max").trim(), "50000 100000");
    } else {
        assert_eq!(read("memory.limit_in_bytes").trim(), "67108864");
        assert_eq!(read("cpu.cfs_quota_us").trim(), "50000");
    }
    assert_eq!(read("pids.max").trim(), "20");
    let v = inspect(&b, "m2");
    assert_eq!(v["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(v["HostConfig"]["NanoCpus"], 500_000_000);

    b.ok(&[
        "update",
        "--memory-swap",
        "96m",
        "--memory-reservation",
        "32m",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "m2",
    ]);
    if v2 {
        assert_eq!(read("memory.swap.max").trim(), (32u64 << 20).to_string());
        assert_eq!(read("memory.low").trim(), (32u64 << 20).to_string());
        // docker's (runc's) mapping of shares to a weight.
        assert_eq!(
            read("cpu.weight").trim(),
            (1 + (510 * 9999) / 262142).to_string()
        );
    } else {
        assert_eq!(
            read("memory.memsw.limit_in_bytes").trim(),
            (96u64 << 20).to_string()
        );
        assert_eq!(
            read("memory.soft_limit_in_bytes").trim(),
            (32u64 << 20).to_string()
        );
        assert_eq!(read("cpu.shares").trim(), "512");
    }
    assert_eq!(read("cpuset.cpus").trim(), "0");
    assert_eq!(
        read("memory.limit_in_bytes").trim().is_empty(),
        v2,
        "the limit stays"
    );
    let v = inspect(&b, "m2");
    let h = &v["HostConfig"];
    assert_eq!(
        (
            &h["MemorySwap"],
            &h["MemoryReservation"],
            &h["CpuShares"],
            &h["CpusetCpus"]
        ),
        (
            &(96 << 20).into(),
            &(32 << 20).into(),
            &512.into(),
            &"0".into()
        )
    );
    // As docker: a memory limit above the swap limit set before needs the
    // swap limit changed with it; a zero changes nothing.
    b.fails(
        &["update", "-m", "128m", "m2"],
        1,
        "update the memoryswap at the same time",
    );
    b.fails(
        &["update", "--memory-reservation", "1g", "m2"],
        1,
        "reservation",
    );
    b.fails(&["update", "--cpuset-cpus", "4096", "m2"], 1, "cpuset");
    // The CFS period and quota: not beside --cpus (m2 has it), and live
    // on a container without it.
    b.fails(
        &["update", "--cpu-period", "200000", "m2"],
        1,
        "--cpus and --cpu-period cannot both be set",
    );
    let cfs = b
        .ok(&["run", "-d", "--name", "cfs", "bb", "sleep", "60"])
        .trim()
        .to_string();
    b.ok(&[
        "update",
        "--cpu-period",
        "200000",
        "--cpu-quota",
        "50000",
        "cfs",
    ]);
    let cfs_cg = common::cgroup_dirs(&cfs);
    let cfs_read = |f: &str| {
        cfs_cg
            .iter()
            .find_map(|d| std::fs::read_to_string(d.join(f)).ok())
            .unwrap_or_default()
    };
    if v2 {
        assert_eq!(cfs_read("cpu.max").trim(), "50000 200000");
    } else {
        assert_eq!(cfs_read("cpu.cfs_period_us").trim(), "200000");
        assert_eq!(cfs_read("cpu.cfs_quota_us").trim(), "50000");
    }
    let v = inspect(&b, "cfs");
    assert_eq!(
        (&v["HostConfig"]["CpuPeriod"], &v["HostConfig"]["CpuQuota"]),
        (&200_000.into(), &50_000.into())
    );
    b.ok(&["rm", "-f", "cfs"]);
    b.ok(&[
        "update",
        "-m",
        "128m",
        "--memory-swap",
        "-1",
        "--cpu-shares",
        "0",
        "m2",
    ]);
    assert_eq!(inspect(&b, "m2")["HostConfig"]["CpuShares"], 512);
    assert_eq!(inspect(&b, "m2")["HostConfig"]["MemorySwap"], -1);
    if !v2 {
        assert_eq!(
            read("memory.limit_in_bytes").trim(),
            (128u64 << 20).to_string()
        );
    }

    let before = v["State"]["StartedAt"].clone();
    b.ok(&["restart", "-t", "1", "m2"]);
    let v = inspect(&b, "m2");
    assert_eq!(v["State"]["Status"], "running");
    assert_ne!(v["State"]["StartedAt"], before);
    // The new limits outlive the restart.
    assert_eq!(v["HostConfig"]["Memory"], 128 << 20);
    let cg = common::cgroup_dirs(v["Id"].as_str().unwrap());
    let cpuset = cg
        .iter()
        .find_map(|d| std::fs::read_to_string(d.join("cpuset.cpus")).ok());
    assert_eq!(cpuset.as_deref().map(str::trim), Some("0"));
    let logs = wait_until(&b, "m2", "second start", |_| {
        b.ok(&["logs", "m2"]).matches("started").count() == 2
    });
    drop(logs);

    b.ok(&["stop", "-t", "1", "m2"]);
    let out = b.ok(&["container", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains(&id), "{out}");
    assert!(out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn restart_policies_with_backoff_and_stop() {
    if !berth_testutil::require_root("restart_policies_with_backoff_and_stop") {
        return;
    }
    let b = Berth::with_image();
    let t0 = Instant::now();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "of",
        "--restart",
        "on-failure:3",
        "bb",
        "sh",
        "-c",
        "exit 3",
    ]);
    let v = wait_until(&b, "of", "three restarts", |v| {
        v["RestartCount"] == 3 && v["State"]["Status"] == "exited"
    });
    // 100, 200 and 400 ms between the four runs.
    assert!(
        t0.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inspect(&b, "of")["RestartCount"], 3, "no fourth restart");

    // on-failure does not restart a success.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ok",
        "--restart",
        "on-failure",
        "bb",
        "true",
    ]);
    assert_eq!(b.ok(&["wait", "ok"]).trim(), "0");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(inspect(&b, "ok")["RestartCount"], 0);

    // always restarts a success too, until `stop`.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "al",
        "--restart",
        "always",
        "bb",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    wait_until(&b, "al", "two restarts", |v| {
        v["RestartCount"].as_i64() >= Some(2)
    });
    b.ok(&["stop", "-t", "1", "al"]);
    let v = inspect(&b, "al");
    assert_eq!(v["State"]["Status"], "exited");
    let n = v["RestartCount"].clone();
    std::thread::sleep(Duration::from_secs(1));
    let v = inspect(&b, "al");
    assert_eq!(v["State"]["Status"], "exited", "stop disables the policy");
    assert_eq!(v["RestartCount"], n);
    // A start by the user applies the policy again, counted afresh.
    b.ok(&["start", "al"]);
    assert_eq!(inspect(&b, "al")["RestartCount"], 0);
    b.ok(&["stop", "-t", "1", "al"]);

    // update --restart reaches a running container's next exit.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "up",
        "bb",
        "sh",
        "-c",
        "sleep 0.7; exit 1",
    ]);
    b.ok(&["update", "--restart", "on-failure:1", "up"]);
    wait_until(&b, "up", "the updated policy", |v| {
        v["RestartCount"] == 1 && v["State"]["Status"] == "exited"
    });

    let o = b.run(&["run", "--rm", "--restart", "always", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--restart and --rm"));
    let o = b.run(&["run", "--restart", "sometimes", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn ps_filters_and_formats_inspect_format() {
    if !berth_testutil::require_root("ps_filters_and_formats_inspect_format") {
        return;
    }
    let b = Berth::with_image();
    b.ok(&[
        "run", "-d", "--name", "web1", "-l", "tier=web", "bb", "sleep", "100",
    ]);
    b.ok(&[
        "run", "-d", "--name", "db1", "-l", "tier=db", "bb", "sh", "-c", "exit 3",
    ]);
    b.ok(&["run", "-d", "--name", "ok1", "bb", "true"]);
    b.ok(&["wait", "db1"]);
    b.ok(&["wait", "ok1"]);
    let names = |args: &[&str]| {
        let mut v = vec!["ps", "--format", "{{.Names}}"];
        v.extend(args);
        let mut n: Vec<String> = b.ok(&v).lines().map(String::from).collect();
        n.sort();
        n.join(" ")
    };
    assert_eq!(names(&[]), "web1");
    assert_eq!(names(&["-a"]), "db1 ok1 web1");
    assert_eq!(names(&["-f", "status=exited"]), "db1 ok1");
    assert_eq!(names(&["-f", "exited=3"]), "db1");
    assert_eq!(names(&["-a", "-f", "label=tier"]), "db1 web1");
    assert_eq!(names(&["-a", "--filter", "label=tier=web"]), "web1");
    assert_eq!(
        names(&["-a", "-f", "name=1", "-f", "status=running"]),
        "web1"
    );
    assert_eq!(names(&["-a", "-f", "ancestor=bb", "-f", "exited=0"]), "ok1");
    // By order of creation (web1, db1, ok1), network, mounts and ports.
    assert_eq!(names(&["-a", "-f", "since=web1"]), "db1 ok1");
    assert_eq!(names(&["-a", "-f", "before=ok1"]), "db1 web1");
    assert_eq!(b.run(&["ps", "-f", "before=nosuch"]).status.code(), Some(1));
    b.ok(&[
        "create",
        "--name",
        "mounted",
        "--network",
        "none",
        "-v",
        "vol1:/data",
        "--expose",
        "8080",
        "bb",
        "true",
    ]);
    assert_eq!(names(&["-a", "-f", "volume=vol1"]), "mounted");
    assert_eq!(names(&["-a", "-f", "volume=/data"]), "mounted");
    assert_eq!(
        names(&["-a", "-f", "network=none", "-f", "expose=8000-8100"]),
        "mounted"
    );
    assert_eq!(names(&["-a", "-f", "is-task=true"]), "");
    b.ok(&["rm", "-v", "mounted"]);
    assert_eq!(b.run(&["ps", "-f", "colour=red"]).status.code(), Some(1));
    let o = b.run(&["ps", "-f", "exited"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad format of filter \"exited\""),
        "{o:?}"
    );

    // -l and -n: the newest, in any state; sizes with -s (or a template
    // that shows them), as the writable layer's and with the image's.
    b.ok(&[
        "run",
        "--name",
        "big",
        "bb",
        "sh",
        "-c",
        "head -c 5000 /dev/zero > /big",
    ]);
    assert_eq!(b.ok(&["ps", "-l", "--format", "{{.Names}}"]), "big\n");
    assert_eq!(
        b.ok(&["ps", "-n", "2", "--format", "{{.Names}}"]),
        "big\nok1\n"
    );
    assert_eq!(
        b.ok(&[
            "ps",
            "-n",
            "2",
            "-f",
            "label=tier",
            "--format",
            "{{.Names}}"
        ]),
        "db1\nweb1\n"
    );
    assert_eq!(
        b.ok(&["ps", "-n", "-1", "--format", "{{.Names}}"]),
        "web1\n"
    );
    let size = b.ok(&["ps", "-l", "--format", "{{.Size}}"]);
    assert!(size.starts_with("5kB (virtual 2."), "{size}");
    let t = b.ok(&["ps", "-a", "-s", "-f", "name=big"]);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].ends_with("NAMES   SIZE"), "{t}");
    assert!(
        lines[1].contains("big") && lines[1].contains(" 5kB (virtual "),
        "{t}"
    );
    let sizes = b.ok(&["inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "big"]);
    let (rw, rootfs) = sizes.trim().split_once(' ').unwrap();
    let image: u64 = b
        .ok(&["image", "inspect", "-f", "{{.Size}}", "bb"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        (rw, rootfs.parse::<u64>().unwrap()),
        ("5000", 5000 + image),
        "{sizes}"
    );
    b.ok(&["rm", "big"]);

    let t = b.ok(&[
        "ps",
        "-a",
        "-f",
        "name=web1",
        "--format",
        "table {{.Names}}\\t{{.State}}\\t{{.Labels}}",
    ]);
    let lines: Vec<&str> = t.lines().collect();
    assert!(
        lines[0].starts_with("NAMES") && lines[0].contains("STATE"),
        "{t}"
    );
    assert!(
        lines[1].starts_with("web1") && lines[1].contains("running"),
        "{t}"
    );
    assert!(lines[1].ends_with("tier=web"), "{t}");

    let out = b.ok(&[
        "inspect",
        "--format",
        "{{.Name}} {{.State.ExitCode}} {{json .Config.Labels}}",
        "db1",
        "web1",
    ]);
    assert_eq!(
        out,
        "/db1 3 {\"tier\":\"db\"}\n/web1 0 {\"tier\":\"web\"}\n"
    );
    let out = b.ok(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"tier\"}}|{{join .Config.Cmd \",\"}}|{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}|{{if .State.Running}}up{{else}}down{{end}}",
        "db1",
    ]);
    assert_eq!(out, "db|sh,-c,exit 3|tier=db|down\n");
}

#[test]
fn prune_filters_choose_by_label_and_age() {
    if !berth_testutil::require_root("prune_filters_choose_by_label_and_age") {
        return;
    }
    let b = Berth::with_image();
    let names = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = b.ok(args).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    // Volumes: label, label!, until; -a so that named ones count.
    b.ok(&["volume", "create", "--label", "app=1", "va"]);
    b.ok(&[
        "volume", "create", "--label", "app=1", "--label", "keep=yes", "vb",
    ]);
    b.ok(&["volume", "create", "vc"]);
    let out = b.ok(&["volume", "prune", "-a", "-f", "--filter", "until=1h"]);
    assert!(!out.contains("Deleted"), "nothing is an hour old: {out}");
    let out = b.ok(&[
        "volume",
        "prune",
        "-a",
        "-f",
        "--filter",
        "label=app",
        "--filter",
        "label!=keep=yes",
    ]);
    assert!(out.starts_with("Deleted Volumes:\nva\n"), "{out}");
    assert_eq!(names(&["volume", "ls", "-q"]), ["vb", "vc"]);
    // Containers.
    // ca's writable layer holds 8 KiB: what its prune reclaims.
    b.ok(&[
        "run",
        "--name",
        "ca",
        "--label",
        "app=1",
        "bb",
        "dd",
        "if=/dev/zero",
        "of=/f",
        "bs=1024",
        "count=8",
    ]);
    b.ok(&["create", "--name", "cb", "bb", "true"]);
    let out = b.ok(&["container", "prune", "-f", "--filter", "label=app"]);
    assert!(
        out.ends_with("\n\nTotal reclaimed space: 8.19kB\n"),
        "{out}"
    );
    assert_eq!(names(&["ps", "-a", "--format", "{{.Names}}"]), ["cb"]);
    // Networks: labels; no creation time is kept, so until is refused
    // (exit 1, as the docker CLI's for an error outside run).
    b.ok(&["network", "create", "--label", "app=1", "na"]);
    b.ok(&["network", "create", "nb"]);
    b.fails(
        &["network", "prune", "-f", "--filter", "until=1h"],
        1,
        "until",
    );
    let out = b.ok(&["network", "prune", "-f", "--filter", "label=app"]);
    assert_eq!(out, "Deleted Networks:\nna\n");
    assert_eq!(
        names(&["network", "ls", "--format", "{{.Name}}"]),
        ["bridge", "host", "nb", "none"]
    );
    b.fails(
        &["volume", "prune", "-f", "--filter", "dangling=true"],
        1,
        "dangling",
    );
    b.ok(&["network", "rm", "nb"]);
    b.ok(&["rm", "cb"]);
}
