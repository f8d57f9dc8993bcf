//! Many `berth` processes at once against one store: 50 `run -d` from
//! several threads lose nothing (every container is there, running, with
//! its own id and name), and 50 concurrent `rm -f` leave nothing behind:
//! no row, mount, cgroup, snapshot, bundle or process; one name asked
//! for by eight at once goes to exactly one.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::Berth;

const CONTAINERS: usize = 50;
const THREADS: usize = 5;

/// Runs `f(i)` for every i in 0..CONTAINERS, spread over THREADS threads
/// that each spawn the binary; returns the outputs in order.
fn in_parallel(f: impl Fn(usize) -> std::process::Output + Sync) -> Vec<std::process::Output> {
    let per = CONTAINERS / THREADS;
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| s.spawn(move || (t * per..(t + 1) * per).map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Processes whose command line names this test's directory: monitors
/// (and anything they left) of this store.
fn processes_of(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                found.push(format!("{name}: {cmd}"));
            }
        }
    }
    found
}

/// Entries of `dir` (none if it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn fifty_concurrent_runs_then_removals_lose_nothing_and_leave_nothing() {
    if !berth_testutil::require_root(
        "fifty_concurrent_runs_then_removals_lose_nothing_and_leave_nothing",
    ) {
        return;
    }
    let b = Berth::with_image();
    let mut image_snapshots = entries(&b.root.join("snapshots").join("snapshots"));
    image_snapshots.sort();
    // One name asked for by eight at once: exactly one gets it, and the
    // others fail as docker's do, leaving nothing.
    let outs: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| b.run(&["run", "-d", "--name", "same", "bb", "sleep", "1000"])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        won,
        1,
        "{}",
        outs.iter().map(text).collect::<Vec<_>>().join("\n")
    );
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert_eq!(o.status.code(), Some(125), "{}", text(o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("\"same\" is already in use"),
            "{}",
            text(o)
        );
    }
    let same = b.ok(&["inspect", "-f", "{{.State.Pid}}", "same"]);
    let rms: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| b.run(&["rm", "-f", "same"])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &rms {
        assert!(o.status.success(), "rm -f same: {}", text(o));
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "");

    let runs = in_parallel(|_| b.run(&["run", "-d", "bb", "sleep", "1000"]));
    let mut ids = BTreeSet::new();
    for o in &runs {
        assert!(o.status.success(), "run -d: {}", text(o));
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(id.len(), 64, "{}", text(o));
        ids.insert(id);
    }
    assert_eq!(ids.len(), CONTAINERS, "two runs printed the same id");

    // ps without -a shows only running containers.
    let listed: BTreeSet<String> = b
        .ok(&["ps", "-q", "--no-trunc"])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(listed, ids, "ps -q does not show every container running");
    let names = b.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let names: BTreeSet<&str> = names.lines().collect();
    assert_eq!(names.len(), CONTAINERS, "names are not unique: {names:?}");
    let mut pids = Vec::new();
    let mut addresses = BTreeSet::new();
    for id in &ids {
        let out = b.ok(&[
            "inspect",
            "-f",
            "{{.State.Pid}} {{.NetworkSettings.IPAddress}}",
            id,
        ]);
        let (pid, ip) = out.trim().split_once(' ').unwrap();
        assert!(
            Path::new("/proc").join(pid).exists(),
            "pid {pid} is not alive"
        );
        assert!(!ip.is_empty(), "{id} has no address on the default network");
        assert!(addresses.insert(ip.to_string()), "{ip} was given twice");
        pids.push(pid.to_string());
    }

    let ids_v: Vec<&String> = ids.iter().collect();
    let rms = in_parallel(|i| b.run(&["rm", "-f", ids_v[i]]));
    for o in &rms {
        assert!(o.status.success(), "rm -f: {}", text(o));
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "", "rows left behind");
    assert!(b.mounts().is_empty(), "mounts left: {:?}", b.mounts());
    for id in &ids {
        assert!(
            common::cgroup_dirs(id).is_empty(),
            "cgroup of {id} left: {:?}",
            common::cgroup_dirs(id)
        );
    }
    for p in pids.iter().chain([&same.trim().to_string()]) {
        // A reused pid would belong to some other, newer process.
        let gone = std::fs::read_to_string(Path::new("/proc").join(p).join("cmdline"))
            .map_or(true, |c| !c.starts_with("sleep"));
        assert!(gone, "the container process {p} still runs");
    }
    assert_eq!(processes_of(b.dir.path()), Vec::<String>::new());
    assert_eq!(entries(&b.runroot.join("containers")), Vec::<String>::new());
    assert_eq!(entries(&b.root.join("containers")), Vec::<String>::new());
    // The runtime's state: its dot-directories are caches, not containers.
    let state: Vec<String> = entries(&b.runroot.join("runtime"))
        .into_iter()
        .filter(|e| !e.starts_with('.'))
        .collect();
    assert_eq!(state, Vec::<String>::new(), "runtime state left");
    assert_eq!(entries(&b.runroot.join("netns")), Vec::<String>::new());
    // A namespace's veths go in the kernel's asynchronous cleanup.
    let mut veths = b.net.leftovers();
    for _ in 0..100 {
        if veths.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        veths = b.net.leftovers();
    }
    assert_eq!(veths, Vec::<String>::new(), "veths or port rules left");
    let mut snapshots = entries(&b.root.join("snapshots").join("snapshots"));
    snapshots.sort();
    assert_eq!(snapshots, image_snapshots, "container snapshots left");
}

