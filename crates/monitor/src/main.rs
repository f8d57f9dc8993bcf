//! `berth-monitor`: one small process per container, the parent of its
//! init. It creates and starts the container through the runtime library
//! in-process, holds its stdout and stderr, writes them to docker's
//! json-file log, reaps it, runs its health check, records the exit and
//! removes a `--rm` container. It also runs `exec` for the CLI, which
//! must not enter containers itself, each probe of a health check, and,
//! in its `dns` mode, the DNS server of a user network (berth_net::dns).
//!
//! Single-threaded on purpose: the runtime forks the container's init from
//! this process, which must not have other threads. No async runtime.
#![forbid(unsafe_code)]

mod clients;
mod console;
mod exec;
mod health;
mod output;
mod supervise;

use std::path::PathBuf;
use std::process::ExitCode;

use berth_engine::{Engine, Paths};

const USAGE: &str = "usage: berth-monitor --root DIR --runroot DIR (start ID [--attach] [--sealed] | start --spare | exec ID PROCESS_JSON [--stream|--detach] | probe ID PROCESS_JSON | dns NETWORK [--serve])";

enum Cmd {
    /// A monitor started before its container: the starter's word names it.
    Spare,
    Start {
        id: String,
        attach: bool,
    },
    Exec {
        id: String,
        process: PathBuf,
        how: exec::How,
    },
    /// One run of a health check, for the container's own monitor.
    Probe {
        id: String,
        process: PathBuf,
    },
    Dns {
        network: String,
        serve: bool,
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
            // Acted on before parsing (see main).
            berth_engine::monitor::SEALED => {}
            _ => rest.push(a.as_str()),
        }
    }
    let (Some(root), Some(runroot)) = (root, runroot) else {
        return Err(USAGE.into());
    };
    let paths = Paths::new(root, runroot);
    let cmd = match rest.as_slice() {
        ["start", berth_engine::monitor::SPARE] => Cmd::Spare,
        ["start", id, flags @ ..] => {
            let mut attach = false;
            for f in flags {
                match *f {
                    "--attach" => attach = true,
                    _ => return Err(USAGE.into()),
                }
            }
            Cmd::Start {
                id: id.to_string(),
                attach,
            }
        }
        ["exec", id, process, flags @ ..] => Cmd::Exec {
            id: id.to_string(),
            process: PathBuf::from(process),
            how: exec::How::parse(flags).ok_or(USAGE)?,
        },
        ["probe", id, process] => Cmd::Probe {
            id: id.to_string(),
            process: PathBuf::from(process),
        },
        ["dns", network] => Cmd::Dns {
            network: network.to_string(),
            serve: false,
        },
        ["dns", network, "--serve"] => Cmd::Dns {
            network: network.to_string(),
            serve: true,
        },
        _ => return Err(USAGE.into()),
    };
    Ok((paths, cmd))
}

fn main() -> ExitCode {
    berth_engine::timing::mark("monitor: main");
    // `exec` enters a container that already runs processes: it runs from
    // a sealed copy of this binary so they cannot reach the host's through
    // /proc/PID/exe (CVE-2019-5736). So does the `start` of a container
    // that shares a pid namespace (`--pid host|container:`, which the
    // engine marks `--sealed`). Any other `start` makes a new pid
    // namespace where the runtime's non-dumpable init is the only process
    // until it execs: no copy there, so a thousand monitors share one
    // binary's pages.
    if let Err(e) = berth_runtime::cloned::ensure_cloned(|args| {
        args.iter()
            .any(|a| a == "exec" || a == "probe" || a == berth_engine::monitor::SEALED)
    }) {
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
        Cmd::Spare => supervise::spare(&engine),
        Cmd::Start { id, attach } => supervise::start(&engine, &id, attach),
        Cmd::Exec { id, process, how } => exec::run(&engine, &id, &process, how),
        Cmd::Probe { id, process } => health::probe(&engine, &id, &process),
        Cmd::Dns { network, serve } => match engine.dns_server(&network, serve) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth-monitor: DNS server of network {network}: {e}");
                125
            }
        },
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// `rest` after the global flags.
    fn with_roots(rest: &[&str]) -> Result<(Paths, Cmd), String> {
        let mut v = vec!["--root", "/r", "--runroot", "/rr"];
        v.extend_from_slice(rest);
        parse(&s(&v))
    }

    #[test]
    fn parses_both_commands_and_refuses_the_rest() {
        let (p, c) = with_roots(&["start", "abc", "--attach"]).unwrap();
        assert_eq!(
            (p.root, p.runroot),
            (PathBuf::from("/r"), PathBuf::from("/rr"))
        );
        assert!(matches!(c, Cmd::Start { id, attach: true } if id == "abc"));
        let (_, c) = with_roots(&["start", "abc", "--sealed"]).unwrap();
        assert!(matches!(c, Cmd::Start { attach: false, .. }));
        // Monitors no longer fork away: a server reaps them.
        assert!(with_roots(&["start", "abc", "--fork"]).is_err());
        assert!(with_roots(&["start", "abc", "--bogus"]).is_err());
        let (_, c) = with_roots(&["exec", "abc", "/p.json"]).unwrap();
        assert!(
            matches!(c, Cmd::Exec { id, process, how } if id == "abc" && process == std::path::Path::new("/p.json") && how == exec::How::default())
        );
        let (_, c) = with_roots(&["exec", "abc", "/p.json", "--detach"]).unwrap();
        assert!(matches!(c, Cmd::Exec { how, .. } if how.detach && !how.stream));
        assert!(with_roots(&["exec", "abc", "/p.json", "--stream", "--detach"]).is_err());
        let (_, c) = with_roots(&["probe", "abc", "/p.json"]).unwrap();
        assert!(matches!(c, Cmd::Probe { id, .. } if id == "abc"));
        let (_, c) = with_roots(&["dns", "front", "--serve"]).unwrap();
        assert!(matches!(c, Cmd::Dns { network, serve: true } if network == "front"));
        assert!(parse(&s(&["start", "abc"])).is_err());
        assert!(with_roots(&["stop", "abc"]).is_err());
    }
}
