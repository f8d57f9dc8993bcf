//! Who is connected to the monitor: the starter's attach stream, clients
//! of `attach` and waiters (`wait`, `logs -f`) on the socket. A socket
//! client is pending until it writes [`stream::ATTACH_LINE`] (then it is
//! attached) or closes; one that never writes is a waiter and hears the
//! exit as a text line, as before attach existed.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use berth_engine::protocol;
use berth_engine::stream::{self, Decoder, Kind};
use rustix::net::RecvFlags;

/// What attached clients ask of the container's stdio.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Stdin(Vec<u8>),
    StdinEof,
    Resize(u16, u16),
}

#[derive(Debug, PartialEq, Eq)]
enum Role {
    Pending(Vec<u8>),
    Attached,
}

struct Client {
    sock: UnixStream,
    role: Role,
    frames: Decoder,
    /// Closed, or broken: dropped at the next sweep.
    gone: bool,
}

/// A slow client is dropped rather than stalling the container's output.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Clients {
    list: Vec<Client>,
}

impl Clients {
    /// The starter's stream (`run`, `start -a`): attached from the start.
    pub fn add_attached(&mut self, sock: UnixStream) {
        let _ = sock.set_write_timeout(Some(WRITE_TIMEOUT));
        self.list.push(Client {
            sock,
            role: Role::Attached,
            frames: Decoder::default(),
            gone: false,
        });
    }

    pub fn accept(&mut self, listener: &UnixListener) {
        while let Ok((sock, _)) = listener.accept() {
            // accept(2) does not pass on the listener's O_NONBLOCK: writes
            // block (with a timeout); reads use MSG_DONTWAIT.
            let _ = sock.set_write_timeout(Some(WRITE_TIMEOUT));
            self.list.push(Client {
                sock,
                role: Role::Pending(Vec::new()),
                frames: Decoder::default(),
                gone: false,
            });
        }
    }

    pub fn sockets(&self) -> impl Iterator<Item = &UnixStream> {
        self.list.iter().map(|c| &c.sock)
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Reads what client `i` sent; returns its requests.
    pub fn read(&mut self, i: usize) -> Vec<Input> {
        let c = &mut self.list[i];
        let mut buf = [0u8; 16 * 1024];
        let n = match rustix::net::recv(&c.sock, &mut buf, RecvFlags::DONTWAIT) {
            Ok((0, _)) => {
                c.gone = true;
                return Vec::new();
            }
            Ok((n, _)) => n,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => return Vec::new(),
            Err(_) => {
                c.gone = true;
                return Vec::new();
            }
        };
        let data = &buf[..n];
        if let Role::Pending(seen) = &mut c.role {
            seen.extend_from_slice(data);
            if seen.len() < stream::ATTACH_LINE.len() {
                return Vec::new();
            }
            if !seen.starts_with(stream::ATTACH_LINE) {
                c.gone = true;
                return Vec::new();
            }
            let rest = seen.split_off(stream::ATTACH_LINE.len());
            c.role = Role::Attached;
            c.frames.push(&rest);
        } else {
            c.frames.push(data);
        }
        let mut out = Vec::new();
        loop {
            match c.frames.next_frame() {
                Ok(Some((Kind::Stdin, b))) => out.push(Input::Stdin(b)),
                Ok(Some((Kind::StdinEof, _))) => out.push(Input::StdinEof),
                Ok(Some((Kind::Resize, b))) => {
                    if let Some((r, col)) = stream::parse_resize(&b) {
                        out.push(Input::Resize(r, col));
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    c.gone = true;
                    break;
                }
            }
        }
        out
    }

    /// Sends output to every attached client.
    pub fn output(&mut self, kind: Kind, data: &[u8]) {
        let frame = stream::encode(kind, data);
        for c in self.list.iter_mut().filter(|c| c.role == Role::Attached) {
            if (&c.sock).write_all(&frame).is_err() {
                c.gone = true;
            }
        }
    }

    /// Forgets clients that left. A detached client just goes: the
    /// container keeps its stdin.
    pub fn sweep(&mut self) {
        self.list.retain(|c| !c.gone);
    }

    /// The container exited with `code` (and it is recorded): attached
    /// clients get an exit frame, waiters the line; all are closed.
    pub fn exited(&mut self, code: i32) {
        for mut c in self.list.drain(..) {
            let msg = match c.role {
                Role::Attached => stream::encode(Kind::Exit, code.to_string().as_bytes()),
                Role::Pending(_) => protocol::exited(code).into_bytes(),
            };
            let _ = c.sock.write_all(&msg);
        }
    }
}
