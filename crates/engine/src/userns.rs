//! `--userns auto`: a container of its own user namespace, whose root is
//! an unprivileged host user. Each such container gets a range of host
//! user and group ids no other container holds (podman's `auto`), taken
//! from the subordinate ids of user `berth` in /etc/subuid and
//! /etc/subgid (docker's `--userns-remap` reads its user's the same way),
//! or, when it has none, from the range systemd documents for container
//! ids. The image's files are shown to it through idmapped mounts: no
//! layer is copied or chowned.

use std::collections::BTreeMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rusqlite::{params, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::container::Engine;
use crate::db::{Container, Db};
use crate::error::{io_err, Error, Result};

/// The user whose subordinate ids make the pool.
pub const POOL_USER: &str = "berth";

/// The pool without a `berth` entry: 524288 to 1879048191, which
/// systemd's UIDS-GIDS.md sets aside for container ids.
pub const DEFAULT_POOL: Pool = Pool {
    uid: 524_288,
    gid: 524_288,
    size: 1_879_048_192 - 524_288,
};

/// Ids per container unless `auto:size=N` says otherwise: the 16 bits
/// images expect (nobody is 65534).
pub const DEFAULT_SIZE: u32 = 65_536;

/// The host ids a container's ids 0..size map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdMap {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl IdMap {
    /// The spec's `uidMappings` (and, with `gid`, `gidMappings`).
    pub fn mappings(&self, gid: bool) -> Value {
        let host = if gid { self.gid } else { self.uid };
        json!([{"containerID": 0, "hostID": host, "size": self.size}])
    }

    /// A host uid as the container's storage keeps it (inside the range:
    /// its container id; outside: unchanged).
    pub fn unshift_uid(&self, host: u32) -> u32 {
        unshift(host, self.uid, self.size)
    }

    pub fn unshift_gid(&self, host: u32) -> u32 {
        unshift(host, self.gid, self.size)
    }

    /// A container's uid as the host sees it; one outside the range has
    /// no host id and becomes the container's root.
    pub fn shift_uid(&self, inside: u32) -> u32 {
        shift(inside, self.uid, self.size)
    }

    pub fn shift_gid(&self, inside: u32) -> u32 {
        shift(inside, self.gid, self.size)
    }
}

fn unshift(host: u32, base: u32, size: u32) -> u32 {
    if host >= base && host - base < size {
        host - base
    } else {
        host
    }
}

fn shift(inside: u32, base: u32, size: u32) -> u32 {
    if inside < size {
        base + inside
    } else {
        base
    }
}

/// Subordinate ids to hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl Pool {
    /// The first range of `user` in each of an /etc/subuid and an
    /// /etc/subgid (`name:start:count` lines); `None` unless both have one.
    pub fn parse(subuid: &str, subgid: &str, user: &str) -> Option<Pool> {
        let first = |text: &str| {
            text.lines().find_map(|l| {
                let mut f = l.trim().split(':');
                let (name, start, count) = (f.next()?, f.next()?, f.next()?);
                if name != user {
                    return None;
                }
                Some((start.parse::<u32>().ok()?, count.parse::<u32>().ok()?))
            })
        };
        let (uid, ucount) = first(subuid)?;
        let (gid, gcount) = first(subgid)?;
        Some(Pool {
            uid,
            gid,
            size: ucount.min(gcount),
        })
    }

    /// This host's pool.
    pub fn host() -> Pool {
        let read = |p: &str| std::fs::read_to_string(Path::new(p)).unwrap_or_default();
        Pool::parse(&read("/etc/subuid"), &read("/etc/subgid"), POOL_USER).unwrap_or(DEFAULT_POOL)
    }
}

/// `--userns`: "" or `host` (no namespace of its own), `auto` or
/// `auto:size=N`. The value as kept.
pub fn parse_mode(s: &str) -> Result<String> {
    size_of_mode(s)?;
    Ok(s.to_string())
}

/// How many ids a mode asks for; `None` for no user namespace.
pub fn size_of_mode(s: &str) -> Result<Option<u32>> {
    let bad =
        |why: &str| Error::InvalidArgument(format!("invalid value {s:?} for --userns: {why}"));
    match s {
        "" | "host" => Ok(None),
        "auto" => Ok(Some(DEFAULT_SIZE)),
        _ => {
            let Some(opts) = s.strip_prefix("auto:") else {
                return Err(bad("berth has host and auto[:size=N]"));
            };
            let size = opts
                .strip_prefix("size=")
                .ok_or_else(|| bad("the only option of auto is size=N"))?;
            match size.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(bad("size is a number of ids above 0")),
            }
        }
    }
}

