//! Debian's docker client (/usr/bin/docker, API 1.41) against `berth
//! serve`: each test serves its own root and runroot on its own socket,
//! with busybox imported locally, and drives the real `docker` command
//! through DOCKER_HOST.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::require_root;

mod common;

use common::*;

#[test]
fn docker_version_info_and_images_through_berth_serve() {
    if !require_root("docker_version_info_and_images_through_berth_serve") || !have_docker() {
        return;
    }
    let s = Served::start();
    let v = s.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Client.APIVersion}}",
    ]);
    // The server speaks 1.49; the client negotiates the older of its own
    // and that (Debian's 20.10 says 1.41, a docker 28 client 1.49).
    let (server, client) = v.trim().split_once(' ').unwrap();
    assert_eq!(server, "1.49", "{v}");
    let minor: u32 = client.strip_prefix("1.").unwrap().parse().unwrap();
    assert!((41..=49).contains(&minor), "{v}");
    let info = s.ok(&[
        "info",
        "--format",
        "{{.Images}} {{.Containers}} {{.OSType}}",
    ]);
    assert_eq!(info.trim(), "1 0 linux");
    let images = s.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), "bb:latest");
    let id = s.ok(&["image", "inspect", "-f", "{{.Id}}", "bb"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // API 1.49's platform on inspect: the image's own is there, another not.
    let host = format!(
        "/images/bb/json?platform=%7B%22os%22%3A%22linux%22%2C%22architecture%22%3A%22{}%22%7D",
        s.ok(&["image", "inspect", "-f", "{{.Architecture}}", "bb"])
            .trim()
    );
    assert_eq!(s.api("GET", &host, None).0, 200);
    let (code, body) = s.api(
        "GET",
        "/images/bb/json?platform=%7B%22os%22%3A%22plan9%22%7D",
        None,
    );
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&body));
    // A client newer than the server is refused, as dockerd does.
    let o = s
        .docker(&["ps"])
        .env("DOCKER_API_VERSION", "1.50")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("is too new. Maximum supported API version is 1.49"),
        "{}",
        show(&o)
    );

    // image prune: -a sends dangling=false; the label filter picks.
    s.ok(&["run", "--name", "src", "--network", "none", "bb", "true"]);
    s.ok(&["commit", "-c", "LABEL tier=drop", "src", "drop:1"]);
    s.ok(&["commit", "src", "plain:1"]);
    s.ok(&["rm", "src"]);
    assert_eq!(
        s.ok(&["image", "prune", "-f"]).trim(),
        "Total reclaimed space: 0B",
        "nothing dangles"
    );
    let out = s.ok(&["image", "prune", "-a", "-f", "--filter", "label=tier=drop"]);
    assert!(out.contains("untagged: drop:1"), "{out}");
    let mut left: Vec<String> = s
        .ok(&["images", "--format", "{{.Repository}}"])
        .lines()
        .map(String::from)
        .collect();
    left.sort();
    assert_eq!(left, ["bb", "plain"]);
}

#[test]
fn docker_run_prints_output_and_passes_the_exit_code() {
    if !require_root("docker_run_prints_output_and_passes_the_exit_code") || !have_docker() {
        return;
    }
    let s = Served::start();
    assert_eq!(
        s.ok(&["run", "--rm", "--network", "none", "bb", "echo", "hi"]),
        "hi\n"
    );
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        "echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    // CFS period and quota and swappiness reach the container's cgroup.
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--cpu-period",
            "50000",
            "--cpu-quota",
            "25000",
            "--memory-swappiness",
            "10",
            "bb",
            "sh",
            "-c",
            "cd /sys/fs/cgroup; cat cpu/cpu.cfs_period_us cpu/cpu.cfs_quota_us memory/memory.swappiness",
        ]),
        "50000\n25000\n10\n"
    );
    // Ports on the host's network are dropped with dockerd's warning,
    // which the CLI prints from the create's answer.
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-p",
        "8080:80",
        "bb",
        "echo",
        "host",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "host\n");
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("WARNING: Published ports are discarded when using host network mode"),
        "{}",
        show(&o)
    );
    // The default network (this test's bridge), a tty, and stdin.
    assert_eq!(s.ok(&["run", "--rm", "bb", "echo", "bridged"]), "bridged\n");
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "-t",
            "--network",
            "none",
            "bb",
            "echo",
            "tty"
        ]),
        "tty\r\n"
    );
    let mut c = s.docker(&["run", "--rm", "-i", "--network", "none", "bb", "cat"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"piped\n").unwrap();
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "piped\n",
        "{}",
        show(&o)
    );
    // --platform: this machine's runs; another is refused by name.
    let host_platform = berth_testutil::host_platform();
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--platform",
            &host_platform,
            "bb",
            "echo",
            "native"
        ]),
        "native\n"
    );
    let o = s.run(&["create", "--platform", "linux/s390x", "bb", "true"]);
    assert!(!o.status.success());
    assert!(
        show(&o).contains("berth runs this machine's platform only"),
        "{}",
        show(&o)
    );
    // --rm: nothing is left.
    assert_eq!(s.ok(&["ps", "-aq"]), "");
}

