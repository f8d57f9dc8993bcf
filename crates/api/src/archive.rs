//! `/containers/{id}/archive` (what `docker cp` uses both ways): `HEAD`
//! stats a path inside the container, `GET` sends it as a tar under its
//! base name, `PUT` unpacks a tar into a directory. Paths are resolved
//! inside the container's root by the engine's `cp` functions; docker's
//! rules for where a copy lands are its client's.

use std::os::fd::AsFd;

use base64::Engine as _;
use berth_engine::cp::{self, InPath, Owner};
use hyper::{header, StatusCode};
use rustix::fs::{self as rfs, FileType, ResolveFlags};
use rustix::io::Errno;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn resolve() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Go's `os.FileMode` bits for a stat's mode, as docker's client reads
/// them (it asks `IsDir()` of them).
fn go_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match FileType::from_raw_mode(st_mode) {
        FileType::Directory => 1 << 31,
        FileType::Symlink => 1 << 27,
        FileType::BlockDevice => 1 << 26,
        FileType::Fifo => 1 << 25,
        FileType::Socket => 1 << 24,
        FileType::CharacterDevice => (1 << 26) | (1 << 21),
        _ => 0,
    };
    for (bit, go) in [(0o4000, 1 << 23), (0o2000, 1 << 22), (0o1000, 1 << 20)] {
        if st_mode & bit != 0 {
            m |= go;
        }
    }
    m
}

/// A link's target as a path inside the container (docker's
/// `linkTarget`): relative targets are taken from the link's directory.
fn link_target(path: &str, target: &str) -> String {
    if target.starts_with('/') {
        return target.to_string();
    }
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{dir}/{target}")
}

fn not_found(path: &str, container: &str) -> ApiError {
    ApiError::not_found(format!(
        "Could not find the file {path} in container {container}"
    ))
}

/// The `path` query parameter, as given.
fn path_of(ctx: &Ctx) -> Result<String, ApiError> {
    ctx.query
        .get("path")
        .filter(|p| !p.is_empty())
        .map(String::from)
        .ok_or_else(|| ApiError::bad_request("archive needs a path"))
}

/// docker's stat of `path` in container `key`.
async fn stat(ctx: &Ctx, key: String, path: String) -> Result<Value, ApiError> {
    let found = ctx
        .api
        .blocking(move |e| {
            let store = berth_engine::images::open(&e.paths)?;
            cp::with_rootfs(e, &store, &key, |c, dir| {
                let root = cp::open_root(dir)?;
                let p = InPath::container(&path);
                let info = match cp::stat_src(root.as_fd(), &p, resolve(), false) {
                    Ok(i) => i,
                    Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Err(c.name.clone())),
                    Err(e) => return Err(io_err(&path, e)),
                };
                let st = rfs::fstat(&info.fd).map_err(|e| io_err(&path, e))?;
                let target = if info.kind == FileType::Symlink {
                    let t =
                        rfs::readlinkat(&info.fd, "", Vec::new()).map_err(|e| io_err(&path, e))?;
                    link_target(&format!("/{}", p.path.display()), &t.to_string_lossy())
                } else {
                    String::new()
                };
                let name = if p.base == "." { "/" } else { &p.base };
                let mtime = chrono::DateTime::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32)
                    .unwrap_or_default();
                Ok(Ok(json!({
                    "name": name,
                    "size": st.st_size,
                    "mode": go_mode(st.st_mode),
                    "mtime": mtime.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                    "linkTarget": target,
                })))
            })
        })
        .await?;
    let name = ctx.query.get("path").unwrap_or_default().to_string();
    found.map_err(|container| not_found(&name, &container))
}

fn io_err(path: &str, e: Errno) -> berth_engine::Error {
    berth_engine::Error::Io {
        what: path.to_string(),
        source: e.into(),
    }
}

fn with_stat(mut r: Response, st: &Value) -> Result<Response, ApiError> {
    let enc = base64::engine::general_purpose::STANDARD.encode(st.to_string());
    let v = header::HeaderValue::from_str(&enc)
        .map_err(|e| ApiError::internal(format!("stat header: {e}")))?;
    r.headers_mut().insert(STAT_HEADER, v);
    Ok(r)
}

/// `HEAD`: the stat alone.
pub async fn head(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let path = path_of(&ctx)?;
    let st = stat(&ctx, id, path).await?;
    with_stat(body::empty(StatusCode::OK), &st)
}

/// `GET`: the stat and the tar.
pub async fn get(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let path = path_of(&ctx)?;
    let st = stat(&ctx, id.clone(), path.clone()).await?;
    let r = body::streamed(&ctx.api, "application/x-tar", move |e, w| {
        let store = berth_engine::images::open(&e.paths)?;
        cp::with_rootfs(e, &store, &id, |_, dir| {
            let root = cp::open_root(dir)?;
            let p = InPath::container(&path);
            let info =
                cp::stat_src(root.as_fd(), &p, resolve(), false).map_err(|e| io_err(&path, e))?;
            // docker names the top entry by the path's base: `.` for
            // `DIR/.` and for the root itself.
            let top = if p.contents { "." } else { p.base.as_str() };
            cp::archive(root.as_fd(), &p, &info, resolve(), top, w)?;
            Ok(())
        })
    })
    .await?;
    with_stat(r, &st)
}

/// `PUT`: a tar unpacked into an existing directory.
pub async fn put(mut ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let path = path_of(&ctx)?;
    let keep_non_dirs = ctx.query.flag("noOverwriteDirNonDir");
    let copy_ids = ctx.query.flag("copyUIDGID");
    let (reader, feed) = body::reader(
        ctx.take_body()
            .ok_or_else(|| ApiError::bad_request("archive needs a tar body"))?,
    );
    let result = ctx
        .api
        .blocking(move |e| {
            let store = berth_engine::images::open(&e.paths)?;
            cp::with_rootfs(e, &store, &id, |c, dir| {
                let root = cp::open_root(dir)?;
                let p = InPath::container(&path);
                match cp::lookup(root.as_fd(), &p.path, rfs::OFlags::PATH, resolve()) {
                    Ok(fd) => {
                        let st = rfs::fstat(&fd).map_err(|e| io_err(&path, e))?;
                        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                            return Err(berth_engine::Error::InvalidArgument(format!(
                                "extraction point is not a directory: {path}"
                            )));
                        }
                    }
                    Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Err(c.name.clone())),
                    Err(e) => return Err(io_err(&path, e)),
                }
                cp::unpack(
                    reader,
                    root.as_fd(),
                    &p.path,
                    None,
                    Owner::into(c, copy_ids),
                    keep_non_dirs,
                )?;
                Ok(Ok(()))
            })
        })
        .await;
    feed.abort();
    let name = ctx.query.get("path").unwrap_or_default().to_string();
    result?.map_err(|container| not_found(&name, &container))?;
    Ok(body::empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_gos() {
        assert_eq!(go_mode(0o040755), (1 << 31) | 0o755);
        assert_eq!(go_mode(0o100644), 0o644);
        assert_eq!(go_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_mode(0o104755), (1 << 23) | 0o755);
    }

    #[test]
    fn link_targets_are_paths_in_the_container() {
        assert_eq!(link_target("/bin/sh", "busybox"), "/bin/busybox");
        assert_eq!(link_target("/x", "/etc/y"), "/etc/y");
    }
}
