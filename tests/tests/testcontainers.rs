//! testcontainers, unchanged, against `berth serve`: Python's from PyPI in
//! a venv of the test's own and Rust's from crates.io each start a busybox
//! container, wait for its log line, use it (exec and a published port)
//! and leave nothing behind. Ryuk, the reaper those libraries start by
//! default, cannot be pulled here; a reaper of our own (busybox and the
//! docker client, speaking Ryuk's protocol) shows what Ryuk needs from the
//! engine: a container that reaches the API through the bind-mounted
//! socket and removes the session's labelled containers, networks and
//! volumes, driven by hand and by Python's testcontainers in Ryuk's place.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testutil::require_root;

mod common;

use common::*;

/// Serves a page with busybox's httpd (which binds before it forks into
/// the background), then says so on stdout.
const HTTPD: &str = "mkdir /www && echo hello-from-bb > /www/index.html \
    && httpd -p 8080 -h /www && echo server is ready && exec sleep 3600";

/// Starts the server, waits for it, and uses it by exec, by its published
/// port, and from another container over a network.
const PY_SCRIPT: &str = r#"
import urllib.request

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

SCRIPT = __import__("sys").argv[1]

container = (
    DockerContainer("bb")
    .with_command(["sh", "-c", SCRIPT])
    .with_exposed_ports(8080)
    .waiting_for(LogMessageWaitStrategy("server is ready"))
)
with container as c:
    code, out = c.exec(["cat", "/www/index.html"])
    assert (code, out) == (0, b"hello-from-bb\n"), (code, out)
    url = f"http://{c.get_container_host_ip()}:{c.get_exposed_port(8080)}/index.html"
    body = urllib.request.urlopen(url, timeout=30).read()
    assert body == b"hello-from-bb\n", body
    print(c.get_container_id())

# A second container reaches the first by its alias on a network of the
# session's own, which goes with it.
CLIENT = ["sh", "-c", "echo up && exec sleep 3600"]
with Network() as net:
    web = (
        DockerContainer("bb")
        .with_command(["sh", "-c", SCRIPT])
        .with_network(net)
        .with_network_aliases("web")
        .waiting_for(LogMessageWaitStrategy("server is ready"))
    )
    client = (
        DockerContainer("bb")
        .with_command(CLIENT)
        .with_network(net)
        .waiting_for(LogMessageWaitStrategy("up"))
    )
    with web, client:
        get = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc web 8080"
        code, out = client.exec(["sh", "-c", get])
        assert code == 0 and out.endswith(b"\r\n\r\nhello-from-bb\n"), (code, out)
"#;

/// Runs `script` (with `args`) under testcontainers from PyPI, in a venv
/// of the server's own, pointed at its socket, with one more variable
/// set; what it prints.
fn python(s: &Served, script: &str, args: &[&str], var: (&str, &str)) -> String {
    // 4.13 brought the wait strategies the scripts use.
    let venv = s.venv(&["testcontainers>=4.13"]);
    let path = s.dir.0.join("script.py");
    std::fs::write(&path, script).unwrap();
    let o = Command::new(venv.join("bin/python"))
        .arg(&path)
        .args(args)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", s.dir.0.join("api.sock").display()),
        )
        .env("DOCKER_CONFIG", s.dir.0.join("docker-config"))
        .env(var.0, var.1)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\nserver log: {}", show(&o), s.log());
    String::from_utf8(o.stdout).unwrap()
}

