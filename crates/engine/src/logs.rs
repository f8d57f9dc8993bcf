//! Docker's json-file log format: one JSON object per line of output,
//! `{"log":"…\n","stream":"stdout","time":"RFC 3339, nanoseconds"}`, with
//! `"attrs"` after the stream when `--log-opt labels=…`/`env=…` name some
//! of the container's. The monitor writes it; `logs` reads it back.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Docker splits longer lines into several records.
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub log: String,
    pub stream: Stream,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
    pub time: String,
}

/// Turns a stream's bytes into records, holding a partial line until its
/// newline (or the end of the stream) arrives.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
    /// What every record carries (see [`crate::logfile::LogConfig::attrs`]).
    attrs: BTreeMap<String, String>,
}

impl LineSplitter {
    pub fn with_attrs(attrs: BTreeMap<String, String>) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            attrs,
        }
    }

    /// Feeds `data`; writes a record for each complete line to `out`.
    pub fn feed(&mut self, data: &[u8], stream: Stream, out: &mut impl Write) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl + 1;
            write_record(&self.pending[start..end], stream, &self.attrs, out)?;
            start = end;
        }
        while self.pending.len() - start >= MAX_LINE {
            write_record(
                &self.pending[start..start + MAX_LINE],
                stream,
                &self.attrs,
                out,
            )?;
            start += MAX_LINE;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// The stream ended: a last line without a newline is written as is.
    pub fn finish(&mut self, stream: Stream, out: &mut impl Write) -> io::Result<()> {
        if !self.pending.is_empty() {
            write_record(&self.pending, stream, &self.attrs, out)?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// A record as written: [`Record`]'s fields, borrowed.
#[derive(Serialize)]
struct Written<'a> {
    log: &'a str,
    stream: Stream,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    attrs: &'a BTreeMap<String, String>,
    time: String,
}

fn write_record(
    line: &[u8],
    stream: Stream,
    attrs: &BTreeMap<String, String>,
    out: &mut impl Write,
) -> io::Result<()> {
    let rec = Written {
        log: &String::from_utf8_lossy(line),
        stream,
        attrs,
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    };
    let mut buf = serde_json::to_vec(&rec).map_err(io::Error::other)?;
    buf.push(b'\n');
    // One write per record: a concurrent reader never sees half of one
    // unless it reads mid-write, and then it waits for the newline.
    out.write_all(&buf)
}

impl Record {
    /// When the monitor wrote it; `None` for a time that does not parse.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Its line as `logs` shows it: after its timestamp with `timestamps`,
    /// and with `details` after its attributes as dockerd gives them
    /// (`k=v,k2=v2 `, sorted and query-escaped; a lone space for none).
    pub fn line(&self, timestamps: bool, details: bool) -> Vec<u8> {
        let mut out = self.prefix(timestamps, details);
        out.extend_from_slice(self.log.as_bytes());
        out
    }

    /// What goes before the log's text in [`line`](Self::line): nothing
    /// (and no allocation) without either flag.
    fn prefix(&self, timestamps: bool, details: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if timestamps {
            out.extend_from_slice(self.time.as_bytes());
            out.push(b' ');
        }
        if details {
            for (i, (k, v)) in self.attrs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                query_escape(k, &mut out);
                out.push(b'=');
                query_escape(v, &mut out);
            }
            out.push(b' ');
        }
        out
    }

    /// Writes its [`line`](Self::line) to `stdout` or `stderr` by stream,
    /// the text straight from the record.
    pub fn write(
        &self,
        stdout: &mut impl Write,
        stderr: &mut impl Write,
        timestamps: bool,
        details: bool,
    ) -> io::Result<()> {
        let out: &mut dyn Write = match self.stream {
            Stream::Stdout => stdout,
            Stream::Stderr => stderr,
        };
        let prefix = self.prefix(timestamps, details);
        if !prefix.is_empty() {
            out.write_all(&prefix)?;
        }
        out.write_all(self.log.as_bytes())
    }
}

/// Go's `url.QueryEscape`, which dockerd applies to each attribute.
fn query_escape(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
        }
    }
}

/// Which records `logs` shows: the streams asked for, written within
/// docker's `--since` and `--until` (both inclusive).
#[derive(Debug, Clone)]
pub struct Selection {
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Default for Selection {
    fn default() -> Selection {
        Selection {
            stdout: true,
            stderr: true,
            since: None,
            until: None,
        }
    }
}

impl Selection {
    /// Whether `r` is of a stream asked for.
    pub fn stream(&self, r: &Record) -> bool {
        match r.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }

