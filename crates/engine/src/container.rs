//! The container lifecycle: create, start, stop, kill, remove, wait, exec,
//! and the monitor's records of start and exit. Each operation reads the
//! row, acts through the runtime or the monitor, and writes the row back.

use std::fs;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_image::store::Store;
use berth_runtime::Runtime;

use crate::db::{Container, Db, State};
use crate::error::{io_err, Error, Result};
use crate::events::Pending;
use crate::hostconfig::{self, HostConfig};
use crate::images;
use crate::leftovers::Leftovers;
use crate::monitor;
use crate::names;
use crate::options::{ExecOptions, RunOptions};
use crate::paths::Paths;
use crate::security;
use crate::spec;
use crate::user;

/// A container's network being made beside the rest of its start: on a
/// scoped thread when it has one to make (`none` and `host` only get
/// their files, written in turn).
enum NetSetup<'scope, 'env> {
    Thread(std::thread::ScopedJoinHandle<'scope, Result<Option<crate::network::Sandbox>>>),
    Files(&'env Engine, &'env Container),
    Later(&'env Engine, &'env Container),
}

impl<'scope, 'env> NetSetup<'scope, 'env> {
    fn begin(
        s: &'scope std::thread::Scope<'scope, 'env>,
        engine: &'env Engine,
        c: &'env Container,
    ) -> Self {
        match c.config.network_mode.as_str() {
            "none" | "host" => NetSetup::Files(engine, c),
            // Its idmapped mounts clone a user namespace, which only a
            // process of one thread may do: made in turn.
            _ if c.config.host_config.id_map.is_some() => NetSetup::Later(engine, c),
            _ => NetSetup::Thread(s.spawn(move || crate::network::setup(engine, c))),
        }
    }

    /// Waits for it: what was made, for the spec.
    fn finish(self) -> Result<Option<crate::network::Sandbox>> {
        match self {
            NetSetup::Files(engine, c) => crate::network::local_files(engine, c).map(Some),
            NetSetup::Later(engine, c) => crate::network::setup(engine, c),
            NetSetup::Thread(h) => h.join().unwrap_or_else(|_| {
                Err(Error::InvalidArgument("the network setup panicked".into()))
            }),
        }
    }
}

/// How one attempt of [`Engine::remove`] ended.
enum Removal {
    Done(Box<Container>),
    /// The row changed state under us: try again with what it says now.
    Moved(String),
}

/// The engine: everything under one `--root` and `--runroot`.
#[derive(Debug, Clone)]
pub struct Engine {
    pub paths: Paths,
    handles: Handles,
    /// The process lives on past its containers (`berth serve`): see
    /// [`Engine::outliving_containers`].
    long_lived: bool,
}

/// The state database and image store, opened once per process and
/// shared by the engine's clones (see [`crate::db::Pool`]); and a
/// long-lived process's reaper of its monitors.
#[derive(Clone, Default)]
struct Handles {
    db: crate::db::Pool,
    store: Arc<Mutex<Option<Arc<Store>>>>,
    reaper: Arc<std::sync::OnceLock<crate::reaper::Reaper>>,
    /// A monitor started ahead of the next start: see [`Engine::hold_spare`].
    spare: Arc<Mutex<Option<monitor::Spare>>>,
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handles")
    }
}

impl Engine {
    pub fn new(paths: Paths) -> Engine {
        Engine {
            paths,
            handles: Handles::default(),
            long_lived: false,
        }
    }

    /// For a process that outlives the containers it starts (a daemon):
    /// a thread of its own reaps their monitors as they end. A short-lived
    /// `berth` leaves them to init, which adopts them when it exits.
    pub fn outliving_containers(mut self) -> Engine {
        self.long_lived = true;
        // Now rather than at the first start: its thread and pipe belong
        // to the idle process (one that fails is tried again there). So
        // this comes after what must run while the process has one thread.
        if let Ok(r) = crate::reaper::Reaper::new() {
            let _ = self.handles.reaper.set(r);
        }
        self
    }

    /// Who reaps the monitors this process starts: nobody (init, later)
    /// for a short-lived one.
    fn reaper(&self) -> Result<Option<crate::reaper::Reaper>> {
        if !self.long_lived {
            return Ok(None);
        }
        if let Some(r) = self.handles.reaper.get() {
            return Ok(Some(r.clone()));
        }
        let r = crate::reaper::Reaper::new().map_err(io_err("starting the monitors' reaper"))?;
        // Two first starts side by side: the loser's thread ends at once.
        Ok(Some(self.handles.reaper.get_or_init(|| r).clone()))
    }

    pub fn db(&self) -> Result<Db> {
        self.handles.db.get(&self.paths.db())
    }

