//! Resource, security and metadata flags of `berth run`, read back from
//! inside the container (/proc/self/status, the container's cgroup view,
//! ulimit, mounts) and from `inspect`; bad values exit 125 naming the flag.

mod common;

use common::{sh, stderr, Berth};

#[test]
fn limits_reach_the_cgroup_and_rlimits() {
    if !berth_testutil::require_root("limits_reach_the_cgroup_and_rlimits") {
        return;
    }
    let b = Berth::with_image();
    let out = sh(
        &b,
        &[
            "-m",
            "64m",
            "--memory-swap",
            "96m",
            "--memory-reservation",
            "32m",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "20",
            "--oom-kill-disable",
            "--ulimit",
            "nofile=100:200",
            "--ulimit",
            "nproc=50",
        ],
        "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes \
         memory/memory.soft_limit_in_bytes cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpu/cpu.shares \
         cpuset/cpuset.cpus pids/pids.max; grep oom_kill_disable memory/memory.oom_control; \
         ulimit -n; ulimit -Hn; ulimit -u",
    );
    let want = [
        "67108864",
        "100663296",
        "33554432",
        "50000",
        "100000",
        "512",
        "0",
        "20",
        "oom_kill_disable 1",
        "100",
        "200",
        "50",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{out}");
    // Without --memory-swap, docker gives as much swap as memory.
    let out = sh(
        &b,
        &["-m", "16m"],
        "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
    );
    assert_eq!(out.trim(), (32u64 << 20).to_string());
}

/// A whole disk of this host, as its /dev path and `MAJOR:MINOR`: the
/// kernel throttles disks, not partitions or loop devices' files.
fn a_disk() -> (String, String) {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["loop", "ram", "zram", "dm-", "sr"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    names.sort();
    for n in names {
        let dev = format!("/dev/{n}");
        if std::path::Path::new(&dev).exists() {
            let numbers = std::fs::read_to_string(format!("/sys/block/{n}/dev")).unwrap();
            return (dev, numbers.trim().to_string());
        }
    }
    panic!("no disk under /sys/block to throttle");
}

#[test]
fn cfs_period_quota_swappiness_and_device_rates_reach_the_cgroup() {
    if !berth_testutil::require_root(
        "cfs_period_quota_swappiness_and_device_rates_reach_the_cgroup",
    ) {
        return;
    }
    let b = Berth::with_image();
    let (disk, numbers) = a_disk();
    let rate = |r: &str| format!("{disk}:{r}");
    let (rbps, wbps, riops, wiops) = (rate("1mb"), rate("2m"), rate("300"), rate("400"));
    let flags = [
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--memory-swappiness",
        "10",
        "--device-read-bps",
        &rbps,
        "--device-write-bps",
        &wbps,
        "--device-read-iops",
        &riops,
        "--device-write-iops",
        &wiops,
    ];
    let out = sh(
        &b,
        &flags,
        "cd /sys/fs/cgroup; cat cpu/cpu.cfs_period_us cpu/cpu.cfs_quota_us memory/memory.swappiness \
         blkio/blkio.throttle.read_bps_device blkio/blkio.throttle.write_bps_device \
         blkio/blkio.throttle.read_iops_device blkio/blkio.throttle.write_iops_device",
    );
    let want = [
        "50000".to_string(),
        "25000".to_string(),
        "10".to_string(),
        format!("{numbers} 1048576"),
        format!("{numbers} 2097152"),
        format!("{numbers} 300"),
        format!("{numbers} 400"),
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{out}");
    // inspect shows them under docker's names; -1 is the kernel's swappiness.
    let mut create = vec!["create", "--name", "rates"];
    create.extend_from_slice(&flags);
    create.extend_from_slice(&["bb", "true"]);
    b.ok(&create);
    let got = b.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} {{.HostConfig.MemorySwappiness}} \
         {{json .HostConfig.BlkioDeviceReadBps}} {{json .HostConfig.BlkioDeviceWriteIOps}}",
        "rates",
    ]);
    assert_eq!(
        got.trim(),
        format!(
            "50000 25000 10 [{{\"Path\":\"{disk}\",\"Rate\":1048576}}] [{{\"Path\":\"{disk}\",\"Rate\":400}}]"
        )
    );
    b.ok(&[
        "create",
        "--name",
        "kernels",
        "--memory-swappiness",
        "-1",
        "bb",
        "true",
    ]);
    assert_eq!(
        b.ok(&[
            "inspect",
            "-f",
            "{{json .HostConfig.MemorySwappiness}}",
            "kernels"
        ])
        .trim(),
        "null"
    );
}

