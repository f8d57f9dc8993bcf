//! Health checks end to end, as root: `--health-*` and the image's
//! HEALTHCHECK run by the monitor, `State.Health` in `inspect`, the
//! status in `ps` and its `health=` filter.

mod common;

use std::time::{Duration, Instant};

use common::{inspect, Berth};
use serde_json::{json, Value};

/// Polls `inspect` until `f` holds; every state seen passes `always`.
fn wait_until(
    b: &Berth,
    name: &str,
    what: &str,
    always: impl Fn(&Value),
    f: impl Fn(&Value) -> bool,
) -> Value {
    // Generous: a shared machine builds and tests side by side.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = inspect(b, name);
        always(&v);
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {v:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A detached `sleep` container named `name` with `flags`.
fn sleeper(b: &Berth, name: &str, flags: &[&str], image: &str) {
    b.ok(&[
        &["run", "-d", "--name", name],
        flags,
        &[image, "sleep", "3600"],
    ]
    .concat());
}

fn status(v: &Value) -> &str {
    v["State"]["Health"]["Status"].as_str().unwrap_or("")
}

fn ps_row(b: &Berth, name: &str) -> String {
    b.ok(&["ps", "-a"])
        .lines()
        .find(|l| l.ends_with(name))
        .unwrap_or_else(|| panic!("{name} is not listed"))
        .to_string()
}

fn filtered(b: &Berth, filter: &str) -> Vec<String> {
    b.ok(&["ps", "-a", "--format", "{{.Names}}", "--filter", filter])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_passing_check_turns_healthy_and_a_failing_one_unhealthy_after_retries() {
    if !berth_testutil::require_root(
        "a_passing_check_turns_healthy_and_a_failing_one_unhealthy_after_retries",
    ) {
        return;
    }
    let b = Berth::with_image();
    sleeper(
        &b,
        "fine",
        &[
            "--health-cmd",
            "test ! -e /tmp/sick && echo ok",
            "--health-interval",
            "100ms",
            "--health-retries",
            "3",
        ],
        "bb",
    );
    let v = wait_until(&b, "fine", "healthy", |_| {}, |v| status(v) == "healthy");
    assert_eq!(
        v["Config"]["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "test ! -e /tmp/sick && echo ok"], "Interval": 100_000_000, "Retries": 3})
    );
    let h = &v["State"]["Health"];
    assert_eq!(h["FailingStreak"], 0);
    let log = h["Log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5, "{h:#}");
    let last = log.last().unwrap();
    assert_eq!(
        (&last["ExitCode"], &last["Output"]),
        (&json!(0), &json!("ok\n"))
    );
    for k in ["Start", "End"] {
        let t = last[k].as_str().unwrap();
        assert!(
            t.len() > 20 && t.contains('T') && t.ends_with('Z'),
            "{k}: {t}"
        );
    }
    let row = ps_row(&b, "fine");
    assert!(row.contains("Up ") && row.contains(" (healthy)"), "{row}");
    assert_eq!(filtered(&b, "health=healthy"), ["fine"]);
    assert!(filtered(&b, "health=unhealthy").is_empty());

    // Sick from now on: `retries` failures in a row, and only then,
    // make it unhealthy; until then it stays healthy.
    b.ok(&["exec", "fine", "touch", "/tmp/sick"]);
    let v = wait_until(
        &b,
        "fine",
        "unhealthy",
        |v| {
            let streak = v["State"]["Health"]["FailingStreak"].as_i64().unwrap();
            match status(v) {
                "healthy" => assert!(streak < 3, "{v:#}"),
                "unhealthy" => assert!(streak >= 3, "{v:#}"),
                other => panic!("status {other}: {v:#}"),
            }
        },
        |v| status(v) == "unhealthy",
    );
    let log = v["State"]["Health"]["Log"].as_array().unwrap();
    assert!(
        log.iter().rev().take(3).all(|r| r["ExitCode"] == 1),
        "{log:#?}"
    );
    assert!(ps_row(&b, "fine").contains(" (unhealthy)"));
    assert_eq!(filtered(&b, "health=unhealthy"), ["fine"]);

    // Recovery: one success is enough.
    b.ok(&["exec", "fine", "rm", "/tmp/sick"]);
    wait_until(
        &b,
        "fine",
        "healthy again",
        |_| {},
        |v| status(v) == "healthy",
    );

    // A stopped container's checks end unhealthy, as docker's do, and ps
    // shows no health for it.
    b.ok(&["stop", "-t", "0", "fine"]);
    let v = inspect(&b, "fine");
    assert_eq!(status(&v), "unhealthy");
    let row = ps_row(&b, "fine");
    assert!(row.contains("Exited") && !row.contains("healthy"), "{row}");
}

#[test]
fn starting_status_and_the_start_period() {
    if !berth_testutil::require_root("starting_status_and_the_start_period") {
        return;
    }
    let b = Berth::with_image();
    // No probe for an hour: starting, with an empty log.
    sleeper(
        &b,
        "slow",
        &["--health-cmd", "true", "--health-interval", "1h"],
        "bb",
    );
    let v = inspect(&b, "slow");
    assert_eq!(
        v["State"]["Health"],
        json!({"Status": "starting", "FailingStreak": 0, "Log": []})
    );
    assert!(ps_row(&b, "slow").contains(" (health: starting)"));
    assert_eq!(filtered(&b, "health=starting"), ["slow"]);

    // Failures within the start period do not count: with one retry the
    // container would be unhealthy at the first counted one. Probes run
    // at the start interval meanwhile (the interval is an hour).
    sleeper(
        &b,
        "warming",
        &[
            "--health-cmd",
            "test -e /tmp/ready",
            "--health-retries",
            "1",
            "--health-interval",
            "1h",
            "--health-start-period",
            "1h",
            "--health-start-interval",
            "100ms",
        ],
        "bb",
    );
    let v = wait_until(
        &b,
        "warming",
        "three failed probes",
        |v| {
            assert_eq!(status(v), "starting", "{v:#}");
            assert_eq!(v["State"]["Health"]["FailingStreak"], 0, "{v:#}");
        },
        |v| {
            v["State"]["Health"]["Log"]
                .as_array()
                .is_some_and(|l| l.len() >= 3)
        },
    );
    let log = v["State"]["Health"]["Log"].as_array().unwrap();
    assert!(log.iter().all(|r| r["ExitCode"] == 1), "{log:#?}");
    b.ok(&["exec", "warming", "touch", "/tmp/ready"]);
    wait_until(&b, "warming", "healthy", |_| {}, |v| status(v) == "healthy");
}

#[test]
fn a_probe_past_its_timeout_is_killed_and_fails() {
    if !berth_testutil::require_root("a_probe_past_its_timeout_is_killed_and_fails") {
        return;
    }
    let b = Berth::with_image();
    sleeper(
        &b,
        "stuck",
        &[
            "--health-cmd",
            "sleep 100",
            "--health-timeout",
            "200ms",
            "--health-interval",
            "100ms",
            "--health-retries",
            "2",
        ],
        "bb",
    );
    let v = wait_until(
        &b,
        "stuck",
        "unhealthy after timeouts",
        |_| {},
        |v| {
            status(v) == "unhealthy"
                && v["State"]["Health"]["Log"]
                    .as_array()
                    .is_some_and(|l| l.len() >= 3)
        },
    );
    for r in v["State"]["Health"]["Log"].as_array().unwrap() {
        assert_eq!(r["ExitCode"], -1, "{r}");
        assert_eq!(r["Output"], "Health check exceeded timeout (200ms)");
    }
    // Each timed-out probe was killed: at most the one running now is left.
    let top = b.ok(&["top", "stuck"]);
    let probes = top.lines().filter(|l| l.ends_with("sleep 100")).count();
    assert!(probes <= 1, "{top}");
}

#[test]
fn the_images_healthcheck_runs_and_flags_override_it() {
    if !berth_testutil::require_root("the_images_healthcheck_runs_and_flags_override_it") {
        return;
    }
    let b = Berth::with_image();
    let tar = b.dir.path().join("rootfs.tar");
    b.ok(&[
        "import",
        "--change",
        "HEALTHCHECK --interval=100ms --retries=2 CMD [\"test\", \"-e\", \"/bin/sh\"]",
        tar.to_str().unwrap(),
        "checked",
    ]);
    let img: Value = serde_json::from_str(&b.ok(&["image", "inspect", "checked"])).unwrap();
    assert_eq!(
        img[0]["Config"]["Healthcheck"],
        json!({"Test": ["CMD", "test", "-e", "/bin/sh"], "Interval": 100_000_000, "Retries": 2})
    );

    sleeper(&b, "inherits", &[], "checked");
    let v = wait_until(
        &b,
        "inherits",
        "healthy",
        |_| {},
        |v| status(v) == "healthy",
    );
    assert_eq!(v["Config"]["Healthcheck"], img[0]["Config"]["Healthcheck"]);

    // --no-healthcheck: no check runs, no State.Health, health=none.
    sleeper(&b, "unchecked", &["--no-healthcheck"], "checked");
    let v = inspect(&b, "unchecked");
    assert_eq!(v["Config"]["Healthcheck"]["Test"], json!(["NONE"]));
    assert!(v["State"].get("Health").is_none(), "{v:#}");
    let row = ps_row(&b, "unchecked");
    assert!(!row.contains("health"), "{row}");
    assert_eq!(filtered(&b, "health=none"), ["unchecked"]);

    // A flag replaces only its own field; the rest is the image's.
    sleeper(&b, "mine", &["--health-cmd", "exit 1"], "checked");
    let v = wait_until(
        &b,
        "mine",
        "unhealthy",
        |_| {},
        |v| status(v) == "unhealthy",
    );
    assert_eq!(
        v["Config"]["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "exit 1"], "Interval": 100_000_000, "Retries": 2})
    );

    // Refused as docker refuses them.
    for (args, why) in [
        (
            &["--no-healthcheck", "--health-cmd", "true"][..],
            "conflicts with --health-*",
        ),
        (&["--health-interval", "10"], "--health-interval"),
        (&["--health-timeout", "10us"], "cannot be less than 1ms"),
    ] {
        b.fails(&[&["run", "-d"], args, &["bb", "true"]].concat(), 125, why);
    }
    b.fails(&["ps", "--filter", "health=sick"], 1, "health: sick");
}
