//! The container's terminal: a pty from the container's own devpts, its
//! master handed to whoever listens on `--console-socket`, its slave made
//! the process's controlling terminal and stdio, and bound on /dev/console.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rustix::pty::{openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::Winsize;

use super::paths::{ensure_target, fd_path};
use crate::error::{errno, Result};

/// Makes the pty, sends its master over `socket` and returns the slave.
pub fn setup(socket: &OwnedFd, size: Option<(u16, u16)>, bind_console: bool) -> Result<OwnedFd> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(errno("opening /dev/ptmx"))?;
    unlockpt(&master).map_err(errno("unlocking the pty"))?;
    let name = ptsname(&master, Vec::new()).map_err(errno("naming the pty"))?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening the pty slave"))?;
    if let Some((h, w)) = size {
        rustix::termios::tcsetwinsize(
            &master,
            Winsize {
                ws_row: h,
                ws_col: w,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .map_err(errno("setting the console size"))?;
    }
    if bind_console {
        let root = rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno("opening /"))?;
        let target = ensure_target(&root, Path::new("/dev/console"), false)?;
        rustix::mount::mount_bind(fd_path(&slave).as_str(), fd_path(&target).as_str())
            .map_err(errno("binding /dev/console"))?;
    }
    let fds = [master.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    // runc sends the pty's name as the message body; containerd reads it.
    sendmsg(
        socket,
        &[std::io::IoSlice::new(b"/dev/ptmx")],
        &mut anc,
        SendFlags::NOSIGNAL,
    )
    .map_err(errno("sending the pty to the console socket"))?;
    drop(master);
    Ok(slave)
}

/// Makes `slave` the controlling terminal and the stdio of this process.
pub fn attach(slave: &OwnedFd) -> Result<()> {
    rustix::process::setsid().map_err(errno("setsid"))?;
    rustix::process::ioctl_tiocsctty(slave).map_err(errno("setting the controlling terminal"))?;
    rustix::stdio::dup2_stdin(slave).map_err(errno("dup2 stdin"))?;
    rustix::stdio::dup2_stdout(slave).map_err(errno("dup2 stdout"))?;
    rustix::stdio::dup2_stderr(slave).map_err(errno("dup2 stderr"))?;
    Ok(())
}
