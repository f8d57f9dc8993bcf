//! `run` with a terminal and no console socket (runc's interactive run):
//! we receive the pty master ourselves and shuttle bytes between it and
//! our stdin/stdout, with our terminal in raw mode, window size changes
//! passed on, and other signals forwarded to the container.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::process::{Pid, Signal, WaitOptions};
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize, OptionalActions, Termios};

use crate::container::exit_code;
use crate::error::{errno, io_err, Error, Result};

pub(crate) struct Proxy {
    path: PathBuf,
    listener: UnixListener,
    master: Option<OwnedFd>,
    saved: Option<Termios>,
}

impl Proxy {
    /// A listening socket for the init to send the pty master to.
    pub fn listen() -> Result<Proxy> {
        let path = std::env::temp_dir().join(format!("berth-console-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(io_err(format!("binding {}", path.display())))?;
        Ok(Proxy {
            path,
            listener,
            master: None,
            saved: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the master the init sent during create (already queued).
    pub fn accept(mut self) -> Result<Proxy> {
        let (stream, _) = self
            .listener
            .accept()
            .map_err(io_err("accepting the console connection"))?;
        let mut buf = [0u8; 64];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        recvmsg(
            &stream,
            &mut [IoSliceMut::new(&mut buf)],
            &mut anc,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(errno("receiving the pty"))?;
        for m in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                self.master = fds.next();
            }
        }
        if self.master.is_none() {
            return Err(Error::Init("the console message carried no pty".into()));
        }
        let stdin = std::io::stdin();
        if let Ok(t) = tcgetattr(&stdin) {
            let mut raw = t.clone();
            raw.make_raw();
            let _ = tcsetattr(&stdin, OptionalActions::Now, &raw);
            self.saved = Some(t);
            self.resize();
        }
        Ok(self)
    }

    fn resize(&self) {
        if let (Some(m), Ok(ws)) = (&self.master, tcgetwinsize(std::io::stdin())) {
            let _ = tcsetwinsize(m, ws);
        }
    }

    /// Copies bytes both ways until the container's process exits; returns
    /// its exit code.
    pub fn pump(&mut self, pid: i32, sfd: &OwnedFd) -> Result<i32> {
        let master = self
            .master
            .as_ref()
            .ok_or_else(|| Error::Init("no pty".into()))?;
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let p = Pid::from_raw(pid).ok_or_else(|| Error::Init("bad pid".into()))?;
        let mut stdin_open = true;
        let mut master_open = true;
        let mut buf = vec![0u8; 32 * 1024];
        let mut status = None;
        loop {
            if status.is_none() {
                if let Some((_, st)) = rustix::process::waitpid(Some(p), WaitOptions::NOHANG)
                    .map_err(errno("waiting for the container"))?
                {
                    status = Some(exit_code(st));
                }
            }
            if status.is_some() && !master_open {
                break;
            }
            let mut fds = vec![
                PollFd::new(sfd, PollFlags::IN),
                PollFd::new(master, PollFlags::IN),
            ];
            if stdin_open {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
            // Once the process is gone, only drain what the pty still holds.
            let timeout = status.map(|_| rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            });
            match poll(&mut fds, timeout.as_ref()) {
                Ok(0) => break,
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(errno("poll")(e)),
            }
            let ready: Vec<PollFlags> = fds.iter().map(|f| f.revents()).collect();
            if !ready[0].is_empty() {
                let sig = berth_sys::signal::read_signal(sfd).map_err(io_err("reading signals"))?;
                match sig {
                    17 => {}
                    28 => self.resize(),
                    s => {
                        let _ = rustix::process::kill_process(
                            p,
                            Signal::from_named_raw(s).unwrap_or(Signal::TERM),
                        );
                    }
                }
            }
            if !ready[1].is_empty() {
                match rustix::io::read(master, &mut buf) {
                    Ok(0) | Err(Errno::IO) => master_open = false,
                    Ok(n) => write_all(&stdout, &buf[..n]),
                    Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                    Err(_) => master_open = false,
                }
                if !master_open && status.is_none() {
                    // The slave closed; the process exits next.
                    let (_, st) = rustix::process::waitpid(Some(p), WaitOptions::empty())
                        .map_err(errno("waiting for the container"))?
                        .ok_or_else(|| Error::Init("the container vanished".into()))?;
                    status = Some(exit_code(st));
                }
            }
            if stdin_open && ready.len() > 2 && !ready[2].is_empty() {
                match rustix::io::read(&stdin, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => write_all(master, &buf[..n]),
                }
            }
        }
        Ok(status.unwrap_or(255))
    }
}

fn write_all(fd: impl AsFd, mut data: &[u8]) {
    while !data.is_empty() {
        match rustix::io::write(&fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
            Err(_) => return,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, t);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
