//! `berth serve` when things go wrong: clients that vanish in the middle
//! of a stream (logs -f, attach, pull, build), and the server itself
//! killed while its containers run. Afterwards the server answers, the
//! operation is in a sane state, and nothing of the client's is left
//! open in the server.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::require_root;

mod common;

use common::*;

/// Runs `cmd` until a line of its stdout contains `marker`, then kills
/// it (SIGKILL: its connection just closes). Returns what it printed.
fn leave_after(mut cmd: Command, marker: &str) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) => {
                seen.push_str(&l);
                seen.push('\n');
                if l.contains(marker) {
                    break;
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{marker:?} never came; the client printed {seen:?}");
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    seen
}

/// A hijacked attach to `name`'s output, as docker's client makes it,
/// once the server switched protocols.
fn raw_attach(s: &Served, name: &str) -> std::os::unix::net::UnixStream {
    hijack(
        s,
        &format!("/containers/{name}/attach?stream=1&stdout=1&stderr=1"),
        "",
    )
}

/// A POST of `body` to `path` on a hijacked connection, once the server
/// switched protocols.
fn hijack(s: &Served, path: &str, body: &str) -> std::os::unix::net::UnixStream {
    let mut c = std::os::unix::net::UnixStream::connect(s.socket()).unwrap();
    write!(
        c,
        "POST /v1.41{path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut b).unwrap(), 1, "{head:?}");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    c
}

fn running(s: &Served, name: &str) -> bool {
    s.ok(&["inspect", "-f", "{{.State.Running}}", name]).trim() == "true"
}

#[test]
fn logs_follow_clients_that_leave_cost_the_server_nothing() {
    if !require_root("logs_follow_clients_that_leave_cost_the_server_nothing") || !have_docker() {
        return;
    }
    let s = Served::start();
    s.sh_detached("chatty", "while true; do echo tick; sleep 0.2; done");
    s.sh_detached("quiet", "echo once; exec sleep 1000");
    let before = s.idle_fds();
    for _ in 0..5 {
        for (name, marker) in [("chatty", "tick"), ("quiet", "once")] {
            leave_after(s.docker(&["logs", "-f", name]), marker);
        }
    }
    s.assert_fds_back(before);
    assert!(running(&s, "chatty") && running(&s, "quiet"));
    let logs = s.ok(&["logs", "quiet"]);
    assert_eq!(logs, "once\n");
    s.ok(&["stop", "-t", "1", "chatty", "quiet"]);
    s.ok(&["rm", "chatty", "quiet"]);
}

#[test]
fn attach_clients_that_leave_leave_the_container_running() {
    if !require_root("attach_clients_that_leave_leave_the_container_running") || !have_docker() {
        return;
    }
    let s = Served::start();
    s.sh_detached("chatty", "while true; do echo tick; sleep 0.2; done");
    s.sh_detached("quiet", "exec sleep 1000");
    let before = s.idle_fds();
    for _ in 0..5 {
        leave_after(s.docker(&["attach", "chatty"]), "tick");
        // A client that hangs up on a container that says nothing: only
        // the hang-up itself tells the server.
        drop(raw_attach(&s, "quiet"));
    }
    s.assert_fds_back(before);
    assert!(running(&s, "chatty") && running(&s, "quiet"));
    s.ok(&["stop", "-t", "1", "chatty", "quiet"]);
    assert_eq!(s.ok(&["wait", "quiet"]).trim(), "137");
    s.ok(&["rm", "chatty", "quiet"]);
}

/// The server's sockets: listeners, its clients' connections, streams
/// to monitors.
fn sockets(s: &Served) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", s.pid()))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

/// [`sockets`] once down to `at_most` (or after a generous while).
fn sockets_settled(s: &Served, at_most: usize) -> usize {
    let count = || sockets(s);
    let settle = Instant::now() + Duration::from_secs(30);
    let mut n = count();
    while n > at_most && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
        n = count();
    }
    n
}

/// Polls (a generous while) until `done`.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn exec_clients_that_leave_free_the_server_and_the_process_runs_on() {
    if !require_root("exec_clients_that_leave_free_the_server_and_the_process_runs_on")
        || !have_docker()
    {
        return;
    }
    let s = Served::start();
    s.sh_detached("host", "exec sleep 1000");
    // What a first exec sets up once (the server's child reaper) is
    // not a leak.
    s.ok(&["exec", "host", "true"]);
    let before = s.idle_fds();
    let idle_sockets = sockets(&s);
    let exists = |f: &str| s.run(&["exec", "host", "test", "-e", f]).status.success();
    let inspect = |id: &str| s.api_json("GET", &format!("/exec/{id}/json"), None);
    for tty in [false, true] {
        let (eof, go, done) = (
            format!("/tmp/eof-{tty}"),
            format!("/tmp/go-{tty}"),
            format!("/tmp/done-{tty}"),
        );
        // Reads its stdin to the end (a pipe's: a terminal's has no end
        // when its writer leaves), waits for the test, then writes more
        // than a pipe holds before it exits 7.
        let input = if tty { "" } else { "cat >/dev/null; " };
        let script = format!(
            "{input}touch {eof}; while [ ! -e {go} ]; do sleep 0.1; done; \
             i=0; while [ $i -lt 3000 ]; do echo line $i of what nobody reads; i=$((i+1)); done; \
             touch {done}; exit 7"
        );
        let create = serde_json::json!({
            "AttachStdin": true, "AttachStdout": true, "AttachStderr": true,
            "Tty": tty, "Cmd": ["sh", "-c", script],
        });
        let v = s.api_json("POST", "/containers/host/exec", Some(&create.to_string()));
        let id = v["Id"].as_str().unwrap().to_string();
        let start = serde_json::json!({"Detach": false, "Tty": tty}).to_string();
        drop(hijack(&s, &format!("/exec/{id}/start"), &start));
        // The process saw its input end and runs on, and the server let
        // the connection go without waiting for it.
        eventually("the end of the exec's input", || exists(&eof));
        assert_eq!(
            sockets_settled(&s, idle_sockets),
            idle_sockets,
            "tty {tty}: the server holds the gone client's connection"
        );
        let v = inspect(&id);
        assert_eq!(v["Running"], true, "tty {tty}: {v}");
        // Its output, with nobody to read it, does not stop it.
        s.ok(&["exec", "host", "touch", &go]);
        eventually("the exec's end", || inspect(&id)["Running"] == false);
        let v = inspect(&id);
        assert_eq!(v["ExitCode"], 7, "tty {tty}: {v}");
        assert!(
            exists(&done),
            "tty {tty}: the process did not run to its end"
        );
    }
    s.assert_fds_back(before);
    assert!(running(&s, "host"));
    s.ok(&["stop", "-t", "1", "host"]);
    s.ok(&["rm", "host"]);
}

