//! The client end of an attach stream: our stdin to the container (with
//! the detach keys watched for), its output to our stdout and stderr, our
//! terminal in raw mode and its size passed on, and, without a tty, the
//! signals we receive forwarded to the container (`--sig-proxy`).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result};
use berth_engine::stream::{self, DetachWatch, Kind};
use berth_engine::Engine;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::termios::{self, OptionalActions, Termios};

/// docker's default `--detach-keys`.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// The signals `--sig-proxy` passes on (docker forwards all but the ones
/// about the client itself: SIGCHLD, SIGPIPE, SIGWINCH, SIGURG).
const PROXIED: [i32; 7] = [1, 2, 3, 10, 12, 14, 15];
const SIGWINCH: i32 = 28;

pub struct Session<'a> {
    pub engine: &'a Engine,
    pub id: String,
    pub sock: UnixStream,
    pub tty: bool,
    /// Forward our stdin.
    pub stdin: bool,
    /// Show the container's output streams (`run -a` picks).
    pub output: Output,
    pub detach_keys: Vec<u8>,
    pub sig_proxy: bool,
}

/// Which of the container's output streams a session shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub stdout: bool,
    pub stderr: bool,
}

impl Output {
    pub const BOTH: Output = Output {
        stdout: true,
        stderr: true,
    };
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    /// The user typed the detach keys; the container runs on.
    Detached,
    /// The stream ended without an exit code (the monitor went away).
    Closed,
}

/// Our terminal's size, if stdin or stdout is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    let ws = termios::tcgetwinsize(std::io::stdin())
        .or_else(|_| termios::tcgetwinsize(std::io::stdout()))
        .ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

pub fn stdin_is_terminal() -> bool {
    termios::isatty(std::io::stdin())
}

/// Puts stdin's terminal in raw mode until dropped: keys go to the
/// container's pty, whose own line discipline echoes and edits.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            raw.make_raw();
            let _ = termios::tcsetattr(&stdin, OptionalActions::Now, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, t);
        }
    }
}

impl Session<'_> {
    pub fn run(mut self) -> Result<Outcome> {
        let mut signals = vec![SIGWINCH];
        if self.sig_proxy && !self.tty {
            signals.extend(PROXIED);
        }
        // Blocked and read from a signalfd: no handler, no unsafe. Children
        // we spawn later start with an empty mask (std resets it).
        berth_sys::signal::block(&signals).context("blocking signals")?;
        let sigfd = berth_sys::signal::signalfd(&signals).context("signalfd")?;
        let _raw = (self.tty && stdin_is_terminal()).then(RawMode::enter);
        if self.tty {
            if let Some((r, c)) = terminal_size() {
                self.send(&stream::resize(r, c))?;
            }
        }
        let mut watch = DetachWatch::new(if self.tty {
            self.detach_keys.clone()
        } else {
            // Piped input is data: a stray ctrl-p must not detach.
            Vec::new()
        });
        let mut frames = stream::Decoder::default();
        let mut stdin_open = self.stdin;
        let mut buf = vec![0u8; 32 * 1024];
        let mut out = std::io::stdout();
        let mut err = std::io::stderr();
        loop {
            let (sock_ready, stdin_ready, sig_ready) = {
                let stdin = std::io::stdin();
                let mut fds = vec![
                    PollFd::new(&self.sock, PollFlags::IN),
                    PollFd::new(&sigfd, PollFlags::IN),
                ];
                if stdin_open {
                    fds.push(PollFd::new(&stdin, PollFlags::IN));
                }
                match poll(&mut fds, None) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e).context("poll"),
                }
                let ready = |k: usize| fds.get(k).is_some_and(|f| !f.revents().is_empty());
                (ready(0), ready(2), ready(1))
            };
            if sig_ready {
                self.signal(&sigfd)?;
            }
            if stdin_ready {
                let n = match std::io::stdin().lock().read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => 0,
                };
                if n == 0 {
                    stdin_open = false;
                    self.send(&stream::encode(Kind::StdinEof, &[]))?;
                } else {
                    let (data, detach) = watch.feed(&buf[..n]);
                    if !data.is_empty() {
                        self.send(&stream::encode(Kind::Stdin, &data))?;
                    }
                    if detach {
                        return Ok(Outcome::Detached);
                    }
                }
            }
            if sock_ready {
                let n = match self.sock.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => 0,
                };
                if n == 0 {
                    return Ok(Outcome::Closed);
                }
                frames.push(&buf[..n]);
                while let Some((kind, body)) = frames
                    .next_frame()
                    .map_err(|_| anyhow::anyhow!("the monitor sent a malformed frame"))?
                {
                    match kind {
                        Kind::Stdout if self.output.stdout => {
                            out.write_all(&body)?;
                            out.flush()?;
                        }
                        Kind::Stderr if self.output.stderr => {
                            err.write_all(&body)?;
                            err.flush()?;
                        }
                        Kind::Exit => {
                            let code = String::from_utf8_lossy(&body).trim().parse().unwrap_or(255);
                            return Ok(Outcome::Exited(code));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn send(&self, frame: &[u8]) -> Result<()> {
        // The monitor gone while we type is seen on the read side.
        let _ = (&self.sock).write_all(frame);
        Ok(())
    }

    fn signal(&self, sigfd: &OwnedFd) -> Result<()> {
        let sig = berth_sys::signal::read_signal(sigfd).context("reading a signal")?;
        if sig == SIGWINCH {
            if let Some((r, c)) = terminal_size() {
                self.send(&stream::resize(r, c))?;
            }
        } else if let Err(e) = self.engine.kill(&self.id, &sig.to_string()) {
            // It may have exited already: the stream tells us soon.
            eprintln!("berth: forwarding signal {sig}: {e}");
        }
        Ok(())
    }
}

/// A connected pair: ours, and the one handed to the monitor.
pub fn pair() -> Result<(UnixStream, OwnedFd)> {
    let (a, b) = UnixStream::pair().context("creating a socket pair")?;
    Ok((a, b.into()))
}
