//! The container's first process, from clone to exec. It runs in the child
//! of the runtime, talks to the parent over a [`Channel`], and either execs
//! the user's process or reports why it could not and exits.
//!
//! The order is the kernel's: namespaces, then the root and its mounts,
//! then the pivot, then the terminal, limits, user and capabilities,
//! no_new_privs and seccomp last, so that the filter governs only the user's
//! process and the few calls before its exec.

mod console;
pub(crate) mod devices;
pub(crate) mod idmap;
pub(crate) mod mounts;
pub(crate) mod paths;
pub(crate) mod user;

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use rustix::fs::{Mode, OFlags};

use crate::channel::{Channel, Msg};
use crate::error::{errno, Error, Result};
use crate::hooks;
use crate::namespaces::{self, Plan};

/// How the init learns that it may exec.
pub(crate) enum StartWait {
    /// The parent stays (`run`): a `Start` message.
    Channel,
    /// The parent leaves (`create`): `start` opens the fifo open here as O_PATH.
    Fifo(OwnedFd),
}

pub(crate) struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub process: &'a Process,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub channel: &'a Channel,
    pub console: Option<OwnedFd>,
    pub start: StartWait,
    pub plan: &'a Plan,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub cgroups: mounts::HostCgroups,
    /// Joining a running container (`exec`) instead of making one.
    pub exec: bool,
    /// The seccomp filter, compiled (or taken from the cache) by the parent.
    pub filter: Option<&'a crate::seccomp::Filter>,
}

/// Runs the init; never returns.
pub(crate) fn run(args: InitArgs<'_>) -> ! {
    let err = match setup(&args) {
        Ok(e) => e,
        Err(e) => e,
    };
    let code = match &err {
        Error::Init(m) if m.contains("not found") => 127,
        Error::Init(m) if m.contains("permission denied") => 126,
        _ => 1,
    };
    let _ = args.channel.send(&Msg::Error {
        msg: err.to_string(),
    });
    berth_sys::process::exit_now(code)
}

