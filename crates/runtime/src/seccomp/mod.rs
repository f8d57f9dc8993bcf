//! seccomp: the OCI `linux.seccomp` section becomes a BPF program that the
//! container's init installs just before exec.
//!
//! [`compile`] is pure: it checks the section, builds the filter with
//! libseccomp and exports its BPF into a [`Filter`], which is plain data
//! (`Send`, cacheable with [`Filter::bpf`] and [`Filter::from_bpf`]). So
//! the runtime can compile before it forks and the child only makes one
//! seccomp(2) call. [`Filter::load`] installs the program through
//! `berth_sys::seccomp` rather than `seccomp_load`, because libseccomp keeps
//! the notify listener in its global state and 2.5 lacks newer flags.
//!
//! Rules follow runc: an unknown syscall name is skipped (it may not exist
//! on this arch or libseccomp version), a rule whose action equals the
//! default action is skipped (libseccomp refuses it), and the args of one
//! rule are ANDed, except that libseccomp cannot AND two conditions on the
//! same argument index: when an index repeats, every condition becomes a
//! rule of its own (ORed), as runc does. Unknown action, arch, operator and
//! flag names are refused when the spec is parsed (oci-spec's enums); an
//! arch the installed libseccomp does not know is refused here. The filter's
//! no_new_privs attribute is off: the runtime sets NNP itself, per
//! `process.noNewPrivileges`.
//!
//! With SCMP_ACT_NOTIFY, [`Filter::load`] returns the listener fd; the
//! runtime hands it to its own (unfiltered) side and [`send_listener`]
//! passes it to the agent at `listenerPath`, so that no syscall the
//! container's init still makes after the load waits on a notification.

mod cache;
pub use cache::compile_cached;
mod default_profile;
#[cfg(test)]
mod tests;

pub use default_profile::{docker_default, DOCKER_DEFAULT_CAPS};

use std::collections::HashMap;
use std::io::{self, IoSlice, Read, Seek, Write};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_sys::seccomp::FilterFlags;
use libseccomp::{
    error::SeccompError, ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext,
    ScmpSyscall, ScmpVersion,
};
use oci_spec::runtime::{
    Arch, ContainerProcessState, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, State, SECCOMP_FD_NAME,
};

use crate::error::ErrorKind;

/// seccomp's own argument count: syscalls take at most six.
const MAX_ARGS: usize = 6;
/// The kernel clamps a SECCOMP_RET_ERRNO value to MAX_ERRNO; refuse more
/// instead of returning an errno the config did not ask for.
const MAX_ERRNO: u32 = 4095;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} for {syscall}: errnoRet {value} is out of range (max {max})")]
    ReturnOutOfRange {
        syscall: String,
        action: LinuxSeccompAction,
        value: u32,
        max: u32,
    },
    #[error("SCMP_ACT_NOTIFY cannot be the default action")]
    NotifyDefault,
    #[error("SCMP_ACT_NOTIFY for {syscall} needs linux.seccomp.listenerPath")]
    NotifyWithoutListener { syscall: String },
    #[error("SCMP_ACT_NOTIFY for {syscall} is not supported here: {reason}")]
    NotifyUnsupported { syscall: String, reason: String },
    #[error("architecture {arch} is not supported by libseccomp: {source}")]
    Arch { arch: Arch, source: SeccompError },
    #[error("{syscall}: argument index {index} is out of range (max {})", MAX_ARGS - 1)]
    ArgIndex { syscall: String, index: usize },
    #[error("{action} for {syscall}: {source}")]
    Rule {
        syscall: String,
        action: LinuxSeccompAction,
        source: SeccompError,
    },
    #[error("seccomp filter with default action {action}: {source}")]
    Init {
        action: LinuxSeccompAction,
        source: SeccompError,
    },
    #[error("seccomp filter attribute {attr}: {source}")]
    Attr {
        attr: &'static str,
        source: SeccompError,
    },
    #[error("exporting seccomp bpf: {0}")]
    Export(io::Error),
    #[error("loading seccomp filter: {0}")]
    Load(io::Error),
    #[error("container process state: {0}")]
    State(serde_json::Error),
    #[error("sending seccomp listener to {path}: {source}")]
    Send { path: PathBuf, source: io::Error },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ReturnOutOfRange { .. }
            | Error::NotifyDefault
            | Error::NotifyWithoutListener { .. }
            | Error::Arch { .. }
            | Error::ArgIndex { .. }
            | Error::State(_) => ErrorKind::InvalidArgument,
            Error::NotifyUnsupported { .. } => ErrorKind::Unavailable,
            Error::Rule { .. }
            | Error::Init { .. }
            | Error::Attr { .. }
            | Error::Export(_)
            | Error::Load(_)
            | Error::Send { .. } => ErrorKind::Internal,
        }
    }
}

