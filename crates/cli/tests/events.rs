//! `events` and `system events` as root: a container's life in the event
//! log as docker's CLI prints it, chosen by time and filters, formatted,
//! and followed as it happens.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::Berth;
use serde_json::Value;

fn unix_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

#[test]
fn events_show_a_containers_life_chosen_formatted_and_followed() {
    if !berth_testutil::require_root("events_show_a_containers_life_chosen_formatted_and_followed")
    {
        return;
    }
    let b = Berth::with_image();
    let t0 = unix_now();
    b.ok(&[
        "run",
        "--name",
        "ev1",
        "-l",
        "tier=web",
        "--network",
        "none",
        "bb",
        "true",
    ]);
    let id = b
        .ok(&["inspect", "-f", "{{.Id}}", "ev1"])
        .trim()
        .to_string();
    b.ok(&["rm", "ev1"]);
    // What happened since t0, up to now.
    let past = |verb: &[&str], extra: &[&str]| {
        b.ok(&[verb, &["--since", &t0, "--until", "0s"], extra].concat())
    };
    let life = past(&["events"], &["-f", "container=ev1"]);
    let lines: Vec<&str> = life.lines().collect();
    let actions: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(actions, ["create", "start", "die", "destroy"], "{life}");
    // docker's line: time, type, action, actor, attributes by name.
    let (time, rest) = lines[1].split_once(' ').unwrap();
    assert!(
        time.ends_with('Z') && time.len() == "2006-01-02T15:04:05.000000000Z".len(),
        "{time}"
    );
    assert_eq!(
        rest,
        format!("container start {id} (image=bb, name=ev1, tier=web)")
    );
    assert_eq!(
        past(&["system", "events"], &["-f", "container=ev1"]),
        life,
        "system events is events"
    );
    // Filters: a key's values any, keys all; templates and json.
    let die = past(&["events"], &["-f", "event=die", "--format", "json"]);
    let v: Value = serde_json::from_str(die.trim()).unwrap();
    assert_eq!(
        (
            &v["Type"],
            &v["Action"],
            &v["Actor"]["ID"],
            &v["Actor"]["Attributes"]["exitCode"]
        ),
        (
            &"container".into(),
            &"die".into(),
            &id.as_str().into(),
            &"0".into()
        )
    );
    let chosen = [
        "-f",
        "label=tier=web",
        "-f",
        "event=start",
        "-f",
        "event=destroy",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ];
    assert_eq!(past(&["events"], &chosen), "start ev1\ndestroy ev1\n");
    assert_eq!(past(&["events"], &["-f", "type=volume"]), "");

    // Followed: what comes after the command, as it comes.
    let mut follower = b
        .cmd(&[
            "events",
            "--since",
            &t0,
            "-f",
            "event=start",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(follower.stdout.take().unwrap());
    let mut next = || {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        l
    };
    assert_eq!(next(), "ev1\n");
    b.ok(&[
        "run",
        "--rm",
        "--name",
        "ev2",
        "--network",
        "none",
        "bb",
        "true",
    ]);
    assert_eq!(next(), "ev2\n", "a start after the follower began");
    follower.kill().unwrap();
    follower.wait().unwrap();

    for (args, why) in [
        (
            &["events", "-f", "colour=red"][..],
            "invalid filter 'colour'",
        ),
        (
            &["events", "-f", "colour"],
            "bad format of filter \"colour\"",
        ),
        (
            &["events", "--since", "yesterday"],
            "invalid value for --since",
        ),
    ] {
        b.fails(args, 1, why);
    }
}