/// --cpuset-mems, --device-cgroup-rule and --annotation, seen from
/// inside (the cgroup) and in the spec and inspect.
#[test]
fn cpuset_mems_device_rules_and_annotations() {
    if !berth_testutil::require_root("cpuset_mems_device_rules_and_annotations") {
        return;
    }
    let b = Berth::with_image();
    let out = sh(
        &b,
        &[
            "--cpuset-mems",
            "0",
            "--device-cgroup-rule",
            "c 10:229 rwm",
            "--device-cgroup-rule",
            "b *:* m",
        ],
        "cat /sys/fs/cgroup/cpuset/cpuset.mems; grep -E '^(c 10:229|b \\*:\\*)' /sys/fs/cgroup/devices/devices.list",
    );
    assert_eq!(out, "0\nc 10:229 rwm\nb *:* m\n");
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "noted",
            "--annotation",
            "org.example.k=v=w",
            "--device-cgroup-rule",
            "c 10:229 rwm",
            "bb",
            "sleep",
            "30",
        ])
        .trim()
        .to_string();
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(b.runroot.join("containers").join(&id).join("config.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(spec["annotations"]["org.example.k"], "v=w");
    assert_eq!(
        b.ok(&[
            "inspect",
            "-f",
            "{{json .HostConfig.Annotations}} {{json .HostConfig.DeviceCgroupRules}}",
            "noted"
        ])
        .trim(),
        r#"{"org.example.k":"v=w"} ["c 10:229 rwm"]"#
    );
    b.ok(&["rm", "-f", "noted"]);
}

#[test]
fn capabilities_seccomp_and_privileges() {
    if !berth_testutil::require_root("capabilities_seccomp_and_privileges") {
        return;
    }
    let b = Berth::with_image();
    let caps = |flags: &[&str]| -> u64 {
        let out = sh(&b, flags, "grep CapEff /proc/self/status");
        u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    const DEFAULT: u64 = 0xa80425fb;
    const NET_ADMIN: u64 = 1 << 12;
    const CHOWN: u64 = 1;
    assert_eq!(caps(&[]), DEFAULT);
    assert_eq!(
        caps(&["--cap-add", "NET_ADMIN", "--cap-drop", "chown"]),
        (DEFAULT | NET_ADMIN) & !CHOWN
    );
    assert_eq!(
        caps(&["--cap-drop", "ALL", "--cap-add", "CAP_NET_ADMIN"]),
        NET_ADMIN
    );
    assert_eq!(caps(&["--cap-drop", "ALL"]), 0);
    // ALL is what this host can give: our own bounding set.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let ours = u64::from_str_radix(
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .unwrap()
            .trim(),
        16,
    )
    .unwrap();
    assert_eq!(caps(&["--cap-add", "ALL"]), ours);

    let out = sh(
        &b,
        &["--privileged"],
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; test -e /dev/loop-control -o -e /dev/kmsg && echo hostdevs; \
         grep -E ' /sys (sysfs|cgroup)' /proc/mounts | grep -c ' ro,'; grep -c ' /proc/' /proc/mounts; true",
    );
    assert!(out.contains(&format!("CapEff:\t{ours:016x}")), "{out}");
    assert!(out.contains("Seccomp:\t0"), "no seccomp: {out}");
    assert!(out.contains("hostdevs"), "the host's devices: {out}");
    assert!(out.ends_with("0\n0\n"), "/sys rw, nothing masked: {out}");
    let masked = sh(&b, &[], "grep -c ' /proc/' /proc/mounts");
    assert_ne!(masked.trim(), "0", "the default profile masks /proc paths");

    let out = sh(
        &b,
        &[
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "seccomp=unconfined",
        ],
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status",
    );
    assert_eq!(out, "NoNewPrivs:\t1\nSeccomp:\t0\n");
    // A docker-format profile file: mkdir refused with EPERM.
    let prof = b.dir.path().join("profile.json");
    std::fs::write(
        &prof,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]},{"architecture":"SCMP_ARCH_AARCH64","subArchitectures":[]}],
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", prof.display());
    let out = sh(
        &b,
        &["--security-opt", &opt],
        "mkdir /tmp/d 2>/dev/null; echo $?; grep Seccomp: /proc/self/status",
    );
    assert_eq!(out, "1\nSeccomp:\t2\n");
}

