//! `berth load`, `commit`, `import`, `pull` and `build` killed with
//! SIGKILL at many points of their run. After every kill `berth system
//! check` finds the store consistent, `berth images` lists either no new
//! image or the whole one, and the command run again succeeds and leaves
//! no garbage: what the killed one left is taken back by the next one.
//! `run -d`, `run --rm` and `rm -f` are killed the same way; after each,
//! `rm -f` of what is listed leaves no mount, cgroup, runtime state or
//! monitor behind, and the command run again succeeds.
//!
//! 235 kill points in all. Where each lands in its command's run is drawn
//! from a seeded generator: the seed is printed, and `BERTH_CRASH_SEED=N`
//! runs the same points again.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_image::Digest;
use berth_testutil::noise;
use common::{cgroup_dirs, Berth};
use serde_json::json;

/// Kill points per command (issue 3 asks for at least 50).
const KILLS: u32 = 50;

/// The seed of the kill points when `BERTH_CRASH_SEED` does not say.
const SEED: u64 = 0x6265_7274_6863_7273;

/// The kill points of one test: SplitMix64 from the run's seed and the
/// test's name, so the tests draw apart and each repeats alone.
struct Points(u64);

impl Points {
    fn new(test: &str) -> Points {
        let seed = std::env::var("BERTH_CRASH_SEED")
            .ok()
            .map(|s| s.parse::<u64>().expect("BERTH_CRASH_SEED: a number"))
            .unwrap_or(SEED);
        eprintln!("{test}: kill points seeded with {seed} (BERTH_CRASH_SEED={seed} repeats them)");
        let mut p = Points(seed);
        for b in test.bytes() {
            p.0 = p.0.rotate_left(5) ^ u64::from(b);
            p.next();
        }
        p
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce5_e4b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Round `round` of `kills` (from 1): a point in its own slice of
    /// 0..1.1 times the run, so the points cover the whole run (and a
    /// little past a quick one) wherever the draws fall. `run` is the
    /// fastest whole run: one slowed by a busy machine (the first, cold
    /// one, often) would put most points after the command's end.
    fn delay(&mut self, run: Duration, round: u32, kills: u32) -> Duration {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        run.mul_f64((f64::from(round - 1) + u) / f64::from(kills) * 1.1)
    }
}

/// Spawns `args`, SIGKILLs it after `delay` if it still runs; whether it did.
fn kill_after(b: &Berth, args: &[&str], delay: Duration) -> bool {
    let mut child = b
        .cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let interrupted = child.try_wait().unwrap().is_none();
    if interrupted {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    interrupted
}

fn assert_check_clean(b: &Berth, when: &str) {
    let check = b.run(&["system", "check"]);
    assert!(
        check.status.success(),
        "{when}: system check: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// A tar of `files` (name, bytes), appended to `b`.
fn add_files(b: &mut tar::Builder<Vec<u8>>, files: &[(String, Vec<u8>)]) {
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
}

fn layer_tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    add_files(&mut b, files);
    b.into_inner().unwrap()
}

/// Two big files and many small ones: ~5 MB in a few layers.
fn payload_layers() -> Vec<Vec<u8>> {
    vec![
        layer_tar(&[("big1".into(), noise(2 << 20, 1))]),
        layer_tar(&[("big2".into(), noise(2 << 20, 2))]),
        layer_tar(
            &(0..300)
                .map(|n| (format!("many/f{n}"), noise(512, n + 3)))
                .collect::<Vec<_>>(),
        ),
    ]
}

/// A docker-archive of busybox plus the payload layers, tagged
/// `crash:1`; returns its path and the image id it loads as.
fn make_archive(dir: &Path) -> (std::path::PathBuf, String) {
    let rootfs = dir.join("rootfs.tar");
    berth_testutil::rootfs_tar(&rootfs).unwrap();
    let mut layers = vec![std::fs::read(&rootfs).unwrap()];
    layers.extend(payload_layers());
    let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::of(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(Digest::as_str).collect::<Vec<_>>()},
    }))
    .unwrap();
    let config_id = Digest::of(&config);
    let mut files = vec![(format!("{}.json", config_id.hex()), config)];
    let mut paths = Vec::new();
    for (l, d) in layers.into_iter().zip(&diff_ids) {
        let p = format!("{}/layer.tar", d.hex());
        files.push((p.clone(), l));
        paths.push(p);
    }
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{}.json", config_id.hex()),
        "RepoTags": ["crash:1"],
        "Layers": paths,
    }]))
    .unwrap();
    files.push(("manifest.json".into(), manifest));
    let path = dir.join("crash.tar");
    std::fs::write(&path, layer_tar(&files)).unwrap();
    (path, config_id.to_string())
}