/// A compiled seccomp filter: the BPF program and the seccomp(2) flags to
/// load it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    bpf: Vec<u8>,
    flags: FilterFlags,
}

impl Filter {
    /// Installs the filter on the calling thread (on every thread of the
    /// process with SECCOMP_FILTER_FLAG_TSYNC). The caller must have set
    /// no_new_privs or hold CAP_SYS_ADMIN. Returns the user-notification
    /// listener when a rule uses SCMP_ACT_NOTIFY.
    pub fn load(&self) -> Result<Option<OwnedFd>, Error> {
        berth_sys::seccomp::set_mode_filter(&self.bpf, self.flags).map_err(Error::Load)
    }

    /// The BPF program (`struct sock_filter` records, native byte order).
    pub fn bpf(&self) -> &[u8] {
        &self.bpf
    }

    /// Whether [`Filter::load`] returns a notify listener.
    pub fn has_listener(&self) -> bool {
        self.flags.new_listener
    }

    /// The seccomp(2) flags the filter loads with.
    pub fn flags(&self) -> FilterFlags {
        self.flags
    }

    /// A filter from a program cached by [`Filter::bpf`] and its flags.
    pub fn from_bpf(bpf: Vec<u8>, flags: FilterFlags) -> Self {
        Self { bpf, flags }
    }
}

/// Compiles the OCI `linux.seccomp` section into a loadable filter. Pure:
/// no process state changes (one short-lived memfd carries the export).
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter, Error> {
    let default_oci = spec.default_action();
    if default_oci == LinuxSeccompAction::ScmpActNotify {
        // Every syscall of the init (and of the runtime's last steps) would
        // wait for an agent that has not got the listener yet.
        return Err(Error::NotifyDefault);
    }
    let default = action(default_oci, spec.default_errno_ret(), "the default action")?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|source| Error::Init {
        action: default_oci,
        source,
    })?;
    // The runtime decides no_new_privs from process.noNewPrivileges.
    ctx.set_ctl_nnp(false).map_err(|source| Error::Attr {
        attr: "nnp",
        source,
    })?;
    // A binary tree of syscall numbers instead of a linear scan: Docker's
    // profile has ~350 names and every syscall of the container walks it.
    ctx.set_ctl_optimize(2).map_err(|source| Error::Attr {
        attr: "optimize",
        source,
    })?;

    for &arch in spec.architectures().iter().flatten() {
        let scmp = scmp_arch(arch);
        let present = ctx
            .is_arch_present(scmp)
            .map_err(|source| Error::Arch { arch, source })?;
        if !present {
            ctx.add_arch(scmp)
                .map_err(|source| Error::Arch { arch, source })?;
        }
    }

    let mut notify = false;
    for call in spec.syscalls().iter().flatten() {
        let first = call.names().first().map_or("(no name)", String::as_str);
        let act_oci = call.action();
        let act = action(act_oci, call.errno_ret(), first)?;
        if act == default {
            tracing::debug!(syscalls = ?call.names(), "seccomp rule equals the default action, skipped");
            continue;
        }
        let groups = condition_groups(call.args().as_deref().unwrap_or_default(), first)?;
        for name in call.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                tracing::debug!(syscall = %name, "unknown to libseccomp, skipped");
                continue;
            };
            if act == ScmpAction::Notify {
                if spec.listener_path().is_none() {
                    return Err(Error::NotifyWithoutListener {
                        syscall: name.clone(),
                    });
                }
                notify_supported().map_err(|reason| Error::NotifyUnsupported {
                    syscall: name.clone(),
                    reason,
                })?;
                notify = true;
            }
            let rule_err = |source| Error::Rule {
                syscall: name.clone(),
                action: act_oci,
                source,
            };
            if groups.is_empty() {
                ctx.add_rule(act, nr).map_err(rule_err)?;
            } else {
                for conds in &groups {
                    ctx.add_rule_conditional(act, nr, conds).map_err(rule_err)?;
                }
            }
        }
    }

    let mut flags = FilterFlags {
        new_listener: notify,
        ..FilterFlags::default()
    };
    for flag in spec.flags().iter().flatten() {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flags.tsync = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags.log = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flags.spec_allow = true,
            // Loaded by our own seccomp(2) call, so libseccomp 2.5's lack of
            // this flag does not matter; kernels before 5.19 refuse it at load.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                flags.wait_killable_recv = true
            }
        }
    }

    Ok(Filter {
        bpf: export_bpf(&ctx)?,
        flags,
    })
}

