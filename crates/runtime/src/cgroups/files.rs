//! Reading and writing cgroup files, with errors that name them.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::{backoff, Error};

pub(super) fn read_path(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn read(dir: &Path, file: &str) -> Result<String, Error> {
    read_path(&dir.join(file))
}

/// The file's contents, or `None` when it does not exist.
pub(super) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, Error> {
    match read(dir, file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn open_write(path: &Path, append: bool, value: &str) -> Result<(), Error> {
    // Never create: a missing file means a missing controller or a typo,
    // and must fail as the kernel would. One write(2) per value, since the
    // kernel parses each write on its own.
    let werr = |source| Error::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(werr)?;
    let n = f.write(value.as_bytes()).map_err(werr)?;
    if n != value.len() {
        return Err(werr(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write",
        )));
    }
    Ok(())
}

/// Writes `value` to `dir/file`, replacing what is there.
pub(super) fn write(dir: &Path, file: &str, value: &str) -> Result<(), Error> {
    open_write(&dir.join(file), false, value)
}

/// Writes one entry to a file that takes one rule or device per write
/// (`devices.allow`, `io.max`, ...). Appending is the same to the kernel
/// and keeps every entry in a fake tree for tests.
pub(super) fn append(dir: &Path, file: &str, value: &str) -> Result<(), Error> {
    open_write(&dir.join(file), true, &format!("{value}\n"))
}

/// Parses a number, with "max" as `u64::MAX`.
pub(super) fn parse_u64(path: &Path, s: &str) -> Result<u64, Error> {
    let t = s.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        content: s.to_string(),
    })
}

pub(super) fn read_u64(dir: &Path, file: &str) -> Result<u64, Error> {
    parse_u64(&dir.join(file), &read(dir, file)?)
}

/// A number from a file that may be absent (then `None`).
pub(super) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, Error> {
    read_opt(dir, file)?
        .map(|s| parse_u64(&dir.join(file), &s))
        .transpose()
}

/// A "key value" per line file (`cpu.stat`, `memory.events`); missing
/// files read as empty and unparsable values are skipped.
pub(super) fn flat_keyed(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>, Error> {
    let text = read_opt(dir, file)?.unwrap_or_default();
    Ok(parse_flat_keyed(&text))
}

pub(super) fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (k, v) = (it.next()?, it.next()?);
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Appends the pids in `dir/cgroup.procs` and in every child cgroup.
pub(super) fn collect_procs(dir: &Path, out: &mut Vec<i32>) -> Result<(), Error> {
    let Some(procs) = read_opt(dir, "cgroup.procs")? else {
        return Ok(());
    };
    for line in procs.lines().filter(|l| !l.trim().is_empty()) {
        let pid = line.trim().parse().map_err(|_| Error::Parse {
            path: dir.join("cgroup.procs"),
            content: line.into(),
        })?;
        out.push(pid);
    }
    for child in child_dirs(dir)? {
        collect_procs(&child, out)?;
    }
    Ok(())
}

fn child_dirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let rerr = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(rerr(e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(rerr)?;
        if e.file_type().map_err(rerr)?.is_dir() {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// Removes `dir` and the cgroups below it, deepest first.
pub(super) fn remove_tree(dir: &Path) -> Result<(), Error> {
    for child in child_dirs(dir)? {
        remove_tree(&child)?;
    }
    let mut attempt = 0;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // EBUSY: exiting processes are still being uncharged; it clears
            // within milliseconds.
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error())
                    && attempt < 12 =>
            {
                backoff(attempt + 3);
                attempt += 1;
            }
            Err(source) => {
                return Err(Error::Remove {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}