#[test]
fn docker_manages_a_detached_container() {
    if !require_root("docker_manages_a_detached_container") || !have_docker() {
        return;
    }
    let s = Served::start();
    let id = s.sh_detached(
        "web",
        "trap 'exit 0' TERM; echo up; echo warn >&2; while true; do sleep 0.1; done",
    );
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let ps = s.ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert!(ps.starts_with(&format!("{} web Up", &id[..12])), "{ps}");
    let start = Instant::now();
    loop {
        let o = s.run(&["logs", "web"]);
        if String::from_utf8_lossy(&o.stdout) == "up\n" {
            // Demultiplexed: stderr stays stderr.
            assert_eq!(String::from_utf8_lossy(&o.stderr), "warn\n");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "logs: {}",
            show(&o)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last record is stderr's; the timestamp leads it.
    let o = s.run(&["logs", "--tail", "1", "-t", "web"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "", "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(err.split_once(' ').map(|x| x.1), Some("warn\n"), "{err}");
    assert_eq!(s.ok(&["exec", "web", "echo", "in", "web"]), "in web\n");
    let o = s.run(&["exec", "web", "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{}", show(&o));
    let o = s
        .docker(&["exec", "-i", "web", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut o = o;
    std::io::Write::write_all(o.stdin.as_mut().unwrap(), b"fed\n").unwrap();
    drop(o.stdin.take());
    assert_eq!(
        String::from_utf8_lossy(&o.wait_with_output().unwrap().stdout),
        "fed\n"
    );
    assert_eq!(
        s.ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.Name}} {{.Config.Tty}}",
            "web"
        ])
        .trim(),
        "true /web false"
    );
    let top = s.ok(&["top", "web"]);
    assert!(top.contains("sleep"), "{top}");
    // A signal for stop and restart (API 1.42); a bad one is the
    // client's error (the CLI checks it too).
    let (code, out) = s.api("POST", "/containers/web/stop?signal=NOPE", None);
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&out));
    assert!(String::from_utf8_lossy(&out).contains("NOPE"));
    let (code, out) = s.api("POST", "/containers/web/restart?signal=KILL&t=30", None);
    assert_eq!(code, 204, "{}", String::from_utf8_lossy(&out));
    // web ends at SIGTERM with 0: 137 says the signal asked for was sent.
    let (code, out) = s.api("POST", "/containers/web/stop?signal=KILL&t=30", None);
    assert_eq!(code, 204, "{}", String::from_utf8_lossy(&out));
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.State.ExitCode}}", "web"])
            .trim(),
        "137"
    );
    s.ok(&["start", "web"]);
    assert_eq!(
        s.ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.RestartCount}}",
            "web"
        ])
        .trim(),
        "true 0"
    );
    assert_eq!(s.ok(&["stop", "-t", "5", "web"]).trim(), "web");
    let ps = s.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Exited (0)"), "{ps}");
    assert_eq!(s.ok(&["ps", "-q"]), "");
    s.ok(&["rm", "web"]);
    assert_eq!(s.ok(&["ps", "-aq"]), "");
}

#[test]
fn docker_logs_reads_rotated_files_and_selects_lines() {
    if !require_root("docker_logs_reads_rotated_files_and_selects_lines") || !have_docker() {
        return;
    }
    let s = Served::start();
    // About 15 files of 1 kB: the log is read across all of them.
    s.ok(&[
        "run",
        "--name",
        "rot",
        "--network",
        "none",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=100",
        "bb",
        "sh",
        "-c",
        "for i in $(seq 1 200); do echo line $i; done",
    ]);
    let want: String = (1..=200).map(|i| format!("line {i}\n")).collect();
    assert_eq!(s.ok(&["logs", "rot"]), want);
    assert_eq!(
        s.ok(&["logs", "--tail", "2", "rot"]),
        "line 199\nline 200\n"
    );
    // The docker CLI turns durations into Unix seconds for the server.
    assert_eq!(s.ok(&["logs", "--since", "1h", "rot"]), want);
    assert_eq!(s.ok(&["logs", "--until", "1h", "rot"]), "");
    let stamped = s.ok(&["logs", "-t", "--tail", "1", "rot"]);
    let (t, line) = stamped.split_once(' ').unwrap();
    assert_eq!(line, "line 200\n");
    assert_eq!(s.ok(&["logs", "--since", t, "rot"]), "line 200\n");
    // --details: the attributes `labels` and `env` put in each record
    // (none here: a lone space).
    assert_eq!(
        s.ok(&["logs", "--details", "--tail", "1", "rot"]),
        " line 200\n"
    );
    s.ok(&[
        "run",
        "--name",
        "tagged",
        "--network",
        "none",
        "--label",
        "tier=web",
        "-e",
        "REGION=eu",
        "--log-opt",
        "labels=tier",
        "--log-opt",
        "env=REGION",
        "bb",
        "echo",
        "hi",
    ]);
    assert_eq!(
        s.ok(&["logs", "--details", "tagged"]),
        "REGION=eu,tier=web hi\n"
    );

    s.ok(&[
        "run",
        "--name",
        "quiet",
        "--network",
        "none",
        "--log-driver",
        "none",
        "bb",
        "true",
    ]);
    let o = s.run(&["logs", "quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        show(&o).contains("configured logging driver does not support reading"),
        "{}",
        show(&o)
    );
    s.ok(&["rm", "rot", "quiet", "tagged"]);
}

type Ws = tungstenite::WebSocket<std::os::unix::net::UnixStream>;

/// A websocket to `path` on the server.
fn websocket(s: &Served, path: &str) -> Ws {
    let sock = std::os::unix::net::UnixStream::connect(s.socket()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (ws, resp) = tungstenite::client::client(format!("ws://localhost{path}"), sock)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(resp.status(), 101);
    ws
}

/// What the websocket carries until `want` has come (or it closes).
fn read_until(ws: &mut Ws, want: &str) -> String {
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains(want) {
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) => got.extend_from_slice(&b),
            Ok(tungstenite::Message::Text(t)) => got.extend_from_slice(t.as_bytes()),
            Ok(tungstenite::Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn attach_over_a_websocket_streams_both_ways() {
    if !require_root("attach_over_a_websocket_streams_both_ways") || !have_docker() {
        return;
    }
    let s = Served::start();
    let fds = s.idle_fds();
    s.sh_detached_with(
        "ws1",
        &["-i"],
        "echo ready; read line; echo \"got $line\"; echo oops >&2; read x; exit 3",
    );
    wait_for_log(&s, "ws1", "ready");
    let mut ws = websocket(
        &s,
        "/v1.45/containers/ws1/attach/ws?logs=1&stream=1&stdin=1&stdout=1&stderr=1",
    );
    // The log so far first, raw: no multiplexing header.
    assert_eq!(read_until(&mut ws, "ready\n"), "ready\n");
    ws.send(tungstenite::Message::text("hello\n")).unwrap();
    let out = read_until(&mut ws, "oops\n");
    assert_eq!(out, "got hello\noops\n");
    ws.send(tungstenite::Message::binary(b"bye\n".to_vec()))
        .unwrap();
    // The process exits: the server closes the websocket.
    assert_eq!(read_until(&mut ws, "never"), "");
    assert_eq!(s.ok(&["wait", "ws1"]).trim(), "3");

    // Before 1.42 every stream is attached, whatever the query says; a
    // client that leaves ends only its attach.
    s.sh_detached_with("ws2", &["-i"], "while read l; do echo \"echo $l\"; done");
    let mut ws = websocket(&s, "/v1.41/containers/ws2/attach/ws?stream=1");
    ws.send(tungstenite::Message::text("one\n")).unwrap();
    assert_eq!(read_until(&mut ws, "echo one\n"), "echo one\n");
    ws.close(None).unwrap();
    let _ = read_until(&mut ws, "never");
    drop(ws);
    let mut ws = websocket(&s, "/containers/ws2/attach/ws?stream=1&stdin=1&stdout=1");
    ws.send(tungstenite::Message::text("two\n")).unwrap();
    assert_eq!(read_until(&mut ws, "echo two\n"), "echo two\n");
    drop(ws);
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.State.Running}}", "ws2"]).trim(),
        "true"
    );

    // Not a websocket handshake: docker's error JSON.
    let (code, body) = s.api("GET", "/containers/ws2/attach/ws?stream=1", None);
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("websocket handshake"));
    s.ok(&["rm", "-f", "ws1", "ws2"]);
    s.assert_fds_back(fds);
}