/// A user namespace holding `m`'s mappings, to idmap mounts with.
pub(crate) fn namespace(m: &IdMap) -> Result<OwnedFd> {
    let parse = |v: Value| {
        serde_json::from_value::<Vec<oci_spec::runtime::LinuxIdMapping>>(v)
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    };
    Ok(berth_runtime::userns_with(
        &parse(m.mappings(false))?,
        &parse(m.mappings(true))?,
    )?)
}

impl Engine {
    /// The container's named volumes as idmapped mounts under its bundle,
    /// bound in place of their data: the files keep the ids containers
    /// see, whichever container (with its own ids or none) mounts them.
    /// The runtime cannot make these itself: from inside the container's
    /// user namespace it may map no host id.
    pub(crate) fn idmap_volumes(
        &self,
        c: &Container,
        userns: BorrowedFd<'_>,
    ) -> Result<BTreeMap<String, PathBuf>> {
        let mut views = BTreeMap::new();
        let dir = self.paths.idmapped(&c.id).join("volumes");
        for m in c
            .config
            .host_config
            .mounts
            .iter()
            .filter(|m| m.kind == "volume")
        {
            if views.contains_key(&m.source) {
                continue;
            }
            let at = dir.join(views.len().to_string());
            std::fs::create_dir_all(&at).map_err(io_err(format!("creating {}", at.display())))?;
            let data = self
                .paths
                .root
                .join("volumes")
                .join(&m.source)
                .join("_data");
            berth_image::snapshot::bind_idmapped(&data, &at, userns, true)
                .map_err(|e| Error::Image(e.into()))?;
            views.insert(m.source.clone(), at);
        }
        Ok(views)
    }

    /// Unmounts what [`Engine::idmap_volumes`] mounted.
    pub(crate) fn unmount_idmapped(&self, id: &str) -> Result<()> {
        let dir = self.paths.idmapped(id).join("volumes");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in rd.flatten() {
            crate::container::unmount(&e.path())?;
            // Only an empty directory goes: never what a mount left shows.
            let _ = std::fs::remove_dir(e.path());
        }
        Ok(())
    }
}

fn table(db: &Db) -> Result<()> {
    db.conn()
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS idmaps (
                id TEXT PRIMARY KEY,
                uid INTEGER NOT NULL,
                gid INTEGER NOT NULL,
                size INTEGER NOT NULL
            )",
        )
        .map_err(db.err())
}

/// Takes `size` ids of `pool` for container `id`: the lowest range whose
/// uids and gids no other container holds. One write transaction, so
/// concurrent creates never get overlapping ranges.
pub fn allocate(db: &Db, id: &str, size: u32, pool: Pool) -> Result<IdMap> {
    table(db)?;
    let tx =
        Transaction::new_unchecked(db.conn(), TransactionBehavior::Immediate).map_err(db.err())?;
    let taken: Vec<IdMap> = {
        let mut st = tx
            .prepare("SELECT uid, gid, size FROM idmaps")
            .map_err(db.err())?;
        let rows = st
            .query_map([], |r| {
                Ok(IdMap {
                    uid: r.get(0)?,
                    gid: r.get(1)?,
                    size: r.get(2)?,
                })
            })
            .map_err(db.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(db.err())?
    };
    let m = first_free(&taken, size, pool).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "--userns auto: no {size} ids are free in the pool of {} ids from {} (user {POOL_USER} in /etc/subuid and /etc/subgid)",
            pool.size, pool.uid
        ))
    })?;
    tx.execute(
        "INSERT INTO idmaps (id, uid, gid, size) VALUES (?1, ?2, ?3, ?4)",
        params![id, m.uid, m.gid, m.size],
    )
    .map_err(db.err())?;
    tx.commit().map_err(db.err())?;
    Ok(m)
}

/// Gives container `id`'s ids back (nothing if it held none).
pub fn release(db: &Db, id: &str) -> Result<()> {
    table(db)?;
    db.conn()
        .execute("DELETE FROM idmaps WHERE id = ?1", params![id])
        .map_err(db.err())?;
    Ok(())
}