    /// Whether `r` was written within the times asked for. A record whose
    /// time does not parse is shown only when no time was asked for.
    pub fn time(&self, r: &Record) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        r.at()
            .is_some_and(|t| self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u))
    }

    /// Whether following can stop: anything written from `now` on is past
    /// `until`.
    pub fn over(&self, now: DateTime<Utc>) -> bool {
        self.until.is_some_and(|u| now > u)
    }
}

/// docker's `tail`: a count of records, or `all`. docker takes a negative
/// count as all of it. `None` for anything else.
pub fn parse_tail(v: &str) -> Option<Option<usize>> {
    match v {
        "all" | "" => Some(None),
        n => n.parse::<i64>().ok().map(|n| usize::try_from(n).ok()),
    }
}

/// Passes every complete record of `input` to `each`. Returns how many
/// bytes they took (a trailing partial record is left for the next call,
/// for `--follow`).
pub fn read_records(
    input: &mut impl BufRead,
    each: &mut impl FnMut(Record) -> io::Result<()>,
) -> io::Result<u64> {
    let mut used = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(used);
        }
        used += n as u64;
        let rec: Record = serde_json::from_slice(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("malformed log record: {e}"),
            )
        })?;
        each(rec)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_written_and_shown_as_dockerd_does() {
        let attrs: BTreeMap<String, String> = [("tier", "web"), ("A B", "x&y=z")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = Vec::new();
        LineSplitter::with_attrs(attrs)
            .feed(b"hi\n", Stream::Stdout, &mut out)
            .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"log":"hi\n","stream":"stdout","attrs":{"A B":"x&y=z","tier":"web"},"time":""#
            ),
            "{text}"
        );
        let r: Record = serde_json::from_slice(&out).unwrap();
        assert_eq!(r.line(false, true), b"A+B=x%26y%3Dz,tier=web hi\n");
        assert_eq!(
            r.line(true, true),
            format!("{} A+B=x%26y%3Dz,tier=web hi\n", r.time).into_bytes()
        );
        assert_eq!(r.line(false, false), b"hi\n");
        // Without attributes: no "attrs", and details is a lone space.
        let mut out = Vec::new();
        LineSplitter::default()
            .feed(b"hi\n", Stream::Stderr, &mut out)
            .unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("attrs"));
        let r: Record = serde_json::from_slice(&out).unwrap();
        assert_eq!(r.line(false, true), b" hi\n");
    }

    fn records(out: &[u8]) -> Vec<Record> {
        out.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_are_split_and_partials_held() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.feed(b"hello\nwor", Stream::Stdout, &mut out).unwrap();
        s.feed(b"ld\n\"q\"\tx", Stream::Stdout, &mut out).unwrap();
        s.finish(Stream::Stdout, &mut out).unwrap();
        let r = records(&out);
        let logs: Vec<&str> = r.iter().map(|r| r.log.as_str()).collect();
        assert_eq!(logs, ["hello\n", "world\n", "\"q\"\tx"]);
        assert!(r
            .iter()
            .all(|r| r.stream == Stream::Stdout && r.time.ends_with('Z')));
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with(r#"{"log":"hello\n","stream":"stdout","time":""#));
    }

    #[test]
    fn long_lines_are_cut_at_16k() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.feed(&vec![b'a'; MAX_LINE * 2 + 5], Stream::Stderr, &mut out)
            .unwrap();
        s.finish(Stream::Stderr, &mut out).unwrap();
        let r = records(&out);
        assert_eq!(
            r.iter().map(|r| r.log.len()).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 5]
        );
    }

    #[test]
    fn records_round_trip_by_stream() {
        let mut log = Vec::new();
        let mut s = LineSplitter::default();
        s.feed(b"out\n", Stream::Stdout, &mut log).unwrap();
        s.feed(b"err\n", Stream::Stderr, &mut log).unwrap();
        log.extend_from_slice(b"{\"log\":\"partial");
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let used = read_records(&mut &log[..], &mut |r| {
            r.write(&mut o, &mut e, false, false)
        })
        .unwrap();
        assert_eq!((o.as_slice(), e.as_slice()), (&b"out\n"[..], &b"err\n"[..]));
        assert_eq!(used as usize, log.len() - b"{\"log\":\"partial".len());
    }
}
