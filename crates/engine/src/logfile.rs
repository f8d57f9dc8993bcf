//! A container's log on disk, docker's `--log-driver json-file|none` and
//! `--log-opt max-size=…,max-file=…`: the options, the writer the monitor
//! appends records through (rotating `ID-json.log` to `.1`, `.2`, … as
//! docker's json-file driver does), and the reader that `logs` follows
//! through the rotated files in order.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::logs::{self, Record, Selection};

pub const JSON_FILE: &str = "json-file";
pub const NONE: &str = "none";

/// docker's `HostConfig.LogConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub driver: String,
    pub config: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            driver: JSON_FILE.into(),
            config: BTreeMap::new(),
        }
    }
}

/// When the json-file log rotates: `max_size` bytes per file (`None`:
/// never), `max_files` files kept in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_size: Option<u64>,
    pub max_files: u32,
}

impl LogConfig {
    /// `--log-driver` and each `--log-opt key=value`, checked as docker
    /// checks them at create.
    pub fn parse(driver: Option<&str>, opts: &[String]) -> Result<LogConfig> {
        let mut c = LogConfig {
            driver: driver.unwrap_or(JSON_FILE).to_string(),
            config: BTreeMap::new(),
        };
        for o in opts {
            let (k, v) = o.split_once('=').ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "invalid key value pair format in --log-opt {o:?} (use key=value)"
                ))
            })?;
            c.config.insert(k.to_string(), v.to_string());
        }
        c.limits()?;
        Ok(c)
    }

    /// Whether `logs` can read what this driver keeps.
    pub fn readable(&self) -> bool {
        self.driver != NONE
    }

    /// The rotation the options ask for; an error names a bad option.
    pub fn limits(&self) -> Result<Limits> {
        let unbounded = Limits {
            max_size: None,
            max_files: 1,
        };
        match self.driver.as_str() {
            JSON_FILE => {}
            NONE => {
                return match self.config.keys().next() {
                    Some(k) => Err(Error::InvalidArgument(format!(
                        "unknown log opt '{k}' for none log driver"
                    ))),
                    None => Ok(unbounded),
                }
            }
            "" => return Err(Error::InvalidArgument("empty --log-driver".into())),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "--log-driver {other} is not supported (use json-file or none)"
                )))
            }
        }
        let mut l = unbounded;
        for (k, v) in &self.config {
            match k.as_str() {
                "max-size" => {
                    let n = parse_human_size(v).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "--log-opt max-size={v}: expected a size such as 10m or 512k"
                        ))
                    })?;
                    if n == 0 {
                        return Err(Error::InvalidArgument(
                            "--log-opt max-size must be a positive number".into(),
                        ));
                    }
                    l.max_size = Some(n);
                }
                "max-file" => {
                    l.max_files = v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "--log-opt max-file={v}: must be a whole number of at least 1"
                        ))
                    })?;
                }
                // Names of the container's labels and variables whose
                // values each record carries (see `attrs`).
                "labels" | "env" => {}
                // docker's other json-file options: known, not done here.
                "compress" | "labels-regex" | "env-regex" | "tag" => {
                    return Err(Error::NotSupported {
                        flag: format!("--log-opt {k}"),
                    })
                }
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown log opt '{other}' for json-file log driver"
                    )))
                }
            }
        }
        Ok(l)
    }

    /// What every record of the log carries, as docker's `ExtraAttributes`:
    /// each label named in `labels` and each variable named in `env`
    /// (comma-separated) that the container has, by name.
    pub fn attrs<'a>(
        &self,
        labels: &BTreeMap<String, String>,
        env: impl IntoIterator<Item = &'a String>,
    ) -> BTreeMap<String, String> {
        let names = |k: &str| -> Vec<String> {
            self.config
                .get(k)
                .map(|v| {
                    v.split(',')
                        .filter(|n| !n.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut out = BTreeMap::new();
        for n in names("labels") {
            if let Some(v) = labels.get(&n) {
                out.insert(n, v.clone());
            }
        }
        let wanted = names("env");
        if !wanted.is_empty() {
            for kv in env {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                if wanted.iter().any(|w| w == k) {
                    out.insert(k.to_string(), v.to_string());
                }
            }
        }
        out
    }
}

/// docker's `units.FromHumanSize`, which json-file's max-size uses:
/// decimal units (`10m` is 10,000,000 bytes), an optional `b`.
pub fn parse_human_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(end);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let mult = match unit {
        "" => 1e0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "p" => 1e15,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

/// The `n`th rotated file of the log at `path` (`.1` is the newest).
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Where the monitor writes the container's records. Each `write` is one
/// record (see [`logs::LineSplitter`]): a full file is rotated before the
/// next record, never in the middle of one.
pub struct LogWriter {
    file: Option<File>,
    /// The driver keeps a log. Its file is made at the first record: a
    /// container that writes nothing costs no file (readers take a
    /// missing log as empty), and its start no open.
    keep: bool,
    path: PathBuf,
    size: u64,
    limits: Limits,
}

impl LogWriter {
    /// The log at `path` as `cfg` asks, appended to from the first
    /// record; the `none` driver writes nothing and creates no file.
    pub fn open(path: &Path, cfg: &LogConfig) -> Result<LogWriter> {
        let mut w = LogWriter::discard();
        w.limits = cfg.limits()?;
        w.path = path.to_path_buf();
        w.keep = cfg.readable();
        Ok(w)
    }

    /// A writer that keeps nothing (an exec's output has no log).
    pub fn discard() -> LogWriter {
        LogWriter {
            file: None,
            keep: false,
            path: PathBuf::new(),
            size: 0,
            limits: Limits {
                max_size: None,
                max_files: 1,
            },
        }
    }

    /// docker's rotation: `.N-1` is dropped, each `.i` becomes `.i+1`,
    /// the current file `.1`, and a new file takes its name; with one
    /// file only, the current one is unlinked and started afresh. A
    /// reader holding the old file open reads it to its end.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let max = self.limits.max_files;
        if max < 2 {
            match fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        } else {
            let _ = fs::remove_file(rotated(&self.path, max - 1));
            for i in (2..max).rev() {
                let _ = fs::rename(rotated(&self.path, i - 1), rotated(&self.path, i));
            }
            fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = 0;
        Ok(())
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.keep {
            return Ok(buf.len());
        }
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(f);
        }
        if self.limits.max_size.is_some_and(|max| self.size >= max) {
            self.rotate()?;
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(buf.len());
        };
        let n = f.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// The log at `path`'s file number `n`: 0 the current one, then the
/// rotated ones, newest first.
fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        path.to_path_buf()
    } else {
        rotated(path, n)
    }
}

fn inode(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

/// One file of the log, open, as the reader goes through it.
struct Open {
    file: File,
    ino: u64,
    offset: u64,
    /// Where it was last seen: rotations only move a file up.
    number: u32,
}

impl Open {
    fn at(path: &Path, number: u32) -> Option<Open> {
        let file = File::open(numbered(path, number)).ok()?;
        let ino = file.metadata().ok()?.ino();
        Some(Open {
            file,
            ino,
            offset: 0,
            number,
        })
    }
}

/// Reads a container's log records in order across rotations (`logs`,
/// `logs -f`): from the oldest file kept, each file then the one that
/// came after it, up to the current one, which it follows. A file is
/// known by its inode, never by its name, which a rotation gives to
/// another file at any moment.
pub struct Reader {
    path: PathBuf,
    max_files: u32,
    open: Option<Open>,
}

impl Reader {
    pub fn new(path: &Path, limits: Limits) -> Reader {
        Reader {
            path: path.to_path_buf(),
            max_files: limits.max_files.max(1),
            open: None,
        }
    }

    /// The oldest file there is.
    fn oldest(&self) -> Option<Open> {
        (0..self.max_files)
            .rev()
            .find_map(|n| Open::at(&self.path, n))
    }

    /// Passes every complete record written since the last call to
    /// `each`, in order.
    pub fn read(&mut self, mut each: impl FnMut(Record) -> io::Result<()>) -> io::Result<()> {
        if self.open.is_none() {
            self.open = self.oldest();
        }
        loop {
            let Some(o) = self.open.as_mut() else {
                return Ok(());
            };
            o.read(&mut each)?;
            if inode(&self.path) == Some(o.ino) {
                return Ok(());
            }
            // Rotated (or never current): the writer finished the file
            // before it moved it, so what was partial is whole now.
            o.read(&mut each)?;
            match self.next() {
                Some(n) => self.open = Some(n),
                // Its successor is not there yet (a rotation half done).
                None => return Ok(()),
            }
        }
    }

    /// The records written since the last call that `sel` keeps; with
    /// `tail` (the first call of `logs --tail`), of the last `tail` records
    /// of its streams only (docker takes the tail first, then the times).
    /// Without a tail, records go to `each` as they are read, never all
    /// held at once.
    pub fn select(
        &mut self,
        sel: &Selection,
        tail: Option<usize>,
        mut each: impl FnMut(Record) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(n) = tail else {
            return self.read(|r| {
                if sel.stream(&r) && sel.time(&r) {
                    each(r)?;
                }
                Ok(())
            });
        };
        let mut last = VecDeque::with_capacity(n.min(1024));
        self.read(|r| {
            if n > 0 && sel.stream(&r) {
                if last.len() == n {
                    last.pop_front();
                }
                last.push_back(r);
            }
            Ok(())
        })?;
        last.into_iter().filter(|r| sel.time(r)).try_for_each(each)
    }

    /// The file that followed the open one.
    fn next(&mut self) -> Option<Open> {
        let o = self.open.as_mut()?;
        for _ in 0..100 {
            // An unlinked file was dropped (max-file) or replaced
            // (max-file=1): every file left came after it.
            if o.file.metadata().ok()?.nlink() == 0 {
                return self.oldest();
            }
            // Where is it now? From where it was, upward, then the rest.
            let mut range = (o.number..self.max_files).chain(0..o.number.min(self.max_files));
            let Some(k) = range.find(|&n| inode(&numbered(&self.path, n)) == Some(o.ino)) else {
                // Moved past our scan mid-way: look again.
                continue;
            };
            o.number = k;
            if k == 0 {
                return None;
            }
            // The file below it is its successor if it still is below it
            // once opened.
            let next = Open::at(&self.path, k - 1);
            if inode(&numbered(&self.path, k)) == Some(o.ino) {
                return next;
            }
        }
        None
    }
}

impl Open {
    fn read(&mut self, each: &mut impl FnMut(Record) -> io::Result<()>) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.offset))?;
        self.offset += logs::read_records(&mut BufReader::new(&self.file), each)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{LineSplitter, Stream};

    fn cfg(opts: &[&str]) -> Result<LogConfig> {
        let v: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        LogConfig::parse(None, &v)
    }

    #[test]
    fn attrs_are_the_named_labels_and_variables_there_are() {
        let c = cfg(&["labels=tier,nope", "env=FOO,MISSING,EMPTY"]).unwrap();
        let labels: BTreeMap<String, String> = [("tier", "web"), ("other", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = ["FOO=bar=baz", "EMPTY=", "PATH=/bin"].map(String::from);
        let got = c.attrs(&labels, &env);
        let want: BTreeMap<String, String> = [("tier", "web"), ("FOO", "bar=baz"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(cfg(&[]).unwrap().attrs(&labels, &env).is_empty());
        // The regex forms are refused by name.
        assert!(cfg(&["labels-regex=t.*"])
            .unwrap_err()
            .to_string()
            .contains("labels-regex"));
    }

    #[test]
    fn options_are_checked_as_docker_does() {
        let l = cfg(&["max-size=1k", "max-file=3"])
            .unwrap()
            .limits()
            .unwrap();
        assert_eq!(
            l,
            Limits {
                max_size: Some(1000),
                max_files: 3
            }
        );
        assert_eq!(parse_human_size("10m"), Some(10_000_000));
        assert_eq!(parse_human_size("1.5kb"), Some(1500));
        assert_eq!(parse_human_size("12"), Some(12));
        assert_eq!(parse_human_size("x"), None);
        for (bad, why) in [
            (vec!["max-size=0"], "positive"),
            (vec!["max-size=1q"], "expected a size"),
            (vec!["max-size=1k", "max-file=0"], "at least 1"),
            (vec!["bogus=1"], "unknown log opt 'bogus' for json-file"),
            (vec!["compress=true"], "--log-opt compress"),
            (vec!["max-size"], "key=value"),
        ] {
            let e = cfg(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let e = LogConfig::parse(Some("syslog"), &[]).unwrap_err();
        assert!(e.to_string().contains("--log-driver syslog"), "{e}");
        let e = LogConfig::parse(Some("none"), &["max-size=1k".into()]).unwrap_err();
        assert!(e.to_string().contains("none log driver"), "{e}");
        assert!(!LogConfig::parse(Some("none"), &[]).unwrap().readable());
        let v = serde_json::to_value(cfg(&["max-size=1k"]).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Type": "json-file", "Config": {"max-size": "1k"}})
        );
    }

    fn write_lines(w: &mut LogWriter, from: usize, to: usize) {
        let mut s = LineSplitter::default();
        for i in from..to {
            s.feed(format!("line {i:04}\n").as_bytes(), Stream::Stdout, w)
                .unwrap();
        }
    }

    fn read_all(path: &Path) -> String {
        let mut out = Vec::new();
        Reader::new(
            path,
            Limits {
                max_size: None,
                max_files: 1000,
            },
        )
        .read(|r| r.write(&mut out, &mut io::sink(), false, false))
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rotation_keeps_max_file_files_and_reads_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, &cfg(&["max-size=500", "max-file=3"]).unwrap()).unwrap();
        write_lines(&mut w, 0, 100);
        assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        for p in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            // A file passes max-size by at most one record.
            assert!(fs::metadata(&p).unwrap().len() < 600, "{}", p.display());
        }
        let text = read_all(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"line 0099"));
        assert!(lines.len() < 100, "the oldest were dropped");
        let first: usize = lines[0][5..].parse().unwrap();
        let want: Vec<String> = (first..100).map(|i| format!("line {i:04}")).collect();
        assert_eq!(lines, want);
    }

    #[test]
    fn one_file_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, &cfg(&["max-size=200"]).unwrap()).unwrap();
        write_lines(&mut w, 0, 50);
        assert!(!rotated(&path, 1).exists());
        let text = read_all(&path);
        assert!(text.ends_with("line 0049\n") && !text.contains("line 0000"));
    }

    #[test]
    fn a_follower_reads_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let c = cfg(&["max-size=1000", "max-file=100"]).unwrap();
        let mut w = LogWriter::open(&path, &c).unwrap();
        let mut r = Reader::new(&path, c.limits().unwrap());
        let mut out = Vec::new();
        for round in 0..20 {
            // Some rounds rotate more than once between two reads.
            write_lines(&mut w, round * 25, (round + 1) * 25);
            r.read(|r| r.write(&mut out, &mut io::sink(), false, false))
                .unwrap();
        }
        let want: String = (0..500).map(|i| format!("line {i:04}\n")).collect();
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    /// The line numbers a follower reads while a writer on another
    /// thread writes `n` lines with options `opts`.
    fn follow_a_writer(opts: &[&str], n: usize) -> Vec<usize> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let c = cfg(opts).unwrap();
        let mut w = LogWriter::open(&path, &c).unwrap();
        let writer = std::thread::spawn(move || write_lines(&mut w, 0, n));
        let mut r = Reader::new(&path, c.limits().unwrap());
        let mut out = Vec::new();
        while !writer.is_finished() {
            r.read(|r| r.write(&mut out, &mut io::sink(), false, false))
                .unwrap();
        }
        writer.join().unwrap();
        r.read(|r| r.write(&mut out, &mut io::sink(), false, false))
            .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| l[5..].parse().unwrap())
            .collect()
    }

    #[test]
    fn a_follower_keeps_up_with_a_writer_rotating_under_it() {
        let seen = follow_a_writer(&["max-size=2000", "max-file=200"], 4000);
        if let Some(i) = (0..4000).find(|&i| seen.get(i) != Some(&i)) {
            panic!(
                "line {i}: {:?} ({} lines)",
                &seen[i.saturating_sub(2)..(i + 3).min(seen.len())],
                seen.len()
            );
        }
        assert_eq!(seen.len(), 4000);
    }

    #[test]
    fn a_follower_never_repeats_when_files_are_dropped() {
        for max_file in ["max-file=1", "max-file=2"] {
            let seen = follow_a_writer(&["max-size=1000", max_file], 3000);
            assert!(seen.windows(2).all(|p| p[0] < p[1]), "{max_file}");
            assert_eq!(seen.last(), Some(&2999));
        }
    }

    #[test]
    fn a_selection_takes_the_tail_first_then_the_times_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let c = cfg(&["max-size=300", "max-file=100"]).unwrap();
        let mut w = LogWriter::open(&path, &c).unwrap();
        // Line i at second i, every third on stderr.
        for i in 0..30 {
            let r = Record {
                log: format!("line {i:04}\n"),
                stream: if i % 3 == 0 {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                },
                attrs: Default::default(),
                time: format!("2024-01-01T00:00:{i:02}.5Z"),
            };
            let mut b = serde_json::to_vec(&r).unwrap();
            b.push(b'\n');
            w.write_all(&b).unwrap();
        }
        assert!(rotated(&path, 3).exists(), "the records span several files");
        let at = |s: u32| Some(format!("2024-01-01T00:00:{s:02}Z").parse().unwrap());
        let lines = |sel: &Selection, tail: Option<usize>| {
            let mut got = Vec::new();
            Reader::new(&path, c.limits().unwrap())
                .select(sel, tail, |r| {
                    got.push(r.log[5..9].parse::<u32>().unwrap());
                    Ok(())
                })
                .unwrap();
            got
        };
        let all = Selection::default();
        assert_eq!(lines(&all, None), (0..30).collect::<Vec<_>>());
        assert_eq!(lines(&all, Some(3)), [27, 28, 29]);
        assert_eq!(lines(&all, Some(0)), Vec::<u32>::new());
        assert_eq!(lines(&all, Some(100)).len(), 30);
        let stderr = Selection {
            stdout: false,
            ..Selection::default()
        };
        assert_eq!(
            lines(&stderr, Some(2)),
            [24, 27],
            "the tail counts its streams"
        );
        let window = Selection {
            since: at(10),
            until: at(13),
            ..Selection::default()
        };
        assert_eq!(lines(&window, None), [10, 11, 12]);
        // As docker does: the last five, then those up to `until`.
        assert_eq!(lines(&window, Some(5)), Vec::<u32>::new());
        let since = Selection {
            since: at(27),
            ..Selection::default()
        };
        assert_eq!(lines(&since, Some(5)), [27, 28, 29]);
        assert!(window.over(at(14).unwrap()) && !window.over(at(12).unwrap()));
        assert!(!all.over(at(59).unwrap()));
    }

    #[test]
    fn the_none_driver_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, &LogConfig::parse(Some("none"), &[]).unwrap()).unwrap();
        write_lines(&mut w, 0, 3);
        assert!(!path.exists());
    }

    #[test]
    fn the_file_is_made_at_the_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, &LogConfig::default()).unwrap();
        assert!(!path.exists());
        write_lines(&mut w, 0, 1);
        assert_eq!(read_all(&path), "line 0000\n");
    }
}
