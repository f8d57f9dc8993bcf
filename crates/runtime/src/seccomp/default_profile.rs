//! Docker's default seccomp profile (moby `profiles/seccomp/default.json`)
//! as an OCI `linux.seccomp` section, for the engine's `berth run`.
//!
//! The syscall lists are moby's data; the selection follows moby's rules:
//! an entry with `includes.caps` needs all of those capabilities, one with
//! `excludes.caps` is dropped when any of them is present, and arch
//! conditions compare with the host's Go arch name (`amd64`, `arm64`).
//! moby's `minKernel: 4.8` entry is always kept: berth needs far newer
//! kernels than that.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};

/// What one moby entry does.
#[derive(Clone, Copy)]
enum Act {
    Allow,
    Errno(u32),
}

/// One moby entry: names, action, args `(index, value, op)` and the
/// includes/excludes conditions.
struct Entry {
    names: &'static [&'static str],
    act: Act,
    args: &'static [(usize, u64, LinuxSeccompOperator)],
    caps: &'static [&'static str],
    not_caps: &'static [&'static str],
    arches: &'static [&'static str],
    not_arches: &'static [&'static str],
}

const ENTRY: Entry = Entry {
    names: &[],
    act: Act::Allow,
    args: &[],
    caps: &[],
    not_caps: &[],
    arches: &[],
    not_arches: &[],
};

/// CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP:
/// clone is allowed without CAP_SYS_ADMIN only when none of these is set.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;
/// personality(2) values moby allows: PER_LINUX, PER_LINUX32,
/// UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

const AF_VSOCK: u64 = 40;
const ENOSYS: u32 = 38;

/// The unconditional allow list.
#[rustfmt::skip]
const ALLOW: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir",
    "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
    "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr",
    "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64",
    "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
    "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid",
    "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit",
    "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area",
    "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit",
    "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link",
    "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr",
    "lstat", "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir",
    "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep",
    "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
    "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
    "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat",
    "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
    "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
    "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
    "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
    "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
    "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice",
    "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname",
    "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice",
    "wait4", "waitid", "waitpid", "write", "writev",
];

use LinuxSeccompOperator::{ScmpCmpEq as EQ, ScmpCmpMaskedEq as MASKED_EQ, ScmpCmpNe as NE};

