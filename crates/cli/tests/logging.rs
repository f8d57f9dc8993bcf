//! `--log-driver` and `--log-opt` end to end, as root: the json-file log
//! rotated by max-size and max-file, `logs` (and `logs -f`) reading the
//! rotated files in order, the attributes `labels` and `env` add to each
//! record (`logs --details`), and the `none` driver.

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

#[test]
fn labels_and_env_attributes_go_with_each_record() {
    if !berth_testutil::require_root("labels_and_env_attributes_go_with_each_record") {
        return;
    }
    let b = Berth::with_image();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--label",
            "tier=web app",
            "--label",
            "other=x",
            "-e",
            "REGION=eu",
            "--log-opt",
            "labels=tier,absent",
            "--log-opt",
            "env=REGION,PATH,NOPE",
            "--network",
            "none",
            "bb",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ])
        .trim()
        .to_string();
    b.ok(&["wait", &id]);
    // Each record of the file carries them, as docker's json-file does.
    let file = std::fs::read_to_string(log_path(&b, &id)).unwrap();
    let recs: Vec<Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2, "{file}");
    for r in &recs {
        assert_eq!(
            r["attrs"],
            serde_json::json!({"tier": "web app", "REGION": "eu", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}),
            "{file}"
        );
    }
    // --details shows them before each line, sorted and query-escaped.
    let attrs = "PATH=%2Fusr%2Flocal%2Fsbin%3A%2Fusr%2Flocal%2Fbin%3A%2Fusr%2Fsbin%3A%2Fusr%2Fbin%3A%2Fsbin%3A%2Fbin,REGION=eu,tier=web+app";
    let (out, err) = logs(&b, &["--details"], &id);
    assert_eq!(out, format!("{attrs} out\n"));
    assert_eq!(err, format!("{attrs} err\n"));
    let (out, _) = logs(&b, &["--details", "-t"], &id);
    let (stamp, rest) = out.split_once(' ').unwrap();
    assert!(stamp.ends_with('Z'), "{out}");
    assert_eq!(rest, format!("{attrs} out\n"));
    assert_eq!(logs(&b, &[], &id).0, "out\n");
    // Without them, --details gives a lone space, as dockerd does.
    b.ok(&[
        "run",
        "--name",
        "plain",
        "--network",
        "none",
        "bb",
        "echo",
        "hi",
    ]);
    assert_eq!(logs(&b, &["--details"], "plain").0, " hi\n");
    b.fails(
        &["run", "--rm", "--log-opt", "env-regex=^R", "bb", "true"],
        125,
        "--log-opt env-regex",
    );
}

/// Runs `berth logs ARGS NAME`; its stdout and stderr.
fn logs(b: &Berth, args: &[&str], name: &str) -> (String, String) {
    let o = b.run(&[&["logs"], args, &[name]].concat());
    assert!(o.status.success(), "logs {args:?}: {}", common::stderr(&o));
    (
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

#[test]
fn logs_tail_since_and_until_choose_lines() {
    if !berth_testutil::require_root("logs_tail_since_and_until_choose_lines") {
        return;
    }
    let b = Berth::with_image();
    b.sh(
        "wr",
        "echo a1; echo a2; echo e1 >&2; sleep 0.3; echo b1; echo b2",
    );
    let all = ("a1\na2\nb1\nb2\n".to_string(), "e1\n".to_string());
    assert_eq!(logs(&b, &[], "wr"), all);
    assert_eq!(logs(&b, &["--tail", "all"], "wr"), all);
    assert_eq!(
        logs(&b, &["--tail", "-1"], "wr"),
        all,
        "docker: negative is all"
    );
    assert_eq!(
        logs(&b, &["--tail", "2"], "wr"),
        ("b1\nb2\n".into(), "".into())
    );
    // The tail counts lines of both streams, in the order written.
    assert_eq!(
        logs(&b, &["-n", "3"], "wr"),
        ("b1\nb2\n".into(), "e1\n".into())
    );
    assert_eq!(logs(&b, &["--tail", "0"], "wr"), ("".into(), "".into()));

    // Each line's time, from -t, picks lines by --since and --until, both
    // inclusive.
    let (out, err) = logs(&b, &["-t"], "wr");
    let time_of = |text: &str, line: &str| -> String {
        let l = text
            .lines()
            .find(|l| l.ends_with(&format!(" {line}")))
            .unwrap_or_else(|| panic!("{line} in {text}"));
        l.split(' ').next().unwrap().to_string()
    };
    let (b1, e1) = (time_of(&out, "b1"), time_of(&err, "e1"));
    assert_eq!(
        logs(&b, &["--since", &b1], "wr"),
        ("b1\nb2\n".into(), "".into())
    );
    assert_eq!(
        logs(&b, &["--until", &e1], "wr"),
        ("a1\na2\n".into(), "e1\n".into())
    );
    assert_eq!(
        logs(&b, &["--since", &e1, "--until", &b1, "-t"], "wr"),
        (format!("{b1} b1\n"), format!("{e1} e1\n"))
    );
    // Durations count back from now: the container ran within the hour.
    assert_eq!(logs(&b, &["--since", "1h"], "wr"), all);
    assert_eq!(logs(&b, &["--until", "1h"], "wr"), ("".into(), "".into()));
    assert_eq!(logs(&b, &["--since", "1700000000.5"], "wr"), all);
    // docker takes the tail first, then the times.
    assert_eq!(
        logs(&b, &["--tail", "2", "--until", &e1], "wr"),
        ("".into(), "".into())
    );

    for (args, why) in [
        (&["--tail", "x"][..], "invalid value for --tail: \"x\""),
        (&["--since", "yesterday"], "invalid value for --since"),
        (&["--until", "1d"], "invalid value for --until"),
    ] {
        b.fails(&[&["logs"], args, &["wr"]].concat(), 1, why);
    }
}

#[test]
fn logs_follow_starts_at_the_tail_and_stops_at_until() {
    if !berth_testutil::require_root("logs_follow_starts_at_the_tail_and_stops_at_until") {
        return;
    }
    let b = Berth::with_image();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "fo",
        "bb",
        "sh",
        "-c",
        "echo x1; echo x2; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo y",
    ]);
    while logs(&b, &[], "fo").0 != "x1\nx2\n" {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let follower = b
        .cmd(&["logs", "-f", "--tail", "1", "fo"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The follower is past its first read once it prints x2.
    let mut follower = follower;
    let mut first = [0u8; 3];
    std::io::Read::read_exact(follower.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"x2\n");
    b.ok(&["exec", "fo", "touch", "/tmp/go"]);
    let o = follower.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "y\n");

    // A follower with an --until ends when that time passes, though the
    // container goes on.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "bb",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.05; done",
    ]);
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 1.0;
    let mut follower = b
        .cmd(&[
            "logs",
            "-f",
            "-t",
            "--until",
            &format!("{until:.3}"),
            "ticker",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ended = None;
    for _ in 0..300 {
        if let Some(s) = follower.try_wait().unwrap() {
            ended = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let Some(status) = ended else {
        let _ = follower.kill();
        panic!("logs -f --until {until} did not end");
    };
    assert!(status.success());
    let mut out = String::new();
    std::io::Read::read_to_string(follower.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.lines().count() > 3 && out.lines().all(|l| l.ends_with(" tick")),
        "{out}"
    );
    assert_eq!(common::inspect(&b, "ticker")["State"]["Running"], true);
    b.ok(&["rm", "-f", "ticker"]);
}
