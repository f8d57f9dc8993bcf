//! Volumes and mounts: binds (ro, propagation), named volumes filled from
//! the image on first use and kept across containers, anonymous volumes
//! removed by `rm -v` and `--rm`, `--mount`, `--volumes-from`, and the
//! `volume` commands.

mod common;

use common::Berth;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn binds_named_and_anonymous_volumes() {
    if !berth_testutil::require_root("binds_named_and_anonymous_volumes") {
        return;
    }
    let b = Berth::with_image();
    let host = b.dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "from-host\n").unwrap();
    let bind = format!("{}:/h:ro", host.display());
    let mnt = format!("type=bind,source={},target=/m", host.display());
    // /etc has content in the image: a new named volume there starts with it.
    let out = b.ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "--mount",
        &mnt,
        "-v",
        "conf:/etc",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "bb",
        "sh",
        "-c",
        "cat /h/f; touch /h/x 2>/dev/null || echo h-ro; echo w > /m/w && echo m-rw; \
         grep -c root /etc/passwd; echo kept > /etc/mine; df -k /t | tail -1 | awk '{print $2}'",
    ]);
    assert_eq!(out, "from-host\nh-ro\nm-rw\n1\n1024\n");
    assert_eq!(std::fs::read_to_string(host.join("w")).unwrap(), "w\n");
    let data = b.root.join("volumes/conf/_data");
    assert_eq!(
        std::fs::read_to_string(data.join("mine")).unwrap(),
        "kept\n"
    );
    // A named volume outlives its container and is seen by the next one.
    let out = b.ok(&["run", "--rm", "-v", "conf:/c:ro", "bb", "cat", "/c/mine"]);
    assert_eq!(out, "kept\n");
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "conf\n");

    // Anonymous volumes: kept by rm, removed by rm -v; --volumes-from shares them.
    let id = b
        .ok(&[
            "create",
            "-v",
            "/anon",
            "bb",
            "sh",
            "-c",
            "echo x > /anon/f",
        ])
        .trim()
        .to_string();
    let anon = b.ok(&["volume", "ls", "-q"]);
    let anon: Vec<&str> = anon.lines().filter(|n| *n != "conf").collect();
    assert_eq!(anon.len(), 1, "{anon:?}");
    b.ok(&["start", &id]);
    assert_eq!(b.ok(&["wait", &id]).trim(), "0");
    let out = b.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        &format!("{id}:ro"),
        "bb",
        "sh",
        "-c",
        "cat /anon/f; touch /anon/g 2>/dev/null || echo ro",
    ]);
    assert_eq!(out, "x\nro\n");
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", &id])).unwrap();
    assert_eq!(v[0]["Mounts"][0]["Name"], anon[0]);
    assert_eq!(v[0]["Mounts"][0]["Destination"], "/anon");
    // In use: refused.
    let o = b.run(&["volume", "rm", anon[0]]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    b.ok(&["rm", "-v", &id]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "conf\n");
    // --rm removes anonymous volumes, not named ones.
    b.ok(&["run", "--rm", "-v", "/x", "-v", "conf:/c", "bb", "true"]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "conf\n");
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
}

#[test]
fn volume_commands_and_bad_paths() {
    if !berth_testutil::require_root("volume_commands_and_bad_paths") {
        return;
    }
    let b = Berth::with_image();
    assert_eq!(b.ok(&["volume", "create", "-l", "a=b", "v1"]), "v1\n");
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["volume", "inspect", "v1"])).unwrap();
    assert_eq!(v[0]["Name"], "v1");
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Labels"]["a"], "b");
    assert_eq!(
        b.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{index .Labels \"a\"}}",
            "v1"
        ]),
        "v1 b\n"
    );
    assert!(v[0]["Mountpoint"]
        .as_str()
        .unwrap()
        .ends_with("/volumes/v1/_data"));
    let anon = b.ok(&["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64);
    let ls = b.ok(&["volume", "ls"]);
    assert!(ls.starts_with("DRIVER    VOLUME NAME\n"), "{ls}");
    // docker's columns: DRIVER padded to its header and three spaces.
    assert!(ls.contains("\nlocal     v1\n"), "{ls}");
    // ls --filter and --format, as docker's.
    let ls = |args: &[&str]| {
        let mut v = vec!["volume", "ls", "--format", "{{.Name}} {{.Labels}}"];
        v.extend_from_slice(args);
        b.ok(&v)
    };
    assert_eq!(ls(&["-f", "label=a=b"]), "v1 a=b\n");
    assert_eq!(ls(&["-f", "name=v", "-f", "driver=local"]), "v1 a=b\n");
    assert_eq!(ls(&["-f", "dangling=false"]), "");
    assert_eq!(ls(&["-f", "dangling=true", "-f", "label=a"]), "v1 a=b\n");
    b.fails(
        &["volume", "ls", "-f", "colour=red"],
        1,
        "invalid filter 'colour'",
    );
    b.fails(
        &["volume", "ls", "-f", "dangling=maybe"],
        1,
        "dangling=maybe",
    );
    // prune: only anonymous ones (none: `volume create` makes named ones);
    // with -a every unused one.
    let out = b.ok(&["volume", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    let out = b.ok(&["volume", "prune", "-af"]);
    assert!(out.contains("v1") && out.contains(&anon), "{out}");
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    let o = b.run(&["volume", "inspect", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no such volume: nosuch"),
        "{}",
        stderr(&o)
    );
    for (flag, v) in [
        ("-v", "/tmp/../etc:/x"),
        ("-v", "/tmp:/x/../y"),
        ("-v", "/tmp:rel"),
        ("-v", "/tmp:/x:bogus"),
        ("-v", "bad name:/x"),
        ("--mount", "type=bind,source=/tmp,target=/a/../b"),
        ("--mount", "type=bind,source=/nonexistent-dir,target=/x"),
        ("--mount", "type=nfs,target=/x"),
    ] {
        let o = b.run(&["run", "--rm", flag, v, "bb", "true"]);
        assert_eq!(o.status.code(), Some(125), "{v}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
}