#[test]
fn filesystem_and_kernel_options() {
    if !berth_testutil::require_root("filesystem_and_kernel_options") {
        return;
    }
    let b = Berth::with_image();
    let out = sh(
        &b,
        &[
            "--read-only",
            "--tmpfs",
            "/scratch:size=1m,mode=1777",
            "--shm-size",
            "2m",
            "--sysctl",
            "kernel.shmmax=123456",
            "--oom-score-adj",
            "300",
            "--group-add",
            "extra",
            "--group-add",
            "4242",
            "--domainname",
            "example.com",
            "--device",
            "/dev/null:/dev/mynull",
        ],
        "touch /x 2>/dev/null || echo rofs; touch /scratch/f && echo tmpfs-rw; \
         df -k /dev/shm /scratch | tail -2 | awk '{print $2}'; grep /scratch /proc/mounts | grep -o noexec; \
         cat /proc/sys/kernel/shmmax /proc/self/oom_score_adj /proc/sys/kernel/domainname; \
         grep Groups: /proc/self/status; ls -l /dev/mynull | awk '{print $1, $5, $6}'; echo hi > /dev/mynull && echo dev-ok",
    );
    assert_eq!(
        out,
        "rofs\ntmpfs-rw\n2048\n1024\nnoexec\n123456\n300\nexample.com\nGroups:\t2000 4242 \ncrw-rw-rw- 1, 3\ndev-ok\n",
        "{out}"
    );
}