/// moby's entries after the allow list, in its order.
const ENTRIES: &[Entry] = &[
    // moby: minKernel 4.8 (ptrace could bypass seccomp before it).
    Entry {
        names: &["process_vm_readv", "process_vm_writev", "ptrace"],
        ..ENTRY
    },
    // Any socket family but AF_VSOCK, which is not namespaced.
    Entry {
        names: &["socket"],
        args: &[(0, AF_VSOCK, NE)],
        ..ENTRY
    },
    Entry {
        names: &["personality"],
        args: &[(0, PERSONALITIES[0], EQ)],
        ..ENTRY
    },
    Entry {
        names: &["personality"],
        args: &[(0, PERSONALITIES[1], EQ)],
        ..ENTRY
    },
    Entry {
        names: &["personality"],
        args: &[(0, PERSONALITIES[2], EQ)],
        ..ENTRY
    },
    Entry {
        names: &["personality"],
        args: &[(0, PERSONALITIES[3], EQ)],
        ..ENTRY
    },
    Entry {
        names: &["personality"],
        args: &[(0, PERSONALITIES[4], EQ)],
        ..ENTRY
    },
    Entry {
        names: &["sync_file_range2", "swapcontext"],
        arches: &["ppc64le"],
        ..ENTRY
    },
    Entry {
        names: &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        arches: &["arm", "arm64"],
        ..ENTRY
    },
    Entry {
        names: &["arch_prctl"],
        arches: &["amd64", "x32"],
        ..ENTRY
    },
    Entry {
        names: &["modify_ldt"],
        arches: &["amd64", "x32", "x86"],
        ..ENTRY
    },
    Entry {
        names: &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        arches: &["s390", "s390x"],
        ..ENTRY
    },
    Entry {
        names: &["riscv_flush_icache"],
        arches: &["riscv64"],
        ..ENTRY
    },
    Entry {
        names: &["open_by_handle_at"],
        caps: &["CAP_DAC_READ_SEARCH"],
        ..ENTRY
    },
    Entry {
        names: &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        caps: &["CAP_SYS_ADMIN"],
        ..ENTRY
    },
    // Without CAP_SYS_ADMIN: threads and forks, but no new namespaces.
    Entry {
        names: &["clone"],
        args: &[(0, CLONE_NS_FLAGS, MASKED_EQ)],
        not_caps: &["CAP_SYS_ADMIN"],
        not_arches: &["s390", "s390x"],
        ..ENTRY
    },
    // s390 passes clone's flags as the second argument.
    Entry {
        names: &["clone"],
        args: &[(1, CLONE_NS_FLAGS, MASKED_EQ)],
        arches: &["s390", "s390x"],
        not_caps: &["CAP_SYS_ADMIN"],
        ..ENTRY
    },
    // clone3's flags are in memory seccomp cannot read: ENOSYS makes libc
    // fall back to clone, whose flags the rule above checks.
    Entry {
        names: &["clone3"],
        act: Act::Errno(ENOSYS),
        not_caps: &["CAP_SYS_ADMIN"],
        ..ENTRY
    },
    Entry {
        names: &["reboot"],
        caps: &["CAP_SYS_BOOT"],
        ..ENTRY
    },
    Entry {
        names: &["chroot"],
        caps: &["CAP_SYS_CHROOT"],
        ..ENTRY
    },
    Entry {
        names: &["delete_module", "init_module", "finit_module"],
        caps: &["CAP_SYS_MODULE"],
        ..ENTRY
    },
    Entry {
        names: &["acct"],
        caps: &["CAP_SYS_PACCT"],
        ..ENTRY
    },
    Entry {
        names: &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        caps: &["CAP_SYS_PTRACE"],
        ..ENTRY
    },
    Entry {
        names: &["iopl", "ioperm"],
        caps: &["CAP_SYS_RAWIO"],
        ..ENTRY
    },
    Entry {
        names: &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        caps: &["CAP_SYS_TIME"],
        ..ENTRY
    },
    Entry {
        names: &["vhangup"],
        caps: &["CAP_SYS_TTY_CONFIG"],
        ..ENTRY
    },
    Entry {
        names: &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        caps: &["CAP_SYS_NICE"],
        ..ENTRY
    },
    Entry {
        names: &["syslog"],
        caps: &["CAP_SYSLOG"],
        ..ENTRY
    },
    Entry {
        names: &["bpf"],
        caps: &["CAP_BPF"],
        ..ENTRY
    },
    Entry {
        names: &["perf_event_open"],
        caps: &["CAP_PERFMON"],
        ..ENTRY
    },
];

/// The host's Go arch name (what moby's `arches` conditions compare with)
/// and the seccomp architectures of moby's `archMap` for it.
fn host_arches() -> (&'static str, Vec<Arch>) {
    if cfg!(target_arch = "x86_64") {
        (
            "amd64",
            vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        )
    } else if cfg!(target_arch = "aarch64") {
        ("arm64", vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm])
    } else if cfg!(target_arch = "riscv64") {
        ("riscv64", vec![Arch::ScmpArchRiscv64])
    } else if cfg!(target_arch = "s390x") {
        ("s390x", vec![Arch::ScmpArchS390x, Arch::ScmpArchS390])
    } else {
        // Not in moby's archMap: the filter gets the native arch only.
        (std::env::consts::ARCH, Vec::new())
    }
}

