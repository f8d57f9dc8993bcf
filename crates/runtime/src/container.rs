//! The lifecycle the OCI runtime spec defines (create, start, state, kill,
//! delete) plus runc's extras (run, exec, ps, list, pause, resume, update,
//! events), on containers kept under one state root.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Process, Spec};
use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, Signal};

use crate::cgroups;
use crate::channel::{self, Channel, Msg};
use crate::config::{self, Bundle};
use crate::error::{errno, io_err, Error, Result};
use crate::hooks;
use crate::init::{self, InitArgs, StartWait};
use crate::namespaces;
use crate::state::{self, Record, Status};

/// A runtime: the directory where containers' state lives.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: PathBuf,
}

/// Options of `create` (and `run`).
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

/// Options of `exec`.
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub detach: bool,
}

/// How a foreground process ended, as a shell reports it.
pub fn exit_code(status: rustix::process::WaitStatus) -> i32 {
    if let Some(c) = status.exit_status() {
        c
    } else if let Some(s) = status.terminating_signal() {
        128 + s
    } else {
        255
    }
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime { root: root.into() }
    }

    fn ensure_root(&self) -> Result<()> {
        fs::create_dir_all(&self.root)
            .map_err(io_err(format!("creating {}", self.root.display())))?;
        let _ = fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700));
        Ok(())
    }

    pub fn load(&self, id: &str) -> Result<Record> {
        config::validate_id(id)?;
        Record::load(&self.root, id)
    }

    /// `create`: sets the container up and leaves its init waiting for
    /// `start`. Returns the init's pid.
    pub fn create(&self, id: &str, bundle: &Path, opts: &CreateOptions) -> Result<i32> {
        let (pid, _ch) = self.create_inner(id, bundle, opts, false)?;
        Ok(pid)
    }

    /// `run`: create, start, and wait; returns the process's exit code.
    /// Signals sent to the caller are forwarded to the container.
    pub fn run(&self, id: &str, bundle: &Path, opts: &CreateOptions, detach: bool) -> Result<i32> {
        // Block the signals we forward before the clone, so none is lost
        // between the start and the wait; the init unblocks them for itself.
        let forwarded = FORWARDED;
        config::validate_id(id)?;
        let loaded = Bundle::load(bundle)?;
        // runc's `run` with a terminal and no console socket: the pty is
        // ours, proxied to our own stdin and stdout.
        let wants_tty = loaded
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let mut proxy = None;
        let mut opts = opts.clone();
        if wants_tty && opts.console_socket.is_none() && !detach {
            let p = crate::console_proxy::Proxy::listen()?;
            opts.console_socket = Some(p.path().to_path_buf());
            proxy = Some(p);
        }
        let _unblock = if !detach {
            berth_sys::signal::block(&forwarded).map_err(io_err("blocking signals"))?;
            Some(UnblockOnDrop)
        } else {
            None
        };
        let (pid, ch) = self.create_loaded(id, &loaded, &opts, true)?;
        let ch = ch.ok_or_else(|| Error::Init("no channel to the init".into()))?;
        let mut proxy = match proxy.map(|p| p.accept()).transpose() {
            Ok(p) => p,
            Err(e) => {
                let _ = self.delete(id, true);
                return Err(e);
            }
        };
        if let Err(e) = self.start_via_channel(id, &ch) {
            let _ = self.delete(id, true);
            return Err(e);
        }
        if detach {
            return Ok(0);
        }
        let sfd = berth_sys::signal::signalfd(&forwarded).map_err(io_err("signalfd"))?;
        if let Some(p) = proxy.as_mut() {
            let code = p.pump(pid, &sfd)?;
            drop(proxy);
            if let Err(e) = self.delete(id, true) {
                tracing::warn!(id, error = %e, "deleting after run");
            }
            return Ok(code);
        }
        let code = wait_forwarding(pid, &sfd)?;
        if let Err(e) = self.delete(id, true) {
            tracing::warn!(id, error = %e, "deleting after run");
        }
        Ok(code)
    }

    fn create_inner(
        &self,
        id: &str,
        bundle_dir: &Path,
        opts: &CreateOptions,
        foreground: bool,
    ) -> Result<(i32, Option<Channel>)> {
        config::validate_id(id)?;
        let bundle = Bundle::load(bundle_dir)?;
        self.create_loaded(id, &bundle, opts, foreground)
    }

    fn create_loaded(
        &self,
        id: &str,
        bundle: &Bundle,
        opts: &CreateOptions,
        foreground: bool,
    ) -> Result<(i32, Option<Channel>)> {
        if opts.no_new_keyring {
            tracing::debug!("no_new_keyring: the session keyring is inherited");
        }
        self.ensure_root()?;
        let dir = state::dir(&self.root, id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.to_string()))
            }
            Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
        }
        let mut cg: Option<cgroups::Manager> = None;
        let res = self.spawn_init(id, bundle, opts, foreground, &dir, &mut cg);
        match res {
            Ok(r) => Ok(r),
            Err(e) => {
                if let Some(cg) = cg {
                    let _ = cg.kill_all(Signal::KILL);
                    if let Err(ce) = destroy_cgroup(&cg) {
                        tracing::warn!(id, error = %ce, "removing the cgroup after a failed create");
                    }
                }
                let _ = fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn spawn_init(
        &self,
        id: &str,
        bundle: &Bundle,
        opts: &CreateOptions,
        foreground: bool,
        dir: &Path,
        cg_out: &mut Option<cgroups::Manager>,
    ) -> Result<(i32, Option<Channel>)> {
        let spec = &bundle.spec;
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| Error::InvalidConfig("linux is missing".into()))?;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::InvalidConfig("process is missing".into()))?;
        let plan = namespaces::plan(linux)?;
        // Found once for the manager and the init's "cgroup" mount.
        let mounts = cgroups::host_mounts(Some(&self.root.join(".cgroup-mounts")))?;
        let cg = cgroups::Manager::from_mounts(linux.cgroups_path().as_deref(), id, &mounts)?;
        crate::timing::mark("runtime: cgroups found");
        cg.create()?;
        *cg_out = Some(cg.clone());
        cg.apply(&effective_resources(linux))?;
        crate::timing::mark("runtime: cgroups made");
        let console = if process.terminal().unwrap_or(false) {
            let path = opts.console_socket.as_ref().ok_or_else(|| {
                Error::InvalidConfig(
                    "process.terminal is true: --console-socket is required".into(),
                )
            })?;
            let s = UnixStream::connect(path).map_err(io_err(format!(
                "connecting to console socket {}",
                path.display()
            )))?;
            Some(OwnedFd::from(s))
        } else {
            None
        };
        let start = if foreground {
            StartWait::Channel
        } else {
            let fifo = dir.join(state::EXEC_FIFO);
            rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o622))
                .map_err(errno("creating the exec fifo"))?;
            // mkfifo honours the umask; any user the process runs as must be
            // able to open it for writing.
            let _ = fs::set_permissions(&fifo, fs::Permissions::from_mode(0o622));
            let fd = rustix::fs::open(&fifo, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .map_err(errno("opening the exec fifo"))?;
            StartWait::Fifo(fd)
        };
        for (t, fd) in &plan.parent_join {
            namespaces::join(*t, fd)?;
        }
        if plan.new_time {
            namespaces::unshare_time(linux)?;
        }
        let filter = self.seccomp_filter(linux.seccomp().as_ref())?;
        let (parent_ch, child_ch) = channel::pair()?;
        let host_cgroups = host_cgroups(&cg, &mounts);
        let v2fd = cg.v2_dir_fd()?;
        let entered = namespaces::enter(&plan.parent_enter)?;
        let forked = berth_sys::process::fork_with_flags(
            plan.clone_flags,
            false,
            v2fd.as_ref().map(|f| f.as_fd()),
        )
        .map_err(io_err("cloning the container's init"));
        if matches!(
            forked,
            Ok(berth_sys::process::Forked::Parent { .. }) | Err(_)
        ) {
            entered.leave()?;
        }
        let forked = forked?;
        crate::timing::mark("runtime: cloned");
        let pid = match forked {
            berth_sys::process::Forked::Child => {
                drop(parent_ch);
                init::run(InitArgs {
                    spec,
                    process,
                    rootfs: &bundle.rootfs,
                    bundle: &bundle.path,
                    channel: &child_ch,
                    console,
                    start,
                    plan: &plan,
                    no_pivot: opts.no_pivot,
                    preserve_fds: opts.preserve_fds,
                    cgroups: host_cgroups,
                    exec: false,
                    filter: filter.as_ref(),
                })
            }
            berth_sys::process::Forked::Parent { pid, .. } => pid,
        };
        drop(child_ch);
        drop(console);
        drop(start);
        let result = self.finish_create(
            id,
            bundle,
            opts,
            &plan,
            &cg,
            pid,
            &parent_ch,
            v2fd.is_some(),
        );
        if let Err(e) = result {
            if let Some(p) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            }
            return Err(e);
        }
        Ok((pid, if foreground { Some(parent_ch) } else { None }))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_create(
        &self,
        id: &str,
        bundle: &Bundle,
        opts: &CreateOptions,
        plan: &namespaces::Plan,
        cg: &cgroups::Manager,
        pid: i32,
        ch: &Channel,
        in_cgroup: bool,
    ) -> Result<()> {
        let spec = &bundle.spec;
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| Error::InvalidConfig("linux is missing".into()))?;
        if plan.clone_flags & namespaces::CLONE_NEWUSER != 0 {
            write_id_map(
                pid,
                "uid_map",
                linux.uid_mappings().as_deref().unwrap_or(&[]),
            )?;
            write_id_map(
                pid,
                "gid_map",
                linux.gid_mappings().as_deref().unwrap_or(&[]),
            )?;
        }
        // Moving the init into v1 hierarchies waits for an RCU grace period
        // (see cgroups::Manager::add_process): it is done while the init
        // sets up its root, which needs to be in them only before it execs
        // (after our Start or a `start`, both after its Ready, which we
        // read once moved) or makes its cgroup namespace, rooted where it
        // is then.
        let move_late = !in_cgroup && !plan.new_cgroup;
        if !in_cgroup && !move_late {
            cg.add_process(pid)?;
            crate::timing::mark("runtime: in cgroups");
        }
        if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
            fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
                .map_err(io_err(format!("setting oom_score_adj {adj}")))?;
        }
        let rec = Record {
            id: id.to_string(),
            pid,
            pid_start: state::start_time(pid).unwrap_or(0),
            bundle: bundle.path.clone(),
            rootfs: bundle.rootfs.clone(),
            created: now_rfc3339(),
            owner: String::new(),
            cgroup: cg.clone(),
            config: spec.clone(),
            annotations: spec.annotations().clone().unwrap_or_default(),
        };
        let creating = serde_json::to_string(&rec.oci_state(Status::Creating)).unwrap_or_default();
        ch.send(&Msg::Go {
            state: creating.clone(),
        })?;
        if move_late {
            cg.add_process(pid)?;
            crate::timing::mark("runtime: in cgroups");
        }
        loop {
            match ch.recv()? {
                Some((Msg::RunHooks, _)) => {
                    #[allow(deprecated)]
                    let hs = spec.hooks().clone().unwrap_or_default();
                    #[allow(deprecated)]
                    if let Some(h) = hs.prestart() {
                        hooks::run_all(h, &creating, "prestart")?;
                    }
                    if let Some(h) = hs.create_runtime() {
                        hooks::run_all(h, &creating, "createRuntime")?;
                    }
                    ch.send(&Msg::HooksDone)?;
                }
                Some((Msg::SeccompListener, Some(fd))) => {
                    let Some(sc) = linux.seccomp() else { continue };
                    let Some(path) = sc.listener_path() else {
                        return Err(Error::InvalidConfig(
                            "seccomp uses SCMP_ACT_NOTIFY but listenerPath is not set".into(),
                        ));
                    };
                    let st = crate::seccomp::process_state_json(
                        &typed_state(&rec, Status::Creating),
                        pid,
                        sc.listener_metadata().as_deref(),
                    )?;
                    crate::seccomp::send_listener(path, fd.as_fd(), AsRef::<[u8]>::as_ref(&st))?;
                }
                Some((Msg::Ready, _)) => {
                    crate::timing::mark("runtime: init ready");
                    break;
                }
                Some((Msg::Error { msg }, _)) => return Err(Error::Init(msg)),
                Some((m, _)) => {
                    return Err(Error::Init(format!("unexpected message from init: {m:?}")))
                }
                None => return Err(Error::Init("container init exited during setup".into())),
            }
        }
        rec.save(&self.root)?;
        if let Some(pf) = &opts.pid_file {
            write_atomic(pf, pid.to_string().as_bytes())?;
        }
        Ok(())
    }

    fn start_via_channel(&self, id: &str, ch: &Channel) -> Result<()> {
        ch.send(&Msg::Start)?;
        // The channel closes on a successful exec (close-on-exec); an error
        // arrives as a message.
        match ch.recv()? {
            None => {}
            Some((Msg::Error { msg }, _)) => return Err(Error::Init(msg)),
            Some((m, _)) => {
                return Err(Error::Init(format!("unexpected message from init: {m:?}")))
            }
        }
        self.poststart(id)
    }

    fn poststart(&self, id: &str) -> Result<()> {
        let rec = self.load(id)?;
        if let Some(h) = rec
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().clone())
        {
            let st = serde_json::to_string(&rec.oci_state(Status::Running)).unwrap_or_default();
            if let Err(e) = hooks::run_all(&h, &st, "poststart") {
                // The spec: a failing poststart hook is logged; the container runs on.
                tracing::warn!(id, error = %e, "poststart hook failed");
            }
        }
        Ok(())
    }

    /// The config's filter, from the compiled-filter cache in our root.
    fn seccomp_filter(
        &self,
        spec: Option<&oci_spec::runtime::LinuxSeccomp>,
    ) -> Result<Option<crate::seccomp::Filter>> {
        spec.map(|s| crate::seccomp::compile_cached(s, &self.root.join(".seccomp")))
            .transpose()
            .map_err(Error::from)
    }

    /// `start`: lets a created container's process exec.
    pub fn start(&self, id: &str) -> Result<()> {
        let rec = self.load(id)?;
        let st = rec.status(&self.root);
        if st != Status::Created {
            return Err(Error::WrongState {
                id: id.into(),
                state: st.to_string(),
                op: "start",
            });
        }
        let fifo = state::dir(&self.root, id).join(state::EXEC_FIFO);
        let f = rustix::fs::open(
            &fifo,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno("opening the exec fifo"))?;
        let pidfd = Pid::from_raw(rec.pid).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        let mut buf = [0u8; 1];
        loop {
            match rustix::io::read(&f, &mut buf) {
                Ok(1) => break,
                Ok(_) | Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(errno("reading the exec fifo")(e)),
            }
            let mut fds = vec![rustix::event::PollFd::new(&f, rustix::event::PollFlags::IN)];
            if let Some(p) = &pidfd {
                fds.push(rustix::event::PollFd::new(p, rustix::event::PollFlags::IN));
            }
            let ts = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            let _ = rustix::event::poll(&mut fds, Some(&ts));
            if !state::process_alive(rec.pid, rec.pid_start) {
                // It may have written its byte, exec'd and exited between our
                // read and this check (a quick `exit 3`): the byte decides.
                if let Ok(1) = rustix::io::read(&f, &mut buf) {
                    break;
                }
                return Err(Error::Init(format!(
                    "container {id}'s init (pid {}) exited before start",
                    rec.pid
                )));
            }
        }
        let _ = fs::remove_file(&fifo);
        self.poststart(id)
    }

    /// `state`: the spec's state of a container.
    pub fn state(&self, id: &str) -> Result<serde_json::Value> {
        let rec = self.load(id)?;
        Ok(rec.oci_state(rec.status(&self.root)))
    }

    pub fn status(&self, id: &str) -> Result<Status> {
        let rec = self.load(id)?;
        Ok(rec.status(&self.root))
    }

    /// `kill`: a signal to the init, or with `all` to every process.
    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        let rec = self.load(id)?;
        let st = rec.status(&self.root);
        if st == Status::Stopped {
            if all {
                // Leftover processes of a container whose init is gone.
                let _ = rec
                    .cgroup
                    .kill_all(Signal::from_named_raw(sig).unwrap_or(Signal::KILL));
                return Ok(());
            }
            return Err(Error::WrongState {
                id: id.into(),
                state: st.to_string(),
                op: "kill",
            });
        }
        let signal =
            Signal::from_named_raw(sig).ok_or_else(|| Error::BadSignal(sig.to_string()))?;
        if all {
            rec.cgroup.kill_all(signal)?;
            return Ok(());
        }
        let p = Pid::from_raw(rec.pid).ok_or_else(|| Error::NotFound(id.into()))?;
        // A pidfd pins the process: checked then signalled, never a recycled pid.
        let pidfd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
            .map_err(errno(format!("opening pid {}", rec.pid)))?;
        if !state::process_alive(rec.pid, rec.pid_start) {
            return Err(Error::WrongState {
                id: id.into(),
                state: "stopped".into(),
                op: "kill",
            });
        }
        rustix::process::pidfd_send_signal(&pidfd, signal)
            .map_err(errno(format!("signalling {}", rec.pid)))?;
        if st == Status::Paused && sig == 9 {
            let _ = rec.cgroup.thaw();
        }
        Ok(())
    }

    /// `delete`: removes a stopped container (or, with `force`, any).
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let rec = match self.load(id) {
            Ok(r) => r,
            Err(Error::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let st = rec.status(&self.root);
        match st {
            Status::Stopped => {}
            Status::Created => kill_and_wait(&rec)?,
            _ if force => kill_and_wait(&rec)?,
            _ => {
                return Err(Error::WrongState {
                    id: id.into(),
                    state: st.to_string(),
                    op: "delete (use --force)",
                })
            }
        }
        let mut errors = Vec::new();
        if let Err(e) = destroy_cgroup(&rec.cgroup) {
            errors.push(e.to_string());
        }
        if let Some(h) = rec
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone())
        {
            let stj = serde_json::to_string(&rec.oci_state(Status::Stopped)).unwrap_or_default();
            if let Err(e) = hooks::run_all(&h, &stj, "poststop") {
                tracing::warn!(id, error = %e, "poststop hook failed");
            }
        }
        match fs::remove_dir_all(state::dir(&self.root, id)) {
            // Another delete of the same container (a `--rm` monitor racing
            // `rm -f`) got there first: the container is gone either way.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("removing state: {e}")),
            Ok(()) => {}
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Io {
                what: format!("deleting {id}"),
                source: std::io::Error::other(errors.join("; ")),
            })
        }
    }

    pub fn list(&self) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for id in state::list_ids(&self.root)? {
            if let Ok(rec) = Record::load(&self.root, &id) {
                out.push(rec.oci_state(rec.status(&self.root)));
            }
        }
        Ok(out)
    }

    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let rec = self.load(id)?;
        Ok(rec.cgroup.pids()?)
    }

    /// `ps`: the host's ps(1) with `ps_args` (default `-ef`), keeping its
    /// header and the rows of this container's processes.
    pub fn ps(&self, id: &str, ps_args: &[String]) -> Result<(String, Vec<String>)> {
        let pids = self.pids(id)?;
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let out = std::process::Command::new("ps")
            .args(&args)
            .output()
            .map_err(io_err("running ps"))?;
        if !out.status.success() {
            return Err(Error::Ps(format!(
                "ps {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let rec = self.load(id)?;
        let st = rec.status(&self.root);
        if st != Status::Running {
            return Err(Error::WrongState {
                id: id.into(),
                state: st.to_string(),
                op: "pause",
            });
        }
        Ok(rec.cgroup.freeze()?)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let rec = self.load(id)?;
        let st = rec.status(&self.root);
        if st != Status::Paused {
            return Err(Error::WrongState {
                id: id.into(),
                state: st.to_string(),
                op: "resume",
            });
        }
        Ok(rec.cgroup.thaw()?)
    }

    /// `update`: new limits applied live and kept in the record.
    pub fn update(&self, id: &str, res: &LinuxResources) -> Result<()> {
        let mut rec = self.load(id)?;
        let st = rec.status(&self.root);
        if st == Status::Stopped {
            return Err(Error::WrongState {
                id: id.into(),
                state: st.to_string(),
                op: "update",
            });
        }
        rec.cgroup.apply(res)?;
        let mut linux = rec.config.linux().clone().unwrap_or_default();
        linux.set_resources(Some(merge_resources(
            linux.resources().clone().unwrap_or_default(),
            res,
        )));
        rec.config.set_linux(Some(linux));
        rec.save(&self.root)
    }

    pub fn stats(&self, id: &str) -> Result<cgroups::Stats> {
        let rec = self.load(id)?;
        Ok(rec.cgroup.stats()?)
    }

    pub fn oom_kills(&self, id: &str) -> Result<u64> {
        let rec = self.load(id)?;
        Ok(rec.cgroup.oom_kill_count()?)
    }

    /// `exec`: a new process in a running container. Returns its exit code,
    /// or 0 at once when `detach`.
    pub fn exec(&self, id: &str, process: &Process, opts: &ExecOptions) -> Result<i32> {
        let rec = self.load(id)?;
        let st = rec.status(&self.root);
        if !matches!(st, Status::Running | Status::Created) {
            return Err(Error::WrongState {
                id: id.into(),
                state: st.to_string(),
                op: "exec",
            });
        }
        let linux = rec.config.linux().clone().unwrap_or_default();
        // Join every namespace the init has that differs from ours.
        let mut plan = namespaces::Plan::default();
        let mut joins = Vec::new();
        for ns in linux.namespaces().iter().flatten() {
            let name = namespaces::proc_name(ns.typ());
            let theirs = format!("/proc/{}/ns/{name}", rec.pid);
            if fs::read_link(&theirs).ok() == fs::read_link(format!("/proc/self/ns/{name}")).ok() {
                continue;
            }
            let f = fs::File::open(&theirs).map_err(io_err(format!("opening {theirs}")))?;
            joins.push((ns.typ(), OwnedFd::from(f)));
        }
        joins.sort_by_key(|(t, _)| exec_rank(*t));
        for (t, fd) in joins {
            if matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
                namespaces::join(t, &fd)?;
            } else {
                plan.join.push((t, fd));
            }
        }
        let console = if process.terminal().unwrap_or(false) {
            let path = opts
                .console_socket
                .as_ref()
                .ok_or_else(|| Error::InvalidConfig("--tty needs --console-socket".into()))?;
            let s = UnixStream::connect(path).map_err(io_err(format!(
                "connecting to console socket {}",
                path.display()
            )))?;
            Some(OwnedFd::from(s))
        } else {
            None
        };
        // The runtime's own image must not be reachable from the container
        // through /proc/PID/exe while we join it (runc CVE-2019-5736).
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .map_err(errno("prctl dumpable"))?;
        // Even `exec --privileged` keeps the container's filter, as docker's
        // does: only its capabilities widen.
        let filter = self.seccomp_filter(linux.seccomp().as_ref())?;
        // Blocked before the fork, so none is lost before the wait; the
        // child unblocks them for itself.
        if !opts.detach {
            berth_sys::signal::block(&FORWARDED).map_err(io_err("blocking signals"))?;
        }
        let mut spec = rec.config.clone();
        spec.set_process(Some(process.clone()));
        let (parent_ch, child_ch) = channel::pair()?;
        let forked = berth_sys::process::fork_with_flags(0, false, None)
            .map_err(io_err("forking the exec process"))?;
        let pid = match forked {
            berth_sys::process::Forked::Child => {
                drop(parent_ch);
                init::run(InitArgs {
                    spec: &spec,
                    process,
                    rootfs: &rec.rootfs,
                    bundle: &rec.bundle,
                    channel: &child_ch,
                    console,
                    start: StartWait::Channel,
                    plan: &plan,
                    no_pivot: false,
                    preserve_fds: opts.preserve_fds,
                    cgroups: Default::default(),
                    exec: true,
                    filter: filter.as_ref(),
                })
            }
            berth_sys::process::Forked::Parent { pid, .. } => pid,
        };
        drop(child_ch);
        drop(console);
        let p = Pid::from_raw(pid).ok_or_else(|| Error::Init("bad pid".into()))?;
        let setup = (|| -> Result<()> {
            rec.cgroup.add_process(pid)?;
            parent_ch.send(&Msg::Go {
                state: serde_json::to_string(&rec.oci_state(st)).unwrap_or_default(),
            })?;
            loop {
                match parent_ch.recv()? {
                    None => return Ok(()),
                    Some((Msg::SeccompListener, Some(fd))) => {
                        if let Some(path) = linux
                            .seccomp()
                            .as_ref()
                            .and_then(|s| s.listener_path().clone())
                        {
                            let meta = linux
                                .seccomp()
                                .as_ref()
                                .and_then(|s| s.listener_metadata().clone());
                            let stj = crate::seccomp::process_state_json(
                                &typed_state(&rec, st),
                                pid,
                                meta.as_deref(),
                            )?;
                            crate::seccomp::send_listener(
                                &path,
                                fd.as_fd(),
                                AsRef::<[u8]>::as_ref(&stj),
                            )?;
                        }
                    }
                    Some((Msg::Error { msg }, _)) => return Err(Error::Init(msg)),
                    Some((m, _)) => {
                        return Err(Error::Init(format!("unexpected message from exec: {m:?}")))
                    }
                }
            }
        })();
        if let Err(e) = setup {
            let _ = rustix::process::kill_process(p, Signal::KILL);
            let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            if !opts.detach {
                let _ = berth_sys::signal::unblock(&FORWARDED);
            }
            return Err(e);
        }
        if let Some(pf) = &opts.pid_file {
            write_atomic(pf, pid.to_string().as_bytes())?;
        }
        if opts.detach {
            return Ok(0);
        }
        let sfd = berth_sys::signal::signalfd(&FORWARDED).map_err(io_err("signalfd"))?;
        let code = wait_forwarding(pid, &sfd);
        let _ = berth_sys::signal::unblock(&FORWARDED);
        code
    }
}

/// ps(1) output cut to its header and the rows whose PID is in `pids`.
fn filter_ps(out: &str, pids: &[i32]) -> Result<(String, Vec<String>)> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default().to_string();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Ps("ps output has no PID column".into()))?;
    let rows = lines
        .filter(|l| {
            l.split_whitespace()
                .nth(col)
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|p| pids.contains(&p))
        })
        .map(String::from)
        .collect();
    Ok((header, rows))
}

