//! `berth-init -- CMD [ARG...]`: PID 1 of a `berth run --init` container.
//! It runs CMD as its only child, forwards every signal it receives to it,
//! reaps every process reparented to it, and exits with CMD's code (128 +
//! the signal when CMD was killed), as docker's tini does.
//!
//! No handlers: every signal is blocked and read from a signalfd, so none
//! is lost between the spawn and the loop. The child unblocks them all
//! before exec (std's `Command` keeps the parent's mask, so it forks and
//! execs itself).
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io::ErrorKind;
use std::process::ExitCode;

use berth_sys::process::{fork_with_flags, Forked};

use rustix::process::{Pid, Signal, WaitOptions};

const SIGCHLD: i32 = 17;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => &args[..],
    };
    let Some(prog) = cmd.first() else {
        eprintln!("usage: berth-init -- CMD [ARG...]");
        return ExitCode::from(125);
    };
    // Every catchable signal; 32 and 33 belong to the C library.
    let signals: Vec<i32> = (1..=64).filter(|s| ![9, 19, 32, 33].contains(s)).collect();
    let sfd = match berth_sys::signal::block(&signals)
        .and_then(|()| berth_sys::signal::signalfd(&signals))
    {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("berth-init: signals: {e}");
            return ExitCode::from(125);
        }
    };
    let child = match fork_with_flags(0, false, None) {
        Ok(Forked::Parent { pid, .. }) => pid,
        Ok(Forked::Child) => exec(prog, cmd),
        Err(e) => {
            eprintln!("berth-init: fork: {e}");
            return ExitCode::from(125);
        }
    };
    loop {
        let sig = match berth_sys::signal::read_signal(&sfd) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("berth-init: reading signals: {e}");
                return ExitCode::from(125);
            }
        };
        if sig != SIGCHLD {
            if let (Some(p), Some(s)) = (Pid::from_raw(child), Signal::from_named_raw(sig)) {
                let _ = rustix::process::kill_process(p, s);
            }
            continue;
        }
        // One SIGCHLD may stand for many exits: reap until none is left.
        while let Ok(Some((pid, st))) = rustix::process::waitpid(None, WaitOptions::NOHANG) {
            if pid.as_raw_nonzero().get() == child {
                let code = match (st.exit_status(), st.terminating_signal()) {
                    (Some(c), _) => c,
                    (None, Some(s)) => 128 + s,
                    _ => 255,
                };
                return ExitCode::from(code.clamp(0, 255) as u8);
            }
        }
    }
}

/// The child: default signal state, then `prog` found as a shell would
/// (a name with no slash searched in $PATH). Exits 127 when it is not
/// found and 126 when it cannot be run, as docker's shells do.
fn exec(prog: &str, argv: &[String]) -> ! {
    if let Err(e) = berth_sys::signal::reset_all() {
        eprintln!("berth-init: resetting signals: {e}");
        berth_sys::process::exit_now(125);
    }
    let env: Vec<OsString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
    let candidates: Vec<OsString> = if prog.contains('/') {
        vec![prog.into()]
    } else {
        let path = std::env::var("PATH").unwrap_or_else(|_| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        });
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/{prog}").into())
            .collect()
    };
    let mut err = std::io::Error::from(ErrorKind::NotFound);
    for c in &candidates {
        let e = berth_sys::process::execve(c, argv, &env);
        // The first that exists but cannot run decides the error.
        if e.kind() != ErrorKind::NotFound || err.kind() == ErrorKind::NotFound {
            err = e;
        }
    }
    eprintln!("berth-init: exec {prog:?}: {err}");
    berth_sys::process::exit_now(if err.kind() == ErrorKind::NotFound {
        127
    } else {
        126
    })
}
