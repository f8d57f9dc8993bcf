//! Protection against runc CVE-2019-5736: a container process that can
//! reach our process through /proc/PID/exe could reopen the host's
//! berth-runtime binary for writing once we exit. Before entering a
//! container we re-execute from a sealed in-memory copy, so that link
//! leads to an unwritable memfd instead of the host file, for the
//! invocations that enter a container which may already hold processes
//! (`exec`, or a container joining an existing pid namespace).
//!
//! A container with a new pid namespace of its own holds no process but
//! our init until the init execs, and the init makes itself non-dumpable
//! at once, so /proc/1/exe cannot be opened by anything the container
//! runs: there the copy (a few milliseconds) is skipped.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};

const MARK: &str = "_BERTH_RUNTIME_CLONED";

/// Whether this invocation of `berth-runtime` must run from a sealed copy:
/// always for `exec`; for `create` and `run` unless the bundle's config
/// gives the container a new pid namespace (anything unreadable: copy).
pub fn needs_sealed_copy(args: &[OsString]) -> bool {
    let verb = args
        .iter()
        .skip(1)
        .position(|a| a == "create" || a == "run" || a == "exec");
    let Some(i) = verb.map(|i| i + 1) else {
        return false;
    };
    if args[i] == "exec" {
        return true;
    }
    let mut bundle = std::path::PathBuf::from(".");
    let mut it = args.iter().skip(i + 1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--bundle" || s == "-b" {
            if let Some(v) = it.next() {
                bundle = v.into();
            }
        } else if let Some(v) = s.strip_prefix("--bundle=") {
            bundle = v.into();
        }
    }
    let Ok(bytes) = std::fs::read(bundle.join("config.json")) else {
        return true;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return true;
    };
    let own_pidns = v["linux"]["namespaces"].as_array().is_some_and(|ns| {
        ns.iter()
            .any(|n| n["type"] == "pid" && n["path"].as_str().is_none_or(str::is_empty))
    });
    !own_pidns
}

/// Re-executes this binary from a sealed memfd unless it already runs from
/// one; `enters_container` tells whether this invocation will. Returns
/// Ok when no re-exec is needed, else only on failure.
pub fn ensure_cloned(enters_container: impl Fn(&[OsString]) -> bool) -> io::Result<()> {
    if std::env::var_os(MARK).is_some() {
        // Not for the container's environment (ours never reaches it, but
        // hooks and children of this process should not see it either).
        std::env::remove_var(MARK);
        return Ok(());
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    if !enters_container(&args) {
        return Ok(());
    }
    let mut exe = File::open("/proc/self/exe")?;
    let memfd = memfd_create(
        "berth-runtime",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut out = File::from(memfd);
    io::copy(&mut exe, &mut out)?;
    fcntl_add_seals(
        out.as_fd(),
        SealFlags::SEAL
            | SealFlags::SHRINK
            | SealFlags::GROW
            | SealFlags::WRITE
            | SealFlags::FUTURE_WRITE,
    )?;
    let mut env: Vec<OsString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut s = k;
            s.push("=");
            s.push(v);
            s
        })
        .collect();
    env.push(OsString::from(format!("{MARK}=1")));
    Err(berth_sys::process::fexecve(out.as_fd(), &args, &env))
}