/// Waits until container `name`'s log holds `line`.
fn wait_for_log(s: &Served, name: &str, line: &str) {
    let start = Instant::now();
    while !s.ok(&["logs", name]).contains(line) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name}: no {line}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn berth_and_docker_share_one_store() {
    if !require_root("berth_and_docker_share_one_store") || !have_docker() {
        return;
    }
    let s = Served::start();
    let o = s.berth(&[
        "run",
        "-d",
        "--name",
        "fromberth",
        "--network",
        "none",
        "bb",
        "sleep",
        "60",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    s.ok(&[
        "run",
        "-d",
        "--name",
        "fromdocker",
        "--network",
        "none",
        "bb",
        "sleep",
        "60",
    ]);
    let names = s.ok(&["ps", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["fromberth", "fromdocker"]);
    let o = s.berth(&["ps", "--format", "{{.Names}}"]);
    let text = String::from_utf8_lossy(&o.stdout);
    let mut names: Vec<&str> = text.lines().collect();
    names.sort();
    assert_eq!(names, ["fromberth", "fromdocker"]);
    // Each stops the other's.
    s.ok(&["rm", "-f", "fromberth"]);
    let o = s.berth(&["rm", "-f", "fromdocker"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(s.ok(&["ps", "-aq"]), "");
}

#[test]
fn docker_reports_berths_errors_as_dockerd_does() {
    if !require_root("docker_reports_berths_errors_as_dockerd_does") || !have_docker() {
        return;
    }
    let s = Served::start();
    let o = s.run(&[
        "run",
        "--pull",
        "never",
        "--rm",
        "--network",
        "none",
        "nosuchimage",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such image: nosuchimage"),
        "{}",
        show(&o)
    );
    let o = s.run(&["run", "--rm", "--network", "none", "bb", "nosuchcommand"]);
    assert_eq!(o.status.code(), Some(127), "{}", show(&o));
    let o = s.run(&["rm", "nosuchcontainer"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such container: nosuchcontainer"),
        "{}",
        show(&o)
    );
    // What berth cannot do is refused by name, not ignored.
    let o = s.run(&["run", "--rm", "--pid", "host", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("HostConfig.PidMode is not supported"),
        "{}",
        show(&o)
    );
    s.ok(&[
        "run",
        "-d",
        "--name",
        "dup",
        "--network",
        "none",
        "bb",
        "sleep",
        "60",
    ]);
    let o = s.run(&[
        "run",
        "-d",
        "--name",
        "dup",
        "--network",
        "none",
        "bb",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already in use"),
        "{}",
        show(&o)
    );
    let o = s.run(&["rm", "dup"]);
    assert_eq!(o.status.code(), Some(1), "running: {}", show(&o));
}

#[test]
fn berth_serve_takes_its_socket_from_systemd() {
    if !require_root("berth_serve_takes_its_socket_from_systemd") || !have_docker() {
        return;
    }
    if !Path::new("/usr/bin/systemd-socket-activate").exists() {
        assert!(
            std::env::var("BERTH_REQUIRE_ROOT").as_deref() != Ok("1"),
            "systemd-socket-activate is missing (Debian's systemd package)"
        );
        return;
    }
    let s = Served::start_with(true);
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "bb",
            "echo",
            "activated"
        ]),
        "activated\n"
    );
    assert!(s.log().contains("fd://"), "{}", s.log());
}

/// Waits until `docker exec NAME test -e PATH` succeeds.
fn wait_for_file(s: &Served, name: &str, path: &str) {
    let start = Instant::now();
    while !s.run(&["exec", name, "test", "-e", path]).status.success() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{path} never appeared in {name}: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn docker_stats_diff_export_and_update_through_berth_serve() {
    if !require_root("docker_stats_diff_export_and_update_through_berth_serve") || !have_docker() {
        return;
    }
    let s = Served::start();
    s.sh_detached(
        "web",
        "echo new > /added; echo more >> /etc/group; rm /etc/passwd; touch /ready; exec sleep 60",
    );
    wait_for_file(&s, "web", "/ready");
    let st = s.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        "web",
    ]);
    let f: Vec<&str> = st.split_whitespace().collect();
    assert_eq!(f[0], "web", "{st}");
    assert!(f[1].parse::<u32>().unwrap() >= 1, "{st}");
    assert_ne!(f[2], "0B", "memory in use: {st}");
    // The raw API: one object, its precpu reading a second earlier.
    let v = s.api_json("GET", "/containers/web/stats?stream=false", None);
    assert_eq!(v["name"], "/web", "{v}");
    let (now, pre) = (&v["cpu_stats"], &v["precpu_stats"]);
    assert!(
        now["system_cpu_usage"].as_u64() > pre["system_cpu_usage"].as_u64(),
        "{v}"
    );
    assert!(now["cpu_usage"]["total_usage"].as_u64().unwrap() > 0, "{v}");
    let diff = s.ok(&["diff", "web"]);
    for want in ["A /added", "C /etc/group", "D /etc/passwd", "A /ready"] {
        assert!(diff.lines().any(|l| l == want), "{want} in {diff}");
    }
    // Sizes, asked for by `ps -s` and `inspect -s`: the writable layer
    // holds /added (4 bytes), /etc/group and /ready.
    let ps = s.ok(&["ps", "-s", "--format", "{{.Size}}", "-f", "name=web"]);
    assert!(ps.contains(" (virtual ") && !ps.starts_with("0B"), "{ps}");
    let v = s.api_json("GET", "/containers/web/json?size=1", None);
    let (rw, rootfs) = (
        v["SizeRw"].as_u64().unwrap(),
        v["SizeRootFs"].as_u64().unwrap(),
    );
    assert!(rw > 4 && rootfs > rw + 1_000_000, "{rw} {rootfs}");
    let l = s.api_json("GET", "/containers/json?size=1", None);
    assert_eq!(l[0]["SizeRw"].as_u64(), Some(rw), "{l}");
    // export: the whole filesystem, the container's changes in it.
    let tar = s.dir.0.join("web.tar");
    s.ok(&["export", "-o", tar.to_str().unwrap(), "web"]);
    let list = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.lines().any(|l| l.trim_start_matches("./") == "added"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.trim_start_matches("./") == "bin/busybox"),
        "{list}"
    );
    assert!(
        !list
            .lines()
            .any(|l| l.trim_start_matches("./") == "etc/passwd"),
        "{list}"
    );
    // update: live limits and the restart policy, seen by inspect.
    assert_eq!(
        s.ok(&[
            "update",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--restart",
            "on-failure:3",
            "web"
        ])
        .trim(),
        "web"
    );
    assert_eq!(
        s.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "web"
        ])
        .trim(),
        "67108864 50 on-failure:3"
    );
    let st = s.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "web"]);
    assert!(st.trim().ends_with("/ 64MiB"), "{st}");
    // A body of the wrong shape: docker's error JSON with a 400.
    for bad in ["[1]", "{\"Memory\": \"lots\"}", "{"] {
        let (code, out) = s.api("POST", "/containers/web/update", Some(bad));
        assert_eq!(code, 400, "{bad}: {}", String::from_utf8_lossy(&out));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    // A body that sets nothing changes nothing, as with dockerd; a
    // missing container is still a 404.
    for empty in ["", "{}"] {
        let (code, out) = s.api("POST", "/containers/web/update", Some(empty));
        assert_eq!(code, 200, "{empty:?}: {}", String::from_utf8_lossy(&out));
    }
    let (code, _) = s.api("POST", "/containers/nosuch/update", Some("{}"));
    assert_eq!(code, 404);
    assert_eq!(
        s.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}",
            "web"
        ])
        .trim(),
        "67108864 on-failure"
    );
    s.ok(&[
        "update",
        "--cpu-shares",
        "512",
        "--memory-reservation",
        "32m",
        "--cpuset-cpus",
        "0",
        "web",
    ]);
    assert_eq!(
        s.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.CpuShares}} {{.HostConfig.MemoryReservation}} {{.HostConfig.CpusetCpus}}",
            "web"
        ])
        .trim(),
        "512 33554432 0"
    );
    // What berth cannot change is refused by name.
    let o = s.run(&["update", "--blkio-weight", "300", "web"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("BlkioWeight is not supported"),
        "{}",
        show(&o)
    );
}

