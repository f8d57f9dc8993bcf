//! Bad input, refused: malformed image references, unknown images and
//! containers, name conflicts, bad port and mount flags, a malformed
//! config.json for `berth-runtime`, Dockerfiles with syntax errors, a
//! registry answering garbage or lying about a digest. Each
//! gets one line on stderr naming what is wrong, docker's exit code, and
//! leaves `ps -a`, `images`, `network ls`, `volume ls` and `system check`
//! as they were. (Bad resource values are in resources.rs, corrupt
//! archives in images.rs.)

mod common;

use std::path::Path;
use std::process::Command;

use common::{stderr, Berth};

/// What a refused command must leave as it was.
fn state(b: &Berth) -> Vec<String> {
    [
        &[
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Names}} {{.Status}}",
        ][..],
        &[
            "images",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ],
        &["network", "ls", "--no-trunc"],
        &["volume", "ls"],
        &["system", "check"],
    ]
    .iter()
    .map(|args| b.ok(args))
    .collect()
}

/// Runs `args`, expecting exit code `code`, exactly one line on stderr
/// that contains `needle`, and no change to [`state`].
fn refused(b: &Berth, args: &[&str], code: i32, needle: &str) {
    let before = state(b);
    let o = b.run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "berth {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "berth {args:?}: one line: {err:?}");
    assert!(
        err.contains(needle),
        "berth {args:?}: {err:?} lacks {needle:?}"
    );
    assert_eq!(state(b), before, "berth {args:?} changed the state");
}

#[test]
fn malformed_image_references_are_refused_naming_them() {
    if !berth_testutil::require_root("malformed_image_references_are_refused_naming_them") {
        return;
    }
    let b = Berth::with_image();
    let long = "x".repeat(300);
    for r in [
        "UPPER",
        "bb:",
        ":tag",
        "a..b",
        "_lead",
        "bb@sha256:abc",
        "bb:t@g",
        "host:99x/img",
        &long,
    ] {
        let needle = format!("{r:?}");
        refused(&b, &["run", "--rm", r, "true"], 125, &needle);
        refused(&b, &["create", r], 125, &needle);
        refused(&b, &["pull", r], 1, &needle);
        refused(&b, &["tag", "bb", r], 1, &needle);
        refused(&b, &["rmi", r], 1, r);
        refused(&b, &["history", r], 1, r);
    }
}

