//! The container's stdio as the monitor holds it: output pipes (or the
//! pty master) copied to the json-file log and to attached clients, and
//! where attached clients' input goes.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use berth_engine::logs::{LineSplitter, Stream};
use berth_engine::stream::Kind;

use crate::clients::Clients;

/// The json-file log, created at its first record: a container that
/// writes nothing costs no file (readers take a missing log as empty).
pub struct LazyLog {
    path: PathBuf,
    file: Option<File>,
}

impl LazyLog {
    pub fn new(path: PathBuf) -> LazyLog {
        LazyLog { path, file: None }
    }

    fn file(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.file = Some(f);
        }
        // Just filled when it was empty.
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::from(IoKind::NotFound))
    }
}

impl Write for LazyLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.file()?.write(b)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// One of the container's output streams.
pub struct Output {
    pipe: Option<File>,
    stream: Stream,
    lines: LineSplitter,
}

impl Output {
    fn new(f: File, stream: Stream) -> Output {
        Output {
            pipe: Some(f),
            stream,
            lines: LineSplitter::default(),
        }
    }

    pub fn file(&self) -> Option<&File> {
        self.pipe.as_ref()
    }

    /// Reads what is there; false at end of stream (a pty master reads
    /// EIO once the last slave is closed: that is its end too).
    pub fn pump(&mut self, log: &mut impl Write, buf: &mut [u8], clients: &mut Clients) -> bool {
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

    fn close(&mut self, log: &mut impl Write) {
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
    pub fn pipes(out: OwnedFd, err: OwnedFd) -> Stdio {
        Stdio {
            outs: vec![
                Output::new(File::from(out), Stream::Stdout),
                Output::new(File::from(err), Stream::Stderr),
            ],
            stdin: None,
            master: None,
        }
    }

    pub fn pty(master: File) -> std::io::Result<Stdio> {
        Ok(Stdio {
            outs: vec![Output::new(master.try_clone()?, Stream::Stdout)],
            stdin: Some(master.try_clone()?),
            master: Some(master),
        })
    }

    /// After the exit: what the container wrote before it died is still
    /// buffered; its other processes died with it (pid namespace), so the
    /// drain ends.
    pub fn drain(&mut self, log: &mut impl Write, buf: &mut [u8], clients: &mut Clients) {
        for o in self.outs.iter_mut() {
            if let Some(p) = &o.pipe {
                let _ = rustix::fs::fcntl_setfl(p, rustix::fs::OFlags::NONBLOCK);
            }
            while o.pump(log, buf, clients) {}
            o.close(log);
        }
    }
}
