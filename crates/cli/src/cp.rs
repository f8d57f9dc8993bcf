//! `berth cp`: files between a container and the host, docker's way.
//!
//! Both directions go through a tar stream: the source is archived under
//! its base name, and the archive is unpacked into the destination after
//! docker's path rules chose the directory and the name of the top entry
//! (a file onto a directory goes inside it, `SRC/.` copies a directory's
//! contents, a missing destination takes the source's place). `-` is that
//! tar stream itself on stdin or stdout.
//!
//! Safety: a path inside the container is never joined onto the host path
//! of its root. The root is opened once, every lookup is an `openat2`
//! with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` from it, and every file
//! is made with an `*at` call on the parent so found; `..` and absolute
//! symlinks stop at the container's root. Unpacking onto the host is held
//! the same way inside the destination directory, since the archive came
//! from the container. Neither a directory nor a file gives way to the
//! other kind (docker's `noOverwriteDirNonDir`, which its client always
//! sets). The tar streams themselves are the engine's
//! (`berth_engine::cp`, which the API's archive endpoints use too); this
//! file holds docker's command-line rules around them.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use berth_engine::cp::{
    archive, lookup, open_root, stat_src, unpack, CopyError, InPath, Owner, SrcInfo,
};
use berth_engine::{images as store, Engine};
use clap::Args;
use rustix::fs::{self as rfs, FileType, OFlags, ResolveFlags};
use rustix::io::Errno;

#[derive(Args)]
pub struct CpArgs {
    /// Archive mode: keep uid and gid.
    #[arg(short, long)]
    archive: bool,
    /// Always follow a symbolic link in SRC_PATH.
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH or - (a tar on stdin).
    src: String,
    /// CONTAINER:DEST_PATH or DEST_PATH or - (a tar on stdout).
    dest: String,
}

/// `CONTAINER:PATH`, docker's way: a local path holding a colon must start
/// with `/` or `.`.
fn split(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':')
}

fn invalid(msg: impl Into<String>) -> anyhow::Error {
    berth_engine::Error::InvalidArgument(msg.into()).into()
}

pub fn cp(engine: &Engine, a: CpArgs) -> Result<u8> {
    match (split(&a.src), split(&a.dest)) {
        (Some(_), Some(_)) => bail!(invalid("copying between containers is not supported")),
        (None, None) => bail!(invalid("must specify at least one container source")),
        (Some((c, src)), None) => {
            let s = store::open(&engine.paths)?;
            let src = InPath::container(src);
            let owner = if a.archive {
                Owner::Keep
            } else {
                Owner::Fixed(
                    rustix::process::geteuid().as_raw(),
                    rustix::process::getegid().as_raw(),
                )
            };
            berth_engine::cp::with_rootfs(engine, &s, c, |ctr, dir| {
                let owner = match (owner, ctr.config.host_config.id_map) {
                    (Owner::Keep, Some(m)) => Owner::Unshift(m),
                    (o, _) => o,
                };
                let root = open_root(dir)?;
                let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
                let not_found = || {
                    format!(
                        "Could not find the file {} in container {}",
                        src.display,
                        ctr.name.trim_start_matches('/')
                    )
                };
                let info =
                    stat_src(root.as_fd(), &src, resolve, a.follow_link).map_err(|e| match e {
                        Errno::NOENT | Errno::NOTDIR if !src.must_be_dir => {
                            anyhow::anyhow!(not_found())
                        }
                        e => anyhow::Error::from(io::Error::from(e))
                            .context(format!("{} in container {}", src.display, ctr.name)),
                    })?;
                if a.dest == "-" {
                    if io::stdout().is_terminal() {
                        bail!("cowardly refusing to write a tar to a terminal");
                    }
                    let out = io::BufWriter::new(io::stdout().lock());
                    let top = if src.base == "." { "rootfs" } else { &src.base };
                    let mut out = archive(root.as_fd(), &src, &info, resolve, top, out)?;
                    out.flush()?;
                    return Ok(0);
                }
                let dest = PathBuf::from(&a.dest);
                let plan = plan_host(&dest, &a.dest, &src, &info)?;
                let target = open_root(&plan.dir)?;
                pipe_copy(
                    |w| archive(root.as_fd(), &src, &info, resolve, TOP, w).map(drop),
                    |r| {
                        unpack(
                            r,
                            target.as_fd(),
                            Path::new("."),
                            plan.rename.as_ref(),
                            owner,
                            true,
                        )
                    },
                )?;
                Ok(0)
            })
        }
        (None, Some((c, dest))) => {
            let s = store::open(&engine.paths)?;
            let dest = InPath::container(dest);
            // The host side, checked before anything is mounted.
            let src = if a.src == "-" {
                None
            } else {
                let p = InPath::host(&a.src);
                let info = stat_src(rustix::fs::CWD, &p, ResolveFlags::empty(), a.follow_link)
                    .map_err(|e| anyhow::anyhow!("lstat {}: {}", a.src, io::Error::from(e)))?;
                Some((p, info))
            };
            if src.is_none() && io::stdin().is_terminal() {
                bail!("cowardly refusing to read a tar from a terminal");
            }
            berth_engine::cp::with_rootfs(engine, &s, c, |ctr, dir| {
                let owner = Owner::into(ctr, a.archive);
                let root = open_root(dir)?;
                let plan = plan_container(root.as_fd(), &dest, src.as_ref().map(|(p, i)| (p, i)))
                    .map_err(|e| match e.downcast::<Errno>() {
                    Ok(Errno::NOENT | Errno::NOTDIR) => anyhow::anyhow!(
                        "Could not find the file {} in container {}",
                        dest.display,
                        ctr.name.trim_start_matches('/')
                    ),
                    Ok(e) => anyhow::Error::from(io::Error::from(e)),
                    Err(e) => e,
                })?;
                match &src {
                    None => unpack(
                        io::stdin().lock(),
                        root.as_fd(),
                        &plan.dir,
                        None,
                        owner,
                        true,
                    ),
                    Some((p, info)) => pipe_copy(
                        |w| {
                            archive(rustix::fs::CWD, p, info, ResolveFlags::empty(), TOP, w)
                                .map(drop)
                        },
                        |r| {
                            unpack(
                                r,
                                root.as_fd(),
                                &plan.dir,
                                plan.rename.as_ref(),
                                owner,
                                true,
                            )
                        },
                    ),
                }?;
                Ok(0)
            })
        }
    }
}