#[test]
fn an_attach_waiting_for_a_start_ends_with_its_client_or_its_container() {
    if !require_root("an_attach_waiting_for_a_start_ends_with_its_client_or_its_container")
        || !have_docker()
    {
        return;
    }
    let s = Served::start();
    let create = |name: &str| {
        s.ok(&[
            "create",
            "--name",
            name,
            "--network",
            "none",
            "bb",
            "echo",
            "hello",
        ])
    };
    create("late");
    let before = s.idle_fds();
    // docker's client attaches, then starts: one that dies in between
    // must not keep the next from attaching.
    drop(raw_attach(&s, "late"));
    let mut c = raw_attach(&s, "late");
    s.ok(&["start", "late"]);
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    assert!(
        out.windows(6).any(|w| w == b"hello\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    s.ok(&["rm", "late"]);
    // A container removed before its start ends the stream waiting for
    // it.
    create("never");
    let mut c = raw_attach(&s, "never");
    s.ok(&["rm", "never"]);
    // Bounded only so that a failure is a failure, not a hang.
    c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)
        .expect("the stream of a removed container ends");
    drop(c);
    s.assert_fds_back(before);
}

#[test]
fn a_pull_whose_client_leaves_leaves_a_consistent_store() {
    if !require_root("a_pull_whose_client_leaves_leaves_a_consistent_store") || !have_docker() {
        return;
    }
    let s = Served::start();
    let reg = berth_testutil::peers::Registry::start();
    // A layer large enough that the client leaves while it streams.
    s.ok(&[
        "run",
        "--name",
        "big",
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        "head -c 40000000 /dev/urandom > /big",
    ]);
    let name = format!("{}/test/big:v1", reg.host());
    s.ok(&["commit", "big", &name]);
    s.ok(&["rm", "big"]);
    s.ok(&["push", &name]);
    s.ok(&["rmi", &name]);
    let before = s.idle_fds();
    for _ in 0..3 {
        leave_after(s.docker(&["pull", &name]), "Pulling from");
        // The server still answers; the pull may end or go on without
        // the client, never half.
        s.ok(&["version"]);
        s.ok(&["rmi", "-f", &name]);
    }
    let out = s.ok(&["pull", &name]);
    assert!(out.contains("Digest: sha256:"), "{out}");
    let o = s.berth(&["system", "check"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &name,
            "sh",
            "-c",
            "wc -c < /big"
        ])
        .trim(),
        "40000000"
    );
    s.assert_fds_back(before);
}

