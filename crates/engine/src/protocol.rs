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

/// The word that gives a spare monitor (started before its container
/// existed, see [`crate::monitor::Spare`]) its container: `take A ID\n`,
/// A being 1 when the attach stream comes with it (as the message's one
/// file descriptor). Of fixed length, so the monitor reads it whole and
/// never the [`GO`] that may follow at once.
pub const TAKE_LEN: usize = "take 0 ".len() + ID_LEN + 1;
const ID_LEN: usize = 64;

pub fn take(id: &str, attach: bool) -> Option<String> {
    valid_id(id).then(|| format!("take {} {id}\n", u8::from(attach)))
}

/// The container's id and whether an attach stream came with the word.
pub fn parse_take(word: &[u8]) -> Option<(String, bool)> {
    let s = std::str::from_utf8(word).ok()?.strip_suffix('\n')?;
    let (attach, id) = match s.strip_prefix("take ")?.split_once(' ')? {
        ("0", id) => (false, id),
        ("1", id) => (true, id),
        _ => return None,
    };
    valid_id(id).then(|| (id.to_string(), attach))
}

fn valid_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Sends the word of [`take`] on the spare's status socket, with `attach`.
pub fn send_take(
    sock: impl std::os::fd::AsFd,
    word: &str,
    attach: Option<std::os::fd::BorrowedFd<'_>>,
) -> std::io::Result<()> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds;
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    if let Some(fd) = attach {
        fds = [fd];
        anc.push(SendAncillaryMessage::ScmRights(&fds));
    }
    let n = sendmsg(
        sock,
        &[std::io::IoSlice::new(word.as_bytes())],
        &mut anc,
        SendFlags::NOSIGNAL,
    )?;
    // A socket pair's buffer takes a word this short whole, or nothing.
    if n != word.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "the spare monitor took part of its word",
        ));
    }
    Ok(())
}

/// The spare's read of [`take`]: `Ok(None)` when the starter closed the
/// socket instead (nothing to do).
pub fn recv_take(
    sock: impl std::os::fd::AsFd,
) -> std::io::Result<Option<(String, Option<std::os::fd::OwnedFd>)>> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut word = [0u8; TAKE_LEN];
    let mut got = 0;
    let mut fd = None;
    while got < TAKE_LEN {
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        let n = match recvmsg(
            &sock,
            &mut [std::io::IoSliceMut::new(&mut word[got..])],
            &mut anc,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(r) => r.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for m in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                fd = fd.or(fds.next());
            }
        }
        if n == 0 {
            return Ok(None);
        }
        got += n;
    }
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "unexpected word from the starter: {:?}",
                String::from_utf8_lossy(&word)
            ),
        )
    };
    let (id, attach) = parse_take(&word).ok_or_else(bad)?;
    if attach != fd.is_some() {
        return Err(bad());
    }
    Ok(Some((id, fd)))
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
    fn take_words_are_whole_and_checked() {
        let id = "ab".repeat(32);
        let w = take(&id, true).unwrap();
        assert_eq!(w.len(), TAKE_LEN);
        assert_eq!(parse_take(w.as_bytes()), Some((id.clone(), true)));
        assert_eq!(
            parse_take(take(&id, false).unwrap().as_bytes()),
            Some((id.clone(), false))
        );
        assert_eq!(take("abc", false), None);
        assert_eq!(take(&"zz".repeat(32), false), None);
        assert_eq!(parse_take(format!("take 2 {id}\n").as_bytes()), None);
        assert_eq!(parse_take(format!("take 1 {id}").as_bytes()), None);
    }

    #[test]
    fn take_carries_the_attach_stream_and_not_what_follows() {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixStream;
        let (a, b) = UnixStream::pair().unwrap();
        let (mut x, y) = UnixStream::pair().unwrap();
        let id = "0f".repeat(32);
        let w = take(&id, true).unwrap();
        send_take(&a, &w, Some(std::os::fd::AsFd::as_fd(&y))).unwrap();
        (&a).write_all(GO.as_bytes()).unwrap();
        let (got, fd) = recv_take(&b).unwrap().unwrap();
        assert_eq!(got, id);
        // The stream came across: what is written to it arrives at x.
        let mut y2 = UnixStream::from(fd.unwrap());
        drop(y);
        y2.write_all(b"hi").unwrap();
        drop(y2);
        let mut s = String::new();
        x.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hi");
        assert!(wait_go(&b).unwrap());
        drop(a);
        assert!(recv_take(&b).unwrap().is_none());
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