/// `berth ps -a` on the served root: every container left, one per line.
fn left(s: &Served) -> String {
    let o = s.berth(&["ps", "-aq", "--no-trunc"]);
    assert!(o.status.success(), "berth ps: {}", show(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn testcontainers_python_runs_waits_uses_and_removes_a_container() {
    if !require_root("testcontainers_python_runs_waits_uses_and_removes_a_container")
        || !have_docker()
    {
        return;
    }
    let s = Served::start();
    let id = python(
        &s,
        PY_SCRIPT,
        &[HTTPD],
        ("TESTCONTAINERS_RYUK_DISABLED", "true"),
    );
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(left(&s), "", "a container outlived its `with` block");
    let nets = s.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(
        nets.trim(),
        "bridge\nhost\nnone",
        "the session's network outlived it"
    );
}

/// A server the testcontainers crate is pointed at. The crate reads its
/// daemon from the environment only; nextest runs each test in a process
/// of its own, so setting it touches no other test.
fn served_for_the_crate() -> Served {
    let s = Served::start();
    std::env::set_var(
        "DOCKER_HOST",
        format!("unix://{}", s.dir.0.join("api.sock").display()),
    );
    std::env::set_var("TESTCONTAINERS_RYUK_DISABLED", "true");
    std::env::set_var("DOCKER_CONFIG", s.dir.0.join("docker-config"));
    s
}

#[test]
fn testcontainers_rust_runs_waits_uses_and_removes_a_container() {
    use testcontainers::core::{ExecCommand, IntoContainerPort, WaitFor};
    use testcontainers::runners::SyncRunner;
    use testcontainers::{GenericImage, Healthcheck, ImageExt};

    if !require_root("testcontainers_rust_runs_waits_uses_and_removes_a_container")
        || !have_docker()
    {
        return;
    }
    let s = served_for_the_crate();
    let c = GenericImage::new("bb", "latest")
        .with_exposed_port(8080.tcp())
        .with_wait_for(WaitFor::message_on_stdout("server is ready"))
        // Then healthy, by a check the container's exec runs.
        .with_wait_for(WaitFor::healthcheck())
        .with_cmd(["sh", "-c", HTTPD])
        .with_health_check(
            Healthcheck::cmd_shell("test -s /www/index.html")
                .with_interval(Duration::from_millis(200)),
        )
        .start()
        .unwrap_or_else(|e| panic!("start: {e}\nserver log: {}", s.log()));
    let id = c.id().to_string();
    assert_eq!(left(&s).trim(), id);
    let health = s.ok(&["inspect", "-f", "{{.State.Health.Status}}", &id]);
    assert_eq!(health.trim(), "healthy");

    let mut r = c
        .exec(ExecCommand::new(["cat", "/www/index.html"]))
        .unwrap_or_else(|e| panic!("exec: {e}\nserver log: {}", s.log()));
    assert_eq!(r.stdout_to_vec().unwrap(), b"hello-from-bb\n");
    assert_eq!(r.exit_code().unwrap(), Some(0));

    let host = c.get_host().unwrap().to_string();
    let port = c.get_host_port_ipv4(8080).unwrap();
    let addr = if host == "localhost" {
        "127.0.0.1".to_string()
    } else {
        host
    };
    let mut conn = TcpStream::connect((addr.as_str(), port)).unwrap();
    conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    conn.read_to_string(&mut page).unwrap();
    assert!(
        page.starts_with("HTTP/1.") && page.ends_with("hello-from-bb\n"),
        "{page}"
    );

    drop(c);
    assert_eq!(left(&s), "", "the container outlived its handle");
}

#[test]
fn testcontainers_rust_mounts_copies_networks_and_restarts() {
    use testcontainers::core::{CmdWaitFor, ExecCommand, Mount, WaitFor};
    use testcontainers::runners::SyncRunner;
    use testcontainers::{GenericImage, ImageExt};

    if !require_root("testcontainers_rust_mounts_copies_networks_and_restarts") || !have_docker() {
        return;
    }
    let s = served_for_the_crate();
    let host = s.dir.0.join("data");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("file"), "from-host").unwrap();
    let c = GenericImage::new("bb", "latest")
        .with_wait_for(WaitFor::message_on_stdout("up"))
        .with_cmd([
            "sh",
            "-c",
            "echo \"$GREETING $(pwd) $(cat /etc/copied) $(cat file)\"; echo up; exec sleep 3600",
        ])
        .with_env_var("GREETING", "hi")
        .with_mount(Mount::bind_mount(host.display().to_string(), "/data"))
        .with_copy_to("/etc/copied", b"copied".to_vec())
        .with_working_dir("/data")
        .with_container_name("tc-web")
        .with_network("tc-net")
        .start()
        .unwrap_or_else(|e| panic!("start: {e}\nserver log: {}", s.log()));
    let out = String::from_utf8(c.stdout_to_vec().unwrap()).unwrap();
    assert!(out.starts_with("hi /data copied from-host\nup\n"), "{out}");
    let nets = s.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}",
        "tc-web",
    ]);
    assert_eq!(nets.trim(), "tc-net");

    // An exec that writes through the bind mount, waited for by its exit.
    let r = c
        .exec(
            ExecCommand::new(["sh", "-c", "echo from-container > /data/back"])
                .with_cmd_ready_condition(CmdWaitFor::exit_code(0)),
        )
        .unwrap();
    assert_eq!(r.exit_code().unwrap(), Some(0));
    assert_eq!(
        std::fs::read_to_string(host.join("back")).unwrap(),
        "from-container\n"
    );

    c.stop_with_timeout(Some(1)).unwrap();
    assert!(!c.is_running().unwrap());
    c.start().unwrap();
    assert!(c.is_running().unwrap());

    drop(c);
    assert_eq!(left(&s), "", "the container outlived its handle");
    let nets = s.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(
        nets.trim(),
        "bridge\nhost\nnone",
        "the crate's network outlived its container"
    );
}

