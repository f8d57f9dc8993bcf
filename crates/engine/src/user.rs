//! `-u user[:group]`: names and ids resolved against the container's own
//! /etc/passwd and /etc/group, read inside its root (openat2
//! RESOLVE_IN_ROOT: a symlinked /etc/passwd cannot lead to the host's).

use std::io::Read;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

impl User {
    pub fn root() -> User {
        User {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            home: "/root".into(),
        }
    }
}

/// Resolves `spec` (`""`, `name`, `uid`, with `:group` or `:gid`) given the
/// contents of passwd and group. Docker's rules: a numeric uid needs no
/// entry; a name must exist; the groups listing the user are added.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<User> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd
        .lines()
        .filter_map(parse_passwd)
        .find(|e| e.name == u || u.parse() == Ok(e.uid));
    let (uid, mut gid, name, home) = match (&entry, u.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name), e.home.to_string()),
        (None, Ok(uid)) => (uid, 0, None, "/".to_string()),
        (None, Err(_)) => {
            return Err(Error::InvalidArgument(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )))
        }
    };
    let groups: Vec<(&str, u32, Vec<&str>)> = group.lines().filter_map(parse_group).collect();
    if let Some(g) = g {
        gid = match (
            groups
                .iter()
                .find(|(n, id, _)| *n == g || g.parse() == Ok(*id)),
            g.parse::<u32>(),
        ) {
            (Some((_, id, _)), _) => *id,
            (None, Ok(id)) => id,
            (None, Err(_)) => {
                return Err(Error::InvalidArgument(format!(
                    "unable to find group {g}: no matching entries in group file"
                )))
            }
        };
    }
    let additional_gids = match name {
        // An explicit group replaces the supplementary ones, as docker does.
        Some(n) if g.is_none() => groups
            .iter()
            .filter(|(_, id, m)| *id != gid && m.contains(&n))
            .map(|(_, id, _)| *id)
            .collect(),
        _ => vec![],
    };
    let home = if uid == 0 && entry.is_none() {
        "/root".into()
    } else {
        home
    };
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn parse_passwd(line: &str) -> Option<Passwd<'_>> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 6 {
        return None;
    }
    Some(Passwd {
        name: f[0],
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        home: f[5],
    })
}

fn parse_group(line: &str) -> Option<(&str, u32, Vec<&str>)> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 4 {
        return None;
    }
    Some((
        f[0],
        f[2].parse().ok()?,
        f[3].split(',').filter(|s| !s.is_empty()).collect(),
    ))
}

/// Resolves `spec` against the files of the root mounted at `rootfs`.
pub fn resolve_in_root(rootfs: &Path, spec: &str) -> Result<User> {
    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let group = read_in_root(rootfs, "etc/group")?;
    resolve(spec, &passwd, &group)
}

/// `--group-add`: group names (from the root's /etc/group) or ids.
pub fn groups_in_root(rootfs: &Path, names: &[String]) -> Result<Vec<u32>> {
    if names.is_empty() {
        return Ok(vec![]);
    }
    let group = read_in_root(rootfs, "etc/group")?;
    names
        .iter()
        .map(|n| {
            group
                .lines()
                .filter_map(parse_group)
                .find(|(name, _, _)| name == n)
                .map(|(_, id, _)| id)
                .or_else(|| n.parse().ok())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "--group-add {n}: no such group in the container's /etc/group"
                    ))
                })
        })
        .collect()
}

/// A small file inside the root, or "" when it does not exist.
fn read_in_root(rootfs: &Path, rel: &str) -> Result<String> {
    let what = || format!("reading /{rel} in {}", rootfs.display());
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| crate::error::io_err(what())(e.into()))?;
    let fd = match rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(String::new()),
        Err(e) => return Err(crate::error::io_err(what())(e.into())),
    };
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut s)
        .map_err(crate::error::io_err(what()))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nuser:x:1000:\nextra:x:2000:user\nwheel:x:10:root,user\n";

    #[test]
    fn names_ids_and_groups() {
        assert_eq!(
            resolve("", PASSWD, GROUP).unwrap(),
            User {
                uid: 0,
                gid: 0,
                additional_gids: vec![10],
                home: "/root".into()
            }
        );
        let u = resolve("user", PASSWD, GROUP).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone(), u.home.as_str()),
            (1000, 1000, vec![2000, 10], "/home/user")
        );
        assert_eq!(resolve("1000", PASSWD, GROUP).unwrap(), u);
        let u = resolve("user:extra", PASSWD, GROUP).unwrap();
        assert_eq!((u.gid, u.additional_gids.len()), (2000, 0));
        let u = resolve("4242:4343", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 4343));
        assert_eq!(resolve("4242", "", "").unwrap().gid, 0);
    }

    #[test]
    fn unknown_names_fail_naming_them() {
        assert!(resolve("nobody2", PASSWD, GROUP)
            .unwrap_err()
            .to_string()
            .contains("nobody2"));
        assert!(resolve("user:nogroup", PASSWD, GROUP)
            .unwrap_err()
            .to_string()
            .contains("nogroup"));
    }

    #[test]
    fn reads_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "app:x:7:7::/app:/bin/sh\n").unwrap();
        // An absolute symlink resolves inside the root, not to the host's.
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("etc/group")).unwrap();
        let u = resolve_in_root(dir.path(), "app").unwrap();
        assert_eq!((u.uid, u.home.as_str()), (7, "/app"));
        assert!(
            resolve_in_root(dir.path(), "root").is_err(),
            "the host's passwd leaked in"
        );
    }
}
