//! RUN: a container made through the engine from the image the stage is
//! at, its output streamed back, and once it exits 0 its upper directory
//! (its changes and nothing else) is the step's layer. Whatever happens,
//! the container is removed before the step returns.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use berth_engine::attach::AttachTo;
use berth_engine::hostconfig::{HostConfig, MountSpec};
use berth_engine::network::NetOptions;
use berth_engine::stream::{Decoder, Kind};
use berth_engine::{Engine, Network, RunOptions};
use berth_image::layer::DiffOptions;
use serde_json::Value;

use super::commit::{self, child, Current, Layer};
use super::config;
use super::error::{io_err, store, BuildError, Result};
use super::mounts::{From, RunMounts};
use super::stage::StageRun;
use super::view::View;
use super::{Cancel, Event};
use crate::dockerfile::{Command, MountKind, NetworkMode, Run, Security};

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

impl StageRun<'_> {
    pub(super) fn run(&self, r: &Run, history: Value) -> Result<Current> {
        if r.security == Some(Security::Insecure) {
            return Err(BuildError::Unsupported(
                "RUN --security=insecure (berth build grants no extra privileges)".into(),
            ));
        }
        let b = self.b;
        let image = commit::materialize(&b.store, &self.cur)?;
        let rt = self.cur.runtime();
        let workdir = rt
            .get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string();
        let (argv, script) = run_command(r, &config::shell(&rt));
        let mut mounts = RunMounts::default();
        for m in &r.mounts {
            let from = match (&m.kind, &m.from) {
                (MountKind::Bind, Some(f)) => From::View(View::mount(
                    &b.store,
                    self.image_named(f)?.as_ref(),
                    &b.scratch,
                )?),
                _ => From::Context,
            };
            mounts.add(m, from, &workdir, b)?;
        }
        if let Some((name, content)) = script {
            let dir = tempfile::Builder::new()
                .prefix("heredoc-")
                .tempdir_in(&b.scratch)
                .map_err(io_err("creating a heredoc directory"))?;
            let file = dir.path().join(&name);
            std::fs::write(&file, content).map_err(io_err("writing a heredoc"))?;
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(io_err("writing a heredoc"))?;
            let target = format!("/dev/pipes/{name}");
            mounts.binds.push(MountSpec {
                kind: "bind".into(),
                source: file.display().to_string(),
                target: target.clone(),
                read_only: true,
                propagation: "rprivate".into(),
                options: String::new(),
            });
            mounts.temps.push(dir);
        }
        // The directories the runtime will make to hold mount points, for
        // taking them back out of the layer with the mount points.
        let mut stubs = mounts.targets.clone();
        if !stubs.is_empty() {
            let view = View::mount(&b.store, self.cur.image.as_ref(), &b.scratch)?;
            for t in &mounts.targets {
                for dir in Path::new(t).ancestors().skip(1) {
                    let rel = dir.strip_prefix("/").unwrap_or(dir);
                    if !rel.as_os_str().is_empty() && !view.root().join(rel).exists() {
                        stubs.push(dir.display().to_string());
                    }
                }
            }
        }
        let network = match r.network {
            None | Some(NetworkMode::Default) => b.opts.network.clone(),
            Some(NetworkMode::None) => Network::None,
            Some(NetworkMode::Host) => Network::Host,
        };
        let mut env: Vec<String> = self
            .scope
            .run_env()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.extend(mounts.env.iter().cloned());
        let opts = RunOptions {
            image: image.id.to_string(),
            entrypoint: Some(String::new()),
            cmd: argv.clone(),
            env,
            network,
            host: HostConfig {
                mounts: mounts.binds.clone(),
                tmpfs: mounts.tmpfs.clone(),
                shm_size: b.opts.shm_size,
                ulimits: b.opts.ulimits.clone(),
                ..b.opts.limits.clone()
            },
            net: NetOptions {
                // A `RUN --network=none` step's /etc/hosts has them too.
                add_hosts: b.opts.add_hosts.clone(),
                ..Default::default()
            },
            // A build killed with SIGKILL cannot remove it: the next does.
            labels: [(super::scratch::LABEL.to_string(), super::scratch::process())].into(),
            ..Default::default()
        };
        let c = StepContainer::create(b.engine, &opts, b.cancel)?;
        let short: String = c.id.chars().take(12).collect();
        self.emit(Event::Running {
            stage: self.index,
            container: short.clone(),
        });
        let stage = self.index;
        let code = c.run(&|stderr, data| {
            (b.events)(Event::Output {
                stage,
                stderr,
                data: data.to_vec(),
            })
        });
        let code = match code {
            Ok(c) => c,
            Err(e) => {
                drop(c);
                return Err(e);
            }
        };
        if code != 0 {
            drop(c);
            if b.cancel.is_cancelled() {
                return Err(BuildError::Cancelled);
            }
            self.emit(Event::Removed {
                stage,
                container: short,
            });
            return Err(BuildError::RunFailed {
                command: argv.join(" "),
                code,
            });
        }
        let upper = b.store.snapshotter().upper(&c.id).map_err(store)?;
        remove_stubs(&upper, &stubs);
        let opts = DiffOptions {
            source_date_epoch: b.opts.source_date_epoch,
        };
        let mut write = |w: &mut dyn Write| -> Result<()> {
            berth_image::layer::diff(&upper, w, &opts).map_err(store)?;
            Ok(())
        };
        let next = child(
            &b.store,
            &self.cur,
            rt,
            history,
            Layer::Write(&mut write),
            &b.created(),
        );
        drop(c);
        drop(mounts);
        self.emit(Event::Removed {
            stage,
            container: short,
        });
        next
    }
}

