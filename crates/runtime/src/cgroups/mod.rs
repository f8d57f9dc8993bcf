//! Control groups for containers, on cgroup v1, v2 and the hybrid layout
//! (v1 controllers plus a cgroup2 mount at `/sys/fs/cgroup/unified`).
//!
//! The runtime holds one [`Manager`] per container. [`Manager::new`] finds
//! the hierarchies in `/proc/self/mountinfo` and resolves the container's
//! `cgroupsPath` in each (an absolute path is relative to every hierarchy's
//! root; a relative one, or none, lands under `berth/`). Then, in order:
//! [`Manager::create`] makes the directories (on v2 it enables the parents'
//! controllers), [`Manager::apply`] writes the OCI `LinuxResources` (also
//! what `update` calls on a live container), and [`Manager::add_process`]
//! moves the init in, unless [`Manager::v2_dir_fd`] let the caller clone it
//! straight into the cgroup. While the container runs: [`Manager::freeze`],
//! [`Manager::thaw`], [`Manager::pids`], [`Manager::kill_all`],
//! [`Manager::stats`] (runc's `events --stats` shape),
//! [`Manager::oom_kill_count`]. [`Manager::destroy`] removes the leaves.
//! A `Manager` is plain data (serde): store it in the container's state and
//! reopen it in later commands without probing the host again.
//!
//! On hybrid hosts a controller is used where it is mounted: v1 when it is,
//! the unified hierarchy otherwise (hugetlb on many Debian kernels). Device
//! rules go to `devices.allow`/`devices.deny` on v1 and become an eBPF
//! program on v2. This module never guesses: a limit for a controller that
//! is not there, or one the kernel refuses, is an error naming the file or
//! controller. It knows nothing of systemd: no slices, no D-Bus.

mod devices;
mod files;
mod layout;
mod stats;
mod v1;
mod v2;

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};
use rustix::process::Signal;
use serde::{Deserialize, Serialize};

pub(crate) use layout::{host_mounts, Mount as HostMount};

pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuUsage, Hugetlb, Memory, MemoryEntry, Pids, Stats, Throttling,
};

/// The parent of containers whose `cgroupsPath` is relative or missing.
pub const DEFAULT_PARENT: &str = "berth";

/// What went wrong, naming the file or controller at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no cgroup filesystem is mounted")]
    NoCgroupFs,
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("create {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("{path}: cannot parse {content:?}")]
    Parse { path: PathBuf, content: String },
    #[error("cgroup controller {0} is not available")]
    ControllerMissing(String),
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{path}: not {state} after {waited:?}")]
    Timeout {
        path: PathBuf,
        state: &'static str,
        waited: Duration,
    },
    #[error("signal {pid}: {source}")]
    Signal { pid: i32, source: io::Error },
    #[error("device filter on {path}: {source}")]
    Bpf { path: PathBuf, source: io::Error },
    #[error("{}", join(.0))]
    Multiple(Vec<Error>),
}

fn join(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// The broad class, for exit codes and HTTP statuses.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            e if e.is_not_found() => ErrorKind::NotFound,
            Error::Invalid { .. } => ErrorKind::InvalidArgument,
            Error::ControllerMissing(_) | Error::Unsupported(_) | Error::NoCgroupFs => {
                ErrorKind::Unavailable
            }
            Error::Multiple(errors) => errors.first().map_or(ErrorKind::Internal, Error::kind),
            _ => ErrorKind::Internal,
        }
    }

    /// True when the cgroup (or the file asked for) does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::Remove { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// True when the request itself is wrong (a bad value or path), as
    /// opposed to the host lacking something or failing.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Error::Invalid { .. })
    }

    /// True when the host cannot do what was asked (controller missing,
    /// feature not supported).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::ControllerMissing(_) | Error::Unsupported(_) | Error::NoCgroupFs
        )
    }
}

/// The cgroup layout of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// Only v1 hierarchies.
    V1,
    /// v1 hierarchies plus a cgroup2 mount holding the controllers v1 does
    /// not use.
    Hybrid,
    /// One cgroup2 hierarchy.
    V2,
}

/// What [`favor_dynmods`] found, or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynMods {
    /// Nothing to do: this hierarchy already shows the setting asked for
    /// (the kernel's setting is one for all hierarchies).
    Already(PathBuf),
    /// This cgroup2 mount was reconfigured.
    Set(PathBuf),
}