#[test]
fn a_build_whose_client_leaves_is_cancelled_whole() {
    if !require_root("a_build_whose_client_leaves_is_cancelled_whole") || !have_docker() {
        return;
    }
    let s = Served::start();
    let ctx = s.context(&[(
        "Dockerfile",
        "FROM bb\nRUN echo step one > /one\nRUN echo started; exec sleep 1000\n",
    )]);
    let images = || s.ok(&["images", "-a", "-q", "--no-trunc"]);
    let images_before = images();
    let before = s.idle_fds();
    let mut build = s.docker(&["build", "-t", "half:1", "--network", "none"]);
    build.arg(&ctx).env("DOCKER_BUILDKIT", "0");
    leave_after(build, "started");
    s.ok(&["version"]);
    // The step's container is killed and removed, and nothing of the
    // build is kept but what docker keeps too: the finished steps' cache.
    let settle = Instant::now() + Duration::from_secs(30);
    let left = || {
        let o = s.berth(&["ps", "-aq"]);
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            processes_naming(&s.dir.0, s.pid()),
        )
    };
    while left() != (String::new(), Vec::new()) && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(left(), (String::new(), Vec::new()), "{}", s.log());
    let o = s.run(&["image", "inspect", "half:1"]);
    assert!(!o.status.success(), "the cancelled build was tagged");
    for id in images().lines() {
        if images_before.lines().any(|b| b == id) {
            continue;
        }
        // A finished step's image: complete, and it runs.
        assert_eq!(
            s.ok(&["run", "--rm", "--network", "none", id, "cat", "/one"]),
            "step one\n"
        );
    }
    let o = s.berth(&["system", "check"]);
    assert!(o.status.success(), "{}", show(&o));
    s.assert_fds_back(before);
}

