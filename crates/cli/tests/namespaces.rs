//! The namespace flags of `berth run` (`--pid`, `--ipc`, `--uts`,
//! `--userns`, `--cgroupns`) seen from inside the containers, docker's
//! conflicts between them, and that what they mount goes with the
//! containers.

mod common;

use common::{sh, stderr, Berth};

/// Runs a refused command: exit 125 and `want` in the error.
fn refused(b: &Berth, args: &[&str], want: &str) {
    let o = b.run(args);
    assert_eq!(o.status.code(), Some(125), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
}

/// The host's namespace of `kind`, as /proc/self/ns shows it.
fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn pid_host_and_pid_container() {
    if !berth_testutil::require_root("pid_host_and_pid_container") {
        return;
    }
    let b = Berth::with_image();
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap();
    let out = sh(
        &b,
        &["--pid", "host"],
        "cat /proc/1/comm; readlink /proc/self/ns/pid",
    );
    assert_eq!(out, format!("{host_init}{}\n", host_ns("pid")));
    // Its own, by default: its command is pid 1.
    assert_eq!(sh(&b, &[], "cat /proc/1/comm"), "cat\n");

    b.ok(&["run", "-d", "--name", "donor", "bb", "sleep", "4242"]);
    let donor_ns = b.ok(&["exec", "donor", "readlink", "/proc/self/ns/pid"]);
    let out = sh(
        &b,
        &["--pid", "container:donor"],
        "readlink /proc/self/ns/pid; ps -o pid,args",
    );
    assert!(out.starts_with(&donor_ns), "{out}");
    assert!(out.contains("    1 sleep 4242"), "{out}");
    // The donor sees the newcomer's processes too.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "guest",
        "--pid",
        "container:donor",
        "bb",
        "sleep",
        "4343",
    ]);
    let ps = b.ok(&["exec", "donor", "ps", "-o", "args"]);
    assert!(ps.contains("sleep 4343"), "{ps}");
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.HostConfig.PidMode}}", "guest"])
            .trim(),
        format!(
            "container:{}",
            b.ok(&["inspect", "-f", "{{.Id}}", "donor"]).trim()
        )
    );
    b.ok(&["rm", "-f", "guest"]);

    refused(
        &b,
        &["run", "--rm", "--pid", "container:nosuch", "bb", "true"],
        "no such container: nosuch",
    );
    refused(
        &b,
        &["run", "--rm", "--pid", "private", "bb", "true"],
        "invalid value \"private\" for --pid",
    );
    b.ok(&["stop", "-t", "0", "donor"]);
    refused(
        &b,
        &["run", "--rm", "--pid", "container:donor", "bb", "true"],
        "share its PID namespace",
    );
    b.ok(&["rm", "donor"]);
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
}

#[test]
fn ipc_modes() {
    if !berth_testutil::require_root("ipc_modes") {
        return;
    }
    let b = Berth::with_image();
    // docker's default: a private IPC namespace, shown as such.
    b.ok(&["create", "--name", "plain", "bb", "true"]);
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.HostConfig.IpcMode}}", "plain"])
            .trim(),
        "private"
    );
    let private = sh(&b, &[], "readlink /proc/self/ns/ipc");
    assert_ne!(private.trim(), host_ns("ipc"));

    let host = sh(&b, &["--ipc", "host"], "readlink /proc/self/ns/ipc");
    assert_eq!(host.trim(), host_ns("ipc"));

    // none: an IPC namespace of its own and no /dev/shm at all.
    let none = sh(
        &b,
        &["--ipc", "none"],
        "readlink /proc/self/ns/ipc; test -e /dev/shm && echo shm || echo no-shm",
    );
    assert!(none.ends_with("no-shm\n"), "{none}");
    assert_ne!(none.lines().next().unwrap(), host_ns("ipc"));

    // shareable: another container joins its SysV namespace and sees its
    // POSIX shared memory.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "donor",
        "--ipc",
        "shareable",
        "bb",
        "sh",
        "-c",
        "echo from-donor > /dev/shm/seg; exec sleep 1000",
    ]);
    let donor = b.ok(&["exec", "donor", "readlink", "/proc/self/ns/ipc"]);
    for _ in 0..100 {
        if b.run(&["exec", "donor", "test", "-e", "/dev/shm/seg"])
            .status
            .success()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = sh(
        &b,
        &["--ipc", "container:donor"],
        "readlink /proc/self/ns/ipc; cat /dev/shm/seg; echo from-guest > /dev/shm/back",
    );
    assert_eq!(out, format!("{donor}from-donor\n"));
    assert_eq!(
        b.ok(&["exec", "donor", "cat", "/dev/shm/back"]),
        "from-guest\n"
    );

    // docker refuses to join a container that does not share its IPC.
    b.ok(&["run", "-d", "--name", "closed", "bb", "sleep", "1000"]);
    refused(
        &b,
        &["run", "--rm", "--ipc", "container:closed", "bb", "true"],
        "non-shareable IPC",
    );
    refused(
        &b,
        &["run", "--rm", "--ipc", "shared", "bb", "true"],
        "invalid value \"shared\" for --ipc",
    );
    b.ok(&["rm", "-f", "donor", "closed", "plain"]);
    assert!(b.mounts().is_empty(), "the shm stayed: {:?}", b.mounts());
}