/// Where an archive is unpacked and what its top entry is renamed to
/// (`""`: dropped, its contents go straight into `dir`).
struct Plan {
    dir: PathBuf,
    rename: Option<String>,
}

/// The name every piped archive's top entry has: the plan renames it.
const TOP: &str = "top";

/// docker's rules against a host destination.
fn plan_host(dest: &Path, raw: &str, src: &InPath, info: &SrcInfo) -> Result<Plan> {
    plan(
        std::fs::metadata(dest).ok().map(|m| m.is_dir()),
        raw,
        (src, info),
        |p| {
            let parent = p
                .parent()
                .filter(|q| !q.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                bail!("no such directory: {}", parent.display());
            }
            Ok(parent.to_path_buf())
        },
        dest,
    )
}

/// docker's rules against a container destination: `None` for a tar on
/// stdin, which must go into a directory.
fn plan_container(
    root: BorrowedFd,
    dest: &InPath,
    src: Option<(&InPath, &SrcInfo)>,
) -> Result<Plan> {
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let is_dir = match lookup(root, &dest.path, OFlags::PATH, resolve) {
        Ok(fd) => Some(FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) == FileType::Directory),
        Err(Errno::NOENT) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(src) = src else {
        return match is_dir {
            Some(true) => Ok(Plan {
                dir: dest.path.clone(),
                rename: None,
            }),
            Some(false) => bail!("destination \"{}\" must be a directory", dest.display),
            None => Err(Errno::NOENT.into()),
        };
    };
    let raw = dest.display.clone();
    plan(
        is_dir,
        &raw,
        src,
        |p| {
            let parent = p.parent().unwrap_or(Path::new("."));
            let fd = lookup(root, parent, OFlags::PATH | OFlags::DIRECTORY, resolve)?;
            drop(fd);
            Ok(parent.to_path_buf())
        },
        &dest.path,
    )
}

fn plan(
    is_dir: Option<bool>,
    raw: &str,
    (src, info): (&InPath, &SrcInfo),
    parent_of: impl FnOnce(&Path) -> Result<PathBuf>,
    dest: &Path,
) -> Result<Plan> {
    let src_dir = info.kind == FileType::Directory;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".to_string());
    match is_dir {
        // Into the directory: under the source's name, or only its
        // contents for `SRC/.`.
        Some(true) => Ok(Plan {
            dir: dest.to_path_buf(),
            rename: Some(if src.contents {
                String::new()
            } else {
                src.base.clone()
            }),
        }),
        Some(false) if src_dir => {
            bail!(invalid(format!("cannot copy a directory to a file: {raw}")))
        }
        Some(false) => Ok(Plan {
            dir: parent_of(dest)?,
            rename: Some(name.clone()),
        }),
        None if raw.ends_with('/') && !src_dir => {
            bail!("destination directory {raw} does not exist")
        }
        None => Ok(Plan {
            dir: parent_of(dest)?,
            rename: Some(name.clone()),
        }),
    }
}

/// Runs a producer writing a tar and a consumer reading it through a pipe.
fn pipe_copy(
    produce: impl FnOnce(&mut File) -> Result<(), CopyError> + Send,
    consume: impl FnOnce(&mut File) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let mut r = File::from(r);
    let mut w = File::from(w);
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            let res = produce(&mut w);
            drop(w);
            res
        });
        let consumed = consume(&mut r);
        // Unblocks a producer still writing after a failed unpack.
        drop(r);
        let produced = h
            .join()
            .unwrap_or_else(|_| Err(CopyError::Invalid("archiving panicked".into())));
        consumed.and(produced)
    })
}
