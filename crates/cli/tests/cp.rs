//! `berth cp` through the CLI: both directions for files and directories
//! (docker's `/.` and existing-destination rules), tar streams with `-`,
//! a stopped container, and paths that try to leave the container: a
//! symlink to `/etc` or `../../..` as a destination and `..` in a path
//! all stay inside the container's root.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::Berth;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running busybox container named `ctr`.
fn running(b: &Berth) {
    b.ok(&["run", "-d", "--name", "ctr", "bb", "sleep", "300"]);
}

/// The host directory of the running container's root.
fn rootfs(b: &Berth) -> PathBuf {
    let id = b
        .ok(&["inspect", "-f", "{{.Id}}", "ctr"])
        .trim()
        .to_string();
    b.runroot.join("containers").join(id).join("rootfs")
}

fn sh(b: &Berth, script: &str) -> String {
    b.ok(&["exec", "ctr", "sh", "-c", script])
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

#[test]
fn cp_files_and_dirs_both_ways() {
    if !berth_testutil::require_root("cp_files_and_dirs_both_ways") {
        return;
    }
    let b = Berth::with_image();
    running(&b);
    let host = b.dir.path().join("host");
    write(&host.join("f.txt"), "hello\n");
    write(&host.join("d/a"), "a\n");
    write(&host.join("d/sub/b"), "b\n");
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();

    // host → container: a file to a new name, into a directory, a dir.
    b.ok(&["cp", &h("f.txt"), "ctr:/new.txt"]);
    b.ok(&["cp", &h("f.txt"), "ctr:/tmp"]);
    b.ok(&["cp", &h("d"), "ctr:/tmp"]);
    b.ok(&["cp", &h("d"), "ctr:/made"]);
    assert_eq!(
        sh(
            &b,
            "cat /new.txt /tmp/f.txt /tmp/d/a /tmp/d/sub/b /made/sub/b"
        ),
        "hello\nhello\na\nb\nb\n"
    );
    // Not -a: owned by the container's root.
    assert_eq!(sh(&b, "stat -c %u:%g /tmp/d/sub/b"), "0:0\n");

    // container → host: a file, a dir, a dir's contents with `/.`.
    sh(&b, "mkdir -p /data/x && echo one > /data/one && echo two > /data/x/two && ln -s one /data/link");
    let out = b.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = |p: &str| out.join(p).to_str().unwrap().to_string();
    b.ok(&["cp", "ctr:/data/one", &o("one-copy")]);
    b.ok(&["cp", "ctr:/data", &o("")]);
    b.ok(&["cp", "ctr:/data/.", &o("contents")]);
    std::fs::create_dir(out.join("existing")).unwrap();
    b.ok(&["cp", "ctr:/data/.", &o("existing")]);
    assert_eq!(
        std::fs::read_to_string(out.join("one-copy")).unwrap(),
        "one\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("data/x/two")).unwrap(),
        "two\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("contents/x/two")).unwrap(),
        "two\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("existing/one")).unwrap(),
        "one\n"
    );
    assert!(!out.join("existing/data").exists());
    // A symlink is copied as one; -L copies what it points to.
    assert_eq!(
        std::fs::read_link(out.join("data/link")).unwrap(),
        Path::new("one")
    );
    b.ok(&["cp", "-L", "ctr:/data/link", &o("followed")]);
    assert_eq!(
        std::fs::read_to_string(out.join("followed")).unwrap(),
        "one\n"
    );

    // A directory onto a file is refused.
    let r = b.run(&["cp", "ctr:/data", &o("one-copy")]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("cannot copy a directory to a file"),
        "{}",
        stderr(&r)
    );
}

#[test]
fn cp_tar_streams_with_dash() {
    if !berth_testutil::require_root("cp_tar_streams_with_dash") {
        return;
    }
    let b = Berth::with_image();
    running(&b);
    sh(&b, "mkdir -p /src/in && echo deep > /src/in/f");
    let o = b.run(&["cp", "ctr:/src", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names: Vec<String> = tar::Archive::new(&o.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["src", "src/in", "src/in/f"]);

    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o640);
    h.set_uid(1234);
    h.set_gid(5678);
    t.append_data(&mut h, "fromtar/x", &b"tar\n"[..]).unwrap();
    let data = t.into_inner().unwrap();
    for (flags, want) in [(vec![], "0:0"), (vec!["-a"], "1234:5678")] {
        let mut args = vec!["cp"];
        args.extend(flags);
        args.extend(["-", "ctr:/tmp"]);
        let mut child = b
            .cmd(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let r = child.wait_with_output().unwrap();
        assert!(r.status.success(), "{}", stderr(&r));
        assert_eq!(
            sh(&b, "cat /tmp/fromtar/x; stat -c '%u:%g %a' /tmp/fromtar/x"),
            format!("tar\n{want} 640\n")
        );
    }
}

#[test]
fn cp_stays_inside_the_container() {
    if !berth_testutil::require_root("cp_stays_inside_the_container") {
        return;
    }
    let b = Berth::with_image();
    running(&b);
    let root = rootfs(&b);
    let marker_name = format!("berth-cp-marker-{}", std::process::id());
    let marker = b.dir.path().join(&marker_name);
    write(&marker, "m\n");
    let m = marker.to_str().unwrap();

    // A symlink to /etc as the destination: the container's /etc.
    sh(
        &b,
        "ln -s /etc /etclink && mkdir -p /a/b && ln -s ../../.. /a/b/up && ln -s /etc/passwd /pw",
    );
    b.ok(&["cp", m, "ctr:/etclink"]);
    assert!(!Path::new("/etc").join(&marker_name).exists());
    assert_eq!(
        std::fs::read_to_string(root.join("etc").join(&marker_name)).unwrap(),
        "m\n"
    );
    // `../../..` from deep inside climbs no higher than the root.
    b.ok(&["cp", m, "ctr:/a/b/up"]);
    assert!(root.join(&marker_name).exists());
    // `..` in the path itself, either way.
    b.ok(&["cp", m, "ctr:/../../../../../../escaped"]);
    assert!(root.join("escaped").exists());
    for p in [root.parent().unwrap(), b.dir.path(), Path::new("/")] {
        assert!(!p.join("escaped").exists(), "{}", p.display());
    }
    let depth = "../".repeat(root.components().count());
    let sneaky = format!(
        "ctr:/{depth}{}",
        marker.strip_prefix("/").unwrap().display()
    );
    let r = b.run(&["cp", &sneaky, b.dir.path().join("got").to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(!b.dir.path().join("got").exists());
    // An absolute symlink as the source is the container's file.
    let pw = b.dir.path().join("pw");
    b.ok(&["cp", "-L", "ctr:/pw", pw.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&pw).unwrap(),
        std::fs::read_to_string(root.join("etc/passwd")).unwrap()
    );
}

#[test]
fn cp_stopped_container_and_missing_paths() {
    if !berth_testutil::require_root("cp_stopped_container_and_missing_paths") {
        return;
    }
    let b = Berth::with_image();
    b.ok(&["run", "--name", "st", "bb", "sh", "-c", "echo kept > /kept"]);
    let host = b.dir.path().join("in.txt");
    write(&host, "in\n");
    b.ok(&["cp", host.to_str().unwrap(), "st:/etc/in.txt"]);
    let out = b.dir.path().join("kept");
    b.ok(&["cp", "st:/kept", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept\n");
    // Nothing stays mounted.
    assert!(
        b.mounts().iter().all(|m| !m.contains("/cp/")),
        "{:?}",
        b.mounts()
    );
    assert_eq!(b.ok(&["start", "-a", "st"]), "");
    assert_eq!(b.ok(&["run", "--rm", "bb", "true"]), "");
    let r = b.run(&["cp", "st:/etc/in.txt", "-"]);
    assert!(r.status.success(), "{}", stderr(&r));

    let r = b.run(&["cp", "st:/nope/missing", out.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    let err = stderr(&r);
    assert!(
        err.contains("/nope/missing") && err.contains("Could not find"),
        "{err}"
    );
    let r = b.run(&["cp", "/no/such/host/file", "st:/tmp"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("/no/such/host/file"), "{}", stderr(&r));
    let r = b.run(&["cp", "nosuch:/x", out.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("nosuch"), "{}", stderr(&r));
}