/// Makes moving a process into a cgroup cheap, for the whole kernel: the
/// cgroup2 mount option `favordynmods`. Without it every move (writing
/// `cgroup.procs`) waits for an RCU grace period, several milliseconds on
/// a quiet host, and a container's init is moved on every start wherever
/// `CLONE_INTO_CGROUP` cannot place it (v1 and hybrid hosts). The price,
/// in the kernel's words, is slightly dearer forks and exits. The cgroup2
/// mount is reconfigured with its present options plus this one (a
/// reconfigure resets the options it is not given); v1 hierarchies cannot
/// take it after boot, so a v1-only host needs `cgroup_favordynmods=true`
/// on the kernel's command line.
///
/// With `on` false it takes the option off again (tests restore the host
/// so), which only a cgroup2 mount allows.
pub fn favor_dynmods(on: bool) -> Result<DynMods, Error> {
    let mountinfo = files::read_path(Path::new("/proc/self/mountinfo"))?;
    let mounts = layout::parse_mountinfo(&mountinfo);
    match layout::dynmods_plan(&mounts, on)? {
        layout::DynModsPlan::Already(point) => Ok(DynMods::Already(point)),
        layout::DynModsPlan::Reconfigure { point, options } => {
            use rustix::mount::{fsconfig_reconfigure, fsconfig_set_flag, fspick, FsPickFlags};
            let failed = |source: rustix::io::Errno| Error::Write {
                path: point.clone(),
                value: "favordynmods".into(),
                source: source.into(),
            };
            let fs = fspick(
                rustix::fs::CWD,
                &point,
                FsPickFlags::FSPICK_CLOEXEC | FsPickFlags::FSPICK_NO_AUTOMOUNT,
            )
            .map_err(failed)?;
            for o in &options {
                fsconfig_set_flag(&fs, o.as_str()).map_err(failed)?;
            }
            fsconfig_reconfigure(&fs).map_err(failed)?;
            Ok(DynMods::Set(point))
        }
    }
}

/// One mounted hierarchy and the container's directory in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// v1 controllers bound to it (`name=systemd` for a named one); empty
    /// for cgroup2, whose controllers are listed in `cgroup.controllers`.
    pub controllers: Vec<String>,
    /// Where it is mounted.
    pub mount: PathBuf,
    /// The container's cgroup directory, under `mount`.
    pub dir: PathBuf,
}

/// One container's cgroup in every hierarchy of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    version: Version,
    /// The cgroup path relative to each hierarchy root, e.g. `berth/<id>`.
    path: PathBuf,
    v1: Vec<Hierarchy>,
    unified: Option<Hierarchy>,
}

/// Where a controller's files are.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

impl Manager {
    /// The manager for `cgroups_path` (from `linux.cgroupsPath`) on this
    /// host; `id` names the cgroup when the path is missing. Nothing is
    /// created yet.
    pub fn new(cgroups_path: Option<&Path>, id: &str) -> Result<Manager, Error> {
        Manager::from_mounts(cgroups_path, id, &layout::host_mounts(None)?)
    }

    /// [`Manager::new`] on the host's cgroup mounts as [`host_mounts`]
    /// gave them, for a caller that needs them for more than this.
    pub(crate) fn from_mounts(
        cgroups_path: Option<&Path>,
        id: &str,
        mounts: &[HostMount],
    ) -> Result<Manager, Error> {
        let rel = layout::relative_path(cgroups_path, id)?;
        let (version, v1, unified) = layout::from_mounts(mounts, &rel)?;
        Ok(Manager {
            version,
            path: rel,
            v1,
            unified,
        })
    }

