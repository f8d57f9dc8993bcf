//! The overlay snapshotter: a committed layer is a directory
//! (`<root>/snapshots/<id>/fs`) used as an overlay lowerdir by every
//! snapshot above it; an active snapshot adds its own `fs` (the upperdir)
//! and `work`.

use std::fs;
use std::path::{Path, PathBuf};

use super::meta::{Meta, Row, STAGE_PREFIX};
use super::{io_err, Detached, Info, Kind, Mount, Result, SnapshotError, Snapshotter, Staged};

pub struct OverlaySnapshotter {
    meta: Meta,
}

impl OverlaySnapshotter {
    /// Opens (creating if needed) the snapshotter rooted at `root`.
    pub fn open(root: &Path) -> Result<OverlaySnapshotter> {
        let meta = Meta::open(root)?;
        meta.sweep();
        Ok(OverlaySnapshotter { meta })
    }

    fn fs_dir(&self, id: i64) -> PathBuf {
        self.meta.dir(id).join("fs")
    }

    fn mounts_of(&self, row: &Row) -> Result<Vec<Mount>> {
        if row.kind == Kind::Committed {
            return Err(SnapshotError::InvalidArgument {
                key: row.key.clone(),
                reason: "a committed snapshot has no mounts; prepare or view on top of it".into(),
            });
        }
        let parents = self.meta.parents(row)?;
        let bind = |source: PathBuf, ro: bool| Mount {
            kind: "bind".into(),
            source,
            target: None,
            options: vec!["rbind".into(), if ro { "ro" } else { "rw" }.into()],
        };
        match (row.kind, parents.as_slice()) {
            (Kind::Active, []) => Ok(vec![bind(self.fs_dir(row.id), false)]),
            (Kind::View, []) => Ok(vec![bind(self.fs_dir(row.id), true)]),
            // overlay needs two lowers to be read-only without an upper.
            (Kind::View, [p]) => Ok(vec![bind(self.fs_dir(p.id), true)]),
            (kind, parents) => {
                let lower: Vec<String> = parents
                    .iter()
                    .map(|p| self.fs_dir(p.id).display().to_string())
                    .collect();
                let mut options = Vec::new();
                if kind == Kind::Active {
                    options.push(format!(
                        "workdir={}",
                        self.meta.dir(row.id).join("work").display()
                    ));
                    options.push(format!("upperdir={}", self.fs_dir(row.id).display()));
                }
                options.push(format!("lowerdir={}", lower.join(":")));
                // Layers are shared by many mounts with different uppers;
                // the inode index would tie a lower to its first upper.
                options.push("index=off".into());
                if kind == Kind::View {
                    options.push("ro".into());
                }
                Ok(vec![Mount {
                    kind: "overlay".into(),
                    source: "overlay".into(),
                    target: None,
                    options,
                }])
            }
        }
    }

    fn create(&self, key: &str, parent: Option<&str>, kind: Kind) -> Result<Vec<Mount>> {
        let row = self.meta.create(key, parent, kind, |dir, _| {
            for d in [dir.join("fs"), dir.join("work")] {
                fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
            }
            Ok(())
        })?;
        self.mounts_of(&row)
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn stat(&self, key: &str) -> Result<Info> {
        let row = self.meta.get(key)?;
        Ok(Info {
            dir: self.fs_dir(row.id),
            ..self.meta.info(&row)
        })
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        self.mounts_of(&self.meta.get(key)?)
    }

    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.create(key, parent, Kind::Active)
    }

    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.create(key, parent, Kind::View)
    }

    fn commit(&self, name: &str, key: &str) -> Result<()> {
        let row = self.meta.commit(name, key)?;
        // A lower layer needs no work directory; overlay may have left
        // root-only leftovers in it.
        let _ = fs::remove_dir_all(self.meta.dir(row.id).join("work"));
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.meta.remove(key)
    }

    fn remove_detached(&self, key: &str) -> Result<Detached> {
        self.meta.detach(key)
    }

    fn stage(&self) -> Result<Option<Staged>> {
        // Under the snapshot directories: adoption is a rename.
        let path = self
            .meta
            .work
            .join(crate::fsutil::unique_name(STAGE_PREFIX));
        fs::create_dir(&path).map_err(io_err(format!("creating {}", path.display())))?;
        Ok(Some(Staged::new(path)))
    }

    fn commit_staged(&self, name: &str, parent: Option<&str>, staged: Staged) -> Result<()> {
        let mut staged = Some(staged);
        self.meta.create(name, parent, Kind::Committed, |dir, _| {
            fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
            let from = staged.take().expect("make runs once").adopt();
            let to = dir.join("fs");
            fs::rename(&from, &to).map_err(|e| {
                let _ = fs::remove_dir_all(&from);
                io_err(format!("moving {} to {}", from.display(), to.display()))(e)
            })
        })?;
        Ok(())
    }

    fn upper(&self, key: &str) -> Result<PathBuf> {
        let row = self.meta.get(key)?;
        if row.kind != Kind::Active {
            return Err(SnapshotError::InvalidArgument {
                key: key.into(),
                reason: "only an active snapshot has changes of its own".into(),
            });
        }
        Ok(self.fs_dir(row.id))
    }

    fn list(&self) -> Result<Vec<Info>> {
        Ok(self
            .meta
            .list()?
            .iter()
            .map(|r| Info {
                dir: self.fs_dir(r.id),
                ..self.meta.info(r)
            })
            .collect())
    }
}