#[test]
fn containers_outlive_a_killed_server_and_are_seen_again() {
    if !require_root("containers_outlive_a_killed_server_and_are_seen_again") || !have_docker() {
        return;
    }
    let mut s = Served::start();
    s.sh_detached("ca", "echo a up; exec sleep 1000");
    s.sh_detached(
        "cb",
        "trap 'echo b bye; exit 3' TERM; echo b up; while true; do sleep 0.1; done",
    );
    // One a client is attached to when the server dies.
    let mut attached = s
        .docker(&[
            "run",
            "--name",
            "cc",
            "--network",
            "none",
            "bb",
            "sh",
            "-c",
            "echo c up; exec sleep 1000",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(attached.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "c up\n");
    let pids = |s: &Served| s.ok(&["inspect", "-f", "{{.State.Pid}}", "ca", "cb", "cc"]);
    let before = pids(&s);

    s.kill_and_restart();
    let _ = attached.wait();
    let ps = s.ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    let mut ps: Vec<&str> = ps.lines().collect();
    ps.sort();
    assert_eq!(ps, ["ca running", "cb running", "cc running"]);
    assert_eq!(pids(&s), before, "the same processes");
    assert_eq!(s.ok(&["logs", "ca"]), "a up\n");
    // Stop, wait and remove through the new server.
    s.ok(&["stop", "cb"]);
    assert_eq!(s.ok(&["wait", "cb"]).trim(), "3");
    assert_eq!(s.ok(&["logs", "cb"]), "b up\nb bye\n");
    s.ok(&["kill", "ca", "cc"]);
    assert_eq!(s.ok(&["wait", "ca", "cc"]), "137\n137\n");
    s.ok(&["rm", "ca", "cb", "cc"]);
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    let settle = Instant::now() + Duration::from_secs(30);
    while !processes_naming(&s.dir.0, s.pid()).is_empty() && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        processes_naming(&s.dir.0, s.pid()),
        Vec::<String>::new(),
        "monitors left"
    );
}

/// The children of `pid` that ended and were not waited for.
/// [`zombies_of`] `pid` once none is left or 30 s have passed (a
/// monitor's --rm teardown may still be running).
fn zombies_settled(pid: u32) -> Vec<String> {
    let settle = Instant::now() + Duration::from_secs(30);
    let mut left = zombies_of(pid);
    while !left.is_empty() && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
        left = zombies_of(pid);
    }
    left
}

fn zombies_of(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`; COMM may hold spaces.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") && f.get(1) == Some(&pid.to_string().as_str()) {
            out.push(stat);
        }
    }
    out
}

#[test]
fn the_server_reaps_the_monitors_of_its_containers() {
    if !require_root("the_server_reaps_the_monitors_of_its_containers") || !have_docker() {
        return;
    }
    let s = Served::start();
    // Monitors stay the server's children (they no longer fork away at
    // their start): ended, each must be waited for, or the server
    // collects one zombie per container.
    for _ in 0..3 {
        s.ok(&["run", "--rm", "--network", "none", "bb", "true"]);
    }
    s.sh_detached("long", "exec sleep 1000");
    s.ok(&["rm", "-f", "long"]);
    // The last monitor's --rm teardown may still be running.
    let left = zombies_settled(s.pid());
    assert!(left.is_empty(), "unreaped children of the server: {left:?}");
    assert!(s.ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn monitors_the_server_restarts_at_its_start_are_reaped_too() {
    if !require_root("monitors_the_server_restarts_at_its_start_are_reaped_too") || !have_docker() {
        return;
    }
    let mut s = Served::start();
    let id = s
        .ok(&[
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            "rr",
            "bb",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    // A crash: the monitor and the container's process die; the server
    // that starts next restarts the container (its restart policy).
    let pid: i32 = s
        .ok(&["inspect", "-f", "{{.State.Pid}}", "rr"])
        .trim()
        .parse()
        .unwrap();
    // The monitor is the init's parent (a spare monitor, which the server
    // had started before the container, does not name it in its command
    // line).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let monitor: i32 = stat
        .rsplit_once(") ")
        .and_then(|(_, r)| r.split(' ').nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap();
    let cmd = std::fs::read(format!("/proc/{monitor}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmd).contains("berth-monitor"),
        "the parent of {id}'s init is not a monitor"
    );
    for p in [monitor, pid] {
        std::process::Command::new("kill")
            .args(["-9", &p.to_string()])
            .status()
            .unwrap();
    }
    s.kill_and_restart();
    let restarted: i32 = s
        .ok(&["inspect", "-f", "{{.State.Pid}}", "rr"])
        .trim()
        .parse()
        .unwrap();
    assert!(
        restarted > 0 && restarted != pid,
        "not restarted: {restarted}"
    );
    // Its new monitor is the new server's child: once it ends, reaped.
    s.ok(&["rm", "-f", "rr"]);
    let left = zombies_settled(s.pid());
    assert!(left.is_empty(), "unreaped children of the server: {left:?}");
}