/// Entries of a directory under the root (0 when it does not exist).
fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// What is on disk besides the records: blobs, snapshot directories and
/// ingests. After a kill and a clean run, it is back to what it was.
fn disk(b: &Berth) -> (usize, usize, usize) {
    (
        count(&b.root.join("content/blobs/sha256")),
        count(&b.root.join("snapshots/snapshots")),
        count(&b.root.join("content/ingest")),
    )
}

/// The images listed, one `REPO:TAG ID` line each, sorted.
fn listed(b: &Berth) -> Vec<String> {
    let out = b.ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    let mut v: Vec<String> = out.lines().map(String::from).collect();
    v.sort();
    v
}

/// What tells a whole image from a partial one: its size and layers.
fn shape(b: &Berth, reference: &str) -> String {
    b.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Size}} {{len .RootFS.Layers}}",
        reference,
    ])
}

/// One command that makes the image `reference` from nothing it changes,
/// killed over and over.
struct Victim<'a> {
    b: &'a Berth,
    args: Vec<String>,
    reference: &'a str,
    /// The id of the image made, when it does not change from run to run.
    id: Option<String>,
    kills: u32,
    /// The name of the test, for its kill points.
    test: &'a str,
    /// `image prune` after each `rmi`: a build's intermediate images
    /// stay after the tagged one goes, as with docker's builder.
    prune: bool,
}

