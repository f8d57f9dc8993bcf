//! COPY and ADD in a stage: the sources read (the context, a stage or an
//! image, heredocs, downloads, archives to unpack) and their digest, then
//! the layer written onto the image the stage is at.

use std::io::{Read, Write};
use std::path::Path;

use berth_image::Digest;
use serde_json::Value;

use super::commit::{child, Current, Layer};
use super::error::{io_err, BuildError, Result};
use super::resolve::Escape;
use super::source::{self, inline, Item, Tree};
use super::stage::{now, StageRun};
use super::tarball::{self, Chmod};
use super::view::View;
use crate::dockerfile::{Copy, Source};
use crate::dockerignore::{DockerIgnore, IgnoreError};

/// What a COPY or ADD reads, kept readable until its layer is written.
pub(super) struct Sources<'b> {
    pub items: Vec<Item>,
    pub digest: Digest,
    _view: Option<View<'b>>,
    _tmp: Option<tempfile::TempDir>,
}

impl<'b> StageRun<'b> {
    pub(super) fn sources(&self, c: &Copy, add: bool) -> Result<Sources<'b>> {
        if c.parents {
            return Err(BuildError::Unsupported("COPY --parents".into()));
        }
        let view = match &c.from {
            Some(f) => Some(View::mount(
                &self.b.store,
                self.image_named(f)?.as_ref(),
                &self.b.scratch,
            )?),
            None => None,
        };
        let from_name = c.from.clone().unwrap_or_default();
        let tree = match &view {
            Some(v) => Tree {
                root: v.root(),
                ignore: None,
                escape: Escape::Clamp,
                keep_owner: true,
                name: &from_name,
            },
            None => Tree {
                root: self.b.context.root(),
                ignore: Some(self.b.context.ignore()),
                escape: Escape::Refuse,
                keep_owner: false,
                name: "build context",
            },
        };
        let mut items = Vec::new();
        let mut tmp = None;
        let mut urls = 0;
        for s in &c.sources {
            match s {
                Source::Heredoc(h) => items.push(inline(
                    &h.name,
                    h.content.clone().into_bytes(),
                    0o644,
                    now(),
                )),
                Source::Path(p) if add && is_git(p) => {
                    return Err(BuildError::Unsupported(format!(
                        "ADD of a git repository ({p})"
                    )))
                }
                Source::Path(p) if add && is_url(p) => {
                    urls += 1;
                    items.push(self.download(p, c, &mut tmp)?);
                }
                Source::Path(p) => {
                    let mut selected = tree.select(p)?;
                    if add && c.from.is_none() && c.unpack != Some(false) {
                        for it in &mut selected {
                            if let (false, Some(src)) = (it.is_dir, it.entries[0].src.clone()) {
                                if is_archive(&src)? {
                                    it.archive = Some(src);
                                }
                            }
                        }
                    }
                    items.extend(selected);
                }
            }
        }
        if c.checksum.is_some() && urls != c.sources.len() {
            return Err(BuildError::Invalid(
                "ADD --checksum checks downloads only: every source must be a URL".into(),
            ));
        }
        if !c.excludes.is_empty() {
            let ex = DockerIgnore::parse(&c.excludes.join("\n")).map_err(|e| {
                let (IgnoreError::BareExclusion { line, .. }
                | IgnoreError::BadPattern { line, .. }) = e;
                let pattern = c.excludes.get(line - 1).map_or("", String::as_str);
                BuildError::Invalid(format!(
                    "--exclude={pattern}: {}",
                    e.to_string().split_once(": ").map_or("", |(_, m)| m)
                ))
            })?;
            items.retain(|i| !ex.matches(&i.name));
            for i in &mut items {
                let name = i.name.clone();
                i.entries.retain(|e| {
                    e.rel.is_empty()
                        || !(ex.matches(&e.rel) || ex.matches(&format!("{name}/{}", e.rel)))
                });
            }
        }
        let digest = source::digest(&items, &self.b.hashes)?;
        Ok(Sources {
            items,
            digest,
            _view: view,
            _tmp: tmp,
        })
    }

    /// ADD of a URL: fetched now (its content is part of the cache key),
    /// mode 0600 and the server's Last-Modified time, as docker does.
    fn download(&self, url: &str, c: &Copy, tmp: &mut Option<tempfile::TempDir>) -> Result<Item> {
        let fail = |reason: String| BuildError::Download {
            url: url.to_string(),
            reason,
        };
        let resp = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
        let mtime = resp
            .header("Last-Modified")
            .and_then(|t| chrono::DateTime::parse_from_rfc2822(t).ok())
            .map_or_else(now, |t| t.timestamp());
        let mut data = Vec::new();
        resp.into_reader()
            .read_to_end(&mut data)
            .map_err(|e| fail(e.to_string()))?;
        if let Some(want) = &c.checksum {
            let got = Digest::of(&data);
            if got.as_str() != want {
                return Err(fail(format!("checksum is {got}, --checksum wants {want}")));
            }
        }
        let path = url
            .split(['?', '#'])
            .next()
            .unwrap_or(url)
            .split_once("://")
            .map_or("", |(_, rest)| rest);
        let name = match path.split_once('/') {
            Some((_, p)) if !source::base_name(p).is_empty() => source::base_name(p).to_string(),
            _ if c.dest.ends_with('/') => {
                return Err(fail(
                    "cannot name the file: the URL has no path; give a destination file name"
                        .into(),
                ))
            }
            _ => "download".to_string(),
        };
        let mut item = inline(&name, data, 0o600, mtime);
        if c.unpack == Some(true) {
            let dir = tempfile::Builder::new()
                .prefix("add-")
                .tempdir_in(&self.b.scratch)
                .map_err(io_err("creating a download directory"))?;
            let file = dir.path().join("archive");
            std::fs::write(&file, item.entries[0].data.as_deref().unwrap_or_default())
                .map_err(io_err("saving a download"))?;
            if is_archive(&file)? {
                item.archive = Some(file);
            }
            *tmp = Some(dir);
        }
        Ok(item)
    }

    pub(super) fn copy(
        &self,
        c: &Copy,
        keyword: &str,
        sources: &Sources<'_>,
        history: Value,
    ) -> Result<Current> {
        let view = View::mount(&self.b.store, self.cur.image.as_ref(), &self.b.scratch)?;
        let rt = self.cur.runtime();
        let workdir = rt
            .get("WorkingDir")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string();
        let workdir = if workdir.is_empty() {
            "/".to_string()
        } else {
            workdir
        };
        let chown = c
            .chown
            .as_deref()
            .map(|s| chown_ids(s, view.root()))
            .transpose()?;
        let chmod = c.chmod.as_deref().map(Chmod::parse).transpose()?;
        // --link: the layer is made apart from the image (BuildKit's
        // rule): no directory or link of it shapes where files land or
        // the parents made for them, so the layer fits on any parent.
        let apart;
        let onto = if c.link {
            apart = View::mount(&self.b.store, None, &self.b.scratch)?;
            apart.root()
        } else {
            view.root()
        };
        let placed = tarball::place(&sources.items, &c.dest, &workdir, onto, keyword)?;
        let o = tarball::Options {
            chown,
            chmod,
            epoch: self.b.opts.source_date_epoch,
            now: now(),
        };
        let mut write = |w: &mut dyn Write| tarball::write(w, onto, &placed, &o).map(|_| ());
        child(
            &self.b.store,
            &self.cur,
            rt,
            history,
            Layer::Write(&mut write),
            &self.b.created(),
        )
    }
}