#[test]
fn unknown_images_and_containers_are_named() {
    if !berth_testutil::require_root("unknown_images_and_containers_are_named") {
        return;
    }
    let b = Berth::with_image();
    refused(
        &b,
        &["run", "--rm", "--pull", "never", "nosuch"],
        125,
        "nosuch",
    );
    refused(&b, &["create", "--pull", "never", "nosuch"], 125, "nosuch");
    // Not here and cannot be pulled (nothing listens on port 1 of
    // loopback): docker's "Unable to find image" lines come first, the
    // error naming the registry last.
    let before = state(&b);
    let o = b.run(&["run", "--rm", "127.0.0.1:1/nosuch", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("berth: 127.0.0.1:1"), "{err}");
    assert_eq!(state(&b), before);
    for args in [
        &["rmi", "nosuch"][..],
        &["history", "nosuch"],
        &["tag", "nosuch", "other"],
        &["save", "-o", "/dev/null", "nosuch"],
        &["image", "inspect", "nosuch"],
    ] {
        refused(&b, args, 1, "nosuch");
    }
    for args in [
        &["start", "ghost"][..],
        &["stop", "ghost"],
        &["restart", "ghost"],
        &["kill", "ghost"],
        &["rm", "ghost"],
        &["rm", "-f", "ghost"],
        &["logs", "ghost"],
        &["exec", "ghost", "true"],
        &["inspect", "ghost"],
        &["wait", "ghost"],
        &["rename", "ghost", "spirit"],
        &["pause", "ghost"],
        &["top", "ghost"],
        &["port", "ghost"],
        &["diff", "ghost"],
        &["commit", "ghost", "img"],
        &["export", "-o", "/dev/null", "ghost"],
        &["cp", "ghost:/etc/hostname", "/tmp/x"],
    ] {
        refused(&b, args, 1, "ghost");
    }
    refused(&b, &["network", "rm", "nonet"], 1, "nonet");
    refused(&b, &["volume", "rm", "novol"], 1, "novol");
    refused(
        &b,
        &["run", "--rm", "--network", "nonet", "bb", "true"],
        125,
        "nonet",
    );
}

#[test]
fn name_conflicts_are_refused_naming_the_name() {
    if !berth_testutil::require_root("name_conflicts_are_refused_naming_the_name") {
        return;
    }
    let b = Berth::with_image();
    b.ok(&["create", "--name", "taken", "bb", "true"]);
    b.ok(&["create", "--name", "other", "bb", "true"]);
    b.ok(&["network", "create", "netx"]);
    refused(
        &b,
        &["create", "--name", "taken", "bb", "true"],
        125,
        "taken",
    );
    refused(&b, &["run", "--name", "taken", "bb", "true"], 125, "taken");
    refused(&b, &["rename", "other", "taken"], 1, "taken");
    refused(&b, &["network", "create", "netx"], 1, "netx");
    // A bad name is not a conflict but is refused the same way.
    refused(&b, &["create", "--name", "bad/name", "bb"], 125, "bad/name");
}

#[test]
fn bad_port_mount_and_resource_flags_name_the_flag() {
    if !berth_testutil::require_root("bad_port_mount_and_resource_flags_name_the_flag") {
        return;
    }
    let b = Berth::with_image();
    for (flags, needle) in [
        (&["-p", "99999:80"][..], "99999"),
        (&["-p", "abc"][..], "abc"),
        (&["-p", "80:80/sctpx"][..], "sctpx"),
        (&["-p", "1.2.3:80:80"][..], "1.2.3"),
        (&["-p", "8080-8070:80"][..], "8080-8070"),
        (&["-v", "/tmp:rel"][..], "rel"),
        (&["-v", "bad/vol:/x"][..], "bad/vol"),
        (&["-v", "/tmp:/x:bogus"][..], "bogus"),
        (&["-v", ""][..], "-v"),
        (&["--mount", "type=bogus,target=/x"][..], "bogus"),
        (&["--mount", "type=bind,source=/tmp"][..], "--mount"),
        (
            &["--mount", "type=bind,source=/nonexistent-src,target=/x"][..],
            "/nonexistent-src",
        ),
        (
            &["--mount", "type=tmpfs,target=/x,tmpfs-size=lots"][..],
            "lots",
        ),
        (&["--mount", "nokey"][..], "nokey"),
        (&["-m", "12x"][..], "--memory"),
        (&["-m", "-5m"][..], "--memory"),
        (&["--cpus", "-1"][..], "--cpus"),
        (&["--cpuset-cpus", "3-1"][..], "--cpuset-cpus"),
        (&["--cpuset-mems", "x"][..], "--cpuset-mems"),
        (&["--pids-limit", "lots"][..], "--pids-limit"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb", "true"]);
        refused(&b, &args, 125, needle);
    }
}

/// A bundle under `dir` with a busybox rootfs and `config` as its
/// config.json.
fn bundle(dir: &Path, config: &str) {
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
}

#[test]
fn malformed_runtime_config_is_refused_naming_the_field() {
    if !berth_testutil::require_root("malformed_runtime_config_is_refused_naming_the_field") {
        return;
    }
    let runtime = common::bin().with_file_name("berth-runtime");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let good = dir.path().join("good");
    std::fs::create_dir_all(&good).unwrap();
    let o = Command::new(&runtime)
        .args(["spec", "--bundle"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(good.join("config.json")).unwrap()).unwrap();
    // Without a console socket a terminal is refused first.
    spec["process"]["terminal"] = false.into();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut s = spec.clone();
        f(&mut s);
        s.to_string()
    };
    let full = spec.to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        ("not-json", "this is not json".into(), "config.json"),
        ("truncated", full[..full.len() / 2].into(), "config.json"),
        ("empty", String::new(), "config.json"),
        (
            "wrong-type",
            with(&|s| s["process"]["args"] = "sh".into()),
            "config.json",
        ),
        (
            "version",
            with(&|s| s["ociVersion"] = "2.0.0".into()),
            "2.0.0",
        ),
        (
            "cwd",
            with(&|s| s["process"]["cwd"] = "rel".into()),
            "process.cwd",
        ),
        (
            "args",
            with(&|s| s["process"]["args"] = serde_json::json!([])),
            "process.args",
        ),
        (
            "no-root",
            with(&|s| {
                s.as_object_mut()
                    .unwrap()
                    .remove("root")
                    .map(drop)
                    .unwrap_or(())
            }),
            "root",
        ),
        (
            "namespace-twice",
            with(&|s| {
                s["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "pid"}])
            }),
            "pid",
        ),
        (
            "namespace-unknown",
            with(&|s| s["linux"]["namespaces"] = serde_json::json!([{"type": "bogus"}])),
            "bogus",
        ),
        (
            "cgroups-escape",
            with(&|s| s["linux"]["cgroupsPath"] = "../../../escape".into()),
            "cgroupsPath",
        ),
        (
            "seccomp-action",
            with(&|s| {
                s["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_BOGUS"})
            }),
            "SCMP_ACT_BOGUS",
        ),
        (
            "mount-option",
            with(&|s| {
                s["mounts"] = serde_json::json!([{"destination": "/x", "type": "tmpfs",
                    "source": "tmpfs", "options": ["tmpcopyup"]}])
            }),
            "tmpcopyup",
        ),
        (
            "capability",
            with(&|s| s["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_BOGUS"])),
            "CAP_BOGUS",
        ),
    ];
    for (name, config, needle) in cases {
        let b = dir.path().join(name);
        bundle(&b, &config);
        let o = Command::new(&runtime)
            .arg("--root")
            .arg(&root)
            .args(["create", "--bundle"])
            .arg(&b)
            .arg(name)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(!o.status.success(), "{name}: created");
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err:?}");
        assert!(err.contains(needle), "{name}: {err:?} lacks {needle:?}");
        let list = Command::new(&runtime)
            .arg("--root")
            .arg(&root)
            .args(["list", "-q"])
            .output()
            .unwrap();
        assert!(list.status.success(), "{name}: {}", stderr(&list));
        assert_eq!(
            String::from_utf8_lossy(&list.stdout).trim(),
            "",
            "{name}: left a container"
        );
        assert!(
            common::cgroup_dirs(name).is_empty(),
            "{name}: left a cgroup"
        );
    }
}

