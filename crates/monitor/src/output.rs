//! The container's stdio as the monitor holds it: output pipes (or the
//! pty master) copied to the json-file log and to attached clients, and
//! where attached clients' input goes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind as IoKind, Read};
use std::os::fd::OwnedFd;

use berth_engine::logfile::LogWriter;
use berth_engine::logs::{LineSplitter, Stream};
use berth_engine::stream::Kind;

use crate::clients::Clients;

/// One of the container's output streams.
pub struct Output {
    pipe: Option<File>,
    stream: Stream,
    lines: LineSplitter,
}

impl Output {
    fn new(f: File, stream: Stream, attrs: &BTreeMap<String, String>) -> Output {
        Output {
            pipe: Some(f),
            stream,
            lines: LineSplitter::with_attrs(attrs.clone()),
        }
    }

    pub fn file(&self) -> Option<&File> {
        self.pipe.as_ref()
    }

    /// Reads what is there; false at end of stream (a pty master reads
    /// EIO once the last slave is closed: that is its end too).
    pub fn pump(&mut self, log: &mut LogWriter, buf: &mut [u8], clients: &mut Clients) -> bool {
        let Some(p) = self.pipe.as_mut() else {
            return false;
        };
        match p.read(buf) {
            Ok(0) => {
                self.close(log);
                false
            }
            Ok(n) => {
                if let Err(e) = self.lines.feed(&buf[..n], self.stream, log) {
                    eprintln!("berth-monitor: writing the log: {e}");
                }
                let kind = match self.stream {
                    Stream::Stdout => Kind::Stdout,
                    Stream::Stderr => Kind::Stderr,
                };
                clients.output(kind, &buf[..n]);
                true
            }
            Err(e) if e.kind() == IoKind::Interrupted => true,
            Err(e) if e.kind() == IoKind::WouldBlock => false,
            Err(_) => {
                self.close(log);
                false
            }
        }
    }

    fn close(&mut self, log: &mut LogWriter) {
        self.pipe = None;
        let _ = self.lines.finish(self.stream, log);
    }
}

#[derive(Default)]
pub struct Stdio {
    pub outs: Vec<Output>,
    /// The container's stdin: a pipe with `-i`, the pty master with `-t`.
    pub stdin: Option<File>,
    /// With `-t`, for resizes.
    pub master: Option<File>,
}

impl Stdio {
    /// The container's output pipes; `attrs` go with each log record.
    pub fn pipes(out: OwnedFd, err: OwnedFd, attrs: &BTreeMap<String, String>) -> Stdio {
        Stdio {
            outs: vec![
                Output::new(File::from(out), Stream::Stdout, attrs),
                Output::new(File::from(err), Stream::Stderr, attrs),
            ],
            stdin: None,
            master: None,
        }
    }

    pub fn pty(master: File, attrs: &BTreeMap<String, String>) -> std::io::Result<Stdio> {
        Ok(Stdio {
            outs: vec![Output::new(master.try_clone()?, Stream::Stdout, attrs)],
            stdin: Some(master.try_clone()?),
            master: Some(master),
        })
    }

    /// After the exit: what the container wrote before it died is still
    /// buffered; its other processes died with it (pid namespace), so the
    /// drain ends.
    pub fn drain(&mut self, log: &mut LogWriter, buf: &mut [u8], clients: &mut Clients) {
        for o in self.outs.iter_mut() {
            if let Some(p) = &o.pipe {
                let _ = rustix::fs::fcntl_setfl(p, rustix::fs::OFlags::NONBLOCK);
            }
            while o.pump(log, buf, clients) {}
            o.close(log);
        }
    }
}