/// The signals a foreground `run` or `exec` passes on to its process
/// (SIGCHLD only wakes the wait).
const FORWARDED: [i32; 8] = [
    libc_sig::SIGHUP,
    libc_sig::SIGINT,
    libc_sig::SIGQUIT,
    libc_sig::SIGTERM,
    libc_sig::SIGUSR1,
    libc_sig::SIGUSR2,
    libc_sig::SIGWINCH,
    libc_sig::SIGCHLD,
];

/// Restores the signal mask `run` changed, however it returns: library
/// callers (the monitor) go on after it.
struct UnblockOnDrop;

impl Drop for UnblockOnDrop {
    fn drop(&mut self) {
        let _ = berth_sys::signal::unblock(&FORWARDED);
    }
}

/// Waits for `pid` (our child), passing on every signal read from `sfd`.
fn wait_forwarding(pid: i32, sfd: &OwnedFd) -> Result<i32> {
    let p = Pid::from_raw(pid).ok_or_else(|| Error::Init("bad pid".into()))?;
    loop {
        if let Some((_, st)) =
            rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG)
                .map_err(errno("waiting for the container's process"))?
        {
            return Ok(exit_code(st));
        }
        let sig = berth_sys::signal::read_signal(sfd).map_err(io_err("reading signals"))?;
        if sig != libc_sig::SIGCHLD {
            let _ = rustix::process::kill_process(
                p,
                Signal::from_named_raw(sig).unwrap_or(Signal::TERM),
            );
        }
    }
}

