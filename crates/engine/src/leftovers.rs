//! What a `--rm` container's removal deletes after its monitor has
//! answered: deleting directories and cgroups is the slowest part of a
//! teardown (tens of milliseconds on a filesystem with online discard),
//! and none of it is visible once the row is gone. Each directory is first
//! renamed to `.trash/rm-<pid>-<id>` under its parent, so nothing can find
//! it under its name; a remover that dies before deleting it leaves it to
//! [`sweep`], which lists only the trash, not every container there is,
//! and the runtime's state and cgroups to the sweep of runtime states
//! without a row ([`crate::Engine::sweep_leftovers`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use berth_image::snapshot::Detached;

const PREFIX: &str = "rm-";

/// The directory under each parent where directories wait for deletion.
const TRASH: &str = ".trash";

/// Directories moved aside, to delete with [`Leftovers::purge`].
#[derive(Debug, Default)]
#[must_use = "the directories stay until purged or swept"]
pub struct Leftovers {
    snapshots: Vec<Detached>,
    dirs: Vec<PathBuf>,
    runs: Vec<(berth_runtime::Runtime, String)>,
}

impl Leftovers {
    /// The runtime's state and cgroups of a container whose process is
    /// gone, to delete later.
    pub(crate) fn add_run(&mut self, rt: berth_runtime::Runtime, id: &str) {
        self.runs.push((rt, id.to_string()));
    }

    pub(crate) fn add_snapshot(&mut self, d: Detached) {
        self.snapshots.push(d);
    }

    /// Moves `dir` aside to be deleted later; a missing one is fine.
    pub(crate) fn move_aside(&mut self, dir: &Path) -> io::Result<()> {
        let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
            return Ok(());
        };
        let trash = parent.join(TRASH);
        let to = trash.join(format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            name.to_string_lossy()
        ));
        match fs::create_dir(&trash) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        match fs::rename(dir, &to) {
            Ok(()) => {
                self.dirs.push(to);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes everything; the failures, as teardown reports them.
    pub fn purge(self) -> Vec<String> {
        let mut errors = Vec::new();
        for (rt, id) in self.runs {
            match rt.delete(&id, true) {
                Err(e) if e.kind() != berth_runtime::ErrorKind::NotFound => {
                    errors.push(e.to_string())
                }
                _ => {}
            }
        }
        for s in self.snapshots {
            if let Err(e) = s.purge() {
                errors.push(e.to_string());
            }
        }
        for d in self.dirs {
            if let Err(e) = remove_dir(&d) {
                errors.push(format!("removing {}: {e}", d.display()));
            }
        }
        errors
    }
}

fn remove_dir(d: &Path) -> io::Result<()> {
    match fs::remove_dir_all(d) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Deletes the directories under `parents` that removers which died
/// before deleting them moved aside.
pub(crate) fn sweep(parents: &[PathBuf]) {
    for parent in parents {
        let Ok(entries) = fs::read_dir(parent.join(TRASH)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            // A live remover is still at it (or the pid was reused: then
            // a later sweep gets it).
            if Path::new("/proc").join(pid.to_string()).exists() {
                continue;
            }
            if let Err(err) = remove_dir(&e.path()) {
                tracing::warn!(path = %e.path().display(), error = %err, "removing a leftover");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_aside_then_purged_or_swept_once_the_remover_is_dead() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("abc");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/f"), b"x").unwrap();
        let mut l = Leftovers::default();
        l.move_aside(&dir).unwrap();
        l.move_aside(&t.path().join("missing")).unwrap();
        assert!(!dir.exists());
        let names = || -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(t.path())
                .unwrap()
                .chain(fs::read_dir(t.path().join(TRASH)).unwrap())
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != TRASH)
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(), [format!("rm-{}-abc", std::process::id())]);
        // Ours (alive): the sweep leaves it.
        sweep(&[t.path().to_path_buf()]);
        assert_eq!(names().len(), 1);
        assert!(l.purge().is_empty());
        assert!(names().is_empty());
        // A dead remover's (no pid is above the kernel's maximum).
        fs::create_dir_all(t.path().join(TRASH).join("rm-99999999-def/x")).unwrap();
        fs::create_dir_all(t.path().join("keep")).unwrap();
        sweep(&[t.path().to_path_buf()]);
        assert_eq!(names(), ["keep"]);
    }
}