/// Everything up to exec; returns only an error.
fn setup(a: &InitArgs<'_>) -> std::result::Result<Error, Error> {
    // Until exec this process is the runtime's image: nothing in the
    // container may open it through /proc/PID/exe (runc CVE-2019-5736).
    // Exec resets this for the user's process.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(errno("prctl dumpable"))?;
    berth_sys::signal::reset_all().map_err(crate::error::io_err("resetting signals"))?;
    let state = match a.channel.recv()? {
        Some((Msg::Go { state }, _)) => state,
        Some((Msg::Error { msg }, _)) => return Err(Error::Init(msg)),
        _ => return Err(Error::Init("the runtime went away".into())),
    };
    crate::timing::mark("init: go");
    namespaces::join_all(&a.plan.join)?;
    let new_user = a.plan.clone_flags & namespaces::CLONE_NEWUSER != 0;
    if new_user {
        // Become the namespace's root: the uid the mapping gave us may not be 0.
        let z = rustix::process::Uid::ROOT;
        let g = rustix::process::Gid::ROOT;
        rustix::thread::set_thread_res_gid(g, g, g)
            .map_err(errno("becoming root in the user namespace"))?;
        rustix::thread::set_thread_res_uid(z, z, z)
            .map_err(errno("becoming root in the user namespace"))?;
    }
    if a.plan.new_cgroup {
        namespaces::unshare_ns(rustix::thread::UnshareFlags::NEWCGROUP)
            .map_err(errno("creating the cgroup namespace"))?;
    }
    let last_cap = user::last_cap();
    let p = a.process;
    // A host /proc handle for the exec fifo after the pivot (closed on exec).
    let host_proc = rustix::fs::open(
        "/proc",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening /proc"))?;
    // The hostname first: createContainer hooks run in the container's
    // namespaces and see it.
    if !a.exec {
        if let Some(h) = a.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            rustix::system::sethostname(h.as_bytes())
                .map_err(errno(format!("setting hostname {h}")))?;
        }
        if let Some(d) = a.spec.domainname().as_deref().filter(|h| !h.is_empty()) {
            rustix::system::setdomainname(d.as_bytes())
                .map_err(errno(format!("setting domainname {d}")))?;
        }
    }
    if !a.exec {
        if !a.plan.has(LinuxNamespaceType::Mount) {
            return Err(Error::InvalidConfig("a mount namespace is required".into()));
        }
        setup_root(a, new_user, &state)?;
        crate::timing::mark("init: root set up");
    }
    if p.terminal().unwrap_or(false) {
        let sock = a.console.as_ref().ok_or_else(|| {
            Error::InvalidConfig("process.terminal needs a console socket".into())
        })?;
        let size = p
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        let slave = console::setup(sock, size, !a.exec)?;
        console::attach(&slave)?;
    }
    // The working directory, resolved inside the root with magic links
    // refused: a leaked descriptor named as /proc/self/fd/N must not become
    // the process's cwd (runc CVE-2024-21626).
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening /"))?;
    let cwd =
        paths::open_in_root(&root, p.cwd(), OFlags::PATH | OFlags::DIRECTORY).map_err(|e| {
            Error::Init(format!(
                "cwd {}: {}",
                p.cwd().display(),
                std::io::Error::from(e)
            ))
        })?;
    rustix::process::fchdir(&cwd).map_err(errno(format!("entering cwd {}", p.cwd().display())))?;
    drop(cwd);
    drop(root);
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user::home_of(p.user().uid())));
    }
    let args = p.args().clone().unwrap_or_default();
    let prog = lookup(&args[0], &env)?;
    if let Some(r) = p.rlimits() {
        user::rlimits(r)?;
    }
    if let Some(adj) = p.oom_score_adj().filter(|_| a.exec) {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(crate::error::io_err("setting oom_score_adj"))?;
    }
    let caps = user::masks(p.capabilities().as_ref(), last_cap)?;
    let filter = a.filter;
    let nnp = p.no_new_privileges().unwrap_or(false);
    if !nnp {
        // Without no_new_privs only CAP_SYS_ADMIN may load a filter: load it
        // while we still hold it.
        load_seccomp(a, filter)?;
    }
    user::switch_user(p, &caps, last_cap)?;
    if nnp {
        rustix::thread::set_no_new_privs(true).map_err(errno("setting no_new_privs"))?;
        load_seccomp(a, filter)?;
    }
    berth_sys::process::cloexec_from(3 + a.preserve_fds)
        .map_err(crate::error::io_err("closing inherited descriptors"))?;
    if !a.exec {
        a.channel.send(&Msg::Ready)?;
        match &a.start {
            StartWait::Channel => {
                a.channel.expect(Msg::Start)?;
            }
            StartWait::Fifo(fifo) => {
                let name = format!("self/fd/{}", fifo.as_raw_fd());
                let f = rustix::fs::openat(
                    &host_proc,
                    name.as_str(),
                    OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno("opening the exec fifo"))?;
                rustix::io::write(&f, b"0").map_err(errno("writing the exec fifo"))?;
            }
        }
        if let Some(hs) = a
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.start_container().clone())
        {
            hooks::run_all(&hs, &state, "startContainer")?;
        }
    }
    drop(host_proc);
    let argv: Vec<OsString> = args.iter().map(|s| OsString::from(s.clone())).collect();
    let e = berth_sys::process::execve(prog.as_os_str(), &argv, &env);
    let err = Error::Init(format!("exec {}: {}", args[0], describe(&e)));
    if !a.exec {
        // Started: the runtime reads no more messages, so the container's
        // stderr is where this can be seen (as runc's init does).
        let _ = rustix::io::write(rustix::stdio::stderr(), format!("{err}\n").as_bytes());
    }
    Err(err)
}

fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(2) => "no such file or directory: not found".into(),
        Some(13) => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn load_seccomp(a: &InitArgs<'_>, filter: Option<&crate::seccomp::Filter>) -> Result<()> {
    let Some(f) = filter else { return Ok(()) };
    if let Some(listener) = f.load()? {
        a.channel
            .send_with_fd(&Msg::SeccompListener, Some(listener.as_fd()))?;
    }
    Ok(())
}

/// Mounts, devices, hooks and the pivot.
fn setup_root(a: &InitArgs<'_>, userns: bool, state: &str) -> Result<()> {
    mounts::prepare_root(a.spec, a.rootfs)?;
    let root = rustix::fs::open(
        a.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno(format!("opening rootfs {}", a.rootfs.display())))?;
    let ctx = mounts::MountCtx {
        root: &root,
        bundle: a.bundle,
        cgroupns: a.plan.has(LinuxNamespaceType::Cgroup),
        cgroups: &a.cgroups,
    };
    let ms = a.spec.mounts().clone().unwrap_or_default();
    for m in &ms {
        mounts::mount_one(&ctx, m)?;
    }
    let dev_is_bind = ms.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    if !dev_is_bind {
        let mut devs = devices::defaults();
        devs.extend(
            a.spec
                .linux()
                .as_ref()
                .and_then(|l| l.devices().clone())
                .unwrap_or_default(),
        );
        for d in &devs {
            devices::create(&root, d, userns)?;
        }
        let has_devpts = ms.iter().any(|m| m.destination() == Path::new("/dev/pts"));
        devices::symlinks(&root, has_devpts)?;
    }
    paths::mkdir_all(&root, a.process.cwd(), 0o755)
        .map_err(|e| Error::Init(format!("cwd {}: {e}", a.process.cwd().display())))?;
    #[allow(deprecated)]
    let want_hooks = a.spec.hooks().as_ref().is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if want_hooks {
        a.channel.send(&Msg::RunHooks)?;
        a.channel.expect(Msg::HooksDone)?;
    }
    if let Some(hs) = a
        .spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().clone())
    {
        hooks::run_all(&hs, state, "createContainer")?;
    }
    drop(root);
    mounts::pivot(a.rootfs, a.no_pivot)?;
    mounts::sysctls(a.spec)?;
    if let Some(l) = a.spec.linux() {
        for p in l.readonly_paths().iter().flatten() {
            mounts::readonly_path(p)?;
        }
        for p in l.masked_paths().iter().flatten() {
            mounts::mask_path(p)?;
        }
    }
    if a.spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        mounts::readonly_root()?;
    }
    mounts::finish_root_propagation(a.spec)?;
    Ok(())
}

/// Finds the program as execvp would, inside the container, so a missing
/// command fails `create` rather than `start`.
pub(crate) fn lookup(cmd: &str, env: &[String]) -> Result<PathBuf> {
    if cmd.is_empty() {
        return Err(Error::Init("exec: empty command: not found".into()));
    }
    if cmd.contains('/') {
        return match rustix::fs::stat(cmd) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => Err(Error::Init(
                format!("exec: {cmd:?}: is a directory: permission denied"),
            )),
            // No execute bit for anyone: exec would refuse it after the
            // start, where only the exit code could tell.
            Ok(st) if st.st_mode & 0o111 == 0 => {
                Err(Error::Init(format!("exec: {cmd:?}: permission denied")))
            }
            Ok(_) => Ok(PathBuf::from(cmd)),
            Err(_) => Err(Error::Init(format!(
                "exec: {cmd:?}: no such file or directory: not found"
            ))),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(cmd);
        if let Ok(st) = rustix::fs::stat(&cand) {
            if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() && st.st_mode & 0o111 != 0
            {
                return Ok(cand);
            }
        }
    }
    Err(Error::Init(format!(
        "exec: {cmd:?}: executable file not found in $PATH"
    )))
}

/// Bytes to OsString, for argv built from config strings.
#[allow(dead_code)]
fn os(s: &str) -> OsString {
    OsString::from_vec(s.as_bytes().to_vec())
}