impl Victim<'_> {
    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    fn rmi(&self) {
        self.b.ok(&["rmi", self.reference]);
        if self.prune {
            self.b.ok(&["image", "prune", "-f"]);
        }
    }

    /// `now` is `before` and one line more: the image, by its tag (and
    /// id, when known).
    fn assert_whole(&self, before: &[String], now: &[String], when: &str) {
        let new: Vec<&String> = now.iter().filter(|l| !before.contains(l)).collect();
        assert_eq!(now.len(), before.len() + 1, "{when}: {now:?}");
        assert_eq!(new.len(), 1, "{when}: {now:?}");
        let (tag, id) = new[0].split_once(' ').unwrap();
        assert_eq!(tag, self.reference, "{when}: {now:?}");
        if let Some(want) = &self.id {
            assert_eq!(id, want, "{when}");
        }
    }

    /// Kills the command at `kills` points spread over its measured run
    /// time, checking the store after each.
    fn run(&self) {
        let b = self.b;
        let before = listed(b);
        let disk_before = disk(b);

        // One whole run: what it makes.
        b.ok(&self.args());
        let shape_full = shape(b, self.reference);
        let with = listed(b);
        self.assert_whole(&before, &with, "the whole run");
        self.rmi();
        assert_eq!(disk(b), disk_before);
        // And one more, warm as the rest will be: how long it takes.
        // Every round runs the command whole once: the fastest of those
        // runs spreads the next kills over the run as it is now.
        let start = Instant::now();
        b.ok(&self.args());
        let (mut runs, mut total) = (1, start.elapsed());
        let mut fastest = total;
        self.rmi();

        let (mut interrupted, mut finished) = (0, 0);
        let mut points = Points::new(self.test);
        for round in 1..=self.kills {
            // Up to 1.1 times the fastest run: the last few land after
            // the command has ended.
            let delay = points.delay(fastest, round, self.kills);
            if kill_after(b, &self.args(), delay) {
                interrupted += 1;
            }
            assert_check_clean(b, &format!("round {round} ({delay:?})"));
            // Made whole, or not listed at all. A build's finished steps
            // stay as untagged images, as docker's do (the next build
            // removes the killed one's step container, then they prune).
            let now: Vec<String> = listed(b)
                .into_iter()
                .filter(|l| !(self.prune && l.starts_with("<none>:<none> ")))
                .collect();
            if now != before {
                self.assert_whole(&before, &now, &format!("round {round}"));
                assert_eq!(shape(b, self.reference), shape_full, "round {round}");
                finished += 1;
                self.rmi();
            }

            // Again, to the end: it succeeds, and what the killed one left
            // is gone.
            let start = Instant::now();
            b.ok(&self.args());
            let took = start.elapsed();
            fastest = fastest.min(took);
            total += took;
            runs += 1;
            assert_eq!(shape(b, self.reference), shape_full, "round {round}");
            let garbage = b.ok(&["system", "check", "-v"]);
            assert_eq!(garbage, "", "round {round}: garbage left");
            assert_eq!(
                b.mounts(),
                Vec::<String>::new(),
                "round {round}: mounts left"
            );
            self.rmi();
            assert_eq!(listed(b), before, "round {round}");
            assert_eq!(
                disk(b),
                disk_before,
                "round {round}: (blobs, snapshot dirs, ingests)"
            );
        }
        eprintln!(
            "berth {:?}: {} kills over {:?}: {interrupted} interrupted, {finished} had made the image",
            self.args[0],
            self.kills,
            total / runs
        );
        assert!(
            interrupted >= self.kills / 2,
            "most kills land while the command runs: {interrupted} of {}",
            self.kills
        );
        assert!(
            finished < interrupted,
            "some kills land before the image is made"
        );
    }
}

#[test]
fn load_killed_at_fifty_points_leaves_a_consistent_store() {
    const TEST: &str = "load_killed_at_fifty_points_leaves_a_consistent_store";
    if !berth_testutil::require_root(TEST) {
        return;
    }
    let b = Berth::new();
    let (archive, id) = make_archive(b.dir.path());
    Victim {
        b: &b,
        args: vec!["load".into(), "-i".into(), archive.display().to_string()],
        reference: "crash:1",
        id: Some(id),
        kills: KILLS,
        test: TEST,
        prune: false,
    }
    .run();
}

#[test]
fn commit_killed_at_fifty_points_leaves_a_consistent_store() {
    const TEST: &str = "commit_killed_at_fifty_points_leaves_a_consistent_store";
    if !berth_testutil::require_root(TEST) {
        return;
    }
    let b = Berth::with_image();
    // A change of ~4 MB: two big files and many small ones.
    b.sh(
        "work",
        "dd if=/dev/urandom of=/big1 bs=1M count=2 2>/dev/null && \
         dd if=/dev/urandom of=/big2 bs=1M count=2 2>/dev/null && \
         mkdir /many && i=0 && while [ $i -lt 300 ]; do echo $i > /many/f$i; i=$((i+1)); done",
    );
    let diff_before = b.ok(&["diff", "work"]);
    Victim {
        b: &b,
        args: vec!["commit".into(), "work".into(), "committed:1".into()],
        reference: "committed:1",
        id: None,
        kills: KILLS,
        test: TEST,
        prune: false,
    }
    .run();
    // The container is as it was.
    assert_eq!(b.ok(&["diff", "work"]), diff_before);
}