/// A reaper image: busybox and the host's docker client, which needs only
/// libc and the dynamic loader beside it.
fn build_reaper(s: &Served) {
    let ctx = s.dir.0.join("reaper");
    std::fs::create_dir_all(&ctx).unwrap();
    let files = [
        (DOCKER, "/usr/bin/docker"),
        (
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libc.so.6",
        ),
        ("/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"),
    ];
    let mut dockerfile = String::from("FROM bb\n");
    for (i, (host, inside)) in files.iter().enumerate() {
        std::fs::copy(host, ctx.join(i.to_string()))
            .unwrap_or_else(|e| panic!("{host}: {e} (the reaper image needs it)"));
        dockerfile.push_str(&format!("COPY {i} {inside}\n"));
    }
    for (name, script) in [("reaper.sh", REAPER), ("ack.sh", ACK)] {
        let path = ctx.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        dockerfile.push_str(&format!("COPY {name} /{name}\n"));
    }
    dockerfile.push_str("CMD [\"/reaper.sh\"]\n");
    build(s, "reaper", &ctx, &dockerfile);
}

/// `docker build -t TAG` of `dockerfile` in the context `ctx`.
fn build(s: &Served, tag: &str, ctx: &std::path::Path, dockerfile: &str) {
    std::fs::create_dir_all(ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let o = s
        .docker(&["build", "-q", "-t", tag])
        .arg(ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "build {tag}: {}\nserver log: {}",
        show(&o),
        s.log()
    );
}

const SESSION: &str = "org.testcontainers.session-id";
/// What testcontainers labels every container of every session with.
const TC: &str = "org.testcontainers=true";

/// What Ryuk does, in Ryuk's protocol: say "Started!", take the session's
/// filters from the client over port 8080 (a line each, `&` joining the
/// parts of one, each line answered ACK), and once that connection ends,
/// list what each filter matches through the API socket (containers,
/// networks, volumes, images) and remove it.
const REAPER: &str = r#"#!/bin/sh
set -o pipefail
echo "reaper Started!"
nc -l -p 8080 -e /ack.sh
while read -r line; do
    set --
    for part in $(echo "$line" | tr -d '\r' | tr '&' ' '); do
        set -- "$@" --filter "$part"
    done
    echo "reaping $*"
    docker ps -aq "$@" | xargs -r docker rm -f -v \
        && docker network ls -q "$@" | xargs -r docker network rm \
        && docker volume ls -q "$@" | xargs -r docker volume rm -f \
        && docker images -q "$@" | xargs -r docker rmi \
        || exit 1
done < /tmp/filters
echo reaped
"#;

/// One client's connection: its filters kept, each acknowledged.
const ACK: &str = r#"#!/bin/sh
while read -r line; do
    echo "$line" >> /tmp/filters
    echo ACK
done
"#;

#[test]
fn testcontainers_ryuk_reaps_labelled_containers_through_the_bind_mounted_socket() {
    if !require_root(
        "testcontainers_ryuk_reaps_labelled_containers_through_the_bind_mounted_socket",
    ) || !have_docker()
    {
        return;
    }
    let s = Served::start();
    build_reaper(&s);
    let label = format!("{SESSION}=X");
    for name in ["tc-a", "tc-b"] {
        s.sh_detached_with(name, &["--label", &label, "--label", TC], "exec sleep 3600");
    }
    s.ok(&[
        "network", "create", "--label", &label, "--label", TC, "tc-net",
    ]);
    s.ok(&[
        "volume", "create", "--label", &label, "--label", TC, "tc-vol",
    ]);
    build(
        &s,
        "tc-img",
        &s.dir.0.join("tc-img"),
        &format!("FROM bb\nLABEL {label} {TC}\n"),
    );
    s.sh_detached("bystander", "exec sleep 3600");
    // Another session's: testcontainers' label, not this session's.
    s.sh_detached_with(
        "other-session",
        &["--label", &format!("{SESSION}=Y"), "--label", TC],
        "exec sleep 3600",
    );
    s.ok(&["network", "create", "bystander-net"]);

    let sock = s.dir.0.join("api.sock");
    s.ok(&[
        "run",
        "-d",
        "--name",
        "reaper",
        "-p",
        "127.0.0.1::8080",
        "-v",
        &format!("{}:/var/run/docker.sock", sock.display()),
        "reaper",
    ]);
    let port = s.ok(&["port", "reaper", "8080/tcp"]);
    let port = port.trim().rsplit(':').next().unwrap().to_string();
    // The port answers once nc listens; a refused connection is nc not
    // being there yet (testcontainers retries the same way).
    let start = Instant::now();
    let mut conn = loop {
        let logs = s.ok(&["logs", "reaper"]);
        if logs.contains("Started!") {
            if let Ok(c) = TcpStream::connect(format!("127.0.0.1:{port}")) {
                break c;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the reaper never listened: {logs}\nserver log: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Two filters in one line, both to hold, as testcontainers-go sends
    // them.
    conn.write_all(format!("label={TC}&label={label}\r\n").as_bytes())
        .unwrap();
    let mut ack = [0; 4];
    conn.read_exact(&mut ack).unwrap();
    assert_eq!(&ack, b"ACK\n");
    drop(conn);
    let code = s.ok(&["wait", "reaper"]);
    let logs = s.ok(&["logs", "reaper"]);
    assert_eq!(code.trim(), "0", "reaper: {logs}\nserver log: {}", s.log());
    assert!(logs.ends_with("reaped\n"), "{logs}");

    let names = s.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["bystander", "other-session", "reaper"]);
    let nets = s.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.lines().any(|n| n == "tc-net"), "{nets}");
    assert!(nets.lines().any(|n| n == "bystander-net"), "{nets}");
    let vols = s.ok(&["volume", "ls", "-q"]);
    assert!(!vols.lines().any(|v| v == "tc-vol"), "{vols}");
    let images = s.ok(&["images", "--format", "{{.Repository}}"]);
    let mut images: Vec<&str> = images.lines().collect();
    images.sort();
    assert_eq!(images, ["bb", "reaper"]);
    s.ok(&["rm", "-f", "reaper", "bystander", "other-session"]);
    s.ok(&["network", "rm", "bystander-net"]);
}

/// Python's testcontainers with its reaper on (ours, in Ryuk's place): the
/// test process dies without cleaning up, as a killed test run does, and
/// the reaper removes what the session left, then itself (AutoRemove).
const PY_CRASH: &str = r#"
import os

from testcontainers.core.container import DockerContainer
from testcontainers.core.labels import SESSION_ID
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

c = (
    DockerContainer("bb")
    .with_command(["sh", "-c", "echo up && exec sleep 3600"])
    .waiting_for(LogMessageWaitStrategy("up"))
)
c.start()
print(SESSION_ID, c.get_container_id(), flush=True)
os._exit(0)
"#;

#[test]
fn testcontainers_python_with_a_reaper_cleans_up_after_a_crashed_session() {
    if !require_root("testcontainers_python_with_a_reaper_cleans_up_after_a_crashed_session")
        || !have_docker()
    {
        return;
    }
    let s = Served::start();
    build_reaper(&s);
    let out = python(&s, PY_CRASH, &[], ("RYUK_CONTAINER_IMAGE", "reaper"));
    let (session, id) = out.trim().split_once(' ').unwrap();
    // What the session left: its container, labelled, and the reaper.
    let labelled = s.ok(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={SESSION}={session}"),
    ]);
    let start = Instant::now();
    while !left(&s).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "left after the session ended: {}\nlabelled at first: {labelled}\nserver log: {}",
            s.ok(&["ps", "-a"]),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        labelled.is_empty() || labelled.trim() == id,
        "{labelled} {id}"
    );
}
