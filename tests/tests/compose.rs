//! Debian's docker-compose 1.29 against `berth serve`, unchanged: the
//! three-service app in tests/fixtures/compose (a web server image built
//! from a Dockerfile with the classic builder and health-checked, a client
//! started once it is healthy that fetches its page by service name over
//! the project's network into a named volume, and a reader of that volume)
//! comes up, is listed, logs, runs a one-off, is brought up again and
//! recreated, and goes away with its network and volume.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::require_root;

mod common;

use common::*;

const COMPOSE: &str = "/usr/bin/docker-compose";
const PROJECT: &str = "app";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/compose")
}

/// docker-compose in the app's directory, speaking to `s`'s socket.
fn compose(s: &Served, args: &[&str]) -> Output {
    Command::new(COMPOSE)
        .current_dir(fixture())
        .env(
            "DOCKER_HOST",
            format!("unix://{}", s.dir.0.join("api.sock").display()),
        )
        .env("DOCKER_CONFIG", s.dir.0.join("docker-config"))
        .env("COMPOSE_PROJECT_NAME", PROJECT)
        // The classic builder through the API: no BuildKit session.
        .env("DOCKER_BUILDKIT", "0")
        .env("COMPOSE_DOCKER_CLI_BUILD", "0")
        .args(["--ansi", "never"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn compose_ok(s: &Served, args: &[&str]) -> String {
    let o = compose(s, args);
    assert!(
        o.status.success(),
        "docker-compose {args:?}: {}\nserver log: {}",
        show(&o),
        s.log()
    );
    String::from_utf8(o.stdout).unwrap()
}

fn lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn compose_up_ps_logs_and_down_of_a_three_service_app() {
    if !require_root("compose_up_ps_logs_and_down_of_a_three_service_app")
        || !have_docker()
        || !have_client(COMPOSE, "docker-compose")
    {
        return;
    }
    let s = Served::start();
    compose_ok(&s, &["up", "-d", "--build"]);
    // The image was built here, from bb, and tagged as the file names it.
    let images = s.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(images.lines().any(|l| l == "composeapp-web"), "{images}");

    let ps = compose_ok(&s, &["ps"]);
    for svc in ["web", "client", "reader"] {
        let name = format!("{PROJECT}_{svc}_1");
        let row = ps
            .lines()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("{name} is not listed: {ps}"));
        assert!(row.contains(" Up"), "{row}");
    }
    // The client waited for web's health check (depends_on:
    // service_healthy), which compose reads from inspect.
    let web = ps
        .lines()
        .find(|l| l.starts_with(&format!("{PROJECT}_web_1")));
    assert!(web.is_some_and(|r| r.contains("Up (healthy)")), "{ps}");
    assert_eq!(compose_ok(&s, &["ps", "-q"]).lines().count(), 3, "{ps}");
    // Compose finds its containers by their labels; so does docker.
    let labelled = s.ok(&[
        "ps",
        "--filter",
        &format!("label=com.docker.compose.project={PROJECT}"),
        "--filter",
        "label=com.docker.compose.service=web",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(labelled.trim(), format!("{PROJECT}_web_1"));

    // The client reached `web` by name over the project's network and put
    // the page into the volume, where the reader saw it.
    let start = Instant::now();
    let logs = loop {
        let logs = compose_ok(&s, &["logs", "--no-color"]);
        if logs.contains("reader saw: hello from web") {
            break logs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the app did not get its page through: {logs}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(logs.contains("client got: hello from web"), "{logs}");
    // httpd -v logs each answer with its client's address: the health
    // check's from 127.0.0.1, the client's from the network.
    assert!(
        logs.lines()
            .any(|l| l.contains("response:200") && !l.contains("127.0.0.1")),
        "{logs}"
    );
    let net = format!("{PROJECT}_front");
    let nets = s.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(nets.lines().any(|l| l == net), "{nets}");
    let members = s.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        &net,
    ]);
    for svc in ["web", "client", "reader"] {
        assert!(members.contains(&format!("{PROJECT}_{svc}_1")), "{members}");
    }

    let vol = format!("{PROJECT}_shared");
    let vols = s.ok(&["volume", "ls", "--format", "{{.Name}}"]);
    assert_eq!(vols.trim(), vol, "only the named volume, no anonymous one");
    let log = s.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}}",
        &format!("{PROJECT}_reader_1"),
    ]);
    assert_eq!(log.trim(), "json-file 1m");
    // What the project made, found by its label as docker finds it.
    let project = format!("label=com.docker.compose.project={PROJECT}");
    for what in ["network", "volume"] {
        let found = s.ok(&[what, "ls", "-q", "--filter", &project]);
        assert_eq!(found.lines().count(), 1, "{what}: {found}");
        let none = s.ok(&[
            what,
            "ls",
            "-q",
            "--filter",
            &project,
            "--filter",
            "label=other",
        ]);
        assert_eq!(none, "", "{what}: every label must match");
    }
    let label = s.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{index .Labels \"com.docker.compose.volume\"}}",
        &vol,
    ]);
    assert_eq!(label.trim(), "shared");
    let page = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{vol}:/v:ro"),
        "bb",
        "cat",
        "/v/page",
    ]);
    assert_eq!(page, "hello from web\n");
    assert_eq!(
        compose_ok(&s, &["exec", "-T", "reader", "cat", "/shared/page"]),
        "hello from web\n"
    );

    // A one-off container of a service: compose links it to the service's
    // running container under the service's names.
    let hosts = compose_ok(
        &s,
        &[
            "run",
            "--rm",
            "-T",
            "reader",
            "sh",
            "-c",
            "cat /etc/hosts /shared/page",
        ],
    );
    assert!(hosts.lines().any(|l| l.ends_with("\treader_1")), "{hosts}");
    assert!(hosts.ends_with("hello from web\n"), "{hosts}");

    // Again: nothing changed, nothing is recreated (compose compares the
    // network's options and the containers' config hashes with its own).
    let ids = compose_ok(&s, &["ps", "-q"]);
    let again = compose(&s, &["up", "-d"]);
    assert!(again.status.success(), "{}", show(&again));
    let err = String::from_utf8_lossy(&again.stderr);
    for svc in ["web", "client", "reader"] {
        assert!(
            err.contains(&format!("{PROJECT}_{svc}_1 is up-to-date")),
            "{err}"
        );
    }
    assert_eq!(compose_ok(&s, &["ps", "-q"]), ids);
    // Recreated: new containers under the same names, the volume kept.
    compose_ok(&s, &["up", "-d", "--force-recreate"]);
    let recreated = compose_ok(&s, &["ps", "-q"]);
    assert_eq!(recreated.lines().count(), 3, "{recreated}");
    assert!(
        recreated.lines().all(|id| !ids.contains(id)),
        "{ids} -> {recreated}"
    );
    let names = s.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    for (row, svc) in names.iter().zip(["client", "reader", "web"]) {
        assert!(
            row.starts_with(&format!("{PROJECT}_{svc}_1 Up")),
            "{names:?}"
        );
    }
    assert_eq!(
        compose_ok(&s, &["exec", "-T", "reader", "cat", "/shared/page"]),
        "hello from web\n"
    );

    compose_ok(&s, &["down", "-v"]);
    let ps = s.berth(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(ps.status.success(), "{}", show(&ps));
    assert_eq!(lines(&ps), Vec::<String>::new());
    let o = s.berth(&["network", "ls"]);
    let nets = String::from_utf8_lossy(&o.stdout);
    let names: Vec<&str> = nets
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    // docker's predefined three, nothing of the project's.
    assert_eq!(names, ["bridge", "host", "none"], "{}", show(&o));
    let vols = s.berth(&["volume", "ls", "-q"]);
    assert_eq!(lines(&vols), Vec::<String>::new(), "{}", show(&vols));
}
