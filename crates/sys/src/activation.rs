//! systemd's socket activation: the listening sockets a service manager
//! passed us as fds 3.. with `LISTEN_PID` and `LISTEN_FDS` (sd_listen_fds).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
const FIRST: i32 = 3;

/// Takes the sockets passed to this process, once: the variables are
/// removed so a child does not take them too. None passed is an empty list.
pub fn listen_fds() -> io::Result<Vec<OwnedFd>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    let (Some(pid), Some(count)) = (pid, count) else {
        return Ok(Vec::new());
    };
    // Meant for another process (we inherited the variables).
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let n: i32 = count
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("LISTEN_FDS={count}")))?;
    let mut fds = Vec::new();
    for fd in FIRST..FIRST + n {
        // The fd must be open before we claim it: OwnedFd on a closed
        // number would close whatever reuses it later.
        // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: systemd passed this fd to us alone (LISTEN_PID is ours),
        // it is open (checked above), and nothing else in this process
        // owns it: the variables are gone, so it is claimed once.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
        fds.push(owned);
    }
    Ok(fds)
}