/// RUN's argv, and for a heredoc script with a `#!` line, the script to
/// run as a file (BuildKit's rules: a command that is only `<<EOF` runs
/// the body with the shell; any other heredocs go to the shell whole).
pub(super) fn run_command(r: &Run, shell: &[String]) -> (Vec<String>, Option<(String, String)>) {
    let with_shell = |s: String| {
        let mut v = shell.to_vec();
        v.push(s);
        v
    };
    match &r.command {
        Command::Exec(v) => (v.clone(), None),
        Command::Shell(text) if r.heredocs.is_empty() => (with_shell(text.clone()), None),
        Command::Shell(text) => {
            if let [h] = r.heredocs.as_slice() {
                let marker = text.trim().strip_prefix("<<").map(|t| {
                    t.strip_prefix('-')
                        .unwrap_or(t)
                        .trim()
                        .trim_matches(['"', '\''])
                        .to_string()
                });
                if marker.as_deref() == Some(h.name.as_str()) {
                    if h.content.starts_with("#!") {
                        return (
                            vec![format!("/dev/pipes/{}", h.name)],
                            Some((h.name.clone(), h.content.clone())),
                        );
                    }
                    return (with_shell(h.content.clone()), None);
                }
            }
            let mut full = text.clone();
            for h in &r.heredocs {
                full.push('\n');
                full.push_str(&h.content);
                full.push_str(&h.name);
            }
            (with_shell(full), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::Heredoc;

    fn run(cmd: &str, docs: &[(&str, &str)]) -> Run {
        Run {
            mounts: vec![],
            network: None,
            security: None,
            command: Command::Shell(cmd.into()),
            heredocs: docs
                .iter()
                .map(|(n, c)| Heredoc {
                    name: n.to_string(),
                    content: c.to_string(),
                    expand: true,
                    chomp: false,
                })
                .collect(),
        }
    }

    #[test]
    fn heredoc_commands_as_buildkit_runs_them() {
        let sh: Vec<String> = vec!["/bin/sh".into(), "-c".into()];
        let (argv, script) = run_command(&run("<<EOF", &[("EOF", "echo a\necho b\n")]), &sh);
        assert_eq!(argv, ["/bin/sh", "-c", "echo a\necho b\n"]);
        assert!(script.is_none());
        let (argv, script) = run_command(&run("<<'S'", &[("S", "#!/bin/sh\necho x\n")]), &sh);
        assert_eq!(argv, ["/dev/pipes/S"]);
        assert_eq!(script.unwrap().1, "#!/bin/sh\necho x\n");
        let (argv, _) = run_command(&run("cat <<A > /a", &[("A", "hi\n")]), &sh);
        assert_eq!(argv[2], "cat <<A > /a\nhi\nA");
    }

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
