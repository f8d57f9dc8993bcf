//! Finding the hierarchies (mountinfo or a given root) and placing the
//! container's cgroup path in each.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{files, Error, Hierarchy, Version, DEFAULT_PARENT};

/// The v1 controllers berth knows; other words in a cgroup mount's options
/// are mount flags.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// A cgroup filesystem from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mount {
    /// The mount's id (mountinfo's first field, statx's `stx_mnt_id`).
    pub id: u64,
    pub v2: bool,
    pub point: PathBuf,
    /// The cgroup shown at the mount point (not "/" for a bind mount of a
    /// subtree or a mount made in a cgroup namespace).
    pub root: PathBuf,
    pub controllers: Vec<String>,
    /// The superblock's options (`nsdelegate`, `favordynmods`, ...), without
    /// `rw`/`ro` and the v1 controllers.
    pub options: Vec<String>,
}

/// The cgroup path under each hierarchy root: an absolute `cgroups_path`
/// as given, a relative one under [`DEFAULT_PARENT`], none as
/// `berth/<id>`. Refuses `..`, the root itself, and systemd's
/// `slice:prefix:name` form (no systemd driver here).
pub(super) fn relative_path(cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf, Error> {
    let (given, rel) = match cgroups_path {
        None => {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." {
                return Err(Error::invalid(
                    "container id",
                    format!("{id:?} cannot name a cgroup"),
                ));
            }
            (PathBuf::from(id), Path::new(DEFAULT_PARENT).join(id))
        }
        Some(p) if p.is_absolute() => (p.to_path_buf(), p.to_path_buf()),
        Some(p) => {
            let s = p.to_string_lossy();
            if !s.contains('/') && s.matches(':').count() == 2 {
                return Err(Error::Unsupported(format!(
                    "systemd cgroupsPath {s:?} (berth uses cgroupfs)"
                )));
            }
            (p.to_path_buf(), Path::new(DEFAULT_PARENT).join(p))
        }
    };
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::invalid(
                    "cgroupsPath",
                    format!("{} leaves the cgroup tree", given.display()),
                ));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::invalid(
            "cgroupsPath",
            "the root cgroup cannot hold a container",
        ));
    }
    Ok(out)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup and cgroup2 mounts in a mountinfo text, in order.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(root), Some(point), Some(fstype), Some(opts)) = (
            fields.get(3),
            fields.get(4),
            fields.get(sep + 1),
            fields.get(sep + 3),
        ) else {
            continue;
        };
        let v2 = match *fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            opts.split(',')
                .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                .map(str::to_string)
                .collect()
        };
        let options = opts
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && !controllers.iter().any(|c| c == o))
            .map(str::to_string)
            .collect();
        out.push(Mount {
            id: fields[0].parse().unwrap_or(0),
            v2,
            point: unescape(point).into(),
            root: unescape(root).into(),
            controllers,
            options,
        });
    }
    out
}

/// What the cached cgroup mounts were read under: the boot, the mount and
/// cgroup namespaces, and the mount holding /sys/fs/cgroup and each of its
/// entries. A mount or unmount there, a remount, another namespace or a
/// reboot (a state root on disk outlives it; mount ids repeat) changes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Fingerprint {
    boot: String,
    mnt_ns: u64,
    cgroup_ns: u64,
    entries: Vec<(String, u64)>,
}

/// The id of the mount holding `path` (not following a last symlink).
fn mount_id(path: &Path) -> Option<u64> {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    let st = statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID).ok()?;
    (st.stx_mask & StatxFlags::MNT_ID.bits() != 0).then_some(st.stx_mnt_id)
}

impl Fingerprint {
    /// The id of the mount at `point`: from the fingerprint for
    /// /sys/fs/cgroup and its entries (their statx was just made), by
    /// statx for anywhere else.
    fn mount_at(&self, point: &Path) -> Option<u64> {
        let root = Path::new("/sys/fs/cgroup");
        let name = if point == root {
            Some(String::new())
        } else {
            point
                .strip_prefix(root)
                .ok()
                .filter(|rest| rest.components().count() == 1)
                .map(|rest| rest.to_string_lossy().into_owned())
        };
        match name {
            Some(n) => self
                .entries
                .iter()
                .find(|(e, _)| *e == n)
                .map(|(_, id)| *id),
            None => mount_id(point),
        }
    }
}

