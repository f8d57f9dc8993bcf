//! Loading a compiled seccomp BPF program with seccomp(2).
//!
//! libseccomp can load filters itself, but it keeps the user-notification
//! listener in its own global state (where only `unsafe` code could take
//! ownership of it) and its 2.5 series knows no newer flags. Loading the
//! exported program here hands the listener back as an `OwnedFd` and lets
//! the caller pass any flag the kernel knows.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Size of one `struct sock_filter` (u16 code, u8 jt, u8 jf, u32 k).
const INSN_LEN: usize = 8;

/// The `SECCOMP_FILTER_FLAG_*` flags of one load, one bool per kernel flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterFlags {
    /// `SECCOMP_FILTER_FLAG_TSYNC`: put every thread of the process under
    /// the filter.
    pub tsync: bool,
    /// `SECCOMP_FILTER_FLAG_LOG`: log every action but allow.
    pub log: bool,
    /// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: leave speculative store bypass
    /// mitigation off.
    pub spec_allow: bool,
    /// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: return a user-notification fd.
    pub new_listener: bool,
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (Linux 5.19): a notifying
    /// task waits killably once the supervisor has received the request.
    pub wait_killable_recv: bool,
}

impl FilterFlags {
    fn bits(self) -> libc::c_ulong {
        let mut bits = 0;
        if self.tsync {
            bits |= libc::SECCOMP_FILTER_FLAG_TSYNC;
            if self.new_listener {
                // TSYNC reports a failed sync as a positive thread id, which
                // would be ambiguous with the listener fd: the kernel only
                // accepts both together with TSYNC_ESRCH (failure = ESRCH).
                bits |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
            }
        }
        if self.log {
            bits |= libc::SECCOMP_FILTER_FLAG_LOG;
        }
        if self.spec_allow {
            bits |= libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW;
        }
        if self.new_listener {
            bits |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        }
        if self.wait_killable_recv {
            bits |= libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        }
        bits
    }
}

/// Installs `program` (classic BPF as `struct sock_filter` records in native
/// byte order, as `seccomp_export_bpf` writes them) on the calling thread,
/// or the whole process with `flags.tsync`. The caller must have set
/// no_new_privs or hold CAP_SYS_ADMIN. Returns the listener fd when
/// `flags.new_listener` is set.
pub fn set_mode_filter(program: &[u8], flags: FilterFlags) -> io::Result<Option<OwnedFd>> {
    if program.is_empty() || program.len() % INSN_LEN != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "bpf program of {} bytes is not whole instructions",
                program.len()
            ),
        ));
    }
    let insns: Vec<libc::sock_filter> = program
        .chunks_exact(INSN_LEN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let len = u16::try_from(insns.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bpf program of {} instructions is too long", insns.len()),
        )
    })?;
    let prog = libc::sock_fprog {
        len,
        filter: insns.as_ptr().cast_mut(),
    };
    let bits = flags.bits();
    // SAFETY: `prog` points at `len` initialised instructions in `insns`,
    // both alive for the call; the kernel copies the program and does not
    // keep the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            bits,
            std::ptr::addr_of!(prog),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags.new_listener {
        let fd = i32::try_from(ret)
            .map_err(|_| io::Error::other(format!("seccomp returned {ret}, not a descriptor")))?;
        // SAFETY: with NEW_LISTENER a non-negative return is a new
        // descriptor (close-on-exec) that nothing else owns yet.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    if ret > 0 {
        // Plain TSYNC: a positive return is the id of a thread that could
        // not be synchronised, and nothing was installed.
        return Err(io::Error::other(format!(
            "thread {ret} could not sync to the seccomp filter"
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_partial_instructions() {
        let err = set_mode_filter(&[0u8; 12], FilterFlags::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = set_mode_filter(&[], FilterFlags::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn tsync_with_listener_adds_esrch() {
        let f = FilterFlags {
            tsync: true,
            new_listener: true,
            ..Default::default()
        };
        assert_ne!(f.bits() & libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH, 0);
        let f = FilterFlags {
            tsync: true,
            ..Default::default()
        };
        assert_eq!(f.bits() & libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH, 0);
    }
}