#[test]
fn import_killed_at_fifty_points_leaves_a_consistent_store() {
    const TEST: &str = "import_killed_at_fifty_points_leaves_a_consistent_store";
    if !berth_testutil::require_root(TEST) {
        return;
    }
    let b = Berth::new();
    let rootfs = b.dir.path().join("rootfs.tar");
    berth_testutil::rootfs_tar(&rootfs).unwrap();
    // busybox's tree with the payload's files added: one big layer.
    let mut t = tar::Builder::new(Vec::new());
    let mut src = tar::Archive::new(std::fs::File::open(&rootfs).unwrap());
    for e in src.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let path = e.path().unwrap().into_owned();
        match h.entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e.link_name().unwrap().unwrap().into_owned();
                t.append_link(&mut h, &path, &target).unwrap();
            }
            _ => t.append_data(&mut h, &path, &mut e).unwrap(),
        }
    }
    for (n, l) in payload_layers().into_iter().enumerate() {
        let mut inner = tar::Archive::new(&l[..]);
        for e in inner.entries().unwrap() {
            let mut e = e.unwrap();
            let mut h = e.header().clone();
            let path = Path::new(&format!("p{n}")).join(e.path().unwrap());
            t.append_data(&mut h, path, &mut e).unwrap();
        }
    }
    let big = b.dir.path().join("big.tar");
    std::fs::write(&big, t.into_inner().unwrap()).unwrap();
    Victim {
        b: &b,
        args: vec!["import".into(), big.display().to_string(), "imp:1".into()],
        reference: "imp:1",
        id: None,
        // The same code paths as load and commit: fewer kills suffice.
        kills: KILLS / 2,
        test: TEST,
        prune: false,
    }
    .run();
}

#[test]
fn pull_killed_at_25_points_leaves_a_consistent_store() {
    const TEST: &str = "pull_killed_at_25_points_leaves_a_consistent_store";
    if !berth_testutil::require_root(TEST) {
        return;
    }
    let reg = berth_testutil::peers::Registry::start();
    let name = format!("{}/crash/pulled:1", reg.host());
    // The registry gets busybox and the payload layers from another store.
    let pusher = Berth::new();
    let (archive, _) = make_archive(pusher.dir.path());
    pusher.ok(&["load", "-i", archive.to_str().unwrap()]);
    pusher.ok(&["tag", "crash:1", &name]);
    pusher.ok(&["push", &name]);
    let b = Berth::new();
    Victim {
        b: &b,
        args: vec!["pull".into(), name.clone()],
        reference: &name,
        id: None,
        kills: KILLS / 2,
        test: TEST,
        prune: false,
    }
    .run();
}

#[test]
fn build_killed_at_25_points_leaves_a_consistent_store() {
    const TEST: &str = "build_killed_at_25_points_leaves_a_consistent_store";
    if !berth_testutil::require_root(TEST) {
        return;
    }
    let b = Berth::with_image();
    let ctx = b.dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("many")).unwrap();
    std::fs::write(ctx.join("big1"), noise(2 << 20, 1)).unwrap();
    for n in 0..300 {
        std::fs::write(ctx.join(format!("many/f{n}")), noise(512, n + 3)).unwrap();
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nCOPY big1 /big1\nCOPY many /many\n\
         RUN cat /big1 /big1 > /big2 && echo built > /done\n",
    )
    .unwrap();
    Victim {
        b: &b,
        args: vec![
            "build".into(),
            "--no-cache".into(),
            "-q".into(),
            "-t".into(),
            "built:1".into(),
            ctx.display().to_string(),
        ],
        reference: "built:1",
        id: None,
        kills: KILLS / 2,
        test: TEST,
        prune: true,
    }
    .run();
}

/// Waits for every monitor of this test's root to end: a killed `run
/// --rm` leaves its monitor to finish the container's removal.
fn wait_monitors_gone(b: &Berth, when: &str) {
    let root = b.root.to_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("berth-monitor") && c.contains(&root))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{when}: monitors left: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `rm -f` of every container listed, then nothing of them is left: no