/// The libseccomp action for an OCI action; `errno_ret` is the ERRNO value
/// or the TRACE message, EPERM when absent (as runc), and ignored by the
/// other actions.
fn action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    syscall: &str,
) -> Result<ScmpAction, Error> {
    let ret = |max: u32| {
        let value = errno_ret.unwrap_or(EPERM);
        if value > max {
            return Err(Error::ReturnOutOfRange {
                syscall: syscall.to_owned(),
                action,
                value,
                max,
            });
        }
        Ok(value)
    };
    Ok(match action {
        // SCMP_ACT_KILL predates KILL_PROCESS and has always meant the thread.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        // Both casts are lossless: `ret` checked the range.
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(ret(MAX_ERRNO)? as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret(u32::from(u16::MAX))? as u16),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

const EPERM: u32 = 1;

/// User notification needs libseccomp 2.5 and its API level 6, which it
/// only reports when the kernel has SECCOMP_FILTER_FLAG_NEW_LISTENER.
fn notify_supported() -> Result<(), String> {
    match libseccomp::check_api(6, ScmpVersion::from((2, 5, 0))) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "needs libseccomp >= 2.5 with API level 6 (API level {})",
            libseccomp::get_api()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The condition sets of one OCI rule: one set (all ANDed) when every arg
/// has its own index, else one set per arg (ORed), as runc does because
/// libseccomp cannot AND two conditions on one argument.
fn condition_groups(
    args: &[LinuxSeccompArg],
    syscall: &str,
) -> Result<Vec<Vec<ScmpArgCompare>>, Error> {
    let mut per_index: HashMap<usize, usize> = HashMap::new();
    let mut conds = Vec::with_capacity(args.len());
    for arg in args {
        let index = arg.index();
        let arg_no = u32::try_from(index)
            .ok()
            .filter(|_| index < MAX_ARGS)
            .ok_or_else(|| Error::ArgIndex {
                syscall: syscall.to_owned(),
                index,
            })?;
        *per_index.entry(index).or_default() += 1;
        let op = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
            LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
            LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
            LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
            LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
            LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
            // OCI: `value` is the mask, `valueTwo` what the masked arg must equal.
            LinuxSeccompOperator::ScmpCmpMaskedEq => {
                conds.push(ScmpArgCompare::new(
                    arg_no,
                    ScmpCompareOp::MaskedEqual(arg.value()),
                    arg.value_two().unwrap_or(0),
                ));
                continue;
            }
        };
        conds.push(ScmpArgCompare::new(arg_no, op, arg.value()));
    }
    if conds.is_empty() {
        return Ok(Vec::new());
    }
    if per_index.values().any(|&n| n > 1) {
        return Ok(conds.into_iter().map(|c| vec![c]).collect());
    }
    Ok(vec![conds])
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// The filter's BPF, through a memfd: libseccomp 2.5 has no
/// `seccomp_export_bpf_mem`, only an export to a descriptor.
fn export_bpf(ctx: &ScmpFilterContext) -> Result<Vec<u8>, Error> {
    let fd = rustix::fs::memfd_create("berth-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| Error::Export(e.into()))?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file)
        .map_err(|e| Error::Export(io::Error::other(e)))?;
    let mut bpf = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bpf))
        .map_err(Error::Export)?;
    Ok(bpf)
}

/// The OCI "container process state" that goes with a seccomp listener:
/// `fds` names the one descriptor `seccompFd`, `metadata` is the config's
/// `listenerMetadata`, `pid` the container process as the runtime sees it.
/// Fails only on what JSON cannot hold (a bundle path that is not UTF-8).
pub fn process_state_json(
    state: &State,
    pid: i32,
    metadata: Option<&str>,
) -> Result<String, Error> {
    let mut cps = ContainerProcessState::default();
    cps.set_version(state.version().clone())
        .set_fds(vec![SECCOMP_FD_NAME.to_owned()])
        .set_pid(pid)
        .set_metadata(metadata.map(str::to_owned))
        .set_state(state.clone());
    serde_json::to_string(&cps).map_err(Error::State)
}

/// Sends the notify listener `fd` to the seccomp agent at `listener_path`
/// over a unix stream socket with SCM_RIGHTS, with `state_json` (see
/// [`process_state_json`]) as the message body.
pub fn send_listener(
    listener_path: &Path,
    fd: BorrowedFd<'_>,
    state_json: &[u8],
) -> Result<(), Error> {
    let send_err = |source| Error::Send {
        path: listener_path.to_owned(),
        source,
    };
    if state_json.is_empty() {
        // A stream socket drops ancillary data sent with no bytes.
        return Err(send_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty state",
        )));
    }
    let mut stream = UnixStream::connect(listener_path).map_err(send_err)?;
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    if !control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)) {
        return Err(send_err(io::Error::other("no room for SCM_RIGHTS")));
    }
    let sent = rustix::net::sendmsg(
        &stream,
        &[IoSlice::new(state_json)],
        &mut control,
        rustix::net::SendFlags::NOSIGNAL,
    )
    .map_err(|e| send_err(e.into()))?;
    // The descriptor went with the first bytes; a large state may need more.
    stream.write_all(&state_json[sent..]).map_err(send_err)?;
    Ok(())
}