fn fingerprint() -> Option<Fingerprint> {
    let ns = |n: &str| {
        fs::metadata(format!("/proc/self/ns/{n}"))
            .ok()
            .map(|m| m.ino())
    };
    let root = Path::new("/sys/fs/cgroup");
    let mut entries = vec![(String::new(), mount_id(root)?)];
    for e in fs::read_dir(root).ok()? {
        let name = e.ok()?.file_name();
        let id = mount_id(&root.join(&name))?;
        entries.push((name.to_string_lossy().into_owned(), id));
    }
    entries.sort();
    Some(Fingerprint {
        boot: fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?,
        mnt_ns: ns("mnt")?,
        cgroup_ns: ns("cgroup")?,
        entries,
    })
}

#[derive(Serialize, Deserialize)]
struct Cached {
    fingerprint: Fingerprint,
    mounts: Vec<Mount>,
}

/// The host's cgroup mounts. /proc/self/mountinfo lists every mount, a
/// container's root among them, and the kernel takes about 5 ms to write
/// it out with a thousand containers running; so what was read from it is
/// kept in `cache` and used again while the layout it was read under
/// holds (every mount it names still at its place, see [`Fingerprint`]).
/// A cgroup filesystem mounted later outside /sys/fs/cgroup is not seen
/// until the cache is rebuilt; nothing of berth's mounts one.
pub(crate) fn host_mounts(cache: Option<&Path>) -> Result<Vec<Mount>, Error> {
    let fp = cache.and_then(|_| fingerprint());
    if let (Some(path), Some(fp)) = (cache, &fp) {
        let cached = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Cached>(&b).ok());
        if let Some(c) = cached.filter(|c| c.fingerprint == *fp) {
            if c.mounts.iter().all(|m| fp.mount_at(&m.point) == Some(m.id)) {
                return Ok(c.mounts);
            }
        }
    }
    let mounts = parse_mountinfo(&files::read_path(Path::new("/proc/self/mountinfo"))?);
    if let (Some(path), Some(fingerprint)) = (cache, fp) {
        // Best effort: without it the next start reads mountinfo again.
        let c = Cached {
            fingerprint,
            mounts: mounts.clone(),
        };
        if let Ok(b) = serde_json::to_vec(&c) {
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            if fs::write(&tmp, b)
                .and_then(|()| fs::rename(&tmp, path))
                .is_err()
            {
                let _ = fs::remove_file(&tmp);
            }
        }
    }
    Ok(mounts)
}

/// How to get `favordynmods` onto the host's cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DynModsPlan {
    Already(PathBuf),
    /// Reconfigure the cgroup2 mount at `point` with `options`: its own
    /// (which a reconfigure would otherwise drop), with or without
    /// `favordynmods`.
    Reconfigure {
        point: PathBuf,
        options: Vec<String>,
    },
}

/// The plan for `favordynmods` to be `on` (or off).
pub(super) fn dynmods_plan(mounts: &[Mount], on: bool) -> Result<DynModsPlan, Error> {
    let has = |m: &&Mount| m.options.iter().any(|o| o == "favordynmods");
    // Only the initial cgroup namespace's view may change the flags: a
    // mount showing a subtree is a container's.
    let v2 = mounts
        .iter()
        .filter(|m| m.v2 && m.root == Path::new("/"))
        .min_by_key(|m| m.point.components().count());
    if on {
        if let Some(m) = mounts.iter().find(has) {
            return Ok(DynModsPlan::Already(m.point.clone()));
        }
    } else {
        match (mounts.iter().find(has), v2) {
            (None, Some(m)) => return Ok(DynModsPlan::Already(m.point.clone())),
            (Some(m), _) if !m.v2 => {
                return Err(Error::Unsupported(format!(
                    "taking favordynmods off {}: a v1 hierarchy keeps it from boot",
                    m.point.display()
                )))
            }
            _ => {}
        }
    }
    match v2 {
        Some(m) => Ok(DynModsPlan::Reconfigure {
            point: m.point.clone(),
            options: m
                .options
                .iter()
                .filter(|o| *o != "favordynmods")
                .cloned()
                .chain(on.then(|| "favordynmods".to_string()))
                .collect(),
        }),
        None if mounts.is_empty() => Err(Error::NoCgroupFs),
        None if mounts.iter().any(|m| m.v2) => Err(Error::Unsupported(
            "favordynmods from inside a cgroup namespace (the host's cgroup2 mount is not seen)"
                .into(),
        )),
        None => Err(Error::Unsupported(
            "favordynmods on a host with cgroup v1 only (v1 hierarchies take it at boot: \
             cgroup_favordynmods=true on the kernel's command line)"
                .into(),
        )),
    }
}