#[test]
fn metadata_stop_signal_and_timeout() {
    if !berth_testutil::require_root("metadata_stop_signal_and_timeout") {
        return;
    }
    let b = Berth::with_image();
    let labels = b.dir.path().join("labels");
    std::fs::write(&labels, "# a comment\nteam=infra\ntier=db\n").unwrap();
    let envf = b.dir.path().join("env");
    std::fs::write(&envf, "A=from-file\nB=file\n\n").unwrap();
    let id = b
        .ok(&[
            "run",
            "-d",
            "-l",
            "tier=web",
            "--label-file",
            labels.to_str().unwrap(),
            "--env-file",
            envf.to_str().unwrap(),
            "-e",
            "B=flag",
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "1",
            "bb",
            "sh",
            "-c",
            "echo $A $B; trap 'echo usr1; exit 9' USR1; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", &id])).unwrap();
    let cfg = &v[0]["Config"];
    assert_eq!(
        cfg["Labels"],
        serde_json::json!({"team": "infra", "tier": "web"})
    );
    assert_eq!(
        (cfg["StopSignal"].as_str(), cfg["StopTimeout"].as_i64()),
        (Some("SIGUSR1"), Some(1))
    );
    assert_eq!(v[0]["HostConfig"]["Privileged"], false);
    // `stop` sends SIGUSR1, which the script traps and exits 9 on.
    let t = std::time::Instant::now();
    b.ok(&["stop", &id]);
    assert_eq!(b.ok(&["wait", &id]).trim(), "9");
    assert!(t.elapsed().as_secs() < 5);
    assert_eq!(b.ok(&["logs", &id]), "from-file flag\nusr1\n");
    b.ok(&["rm", &id]);
    // A container that ignores its stop signal is killed after --stop-timeout.
    let id = b
        .ok(&[
            "run",
            "-d",
            "--stop-timeout",
            "1",
            "bb",
            "sh",
            "-c",
            "trap '' TERM; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    let t = std::time::Instant::now();
    b.ok(&["stop", &id]);
    assert!(t.elapsed().as_millis() >= 900, "{:?}", t.elapsed());
    assert_eq!(b.ok(&["wait", &id]).trim(), "137");
    b.ok(&["rm", &id]);
}

#[test]
fn init_forwards_signals_and_reaps_zombies() {
    if !berth_testutil::require_root("init_forwards_signals_and_reaps_zombies") {
        return;
    }
    let b = Berth::with_image();
    // The orphan `sleep` is reparented to PID 1: berth-init reaps it, so no
    // zombie is left when ps looks.
    let out = sh(
        &b,
        &["--init"],
        "sh -c 'sleep 0.2 &'; sleep 0.5; ps -o pid,stat,comm | grep -v ps",
    );
    let mut lines = out.lines().skip(1);
    assert!(lines.next().unwrap().contains("berth-init"), "{out}");
    assert!(!out.contains(" Z "), "a zombie: {out}");
    let id = b
        .ok(&[
            "run",
            "-d",
            "--init",
            "bb",
            "sh",
            "-c",
            "trap 'exit 42' TERM; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(300));
    b.ok(&["kill", "-s", "TERM", &id]);
    assert_eq!(b.ok(&["wait", &id]).trim(), "42");
    b.ok(&["rm", &id]);
    // A command that does not exist: berth-init's 127.
    let o = b.run(&["run", "--rm", "--init", "bb", "nosuchcommand"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
}

#[test]
fn bad_values_fail_naming_the_flag() {
    if !berth_testutil::require_root("bad_values_fail_naming_the_flag") {
        return;
    }
    let b = Berth::with_image();
    for (flags, want) in [
        (&["-m", "12x"][..], "--memory"),
        (&["-m", "1k"][..], "--memory"),
        (&["--memory-swap", "1g"][..], "--memory-swap"),
        (&["--cpus", "99"][..], "--cpus"),
        (&["--cpuset-cpus", "0-4096"][..], "--cpuset-cpus"),
        (&["--cpuset-cpus", "a"][..], "--cpuset-cpus"),
        (&["--ulimit", "nofile=10:99999999"][..], "--ulimit nofile"),
        (&["--ulimit", "bogus=1"][..], "--ulimit"),
        (&["--ulimit", "nofile=5:1"][..], "--ulimit"),
        (&["--device", "/nonexistent:/dev/x"][..], "--device"),
        (&["--device", "/dev/null:/dev/x:rwz"][..], "--device"),
        (&["--cap-add", "BOGUS"][..], "--cap-add"),
        (
            &["--security-opt", "seccomp=/nonexistent.json"][..],
            "seccomp",
        ),
        (
            &["--security-opt", "apparmor=x"][..],
            "--security-opt apparmor is not supported yet",
        ),
        (&["--sysctl", "vm.swappiness=1"][..], "--sysctl"),
        (&["--oom-score-adj", "5000"][..], "--oom-score-adj"),
        (&["--tmpfs", "rel"][..], "--tmpfs"),
        (&["--stop-signal", "SIGFOO"][..], "--stop-signal"),
        (&["--shm-size", "x"][..], "--shm-size"),
        (&["--cpu-period", "10"][..], "--cpu-period"),
        (&["--cpu-quota", "10"][..], "--cpu-quota"),
        (&["--cpus", "1", "--cpu-quota", "20000"][..], "--cpu-quota"),
        (&["--memory-swappiness", "101"][..], "--memory-swappiness"),
        (
            &["--device-read-bps", "/dev/null:1mb"][..],
            "--device-read-bps /dev/null: not a block device",
        ),
        (&["--device-write-bps", "sda:1mb"][..], "--device-write-bps"),
        (
            &["--device-read-iops", "/dev/sda:1mb"][..],
            "--device-read-iops",
        ),
        (
            &["--device-write-iops", "/dev/sda"][..],
            "--device-write-iops",
        ),
        (&["--cpuset-mems", "4096"][..], "--cpuset-mems"),
        (
            &["--device-cgroup-rule", "c 1:3 rwx"][..],
            "--device-cgroup-rule",
        ),
        (&["--annotation", "nokey"][..], "--annotation"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb", "true"]);
        let o = b.run(&args);
        assert_eq!(o.status.code(), Some(125), "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{flags:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{flags:?}: {}", stderr(&o));
    }
    // The host's hard limit is named.
    let o = b.run(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=10:99999999",
        "bb",
        "true",
    ]);
    let hard = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard = hard
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .nth(4)
        .unwrap()
        .to_string();
    assert!(stderr(&o).contains(&hard), "{}", stderr(&o));
    assert_eq!(b.ok(&["ps", "-aq"]), "", "a refused run left a container");
}

/// The superblock options of the host's cgroup mounts, cgroup2 first.
fn cgroup_options() -> Vec<Vec<String>> {
    let mut out: Vec<(bool, Vec<String>)> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(" - "))
        .filter(|(_, fs)| fs.starts_with("cgroup"))
        .map(|(_, fs)| {
            let f: Vec<&str> = fs.split(' ').collect();
            (
                f[0] != "cgroup2",
                f[2].split(',').map(str::to_string).collect(),
            )
        })
        .collect();
    out.sort_by_key(|(v1, _)| *v1);
    out.into_iter().map(|(_, o)| o).collect()
}

fn favordynmods_on() -> bool {
    cgroup_options()
        .iter()
        .flatten()
        .any(|o| o == "favordynmods")
}

#[test]
fn berth_toml_favordynmods_is_on_the_host_before_a_start() {
    if !berth_testutil::require_root("berth_toml_favordynmods_is_on_the_host_before_a_start") {
        return;
    }
    use berth_runtime::cgroups::{favor_dynmods, DynMods};
    // The host as it was is put back, whatever happens below.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = favor_dynmods(self.0);
        }
    }
    let _restore = Restore(favordynmods_on());
    // Off first, so that what turns it on is berth's start.
    match favor_dynmods(false) {
        Ok(DynMods::Set(_) | DynMods::Already(_)) => {}
        Err(e) => panic!("this host cannot take favordynmods off (set at boot?): {e}"),
    }
    assert!(!favordynmods_on());
    let before = cgroup_options();
    let b = Berth::with_image();
    let config = std::fs::read_to_string(&b.net.config).unwrap();
    // Without the setting a start leaves the host alone.
    b.ok(&["run", "--rm", "--network", "none", "bb", "true"]);
    assert!(!favordynmods_on(), "berth changed the host unasked");
    std::fs::write(
        &b.net.config,
        format!("{config}[cgroups]\nfavordynmods = true\n"),
    )
    .unwrap();
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", "bb", "echo", "hi"]),
        "hi\n"
    );
    assert!(favordynmods_on(), "not set by the start");
    // Only that changed: the cgroup2 mount's other options survive the
    // reconfigure.
    let mut expected = before;
    expected[0].push("favordynmods".into());
    assert_eq!(cgroup_options(), expected);
    // A misspelt key fails the start, naming the table and the key.
    std::fs::write(
        &b.net.config,
        format!("{config}[cgroups]\nfavordynmod = true\n"),
    )
    .unwrap();
    b.fails(
        &["run", "--rm", "--network", "none", "bb", "true"],
        125,
        "[cgroups]",
    );
    b.fails(
        &["run", "--rm", "--network", "none", "bb", "true"],
        125,
        "favordynmod",
    );
}