/// Signal numbers we forward, without a libc dependency in this crate.
mod libc_sig {
    pub const SIGHUP: i32 = 1;
    pub const SIGINT: i32 = 2;
    pub const SIGQUIT: i32 = 3;
    pub const SIGUSR1: i32 = 10;
    pub const SIGUSR2: i32 = 12;
    pub const SIGTERM: i32 = 15;
    pub const SIGCHLD: i32 = 17;
    pub const SIGWINCH: i32 = 28;
}

/// The state as oci-spec's type (which has no "paused": that reads as running).
fn typed_state(rec: &Record, st: Status) -> oci_spec::runtime::State {
    let st = if st == Status::Paused {
        Status::Running
    } else {
        st
    };
    serde_json::from_value(rec.oci_state(st)).unwrap_or_default()
}

fn exec_rank(t: LinuxNamespaceType) -> u8 {
    match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Pid => 1,
        LinuxNamespaceType::Time => 2,
        LinuxNamespaceType::Ipc => 3,
        LinuxNamespaceType::Uts => 4,
        LinuxNamespaceType::Network => 5,
        LinuxNamespaceType::Cgroup => 6,
        LinuxNamespaceType::Mount => 7,
    }
}

fn kill_and_wait(rec: &Record) -> Result<()> {
    let _ = rec.cgroup.thaw();
    if let Err(e) = rec.cgroup.kill_all(Signal::KILL) {
        tracing::debug!(error = %e, "kill_all");
    }
    if let Some(p) = Pid::from_raw(rec.pid) {
        if state::process_alive(rec.pid, rec.pid_start) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while state::process_alive(rec.pid, rec.pid_start) {
        // Reap it if it is ours (run, tests); otherwise its parent will.
        if let Some(p) = Pid::from_raw(rec.pid) {
            let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG);
        }
        if Instant::now() > deadline {
            return Err(Error::Io {
                what: format!("killing {}", rec.id),
                source: std::io::Error::other("the init did not die within 10s"),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn destroy_cgroup(cg: &cgroups::Manager) -> std::result::Result<(), cgroups::Error> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match cg.destroy() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "cgroup busy, retrying");
                let _ = cg.kill_all(Signal::KILL);
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The host's cgroup mounts, and the host directories of the container's
/// cgroup by mount name under /sys/fs/cgroup ("" for the cgroup2
/// hierarchy): what a container without its own cgroup namespace gets
/// bound at /sys/fs/cgroup.
fn host_cgroups(cg: &cgroups::Manager, mounts: &[cgroups::HostMount]) -> init::mounts::HostCgroups {
    let rel = cg
        .path()
        .strip_prefix("/")
        .unwrap_or(cg.path())
        .to_path_buf();
    let info = init::mounts::host_cgroups(mounts);
    let mut v: Vec<(String, PathBuf)> = info
        .v1
        .iter()
        .map(|(name, _)| {
            (
                name.clone(),
                Path::new("/sys/fs/cgroup").join(name).join(&rel),
            )
        })
        .collect();
    if info.unified {
        v.push((String::new(), Path::new("/sys/fs/cgroup").join(&rel)));
    } else if Path::new("/sys/fs/cgroup/unified").exists() {
        v.push((
            String::new(),
            Path::new("/sys/fs/cgroup/unified").join(&rel),
        ));
    }
    init::mounts::HostCgroups { info, paths: v }
}

fn write_id_map(pid: i32, file: &str, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    let body: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    fs::write(format!("/proc/{pid}/{file}"), body).map_err(io_err(format!("writing {file}")))
}

pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-berth");
    fs::write(&tmp, data).map_err(io_err(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io_err(format!("writing {}", path.display())))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The config's limits, with the device rules every container needs
/// appended after the config's own (runc does the same): the default
/// device nodes stay usable under a deny-all rule, and mknod of any node is
/// allowed (the kernel still needs CAP_MKNOD).
fn effective_resources(linux: &oci_spec::runtime::Linux) -> LinuxResources {
    let mut r = linux.resources().clone().unwrap_or_default();
    let Some(mut rules) = r.devices().clone() else {
        return r;
    };
    let rule = |typ: &str,
                major: Option<i64>,
                minor: Option<i64>,
                access: &str|
     -> oci_spec::runtime::LinuxDeviceCgroup {
        serde_json::from_value(serde_json::json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": access}))
            .unwrap_or_default()
    };
    rules.push(rule("c", None, None, "m"));
    rules.push(rule("b", None, None, "m"));
    for (maj, min) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        rules.push(rule("c", Some(maj), Some(min), "rwm"));
    }
    rules.push(rule("c", Some(136), None, "rwm"));
    // linux.devices only creates nodes: their access is the config's
    // resources.devices rules' to grant (docker's --device PATH:r relies
    // on that), so nothing is added for them here.
    r.set_devices(Some(rules));
    r
}

/// `update` changes only what it names; the rest of the limits stay.
fn merge_resources(mut old: LinuxResources, new: &LinuxResources) -> LinuxResources {
    if new.memory().is_some() {
        old.set_memory(*new.memory());
    }
    if new.cpu().is_some() {
        old.set_cpu(new.cpu().clone());
    }
    if new.pids().is_some() {
        old.set_pids(*new.pids());
    }
    if new.block_io().is_some() {
        old.set_block_io(new.block_io().clone());
    }
    if new.hugepage_limits().is_some() {
        old.set_hugepage_limits(new.hugepage_limits().clone());
    }
    if new.unified().is_some() {
        old.set_unified(new.unified().clone());
    }
    old
}

/// The default spec `berth-runtime spec` writes: runc's, with a terminal.
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = Spec::default();
    if let Some(mut p) = spec.process().clone() {
        p.set_terminal(Some(true));
        spec.set_process(Some(p));
    }
    if rootless {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        spec.set_linux(Some(oci_spec::runtime::Linux::rootless(uid, gid)));
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_are_filtered_by_pid() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 100\n";
        let (h, rows) = filter_ps(out, &[42]).unwrap();
        assert!(h.starts_with("UID PID"));
        assert_eq!(rows, ["root 42 1 0 10:00 ? 00:00:00 sleep 100"]);
        assert!(filter_ps("A B\n", &[1]).is_err());
    }
}
