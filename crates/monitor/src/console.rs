//! The container's pty: a socket for the runtime's init to send the master
//! to (`--console-socket`), and the master's size.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::termios::Winsize;

/// Binds a console socket at `path` (short enough for a socket address).
pub fn listen(path: &Path) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
}

/// Takes the pty master the init sent (it is queued by the time the
/// runtime's create returns).
pub fn receive(listener: &UnixListener) -> std::io::Result<OwnedFd> {
    let (stream, _) = listener.accept()?;
    let mut body = [0u8; 64];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut body)],
        &mut anc,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut master = None;
    for m in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            master = fds.next();
        }
    }
    master.ok_or_else(|| std::io::Error::other("the console message carried no pty"))
}

pub fn resize(master: impl AsFd, rows: u16, cols: u16) {
    let _ = rustix::termios::tcsetwinsize(
        master,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    );
}
