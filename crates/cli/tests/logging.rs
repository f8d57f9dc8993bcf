//! `--log-driver` and `--log-opt` end to end, as root: the json-file log
//! rotated by max-size and max-file, `logs` (and `logs -f`) reading the
//! rotated files in order, and the `none` driver.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::Berth;
use serde_json::Value;

fn log_files(b: &Berth, id: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(b.root.join("containers").join(id))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-json.log"))
        .collect();
    v.sort();
    v
}

fn log_path(b: &Berth, id: &str) -> PathBuf {
    b.root
        .join("containers")
        .join(id)
        .join(format!("{id}-json.log"))
}

/// `line N` for each N, as the containers below print them.
fn lines(from: usize, to: usize) -> String {
    (from..=to).map(|i| format!("line {i}\n")).collect()
}

/// A container made by `verb` (`create`, `run -d`) with `opts` whose
/// `script` prints `line 1` to `line N`; its id.
fn printer(b: &Berth, verb: &[&str], opts: &[&str], n: usize, script: &str) -> String {
    let n = format!("N={n}");
    b.ok(&[verb, opts, &["-e", &n, "bb", "sh", "-c", script]].concat())
        .trim()
        .to_string()
}

const PRINT: &str = "i=0; while [ $i -lt $N ]; do i=$((i+1)); echo \"line $i\"; done";

#[test]
fn logs_rotate_by_max_size_and_max_file_and_read_in_order() {
    if !berth_testutil::require_root("logs_rotate_by_max_size_and_max_file_and_read_in_order") {
        return;
    }
    let b = Berth::with_image();
    let id = printer(
        &b,
        &["create"],
        &["--log-opt", "max-size=1k", "--log-opt", "max-file=3"],
        300,
        PRINT,
    );
    let v: Value = serde_json::from_str(&b.ok(&["inspect", &id])).unwrap();
    assert_eq!(
        v[0]["HostConfig"]["LogConfig"],
        serde_json::json!({"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}})
    );
    // Attached, the whole output arrives whatever the log keeps.
    let o = b.run(&["start", "-a", &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), lines(1, 300));

    let name = format!("{id}-json.log");
    assert_eq!(
        log_files(&b, &id),
        [name.clone(), format!("{name}.1"), format!("{name}.2")]
    );
    for f in log_files(&b, &id) {
        let len = std::fs::metadata(b.root.join("containers").join(&id).join(&f))
            .unwrap()
            .len();
        // max-size is decimal (1000 bytes), passed by at most one record.
        assert!(len < 1000 + 100, "{f}: {len}");
    }
    // The oldest records are gone; the rest come back in order.
    let out = b.ok(&["logs", &id]);
    let first: usize = out
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("line "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(first > 1, "{out}");
    assert_eq!(out, lines(first, 300));

    // One file: it starts afresh when full.
    let id = printer(
        &b,
        &["run", "-d"],
        &["--log-opt", "max-size=2k"],
        100,
        PRINT,
    );
    b.ok(&["wait", &id]);
    assert_eq!(log_files(&b, &id), [format!("{id}-json.log")]);
    let out = b.ok(&["logs", &id]);
    assert!(
        out.ends_with("line 100\n") && !out.starts_with("line 1\n"),
        "{out}"
    );
}

#[test]
fn logs_follow_reads_across_rotations() {
    if !berth_testutil::require_root("logs_follow_reads_across_rotations") {
        return;
    }
    let b = Berth::with_image();
    // It prints only once the follower runs, so the follower sees the
    // files rotate under it; max-file keeps every file.
    let script = format!("while [ ! -e /tmp/go ]; do sleep 0.05; done; {PRINT}");
    let id = printer(
        &b,
        &["run", "-d"],
        &["--log-opt", "max-size=2k", "--log-opt", "max-file=500"],
        3000,
        &script,
    );
    let follower = b
        .cmd(&["logs", "-f", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    b.ok(&["exec", &id, "touch", "/tmp/go"]);
    let o = follower.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(log_files(&b, &id).len() > 10, "{:?}", log_files(&b, &id));
    assert!(String::from_utf8_lossy(&o.stdout) == lines(1, 3000));
    assert_eq!(b.ok(&["logs", &id]), lines(1, 3000));
}

#[test]
fn the_none_driver_keeps_no_log() {
    if !berth_testutil::require_root("the_none_driver_keeps_no_log") {
        return;
    }
    let b = Berth::with_image();
    let o = b.run(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "bb",
        "echo",
        "hi",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hi\n",
        "attach still works"
    );
    let v: Value = serde_json::from_str(&b.ok(&["inspect", "quiet"])).unwrap();
    assert_eq!(v[0]["HostConfig"]["LogConfig"]["Type"], "none");
    assert_eq!(v[0]["LogPath"], "");
    let id = v[0]["Id"].as_str().unwrap();
    assert!(!log_path(&b, id).exists());
    b.fails(
        &["logs", "quiet"],
        1,
        "configured logging driver does not support reading",
    );

    for (args, why) in [
        (
            &["--log-driver", "syslog"][..],
            "--log-driver syslog is not supported",
        ),
        (
            &["--log-opt", "foo=1"],
            "unknown log opt 'foo' for json-file",
        ),
        (&["--log-opt", "max-size=0"], "max-size must be a positive"),
        (&["--log-opt", "max-size"], "key=value"),
        (
            &["--log-driver", "none", "--log-opt", "max-size=1k"],
            "for none log driver",
        ),
    ] {
        b.fails(
            &[&["run", "--rm"], args, &["bb", "true"]].concat(),
            125,
            why,
        );
    }
}