    /// Starts a monitor ahead of the next [`Engine::start`], which gives it
    /// its container: the monitor's load, and its opening of the state
    /// database, then happen while the container is created (`run`) or
    /// before the start is asked for (a server, which holds one again
    /// after each start). Does nothing when one is held already.
    pub fn hold_spare(&self) -> Result<()> {
        let mut slot = self.handles.spare.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(monitor::spare(&self.paths, self.reaper()?)?);
        }
        Ok(())
    }

    fn take_spare(&self) -> Option<monitor::Spare> {
        self.handles
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The image store under `--root`, opened at the first use.
    pub fn store(&self) -> Result<Arc<Store>> {
        let mut slot = self.handles.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(images::open(&self.paths)?);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Closes the database connection and image store kept open between
    /// uses: a monitor does before it waits for its container, so that a
    /// thousand idle monitors hold no SQLite caches. A server that ran
    /// calls side by side does once it is idle: SQLite cannot close a
    /// connection's file while another connection of the process holds a
    /// lock on it (that would drop the process's POSIX locks), so it keeps
    /// the fds of those closed meanwhile until the last one closes.
    pub fn release(&self) {
        self.handles.db.clear();
        self.handles
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    pub fn runtime(&self) -> Runtime {
        Runtime::new(self.paths.runtime_root())
    }

    pub fn find(&self, key: &str) -> Result<Container> {
        let c = self.db()?.find(key)?;
        let id = c.id.clone();
        self.refresh(c)?.ok_or(Error::NoSuchContainer(id))
    }

    pub fn list(&self) -> Result<Vec<Container>> {
        let mut v = Vec::new();
        for c in self.db()?.list()? {
            v.extend(self.refresh(c)?);
        }
        Ok(v)
    }

    /// `create`: the row, and the container's writable snapshot on top of
    /// its image. Nothing runs yet.
    pub fn create(&self, opts: &RunOptions) -> Result<Container> {
        let store = self.store()?;
        let image = images::find(&store, &opts.image)?;
        let image_cfg = images::config(&store, &image)?;
        crate::timing::mark("create: image");
        let id = names::new_id()?;
        let name = opts.name.as_deref().map(names::validate).transpose()?;
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let mut opts = opts.clone();
        opts.host = prepare_host(&opts.host, &opts.network)?;
        for from in &opts.volumes_from {
            let (key, mode) = match from.rsplit_once(':') {
                Some((k, m @ ("ro" | "rw"))) => (k, Some(m == "ro")),
                _ => (from.as_str(), None),
            };
            for mut m in self.find(key)?.config.host_config.mounts {
                if !opts.host.mounts.iter().any(|x| x.target == m.target) {
                    m.read_only = mode.unwrap_or(m.read_only);
                    opts.host.mounts.push(m);
                }
            }
        }
        let mut config = spec::container_config(&image_cfg, &opts, &id, &host)?;
        // After the checks between the flags: those fail first.
        self.resolve_namespaces(&id, &mut config.host_config)?;
        crate::network::prepare(self, &opts, &image_cfg, &mut config)?;
        self.prepare_mounts(&mut config.host_config.mounts, &image_cfg.volumes)?;
        let mut c = Container {
            id: id.clone(),
            name: name.clone().unwrap_or_default(),
            image: opts.image.clone(),
            image_id: image.id.to_string(),
            config,
            created: chrono::Utc::now(),
            state: State::Created,
            pid: 0,
            exit_code: None,
            started: None,
            finished: None,
            error: None,
            oom_killed: false,
        };
        let db = self.db()?;
        if let Some(size) = crate::userns::size_of_mode(&c.config.host_config.userns_mode)? {
            let pool = crate::userns::Pool::host();
            match crate::userns::allocate(&db, &id, size, pool) {
                Ok(m) => c.config.host_config.id_map = Some(m),
                Err(e) => {
                    let _ = self.remove_anonymous(&c.config.host_config.mounts);
                    return Err(e);
                }
            }
        }
        if let Err(e) = db.insert(&mut c, name.is_none()) {
            let _ = self.remove_anonymous(&c.config.host_config.mounts);
            let _ = crate::userns::release(&db, &id);
            return Err(e);
        }
        crate::timing::mark("create: row");
        let made = (|| {
            fs::create_dir_all(self.paths.container_dir(&id)).map_err(io_err(format!(
                "creating {}",
                self.paths.container_dir(&id).display()
            )))?;
            images::prepare_rootfs(&store, &image, &id)
        })();
        crate::timing::mark("create: snapshot");
        if let Err(e) = made {
            let _ = self.remove_anonymous(&c.config.host_config.mounts);
            let _ = images::remove_rootfs(&store, &id);
            let _ = fs::remove_dir_all(self.paths.container_dir(&id));
            let _ = crate::userns::release(&db, &id);
            let _ = db.delete(&id);
            return Err(e);
        }
        crate::events::container(&db, &c, "create", &[]);
        Ok(c)
    }

    /// `start`: mounts the root, writes the bundle and hands the container
    /// to a new monitor; returns once it runs. With `attach` the monitor
    /// serves the container's stdio on that stream from the first byte.
    pub fn start(
        &self,
        key: &str,
        attach: Option<crate::attach::AttachTo>,
    ) -> Result<monitor::Handle> {
        let db = self.db()?;
        let c = db.find(key)?;
        if matches!(c.state, State::Running | State::Removing) {
            return Err(Error::WrongState {
                id: c.id,
                state: c.state.to_string(),
                op: "start",
            });
        }
        crate::restart::reset(&db, &c.id)?;
        crate::tuning::apply()?;
        let console_size = attach.as_ref().and_then(|a| a.console_size);
        // The monitor loads and sets up on one CPU while we mount the root
        // and write the spec on the other.
        let bundle = self.paths.bundle(&c.id);
        fs::create_dir_all(&bundle).map_err(io_err(format!("creating {}", bundle.display())))?;
        // Its init is seen by processes that already run (the host's, or
        // another container's): the monitor runs from a sealed copy.
        let sealed = !c.config.host_config.pid_mode.is_empty();
        let how = monitor::Launch {
            sealed,
            reaper: self.reaper()?,
        };
        // The network (a namespace, a veth, addresses: kernel work that
        // waits more than it computes) is made on a thread of its own
        // while the monitor starts and the root is mounted.
        let spare = if sealed { None } else { self.take_spare() };
        let mut stream = attach.map(|a| a.stream);
        let prepared = std::thread::scope(|s| {
            let net = NetSetup::begin(s, self, &c);
            let launched = match spare.map(|sp| sp.take(&c.id, &mut stream)) {
                Some(Ok(pending)) => Ok(pending),
                // None held, or it died: a monitor of its own.
                _ => monitor::launch(&self.paths, &c.id, stream, how),
            };
            match launched {
                Ok(pending) => self.prepare_with(&c, console_size, net).map(|()| pending),
                Err(e) => {
                    if net.finish().is_ok_and(|sb| sb.is_some()) {
                        let _ = self.unmount_run(&c.id, &mut Vec::new());
                    }
                    Err(e)
                }
            }
        });
        let pending = prepared?;
        crate::timing::mark("start: prepared");
        let started = pending.go();
        if started.is_err() {
            let _ = self.unmount_run(&c.id, &mut Vec::new());
        }
        started
    }

    /// Mounts the container's root and writes its bundle: what a start
    /// needs before the monitor runs (the monitor's restarts need it too).
    pub fn prepare(&self, c: &Container, console_size: Option<(u16, u16)>) -> Result<()> {
        std::thread::scope(|s| self.prepare_with(c, console_size, NetSetup::begin(s, self, c)))
    }

    /// [`Engine::prepare`] with the network being made by `net`.
    fn prepare_with(
        &self,
        c: &Container,
        console_size: Option<(u16, u16)>,
        net: NetSetup<'_, '_>,
    ) -> Result<()> {
        let mut net = Some(net);
        let prepared = self.prepare_root(c, console_size, &mut net);
        if prepared.is_err() {
            // The network thread must be done before what it made goes.
            if let Some(n) = net {
                let _ = n.finish();
            }
            // Nothing stays mounted for a start that never happened.
            let _ = self.unmount_run(&c.id, &mut Vec::new());
        }
        prepared
    }

    fn prepare_root(
        &self,
        c: &Container,
        console_size: Option<(u16, u16)>,
        net: &mut Option<NetSetup<'_, '_>>,
    ) -> Result<()> {
        let store = self.store()?;
        let mounts = images::container_mounts(&self.paths.root, &store, &c.id)?;
        let rootfs = self.paths.rootfs(&c.id);
        fs::create_dir_all(&rootfs).map_err(io_err(format!("creating {}", rootfs.display())))?;
        // A root left mounted by a crashed monitor would be stacked on.
        unmount(&rootfs)?;
        let id_map = c.config.host_config.id_map;
        let userns = id_map.as_ref().map(crate::userns::namespace).transpose()?;
        mount_root(&mounts, c.config.auto_remove, |ms| {
            match (&id_map, &userns) {
                (Some(m), Some(ns)) => berth_image::snapshot::mount_all_idmapped(
                    ms,
                    &rootfs,
                    ns.as_fd(),
                    (m.uid, m.gid),
                    &self.paths.idmapped(&c.id).join("layers"),
                ),
                _ => berth_image::snapshot::mount_all(ms, &rootfs),
            }
            .map_err(|e| Error::Image(e.into()))
        })?;
        crate::timing::mark("prepare: mounted");
        {
            let mut u = user::resolve_in_root(&rootfs, &c.config.user)?;
            for g in user::groups_in_root(&rootfs, &c.config.host_config.group_add)? {
                if g != u.gid && !u.additional_gids.contains(&g) {
                    u.additional_gids.push(g);
                }
            }
            self.copy_up(&rootfs, &c.config.host_config.mounts, id_map.as_ref())?;
            let mut info = host_info(&c.config)?;
            info.volumes = self.paths.root.join("volumes");
            info.shared = self.shared_namespaces(c)?;
            if let Some(ns) = &userns {
                info.shared.volumes = self.idmap_volumes(c, ns.as_fd())?;
            }
            let mut s = spec::build(&c.id, &c.config, &rootfs, &u, &info)?;
            let sandbox = net.take().map_or(Ok(None), NetSetup::finish)?;
            crate::timing::mark("prepare: network joined");
            if let Some(sandbox) = sandbox {
                if let (Some(m), Some(files)) = (&id_map, &sandbox.files) {
                    // docker's remapped root owns them, as root does elsewhere.
                    for f in files {
                        std::os::unix::fs::lchown(f, Some(m.uid), Some(m.gid))
                            .map_err(io_err(format!("chown {}", f.display())))?;
                    }
                }
                crate::network::apply(&mut s, &sandbox)?;
            }
            if let Some(size) = console_size {
                crate::attach::set_console_size(&mut s, size);
            }
            let json = serde_json::to_vec(&s).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            crate::timing::mark("prepare: spec built");
            write_atomic(&self.paths.bundle(&c.id).join("config.json"), &json)?;
            fs::create_dir_all(self.paths.container_dir(&c.id))
                .map_err(io_err("creating the container directory"))
        }
    }

    /// `stop`: `signal`, else the container's stop signal (`--stop-signal`,
    /// the image's STOPSIGNAL, or SIGTERM), then SIGKILL after `timeout`
    /// (default: its `--stop-timeout`, or 10 seconds).
    pub fn stop(
        &self,
        key: &str,
        timeout: Option<Duration>,
        signal: Option<&str>,
    ) -> Result<Container> {
        // A bad signal fails before anything is done, as docker's does.
        let asked = signal.map(berth_runtime::signal::parse).transpose()?;
        let c = self.find(key)?;
        // Before the state check: a container between two restarts is
        // exited, and must stay so.
        crate::restart::mark_stopped(&self.db()?, &c.id)?;
        if c.state != State::Running {
            if c.state == State::Exited && !c.config.host_config.restart_policy.is_none() {
                // Between two runs of a policy: its monitor sees the mark
                // (before its next start, or just after and kills it) and
                // ends; wait for that so `stop` returns with it stopped.
                monitor::wait_socket(&self.paths, &c.id, Some(Duration::from_secs(10)))?;
            }
            return Ok(c);
        }
        let sig = match (asked, c.config.stop_signal.as_str()) {
            (Some(sig), _) => sig,
            (None, "") => 15,
            (None, s) => berth_runtime::signal::parse(s)?,
        };
        let timeout = timeout.unwrap_or_else(|| {
            Duration::from_secs(c.config.stop_timeout.map_or(10, |t| t.max(0) as u64))
        });
        let rt = self.runtime();
        if let Err(e) = rt.kill(&c.id, sig, false) {
            tracing::debug!(id = c.id, error = %e, "stop signal");
        }
        if timeout.is_zero() || self.wait_exit(&c.id, Some(timeout))?.is_none() {
            if let Err(e) = rt.kill(&c.id, 9, true) {
                tracing::debug!(id = c.id, error = %e, "SIGKILL");
            }
            self.wait_exit(&c.id, None)?;
        }
        crate::events::container(&self.db()?, &c, "stop", &[]);
        Ok(c)
    }

    /// `kill`: a signal (name or number) to a running container's init.
    pub fn kill(&self, key: &str, signal: &str) -> Result<Container> {
        let sig = berth_runtime::signal::parse(signal)?;
        let c = self.find(key)?;
        if c.state != State::Running {
            return Err(Error::WrongState {
                id: c.id,
                state: c.state.to_string(),
                op: "kill (it is not running)",
            });
        }
        self.runtime().kill(&c.id, sig, false)?;
        crate::events::container(&self.db()?, &c, "kill", &[("signal", sig.to_string())]);
        Ok(c)
    }

    /// Blocks until the container is not running; its exit code if known.
    /// `Ok(None)` when `timeout` passed first.
    pub fn wait_exit(&self, id: &str, timeout: Option<Duration>) -> Result<Option<i32>> {
        if let Some(code) = monitor::wait_socket(&self.paths, id, timeout)? {
            return Ok(Some(code));
        }
        match self.find(id) {
            Ok(c) if c.state == State::Running => Ok(None),
            Ok(c) => Ok(Some(c.exit_code.unwrap_or(0))),
            // Removed by its own `--rm` while we waited.
            Err(Error::NoSuchContainer(_)) => Ok(Some(0)),
            Err(e) => Err(e),
        }
    }

    /// `wait`: blocks until the container stops; its exit code.
    pub fn wait(&self, key: &str) -> Result<i32> {
        let c = self.find(key)?;
        loop {
            if let Some(code) = self.wait_exit(&c.id, None)? {
                return Ok(code);
            }
            // The monitor is gone but the row says running: it died. The
            // runtime knows whether the container did.
            if !self.runtime_running(&c.id) {
                return Ok(self
                    .find(&c.id)
                    .ok()
                    .and_then(|c| c.exit_code)
                    .unwrap_or(255));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn runtime_running(&self, id: &str) -> bool {
        matches!(
            self.runtime().status(id),
            Ok(berth_runtime::Status::Running
                | berth_runtime::Status::Paused
                | berth_runtime::Status::Created)
        )
    }

    /// `rm`: removes a stopped container; with `force`, kills it first.
    /// With `volumes` its anonymous volumes go too (`rm -v`).
    pub fn remove(&self, key: &str, force: bool, volumes: bool) -> Result<Container> {
        let mut c = self.find(key)?;
        // A container still `created` may be starting under its monitor:
        // read it again when it moved on while we looked.
        loop {
            match self.remove_once(c, force, volumes)? {
                Removal::Done(c) => return Ok(*c),
                Removal::Moved(id) => c = self.find(&id)?,
            }
        }
    }

    fn remove_once(&self, c: Container, force: bool, volumes: bool) -> Result<Removal> {
        if c.state == State::Running {
            if !force {
                return Err(Error::WrongState {
                    id: c.id,
                    state: "running".into(),
                    op: "remove (stop it first or use -f)",
                });
            }
            // Its restart policy ends here: a monitor that restarted it
            // would leave us waiting for an exit that never comes.
            crate::restart::mark_stopped(&self.db()?, &c.id)?;
            if let Err(e) = self.runtime().kill(&c.id, 9, true) {
                tracing::debug!(id = c.id, error = %e, "SIGKILL");
            }
            self.wait_exit(&c.id, None)?;
            self.reap_orphan(&c.id)?;
        }
        let db = self.db()?;
        // Whoever moves the row to `removing` does the teardown: the
        // monitor of a `--rm` container may be racing us.
        match db.transition(&c.id, &[State::Created, State::Exited], State::Removing) {
            Ok(true) => {}
            Ok(false) => match db.find(&c.id) {
                // Its monitor started it since we read it.
                Ok(now) if now.state == State::Running => return Ok(Removal::Moved(c.id)),
                Ok(_) => {
                    self.finish_abandoned_removal(&db, &c.id)?;
                    return Ok(Removal::Done(Box::new(c)));
                }
                Err(Error::NoSuchContainer(_)) => return Ok(Removal::Done(Box::new(c))),
                Err(e) => return Err(e),
            },
            Err(Error::NoSuchContainer(_)) => return Ok(Removal::Done(Box::new(c))),
            Err(e) => return Err(e),
        }
        self.teardown(&db, &c.id)?;
        if volumes {
            let errors = self.remove_anonymous(&c.config.host_config.mounts);
            if !errors.is_empty() {
                return Err(Error::Teardown { id: c.id, errors });
            }
        }
        Ok(Removal::Done(Box::new(c)))
    }

    /// What a run holds once its process is gone: the runtime's state, the
    /// rootfs mount, the network. Failures are collected, not fatal, so
    /// teardown goes on past them.
    /// With `later`, the runtime's state and cgroups are left to it. The
    /// networks left, as (id, name), are added to `left`.
    fn release_run(
        &self,
        id: &str,
        errors: &mut Vec<String>,
        later: Option<&mut Leftovers>,
        left: &mut Vec<(String, String)>,
    ) {
        match later {
            Some(later) => later.add_run(self.runtime(), id),
            None => match self.runtime().delete(id, true) {
                Ok(()) => {}
                Err(e) if e.kind() == berth_runtime::ErrorKind::NotFound => {}
                Err(e) => errors.push(e.to_string()),
            },
        }
        errors.extend(self.unmount_run(id, left));
    }

    /// The host's side of a run, once its processes are gone (or never
    /// were): the rootfs, /dev/shm and idmapped mounts, the network. The
    /// failures, each as a message; the networks left go to `left`.
    fn unmount_run(&self, id: &str, left: &mut Vec<(String, String)>) -> Vec<String> {
        [
            unmount(&self.paths.rootfs(id)),
            self.unmount_shm(id),
            self.unmount_idmapped(id),
            {
                crate::timing::mark("exit: unmounted");
                crate::network::release(self, id, left)
            },
        ]
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect()
    }

    /// Removes everything of a stopped container: runtime state, mounts,
    /// snapshot, files, row. Keeps going past failures, reporting all.
    pub fn teardown(&self, db: &Db, id: &str) -> Result<()> {
        let _held = crate::recover::lock_removal(&self.paths, id, true)?;
        // Finished by another while we waited for the lock.
        if matches!(db.find(id), Err(Error::NoSuchContainer(_))) {
            return Ok(());
        }
        let mut errors = Vec::new();
        // Before the bundle goes: the network's record of itself is there.
        self.release_run(id, &mut errors, None, &mut Vec::new());
        self.remove_released(db, id, errors, None)
    }

    /// The rest of [`Engine::teardown`] once the run is released: the
    /// snapshot, the files, and (if all that went) the row. With `later`
    /// the files are only moved aside, for the caller to delete.
    fn remove_released(
        &self,
        db: &Db,
        id: &str,
        mut errors: Vec<String>,
        later: Option<&mut Leftovers>,
    ) -> Result<()> {
        // Read while the row is there, for the destroy event.
        let row = db.find(id).ok();
        let dirs = [self.paths.bundle(id), self.paths.container_dir(id)];
        if let Some(later) = later {
            match self.store().and_then(|s| images::detach_rootfs(&s, id)) {
                Ok(d) => d.into_iter().for_each(|d| later.add_snapshot(d)),
                Err(e) => errors.push(e.to_string()),
            }
            for dir in &dirs {
                if let Err(e) = later.move_aside(dir) {
                    errors.push(format!("removing {}: {e}", dir.display()));
                }
            }
        } else {
            if let Err(e) = self.store().and_then(|s| images::remove_rootfs(&s, id)) {
                errors.push(e.to_string());
            }
            for dir in &dirs {
                match fs::remove_dir_all(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => errors.push(format!("removing {}: {e}", dir.display())),
                }
            }
        }
        if errors.is_empty() {
            let _ = crate::restart::forget(db, id);
            let _ = crate::health::forget(db, id);
            crate::userns::release(db, id)?;
            db.delete(id)?;
            // A start's hold leaves the lock file; a --rm exit takes no lock.
            crate::recover::forget_lock(&self.paths, id);
            if let Some(c) = row {
                crate::events::container(db, &c, "destroy", &[]);
            }
            Ok(())
        } else {
            Err(Error::Teardown {
                id: id.to_string(),
                errors,
            })
        }
    }

    /// Deletes what removers that died left moved aside (see
    /// [`crate::leftovers`]).
    pub fn sweep_leftovers(&self) {
        crate::leftovers::sweep(&self.paths.container_parents());
        // A runtime state is made after its row and, but for a --rm
        // container's, deleted before it: one without a row was left by a
        // monitor that died after answering (or is being deleted now).
        let root = self.paths.runtime_root();
        let Ok(ids) = berth_runtime::state::list_ids(&root) else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        let Ok(known) = self.db().and_then(|db| db.ids()) else {
            return;
        };
        for id in ids.iter().filter(|i| !known.contains(*i)) {
            if let Err(e) = self.runtime().delete(id, true) {
                tracing::debug!(id, error = %e, "deleting a leftover runtime state");
            }
        }
    }

    /// The monitor's record of a started container. `NoSuchContainer` when
    /// the row is gone or being removed: the process must not outlive it.
    pub fn record_started(&self, id: &str, pid: i32) -> Result<()> {
        let db = self.db()?;
        let c = db.find(id)?;
        // dockerd's order: the container joins its networks, then starts.
        // Written in the commit of the running state, not one each.
        let mut events: Vec<Pending> = crate::network::joined(self, &db, &c)
            .iter()
            .map(|(net, name)| Pending::network("connect", net, name, Some(id)))
            .collect();
        events.push(Pending::container(&c, "start", &[]));
        crate::events::with_state(&db, &events, || db.set_running(id, pid, chrono::Utc::now()))
    }

    /// The monitor's record of a start that failed: the row stays (docker
    /// keeps a container whose command was not found) unless `--rm`.
    pub fn record_start_failed(&self, id: &str, code: i32, msg: &str) -> Result<()> {
        let db = self.db()?;
        for e in self.unmount_run(id, &mut Vec::new()) {
            tracing::warn!(id, error = %e, "releasing what a failed start held");
        }
        db.set_start_failed(id, code, msg)?;
        self.remove_if_auto(&db, id)
    }

    /// [`Engine::record_exit`] for a caller with no answer to hurry (not
    /// the container's monitor): what it moves aside is deleted at once.
    pub fn record_exit_now(&self, id: &str, code: i32) -> Result<()> {
        let mut later = Leftovers::default();
        let recorded = self.record_exit(id, code, &mut later);
        let purged = later.purge();
        recorded?;
        Error::teardown(id, purged)
    }

    /// The monitor's record of an exit: runtime state and mounts go, the
    /// code and time are kept, and a `--rm` container is removed: its row
    /// now, its directories into `later`, to delete once the monitor has
    /// answered.
    pub fn record_exit(&self, id: &str, code: i32, later: &mut Leftovers) -> Result<()> {
        let mut errors = Vec::new();
        let db = self.db()?;
        let c = db.find(id)?;
        let rm = c.config.auto_remove;
        // Read before the runtime's delete takes the cgroup and its count.
        // Not for --rm: its row goes now, and the read loads the runtime's
        // state (the whole spec) on the path of every `run --rm`.
        let oom_killed = !rm && self.runtime().oom_kills(id).unwrap_or(0) > 0;
        // docker frees the address and ports at exit, not at rm. A --rm
        // container's cgroups and runtime state go after the answer.
        let mut left = Vec::new();
        self.release_run(id, &mut errors, rm.then_some(&mut *later), &mut left);
        left.extend(crate::network::on_predefined(&db, &c));
        crate::timing::mark("exit: released");
        let now = chrono::Utc::now();
        // dockerd's order: the container dies, then leaves its networks;
        // all written in the commit of the exit.
        let mut events = Vec::new();
        if oom_killed {
            events.push(Pending::container(&c, "oom", &[]));
        }
        events.push(Pending::container(
            &c,
            "die",
            &[("exitCode", code.to_string())],
        ));
        events.extend(
            left.iter()
                .map(|(net, name)| Pending::network("disconnect", net, name, Some(id))),
        );
        let claimed = crate::events::with_state(&db, &events, || {
            if rm {
                db.set_exited_removing(id, code, now)
            } else {
                db.set_exited(id, code, oom_killed, now).map(|()| false)
            }
        })?;
        if claimed {
            crate::timing::mark("exit: claimed");
            // One write to removing (a racing `rm` then leaves it to us),
            // and the teardown without releasing the run a second time
            // unless the first failed.
            let removed = if errors.is_empty() {
                self.remove_released(&db, id, Vec::new(), Some(later))
            } else {
                self.teardown(&db, id)
            };
            if let Err(e) = removed {
                errors.push(e.to_string());
            }
            // docker: --rm also removes the container's anonymous volumes.
            errors.extend(self.remove_anonymous(&c.config.host_config.mounts));
        }
        Error::teardown(id, errors)
    }

    fn remove_if_auto(&self, db: &Db, id: &str) -> Result<()> {
        let c = db.find(id)?;
        if c.config.auto_remove
            && db.transition(id, &[State::Created, State::Exited], State::Removing)?
        {
            self.teardown(db, id)?;
            // docker: --rm also removes the container's anonymous volumes.
            return Error::teardown(id, self.remove_anonymous(&c.config.host_config.mounts));
        }
        Ok(())
    }

    /// `exec`: runs `opts.cmd` in a running container through the monitor
    /// binary (which may enter containers; this process must not), with our
    /// stdout and stderr. Returns its exit code.
    pub fn exec(&self, key: &str, opts: &ExecOptions, stdin: bool) -> Result<i32> {
        let (mut cmd, file) = self.exec_command(key, opts)?;
        if !stdin {
            cmd.stdin(std::process::Stdio::null());
        }
        let status = cmd
            .status()
            .map_err(io_err(format!("running {}", monitor::BINARY)));
        let _ = fs::remove_file(&file);
        let status = status?;
        Ok(status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }))
    }

    /// The `berth-monitor exec` command that runs `opts.cmd` in a running
    /// container, for a caller that chooses its stdio (the CLI's own, or
    /// the API's pipes), and the process file to remove once it is done.
    pub fn exec_command(
        &self,
        key: &str,
        opts: &ExecOptions,
    ) -> Result<(std::process::Command, std::path::PathBuf)> {
        let (c, file) = self.exec_file(key, opts)?;
        match monitor::exec_command(&self.paths, &c.id, &file) {
            Ok(cmd) => Ok((cmd, file)),
            Err(e) => {
                let _ = fs::remove_file(&file);
                Err(e)
            }
        }
    }

    /// `exec -t`: starts the process with a pty served by a `berth-monitor
    /// exec --stream` child on the returned attach stream. The caller
    /// reaps the child and removes the process file when done.
    pub fn exec_attached(
        &self,
        key: &str,
        opts: &ExecOptions,
    ) -> Result<(
        std::process::Child,
        std::os::unix::net::UnixStream,
        std::path::PathBuf,
    )> {
        let (c, file) = self.exec_file(key, opts)?;
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(io_err("creating a socket pair"))?;
        let mut cmd = monitor::exec_command(&self.paths, &c.id, &file)?;
        cmd.arg("--stream");
        cmd.stdin(std::os::fd::OwnedFd::from(theirs));
        let child = cmd.spawn();
        drop(cmd);
        match child {
            Ok(child) => Ok((child, ours, file)),
            Err(e) => {
                let _ = fs::remove_file(&file);
                Err(io_err(format!("running {}", monitor::BINARY))(e))
            }
        }
    }

    /// `exec -d`: starts `opts.cmd` and returns once it runs, leaving it
    /// to a monitor of its own (its output is not kept, as docker's is not).
    pub fn exec_detached(&self, key: &str, opts: &ExecOptions) -> Result<()> {
        let (c, file) = self.exec_file(key, opts)?;
        let started = monitor::spawn_exec_detached(&self.paths, &c.id, &file);
        let _ = fs::remove_file(&file);
        started.map(|_| ())
    }

    /// The process of an exec, written where the monitor reads it.
    pub(crate) fn exec_file(
        &self,
        key: &str,
        opts: &ExecOptions,
    ) -> Result<(Container, std::path::PathBuf)> {
        let c = self.find(key)?;
        if c.state != State::Running {
            return Err(Error::WrongState {
                id: c.id,
                state: c.state.to_string(),
                op: "exec (it is not running)",
            });
        }
        if opts.cmd.is_empty() {
            return Err(Error::InvalidArgument("exec needs a command".into()));
        }
        let path = self.paths.bundle(&c.id).join("config.json");
        let json = fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        let s: oci_spec::runtime::Spec = serde_json::from_slice(&json)
            .map_err(|e| Error::InvalidArgument(format!("container {}: bad spec: {e}", c.id)))?;
        let mut p = s.process().clone().unwrap_or_default();
        p.set_args(Some(opts.cmd.clone()));
        p.set_terminal(Some(opts.tty));
        if opts.privileged {
            // docker's: every capability, inheritable too.
            let all = security::capabilities(&[], &[], true, &security::host_caps());
            let set: std::collections::HashSet<oci_spec::runtime::Capability> =
                serde_json::from_value(serde_json::json!(all))
                    .map_err(|e| Error::InvalidArgument(format!("capabilities: {e}")))?;
            let mut caps = p.capabilities().clone().unwrap_or_default();
            caps.set_bounding(Some(set.clone()));
            caps.set_effective(Some(set.clone()));
            caps.set_permitted(Some(set.clone()));
            caps.set_inheritable(Some(set));
            p.set_capabilities(Some(caps));
        }
        let mut env = p.env().clone().unwrap_or_default();
        if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        for e in &opts.env {
            spec::set_env(&mut env, e);
        }
        if let Some(u) = &opts.user {
            let u = user::resolve_in_root(&self.paths.rootfs(&c.id), u)?;
            p.set_user(user_of(&u));
            if !opts.env.iter().any(|e| e.starts_with("HOME=")) {
                spec::set_env(&mut env, &format!("HOME={}", u.home));
            }
        }
        p.set_env(Some(env));
        if let Some(w) = &opts.workdir {
            if !w.starts_with('/') {
                return Err(Error::InvalidArgument(format!(
                    "the working directory {w:?} is invalid: it needs to be an absolute path"
                )));
            }
            p.set_cwd(w.into());
        }
        let file = self
            .paths
            .bundle(&c.id)
            .join(format!("exec-{}.json", &names::new_id()?[..16]));
        let json = serde_json::to_vec(&p).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        write_atomic(&file, &json)?;
        Ok((c, file))
    }
}

/// Completes the options that need the host: capability names checked,
/// `--security-opt` applied (a seccomp profile is read now, as docker
/// does), limits checked against what the host allows.
fn prepare_host(h: &HostConfig, network: &crate::options::Network) -> Result<HostConfig> {
    use crate::hostconfig::SecurityOpt;
    let mut h = h.clone();
    for (list, flag) in [
        (&mut h.cap_add, "--cap-add"),
        (&mut h.cap_drop, "--cap-drop"),
    ] {
        *list = list
            .iter()
            .map(|c| security::normalize_cap(flag, c))
            .collect::<Result<_>>()?;
    }
    for o in h.security_opt.clone() {
        match hostconfig::parse_security_opt(&o)? {
            SecurityOpt::SeccompUnconfined => h.seccomp = Some("unconfined".into()),
            SecurityOpt::SeccompFile(f) => {
                let json = fs::read_to_string(&f).map_err(|e| {
                    Error::InvalidArgument(format!("--security-opt seccomp={f}: {e}"))
                })?;
                // A profile that cannot compile fails now, not at start.
                security::seccomp_from_profile(&json, &security::host_caps()).map_err(|e| {
                    Error::InvalidArgument(format!("--security-opt seccomp={f}: {e}"))
                })?;
                h.seccomp = Some(json);
            }
            SecurityOpt::NoNewPrivileges(b) => h.no_new_privileges = b,
        }
    }
    for k in h.sysctls.keys() {
        hostconfig::parse_sysctl(&format!("{k}="), *network == crate::options::Network::Host)?;
    }
    for d in &h.devices {
        security::stat_device(&d.path_on_host, &d.path_in_container)?;
    }
    hostconfig::check_host(&h, &hostconfig::HostLimits::probe())?;
    Ok(h)
}

/// What the spec needs from the host at start.
fn host_info(cfg: &crate::db::ContainerConfig) -> Result<spec::HostInfo> {
    let h = &cfg.host_config;
    let mut devices = Vec::new();
    if h.privileged {
        devices = security::host_devices();
    }
    for d in &h.devices {
        let dev = security::stat_device(&d.path_on_host, &d.path_in_container)?;
        devices.retain(|x| x.path != dev.path);
        devices.push(dev);
    }
    let init = if h.init {
        Some(crate::monitor::init_binary()?)
    } else {
        None
    };
    Ok(spec::HostInfo {
        nofile_hard: spec::host_nofile_hard(),
        all_caps: security::host_caps(),
        devices,
        init,
        volumes: std::path::PathBuf::new(),
        shared: Default::default(),
    })
}

fn user_of(u: &user::User) -> oci_spec::runtime::User {
    let mut x = oci_spec::runtime::User::default();
    x.set_uid(u.uid);
    x.set_gid(u.gid);
    x.set_additional_gids(Some(u.additional_gids.clone()));
    x
}

/// Mounts a container's root. A `--rm` container's overlay is volatile:
/// its changes die with it, so its unmount need not sync the whole host
/// filesystem under the upper directory (overlay's syncfs on unmount),
/// which on a busy disk is the slowest step of `run --rm`.
fn mount_root(
    mounts: &[berth_image::snapshot::Mount],
    rm: bool,
    mount: impl Fn(&[berth_image::snapshot::Mount]) -> Result<()>,
) -> Result<()> {
    if rm && mounts.iter().any(|m| m.kind == "overlay") {
        let mut volatile = mounts.to_vec();
        for m in volatile.iter_mut().filter(|m| m.kind == "overlay") {
            m.options.push("volatile".into());
        }
        // Before Linux 5.10 overlay has no `volatile`: mount as for others.
        if mount(&volatile).is_ok() {
            return Ok(());
        }
    }
    mount(mounts)
}

/// Unmounts a container's root; not being mounted is fine.
pub fn unmount(path: &Path) -> Result<()> {
    use rustix::io::Errno;
    use rustix::mount::UnmountFlags;
    let r = match rustix::mount::unmount(path, UnmountFlags::NOFOLLOW) {
        Err(Errno::BUSY) => {
            rustix::mount::unmount(path, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW)
        }
        r => r,
    };
    match r {
        Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err(format!("unmounting {}", path.display()))(e.into())),
    }
}

/// Writes a file so a reader sees the old or the new content, never half.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).map_err(io_err(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io_err(format!("writing {}", path.display())))
}