/// mount, no cgroup, no runtime state, no monitor, no row.
fn remove_all_and_check(b: &Berth, when: &str) {
    let ids = b.ok(&["ps", "-aq", "--no-trunc"]);
    for id in ids.lines() {
        let o = b.run(&["rm", "-f", id]);
        let err = String::from_utf8_lossy(&o.stderr);
        // A `--rm` container may finish its own removal first.
        assert!(
            o.status.success() || err.to_lowercase().contains("no such container"),
            "{when}: rm -f {id}: {err}"
        );
    }
    wait_monitors_gone(b, when);
    assert_eq!(b.ok(&["ps", "-aq"]), "", "{when}: rows left");
    assert_eq!(b.mounts(), Vec::<String>::new(), "{when}: mounts left");
    for id in ids.lines() {
        assert_eq!(cgroup_dirs(id), Vec::<std::path::PathBuf>::new(), "{when}");
    }
    for dir in ["runtime", "containers", "netns"] {
        // Dot-files are caches (the runtime's compiled seccomp filters).
        let left = std::fs::read_dir(b.runroot.join(dir)).map_or(0, |d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        });
        assert_eq!(left, 0, "{when}: {dir} left under the runroot");
    }
}

/// A container command killed `kills` times: `setup` makes what it acts
/// on (nothing for `run`), and the command's own whole runs measure it.
fn kill_container_command(b: &Berth, test: &str, args: &[&str], setup: &[&[&str]], kills: u32) {
    let setup = || {
        for s in setup {
            b.ok(s);
        }
    };
    setup();
    let start = Instant::now();
    b.ok(args);
    let (mut runs, mut total) = (1, start.elapsed());
    let mut fastest = total;
    remove_all_and_check(b, "the whole run");
    let mut points = Points::new(test);
    let mut interrupted = 0;
    for round in 1..=kills {
        setup();
        let delay = points.delay(fastest, round, kills);
        if kill_after(b, args, delay) {
            interrupted += 1;
        }
        let when = format!("round {round} ({delay:?})");
        assert_check_clean(b, &when);
        remove_all_and_check(b, &when);
        // Again, to the end.
        setup();
        let start = Instant::now();
        b.ok(args);
        let took = start.elapsed();
        fastest = fastest.min(took);
        total += took;
        runs += 1;
        remove_all_and_check(b, &format!("{when}, run again"));
    }
    eprintln!(
        "berth {args:?}: {kills} kills over {:?}: {interrupted} interrupted",
        total / runs
    );
    assert!(
        interrupted >= kills / 2,
        "most kills land while the command runs: {interrupted} of {kills}"
    );
}

#[test]
fn run_detached_killed_at_20_points_leaks_nothing() {
    const TEST: &str = "run_detached_killed_at_20_points_leaks_nothing";
    if !berth_testutil::require_root(TEST) {
        return;
    }
    let b = Berth::with_image();
    let args = ["run", "-d", "--name", "victim", "bb", "sleep", "1000"];
    kill_container_command(&b, TEST, &args, &[], KILLS * 2 / 5);
}

#[test]
fn run_rm_killed_at_20_points_leaks_nothing() {
    const TEST: &str = "run_rm_killed_at_20_points_leaks_nothing";
    if !berth_testutil::require_root(TEST) {
        return;
    }
    let b = Berth::with_image();
    let args = ["run", "--rm", "bb", "sh", "-c", "echo hi; sleep 0.2"];
    kill_container_command(&b, TEST, &args, &[], KILLS * 2 / 5);
}

#[test]
fn rm_f_killed_at_20_points_leaks_nothing() {
    const TEST: &str = "rm_f_killed_at_20_points_leaks_nothing";
    if !berth_testutil::require_root(TEST) {
        return;
    }
    let b = Berth::with_image();
    let setup: &[&[&str]] = &[&["run", "-d", "--name", "victim", "bb", "sleep", "1000"]];
    kill_container_command(&b, TEST, &["rm", "-f", "victim"], setup, KILLS * 2 / 5);
}