    /// The manager for a cgroup tree mounted under `root`, for tests and
    /// unusual hosts. For [`Version::V2`] `root` is the cgroup2 mount; for
    /// v1 and hybrid it holds one directory per hierarchy (`memory`,
    /// `cpu,cpuacct`, `systemd`, ...; symlinks are skipped) and, for hybrid,
    /// `unified`.
    pub fn with_root(
        root: &Path,
        version: Version,
        cgroups_path: Option<&Path>,
        id: &str,
    ) -> Result<Manager, Error> {
        let rel = layout::relative_path(cgroups_path, id)?;
        let (v1, unified) = layout::from_root(root, version, &rel)?;
        Ok(Manager {
            version,
            path: rel,
            v1,
            unified,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The cgroup path relative to each hierarchy root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container's directory in the cgroup2 hierarchy, on pure v2 hosts
    /// only: there a process cloned into it (`CLONE_INTO_CGROUP`) needs no
    /// [`Manager::add_process`].
    pub fn v2_path(&self) -> Option<&Path> {
        match (self.version, &self.unified) {
            (Version::V2, Some(u)) => Some(&u.dir),
            _ => None,
        }
    }

    /// The directory of [`Manager::v2_path`] opened for `clone3`'s
    /// `CLONE_INTO_CGROUP`; call after [`Manager::create`].
    pub fn v2_dir_fd(&self) -> Result<Option<OwnedFd>, Error> {
        let Some(dir) = self.v2_path() else {
            return Ok(None);
        };
        use rustix::fs::{Mode, OFlags};
        rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(Some)
        .map_err(|e| Error::Read {
            path: dir.to_path_buf(),
            source: e.into(),
        })
    }

    /// The cgroup in every hierarchy: v1 ones first, then cgroup2 (for
    /// bind mounts of the container's own cgroups, for instance).
    pub fn hierarchies(&self) -> impl Iterator<Item = &Hierarchy> {
        self.v1.iter().chain(self.unified.as_ref())
    }

    /// Makes the cgroup in every hierarchy (existing directories are fine).
    /// On v1 a new cpuset directory gets its parent's cpus and mems, without
    /// which no task could join it; on cgroup2 every ancestor enables the
    /// controllers it has for its children.
    pub fn create(&self) -> Result<(), Error> {
        for h in &self.v1 {
            v1::create(h)?;
        }
        if let Some(u) = &self.unified {
            v2::create(u)?;
        }
        Ok(())
    }

    /// Where `controller` (v1 name; `v2_name` on cgroup2) is handled: v1 if
    /// it is mounted there, else the unified hierarchy if this cgroup has it.
    fn target(&self, controller: &str, v2_name: &str) -> Result<Target<'_>, Error> {
        if self.version != Version::V2 {
            if let Some(h) = self
                .v1
                .iter()
                .find(|h| h.controllers.iter().any(|c| c == controller))
            {
                return Ok(Target::V1(&h.dir));
            }
        }
        if let Some(u) = &self.unified {
            if v2::has_controller(&u.dir, v2_name)? {
                return Ok(Target::V2(&u.dir));
            }
        }
        Err(Error::ControllerMissing(controller.to_string()))
    }

    /// Writes the limits of `r`. Fields left out are left alone, so this is
    /// also `update` on a running container.
    pub fn apply(&self, r: &LinuxResources) -> Result<(), Error> {
        // Refuse what cannot work before writing anything.
        if let Some(unified) = r.unified() {
            if let (Some(key), None) = (unified.keys().min(), &self.unified) {
                return Err(Error::Unsupported(format!(
                    "unified key {key} on cgroup v1"
                )));
            }
        }
        if let Some(cpu) = r.cpu() {
            self.apply_cpuset(cpu)?;
        }
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(cpu) = r.cpu() {
            self.apply_cpu(cpu)?;
        }
        if let Some(p) = r.pids() {
            match self.target("pids", "pids")? {
                Target::V1(d) | Target::V2(d) => v1::pids(d, p.limit())?,
            }
        }
        if let Some(b) = r.block_io() {
            if v1::blkio_is_set(b) {
                match self.target("blkio", "io")? {
                    Target::V1(d) => v1::blkio(d, b)?,
                    Target::V2(d) => v2::io(d, b)?,
                }
            }
        }
        if let Some(limits) = r.hugepage_limits().as_deref().filter(|l| !l.is_empty()) {
            match self.target("hugetlb", "hugetlb")? {
                Target::V1(d) => v1::hugetlb(d, limits)?,
                Target::V2(d) => v2::hugetlb(d, limits)?,
            }
        }
        if let Some(rules) = r.devices() {
            self.apply_devices(rules)?;
        }
        if let Some(net) = r.network() {
            v1::network(net, |c| self.v1_target(c))?;
        }
        if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
            match self.target("rdma", "rdma")? {
                Target::V1(d) | Target::V2(d) => v1::rdma(d, rdma)?,
            }
        }
        if let (Some(unified), Some(u)) = (r.unified(), &self.unified) {
            v2::unified(&u.dir, unified)?;
        }
        Ok(())
    }

    /// A v1-only controller's directory.
    fn v1_target(&self, controller: &str) -> Result<&Path, Error> {
        match self.target(controller, controller)? {
            Target::V1(d) => Ok(d),
            Target::V2(_) => Err(Error::Unsupported(format!("{controller} on cgroup v2"))),
        }
    }

    fn apply_cpuset(&self, cpu: &LinuxCpu) -> Result<(), Error> {
        let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_none() && mems.is_none() {
            return Ok(());
        }
        let (Target::V1(d) | Target::V2(d)) = self.target("cpuset", "cpuset")?;
        if let Some(cpus) = cpus {
            files::write(d, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = mems {
            files::write(d, "cpuset.mems", mems)?;
        }
        Ok(())
    }

    fn apply_cpu(&self, cpu: &LinuxCpu) -> Result<(), Error> {
        let nonzero = |v: Option<i64>| v.is_some_and(|v| v != 0);
        let set = cpu.shares().is_some_and(|s| s != 0)
            || nonzero(cpu.quota())
            || cpu.period().is_some_and(|p| p != 0)
            || cpu.burst().is_some()
            || cpu.idle().is_some()
            || nonzero(cpu.realtime_runtime())
            || cpu.realtime_period().is_some_and(|p| p != 0);
        if !set {
            return Ok(());
        }
        match self.target("cpu", "cpu")? {
            Target::V1(d) => v1::cpu(d, cpu),
            Target::V2(d) => v2::cpu(d, cpu),
        }
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<(), Error> {
        let set = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.kernel().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true);
        if !set {
            return Ok(());
        }
        match self.target("memory", "memory")? {
            Target::V1(d) => v1::memory(d, m),
            Target::V2(d) => v2::memory(d, m),
        }
    }

    fn apply_devices(&self, rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<(), Error> {
        if self.version != Version::V2 {
            if let Some(h) = self
                .v1
                .iter()
                .find(|h| h.controllers.iter().any(|c| c == "devices"))
            {
                return v1::devices(&h.dir, rules);
            }
        }
        match &self.unified {
            Some(u) => v2::devices(&u.dir, rules),
            None => Err(Error::ControllerMissing("devices".into())),
        }
    }

    /// Moves process `pid` (with its threads) into the cgroup in every
    /// hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), Error> {
        if pid <= 0 {
            return Err(Error::invalid("pid", pid.to_string()));
        }
        for h in self.hierarchies() {
            files::write(&h.dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// The freezer: v1 `freezer.state`, else cgroup2's `cgroup.freeze`.
    fn freezer(&self) -> Result<Target<'_>, Error> {
        if self.version != Version::V2 {
            if let Some(h) = self
                .v1
                .iter()
                .find(|h| h.controllers.iter().any(|c| c == "freezer"))
            {
                return Ok(Target::V1(&h.dir));
            }
        }
        match &self.unified {
            Some(u) => Ok(Target::V2(&u.dir)),
            None => Err(Error::ControllerMissing("freezer".into())),
        }
    }

    /// Freezes every process of the cgroup and returns once the kernel says
    /// they all are; on a timeout it thaws them again and fails.
    pub fn freeze(&self) -> Result<(), Error> {
        match self.freezer()? {
            Target::V1(d) => v1::freeze(d),
            Target::V2(d) => v2::freeze(d),
        }
    }

    pub fn thaw(&self) -> Result<(), Error> {
        match self.freezer()? {
            Target::V1(d) => files::write(d, "freezer.state", "THAWED"),
            Target::V2(d) => files::write(d, "cgroup.freeze", "0"),
        }
    }

    /// True once the cgroup is fully frozen (not while freezing).
    pub fn is_frozen(&self) -> Result<bool, Error> {
        match self.freezer()? {
            Target::V1(d) => Ok(files::read(d, "freezer.state")?.trim() == "FROZEN"),
            Target::V2(d) => Ok(files::flat_keyed(d, "cgroup.events")?.get("frozen") == Some(&1)),
        }
    }

    /// Every process in the cgroup and its descendants, sorted; empty when
    /// the cgroup does not exist.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        let dir = match self.version {
            Version::V2 => self.unified.as_ref().map(|u| u.dir.as_path()),
            _ => ["pids", "freezer", "memory", "cpu", "devices"]
                .iter()
                .find_map(|c| {
                    self.v1
                        .iter()
                        .find(|h| h.controllers.iter().any(|x| x == c))
                })
                .or(self.v1.first())
                .or(self.unified.as_ref())
                .map(|h| h.dir.as_path()),
        };
        let Some(dir) = dir else {
            return Ok(Vec::new());
        };
        let mut pids = Vec::new();
        files::collect_procs(dir, &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Sends `sig` to every process of the cgroup. SIGKILL on cgroup2 uses
    /// `cgroup.kill`, which no fork can race; otherwise the cgroup is frozen
    /// (when a freezer exists) while the signals go out, for the same reason.
    pub fn kill_all(&self, sig: Signal) -> Result<(), Error> {
        if sig == Signal::KILL {
            if let Some(u) = &self.unified {
                if self.version == Version::V2 && u.dir.join("cgroup.kill").exists() {
                    return files::write(&u.dir, "cgroup.kill", "1");
                }
            }
        }
        let frozen = match self.freeze() {
            Ok(()) => true,
            Err(Error::ControllerMissing(_)) => false,
            Err(e) => return Err(e),
        };
        let mut errors = Vec::new();
        match self.pids() {
            Ok(pids) => {
                for pid in pids {
                    let Some(p) = rustix::process::Pid::from_raw(pid) else {
                        continue;
                    };
                    match rustix::process::kill_process(p, sig) {
                        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                        Err(e) => errors.push(Error::Signal {
                            pid,
                            source: e.into(),
                        }),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        if frozen {
            if let Err(e) = self.thaw() {
                errors.push(e);
            }
        }
        into_result(errors)
    }

    /// Usage counters in the shape of runc's `events --stats`. Controllers
    /// that are not there leave their section empty.
    pub fn stats(&self) -> Result<Stats, Error> {
        let lenient = |c: &str, v2: &str| match self.target(c, v2) {
            Ok(t) => Ok(Some(t)),
            Err(Error::ControllerMissing(_)) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        };
        let mut s = Stats::default();
        match self.version {
            Version::V2 => {
                if let Some(u) = &self.unified {
                    stats::v2_cpu(&u.dir, &mut s.cpu)?;
                }
            }
            _ => {
                if let Some(Target::V1(d)) = lenient("cpuacct", "cpu")? {
                    stats::v1_cpuacct(d, &mut s.cpu)?;
                }
                if let Some(Target::V1(d)) = lenient("cpu", "cpu")? {
                    stats::v1_throttling(d, &mut s.cpu.throttling)?;
                }
            }
        }
        match lenient("memory", "memory")? {
            Some(Target::V1(d)) => stats::v1_memory(d, &mut s.memory)?,
            Some(Target::V2(d)) => stats::v2_memory(d, &mut s.memory)?,
            None => {}
        }
        if let Some(Target::V1(d) | Target::V2(d)) = lenient("pids", "pids")? {
            stats::pids(d, &mut s.pids)?;
        }
        match lenient("blkio", "io")? {
            Some(Target::V1(d)) => stats::v1_blkio(d, &mut s.blkio)?,
            Some(Target::V2(d)) => stats::v2_io(d, &mut s.blkio)?,
            None => {}
        }
        match lenient("hugetlb", "hugetlb")? {
            Some(Target::V1(d)) => stats::v1_hugetlb(d, &mut s.hugetlb)?,
            Some(Target::V2(d)) => stats::v2_hugetlb(d, &mut s.hugetlb)?,
            None => {}
        }
        Ok(s)
    }

    /// How many processes of this cgroup the OOM killer has killed.
    pub fn oom_kill_count(&self) -> Result<u64, Error> {
        let counters = match self.target("memory", "memory")? {
            Target::V1(d) => files::flat_keyed(d, "memory.oom_control")?,
            Target::V2(d) => files::flat_keyed(d, "memory.events")?,
        };
        Ok(counters.get("oom_kill").copied().unwrap_or(0))
    }

    /// Removes the cgroup (and any child cgroups made inside it) from every
    /// hierarchy. A missing directory is fine; a busy one is retried
    /// briefly, since the kernel empties a cgroup a little after its last
    /// process exits. Keeps going past failures and reports them all.
    pub fn destroy(&self) -> Result<(), Error> {
        let errors = self
            .hierarchies()
            .filter_map(|h| files::remove_tree(&h.dir).err())
            .collect();
        into_result(errors)
    }
}

fn into_result(mut errors: Vec<Error>) -> Result<(), Error> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Multiple(errors)),
    }
}

/// Sleeps for the `attempt`-th poll of a state the kernel reaches soon:
/// short at first, at most 10 ms.
fn backoff(attempt: u32) {
    let micros = 100u64 << attempt.min(7);
    sleep(Duration::from_micros(micros.min(10_000)));
}

#[cfg(test)]
mod tests;
