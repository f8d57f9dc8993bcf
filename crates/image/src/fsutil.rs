//! Small filesystem helpers shared by the stores: unique temporary names and
//! directory fsync that makes a rename durable.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A name no other writer in this or another process picks at the same
/// time: pid, a process-wide counter and the clock.
pub(crate) fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Makes a rename or a new entry in `dir` durable: without this the file
/// may be whole but its name lost after a crash.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The pid a [`unique_name`] with `prefix` was made by, if `name` is one.
pub(crate) fn name_pid(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
}

/// Whether `pid` is a live process. A leftover of a dead writer is safe to
/// delete; a reused pid only delays that, it never deletes live work.
pub(crate) fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The start time (clock ticks after boot) of `pid`, field 22 of
/// /proc/PID/stat: with the pid it names one process for good, even after
/// the pid is reused.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; the
    // fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Removes entries of `dir` named by [`unique_name`] with `prefix` whose
/// writer is dead: what a crash (even SIGKILL) leaves behind.
pub(crate) fn sweep_dead(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        remove_if_dead(&e, prefix);
    }
}

/// [`sweep_dead`] of one entry, for a caller that lists the directory
/// for more than this: whether the entry was named with `prefix`.
pub(crate) fn remove_if_dead(e: &std::fs::DirEntry, prefix: &str) -> bool {
    let name = e.file_name();
    let Some(pid) = name.to_str().and_then(|n| name_pid(n, prefix)) else {
        return false;
    };
    if pid_alive(pid) {
        return true;
    }
    let path = e.path();
    let res = if e.file_type().is_ok_and(|t| t.is_dir()) {
        std::fs::remove_dir_all(&path)
    } else {
        std::fs::remove_file(&path)
    };
    match res {
        Ok(()) => tracing::debug!(path = %path.display(), "removed leftover of a dead writer"),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove leftover")
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_writer() {
        let n = unique_name("ingest-");
        assert_eq!(name_pid(&n, "ingest-"), Some(std::process::id()));
        assert_eq!(name_pid("other", "ingest-"), None);
        assert!(pid_alive(std::process::id()));
        let me = process_start(std::process::id()).unwrap();
        assert_eq!(process_start(std::process::id()), Some(me));
    }
}
