//! The load soak: `SOAK_LOOPS` loops of `berth run --rm` on the default
//! bridge, side by side for `SOAK_SECONDS`. No run may fail, and
//! afterwards nothing may be left: no row, mount, cgroup, veth or
//! nftables rule, network namespace, runtime state, monitor process, or
//! fd of ours. `make test` runs a short one (10 loops, 15 s); `make soak`
//! the long one (100 loops, 600 s).

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::Berth;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The command lines of processes that name this test's root: monitors,
/// CLIs, anything berth started for it.
fn ours(b: &Berth) -> Vec<String> {
    let root = b.root.to_str().unwrap().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&root))
        .collect()
}

/// Entries of `dir`, none when it does not exist.
fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir).map_or(Vec::new(), |d| {
        d.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // Dot-files are caches (the runtime's compiled seccomp filters).
            .filter(|n| !n.starts_with('.'))
            .collect()
    })
}

#[test]
fn parallel_run_rm_loops_fail_never_and_leak_nothing() {
    if !berth_testutil::require_root("parallel_run_rm_loops_fail_never_and_leak_nothing") {
        return;
    }
    let seconds = env_or("SOAK_SECONDS", 15);
    let loops = env_or("SOAK_LOOPS", 10);
    let b = Berth::with_image();
    let fds_before = fds();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // A default container's hostname is its short id: what each run
    // prints names the cgroups it must not leave.
    let ids = Mutex::new(BTreeSet::new());
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..loops {
            s.spawn(|| {
                while Instant::now() < deadline {
                    let o = b.run(&["run", "--rm", "bb", "hostname"]);
                    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
                    if o.status.success() && out.len() == 12 {
                        ids.lock().unwrap().insert(out);
                    } else {
                        failures.lock().unwrap().push(format!(
                            "{}: stdout {out:?}, stderr {}",
                            o.status,
                            String::from_utf8_lossy(&o.stderr).trim()
                        ));
                    }
                }
            });
        }
    });
    let ids = ids.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "soak: {loops} loops for {:?}: {} runs, {} failed",
        started.elapsed(),
        ids.len() + failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} runs failed; the first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ids.len() as u64 >= loops, "every loop ran");

    // Nothing left, without any rm: each run removed itself. A monitor
    // tells its `run` of the exit just before it ends itself.
    let ended = Instant::now() + Duration::from_secs(60);
    while !ours(&b).is_empty() && Instant::now() < ended {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ours(&b), Vec::<String>::new(), "processes left");
    assert_eq!(b.ok(&["ps", "-aq"]), "", "container rows left");
    let net = b.ok(&["network", "inspect", "-f", "{{len .Containers}}", "bridge"]);
    assert_eq!(net.trim(), "0", "addresses still leased");
    assert_eq!(b.mounts(), Vec::<String>::new(), "mounts left");
    // A namespace's veths die in the kernel's asynchronous cleanup of
    // the namespace, which lags behind the runs at this load: the netns
    // mounts are checked at once below, the veths given time.
    while !b.net.leftovers().is_empty() && Instant::now() < ended {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        b.net.leftovers(),
        Vec::<String>::new(),
        "veths or rules left"
    );
    for dir in ["netns", "runtime", "containers"] {
        assert_eq!(
            entries(&b.runroot.join(dir)),
            Vec::<String>::new(),
            "{dir} left under the runroot"
        );
    }
    let mut cgroups = Vec::new();
    for sub in entries(std::path::Path::new("/sys/fs/cgroup")) {
        for name in entries(
            &std::path::Path::new("/sys/fs/cgroup")
                .join(&sub)
                .join("berth"),
        ) {
            if name.get(..12).is_some_and(|short| ids.contains(short)) {
                cgroups.push(format!("{sub}/berth/{name}"));
            }
        }
    }
    assert_eq!(cgroups, Vec::<String>::new(), "cgroups left");
    assert_eq!(
        entries(&b.root.join("containers")),
        Vec::<String>::new(),
        "container directories left"
    );
    assert_eq!(fds(), fds_before, "fds of ours left open");
}