#[test]
fn docker_cp_copies_both_ways_through_berth_serve() {
    if !require_root("docker_cp_copies_both_ways_through_berth_serve") || !have_docker() {
        return;
    }
    let s = Served::start();
    s.sh_detached(
        "box",
        "mkdir -p /data/sub; echo inner > /data/sub/f; echo top > /data/t; \
         ln -s t /data/link; touch /ready; exec sleep 60",
    );
    wait_for_file(&s, "box", "/ready");
    let host = s.dir.0.join("host");
    std::fs::create_dir(&host).unwrap();
    // Out of the container: a directory, a file under a new name, the
    // contents of a directory (`/.`).
    s.ok(&["cp", "box:/data", host.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("data/sub/f")).unwrap(),
        "inner\n"
    );
    assert_eq!(
        std::fs::read_link(host.join("data/link")).unwrap(),
        Path::new("t")
    );
    s.ok(&["cp", "box:/data/t", host.join("renamed").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("renamed")).unwrap(),
        "top\n"
    );
    s.ok(&["cp", "box:/data/sub/.", host.join("flat").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("flat/f")).unwrap(),
        "inner\n"
    );
    // -L follows the link to its file.
    s.ok(&[
        "cp",
        "-L",
        "box:/data/link",
        host.join("followed").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("followed")).unwrap(),
        "top\n"
    );
    // Into the container: a file, a directory, a stopped container too.
    std::fs::write(host.join("up.txt"), "uploaded\n").unwrap();
    s.ok(&["cp", host.join("up.txt").to_str().unwrap(), "box:/tmp/"]);
    assert_eq!(s.ok(&["exec", "box", "cat", "/tmp/up.txt"]), "uploaded\n");
    s.ok(&["cp", host.join("data").to_str().unwrap(), "box:/copied"]);
    assert_eq!(s.ok(&["exec", "box", "cat", "/copied/sub/f"]), "inner\n");
    s.ok(&["stop", "-t", "0", "box"]);
    s.ok(&[
        "cp",
        host.join("up.txt").to_str().unwrap(),
        "box:/stopped.txt",
    ]);
    s.ok(&[
        "cp",
        "box:/stopped.txt",
        host.join("back.txt").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("back.txt")).unwrap(),
        "uploaded\n"
    );
    // Missing paths are docker's 404 (which its client words itself).
    let o = s.run(&["cp", "box:/nowhere", host.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such container:path: box:/nowhere"),
        "{}",
        show(&o)
    );
    let (code, out) = s.api("HEAD", "/containers/box/archive?path=/nowhere", None);
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&out));
    let (code, _) = s.api("PUT", "/containers/box/archive?path=/nowhere", Some("x"));
    assert_eq!(code, 404);
    // A file never gives way to a directory (docker's client asks so).
    std::fs::create_dir(host.join("stopped.txt")).unwrap();
    let o = s.run(&["cp", host.join("stopped.txt").to_str().unwrap(), "box:/"]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot overwrite non-directory"),
        "{}",
        show(&o)
    );
}

