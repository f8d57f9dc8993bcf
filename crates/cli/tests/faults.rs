//! What outlives a crash: a container's monitor killed with SIGKILL, `berth
//! serve` killed while containers it started run, and a reboot-like
//! restart (every process gone, the runroot wiped, the root kept). The
//! containers are reported running while their process runs and exited
//! once it is gone, never lost or listed twice; `rm -f` removes them for
//! real, `start` starts them again, and `system boot` (and `serve`, when
//! it starts) start again those whose restart policy says so.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{cgroup_dirs, Berth};

/// The pids of the berth-monitor processes serving this test's root.
fn monitors(b: &Berth) -> Vec<i32> {
    let root = b.root.to_str().unwrap().to_string();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("berth-monitor")) && args.contains(&root) {
            v.push(pid);
        }
    }
    v
}

fn sigkill(pid: i32) {
    let ok = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -9 {pid}");
}

/// Whether `pid` is a process that has not ended (a zombie has).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// Waits for `pid` to end; a process that a SIGKILL does not end in a
/// minute is a failure of its own.
fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn field(b: &Berth, name: &str, format: &str) -> String {
    b.ok(&["inspect", "-f", format, name]).trim().to_string()
}

/// The parent of process `pid`.
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(") ")
        .and_then(|(_, r)| r.split(' ').nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap()
}

fn pid_of(b: &Berth, name: &str) -> i32 {
    field(b, name, "{{.State.Pid}}").parse().unwrap()
}

/// `ps -a`: one `NAME STATUS` line each, sorted.
fn listed(b: &Berth) -> Vec<String> {
    let mut v: Vec<String> = b
        .ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"])
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// Nothing of container `id` is left on the host: no mount, no cgroup,
/// no runtime state.
fn assert_released(b: &Berth, id: &str) {
    let mounts: Vec<String> = b.mounts().into_iter().filter(|m| m.contains(id)).collect();
    assert_eq!(mounts, Vec::<String>::new(), "{id}: mounts left");
    assert_eq!(cgroup_dirs(id), Vec::<PathBuf>::new(), "{id}: cgroups left");
    assert!(
        !b.runroot.join("runtime").join(id).exists(),
        "{id}: runtime state left"
    );
}

#[test]
fn a_killed_monitor_loses_no_container_and_rm_f_removes_it() {
    if !berth_testutil::require_root("a_killed_monitor_loses_no_container_and_rm_f_removes_it") {
        return;
    }
    let b = Berth::with_image();
    // `brief` runs until told to end, through a file in its root.
    b.ok(&["run", "-d", "--name", "keep", "bb", "sleep", "1000"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "brief",
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        "while [ ! -e /go ]; do sleep 0.05; done; rm /go",
    ]);
    let keep_id = field(&b, "keep", "{{.Id}}");
    let brief_id = field(&b, "brief", "{{.Id}}");
    let (keep_pid, brief_pid) = (pid_of(&b, "keep"), pid_of(&b, "brief"));
    let mons = monitors(&b);
    assert_eq!(mons.len(), 2, "one monitor each: {mons:?}");
    for m in mons {
        sigkill(m);
        wait_gone(m);
    }

    // Their processes run on: so are they reported, once each.
    assert!(alive(keep_pid) && alive(brief_pid));
    assert_eq!(listed(&b), ["brief running", "keep running"]);
    assert_eq!(field(&b, "keep", "{{.State.Pid}}"), keep_pid.to_string());

    // brief's process ends with nobody to record it: it is exited, with
    // docker's code for an exit nobody saw.
    std::fs::write(
        b.runroot
            .join("containers")
            .join(&brief_id)
            .join("rootfs/go"),
        "",
    )
    .unwrap();
    wait_gone(brief_pid);
    assert_eq!(listed(&b), ["brief exited", "keep running"]);
    assert_eq!(field(&b, "brief", "{{.State.ExitCode}}"), "255");
    assert_released(&b, &brief_id);

    // rm -f kills keep's process itself and removes the container.
    b.ok(&["rm", "-f", "keep"]);
    assert!(!alive(keep_pid), "rm -f left its process running");
    assert_eq!(listed(&b), ["brief exited"]);
    assert_released(&b, &keep_id);

    // What is left works as any exited container does.
    b.ok(&["start", "brief"]);
    assert_eq!(listed(&b), ["brief running"]);
    b.ok(&["rm", "-f", "brief"]);
    assert_eq!(listed(&b), Vec::<String>::new());
    assert_eq!(monitors(&b), Vec::<i32>::new());
}

/// An HTTP/1.1 request on the API socket; the whole response.
fn api(sock: &Path, method: &str, path: &str, body: &str) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 2"), "{method} {path}: {out}");
    out
}

/// `berth serve` on `sock`, once it answers.
/// A `berth serve` of the test, killed when dropped: also when the test
/// fails half-way (a panic skips its own kill).
struct Server(Child);

