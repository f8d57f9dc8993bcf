//! Protection against runc CVE-2019-5736: a container process that can
//! reach our process through /proc/PID/exe could reopen the host's
//! berth-runtime binary for writing once we exit. Before entering a
//! container we re-execute from a sealed in-memory copy, so that link
//! leads to an unwritable memfd instead of the host file.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};

const MARK: &str = "_BERTH_RUNTIME_CLONED";

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