#[test]
fn docker_commit_save_load_and_import_through_berth_serve() {
    if !require_root("docker_commit_save_load_and_import_through_berth_serve") || !have_docker() {
        return;
    }
    let s = Served::start();
    s.sh_detached("src", "echo made > /made; touch /ready; exec sleep 60");
    wait_for_file(&s, "src", "/ready");
    let id = s.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/made\"]",
        "-m",
        "by the test",
        "-a",
        "tester",
        "src",
        "made:v1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    let run = |image: &str| s.ok(&["run", "--rm", "--network", "none", image]);
    assert_eq!(run("made:v1"), "made\n");
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.Author}} {{.Comment}}", "made:v1"])
            .trim(),
        "tester by the test"
    );
    let o = s.run(&["commit", "-c", "RUN true", "src", "bad:1"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("RUN is not a valid change command"),
        "{}",
        show(&o)
    );
    // save to a file, load it back after the image is gone.
    let tar = s.dir.0.join("saved.tar");
    s.ok(&["save", "-o", tar.to_str().unwrap(), "made:v1"]);
    s.ok(&["rmi", "made:v1"]);
    assert!(!s.run(&["inspect", "made:v1"]).status.success());
    let out = s.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(out.contains("Loaded image: made:v1"), "{out}");
    assert_eq!(run("made:v1"), "made\n");
    // docker save | docker load, through pipes.
    s.ok(&["tag", "made:v1", "piped:v1"]);
    let mut save = s.docker(&["save", "piped:v1"]);
    let saved = save.stdout(Stdio::piped()).output().unwrap();
    assert!(saved.status.success(), "{}", show(&saved));
    s.ok(&["rmi", "piped:v1"]);
    let mut load = s
        .docker(&["load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), &saved.stdout).unwrap();
    drop(load.stdin.take());
    let o = load.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Loaded image: piped:v1"),
        "{}",
        show(&o)
    );
    // An unknown name is a 404 before any archive is sent.
    let o = s.run(&[
        "save",
        "-o",
        s.dir.0.join("none.tar").to_str().unwrap(),
        "nosuch:1",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such image: nosuch:1"),
        "{}",
        show(&o)
    );
    // import: a root filesystem tar becomes an image.
    let rootfs = s.dir.0.join("rootfs.tar");
    let id = s.ok(&[
        "import",
        "-c",
        "CMD [\"echo\", \"imported\"]",
        "-m",
        "from a tar",
        rootfs.to_str().unwrap(),
        "imp:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(run("imp:1"), "imported\n");
    assert_eq!(
        s.ok(&["history", "--format", "{{.Comment}}", "imp:1"])
            .trim(),
        "from a tar"
    );
    // A load body that is not an archive: docker's error JSON.
    let (code, out) = s.api("POST", "/images/load", Some("not a tar"));
    assert!((400..600).contains(&code), "{code}");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v["message"].is_string(), "{v}");
    // search is refused plainly.
    let o = s.run(&["search", "busybox"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not supported"),
        "{}",
        show(&o)
    );
}

#[test]
fn docker_login_and_push_through_berth_serve() {
    if !require_root("docker_login_and_push_through_berth_serve") || !have_docker() {
        return;
    }
    let s = Served::start();
    let htpasswd = s.dir.0.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("alice:{}\n", bcrypt::hash("s3cret", 4).unwrap()),
    )
    .unwrap();
    let reg = berth_testutil::peers::Registry::start_with(berth_testutil::peers::RegistryOptions {
        auth: Some(format!(
            "  htpasswd:\n    realm: berth-test\n    path: {}\n",
            htpasswd.display()
        )),
        ..Default::default()
    });
    let name = format!("{}/test/bb:v1", reg.host());
    s.ok(&["tag", "bb", &name]);
    let since = since_now();
    // No credentials yet: the registry refuses.
    let o = s.run(&["push", &name]);
    assert!(!o.status.success(), "{}", show(&o));
    let login = |pass: &str| s.run(&["login", "-u", "alice", "-p", pass, &reg.host()]);
    let o = login("wrong");
    assert!(!o.status.success(), "{}", show(&o));
    let o = login("s3cret");
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Login Succeeded"),
        "{}",
        show(&o)
    );
    // The client now sends them in X-Registry-Auth.
    let out = s.ok(&["push", &name]);
    assert!(out.contains("The push refers to repository"), "{out}");
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    s.ok(&["rmi", &name]);
    let out = s.ok(&["pull", &name]);
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert_eq!(
        s.ok(&["run", "--rm", "--network", "none", &name, "echo", "pulled"]),
        "pulled\n"
    );
    // dockerd's events of a push and a pull that went through (not of
    // the refused push): the reference as sent, and its repository.
    let out = events_until_now(
        &s,
        &since,
        &["event=push", "event=pull"],
        "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
    );
    let repo = format!("{}/test/bb", reg.host());
    assert_eq!(
        out,
        format!("image push {name} {repo}\nimage pull {name} {repo}\n")
    );
}

/// Now as `docker events --since` takes it, to the nanosecond: what came
/// earlier in the same second (the server's setup) is not in it.
fn since_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `docker events` from `since` to a second from now (the query ends by
/// itself at `until`), narrowed by `filters`, each event as `format`.
fn events_until_now(s: &Served, since: &str, filters: &[&str], format: &str) -> String {
    let until = (unix_now() + 1).to_string();
    let mut args = vec!["events", "--since", since, "--until", &until];
    for f in filters {
        args.extend(["--filter", f]);
    }
    args.extend(["--format", format]);
    s.ok(&args)
}

#[test]
fn docker_events_and_system_df_through_berth_serve() {
    if !require_root("docker_events_and_system_df_through_berth_serve") || !have_docker() {
        return;
    }
    let s = Served::start();
    let since = since_now();
    // A follower: what was recorded since `since`, then what comes.
    let mut follow = s
        .docker(&[
            "events",
            "--since",
            &since,
            "--filter",
            "container=ev",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let o = s.run(&[
        "run",
        "--name",
        "ev",
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    s.ok(&["rm", "ev"]);
    let want = [
        "container create ev",
        "container start ev",
        "container die ev",
        "container destroy ev",
    ];
    let mut seen = Vec::new();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(follow.stdout.take().unwrap()));
    while seen.len() < want.len() {
        let l = lines.next().expect("the event stream ended").unwrap();
        seen.push(l);
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(seen, want);
    // A bounded query ends by itself at `until`; filters narrow it.
    let bounded = |filters: &[&str], format: &str| events_until_now(&s, &since, filters, format);
    let out = bounded(
        &["event=die"],
        "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}",
    );
    assert_eq!(out, "ev 3\n");
    // Images, networks and volumes have their events too.
    s.ok(&["tag", "bb", "evtag:1"]);
    s.ok(&["rmi", "evtag:1"]);
    s.ok(&["network", "create", "evnet"]);
    s.ok(&["network", "rm", "evnet"]);
    s.ok(&["volume", "create", "evvol"]);
    s.ok(&["volume", "rm", "evvol"]);
    let out = bounded(
        &["type=image", "type=network", "type=volume"],
        "{{.Type}} {{.Action}} {{or .Actor.Attributes.name .Actor.Attributes.driver}}",
    );
    // First the none network that `ev` joined and left, as dockerd's.
    assert_eq!(
        out,
        "network connect none\nnetwork disconnect none\n\
         image tag evtag:1\nimage untag evtag:1\nnetwork create evnet\n\
         network destroy evnet\nvolume create local\nvolume destroy local\n"
    );
    // docker names the image of a tag and an untag by its id.
    let bb = s.ok(&["inspect", "-f", "{{.Id}}", "bb"]);
    let out = bounded(&["type=image"], "{{.Action}} {{.Actor.ID}}");
    assert_eq!(out, format!("tag {0}untag {0}", bb));
    let out = bounded(&["volume=evvol"], "{{.Action}} {{.Actor.ID}}");
    assert_eq!(out, "create evvol\ndestroy evvol\n");
    let (code, out) = s.api(
        "GET",
        "/events?filters=%7B%22nosuch%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&out));
    // system df: the image, a running container, a volume with its data.
    s.ok(&["volume", "create", "vol1"]);
    s.ok(&[
        "run",
        "-d",
        "--name",
        "dfc",
        "--network",
        "none",
        "-v",
        "vol1:/data",
        "bb",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /data/f; touch /ready; exec sleep 60",
    ]);
    wait_for_file(&s, "dfc", "/ready");
    let out = s.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "Images 1 1",
            "Containers 1 1",
            "Local Volumes 1 1",
            "Build Cache 0 0"
        ],
        "{out}"
    );
    let v = s.api_json("GET", "/system/df", None);
    let vol = &v["Volumes"][0];
    assert_eq!(vol["Name"], "vol1", "{v}");
    assert_eq!(vol["UsageData"]["RefCount"], 1, "{v}");
    assert!(vol["UsageData"]["Size"].as_u64().unwrap() >= 100_000, "{v}");
    assert!(v["LayersSize"].as_u64().unwrap() > 0, "{v}");
    // volume ls's dangling filter: used by no container, or by one.
    s.ok(&["volume", "create", "vol2"]);
    let ls = |f: &str| s.ok(&["volume", "ls", "-q", "--filter", f]);
    assert_eq!(ls("dangling=true"), "vol2\n");
    assert_eq!(ls("dangling=false"), "vol1\n");
}

#[test]
fn docker_image_events_name_what_dockerd_names() {
    if !require_root("docker_image_events_name_what_dockerd_names") || !have_docker() {
        return;
    }
    let s = Served::start();
    let since = since_now();
    let id = |name: &str| s.ok(&["inspect", "-f", "{{.Id}}", name]).trim().to_string();
    let bb = id("bb");
    s.ok(&["tag", "bb", "evimg:1"]);
    let archive = s.dir.0.join("evimg.tar");
    s.ok(&["save", "-o", archive.to_str().unwrap(), "evimg:1"]);
    s.ok(&["rmi", "evimg:1"]);
    s.ok(&["load", "-i", archive.to_str().unwrap()]);
    let rootfs = s.dir.0.join("rootfs.tar");
    let imported = s
        .ok(&["import", rootfs.to_str().unwrap(), "evimp:1"])
        .trim()
        .to_string();
    s.ok(&[
        "run",
        "--name",
        "evc",
        "--label",
        "tier=db",
        "--network",
        "none",
        "bb",
        "true",
    ]);
    s.ok(&["commit", "-m", "a note", "evc", "evcommit:1"]);
    let committed = id("evcommit:1");
    let ctx = s.context(&[("Dockerfile", "FROM bb\nLABEL tier=web\n")]);
    let o = s
        .docker(&["build", "-t", "evbuild:1", ctx.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let built = id("evbuild:1");
    // dockerd's actors: the image id, the name a tag or untag concerns,
    // the id again as the name of save, load and import.
    let out = events_until_now(
        &s,
        &since,
        &["type=image"],
        "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
    );
    assert_eq!(
        out,
        format!(
            "tag {bb} evimg:1\nsave {bb} {bb}\nuntag {bb} evimg:1\nload {bb} {bb}\n\
             tag {imported} evimp:1\nimport {imported} {imported}\n\
             tag {committed} evcommit:1\ntag {built} evbuild:1\n"
        )
    );
    // commit is the container's event too, with the new image.
    let out = events_until_now(
        &s,
        &since,
        &["event=commit"],
        "{{.Type}} {{.Actor.Attributes.name}} {{.Actor.Attributes.tier}} \
         {{.Actor.Attributes.imageID}} {{.Actor.Attributes.imageRef}} {{.Actor.Attributes.comment}}",
    );
    assert_eq!(
        out,
        format!("container evc db {committed} evcommit:1 a note\n")
    );
    // An image event carries the image's labels, as dockerd's.
    let out = events_until_now(
        &s,
        &since,
        &["label=tier=web"],
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    );
    assert_eq!(out, "image tag evbuild:1\n");
    s.ok(&["rm", "evc"]);
}

#[test]
fn containers_join_and_leave_their_networks_in_the_event_log() {
    if !require_root("containers_join_and_leave_their_networks_in_the_event_log") || !have_docker()
    {
        return;
    }
    let s = Served::start();
    let since = since_now();
    s.ok(&["network", "create", "evnet"]);
    let net_id = |n: &str| {
        s.ok(&["network", "inspect", "-f", "{{.Id}}", n])
            .trim()
            .to_string()
    };
    let (bridge, evnet) = (net_id("bridge"), net_id("evnet"));
    // Through the API, on a user network...
    let docker_made = s
        .ok(&[
            "create",
            "--name",
            "evd",
            "--network",
            "evnet",
            "bb",
            "true",
        ])
        .trim()
        .to_string();
    s.ok(&["start", "-a", "evd"]);
    s.ok(&["rm", "evd"]);
    // ...and by the CLI, on the default bridge: its monitor records them.
    let o = s.berth(&["run", "--name", "evb", "bb", "true"]);
    assert!(o.status.success(), "{}", show(&o));
    let cli_made = s
        .ok(&["inspect", "-f", "{{.Id}}", "evb"])
        .trim()
        .to_string();
    s.ok(&["rm", "evb"]);
    // On the predefined none and host networks, as dockerd reports them.
    for net in ["none", "host"] {
        let name = format!("ev{net}");
        s.ok(&[
            "run",
            "--rm",
            "--name",
            &name,
            "--network",
            net,
            "bb",
            "true",
        ]);
    }
    let out = events_until_now(
        &s,
        &since,
        &["type=container", "type=network"],
        "{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"container\"}} \
         {{.Actor.Attributes.name}} {{index .Actor.Attributes \"type\"}}",
    );
    let of = |id: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains(id))
            .map(|l| l.replace(id, "C"))
            .collect()
    };
    let want = |net: &str, net_name: &str, name: &str| -> Vec<String> {
        let c = |action: &str| format!("container {action} C  {name} ");
        let driver = match net_name {
            "host" => "host",
            "none" => "null",
            _ => "bridge",
        };
        let n = |action: &str| format!("network {action} {net} C {net_name} {driver}");
        vec![
            c("create"),
            n("connect"),
            c("start"),
            c("die"),
            n("disconnect"),
            c("destroy"),
        ]
    };
    assert_eq!(of(&docker_made), want(&evnet, "evnet", "evd"), "{out}");
    assert_eq!(of(&cli_made), want(&bridge, "bridge", "evb"), "{out}");
    // The --rm ones by the id their create names.
    let id_of = |name: &str| -> String {
        out.lines()
            .find_map(|l| {
                l.strip_prefix("container create ")?
                    .strip_suffix(&format!("  {name} "))
            })
            .unwrap_or_else(|| panic!("no create of {name}: {out}"))
            .to_string()
    };
    let (on_none, on_host) = (id_of("evnone"), id_of("evhost"));
    assert_eq!(
        of(&on_none),
        want(&net_id("none"), "none", "evnone"),
        "{out}"
    );
    assert_eq!(
        of(&on_host),
        want(&net_id("host"), "host", "evhost"),
        "{out}"
    );
    assert!(
        !out.lines().any(|l| l.starts_with("network")
            && ![&docker_made, &cli_made, &on_none, &on_host]
                .iter()
                .any(|id| l.contains(id.as_str()))
            && !l.contains("network create")),
        "{out}"
    );
    s.ok(&["network", "rm", "evnet"]);
}

#[test]
fn docker_sees_the_predefined_host_and_none_networks() {
    if !require_root("docker_sees_the_predefined_host_and_none_networks") || !have_docker() {
        return;
    }
    let s = Served::start();
    let ls = |extra: &[&str]| {
        let mut args = vec![
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ];
        args.extend_from_slice(extra);
        s.ok(&args)
    };
    assert_eq!(
        ls(&[]),
        "bridge bridge local\nhost host local\nnone null local\n"
    );
    assert_eq!(ls(&["--filter", "driver=null"]), "none null local\n");
    assert_eq!(ls(&["--filter", "type=custom"]), "");
    assert_eq!(ls(&["--filter", "type=builtin"]).lines().count(), 3);
    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["network", "inspect", "host", "none"])).unwrap();
    assert_eq!(
        (&v[0]["Name"], &v[0]["Driver"]),
        (&"host".into(), &"host".into())
    );
    assert_eq!(
        (&v[1]["Name"], &v[1]["Driver"]),
        (&"none".into(), &"null".into())
    );
    assert_eq!(v[1]["IPAM"]["Config"], serde_json::json!([]));
    let host_id = v[0]["Id"].as_str().unwrap().to_string();
    assert_eq!(host_id.len(), 64);

    // Refused with dockerd's words and statuses.
    let refused = |method: &str, path: &str, body: Option<&str>, code: u16, why: &str| {
        let (got, out) = s.api(method, path, body);
        let out = String::from_utf8_lossy(&out);
        assert_eq!(got, code, "{method} {path}: {out}");
        let msg: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(msg["message"], why, "{method} {path}");
    };
    for net in ["host", "none", "bridge"] {
        let why = format!("{net} is a pre-defined network and cannot be removed");
        refused("DELETE", &format!("/networks/{net}"), None, 403, &why);
        let body = format!(r#"{{"Name": "{net}"}}"#);
        let why = format!("operation is not permitted on predefined {net} network");
        refused("POST", "/networks/create", Some(&body), 403, &why);
    }
    refused(
        "POST",
        "/networks/create",
        Some(r#"{"Name": "h2", "Driver": "host"}"#),
        403,
        "only one instance of \"host\" network is allowed",
    );
    let o = s.run(&["network", "rm", "none"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("none is a pre-defined network and cannot be removed"),
        "{}",
        show(&o)
    );

    // A container on host: in the network's inspect and in its own.
    let c = s
        .ok(&[
            "run",
            "-d",
            "--name",
            "onhost",
            "--network",
            "host",
            "bb",
            "sleep",
            "100",
        ])
        .trim()
        .to_string();
    let members = s.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range $id, $c := .Containers}}{{$id}} {{$c.Name}}{{end}}",
        "host",
    ]);
    assert_eq!(members.trim(), format!("{c} onhost"));
    let nets = s.ok(&[
        "inspect",
        "-f",
        "{{range $n, $e := .NetworkSettings.Networks}}{{$n}} {{$e.NetworkID}}{{end}}",
        "onhost",
    ]);
    assert_eq!(nets.trim(), format!("host {host_id}"));
    let host_rule =
        "container cannot be disconnected from host network or connected to host network";
    let body = r#"{"Container": "onhost"}"#;
    refused(
        "POST",
        "/networks/host/disconnect",
        Some(body),
        400,
        host_rule,
    );
    refused(
        "POST",
        "/networks/none/connect",
        Some(body),
        400,
        "container sharing network namespace with another container or host cannot be connected to any other network",
    );
    s.ok(&["network", "prune", "-f"]);
    assert_eq!(ls(&["-q"]).lines().count(), 3);
    s.ok(&["rm", "-f", "onhost"]);
}

#[test]
fn docker_build_through_berth_serve() {
    if !require_root("docker_build_through_berth_serve") || !have_docker() {
        return;
    }
    let s = Served::start();
    let ctx = s.context(&[
        ("file.txt", "from the context\n"),
        (
            "Dockerfile",
            "FROM bb\nARG WHO=nobody\nRUN echo \"built by $WHO\" > /built\nCOPY file.txt /file.txt\n\
             LABEL tier=web\nCMD [\"cat\", \"/built\", \"/file.txt\"]\n",
        ),
    ]);
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "-t", "app:1", "--build-arg", "WHO=docker"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        s.docker(&args)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap()
    };
    let o = build(&[]);
    assert!(o.status.success(), "{}\n{}", show(&o), s.log());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Step 1/6 : FROM bb"), "{out}");
    assert!(out.contains("Successfully built"), "{out}");
    assert!(out.contains("Successfully tagged app:1"), "{out}");
    assert_eq!(
        s.ok(&["run", "--rm", "--network", "none", "app:1"]),
        "built by docker\nfrom the context\n"
    );
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.Config.Labels.tier}}", "app:1"])
            .trim(),
        "web"
    );
    // Again: every step from the cache; -q prints the id alone.
    let o = build(&[]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Using cache"),
        "{}",
        show(&o)
    );
    let o = build(&["-q"]);
    assert!(o.status.success(), "{}", show(&o));
    let id = s.ok(&["image", "inspect", "-f", "{{.Id}}", "app:1"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id.trim());
    // The steps' images are listed only with -a, app:1 names the last as
    // its parent, and `image prune` keeps them: dockerd keeps the images
    // an image was built on.
    let ids = |args: &[&str]| {
        let mut v: Vec<String> = s.ok(args).lines().map(String::from).collect();
        v.sort();
        v
    };
    let shown = ids(&["images", "-q", "--no-trunc"]);
    let every = ids(&["images", "-aq", "--no-trunc"]);
    let list = s.api_json("GET", "/images/json", None);
    let parent = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["RepoTags"][0] == "app:1")
        .map(|i| i["ParentId"].as_str().unwrap().to_string())
        .unwrap();
    assert!(
        every.contains(&parent) && !shown.contains(&parent),
        "{parent} {every:?} {shown:?}"
    );
    assert_eq!(
        s.ok(&["image", "inspect", "-f", "{{.Parent}}", "app:1"])
            .trim(),
        parent
    );
    // history shows each step's image, as dockerd's classic builder does.
    let steps = s.ok(&["history", "-q", "--no-trunc", "app:1"]);
    assert!(!steps.contains("<missing>"), "{steps}");
    assert_eq!(steps.lines().nth(1), Some(parent.as_str()), "{steps}");
    s.ok(&["image", "prune", "-f"]);
    assert_eq!(ids(&["images", "-aq", "--no-trunc"]), every);
    // The build cache goes with `builder prune` and `system prune`.
    assert!(s.ok(&["builder", "prune", "-f"]).contains("Total"));
    assert!(s
        .ok(&["system", "prune", "-f"])
        .contains("Total reclaimed space"));
    assert_eq!(
        s.ok(&["run", "--rm", "--network", "none", "app:1"]),
        "built by docker\nfrom the context\n",
        "the tagged image stays"
    );
    // A failing step fails the build with docker's words.
    std::fs::write(ctx.join("Dockerfile"), "FROM bb\nRUN exit 7\n").unwrap();
    let o = build(&[]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("returned a non-zero code: 7"),
        "{}",
        show(&o)
    );
    // The limits the classic builder gives RUN containers (the build
    // query's memory, cpuperiod, cpuquota).
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nRUN cd /sys/fs/cgroup && cat memory/memory.limit_in_bytes cpu/cpu.cfs_period_us \
         cpu/cpu.cfs_quota_us > /limits\n",
    )
    .unwrap();
    let o = build(&["-m", "64m", "--cpu-period", "50000", "--cpu-quota", "25000"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "app:1",
            "cat",
            "/limits"
        ]),
        "67108864\n50000\n25000\n"
    );
}

