//! `berth-monitor`: one small process per container, the parent of its
//! init. It creates and starts the container through the runtime library
//! in-process, holds its stdout and stderr, writes them to docker's
//! json-file log, reaps it, records the exit and removes a `--rm`
//! container. It also runs `exec` for the CLI, which must not enter
//! containers itself.
//!
//! Single-threaded on purpose: the runtime forks the container's init from
//! this process, which must not have other threads. No async runtime.
#![forbid(unsafe_code)]

mod clients;
mod console;
mod exec;
mod output;
mod supervise;

use std::path::PathBuf;
use std::process::ExitCode;

use berth_engine::{Engine, Paths};

const USAGE: &str =
    "usage: berth-monitor --root DIR --runroot DIR (start ID [--attach] | exec ID PROCESS_JSON [--stream])";

enum Cmd {
    Start {
        id: String,
        attach: bool,
    },
    Exec {
        id: String,
        process: PathBuf,
        stream: bool,
    },
}

fn parse(args: &[String]) -> Result<(Paths, Cmd), String> {
    let mut root = None;
    let mut runroot = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" => root = it.next().cloned(),
            "--runroot" => runroot = it.next().cloned(),
            _ => rest.push(a.as_str()),
        }
    }
    let (Some(root), Some(runroot)) = (root, runroot) else {
        return Err(USAGE.into());
    };
    let paths = Paths::new(root, runroot);
    let cmd = match rest.as_slice() {
        ["start", id] => Cmd::Start {
            id: id.to_string(),
            attach: false,
        },
        ["start", id, "--attach"] => Cmd::Start {
            id: id.to_string(),
            attach: true,
        },
        ["exec", id, process] => Cmd::Exec {
            id: id.to_string(),
            process: PathBuf::from(process),
            stream: false,
        },
        ["exec", id, process, "--stream"] => Cmd::Exec {
            id: id.to_string(),
            process: PathBuf::from(process),
            stream: true,
        },
        _ => return Err(USAGE.into()),
    };
    Ok((paths, cmd))
}

fn main() -> ExitCode {
    berth_engine::timing::mark("monitor: main");
    // `exec` enters a container that already runs processes: it runs from
    // a sealed copy of this binary so they cannot reach the host's through
    // /proc/PID/exe (CVE-2019-5736). `start` makes a container with a new
    // pid namespace of its own (the engine refuses --pid host), where the
    // runtime's non-dumpable init is the only process until it execs: no
    // copy there, so a thousand monitors share one binary's pages.
    if let Err(e) = berth_runtime::cloned::ensure_cloned(|args| args.iter().any(|a| a == "exec")) {
        eprintln!("berth-monitor: re-executing from a sealed copy: {e}");
        return ExitCode::from(125);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (paths, cmd) = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            return ExitCode::from(125);
        }
    };
    let engine = Engine::new(paths);
    let code = match cmd {
        Cmd::Start { id, attach } => supervise::start(&engine, &id, attach),
        Cmd::Exec {
            id,
            process,
            stream,
        } => exec::run(&engine, &id, &process, stream),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_both_commands_and_refuses_the_rest() {
        let (p, c) = parse(&s(&[
            "--root",
            "/r",
            "--runroot",
            "/rr",
            "start",
            "abc",
            "--attach",
        ]))
        .unwrap();
        assert_eq!(
            (p.root, p.runroot),
            (PathBuf::from("/r"), PathBuf::from("/rr"))
        );
        assert!(matches!(c, Cmd::Start { id, attach: true } if id == "abc"));
        let (_, c) = parse(&s(&[
            "--root",
            "/r",
            "--runroot",
            "/rr",
            "exec",
            "abc",
            "/p.json",
        ]))
        .unwrap();
        assert!(
            matches!(c, Cmd::Exec { id, process, stream: false } if id == "abc" && process == std::path::Path::new("/p.json"))
        );
        assert!(parse(&s(&["start", "abc"])).is_err());
        assert!(parse(&s(&["--root", "/r", "--runroot", "/rr", "stop", "abc"])).is_err());
    }
}