/// The lowest offset into `pool` where `size` uids and gids are free.
fn first_free(taken: &[IdMap], size: u32, pool: Pool) -> Option<IdMap> {
    let end = |start: u32, n: u32| u64::from(start) + u64::from(n);
    let mut offsets: Vec<u64> = vec![0];
    for t in taken {
        for (start, base) in [(t.uid, pool.uid), (t.gid, pool.gid)] {
            if let Some(o) = end(start, t.size).checked_sub(u64::from(base)) {
                offsets.push(o);
            }
        }
    }
    offsets.sort_unstable();
    offsets.dedup();
    offsets.into_iter().find_map(|o| {
        if o + u64::from(size) > u64::from(pool.size) {
            return None;
        }
        let m = IdMap {
            uid: u32::try_from(u64::from(pool.uid) + o).ok()?,
            gid: u32::try_from(u64::from(pool.gid) + o).ok()?,
            size,
        };
        let free = taken.iter().all(|t| {
            let (tu, tg) = (u64::from(t.uid), u64::from(t.gid));
            let clear = |mine: u32, theirs: u64| {
                end(mine, size) <= theirs || theirs + u64::from(t.size) <= u64::from(mine)
            };
            clear(m.uid, tu) && clear(m.gid, tg)
        });
        free.then_some(m)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(size_of_mode("").unwrap(), None);
        assert_eq!(size_of_mode("host").unwrap(), None);
        assert_eq!(size_of_mode("auto").unwrap(), Some(65536));
        assert_eq!(size_of_mode("auto:size=1024").unwrap(), Some(1024));
        assert!(size_of_mode("auto:size=0").is_err());
        assert!(size_of_mode("auto:uidmapping=0:1:2").is_err());
        let e = size_of_mode("keep-id").unwrap_err().to_string();
        assert!(e.contains("\"keep-id\" for --userns"), "{e}");
    }

    #[test]
    fn the_pool_is_berths_subordinate_ids() {
        let subuid = "alice:100000:65536\nberth:200000:1000000\n";
        let subgid = "berth:300000:500000\n";
        assert_eq!(
            Pool::parse(subuid, subgid, "berth"),
            Some(Pool {
                uid: 200000,
                gid: 300000,
                size: 500000
            })
        );
        assert_eq!(Pool::parse(subuid, "", "berth"), None);
        assert_eq!(Pool::parse("berth:x:1\n", subgid, "berth"), None);
    }

    #[test]
    fn ranges_never_overlap_and_gaps_are_reused() {
        let pool = Pool {
            uid: 1000,
            gid: 5000,
            size: 300,
        };
        let a = first_free(&[], 100, pool).unwrap();
        assert_eq!((a.uid, a.gid), (1000, 5000));
        let b = first_free(&[a], 100, pool).unwrap();
        assert_eq!((b.uid, b.gid), (1100, 5100));
        let c = first_free(&[a, b], 100, pool).unwrap();
        assert_eq!((c.uid, c.gid), (1200, 5200));
        assert_eq!(first_free(&[a, b, c], 1, pool), None, "the pool is full");
        // a's range, given back, is the first free again.
        assert_eq!(first_free(&[b, c], 100, pool), Some(a));
        assert_eq!(first_free(&[b, c], 101, pool), None);
        // A smaller one fits in the gap.
        assert_eq!(first_free(&[b, c], 50, pool).unwrap().uid, 1000);
    }

    #[test]
    fn allocation_is_kept_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("berth.db")).unwrap();
        let pool = Pool {
            uid: 10,
            gid: 10,
            size: 20,
        };
        let a = allocate(&db, "a", 10, pool).unwrap();
        let b = allocate(&db, "b", 10, pool).unwrap();
        assert_ne!(a.uid, b.uid);
        assert!(allocate(&db, "c", 10, pool)
            .unwrap_err()
            .to_string()
            .contains("no 10 ids are free"));
        release(&db, "a").unwrap();
        assert_eq!(allocate(&db, "c", 10, pool).unwrap(), a);
    }

    #[test]
    fn unshift_maps_back_only_inside_the_range() {
        let m = IdMap {
            uid: 100,
            gid: 200,
            size: 10,
        };
        assert_eq!(m.unshift_uid(105), 5);
        assert_eq!(m.unshift_uid(110), 110);
        assert_eq!(m.unshift_gid(200), 0);
        assert_eq!(m.unshift_gid(5), 5);
        assert_eq!((m.shift_uid(5), m.shift_gid(0)), (105, 200));
        assert_eq!(m.shift_uid(10), 100, "out of range: the container's root");
        assert_eq!(
            m.mappings(true),
            json!([{"containerID": 0, "hostID": 200, "size": 10}])
        );
    }
}