/// docker-py's client, from PyPI into a venv of the test's own.
const DOCKER_PY_SCRIPT: &str = r#"
import io, sys, tarfile, time
import docker

c = docker.DockerClient(base_url="unix://" + sys.argv[1])
assert c.ping()
out = c.containers.run("bb", ["echo", "from docker-py"], network_mode="none", remove=True)
assert out == b"from docker-py\n", out
ct = c.containers.run("bb", ["sh", "-c", "echo ready; exec sleep 60"], detach=True,
                      name="py", network_mode="none")
for _ in range(400):
    if b"ready" in ct.logs():
        break
    time.sleep(0.05)
else:
    raise SystemExit("no log line: %r" % ct.logs())
ct.reload()
assert ct.status == "running", ct.status
code, output = ct.exec_run(["echo", "exec"])
assert (code, output) == (0, b"exec\n"), (code, output)
stats = ct.stats(stream=False)
assert stats["name"] == "/py", stats
assert stats["pids_stats"]["current"] >= 1, stats
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"put by docker-py\n"
    info = tarfile.TarInfo("put.txt")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
assert ct.put_archive("/tmp", buf.getvalue())
bits, stat = ct.get_archive("/tmp/put.txt")
assert stat["name"] == "put.txt", stat
with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as t:
    assert t.extractfile("put.txt").read() == b"put by docker-py\n"
img = ct.commit(repository="pyimg", tag="1")
assert img.id.startswith("sha256:"), img.id
assert [x["Kind"] for x in ct.diff() if x["Path"] == "/tmp/put.txt"] == [1], ct.diff()
ct.remove(force=True)
assert c.containers.list(all=True) == []
try:
    c.api.update_container("nosuch", mem_limit="64m")
    raise SystemExit("update of a missing container worked")
except docker.errors.NotFound:
    pass
print("ok")
"#;

#[test]
fn docker_py_drives_berth_serve() {
    if !require_root("docker_py_drives_berth_serve") || !have_docker() {
        return;
    }
    let s = Served::start();
    let venv = s.venv(&["docker"]);
    let script = s.dir.0.join("client.py");
    std::fs::write(&script, DOCKER_PY_SCRIPT).unwrap();
    let o = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(s.dir.0.join("api.sock"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\nserver log: {}", show(&o), s.log());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok\n");
}