#[test]
fn dockerfile_syntax_errors_name_the_line() {
    if !berth_testutil::require_root("dockerfile_syntax_errors_name_the_line") {
        return;
    }
    let b = Berth::with_image();
    for (i, (df, needle)) in [
        ("FROM\n", "Dockerfile:1"),
        ("RUN true\n", "Dockerfile:1"),
        ("FROM bb AS\n", "Dockerfile:1"),
        ("FROM bb\nRUNN x\n", "Dockerfile:2"),
        ("FROM bb\nRUN <<EOF\necho unterminated\n", "Dockerfile:2"),
        ("FROM bb\nCOPY --bogus=1 a /\n", "Dockerfile:2"),
        ("FROM bb\nENV\n", "Dockerfile:2"),
        (
            "FROM bb\nHEALTHCHECK --interval=soon CMD true\n",
            "Dockerfile:2",
        ),
        ("FROM bb\nEXPOSE eighty\n", "Dockerfile:2"),
        ("FROM bb\nCMD [\"unterminated\"\nUSER\n", "Dockerfile:3"),
        (
            "# syntax=docker/dockerfile:1\n# escape=x\nFROM bb\n",
            "escape",
        ),
        ("FROM bb\nONBUILD FROM bb\n", "Dockerfile:2"),
    ]
    .iter()
    .enumerate()
    {
        let ctx = b.dir.path().join(format!("ctx{i}"));
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), df).unwrap();
        std::fs::write(ctx.join("a"), "a").unwrap();
        refused(
            &b,
            &["build", "-q", "-t", "out", ctx.to_str().unwrap()],
            1,
            needle,
        );
    }
}

/// A registry on loopback that answers each request with what `answer`
/// makes of its path (the whole response, status line included), one
/// request per connection. Its address.
fn fake_registry(answer: fn(&str) -> Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s);
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let path = first.split(' ').nth(1).unwrap_or("").to_string();
            let _ = r.get_mut().write_all(&answer(&path));
        }
    });
    addr
}

fn http(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

#[test]
fn a_registry_answering_garbage_or_lying_about_a_digest_is_named() {
    if !berth_testutil::require_root(
        "a_registry_answering_garbage_or_lying_about_a_digest_is_named",
    ) {
        return;
    }
    let b = Berth::with_image();
    // Not HTTP at all.
    let junk = fake_registry(|_| b"\x00\x01 this is no registry \xff\r\n\r\n".to_vec());
    refused(&b, &["pull", &format!("{junk}/app:1")], 1, &junk);
    // HTTP, but the manifest is not JSON.
    let garbled = fake_registry(|path| match path {
        "/v2/" => http("200 OK", "", b"{}"),
        _ => http(
            "200 OK",
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
            b"<html>surprise</html>",
        ),
    });
    refused(
        &b,
        &["pull", &format!("{garbled}/app:1")],
        1,
        "invalid manifest",
    );
    // A manifest asked for by digest whose bytes have another digest.
    let liar = fake_registry(|path| {
        match path {
        "/v2/" => http("200 OK", "", b"{}"),
        _ => http(
            "200 OK",
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#,
        ),
    }
    });
    let asked = format!("sha256:{}", "ab".repeat(32));
    let o = b.run(&["pull", &format!("{liar}/app@{asked}")]);
    let err = stderr(&o);
    assert!(err.contains(&asked) && err.contains("hashes to"), "{err}");
    refused(
        &b,
        &["pull", &format!("{liar}/app@{asked}")],
        1,
        "hashes to",
    );
}
