//! The build's scratch directory under the runroot: one per build process
//! (`b-<pid>`), so what a build killed with SIGKILL left mounted there
//! (its views) is found and taken back by the next build. Its step
//! containers carry a label naming the build process for the same reason.

use std::path::{Path, PathBuf};

use super::error::{io_err, Result};

const PREFIX: &str = "b-";

/// The label of a step container: the build process, as `<pid>:<start
/// time>` (a pid alone may be reused).
pub(crate) const LABEL: &str = "berth.build.process";

fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Past the command name, which may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(String::from)
}

/// This build process, as [`LABEL`] names it.
pub(crate) fn process() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or_default())
}

/// This process's scratch directory under `build_root`, made after the
/// leftovers of builds that died are gone: their views and step
/// containers.
pub(crate) fn open(engine: &berth_engine::Engine, build_root: &Path) -> Result<PathBuf> {
    for c in engine.list()? {
        let Some((pid, start)) = c.config.labels.get(LABEL).and_then(|l| l.split_once(':')) else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|pid| start_time(pid).as_deref() == Some(start));
        if !alive {
            if let Err(e) = engine.remove(&c.id, true, true) {
                tracing::warn!(container = c.id, error = %e, "removing a dead build's container");
            }
        }
    }
    sweep_dead(build_root);
    let dir = build_root.join(format!("{PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Unmounts and removes the scratch directories of builds whose process
/// is gone. A failure is logged: it must not fail this build.
fn sweep_dead(build_root: &Path) {
    let Ok(entries) = std::fs::read_dir(build_root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        // Deepest first: a view mounted inside another's directory.
        let mut under = mounts_under(&dir);
        under.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in under {
            if let Err(e) = berth_image::snapshot::unmount(&m) {
                tracing::warn!(path = %m.display(), error = %e, "unmounting a dead build's view");
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(path = %dir.display(), error = %e, "removing a dead build's scratch");
        }
    }
}

/// The mount points at or under `dir`.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        // mountinfo escapes space, tab, newline and backslash as octal.
        .map(|m| PathBuf::from(m.replace("\\040", " ").replace("\\011", "\t")))
        .filter(|m| m.starts_with(dir))
        .collect()
}
