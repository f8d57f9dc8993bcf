//! The typed channel between the runtime and the container's init while it
//! is being set up: a SOCK_SEQPACKET pair, one JSON message per packet, and
//! descriptors passed beside a message. The init sends its errors back here
//! instead of only logging them, so `create` fails with the real cause.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::{Deserialize, Serialize};

use crate::error::{errno, Error, Result};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Msg {
    /// Parent → init: ids are mapped (and, for an init that makes its cgroup
    /// namespace, the cgroup joined; others are moved meanwhile); go on. Carries
    /// the state JSON that the init's own hooks get on stdin.
    Go { state: String },
    /// Init → parent: mounts are ready; run the prestart and createRuntime hooks.
    RunHooks,
    /// Parent → init: hooks done.
    HooksDone,
    /// Init → parent: here is the seccomp notify listener (fd attached).
    SeccompListener,
    /// Init → parent: set up and waiting for start.
    Ready,
    /// Parent → init: start now (the `run` path, where no fifo is needed).
    Start,
    /// Either way: the setup failed.
    Error { msg: String },
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(errno("creating the sync socket"))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        self.send_with_fd(msg, None)
    }

    pub fn send_with_fd(&self, msg: &Msg, fd: Option<BorrowedFd<'_>>) -> Result<()> {
        let body = serde_json::to_vec(msg).map_err(|e| Error::Init(e.to_string()))?;
        let fds;
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = SendAncillaryBuffer::new(&mut space);
        if let Some(fd) = fd {
            fds = [fd];
            anc.push(SendAncillaryMessage::ScmRights(&fds));
        }
        sendmsg(
            &self.fd,
            &[std::io::IoSlice::new(&body)],
            &mut anc,
            SendFlags::NOSIGNAL,
        )
        .map_err(errno("writing to the sync socket"))?;
        Ok(())
    }

    /// Receives one message; `Ok(None)` when the other side closed without a
    /// word (it died).
    pub fn recv(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        let n = loop {
            match recvmsg(
                &self.fd,
                &mut [IoSliceMut::new(&mut buf)],
                &mut anc,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(r) => break r.bytes,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(errno("reading from the sync socket")(e)),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let mut fd = None;
        for m in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                fd = fds.next();
            }
        }
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::Init(format!("bad message from init: {e}")))?;
        Ok(Some((msg, fd)))
    }

    /// Waits for `want`; an `Error` message or a closed channel becomes an error.
    pub fn expect(&self, want: Msg) -> Result<Option<OwnedFd>> {
        match self.recv()? {
            Some((m, fd)) if m == want => Ok(fd),
            Some((Msg::Error { msg }, _)) => Err(Error::Init(msg)),
            Some((m, _)) => Err(Error::Init(format!("expected {want:?}, got {m:?}"))),
            None => Err(Error::Init("container init exited during setup".into())),
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_fds_cross() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Ready).unwrap();
        assert!(b.expect(Msg::Ready).unwrap().is_none());
        let f = std::fs::File::open("/dev/null").unwrap();
        b.send_with_fd(&Msg::SeccompListener, Some(f.as_fd()))
            .unwrap();
        let fd = a.expect(Msg::SeccompListener).unwrap();
        assert!(fd.is_some());
        b.send(&Msg::Error {
            msg: "mount /proc: denied".into(),
        })
        .unwrap();
        let e = a.expect(Msg::Ready).unwrap_err();
        assert!(e.to_string().contains("mount /proc: denied"), "{e}");
        drop(b);
        assert!(a
            .expect(Msg::Ready)
            .unwrap_err()
            .to_string()
            .contains("exited"));
    }
}
