//! Attaching to a container's stdio: at start (the stream is handed to the
//! new monitor before the process runs, so no output is missed) or later
//! through the monitor's socket. The frames are [`crate::stream`]'s.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use crate::container::Engine;
use crate::db::State;
use crate::error::{io_err, Error, Result};
use crate::monitor;
use crate::stream;

/// A client's end of the stream given to `start`.
#[derive(Debug)]
pub struct AttachTo {
    /// Becomes the monitor's stdout; the monitor serves frames on it.
    pub stream: OwnedFd,
    /// The client's terminal size, for a `-t` container's pty from the start.
    pub console_size: Option<(u16, u16)>,
}

/// Sets `process.consoleSize` so the pty has the client's size at once.
pub(crate) fn set_console_size(s: &mut oci_spec::runtime::Spec, (rows, cols): (u16, u16)) {
    if let Some(mut p) = s.process().clone() {
        let b = oci_spec::runtime::BoxBuilder::default()
            .height(u64::from(rows))
            .width(u64::from(cols))
            .build();
        if let Ok(b) = b {
            p.set_console_size(Some(b));
            s.set_process(Some(p));
        }
    }
}

impl Engine {
    /// `attach`: a stream to a running container's stdio, from its monitor.
    pub fn attach(&self, key: &str) -> Result<(String, UnixStream)> {
        let c = self.find(key)?;
        if c.state != State::Running {
            return Err(Error::WrongState {
                id: c.id,
                state: c.state.to_string(),
                op: "attach (it is not running)",
            });
        }
        let (_dir, addr) = monitor::socket_addr(&self.paths, &c.id)?;
        let mut s = UnixStream::connect(&addr)
            .map_err(io_err(format!("connecting to the monitor of {}", c.id)))?;
        s.write_all(stream::ATTACH_LINE)
            .map_err(io_err("writing to the monitor"))?;
        Ok((c.id, s))
    }
}