impl std::ops::Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(b: &Berth, sock: &Path) -> Server {
    let log = std::fs::File::create(b.dir.path().join("serve.log")).unwrap();
    let mut child = b
        .cmd(&["serve", "--host", &format!("unix://{}", sock.display())])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(sock).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "serve ended: {}",
            std::fs::read_to_string(b.dir.path().join("serve.log")).unwrap()
        );
        assert!(Instant::now() < deadline, "serve never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child)
}

#[test]
fn a_killed_serve_leaves_its_containers_running_and_a_new_serve_restarts_by_policy() {
    if !berth_testutil::require_root(
        "a_killed_serve_leaves_its_containers_running_and_a_new_serve_restarts_by_policy",
    ) {
        return;
    }
    let b = Berth::with_image();
    let sock = b.dir.path().join("api.sock");
    let mut first = serve(&b, &sock);
    let created = api(
        &sock,
        "POST",
        "/containers/create?name=viaapi",
        r#"{"Image":"bb","Cmd":["sleep","1000"]}"#,
    );
    let at = created.find("\"Id\":\"").expect("an id") + 6;
    let id = created[at..at + 64].to_string();
    api(&sock, "POST", &format!("/containers/{id}/start"), "");
    // One whose policy says it always runs, made before the crash below.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "bb",
        "sleep",
        "1000",
    ]);
    let pid = pid_of(&b, "viaapi");

    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(alive(pid), "the container died with serve");
    assert_eq!(listed(&b), ["always running", "viaapi running"]);

    // always's monitor and process die (as in a crash): the next serve
    // starts it again when it starts, as dockerd does.
    let always_pid = pid_of(&b, "always");
    // Its monitor is its init's parent (a monitor started as a spare
    // does not name its container in its command line).
    let m = parent_of(always_pid);
    assert!(monitors(&b).contains(&m), "{m} is not a monitor");
    sigkill(m);
    wait_gone(m);
    sigkill(always_pid);
    wait_gone(always_pid);

    let mut second = serve(&b, &sock);
    let list = api(&sock, "GET", "/containers/json", "");
    assert_eq!(
        list.matches(&format!("\"Id\":\"{id}\"")).count(),
        1,
        "{list}"
    );
    assert_eq!(list.matches("\"State\":\"running\"").count(), 2, "{list}");
    assert_eq!(field(&b, "viaapi", "{{.State.Pid}}"), pid.to_string());
    assert_ne!(pid_of(&b, "always"), always_pid);
    assert!(alive(pid_of(&b, "always")));
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(listed(&b), ["always running", "viaapi running"]);
}

#[test]
fn a_reboot_shows_containers_exited_and_boot_applies_restart_policies() {
    if !berth_testutil::require_root(
        "a_reboot_shows_containers_exited_and_boot_applies_restart_policies",
    ) {
        return;
    }
    let b = Berth::with_image();
    let run = |name: &str, policy: &str| {
        b.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "bb",
            "sleep",
            "1000",
        ]);
    };
    run("plain", "no");
    run("always", "always");
    run("unless", "unless-stopped");
    run("stopped", "always");
    b.ok(&["stop", "-t", "0", "stopped"]);
    let names = ["always", "plain", "unless"];
    let pids: Vec<i32> = names.iter().map(|n| pid_of(&b, n)).collect();

    // The reboot: every monitor and container process ends at once, and
    // what lived under the runroot (a tmpfs, on a real machine) is gone.
    let mons = monitors(&b);
    assert_eq!(mons.len(), 3, "{mons:?}");
    for p in mons.iter().chain(&pids) {
        sigkill(*p);
    }
    for p in mons.iter().chain(&pids) {
        wait_gone(*p);
    }
    let under_runroot: Vec<String> = b
        .mounts()
        .into_iter()
        .filter(|m| Path::new(m).starts_with(&b.runroot))
        .collect();
    for m in under_runroot.iter().rev() {
        let ok = Command::new("umount").arg("-l").arg(m).status().unwrap();
        assert!(ok.success(), "umount {m}");
    }
    std::fs::remove_dir_all(&b.runroot).unwrap();

    assert_eq!(
        listed(&b),
        [
            "always exited",
            "plain exited",
            "stopped exited",
            "unless exited"
        ]
    );
    assert_eq!(field(&b, "plain", "{{.State.ExitCode}}"), "255");

    // The machine's start: the policies say always and unless run again;
    // plain never did, and stopped was stopped by its user.
    let booted = b.ok(&["system", "boot"]);
    let mut booted: Vec<&str> = booted.lines().collect();
    booted.sort();
    assert_eq!(booted, ["always", "unless"]);
    assert_eq!(
        listed(&b),
        [
            "always running",
            "plain exited",
            "stopped exited",
            "unless running"
        ]
    );
    // Booting again starts nothing twice.
    assert_eq!(b.ok(&["system", "boot"]), "");

    // The others start by hand, on the default bridge as before.
    b.ok(&["start", "plain", "stopped"]);
    assert_eq!(
        listed(&b),
        [
            "always running",
            "plain running",
            "stopped running",
            "unless running"
        ]
    );
    assert_eq!(b.ok(&["exec", "plain", "echo", "up"]), "up\n");
    assert_eq!(monitors(&b).len(), 4);
}
