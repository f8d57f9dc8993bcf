//! Signal masks and signalfd, for the foreground runtime that forwards the
//! signals it receives to the container, and for children that must not
//! inherit the parent's mask across exec.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the whole set; sigaddset with a
    // signal number out of range only returns EINVAL, which we ignore.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `signals` for the calling thread.
pub fn block(signals: &[i32]) -> io::Result<()> {
    let set = sigset(signals);
    // SAFETY: `set` is initialised; the old mask is not wanted (null).
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Unblocks `signals` for the calling thread.
pub fn unblock(signals: &[i32]) -> io::Result<()> {
    let set = sigset(signals);
    // SAFETY: `set` is initialised; the old mask is not wanted (null).
    let r = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Unblocks every signal and resets every catchable disposition to the
/// default: what a process must do before exec so the container's process
/// starts clean.
pub fn reset_all() -> io::Result<()> {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || (32..34).contains(&sig) {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; failures for
        // numbers the kernel does not know are harmless and ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let set = sigset(&[]);
    // SAFETY: an empty, initialised set and a null old-mask pointer.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// A signalfd that reports `signals` (which the caller must have blocked).
pub fn signalfd(signals: &[i32]) -> io::Result<OwnedFd> {
    let set = sigset(signals);
    // SAFETY: `set` is initialised; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one signal number from a signalfd made by [`signalfd`].
pub fn read_signal(fd: &OwnedFd) -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    let mut info = std::mem::MaybeUninit::<libc::signalfd_siginfo>::uninit();
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: the buffer is exactly one siginfo record, as signalfd expects.
    let n = unsafe { libc::read(fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != size {
        return Err(io::Error::other("short read from signalfd"));
    }
    // SAFETY: the kernel filled the whole record (checked above).
    let info = unsafe { info.assume_init() };
    Ok(info.ssi_signo as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigset_holds_what_was_added() {
        let set = sigset(&[libc::SIGUSR1]);
        // SAFETY: `set` is initialised.
        assert_eq!(unsafe { libc::sigismember(&set, libc::SIGUSR1) }, 1);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sigismember(&set, libc::SIGUSR2) }, 0);
    }
}
