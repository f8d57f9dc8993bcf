//! Process creation and replacement.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// What a fork-like clone returned, seen from each side.
#[derive(Debug)]
pub enum Forked {
    /// In the parent: the child's pid and, when asked, a pidfd for it.
    Parent { pid: i32, pidfd: Option<OwnedFd> },
    /// In the child.
    Child,
}

/// The number of threads of this process, from /proc/self/stat.
pub fn thread_count() -> io::Result<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Field 2 (comm) may hold spaces and parentheses: count from the last ')'.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::other("malformed /proc/self/stat"))?;
    // After ')' the fields start at 3 (state); num_threads is field 20.
    after
        .split_whitespace()
        .nth(17)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("malformed /proc/self/stat"))
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` from linux/sched.h (not in every libc crate).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks with `flags` (namespace flags such as `CLONE_NEWPID`), like
/// fork(2) but able to create namespaces and, on cgroup v2, to start the
/// child directly in the cgroup open at `cgroup`. Uses clone3 and falls back
/// to clone(2) on kernels without it (then `cgroup` must be `None`).
///
/// Refuses to run in a multi-threaded process: the child would inherit
/// locks held by threads that do not exist in it.
pub fn fork_with_flags(
    flags: u64,
    want_pidfd: bool,
    cgroup: Option<BorrowedFd<'_>>,
) -> io::Result<Forked> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "cannot clone namespaces from a process with {threads} threads"
        )));
    }
    let mut pidfd: i32 = -1;
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if want_pidfd {
        args.flags |= libc::CLONE_PIDFD as u64;
        args.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
    }
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 with a null stack behaves as fork(2): the child gets a
    // copy of this address space and returns here. The process was checked
    // to be single threaded, so no lock is held by a thread that the child
    // would lack. `args` and `pidfd` live across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let ret = if ret == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        if cgroup.is_some() {
            return Err(io::Error::other(
                "clone3 is not available: cannot clone into a cgroup",
            ));
        }
        // SAFETY: as above; clone(2) with a null stack is fork with flags.
        // The pidfd pointer is the parent_tid argument on x86_64 and arm64.
        unsafe {
            libc::syscall(
                libc::SYS_clone,
                (args.flags & 0xffff_ffff) | libc::SIGCHLD as u64,
                0usize,
                std::ptr::addr_of_mut!(pidfd),
                0usize,
                0usize,
            )
        }
    } else {
        ret
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => {
            let pidfd = if want_pidfd && pidfd >= 0 {
                // SAFETY: the kernel just gave us this fd and nobody else owns it.
                Some(unsafe { OwnedFd::from_raw_fd(pidfd) })
            } else {
                None
            };
            Ok(Forked::Parent {
                pid: pid as i32,
                pidfd,
            })
        }
    }
}

fn cstrings<I, S>(items: I) -> io::Result<Vec<CString>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    items
        .into_iter()
        .map(|s| {
            CString::new(s.as_ref().as_bytes()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "argument holds a NUL byte")
            })
        })
        .collect()
}

fn null_terminated(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Replaces this process with `path`; returns only on failure.
pub fn execve<A, E>(path: &OsStr, args: A, env: E) -> io::Error
where
    A: IntoIterator,
    A::Item: AsRef<OsStr>,
    E: IntoIterator,
    E::Item: AsRef<OsStr>,
{
    let (path, args, env) = match (cstrings([path]), cstrings(args), cstrings(env)) {
        (Ok(mut p), Ok(a), Ok(e)) => (p.remove(0), a, e),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let argv = null_terminated(&args);
    let envp = null_terminated(&env);
    // SAFETY: every pointer is to a NUL-terminated string kept alive by
    // `path`, `args` and `env`, and both arrays end with a null pointer.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// Replaces this process with the program open at `fd` (a sealed memfd
/// copy of our own binary, for instance); returns only on failure.
pub fn fexecve<A, E>(fd: BorrowedFd<'_>, args: A, env: E) -> io::Error
where
    A: IntoIterator,
    A::Item: AsRef<OsStr>,
    E: IntoIterator,
    E::Item: AsRef<OsStr>,
{
    let (args, env) = match (cstrings(args), cstrings(env)) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let argv = null_terminated(&args);
    let envp = null_terminated(&env);
    // SAFETY: as in `execve`; `fd` is a valid open descriptor for the call.
    unsafe { libc::fexecve(fd.as_raw_fd(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// Marks every descriptor from `first` up close-on-exec, so that nothing the
/// runtime holds reaches the container's process (runc CVE-2024-21626).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags; with
    // CLOSE_RANGE_CLOEXEC it closes nothing that Rust code might still own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ends this process at once with `code`, without running destructors or
/// atexit handlers: what a forked child must do when it fails before exec,
/// so that it never unwinds into the parent's code.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_sees_test_threads() {
        let n = thread_count().unwrap();
        assert!(n >= 1);
        let h = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        assert!(thread_count().unwrap() > n.min(1));
        h.join().unwrap();
    }

    #[test]
    fn fork_refused_when_threaded() {
        let h = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(300)));
        let e = fork_with_flags(0, false, None).unwrap_err();
        assert!(e.to_string().contains("threads"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn execve_rejects_nul() {
        let e = execve(OsStr::new("/bin/true"), ["a\0b"], Vec::<&str>::new());
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