/// "sys_admin", "SYS_ADMIN" and "CAP_SYS_ADMIN" all name one capability.
fn normalize_cap(cap: &str) -> String {
    let upper = cap.to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// Docker's default capability set (moby `oci/caps/defaults.go`): what a
/// container gets unless told otherwise, and so the set its seccomp
/// profile is usually selected for.
pub const DOCKER_DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's default profile for a container whose bounding set is `caps`
/// (names as in `process.capabilities.bounding`, e.g. `CAP_SYS_ADMIN`):
/// default action ERRNO (EPERM), moby's allow list, and the conditional
/// entries selected by `caps` and the host arch.
pub fn docker_default(caps: &[String]) -> LinuxSeccomp {
    let caps: Vec<String> = caps.iter().map(|c| normalize_cap(c)).collect();
    let has = |c: &&str| caps.iter().any(|have| have == c);
    let (go_arch, architectures) = host_arches();

    let mut syscalls = vec![rule(ALLOW, Act::Allow, &[])];
    for e in ENTRIES {
        let included = e.caps.iter().all(&has)
            && (e.arches.is_empty() || e.arches.contains(&go_arch))
            && !e.not_caps.iter().any(&has)
            && !e.not_arches.contains(&go_arch);
        if included {
            syscalls.push(rule(e.names, e.act, e.args));
        }
    }

    let mut spec = LinuxSeccomp::default();
    spec.set_default_action(LinuxSeccompAction::ScmpActErrno)
        .set_default_errno_ret(Some(1))
        .set_architectures(Some(architectures))
        .set_syscalls(Some(syscalls));
    spec
}

fn rule(names: &[&str], act: Act, args: &[(usize, u64, LinuxSeccompOperator)]) -> LinuxSyscall {
    let mut call = LinuxSyscall::default();
    call.set_names(names.iter().map(|n| (*n).to_owned()).collect());
    match act {
        Act::Allow => call.set_action(LinuxSeccompAction::ScmpActAllow),
        Act::Errno(errno) => call
            .set_action(LinuxSeccompAction::ScmpActErrno)
            .set_errno_ret(Some(errno)),
    };
    if !args.is_empty() {
        let args = args
            .iter()
            .map(|&(index, value, op)| {
                LinuxSeccompArgBuilder::default()
                    .index(index)
                    .value(value)
                    .op(op)
                    .build()
                    // Cannot fail: every field of the builder has a default.
                    .expect("LinuxSeccompArg builder has no required field")
            })
            .collect();
        call.set_args(Some(args));
    }
    call
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_for<'a>(spec: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        spec.syscalls()
            .iter()
            .flatten()
            .filter(|c| c.names().iter().any(|n| n == name))
            .collect()
    }

    fn docker_caps() -> Vec<String> {
        DOCKER_DEFAULT_CAPS.map(String::from).to_vec()
    }

    #[test]
    fn default_caps_block_namespaces_and_allow_chroot() {
        let spec = docker_default(&docker_caps());
        assert_eq!(spec.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(spec.default_errno_ret(), Some(1));
        // clone only through the namespace-flags mask.
        let clone = rules_for(&spec, "clone");
        assert_eq!(clone.len(), 1, "{clone:?}");
        let args = clone[0].args().as_ref().expect("clone has args");
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(args[0].value(), 2_114_060_288);
        // clone3 answers ENOSYS so libc falls back to clone.
        let clone3 = rules_for(&spec, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(38));
        assert!(rules_for(&spec, "mount").is_empty());
        assert!(rules_for(&spec, "reboot").is_empty());
        assert_eq!(rules_for(&spec, "chroot").len(), 1);
        assert_eq!(rules_for(&spec, "personality").len(), 5);
        let socket = rules_for(&spec, "socket");
        assert_eq!(
            socket[0].args().as_ref().expect("socket args")[0].value(),
            40
        );
    }

    #[test]
    fn sys_admin_allows_mount_and_unconditional_clone() {
        let mut caps = docker_caps();
        caps.push("sys_admin".into());
        let spec = docker_default(&caps);
        assert_eq!(rules_for(&spec, "mount").len(), 1);
        let clone = rules_for(&spec, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].args().is_none());
        let clone3 = rules_for(&spec, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActAllow);
    }

    #[test]
    fn host_arch_entries_only() {
        let spec = docker_default(&[]);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(rules_for(&spec, "arch_prctl").len(), 1);
            assert_eq!(rules_for(&spec, "modify_ldt").len(), 1);
            assert!(rules_for(&spec, "set_tls").is_empty());
            assert_eq!(spec.architectures().as_ref().map(Vec::len), Some(3));
        }
        assert!(rules_for(&spec, "riscv_flush_icache").is_empty() || cfg!(target_arch = "riscv64"));
    }

    #[test]
    fn compiles_with_and_without_caps() {
        let every_cap: Vec<String> = ENTRIES
            .iter()
            .flat_map(|e| e.caps.iter().chain(e.not_caps))
            .map(|c| (*c).to_owned())
            .collect();
        for caps in [Vec::new(), docker_caps(), every_cap] {
            let filter = crate::seccomp::compile(&docker_default(&caps)).expect("compiles");
            assert!(!filter.bpf().is_empty());
            assert!(!filter.has_listener());
        }
    }
}