/// `rel` inside a hierarchy mounted at `point` showing cgroup `root`.
fn dir_in(point: &Path, root: &Path, rel: &Path) -> PathBuf {
    let abs = Path::new("/").join(rel);
    match abs.strip_prefix(root) {
        Ok(inner) if root != Path::new("/") => point.join(inner),
        _ => point.join(rel),
    }
}

/// The layout made of `mounts`: v1 hierarchies (first mount of each
/// controller wins) and the cgroup2 one, if any.
pub(super) fn from_mounts(
    mounts: &[Mount],
    rel: &Path,
) -> Result<(Version, Vec<Hierarchy>, Option<Hierarchy>), Error> {
    let mut v1: Vec<Hierarchy> = Vec::new();
    for m in mounts.iter().filter(|m| !m.v2 && !m.controllers.is_empty()) {
        if m.controllers
            .iter()
            .any(|c| v1.iter().any(|h| h.controllers.contains(c)))
        {
            continue;
        }
        v1.push(Hierarchy {
            controllers: m.controllers.clone(),
            mount: m.point.clone(),
            dir: dir_in(&m.point, &m.root, rel),
        });
    }
    let v2 = mounts.iter().filter(|m| m.v2).min_by_key(|m| {
        m.point != Path::new("/sys/fs/cgroup") && m.point != Path::new("/sys/fs/cgroup/unified")
    });
    let unified = v2.map(|m| Hierarchy {
        controllers: Vec::new(),
        mount: m.point.clone(),
        dir: dir_in(&m.point, &m.root, rel),
    });
    let real_v1 = v1
        .iter()
        .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
    let version = match (real_v1, unified.is_some()) {
        (true, true) => Version::Hybrid,
        (true, false) => Version::V1,
        (false, true) => {
            // Without v1 controllers a named v1 hierarchy only tracks
            // processes; pure v2 hosts ignore it.
            v1.clear();
            Version::V2
        }
        (false, false) => return Err(Error::NoCgroupFs),
    };
    Ok((version, v1, unified))
}

/// The layout of a tree under `root` (see `Manager::with_root`).
pub(super) fn from_root(
    root: &Path,
    version: Version,
    rel: &Path,
) -> Result<(Vec<Hierarchy>, Option<Hierarchy>), Error> {
    let hier = |controllers: Vec<String>, mount: PathBuf| Hierarchy {
        controllers,
        dir: mount.join(rel),
        mount,
    };
    if version == Version::V2 {
        return Ok((Vec::new(), Some(hier(Vec::new(), root.to_path_buf()))));
    }
    let rerr = |source| Error::Read {
        path: root.to_path_buf(),
        source,
    };
    let mut v1 = Vec::new();
    let mut unified = None;
    for e in fs::read_dir(root).map_err(rerr)? {
        let e = e.map_err(rerr)?;
        // Symlinks such as cpu -> cpu,cpuacct repeat a real directory.
        if !e.file_type().map_err(rerr)?.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        match name.as_str() {
            "unified" if version == Version::Hybrid => unified = Some(hier(Vec::new(), e.path())),
            "systemd" => v1.push(hier(vec!["name=systemd".into()], e.path())),
            _ => {
                let controllers: Vec<String> = name
                    .split(',')
                    .filter(|c| V1_CONTROLLERS.contains(c))
                    .map(str::to_string)
                    .collect();
                if !controllers.is_empty() {
                    v1.push(hier(controllers, e.path()));
                }
            }
        }
    }
    if v1.is_empty() || (version == Version::Hybrid && unified.is_none()) {
        return Err(Error::NoCgroupFs);
    }
    v1.sort_by(|a, b| a.mount.cmp(&b.mount));
    Ok((v1, unified))
}
