//! The attach stream between a client (`run`, `start -a`, `attach`,
//! `exec -t`) and the process holding a container's stdio (the monitor, or
//! the exec helper). Frames carry docker's multiplexing header, a stream
//! byte, three zero bytes and a big-endian length, so stdout and stderr
//! stay apart on one socket; berth adds control frames for what docker
//! sends over HTTP (resize, end of stdin, the exit code).
//!
//! On the monitor's socket a client first writes [`ATTACH_LINE`]; a client
//! that writes nothing is a waiter and hears the exit as a text line.

/// What a client writes first on the monitor's socket to attach.
pub const ATTACH_LINE: &[u8] = b"attach\n";

/// The kinds of frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Client to server: bytes for the container's stdin.
    Stdin,
    Stdout,
    Stderr,
    /// Server to client: the container exited; the body is its code.
    Exit,
    /// Client to server: the terminal is now `rows cols`.
    Resize,
    /// Client to server: the client's stdin ended (not a detach).
    StdinEof,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Stdin => 0,
            Kind::Stdout => 1,
            Kind::Stderr => 2,
            Kind::Exit => 3,
            Kind::Resize => 4,
            Kind::StdinEof => 5,
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::Stdin,
            1 => Kind::Stdout,
            2 => Kind::Stderr,
            3 => Kind::Exit,
            4 => Kind::Resize,
            5 => Kind::StdinEof,
            _ => return None,
        })
    }
}

const HEADER: usize = 8;
/// A frame larger than this is a broken peer, not data.
const MAX_FRAME: usize = 1 << 20;

/// One frame, header and body.
pub fn encode(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + body.len());
    v.push(kind.byte());
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub fn resize(rows: u16, cols: u16) -> Vec<u8> {
    encode(Kind::Resize, format!("{rows} {cols}").as_bytes())
}

/// The body of a resize frame.
pub fn parse_resize(body: &[u8]) -> Option<(u16, u16)> {
    let s = std::str::from_utf8(body).ok()?;
    let (r, c) = s.split_once(' ')?;
    Some((r.parse().ok()?, c.parse().ok()?))
}

/// Collects bytes as they arrive and yields whole frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

/// The peer sent something that is not a frame.
#[derive(Debug, PartialEq, Eq)]
pub struct BadFrame;

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<(Kind, Vec<u8>)>, BadFrame> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let kind = Kind::from_byte(self.buf[0]).ok_or(BadFrame)?;
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if len > MAX_FRAME {
            return Err(BadFrame);
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let body = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        Ok(Some((kind, body)))
    }
}

/// `--detach-keys`: docker's syntax, comma-separated `ctrl-X` or single
/// characters (`ctrl-p,ctrl-q` by default).
pub fn parse_detach_keys(s: &str) -> crate::Result<Vec<u8>> {
    let bad = || crate::Error::InvalidArgument(format!("invalid detach keys {s:?}"));
    let mut out = Vec::new();
    for part in s.split(',') {
        let b = match part.strip_prefix("ctrl-") {
            Some(k) => {
                let c = match k.as_bytes() {
                    [c] => c.to_ascii_lowercase(),
                    _ => return Err(bad()),
                };
                match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => return Err(bad()),
                }
            }
            None => match part.as_bytes() {
                [c] => *c,
                _ => return Err(bad()),
            },
        };
        out.push(b);
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Watches typed input for the detach sequence. Bytes that might start it
/// are held back until the sequence completes or breaks.
#[derive(Debug)]
pub struct DetachWatch {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachWatch {
    pub fn new(keys: Vec<u8>) -> DetachWatch {
        DetachWatch { keys, matched: 0 }
    }

    /// Filters `input`: the bytes to forward, and whether the sequence was
    /// typed (bytes after it are dropped, as docker does).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // The sequence broke: what was held is ordinary input.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_split_reads() {
        let mut wire = encode(Kind::Stdout, b"hello");
        wire.extend(resize(24, 80));
        wire.extend(encode(Kind::Exit, b"3"));
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for chunk in wire.chunks(3) {
            d.push(chunk);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got[0], (Kind::Stdout, b"hello".to_vec()));
        assert_eq!(parse_resize(&got[1].1), Some((24, 80)));
        assert_eq!(got[2], (Kind::Exit, b"3".to_vec()));
        let mut d = Decoder::default();
        d.push(&[9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(BadFrame));
    }

    #[test]
    fn detach_keys_parse_as_docker_does() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-[").unwrap(), vec![b'a', 27]);
        assert!(parse_detach_keys("ctrl-pq").is_err());
        assert!(parse_detach_keys("").is_err());
    }

    #[test]
    fn detach_sequence_is_held_then_released_or_taken() {
        let mut w = DetachWatch::new(vec![16, 17]);
        assert_eq!(w.feed(b"ab\x10"), (b"ab".to_vec(), false));
        // Broken: the held ctrl-p goes through.
        assert_eq!(w.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(w.feed(b"x\x10\x10"), (b"x\x10".to_vec(), false));
        assert_eq!(w.feed(b"\x11rest"), (Vec::new(), true));
    }
}
