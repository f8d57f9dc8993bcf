//! The image commands through the CLI: listing with filters and formats,
//! inspect, history, tag, rmi and prune (refusing images in use), system
//! df and check, save/load in both formats (and a corrupt archive that
//! leaves the store as it was), import with changes, and a container's
//! filesystem through diff, commit and export.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::Berth;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failure with exit code `code` and one line on stderr
/// containing `needle`.
fn fails(o: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

#[test]
fn images_list_filter_format_inspect_history_tag() {
    if !berth_testutil::require_root("images_list_filter_format_inspect_history_tag") {
        return;
    }
    let b = Berth::with_image();
    let id = b.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    b.ok(&["tag", "bb", "bb:two"]);
    b.ok(&["image", "tag", "bb", "example.com/org/app:1.0"]);

    let ls = b.ok(&["images"]);
    // docker's columns: each as wide as its widest cell plus 3, at least 10.
    let head = ls.lines().next().unwrap();
    assert!(head.starts_with("REPOSITORY            "), "{ls}");
    let row = ls.lines().find(|l| l.starts_with("bb ")).unwrap();
    for (h, cell) in [("TAG", "latest"), ("IMAGE ID", &id[7..19]), ("SIZE", "")] {
        if !cell.is_empty() {
            assert_eq!(head.find(h), row.find(cell), "{h} aligned: {ls}");
        }
    }
    assert!(head.contains("TAG       IMAGE ID       CREATED"), "{ls}");
    assert_eq!(ls.lines().count(), 4, "{ls}");
    assert!(ls.contains("example.com/org/app   1.0"), "{ls}");
    // -q lists the image once however many tags it has.
    assert_eq!(b.ok(&["images", "-q"]).trim(), &id[7..19]);
    assert_eq!(b.ok(&["image", "ls", "-q"]).trim(), &id[7..19]);

    let f = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let mut got: Vec<&str> = f.lines().collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            format!("bb:latest {}", &id[7..19]),
            format!("bb:two {}", &id[7..19]),
            format!("example.com/org/app:1.0 {}", &id[7..19]),
        ]
    );
    let t = b.ok(&[
        "images",
        "--format",
        "table {{.Repository}}\t{{.Tag}}",
        "bb",
    ]);
    assert_eq!(
        t,
        "REPOSITORY   TAG\nbb           latest\nbb           two\n"
    );
    let j = b.ok(&[
        "images",
        "--format",
        "json",
        "--filter",
        "reference=*/org/*",
    ]);
    let v: serde_json::Value = serde_json::from_str(j.trim()).unwrap();
    assert_eq!(v["Repository"], "example.com/org/app");
    assert_eq!(v["Tag"], "1.0");
    assert!(b.ok(&["images", "--digests"]).contains("DIGEST"));
    assert_eq!(b.ok(&["images", "-q", "--filter", "dangling=true"]), "");
    assert_eq!(b.ok(&["images", "-q", "--filter", "label=nope"]), "");
    let o = b.run(&["images", "--filter", "bogus=1"]);
    fails(&o, 1, "invalid filter");
    let o = b.run(&["images", "--filter", "dangling"]);
    fails(&o, 1, "bad format of filter \"dangling\"");

    // A label given at import is found by the label filter.
    let tar = b.dir.path().join("rootfs.tar");
    b.ok(&[
        "import",
        "-c",
        "LABEL tier=web",
        "-c",
        "CMD [\"sh\"]",
        "-m",
        "hello",
        tar.to_str().unwrap(),
        "labelled",
    ]);
    assert_eq!(
        b.ok(&[
            "images",
            "--filter",
            "label=tier=web",
            "--format",
            "{{.Repository}}"
        ]),
        "labelled\n"
    );
    assert_eq!(b.ok(&["images", "-q", "--filter", "label=tier=db"]), "");
    // before and since: by the named image's creation time (labelled
    // was made after bb); until: a time before now.
    let repos = |f: &str| b.ok(&["images", "--filter", f, "--format", "{{.Repository}}"]);
    assert_eq!(repos("since=bb"), "labelled\n");
    assert!(!repos("before=labelled").contains("labelled"));
    assert!(repos("before=labelled").contains("bb"));
    assert_eq!(repos("until=2000-01-01T00:00:00Z"), "");
    let o = b.run(&["images", "--filter", "since=nosuch"]);
    fails(&o, 1, "nosuch");

    // inspect: docker's shape.
    let out = b.ok(&["image", "inspect", "labelled"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let i = &v[0];
    assert!(i["Id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(i["RepoTags"], serde_json::json!(["labelled:latest"]));
    assert!(i["RepoDigests"].is_array());
    assert_eq!(i["Config"]["Labels"]["tier"], "web");
    assert_eq!(i["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(i["Comment"], "hello");
    assert_eq!(i["Os"], "linux");
    assert!(i["Architecture"].is_string() && i["Created"].is_string());
    assert_eq!(i["RootFS"]["Type"], "layers");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(i["Size"].as_u64().unwrap() > 0);
    assert!(out.trim_start().starts_with("[\n  {\n    \"Id\""), "{out}");
    assert_eq!(
        b.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}} {{json .RepoTags}}",
            "labelled"
        ]),
        "linux [\"labelled:latest\"]\n"
    );
    let o = b.run(&["image", "inspect", "nope"]);
    fails(&o, 1, "no such image: nope");

    let h = b.ok(&["history", "labelled"]);
    let mut lines = h.lines();
    let head = lines.next().unwrap();
    assert!(head.starts_with("IMAGE          CREATED"), "{h}");
    assert!(
        head.contains("CREATED BY") && head.ends_with("COMMENT"),
        "{h}"
    );
    let row = lines.next().unwrap();
    assert!(row.ends_with("hello"), "{h}");
    assert_eq!(
        b.ok(&["history", "-q", "labelled"]).lines().count(),
        1,
        "{h}"
    );

    let o = b.run(&["tag", "nope", "x"]);
    fails(&o, 1, "no such image: nope");
    let o = b.run(&["tag", "bb", "Bad:Ref"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn ambiguous_short_ids_are_refused() {
    if !berth_testutil::require_root("ambiguous_short_ids_are_refused") {
        return;
    }
    let b = Berth::with_image();
    let tar = b.dir.path().join("rootfs.tar");
    // 17 images have at least two ids sharing a first hex digit.
    for n in 0..16 {
        b.ok(&[
            "import",
            "-c",
            &format!("LABEL n={n}"),
            tar.to_str().unwrap(),
            &format!("img{n}"),
        ]);
    }
    let ids = b.ok(&["images", "-q"]);
    let before = store_state(&b);
    let mut firsts: Vec<char> = ids.lines().map(|l| l.chars().next().unwrap()).collect();
    firsts.sort();
    let dup = firsts.windows(2).find(|w| w[0] == w[1]).unwrap()[0];
    let o = b.run(&["image", "inspect", &dup.to_string()]);
    fails(&o, 1, "matches more than one image");
    let o = b.run(&["rmi", &dup.to_string()]);
    fails(&o, 1, "matches more than one image");
    let o = b.run(&["tag", &dup.to_string(), "other"]);
    fails(&o, 1, "matches more than one image");
    assert_eq!(store_state(&b), before, "the store is unchanged");
}

#[test]
fn rmi_and_prune_respect_containers() {
    if !berth_testutil::require_root("rmi_and_prune_respect_containers") {
        return;
    }
    let b = Berth::with_image();
    b.ok(&["tag", "bb", "bb:two"]);
    // Removing one of two tags only untags.
    assert_eq!(b.ok(&["rmi", "bb:two"]), "Untagged: bb:two\n");
    b.ok(&["create", "--name", "user", "bb", "true"]);
    // Not the CREATED column: on a loaded machine "Less than a second ago"
    // turns into "1 second ago" between two listings.
    let images = || {
        b.ok(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}",
        ])
    };
    let before = images();

    let o = b.run(&["rmi", "bb"]);
    fails(&o, 1, "being used by a container");
    assert_eq!(images(), before, "the store is unchanged");
    let o = b.run(&["rmi", "nope"]);
    fails(&o, 1, "no such image: nope");

    // prune -a keeps what a container uses.
    let out = b.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert_eq!(images(), before);

    // Without -f, prune asks; "n" (or no answer) keeps everything.
    let mut c = b.cmd(&["image", "prune"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Are you sure you want to continue? [y/N]"));

    let id = b.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    let out = b.ok(&["rmi", "-f", "bb"]);
    assert_eq!(out, format!("Untagged: bb:latest\nDeleted: {id}\n"));
    assert_eq!(b.ok(&["images", "-q"]), "");
    // The container's own layers survive: it still starts.
    b.ok(&["start", "user"]);
    assert_eq!(b.ok(&["wait", "user"]).trim(), "0");
    let check = b.run(&["system", "check"]);
    assert!(check.status.success(), "{}", stderr(&check));

    // A dangling image goes with a plain prune.
    let tar = b.dir.path().join("rootfs.tar");
    let dangling = b.ok(&["import", tar.to_str().unwrap()]).trim().to_string();
    assert_eq!(
        b.ok(&["images", "-q", "--no-trunc", "--filter", "dangling=true"])
            .trim(),
        dangling
    );
    let out = b.ok(&["image", "prune", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\ndeleted: {dangling}\n\nTotal reclaimed space: "
        )),
        "{out}"
    );
}

#[test]
fn image_prune_filters_choose_by_label_and_age() {
    if !berth_testutil::require_root("image_prune_filters_choose_by_label_and_age") {
        return;
    }
    let b = Berth::with_image();
    let tar = b.dir.path().join("rootfs.tar");
    for (name, change) in [
        ("keep:1", Some("LABEL tier=keep")),
        ("drop:1", Some("LABEL tier=drop")),
        ("plain:1", None),
    ] {
        let mut args = vec!["import"];
        if let Some(c) = change {
            args.extend(["-c", c]);
        }
        args.extend([tar.to_str().unwrap(), name]);
        b.ok(&args);
    }
    let images = || {
        let mut v: Vec<String> = b
            .ok(&["images", "--format", "{{.Repository}}"])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v.join(" ")
    };
    assert_eq!(images(), "bb drop keep plain");
    let prune = |filters: &[&str]| {
        let mut args = vec!["image", "prune", "-a", "-f"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        b.ok(&args)
    };
    let out = prune(&["label=tier=drop"]);
    assert!(
        out.starts_with("Deleted Images:\nuntagged: drop:1\n"),
        "{out}"
    );
    assert_eq!(images(), "bb keep plain");
    // Made just now: none was made an hour ago.
    assert_eq!(prune(&["until=1h"]), "Total reclaimed space: 0B\n");
    assert_eq!(images(), "bb keep plain");
    prune(&["label!=tier"]);
    assert_eq!(images(), "keep");
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    prune(&["label=tier", &format!("until={soon}")]);
    assert_eq!(images(), "");

    for (filter, why) in [
        ("colour=red", "invalid filter \"colour\" for image prune"),
        ("until=someday", "image prune filter until=\"someday\""),
    ] {
        let o = b.run(&["image", "prune", "-f", "--filter", filter]);
        fails(&o, 1, why);
    }
}

#[test]
fn system_df_and_check() {
    if !berth_testutil::require_root("system_df_and_check") {
        return;
    }
    let b = Berth::with_image();
    b.ok(&["create", "bb", "true"]);
    // Two volumes: one a container uses (8 KiB in it), one nobody does.
    b.ok(&["volume", "create", "idle"]);
    b.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "used:/data",
        "bb",
        "dd",
        "if=/dev/zero",
        "of=/data/f",
        "bs=1024",
        "count=8",
    ]);
    let df = b.ok(&["system", "df"]);
    let lines: Vec<&str> = df.lines().collect();
    assert!(
        lines[0].starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"),
        "{df}"
    );
    assert!(lines[1].starts_with("Images          1         1"), "{df}");
    assert!(lines[2].starts_with("Containers      2         0"), "{df}");
    let vols: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(vols[..5], ["Local", "Volumes", "2", "1", "8.19kB"], "{df}");
    assert_eq!(vols[5..], ["0B", "(0%)"], "{df}");
    let v = b.ok(&["system", "df", "-v"]);
    assert!(v.starts_with("Images space usage:\n\nREPOSITORY"), "{v}");
    assert!(v.contains("SHARED SIZE   UNIQUE SIZE   CONTAINERS"), "{v}");
    assert!(v.contains("Containers space usage:"), "{v}");
    let writer = v
        .lines()
        .find(|l| l.ends_with("writer"))
        .expect("writer's row");
    let cols: Vec<&str> = writer.split("  ").filter(|c| !c.is_empty()).collect();
    assert_eq!(cols[3].trim(), "1", "LOCAL VOLUMES of writer: {v}");
    let vol_rows: Vec<Vec<&str>> = v
        .split("Local Volumes space usage:")
        .nth(1)
        .unwrap()
        .split("Build cache usage")
        .next()
        .unwrap()
        .lines()
        .skip(3)
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        vol_rows,
        [vec!["idle", "0", "0B"], vec!["used", "1", "8.19kB"]],
        "{v}"
    );
    let o = b.run(&["system", "check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");

    // A blob whose bytes no longer match its name is a problem: exit 1.
    let blobs = b.root.join("content/blobs/sha256");
    let blob = std::fs::read_dir(&blobs)
        .unwrap_or_else(|e| panic!("{}: {e}", blobs.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).unwrap().len() > 1000)
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let o = b.run(&["system", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("holds content with digest"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn save_and_load_round_trip_and_corrupt_archives() {
    if !berth_testutil::require_root("save_and_load_round_trip_and_corrupt_archives") {
        return;
    }
    let b = Berth::with_image();
    let tar = b.dir.path().join("rootfs.tar");
    b.ok(&[
        "import",
        "-c",
        "CMD [\"echo\", \"two\"]",
        tar.to_str().unwrap(),
        "second:v2",
    ]);
    let archive = b.dir.path().join("out.tar");
    assert_eq!(
        b.ok(&["save", "-o", archive.to_str().unwrap(), "bb", "second:v2"]),
        ""
    );
    let o = b.run(&[
        "save",
        "-o",
        b.dir.path().join("x.tar").to_str().unwrap(),
        "nope",
    ]);
    fails(&o, 1, "no such image: nope");
    assert!(
        !b.dir.path().join("x.tar").exists(),
        "no file for a failed save"
    );

    // A fresh store loads it from a file...
    let other = Berth::new();
    let out = other.ok(&["load", "-i", archive.to_str().unwrap()]);
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    assert_eq!(
        got,
        vec!["Loaded image: bb:latest", "Loaded image: second:v2"]
    );
    assert_eq!(other.ok(&["run", "--rm", "second:v2"]), "two\n");

    // ...and an OCI archive with zstd layers from stdin.
    let oci = b.dir.path().join("oci.tar");
    let o = b
        .cmd(&["save", "--format", "oci", "--compression", "zstd", "bb"])
        .stdout(std::fs::File::create(&oci).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&oci)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("index.json") && !listing.contains("manifest.json"),
        "{listing}"
    );
    let third = Berth::new();
    let o = third
        .cmd(&["load", "-q"])
        .stdin(std::fs::File::open(&oci).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Loaded image: bb:latest\n"
    );

    // Corrupt archives: one line, exit 1, nothing recorded, store sound.
    let bytes = std::fs::read(&archive).unwrap();
    let truncated = b.dir.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = b.dir.path().join("garbage.tar");
    std::fs::write(
        &garbage,
        b"this is not a tar archive at all, not even close",
    )
    .unwrap();
    for bad in [&truncated, &garbage] {
        let fresh = Berth::new();
        let o = fresh.run(&["load", "-i", bad.to_str().unwrap()]);
        fails(&o, 1, "archive");
        assert_eq!(fresh.ok(&["images", "-q"]), "");
        let check = fresh.run(&["system", "check"]);
        assert!(check.status.success(), "{}", stderr(&check));
    }
}

#[test]
fn diff_commit_and_export_a_container() {
    if !berth_testutil::require_root("diff_commit_and_export_a_container") {
        return;
    }
    let b = Berth::with_image();
    b.sh(
        "work",
        "echo new > /new.txt && mkdir -p /etc/app && echo c > /etc/app/conf && rm /bin/true",
    );
    let diff = b.ok(&["diff", "work"]);
    assert_eq!(
        diff, "C /bin\nD /bin/true\nC /etc\nA /etc/app\nA /etc/app/conf\nA /new.txt\n",
        "{diff}"
    );

    let id = b
        .ok(&[
            "commit",
            "-m",
            "my change",
            "-a",
            "Jane <j@example.com>",
            "-c",
            "CMD [\"cat\", \"/new.txt\"]",
            "-c",
            "ENV MODE=prod",
            "work",
            "committed:1",
        ])
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(b.ok(&["run", "--rm", "committed:1"]), "new\n");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "committed:1",
            "sh",
            "-c",
            "echo $MODE; ls /bin/true || echo gone"
        ]),
        "prod\ngone\n"
    );
    let i: serde_json::Value =
        serde_json::from_str(&b.ok(&["image", "inspect", "committed:1"])).unwrap();
    assert_eq!(i[0]["Author"], "Jane <j@example.com>");
    assert_eq!(i[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    let h = b.ok(&["history", "committed:1"]);
    assert_eq!(h.lines().count(), 3, "{h}");
    assert!(h.lines().nth(1).unwrap().ends_with("my change"), "{h}");
    // -p is a switch, as docker's: the container's name after it is not
    // its value.
    let id2 = b.ok(&["commit", "-p", "work", "committed:2"]);
    assert!(id2.starts_with("sha256:"), "{id2}");
    let o = b.run(&["commit", "-c", "RUN true", "work"]);
    fails(&o, 1, "not a valid change command");
    let o = b.run(&["commit", "nope"]);
    fails(&o, 1, "no such container: nope");

    // export: the whole filesystem, from a stopped container's snapshot
    // and from a running one's mounted root.
    let out = b.dir.path().join("fs.tar");
    b.ok(&["export", "-o", out.to_str().unwrap(), "work"]);
    let list = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&out)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for want in ["new.txt", "etc/app/conf", "bin/sh"] {
        assert!(
            list.lines().any(|l| l.trim_start_matches("./") == want),
            "{want} in {list}"
        );
    }
    assert!(!list.lines().any(|l| l.ends_with("bin/true")), "{list}");
    assert!(b.mounts().is_empty(), "export unmounts: {:?}", b.mounts());

    b.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "bb",
        "sh",
        "-c",
        "echo hi > /live; exec sleep 100",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = b.cmd(&["export", "live"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut t = tar::Archive::new(&o.stdout[..]);
    let names: Vec<String> = t
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.trim_start_matches("./") == "live"),
        "{names:?}"
    );
    // commit --pause of a running container resumes it.
    b.ok(&["commit", "live", "snap"]);
    assert!(b.ok(&["ps"]).contains("live"), "still running after commit");
}

/// What a failed command must leave as it was: the images listed, and a
/// store `system check` finds consistent with no new garbage in it.
fn store_state(b: &Berth) -> (String, String) {
    let images = b.ok(&[
        "images",
        "-a",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}} {{.CreatedAt}}",
    ]);
    let check = b.run(&["system", "check", "-v"]);
    assert!(check.status.success(), "{}", stderr(&check));
    (images, String::from_utf8_lossy(&check.stdout).into_owned())
}

#[test]
fn failed_image_commands_say_why_in_one_line_and_change_nothing() {
    if !berth_testutil::require_root("failed_image_commands_say_why_in_one_line_and_change_nothing")
    {
        return;
    }
    let b = Berth::with_image();
    b.ok(&["create", "--name", "user", "bb", "true"]);
    let before = store_state(&b);
    let out = b.dir.path().join("out.tar");
    let o = out.to_str().unwrap();

    // Unknown images, by name, full id and short id.
    let unknown = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    for args in [
        &["image", "inspect", "nope"][..],
        &["history", "nope"],
        &["rmi", "nope:1.0"],
        &["rmi", unknown],
        &["rmi", "0123456789ab"],
        &["tag", "nope", "other"],
        &["save", "-o", o, "bb", "nope"],
    ] {
        let r = b.run(args);
        fails(&r, 1, "no such image: ");
        assert_eq!(store_state(&b), before, "{args:?}");
    }
    assert!(!out.exists(), "a failed save leaves no file");

    // In use by a container.
    let r = b.run(&["rmi", "bb"]);
    fails(&r, 1, "is being used by a container");
    let id = b.ok(&["images", "-q"]).trim().to_string();
    let r = b.run(&["rmi", &id]);
    fails(&r, 1, "is being used by a container");
    assert_eq!(store_state(&b), before);

    // Corrupt archives: load and import both refuse, naming the fault.
    b.ok(&["save", "-o", o, "bb"]);
    let bytes = std::fs::read(&out).unwrap();
    let dir = b.dir.path();
    let truncated = dir.join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.join("garbage.tar");
    std::fs::write(
        &garbage,
        b"this is not a tar archive at all, not even close",
    )
    .unwrap();
    // A layer whose bytes are not what its name says.
    let tampered = dir.join("tampered.tar");
    let mut t = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(&bytes[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let path = e.path().unwrap().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if data.len() > 100_000 {
            data[50_000] ^= 0xff;
        }
        t.append_data(&mut h, path, &data[..]).unwrap();
    }
    std::fs::write(&tampered, t.into_inner().unwrap()).unwrap();
    let truncated_gz = dir.join("truncated.tar.gz");
    let mut gz = gzip(&std::fs::read(dir.join("rootfs.tar")).unwrap());
    gz.truncate(gz.len() / 2);
    std::fs::write(&truncated_gz, gz).unwrap();

    for (bad, why) in [
        (&truncated, "archive"),
        (&garbage, "archive"),
        (&tampered, "does not match"),
    ] {
        let r = b.run(&["load", "-i", bad.to_str().unwrap()]);
        fails(&r, 1, why);
        assert_eq!(store_state(&b), before, "load {}", bad.display());
    }
    for bad in [&truncated_gz, &garbage] {
        let r = b.run(&["import", bad.to_str().unwrap(), "imp"]);
        fails(&r, 1, bad.file_name().unwrap().to_str().unwrap());
        assert_eq!(store_state(&b), before, "import {}", bad.display());
    }
}

/// gzip of `data` by the system's gzip: the test crate has no encoder.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut c = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let o = c.wait_with_output().unwrap();
    w.join().unwrap();
    o.stdout
}

/// The bytes used on the filesystem holding `path`.
fn used(path: &std::path::Path) -> u64 {
    let o = std::process::Command::new("df")
        .args(["-B1", "--output=used"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_full_disk_fails_load_import_and_commit_cleanly() {
    if !berth_testutil::require_root("a_full_disk_fails_load_import_and_commit_cleanly") {
        return;
    }
    // The whole --root on a small tmpfs (the guard unmounts it).
    let b = on_small_disk("24m");
    // ~10 MB of changes: room for them, not for a layer made of them.
    b.sh(
        "work",
        "dd if=/dev/urandom of=/big bs=1M count=10 2>/dev/null",
    );
    let before = store_state(&b);
    let disk = used(&b.root);

    // An archive bigger than the disk: made by saving that change.
    let other = Berth::with_image();
    other.sh(
        "big",
        "dd if=/dev/urandom of=/big bs=1M count=30 2>/dev/null",
    );
    other.ok(&["commit", "big", "big:1"]);
    let archive = b.dir.path().join("big.tar");
    other.ok(&["save", "-o", archive.to_str().unwrap(), "big:1"]);
    let fs = b.dir.path().join("fs.tar");
    other.ok(&["export", "-o", fs.to_str().unwrap(), "big"]);

    for args in [
        &["load", "-i", archive.to_str().unwrap()][..],
        &["import", fs.to_str().unwrap(), "imp"],
        &["commit", "work", "committed"],
    ] {
        fails_for_space(&b, args, &before, disk);
    }
    assert_eq!(b.ok(&["run", "--rm", "bb", "echo", "fine"]), "fine\n");
}

/// `args` fails on the full disk, saying so in one line, and leaves the
/// store as `before` and the disk as used as `disk` bytes.
fn fails_for_space(b: &Berth, args: &[&str], before: &(String, String), disk: u64) {
    let r = b.run(args);
    // Whichever write meets the full disk first says so: a file's
    // (ENOSPC) or the state database's (SQLite's "disk is full").
    let err = stderr(&r);
    let needle = if err.contains("disk is full") {
        "disk is full"
    } else {
        "No space left on device"
    };
    if args[0] == "build" {
        // The steps run so far come first; the error is the last line.
        assert_eq!(r.status.code(), Some(1), "stderr: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.contains(needle), "{err:?} lacks {needle:?}");
    } else {
        fails(&r, 1, needle);
    }
    assert_eq!(&store_state(b), before, "{args:?}");
    // What the failed command wrote is gone again (the database may have
    // grown by a page or two).
    let now = used(&b.root);
    assert!(
        now < disk + (256 << 10),
        "{args:?}: {now} bytes used, {disk} before"
    );
}

/// A fresh berth whose --root is a tmpfs of `size` (the guard unmounts
/// it), with busybox imported as `bb`.
fn on_small_disk(size: &str) -> Berth {
    let b = Berth::new();
    std::fs::create_dir_all(&b.root).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&b.root)
        .status()
        .unwrap();
    assert!(ok.success());
    let tar = b.dir.path().join("rootfs.tar");
    berth_testutil::rootfs_tar(&tar).unwrap();
    b.ok(&["import", tar.to_str().unwrap(), "bb"]);
    b
}

#[test]
fn a_full_disk_fails_pull_and_build_cleanly() {
    if !berth_testutil::require_root("a_full_disk_fails_pull_and_build_cleanly") {
        return;
    }
    let b = on_small_disk("24m");
    let before = store_state(&b);
    let disk = used(&b.root);

    // A 30 MB layer of noise (gzip cannot shrink it) in a registry.
    let reg = berth_testutil::peers::Registry::start();
    let name = format!("{}/full/big:1", reg.host());
    let other = Berth::with_image();
    other.sh(
        "big",
        "dd if=/dev/urandom of=/big bs=1M count=30 2>/dev/null",
    );
    other.ok(&["commit", "big", &name]);
    other.ok(&["push", "-q", &name]);
    // A build whose COPY is bigger than the disk.
    let ctx = b.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("big"), berth_testutil::noise(30 << 20, 7)).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM bb\nCOPY big /big\n").unwrap();

    fails_for_space(&b, &["pull", "-q", &name], &before, disk);
    let ctx = ctx.to_str().unwrap();
    fails_for_space(&b, &["build", "-q", "-t", "built", ctx], &before, disk);
    assert_eq!(b.ok(&["run", "--rm", "bb", "echo", "fine"]), "fine\n");
}

#[test]
fn inspect_finds_containers_images_networks_and_volumes() {
    if !berth_testutil::require_root("inspect_finds_containers_images_networks_and_volumes") {
        return;
    }
    let b = Berth::with_image();
    let id = b
        .ok(&["images", "-q", "--no-trunc", "bb"])
        .trim()
        .to_string();
    b.ok(&["volume", "create", "vol1"]);
    b.ok(&["create", "--name", "box1", "bb", "true"]);
    let f = |args: &[&str]| b.ok(args).trim().to_string();
    assert_eq!(f(&["inspect", "-f", "{{.Id}}", "bb"]), id);
    assert_eq!(f(&["inspect", "-f", "{{.Name}}", "box1"]), "/box1");
    assert_eq!(f(&["inspect", "-f", "{{.Driver}}", "vol1"]), "local");
    assert_eq!(f(&["inspect", "-f", "{{.Name}}", "bridge"]), "bridge");
    // Several kinds at once, in order.
    assert_eq!(
        f(&["inspect", "-f", "{{.Name}}", "box1", "vol1"]),
        "/box1\nvol1"
    );
    // --type restricts the search. (A name of hex digits could be taken
    // as the prefix of an image id: box1 cannot.)
    b.fails(
        &["inspect", "--type", "image", "box1"],
        1,
        "no such image: box1",
    );
    b.fails(&["inspect", "nothing"], 1, "no such object: nothing");
    b.ok(&["rm", "box1"]);
    b.ok(&["volume", "rm", "vol1"]);
}