#[test]
fn uts_host_and_cgroupns() {
    if !berth_testutil::require_root("uts_host_and_cgroupns") {
        return;
    }
    let b = Berth::with_image();
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let out = sh(
        &b,
        &["--uts", "host"],
        "hostname; echo $HOSTNAME; readlink /proc/self/ns/uts",
    );
    assert_eq!(out, format!("{host}\n{host}\n{}\n", host_ns("uts")));
    let own = sh(&b, &[], "readlink /proc/self/ns/uts");
    assert_ne!(own.trim(), host_ns("uts"));
    refused(
        &b,
        &["run", "--rm", "--uts", "host", "-h", "box", "bb", "true"],
        "conflicting options: hostname and the UTS mode",
    );

    // private: the container's cgroup is the root of what it sees.
    let private = sh(
        &b,
        &["--cgroupns", "private"],
        "readlink /proc/self/ns/cgroup; cat /proc/self/cgroup",
    );
    let mut lines = private.lines();
    assert_ne!(lines.next().unwrap(), host_ns("cgroup"));
    assert!(
        lines.all(|l| l.ends_with(":/")),
        "a private cgroup namespace shows /: {private}"
    );
    // host: the host's namespace, and the container's cgroup by its path.
    let id = b
        .ok(&[
            "run",
            "-d",
            "--cgroupns",
            "host",
            "bb",
            "sh",
            "-c",
            "readlink /proc/self/ns/cgroup; cat /proc/self/cgroup",
        ])
        .trim()
        .to_string();
    assert_eq!(b.ok(&["wait", &id]).trim(), "0");
    let out = b.ok(&["logs", &id]);
    assert!(out.starts_with(&host_ns("cgroup")), "{out}");
    assert!(out.contains(&format!("/berth/{id}")), "{out}");
    // docker's default: private on a cgroup2-only host, host otherwise.
    b.ok(&["create", "--name", "dflt", "bb", "true"]);
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.HostConfig.CgroupnsMode}}", "dflt"])
            .trim(),
        if v2 { "private" } else { "host" }
    );
    refused(
        &b,
        &["run", "--rm", "--cgroupns", "shared", "bb", "true"],
        "invalid value \"shared\" for --cgroupns",
    );
    b.ok(&["rm", &id, "dflt"]);
}

/// The `0 HOST SIZE` line of a uid_map or gid_map.
fn mapping(text: &str) -> (u64, u64, u64) {
    let f: Vec<u64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (f[0], f[1], f[2])
}