#[test]
fn first_commands_on_a_new_store_at_once_all_succeed() {
    if !berth_testutil::require_root("first_commands_on_a_new_store_at_once_all_succeed") {
        return;
    }
    // Each round is a new store that twelve processes open at the same
    // moment: the first opens race to set the database up.
    for round in 0..30 {
        let b = Berth::new();
        let cmd = if round % 2 == 0 { "ps" } else { "images" };
        let outs: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..12).map(|_| s.spawn(|| b.run(&[cmd, "-a"]))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for o in &outs {
            assert!(o.status.success(), "round {round}, {cmd}: {}", text(o));
        }
    }
}

#[test]
fn concurrent_userns_auto_runs_get_ranges_that_never_overlap() {
    if !berth_testutil::require_root("concurrent_userns_auto_runs_get_ranges_that_never_overlap") {
        return;
    }
    let b = Berth::with_image();
    let run = [
        "run",
        "-d",
        "--userns",
        "auto",
        "--network",
        "none",
        "bb",
        "sleep",
        "1000",
    ];
    let outs: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|_| s.spawn(|| (0..2).map(|_| b.run(&run)).collect::<Vec<_>>()))
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut bases = Vec::new();
    for o in &outs {
        assert!(o.status.success(), "{}", text(o));
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let map = b.ok(&["exec", &id, "cat", "/proc/self/uid_map"]);
        let f: Vec<u64> = map.split_whitespace().map(|x| x.parse().unwrap()).collect();
        assert_eq!((f[0], f[2]), (0, 65536), "{map}");
        bases.push(f[1]);
    }
    bases.sort_unstable();
    for w in bases.windows(2) {
        assert!(w[0] + 65536 <= w[1], "ranges overlap: {bases:?}");
    }
    let all = b.ok(&["ps", "-aq"]);
    let mut rm = vec!["rm", "-f"];
    rm.extend(all.lines());
    b.ok(&rm);
    // Every range came back: the next container gets the lowest again.
    let id = b.ok(&run).trim().to_string();
    let map = b.ok(&["exec", &id, "cat", "/proc/self/uid_map"]);
    assert_eq!(
        map.split_whitespace().nth(1),
        Some(bases[0].to_string().as_str())
    );
}
