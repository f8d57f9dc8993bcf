//! RUN: a container made through the engine from the image the stage is
//! at, its output streamed back, and once it exits 0 its upper directory
//! (its changes and nothing else) is the step's layer. Whatever happens,
//! the container is removed before the step returns.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;

use berth_engine::attach::AttachTo;
use berth_engine::stream::{Decoder, Kind};
use berth_engine::{Engine, RunOptions};

use super::error::{io_err, BuildError, Result};
use super::Cancel;

/// A build step's container; removed (with its anonymous volumes) when
/// dropped.
pub(crate) struct StepContainer<'a> {
    engine: &'a Engine,
    cancel: &'a Cancel,
    pub id: String,
}

impl<'a> StepContainer<'a> {
    pub fn create(
        engine: &'a Engine,
        opts: &RunOptions,
        cancel: &'a Cancel,
    ) -> Result<StepContainer<'a>> {
        if cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        let c = engine.create(opts)?;
        cancel.lock().insert(c.id.clone());
        Ok(StepContainer {
            engine,
            cancel,
            id: c.id,
        })
    }

    /// Starts the container and waits for it, handing its output to `out`
    /// (`true` for stderr) as it comes. Returns its exit code.
    pub fn run(&self, out: &dyn Fn(bool, &[u8])) -> Result<i32> {
        let (mut ours, theirs) = UnixStream::pair().map_err(io_err("creating a socket pair"))?;
        let attach = AttachTo {
            stream: theirs.into(),
            console_size: None,
        };
        let handle = self.engine.start(&self.id, Some(attach))?;
        // A cancel that came between create and start found nothing to
        // kill yet.
        if self.cancel.is_cancelled() {
            let _ = self.engine.kill(&self.id, "KILL");
        }
        let mut frames = Decoder::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match ours.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("reading the step's output")(e)),
            };
            frames.push(&buf[..n]);
            loop {
                match frames.next_frame() {
                    Ok(Some((Kind::Stdout, data))) => out(false, &data),
                    Ok(Some((Kind::Stderr, data))) => out(true, &data),
                    Ok(Some((Kind::Exit, body))) => {
                        // The exit is told once it is recorded: the
                        // container's root is unmounted by now.
                        return String::from_utf8_lossy(&body).trim().parse().map_err(|_| {
                            BuildError::Invalid(format!("container {}: bad exit report", self.id))
                        });
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        return Err(BuildError::Invalid(format!(
                            "container {}: garbled output stream",
                            self.id
                        )))
                    }
                }
            }
        }
        Ok(handle.wait()?)
    }
}

impl Drop for StepContainer<'_> {
    fn drop(&mut self) {
        self.cancel.lock().remove(&self.id);
        if let Err(e) = self.engine.remove(&self.id, true, true) {
            tracing::warn!(container = self.id, error = %e, "removing a build container");
        }
    }
}

/// Paths the runtime creates in a container's root to mount over (docker
/// keeps them in an "init" layer below the container's, so they never
/// reach an image). Deepest first.
const STUBS: &[&str] = &[
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "dev/shm",
    "dev/pts",
    "dev/mqueue",
    "dev",
    "proc",
    "sys",
];

/// Removes from `upper` the empty mount points the runtime made (the
/// standard ones and `extra`: RUN's own mount targets and the directories
/// made to hold them) so the layer holds only what the command did. Never follows a link: the container may
/// have planted one where a directory was.
pub(crate) fn remove_stubs(upper: &Path, extra: &[String]) {
    let mut all: Vec<String> = extra
        .iter()
        .map(|t| t.trim_matches('/').to_string())
        .filter(|t| !t.is_empty())
        .collect();
    all.sort_by_key(|t| std::cmp::Reverse(t.matches('/').count()));
    for stub in all.iter().map(String::as_str).chain(STUBS.iter().copied()) {
        let parts: Vec<&str> = stub.split('/').collect();
        let mut at = upper.to_path_buf();
        let mut ok = true;
        for p in &parts[..parts.len() - 1] {
            at.push(p);
            if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
                ok = false;
                break;
            }
        }
        if !ok {
            continue;
        }
        at.push(parts[parts.len() - 1]);
        let Ok(md) = std::fs::symlink_metadata(&at) else {
            continue;
        };
        if md.is_file() && md.len() == 0 {
            let _ = std::fs::remove_file(&at);
        } else if md.is_dir() {
            // Fails, as it should, when the directory is not empty.
            let _ = std::fs::remove_dir(&at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_go_real_changes_stay() {
        let t = tempfile::tempdir().unwrap();
        let u = t.path();
        for d in ["proc", "dev/pts", "cache/pip", "sys/kept"] {
            std::fs::create_dir_all(u.join(d)).unwrap();
        }
        std::fs::create_dir_all(u.join("etc")).unwrap();
        std::fs::write(u.join("etc/hosts"), "").unwrap();
        std::fs::write(u.join("etc/hostname"), "written").unwrap();
        std::fs::write(u.join("sys/kept/file"), "x").unwrap();
        // A link where a directory was must not be walked through.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("resolv.conf"), "").unwrap();
        std::fs::create_dir(u.join("x")).unwrap();
        std::os::unix::fs::symlink(outside.path(), u.join("x/etc")).unwrap();
        remove_stubs(u, &["/cache/pip".into(), "x/etc/resolv.conf".into()]);
        assert!(!u.join("proc").exists() && !u.join("dev").exists());
        assert!(!u.join("etc/hosts").exists() && u.join("etc/hostname").exists());
        assert!(!u.join("cache/pip").exists() && u.join("cache").exists());
        assert!(u.join("sys/kept/file").exists());
        assert!(outside.path().join("resolv.conf").exists());
    }
}
