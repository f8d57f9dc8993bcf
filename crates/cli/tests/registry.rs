//! pull, push, login and logout through the CLI against Debian's
//! distribution registry (`docker-registry serve`) on a loopback port,
//! which berth speaks plain HTTP to as docker does. Credentials go to a
//! docker config.json under a temporary `DOCKER_CONFIG`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use berth_testutil::peers::{Podman, Registry, RegistryOptions};
use common::Berth;

/// The shared registry peer; `htpasswd` turns on basic auth, none is an
/// open registry.
fn start_registry(htpasswd: Option<&Path>) -> Registry {
    Registry::start_with(RegistryOptions {
        auth: htpasswd.map(|h| {
            format!(
                "  htpasswd:\n    realm: berth-test\n    path: {}\n",
                h.display()
            )
        }),
        ..Default::default()
    })
}

/// Runs berth with `DOCKER_CONFIG` set and `input` on stdin.
fn with_config(b: &Berth, docker_config: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut c = b.cmd(args);
    c.env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn push_rmi_pull_run_round_trip() {
    if !berth_testutil::require_root("push_rmi_pull_run_round_trip") {
        return;
    }
    let reg = start_registry(None);
    let b = Berth::with_image();
    let tar = b.dir.path().join("rootfs.tar");
    let name = format!("{}/test/app:v1", reg.host());
    b.ok(&[
        "import",
        "-c",
        "CMD [\"echo\", \"from the registry\"]",
        tar.to_str().unwrap(),
        &name,
    ]);
    let id = b
        .ok(&["images", "-q", "--no-trunc", &name])
        .trim()
        .to_string();

    let out = b.ok(&["push", &name]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("The push refers to repository [{}/test/app]", reg.host())
    );
    assert!(out.contains(": Pushed\n"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("v1: digest: sha256:") && last.contains(" size: "),
        "{out}"
    );
    let digest = last.split_whitespace().nth(2).unwrap().to_string();
    // Pushing again moves nothing; -q prints only the reference.
    assert_eq!(b.ok(&["push", "-q", &name]), format!("{name}\n"));

    let rmi = b.ok(&["rmi", &name]);
    assert_eq!(rmi, format!("Untagged: {name}\nDeleted: {id}\n"));
    // bb shares the layer: without it the pull must fetch the layer.
    b.ok(&["rmi", "bb"]);
    assert_eq!(b.ok(&["images", "-q"]), "");

    let out = b.ok(&["pull", &name]);
    assert!(out.starts_with("v1: Pulling from test/app\n"), "{out}");
    assert!(out.contains(": Pull complete\n"), "{out}");
    assert!(out.contains(&format!("Digest: {digest}\n")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{out}"
    );
    assert!(out.ends_with(&format!("\n{name}\n")), "{out}");
    assert_eq!(b.ok(&["images", "-q", "--no-trunc", &name]).trim(), id);
    assert_eq!(b.ok(&["pull", "-q", &name]), format!("{name}\n"));
    let again = b.ok(&["pull", &name]);
    assert!(again.contains("Status: Image is up to date for"), "{again}");
    let i: serde_json::Value = serde_json::from_str(&b.ok(&["image", "inspect", &name])).unwrap();
    assert_eq!(
        i[0]["RepoDigests"],
        serde_json::json!([format!("{}/test/app@{digest}", reg.host())])
    );
    assert_eq!(b.ok(&["run", "--rm", &name]), "from the registry\n");

    // run in a store that lacks the image pulls it (notice on stderr,
    // the container's output alone on stdout); --pull never does not.
    let fresh = Berth::new();
    let o = fresh.run(&["run", "--pull", "never", "--rm", &name]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        text(&o.stderr).contains("no such image"),
        "{}",
        text(&o.stderr)
    );
    let o = fresh.run(&["run", "--rm", &name]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "from the registry\n");
    assert!(
        text(&o.stderr).starts_with(&format!("Unable to find image '{name}' locally\n")),
        "{}",
        text(&o.stderr)
    );
    let o = fresh.run(&["create", "--pull", "always", &name]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim().len(), 64);
    // -q: the pull says nothing, the output is the container's alone.
    let quiet = Berth::new();
    let o = quiet.run(&["run", "-q", "--rm", &name]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "from the registry\n");
    assert_eq!(text(&o.stderr), "");

    // Errors name the cause, exit 1 (125 for run).
    let o = b.run(&["pull", &format!("{}/test/missing:v1", reg.host())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("manifest unknown"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(text(&o.stderr).lines().count(), 1);
    let o = b.run(&["run", "--rm", &format!("{}/test/missing:v1", reg.host())]);
    assert_eq!(o.status.code(), Some(125));
    let o = b.run(&["push", &format!("{}/test/notlocal:v1", reg.host())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no such image"),
        "{}",
        text(&o.stderr)
    );

    // --all-tags both ways: every local tag up, every remote tag down.
    let v2 = format!("{}/test/app:v2", reg.host());
    b.ok(&["tag", &name, &v2]);
    let repo = format!("{}/test/app", reg.host());
    let out = b.ok(&["push", "--all-tags", &repo]);
    assert!(
        out.contains("v1: digest: ") && out.contains("v2: digest: "),
        "{out}"
    );
    // The config blob is not a layer: docker does not list it.
    assert!(!out.contains(&id[7..19]), "{out}");
    let all = Berth::new();
    let out = all.ok(&["pull", "--all-tags", &repo]);
    assert!(out.ends_with(&format!("\n{repo}\n")), "{out}");
    let mut tags: Vec<String> = all
        .ok(&["images", "--format", "{{.Tag}}"])
        .lines()
        .map(String::from)
        .collect();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
    let o = all.run(&["pull", "--all-tags", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("--all-tags"),
        "{}",
        text(&o.stderr)
    );

    let check = b.run(&["system", "check"]);
    assert!(check.status.success(), "{}", text(&check.stdout));
}

#[test]
fn login_checks_the_password_and_logout_forgets() {
    if !berth_testutil::require_root("login_checks_the_password_and_logout_forgets") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("alice:{}\n", bcrypt::hash("s3cret", 4).unwrap()),
    )
    .unwrap();
    let reg = start_registry(Some(&htpasswd));
    let host = reg.host();
    let b = Berth::with_image();
    let config_dir: PathBuf = tmp.path().join("docker");
    let config = config_dir.join("config.json");
    let name = format!("{host}/private/bb:1");
    b.ok(&["tag", "bb", &name]);

    // Anonymous push is refused, in one line naming the registry.
    let o = with_config(&b, &config_dir, &["push", &name], b"");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("unauthorized") && err.contains(&host), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A wrong password: one clear line, exit 1, nothing stored.
    let o = with_config(
        &b,
        &config_dir,
        &["login", "-u", "alice", "--password-stdin", &host],
        b"wrong\n",
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unauthorized") && err.contains(&host), "{err}");
    assert!(
        !err.contains("wrong"),
        "the password is never echoed: {err}"
    );
    assert!(!config.exists());

    // Not on a terminal and no --password-stdin: refused, never prompted.
    let o = with_config(
        &b,
        &config_dir,
        &["login", "-u", "alice", &host],
        b"s3cret\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("non TTY"), "{}", text(&o.stderr));
    let o = with_config(&b, &config_dir, &["login", "-p", "s3cret", &host], b"");
    assert_ne!(o.status.code(), Some(0));
    assert!(!text(&o.stderr).contains("s3cret"));

    let o = with_config(
        &b,
        &config_dir,
        &["login", "-u", "alice", "--password-stdin", &host],
        b"s3cret\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "Login Succeeded\n");
    assert!(!text(&o.stdout).contains("s3cret") && !text(&o.stderr).contains("s3cret"));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(written["auths"][&host]["auth"].is_string(), "{written}");

    let o = with_config(&b, &config_dir, &["push", "-q", &name], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = with_config(&b, &config_dir, &["rmi", &name], b"");
    assert!(o.status.success());
    let o = with_config(&b, &config_dir, &["pull", "-q", &name], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));

    let o = with_config(&b, &config_dir, &["logout", &host], b"");
    assert_eq!(
        text(&o.stdout),
        format!("Removing login credentials for {host}\n")
    );
    let o = with_config(&b, &config_dir, &["logout", &host], b"");
    assert_eq!(text(&o.stdout), format!("Not logged in to {host}\n"));
    let o = with_config(&b, &config_dir, &["pull", &name], b"");
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!(
            "{host}: unauthorized: pull access denied for {name}"
        )),
        "{err}"
    );
}

/// Runs a peer tool, failing the test with its stderr.
fn peer(mut c: std::process::Command) -> String {
    let out = c.output().expect("the peer is installed");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text(&out.stdout)
}

fn skopeo(args: &[&str]) -> String {
    let mut c = std::process::Command::new("skopeo");
    c.args(args);
    peer(c)
}

#[test]
fn berth_pulls_and_runs_what_skopeo_pushed() {
    if !berth_testutil::require_root("berth_pulls_and_runs_what_skopeo_pushed") {
        return;
    }
    let b = Berth::new();
    let archive = b.dir.path().join("bb.tar");
    berth_testutil::oci_archive(
        &archive,
        "docker.io/library/bbtest:latest",
        &["echo", "pushed by skopeo"],
    )
    .unwrap();
    // gzip (skopeo's default) and zstd layers, each in a registry of its
    // own: skopeo would reuse one compression's blobs for the other.
    for (format, args) in [
        ("gzip", &[][..]),
        (
            "zstd",
            &["--format", "oci", "--dest-compress-format", "zstd"][..],
        ),
    ] {
        let reg = start_registry(None);
        let name = format!("{}/interop/skopeo:{format}", reg.host());
        let mut copy = vec!["copy", "--dest-tls-verify=false"];
        copy.extend_from_slice(args);
        let src = format!("oci-archive:{}", archive.display());
        let dst = format!("docker://{name}");
        copy.extend([src.as_str(), dst.as_str()]);
        skopeo(&copy);
        let manifest = skopeo(&["inspect", "--raw", "--tls-verify=false", &dst]);
        assert!(manifest.contains(&format!("tar+{format}")), "{manifest}");

        let out = b.ok(&["pull", &name]);
        assert!(out.contains(": Pull complete\n"), "{out}");
        assert_eq!(b.ok(&["run", "--rm", &name]), "pushed by skopeo\n");
        b.ok(&["rmi", &name]);
    }
}

#[test]
fn skopeo_and_podman_pull_what_berth_pushed() {
    if !berth_testutil::require_root("skopeo_and_podman_pull_what_berth_pushed") {
        return;
    }
    let reg = start_registry(None);
    let b = Berth::with_image();
    let name = format!("{}/interop/berth:1", reg.host());
    b.ok(&["tag", "bb", &name]);
    b.ok(&["push", &name]);

    // skopeo fetches every blob into an OCI layout, checking each digest.
    let oci = b.dir.path().join("oci");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:copied", oci.display()),
    ]);
    assert!(oci.join("index.json").exists());

    // podman pulls it into its own store and runs it.
    let p = Podman::new();
    let mut pull = p.cmd();
    pull.args(["pull", "--tls-verify=false", &name]);
    peer(pull);
    let mut run = p.cmd();
    run.args([
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--network",
        "none",
        &name,
        "echo",
        "pulled by podman",
    ]);
    assert_eq!(peer(run), "pulled by podman\n");
    let mut rmi = p.cmd();
    rmi.args(["rmi", "-af"]);
    peer(rmi);
}

/// A failed berth command: exit 1 and one line on stderr holding every
/// one of `needles`.
fn fails_saying(b: &Berth, args: &[&str], needles: &[&str]) {
    let o = b.run(args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "berth {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "berth {args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "berth {args:?}: {n:?} not in {err}");
    }
}

#[test]
fn pull_errors_name_their_cause() {
    if !berth_testutil::require_root("pull_errors_name_their_cause") {
        return;
    }
    let b = Berth::with_image();
    // `.invalid` never resolves (RFC 6761).
    fails_saying(
        &b,
        &["pull", "registry.invalid/x/y:1"],
        &["registry.invalid", "unknown host"],
    );
    let port = berth_testutil::peers::free_port();
    let down = format!("127.0.0.1:{port}");
    fails_saying(
        &b,
        &["pull", &format!("{down}/x/y:1")],
        &[&down, "Connection refused"],
    );

    let reg = start_registry(None);
    let host = reg.host();
    let name = format!("{host}/test/app:v1");
    b.ok(&["tag", "bb", &name]);
    b.ok(&["push", "-q", &name]);
    let missing_repo = format!("{host}/test/nothing:v1");
    fails_saying(&b, &["pull", &missing_repo], &[&missing_repo, "not found"]);
    let missing_tag = format!("{host}/test/app:v2");
    fails_saying(
        &b,
        &["pull", &missing_tag],
        &[&missing_tag, "manifest unknown"],
    );
    // The image is for this host's platform: another is refused, naming
    // the one there is.
    let host_platform = berth_testutil::host_platform();
    let other = if host_platform == "linux/s390x" {
        "linux/ppc64le"
    } else {
        "linux/s390x"
    };
    fails_saying(
        &b,
        &["pull", "--platform", other, &name],
        &[
            &name,
            &format!("no manifest for platform {other}"),
            &format!("available: {host_platform}"),
        ],
    );
    b.ok(&["pull", "-q", "--platform", &host_platform, &name]);
}

/// An open registry holding the busybox image as `path` (repo:tag), and
/// its full name.
fn busybox_in_a_registry(path: &str) -> (Registry, String) {
    let reg = start_registry(None);
    let src = Berth::with_image();
    let name = format!("{}/{path}", reg.host());
    src.ok(&["tag", "bb", &name]);
    src.ok(&["push", "-q", &name]);
    (reg, name)
}

#[test]
fn a_pull_onto_a_full_disk_says_so_and_leaves_nothing() {
    if !berth_testutil::require_root("a_pull_onto_a_full_disk_says_so_and_leaves_nothing") {
        return;
    }
    let (_reg, name) = busybox_in_a_registry("test/big:1");

    // busybox alone is 2 MB unpacked: a 1 MB store cannot hold it.
    let b = Berth::new();
    std::fs::create_dir_all(&b.root).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&b.root)
        .status()
        .unwrap();
    assert!(mounted.success());
    fails_saying(&b, &["pull", &name], &["disk full"]);
    assert_eq!(b.ok(&["images", "-q"]), "");
    let blobs = b.root.join("content/blobs/sha256");
    assert_eq!(
        std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0),
        0,
        "blobs left in {}",
        blobs.display()
    );
}

#[test]
fn pull_on_a_terminal_draws_a_bar_per_layer_and_a_total() {
    if !berth_testutil::require_root("pull_on_a_terminal_draws_a_bar_per_layer_and_a_total") {
        return;
    }
    let (_reg, name) = busybox_in_a_registry("test/tty:1");

    let b = Berth::new();
    // script(1) gives berth a pseudo-terminal for stdout.
    let line = format!(
        "{} --root {} --runroot {} pull {name}",
        common::bin().display(),
        b.root.display(),
        b.runroot.display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("BERTH_CONFIG", &b.net.config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = text(&o.stdout);
    assert!(o.status.success(), "{screen}");
    for want in [
        "Pulling from test/tty",
        "Pull complete",
        "Total",
        "Status: Downloaded newer image",
    ] {
        assert!(
            screen.contains(want),
            "{want:?} not on the screen: {screen}"
        );
    }
    // Bars redraw in place; plain mode would print one line per state.
    assert!(screen.contains('\u{1b}'), "no terminal control: {screen}");
}
