//! Volumes: named directories under `<root>/volumes/<name>/_data` with a
//! row each in the state database, and the parsers of `-v` and `--mount`.
//! A volume mounted empty is first filled from the image's content at its
//! path, as docker does.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value};

use crate::container::Engine;
use crate::db::{self, Db};
use crate::error::{io_err, Error, Result};
use crate::hostconfig::{check_container_path, MountSpec};

#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub name: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub labels: BTreeMap<String, String>,
    /// Made for one container (`-v /path`, VOLUME): `rm -v` removes it.
    pub anonymous: bool,
}

fn bad(flag: &str, v: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("invalid value {v:?} for {flag}: {why}"))
}

/// docker's volume name rule.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() >= 2
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid volume name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )))
    }
}

fn check_host_path(flag: &str, p: &str) -> Result<()> {
    if p.split('/').any(|c| c == "..") {
        return Err(bad(flag, p, "the host path must not contain .."));
    }
    Ok(())
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// `-v HOST:CTR[:opts]`, `-v NAME:CTR[:opts]` or `-v CTR`; opts are
/// `ro`/`rw`, a propagation, `nocopy`.
pub fn parse_volume_flag(s: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [a, b] => (*a, *b, ""),
        [a, b, o] => (*a, *b, *o),
        _ => return Err(bad("--volume", s, "expected [SOURCE:]TARGET[:OPTIONS]")),
    };
    check_container_path("--volume", dst)?;
    let mut m = MountSpec {
        kind: if src.starts_with('/') {
            "bind"
        } else {
            "volume"
        }
        .into(),
        source: src.into(),
        target: dst.into(),
        read_only: false,
        propagation: String::new(),
        options: String::new(),
    };
    if m.kind == "bind" {
        check_host_path("--volume", src)?;
        m.propagation = "rprivate".into();
    } else if !src.is_empty() {
        check_name(src)?;
    }
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.read_only = true,
            "rw" => m.read_only = false,
            "nocopy" if m.kind == "volume" => m.options = "nocopy".into(),
            p if PROPAGATIONS.contains(&p) && m.kind == "bind" => m.propagation = p.into(),
            "z" | "Z" => {
                return Err(Error::NotSupported {
                    flag: format!("--volume option {o} (SELinux relabeling)"),
                })
            }
            _ => return Err(bad("--volume", s, &format!("unknown option {o:?}"))),
        }
    }
    Ok(m)
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…,readonly,…`.
pub fn parse_mount_flag(s: &str) -> Result<MountSpec> {
    let mut m = MountSpec {
        kind: "volume".into(),
        source: String::new(),
        target: String::new(),
        read_only: false,
        propagation: String::new(),
        options: String::new(),
    };
    let mut tmpfs = Vec::new();
    for kv in s.split(',') {
        let (k, v) = kv.split_once('=').map_or((kv, None), |(k, v)| (k, Some(v)));
        let flag = |v: Option<&str>| match v {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(x) => Err(bad("--mount", s, &format!("{k}={x} is not a boolean"))),
        };
        match (k, v) {
            ("type", Some(t)) if ["bind", "volume", "tmpfs"].contains(&t) => m.kind = t.into(),
            ("type", _) => return Err(bad("--mount", s, "type is bind, volume or tmpfs")),
            ("source" | "src", Some(v)) => m.source = v.into(),
            ("target" | "destination" | "dst", Some(v)) => m.target = v.into(),
            ("readonly" | "ro", v) => m.read_only = flag(v)?,
            ("bind-propagation", Some(p)) if PROPAGATIONS.contains(&p) => m.propagation = p.into(),
            ("volume-nocopy", v) => {
                if flag(v)? {
                    m.options = "nocopy".into()
                }
            }
            ("tmpfs-size", Some(v)) => tmpfs.push(format!(
                "size={}",
                crate::hostconfig::parse_bytes("--mount tmpfs-size", v)?
            )),
            ("tmpfs-mode", Some(v)) if u32::from_str_radix(v, 8).is_ok() => {
                tmpfs.push(format!("mode={v}"))
            }
            _ => return Err(bad("--mount", s, &format!("unknown or bad field {kv:?}"))),
        }
    }
    if m.target.is_empty() {
        return Err(bad("--mount", s, "target is required"));
    }
    check_container_path("--mount", &m.target)?;
    match m.kind.as_str() {
        "bind" => {
            if !m.source.starts_with('/') {
                return Err(bad("--mount", s, "a bind source is an absolute host path"));
            }
            check_host_path("--mount", &m.source)?;
            if m.propagation.is_empty() {
                m.propagation = "rprivate".into();
            }
        }
        "volume" if !m.source.is_empty() => check_name(&m.source)?,
        "tmpfs" if !m.source.is_empty() => {
            return Err(bad("--mount", s, "a tmpfs has no source"));
        }
        _ => {}
    }
    if m.kind == "tmpfs" {
        m.options = tmpfs.join(",");
    } else if !tmpfs.is_empty() {
        return Err(bad("--mount", s, "tmpfs options need type=tmpfs"));
    }
    Ok(m)
}

const TABLE_COLUMNS: &str = "name, created, labels, anonymous";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, bool)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// Whether `c`'s mounts use the volume `name`.
pub fn uses(c: &crate::db::Container, name: &str) -> bool {
    c.config
        .host_config
        .mounts
        .iter()
        .any(|m| m.kind == "volume" && m.source == name)
}

/// A volume as `system df` shows it.
#[derive(Debug, Clone)]
pub struct VolumeUsage {
    pub volume: Volume,
    /// Bytes of its data on disk.
    pub size: u64,
    /// Containers whose mounts use it.
    pub containers: usize,
}

fn to_volume((name, created, labels, anonymous): (String, String, String, bool)) -> Result<Volume> {
    Ok(Volume {
        name,
        created: db::parse_ts(&created)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        anonymous,
    })
}

impl Engine {
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.paths.root.join("volumes").join(name)
    }

    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    /// `volume create`, and a volume's first use: an existing volume is
    /// returned as it is (docker's behaviour for both).
    pub fn volume_create(
        &self,
        name: Option<&str>,
        labels: &BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume> {
        let name = match name {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => crate::names::new_id()?,
        };
        let db = self.db()?;
        let data = self.volume_data(&name);
        fs::create_dir_all(&data).map_err(io_err(format!("creating {}", data.display())))?;
        let labels_json = serde_json::to_string(labels).unwrap_or_else(|_| "{}".into());
        let made = db
            .conn()
            .execute(
                "INSERT OR IGNORE INTO volumes (name, created, labels, anonymous) VALUES (?1, ?2, ?3, ?4)",
                params![name, db::ts(&chrono::Utc::now()), labels_json, anonymous],
            )
            .map_err(db.err())?;
        if made == 1 {
            crate::events::object(
                &db,
                "volume",
                "create",
                &name,
                &[("driver", "local".into())],
            );
        }
        self.volume(&db, &name)
    }

    fn volume(&self, db: &Db, name: &str) -> Result<Volume> {
        let row = db
            .conn()
            .query_row(
                &format!("SELECT {TABLE_COLUMNS} FROM volumes WHERE name = ?1"),
                params![name],
                from_row,
            )
            .optional()
            .map_err(db.err())?;
        match row {
            Some(r) => to_volume(r),
            None => Err(Error::NoSuchVolume(name.to_string())),
        }
    }

    pub fn volumes(&self) -> Result<Vec<Volume>> {
        let db = self.db()?;
        let mut st = db
            .conn()
            .prepare(&format!(
                "SELECT {TABLE_COLUMNS} FROM volumes ORDER BY name"
            ))
            .map_err(db.err())?;
        let rows = st.query_map([], from_row).map_err(db.err())?;
        let mut out = Vec::new();
        for r in rows {
            out.push(to_volume(r.map_err(db.err())?)?);
        }
        Ok(out)
    }

    /// The volumes `f` selects (the containers read once, for `dangling`).
    pub fn volumes_where(&self, f: &crate::filters::VolumeFilters) -> Result<Vec<Volume>> {
        let containers = if f.dangling.is_some() {
            self.list()?
        } else {
            Vec::new()
        };
        Ok(self
            .volumes()?
            .into_iter()
            .filter(|v| f.matches(v, || containers.iter().any(|c| uses(c, &v.name))))
            .collect())
    }

    /// `volume inspect`: docker's JSON.
    pub fn volume_inspect(&self, name: &str) -> Result<Value> {
        let v = self.volume(&self.db()?, name)?;
        Ok(json!({
            "CreatedAt": v.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "Driver": "local",
            "Labels": v.labels,
            "Mountpoint": self.volume_data(&v.name),
            "Name": v.name,
            "Options": null,
            "Scope": "local",
        }))
    }

    /// `system df`'s volumes: each with its size on disk and the number of
    /// containers (running or not) whose mounts use it.
    pub fn volume_usage(&self) -> Result<Vec<VolumeUsage>> {
        let all = self.list()?;
        let mut out = Vec::new();
        for volume in self.volumes()? {
            let containers = all.iter().filter(|c| uses(c, &volume.name)).count();
            let size = crate::image_ops::dir_size(&self.volume_data(&volume.name));
            out.push(VolumeUsage {
                volume,
                size,
                containers,
            });
        }
        Ok(out)
    }

    /// The containers (ids) whose mounts use volume `name`.
    fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|c| uses(c, name))
            .map(|c| c.id)
            .collect())
    }

    /// `volume rm`: refused while a container uses it, unless `force`.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let db = self.db()?;
        self.volume(&db, name)?;
        let users = self.volume_users(name)?;
        if !users.is_empty() && !force {
            return Err(Error::WrongState {
                id: name.to_string(),
                state: format!("in use by container {}", &users[0][..12]),
                op: "remove the volume",
            });
        }
        let dir = self.volume_dir(name);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("removing {}", dir.display()))(e)),
        }
        db.conn()
            .execute("DELETE FROM volumes WHERE name = ?1", params![name])
            .map_err(db.err())?;
        crate::events::object(
            &db,
            "volume",
            "destroy",
            name,
            &[("driver", "local".into())],
        );
        Ok(())
    }

    /// `volume prune`: unused anonymous volumes, or with `all` every unused
    /// volume (docker 23's rule). The names removed.
    pub fn volume_prune(
        &self,
        all: bool,
        filters: &crate::filters::PruneFilters,
    ) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for v in self.volumes()? {
            let chosen = filters.matches(|k| v.labels.get(k).map(String::as_str), Some(v.created));
            if (all || v.anonymous) && chosen && self.volume_users(&v.name)?.is_empty() {
                self.volume_remove(&v.name, false)?;
                removed.push(v.name);
            }
        }
        Ok(removed)
    }

    /// Names the anonymous volumes of `mounts` and creates every volume
    /// they use; the image's VOLUMEs not covered become anonymous ones.
    pub(crate) fn prepare_mounts(
        &self,
        mounts: &mut Vec<MountSpec>,
        image_volumes: &[String],
    ) -> Result<()> {
        for v in image_volumes {
            if !mounts.iter().any(|m| &m.target == v) {
                check_container_path("VOLUME", v)?;
                mounts.push(MountSpec {
                    kind: "volume".into(),
                    source: String::new(),
                    target: v.clone(),
                    read_only: false,
                    propagation: String::new(),
                    options: String::new(),
                });
            }
        }
        // Everything is checked before the first volume is made, so a
        // refused create leaves no volume behind.
        let mut seen = std::collections::HashSet::new();
        for m in mounts.iter() {
            if !seen.insert(m.target.clone()) {
                return Err(Error::InvalidArgument(format!(
                    "duplicate mount point: {}",
                    m.target
                )));
            }
            if m.kind == "bind" && !Path::new(&m.source).exists() {
                return Err(Error::InvalidArgument(format!(
                    "invalid mount config: bind source path does not exist: {}",
                    m.source
                )));
            }
        }
        for i in 0..mounts.len() {
            if mounts[i].kind != "volume" {
                continue;
            }
            let anonymous = mounts[i].source.is_empty();
            match self.volume_create(
                (!anonymous).then_some(mounts[i].source.as_str()),
                &BTreeMap::new(),
                anonymous,
            ) {
                Ok(v) => mounts[i].source = v.name,
                Err(e) => {
                    let _ = self.remove_anonymous(&mounts[..i]);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Before a start: every empty volume is filled from the image's
    /// content at its target (unless `nocopy`).
    /// With `id_map` (`--userns auto`) the root shows host ids, and the
    /// volume (idmapped into the container) keeps the container's.
    pub(crate) fn copy_up(
        &self,
        rootfs: &Path,
        mounts: &[MountSpec],
        id_map: Option<&crate::userns::IdMap>,
    ) -> Result<()> {
        for m in mounts
            .iter()
            .filter(|m| m.kind == "volume" && m.options != "nocopy")
        {
            let data = self.volume_data(&m.source);
            let empty = fs::read_dir(&data)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty {
                continue;
            }
            let Some(src) = inside(rootfs, &m.target) else {
                continue;
            };
            if src.is_dir() {
                copy_tree(&src, &data, id_map)?;
            }
        }
        Ok(())
    }

    /// `rm -v` (and `--rm`): the anonymous volumes of a removed container.
    pub(crate) fn remove_anonymous(&self, mounts: &[MountSpec]) -> Vec<String> {
        let mut errors = Vec::new();
        for m in mounts.iter().filter(|m| m.kind == "volume") {
            let anon = self
                .db()
                .and_then(|db| self.volume(&db, &m.source))
                .map(|v| v.anonymous);
            if let Ok(true) = anon {
                if let Err(e) = self.volume_remove(&m.source, false) {
                    errors.push(e.to_string());
                }
            }
        }
        errors
    }
}

/// `target` under `rootfs` when no component of it is a symlink: the
/// image's content is copied only from where it really is (a link could
/// point at the host).
fn inside(rootfs: &Path, target: &str) -> Option<PathBuf> {
    let mut p = rootfs.to_path_buf();
    for c in target.split('/').filter(|c| !c.is_empty()) {
        p.push(c);
        let md = fs::symlink_metadata(&p).ok()?;
        if md.file_type().is_symlink() {
            return None;
        }
    }
    Some(p)
}

/// Copies a tree keeping modes, owners (mapped back through `id_map`)
/// and symlinks (never following them).
fn copy_tree(src: &Path, dst: &Path, id_map: Option<&crate::userns::IdMap>) -> Result<()> {
    let owner = |md: &fs::Metadata| match id_map {
        Some(m) => (m.unshift_uid(md.uid()), m.unshift_gid(md.gid())),
        None => (md.uid(), md.gid()),
    };
    let md = fs::symlink_metadata(src).map_err(io_err(format!("reading {}", src.display())))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(io_err(format!("chmod {}", dst.display())))?;
    let (uid, gid) = owner(&md);
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid))
        .map_err(io_err(format!("chown {}", dst.display())))?;
    for e in fs::read_dir(src).map_err(io_err(format!("reading {}", src.display())))? {
        let e = e.map_err(io_err(format!("reading {}", src.display())))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let md =
            fs::symlink_metadata(&from).map_err(io_err(format!("reading {}", from.display())))?;
        let ft = md.file_type();
        let what = || format!("copying {}", from.display());
        if ft.is_dir() {
            fs::create_dir(&to).map_err(io_err(what()))?;
            copy_tree(&from, &to, id_map)?;
            continue;
        } else if ft.is_symlink() {
            let t = fs::read_link(&from).map_err(io_err(what()))?;
            std::os::unix::fs::symlink(t, &to).map_err(io_err(what()))?;
        } else if ft.is_file() {
            fs::copy(&from, &to).map_err(io_err(what()))?;
            fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(io_err(what()))?;
        } else {
            // Device nodes, fifos and sockets are not content.
            continue;
        }
        let (uid, gid) = owner(&md);
        std::os::unix::fs::lchown(&to, Some(uid), Some(gid)).map_err(io_err(what()))?;
    }
    Ok(())
}

/// The spec's entry for one mount; `data` is a volume's host directory.
pub(crate) fn spec_mount(m: &MountSpec, data: Option<&Path>) -> Value {
    match m.kind.as_str() {
        "tmpfs" => {
            let mut o = vec![
                "nosuid".to_string(),
                "nodev".to_string(),
                "noexec".to_string(),
            ];
            o.extend(
                m.options
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(String::from),
            );
            if m.read_only {
                o.push("ro".into());
            }
            json!({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": o})
        }
        _ => {
            let mut o = vec!["rbind".to_string()];
            o.push(if m.read_only { "ro" } else { "rw" }.into());
            o.push(if m.propagation.is_empty() {
                "rprivate".to_string()
            } else {
                m.propagation.clone()
            });
            let src = data.map_or_else(|| PathBuf::from(&m.source), Path::to_path_buf);
            json!({"destination": m.target, "type": "bind", "source": src, "options": o})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_mount_list_creates_no_volume() {
        let d = tempfile::tempdir().unwrap();
        let e = crate::Engine::new(crate::Paths::new(
            d.path().join("root"),
            d.path().join("run"),
        ));
        for bad in [
            vec!["/a", "named:/b", "/b"],
            vec!["/a", "named:/b", "/no/such/dir:/c"],
        ] {
            let mut mounts: Vec<MountSpec> =
                bad.iter().map(|f| parse_volume_flag(f).unwrap()).collect();
            assert!(e.prepare_mounts(&mut mounts, &[]).is_err(), "{bad:?}");
            assert!(e.volumes().unwrap().is_empty(), "{bad:?}");
        }
        let mut mounts = vec![parse_volume_flag("/a").unwrap()];
        e.prepare_mounts(&mut mounts, &["/img".into()]).unwrap();
        assert_eq!(e.volumes().unwrap().len(), 2);
    }

    #[test]
    fn volume_flags() {
        let m = parse_volume_flag("/host:/ctr:ro,rshared").unwrap();
        assert_eq!(
            (m.kind.as_str(), m.read_only, m.propagation.as_str()),
            ("bind", true, "rshared")
        );
        let m = parse_volume_flag("data:/ctr").unwrap();
        assert_eq!((m.kind.as_str(), m.source.as_str()), ("volume", "data"));
        let m = parse_volume_flag("/ctr").unwrap();
        assert_eq!((m.kind.as_str(), m.source.as_str()), ("volume", ""));
        for bad in [
            "/a/../b:/c",
            "/a:/b/../c",
            "/a:rel",
            "x:/c",
            "/a:/b:bogus",
            "/a:/b:c:d",
            "/a:/b:z",
        ] {
            assert!(parse_volume_flag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mount_flags() {
        let m = parse_mount_flag("type=bind,source=/h,target=/c,readonly,bind-propagation=rslave")
            .unwrap();
        assert_eq!((m.read_only, m.propagation.as_str()), (true, "rslave"));
        let m = parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777").unwrap();
        assert_eq!(m.options, "size=1048576,mode=1777");
        let m = parse_mount_flag("source=v1,target=/d,volume-nocopy").unwrap();
        assert_eq!((m.kind.as_str(), m.options.as_str()), ("volume", "nocopy"));
        for bad in [
            "type=bind,source=rel,target=/c",
            "type=bind,source=/h",
            "type=nfs,target=/c",
            "type=volume,target=/a/../b",
            "type=bind,source=/a/../b,target=/c",
            "type=bind,source=/a,target=/c,tmpfs-size=1m",
            "type=volume,target=/c,bogus=1",
        ] {
            assert!(parse_mount_flag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn copy_keeps_modes_links_and_refuses_symlinked_targets() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("data/sub")).unwrap();
        fs::write(root.join("data/sub/f"), "x").unwrap();
        fs::set_permissions(root.join("data/sub/f"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("data/link")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        let dst = d.path().join("dst");
        fs::create_dir(&dst).unwrap();
        copy_tree(&inside(&root, "/data").unwrap(), &dst, None).unwrap();
        assert_eq!(fs::read_to_string(dst.join("sub/f")).unwrap(), "x");
        assert_eq!(
            fs::metadata(dst.join("sub/f")).unwrap().mode() & 0o777,
            0o640
        );
        assert_eq!(
            fs::read_link(dst.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(inside(&root, "/escape").is_none());
        assert!(inside(&root, "/escape/x").is_none());
    }
}