/// `--chown=user[:group]`: names from the image's own passwd and group;
/// without a group, the gid is the uid (docker's rule).
fn chown_ids(spec: &str, root: &Path) -> Result<(u32, u32)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => berth_engine::user::resolve_in_root(root, u)?.uid,
    };
    let gid = match g {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => berth_engine::user::resolve_in_root(root, &format!("0:{g}"))?.gid,
        },
    };
    Ok((uid, gid))
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn is_git(s: &str) -> bool {
    s.starts_with("git@")
        || s.starts_with("git://")
        || (is_url(s)
            && s.split(['?', '#'])
                .next()
                .is_some_and(|p| p.ends_with(".git")))
}

/// Whether ADD unpacks `path`: a tar, plain or gzip/zstd compressed.
/// bzip2 and xz archives, which docker also unpacks, are refused rather
/// than copied as they are.
fn is_archive(path: &Path) -> Result<bool> {
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .and_then(|f| f.take(6).read_to_end(&mut head))
        .map_err(io_err(format!("reading {}", path.display())))?;
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(BuildError::Unsupported(format!(
            "ADD of a bzip2 or xz archive ({})",
            path.display()
        )));
    }
    let f = std::fs::File::open(path).map_err(io_err(format!("reading {}", path.display())))?;
    Ok(super::context::holds_tar(std::io::BufReader::new(f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chown_names_and_numbers() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "app:x:1001:1002::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(t.path().join("etc/group"), "staff:x:50:\n").unwrap();
        assert_eq!(chown_ids("7", t.path()).unwrap(), (7, 7));
        assert_eq!(chown_ids("app", t.path()).unwrap(), (1001, 1001));
        assert_eq!(chown_ids("app:staff", t.path()).unwrap(), (1001, 50));
        assert_eq!(chown_ids("5:6", t.path()).unwrap(), (5, 6));
        assert!(chown_ids("nobody", t.path()).is_err());
    }
}
