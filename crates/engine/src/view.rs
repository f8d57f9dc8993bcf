//! Reading containers back: `logs` (with `--follow`) and `inspect` in
//! docker's JSON shape (the common subset).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::container::Engine;
use crate::db::{Container, State};
use crate::error::{io_err, Error, Result};
use crate::logfile;
use crate::logs::Selection;
use crate::spec;

/// What `logs` shows: docker's `--follow`, `--timestamps`, `--details`,
/// `--tail`, `--since` and `--until`.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub timestamps: bool,
    /// Each line after the attributes its record carries.
    pub details: bool,
    /// Only the last this many records of what there is; new ones as they
    /// come after that.
    pub tail: Option<usize>,
    pub select: Selection,
}

impl Engine {
    /// `logs`: the container's output so far as `opts` selects it; with
    /// `follow`, until it exits (or its `until` passes).
    pub fn logs(
        &self,
        key: &str,
        opts: &LogOptions,
        out: &mut impl Write,
        err: &mut impl Write,
    ) -> Result<()> {
        let c = self.find(key)?;
        if !c.config.log_config.readable() {
            return Err(Error::InvalidArgument(
                "configured logging driver does not support reading".into(),
            ));
        }
        let path = self.paths.log_file(&c.id);
        let mut reader = logfile::Reader::new(&path, c.config.log_config.limits()?);
        let mut tail = opts.tail;
        let mut copy = || -> Result<()> {
            reader
                .select(&opts.select, tail.take(), |r| {
                    r.write(out, err, opts.timestamps, opts.details)
                })
                .map_err(io_err(format!("reading {}", path.display())))?;
            out.flush().map_err(io_err("writing"))?;
            err.flush().map_err(io_err("writing"))
        };
        copy()?;
        if !opts.follow || c.state != State::Running || opts.select.over(chrono::Utc::now()) {
            return Ok(());
        }
        // The monitor's socket closes (after a last report) when the
        // container exits; until then, new records are copied as they come.
        let sock = crate::monitor::socket_addr(&self.paths, &c.id)
            .ok()
            .and_then(|(_dir, a)| UnixStream::connect(a).ok());
        if let Some(s) = &sock {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .map_err(io_err("setting a socket timeout"))?;
        }
        loop {
            let done = match &sock {
                Some(s) => {
                    let mut b = [0u8; 64];
                    match std::io::Read::read(&mut &*s, &mut b) {
                        Ok(_) => true,
                        Err(e) => !matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ),
                    }
                }
                None => true,
            };
            // The clock before the read: once `until` has passed, every
            // record stamped before it is in the file for this last read.
            let over = opts.select.over(chrono::Utc::now());
            copy()?;
            if done || over {
                return Ok(());
            }
        }
    }

    /// `inspect`: docker's JSON for one container.
    pub fn inspect(&self, key: &str) -> Result<Value> {
        self.inspect_sized(key, false)
    }

    /// `inspect`, with `--size`: docker's `SizeRw` and `SizeRootFs` too,
    /// which walk the container's writable layer.
    pub fn inspect_sized(&self, key: &str, size: bool) -> Result<Value> {
        let c = self.find(key)?;
        let mut v = inspect_json(
            &c,
            &self.paths.log_file(&c.id).display().to_string(),
            &self.paths.rootfs(&c.id).display().to_string(),
        );
        self.inspect_network(&c, &mut v);
        self.inspect_lifecycle(&c, &mut v);
        self.inspect_health(&c, &mut v);
        if size {
            let store = self.store()?;
            let (rw, rootfs) = crate::image_ops::container_sizes(&store, &c);
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(rootfs);
        }
        Ok(v)
    }
}

fn ts(t: &Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

pub fn inspect_json(c: &Container, log_path: &str, rootfs: &str) -> Value {
    let args = spec::args(&c.config);
    let mut host = serde_json::to_value(&c.config.host_config).unwrap_or_else(|_| json!({}));
    if let Some(h) = host.as_object_mut() {
        // The profile's JSON is for the spec, not for reading.
        h.remove("Seccomp");
        h.insert("NetworkMode".into(), json!(c.config.network_mode));
        h.insert("AutoRemove".into(), json!(c.config.auto_remove));
        h.insert(
            "LogConfig".into(),
            serde_json::to_value(&c.config.log_config).unwrap_or_default(),
        );
    }
    let running = c.state == State::Running;
    json!({
        "Id": c.id,
        "Created": c.created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.get(1..).unwrap_or_default(),
        "State": {
            "Status": c.state.as_str(),
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": c.oom_killed,
            "Dead": false,
            "Pid": c.pid,
            "ExitCode": c.exit_code.unwrap_or(0),
            "Error": c.error.clone().unwrap_or_default(),
            "StartedAt": ts(&c.started),
            "FinishedAt": ts(&c.finished),
        },
        "Image": c.image_id,
        "Name": format!("/{}", c.name),
        // docker's: empty for a driver that keeps no file.
        "LogPath": if c.config.log_config.readable() { log_path } else { "" },
        "Driver": "overlay",
        "HostConfig": host,
        "Mounts": c.config.host_config.mounts.iter().map(|m| json!({
            "Type": m.kind,
            "Name": if m.kind == "volume" { json!(m.source) } else { Value::Null },
            "Source": m.source,
            "Destination": m.target,
            "Driver": if m.kind == "volume" { "local" } else { "" },
            "Mode": if m.read_only { "ro" } else { "" },
            "RW": !m.read_only,
            "Propagation": m.propagation,
        })).collect::<Vec<_>>(),
        "GraphDriver": {"Name": "overlay", "Data": {"MergedDir": rootfs}},
        "Config": {
            "Hostname": c.config.hostname,
            "User": c.config.user,
            "Env": c.config.env,
            "Cmd": c.config.cmd,
            "Entrypoint": if c.config.entrypoint.is_empty() { Value::Null } else { json!(c.config.entrypoint) },
            "WorkingDir": c.config.working_dir,
            "Image": c.image,
            "Domainname": c.config.domainname,
            "Labels": c.config.labels,
            "StopSignal": c.config.stop_signal,
            "StopTimeout": c.config.stop_timeout,
            // Clients read these to know how to read the output (a tty's
            // is raw, not multiplexed) and whether to send stdin.
            "Tty": c.config.tty,
            "OpenStdin": c.config.open_stdin,
            "StdinOnce": c.config.stdin_once,
        },
    })
}