#[test]
fn userns_auto_maps_root_to_an_unprivileged_range() {
    if !berth_testutil::require_root("userns_auto_maps_root_to_an_unprivileged_range") {
        return;
    }
    let b = Berth::with_image();
    // --userns host is the default: the host's ids.
    let host = sh(&b, &["--userns", "host"], "cat /proc/self/uid_map");
    assert_eq!(mapping(&host), (0, 0, 4294967295));

    let a = b
        .ok(&[
            "run",
            "-d",
            "--userns",
            "auto",
            "-v",
            "shared:/data",
            "bb",
            "sh",
            "-c",
            "touch /made-inside /data/from-a; exec sleep 1000",
        ])
        .trim()
        .to_string();
    let out = b.ok(&[
        "exec",
        &a,
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u:%g / /bin/busybox /etc/passwd",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    let (inside, base, size) = mapping(lines[0]);
    assert_eq!((inside, size), (0, 65536), "{out}");
    assert!(base >= 65536, "root is an unprivileged host user: {out}");
    assert_eq!(mapping(lines[1]).2, 65536, "{out}");
    // Root inside, and the image's files are root's there.
    assert_eq!(&lines[2..], ["0", "0:0", "0:0", "0:0"], "{out}");
    // On the host, what the container made is its unprivileged root's.
    let pid = b.ok(&["inspect", "-f", "{{.State.Pid}}", &a]);
    let made = std::fs::metadata(format!("/proc/{}/root/made-inside", pid.trim())).unwrap();
    assert_eq!(u64::from(std::os::unix::fs::MetadataExt::uid(&made)), base);
    // The network of the default bridge works with it.
    let ip = b.ok(&[
        "exec",
        &a,
        "sh",
        "-c",
        "ip -4 addr show eth0 | grep -c inet",
    ]);
    assert_eq!(ip.trim(), "1");

    // A second container gets a range of its own.
    let out = sh(
        &b,
        &["--userns", "auto", "-v", "shared:/data"],
        "cat /proc/self/uid_map; stat -c %u /data/from-a",
    );
    let mut lines = out.lines();
    let (_, base2, _) = mapping(lines.next().unwrap());
    assert!(
        base2 >= base + 65536 || base2 + 65536 <= base,
        "{base} and {base2} overlap"
    );
    // A volume keeps the ids the containers see, whatever their range.
    assert_eq!(lines.next(), Some("0"), "{out}");
    let data = b.root.join("volumes/shared/_data/from-a");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(data).unwrap()),
        0
    );

    // cp keeps ids as the container sees them, both ways.
    let src = b.dir.path().join("src");
    std::fs::write(&src, "x").unwrap();
    std::os::unix::fs::chown(&src, Some(7), Some(8)).unwrap();
    b.ok(&["cp", src.to_str().unwrap(), &format!("{a}:/plain")]);
    b.ok(&["cp", "-a", src.to_str().unwrap(), &format!("{a}:/kept")]);
    let out = b.ok(&[
        "exec",
        &a,
        "sh",
        "-c",
        "stat -c %u:%g /plain /kept; echo y >> /plain && chown 9:9 /plain",
    ]);
    assert_eq!(out, "0:0\n7:8\n");
    let back = b.dir.path().join("back");
    b.ok(&["cp", "-a", &format!("{a}:/plain"), back.to_str().unwrap()]);
    let md = std::fs::metadata(&back).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&md),
            std::os::unix::fs::MetadataExt::gid(&md)
        ),
        (9, 9)
    );

    for (args, want) in [
        (
            &[
                "run",
                "--rm",
                "--userns",
                "auto",
                "--privileged",
                "bb",
                "true",
            ][..],
            "privileged mode is incompatible with user namespaces",
        ),
        (
            &[
                "run", "--rm", "--userns", "auto", "--pid", "host", "bb", "true",
            ][..],
            "host PID namespace",
        ),
        (
            &[
                "run",
                "--rm",
                "--userns",
                "auto",
                "--network",
                "host",
                "bb",
                "true",
            ][..],
            "host's network namespace",
        ),
        (
            &["run", "--rm", "--userns", "auto:size=0", "bb", "true"][..],
            "invalid value \"auto:size=0\" for --userns",
        ),
    ] {
        refused(&b, args, want);
    }
    b.ok(&["rm", "-f", &a]);
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
}
