//! The runtime's record of a container, kept in `<root>/<id>/state.json`,
//! and the live status derived from it: a record says what was created; the
//! kernel says whether its process still runs.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups;
use crate::error::{io_err, Error, Result};

/// The OCI statuses, plus `paused` as runc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime stores about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// The init's start time (field 22 of /proc/PID/stat), so a recycled pid
    /// is never mistaken for the container.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub cgroup: cgroups::Manager,
    pub config: Spec,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

/// The directory holding one container's runtime files.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

pub const FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

impl Record {
    pub fn load(root: &Path, id: &str) -> Result<Record> {
        let p = dir(root, id).join(FILE);
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(io_err(format!("reading {}", p.display()))(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::Io {
            what: format!("reading {}", p.display()),
            source: std::io::Error::other(e),
        })
    }

    /// Writes the record atomically: a reader sees the old or the new one.
    pub fn save(&self, root: &Path) -> Result<()> {
        let d = dir(root, &self.id);
        let tmp = d.join(".state.json.tmp");
        let json = serde_json::to_vec(self).map_err(|e| Error::Io {
            what: "encoding state".into(),
            source: std::io::Error::other(e),
        })?;
        let mut f = fs::File::create(&tmp).map_err(io_err(format!("writing {}", tmp.display())))?;
        f.write_all(&json)
            .map_err(io_err(format!("writing {}", tmp.display())))?;
        fs::rename(&tmp, d.join(FILE)).map_err(io_err("saving state"))?;
        Ok(())
    }

    /// The live status: what the record says, checked against the kernel.
    pub fn status(&self, root: &Path) -> Status {
        if !process_alive(self.pid, self.pid_start) {
            return Status::Stopped;
        }
        if dir(root, &self.id).join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if self.cgroup.is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The spec's state JSON (`state` command, hooks' stdin).
    pub fn oci_state(&self, status: Status) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": "1.2.0",
            "id": self.id,
            "status": status.to_string(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        });
        if status != Status::Stopped {
            v["pid"] = self.pid.into();
        } else {
            v["pid"] = 0.into();
        }
        let ann = self.config.annotations().clone().unwrap_or_default();
        if !ann.is_empty() {
            v["annotations"] = serde_json::to_value(ann).unwrap_or_default();
        }
        v
    }
}

/// Field 22 of /proc/PID/stat: the process's start time in clock ticks.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // After ')' field 3 is first, so field 22 is the 19th after it.
    fields.nth(18)?.parse().ok()
}

/// True when `pid` runs (not a zombie) and started at `start`.
pub fn process_alive(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start)
}

/// Every container id with a record under `root`.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(io_err(format!("reading {}", root.display()))(e)),
    };
    for entry in rd.flatten() {
        if entry.path().join(FILE).exists() {
            if let Some(name) = entry.file_name().to_str() {
                ids.push(name.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_other_start_is_not() {
        let me = std::process::id() as i32;
        let st = start_time(me).unwrap();
        assert!(process_alive(me, st));
        assert!(!process_alive(me, st + 1));
        assert!(!process_alive(0, st));
    }
}
