//! What the engine and `berth-monitor` say to each other. The monitor's
//! stdin is a socket to whoever started it: the starter says [`GO`] once
//! the bundle is ready, and the monitor answers one line when the
//! container started (or failed to) and one when it exited; its own
//! socket tells `wait` and `logs -f` of the exit.

use std::io::{BufRead, BufReader, Read};

/// The starter's word: the bundle is ready, create the container.
pub const GO: &str = "go\n";

/// The monitor's wait for [`GO`]: false when the starter closed the
/// socket instead (it gave up, and cleans up itself).
pub fn wait_go(mut r: impl Read) -> std::io::Result<bool> {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while got.len() < GO.len() {
        if r.read(&mut b)? == 0 {
            return Ok(false);
        }
        got.push(b[0]);
    }
    if got != GO.as_bytes() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected word from the starter: {got:?}"),
        ));
    }
    Ok(true)
}

use crate::error::{Error, Result};

/// The first line: the container runs, with this init pid.
pub fn started(pid: i32) -> String {
    format!("started {pid}\n")
}

/// The first line instead: the start failed; `code` is docker's exit code
/// for it (125, 126, 127).
pub fn failed(code: i32, msg: &str) -> String {
    format!("error {code} {}\n", msg.replace('\n', " "))
}

/// The last line, after the exit is recorded (and, with `--rm`, the
/// container removed).
pub fn exited(code: i32) -> String {
    format!("exited {code}\n")
}

/// One parsed line.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Started(i32),
    Failed(i32, String),
    Exited(i32),
}

pub fn parse(line: &str) -> Option<Event> {
    let (word, rest) = line.trim_end().split_once(' ')?;
    match word {
        "started" => rest.parse().ok().map(Event::Started),
        "exited" => rest.parse().ok().map(Event::Exited),
        "error" => {
            let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
            Some(Event::Failed(code.parse().ok()?, msg.to_string()))
        }
        _ => None,
    }
}

/// Reads events from a monitor's pipe or socket.
pub struct Reader<R> {
    inner: BufReader<R>,
    id: String,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R, id: &str) -> Reader<R> {
        Reader {
            inner: BufReader::new(inner),
            id: id.to_string(),
        }
    }

    /// The source, and what was read from it past the events taken.
    pub fn into_parts(self) -> (R, Vec<u8>) {
        let rest = self.inner.buffer().to_vec();
        (self.inner.into_inner(), rest)
    }

    /// The next event; an error when the monitor went away without one.
    pub fn next_event(&mut self) -> Result<Event> {
        let mut line = String::new();
        let n = self
            .inner
            .read_line(&mut line)
            .map_err(|e| Error::Monitor {
                id: self.id.clone(),
                reason: e.to_string(),
            })?;
        if n == 0 {
            return Err(Error::Monitor {
                id: self.id.clone(),
                reason: "exited without a report (see its log)".to_string(),
            });
        }
        parse(&line).ok_or_else(|| Error::Monitor {
            id: self.id.clone(),
            reason: format!("unexpected report {line:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        assert_eq!(parse(&started(42)), Some(Event::Started(42)));
        assert_eq!(parse(&exited(137)), Some(Event::Exited(137)));
        assert_eq!(
            parse(&failed(127, "exec: \"x\": not\nfound")),
            Some(Event::Failed(127, "exec: \"x\": not found".into()))
        );
        assert_eq!(parse("bogus"), None);
    }

    #[test]
    fn go_or_give_up() {
        assert!(wait_go(GO.as_bytes()).unwrap());
        assert!(!wait_go(&b""[..]).unwrap());
        assert!(!wait_go(&b"g"[..]).unwrap());
        assert!(wait_go(&b"no\n"[..]).is_err());
    }

    #[test]
    fn eof_is_an_error() {
        let input = format!("{}{}", started(1), exited(0));
        let mut r = Reader::new(input.as_bytes(), "c");
        assert_eq!(r.next_event().unwrap(), Event::Started(1));
        assert_eq!(r.next_event().unwrap(), Event::Exited(0));
        assert!(r
            .next_event()
            .unwrap_err()
            .to_string()
            .contains("without a report"));
    }
}
