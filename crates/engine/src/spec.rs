//! The OCI spec of a container: the image's config, then the user's
//! options, then Docker's default security profile. Pure functions of their
//! inputs, so every default is checked by a unit test without root.

use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::json;

use crate::db::ContainerConfig;
use crate::error::{Error, Result};
use crate::options::{ImageConfig, Network, RunOptions};
use crate::user::User;

/// Docker's default capability set, kept with Docker's seccomp profile.
pub use berth_runtime::seccomp::DOCKER_DEFAULT_CAPS as DEFAULT_CAPS;

/// Docker's masked paths: kernel information a container must not read.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths: kernel knobs a container must not turn.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's open-files limit, when the host allows it.
const NOFILE_WANTED: u64 = 1_048_576;

/// The container's config: the image's, overridden by the options, in
/// docker's order of precedence.
pub fn container_config(
    image: &ImageConfig,
    opts: &RunOptions,
    id: &str,
    host_hostname: &str,
) -> Result<ContainerConfig> {
    let (entrypoint, cmd) = match &opts.entrypoint {
        // Docker: setting --entrypoint also clears the image's CMD.
        Some(e) => (
            if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            },
            opts.cmd.clone(),
        ),
        None => (
            image.entrypoint.clone(),
            if opts.cmd.is_empty() {
                image.cmd.clone()
            } else {
                opts.cmd.clone()
            },
        ),
    };
    if entrypoint.is_empty() && cmd.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no command specified: image {} has no CMD or ENTRYPOINT",
            opts.image
        )));
    }
    let working_dir = opts
        .workdir
        .clone()
        .unwrap_or_else(|| image.working_dir.clone());
    let working_dir = if working_dir.is_empty() {
        "/".to_string()
    } else {
        working_dir
    };
    if !working_dir.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "the working directory {working_dir:?} is invalid: it needs to be an absolute path"
        )));
    }
    crate::namespaces::check(opts)?;
    let host_uts = opts.host.uts_mode == "host";
    let hostname = match (&opts.hostname, &opts.network) {
        (Some(h), _) => h.clone(),
        (None, Network::Host) => host_hostname.to_string(),
        (None, _) if host_uts => host_hostname.to_string(),
        (None, _) => id.chars().take(12).collect(),
    };
    if hostname.is_empty() || hostname.len() > 64 || hostname.contains(['/', ' ', '\0']) {
        return Err(Error::InvalidArgument(format!(
            "invalid hostname {hostname:?}"
        )));
    }
    for e in &opts.env {
        if e.starts_with('=') || e.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "invalid environment variable {e:?}"
            )));
        }
    }
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    for e in image.env.iter().chain(&opts.env) {
        set_env(&mut env, e);
    }
    // docker: a container with a tty gets TERM unless the user set one.
    if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let mut labels = image.labels.clone();
    labels.extend(opts.labels.clone());
    let domainname = opts.domainname.clone().unwrap_or_default();
    if domainname.len() > 255 || domainname.contains(['/', ' ', '\0']) {
        return Err(Error::InvalidArgument(format!(
            "invalid value {domainname:?} for --domainname"
        )));
    }
    let stop_signal = opts
        .stop_signal
        .clone()
        .unwrap_or_else(|| image.stop_signal.clone());
    if !stop_signal.is_empty() {
        berth_runtime::signal::parse(&stop_signal).map_err(|_| {
            Error::InvalidArgument(format!(
                "invalid value {stop_signal:?} for --stop-signal: unknown signal"
            ))
        })?;
    }
    crate::hostconfig::validate(&opts.host)?;
    if opts.auto_remove && !opts.host.restart_policy.is_none() {
        return Err(Error::InvalidArgument(
            "conflicting options: cannot specify both --restart and --rm".into(),
        ));
    }
    Ok(ContainerConfig {
        hostname,
        env,
        cmd,
        entrypoint,
        working_dir,
        user: opts.user.clone().unwrap_or_else(|| image.user.clone()),
        network_mode: opts.network.mode(),
        auto_remove: opts.auto_remove,
        domainname,
        labels,
        stop_signal,
        stop_timeout: opts.stop_timeout,
        host_config: opts.host.clone(),
        tty: opts.tty,
        open_stdin: opts.open_stdin,
        stdin_once: opts.stdin_once,
        // Filled by network::prepare, which needs the engine.
        net: Default::default(),
        healthcheck: crate::health::resolve(image.healthcheck.as_ref(), opts.healthcheck.as_ref())?,
        log_config: opts.log_config.clone(),
    })
}

/// Replaces `K=…` in `env` or appends it.
pub fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split_once('=').map_or(kv, |(k, _)| k);
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(slot) => *slot = kv.to_string(),
        None => env.push(kv.to_string()),
    }
}

/// The container's process arguments: entrypoint then cmd.
pub fn args(cfg: &ContainerConfig) -> Vec<String> {
    cfg.entrypoint.iter().chain(&cfg.cmd).cloned().collect()
}

/// The full OCI spec for container `id` whose root is mounted at `rootfs`.
pub fn build(
    id: &str,
    cfg: &ContainerConfig,
    rootfs: &Path,
    user: &User,
    host: &HostInfo,
) -> Result<Spec> {
    let h = &cfg.host_config;
    let all = &host.all_caps;
    let caps = crate::security::capabilities(&h.cap_add, &h.cap_drop, h.privileged, all);
    // Under a host limit lower than docker's, the container gets the host's
    // (raising a hard limit needs CAP_SYS_RESOURCE in the host: it would fail).
    let nofile = NOFILE_WANTED.min(host.nofile_hard);
    let mut namespaces = crate::namespaces::spec_namespaces(&cfg.host_config, &host.shared);
    // Every mode but host gets a namespace; for a network or another
    // container's, the engine then points it at that one's path.
    if cfg.network_mode != "host" {
        namespaces.push(json!({"type": "network"}));
    }
    let mut env = cfg.env.clone();
    if user.uid != 0 && !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let mut v = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": cfg.tty,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": args(cfg),
            "env": env,
            "cwd": cfg.working_dir,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "noNewPrivileges": false
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": cfg.hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}
        ],
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": format!("/berth/{id}"),
            // Deny every device; the runtime appends the standard nodes.
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    });
    crate::hostspec::apply(&mut v, cfg, &caps, host)?;
    crate::namespaces::apply(&mut v, &cfg.host_config, &host.shared);
    serde_json::from_value(v)
        .map_err(|e| Error::InvalidArgument(format!("building the spec of {id}: {e}")))
}

/// What `build` needs from the host, probed once per start.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// The host's hard limit of open files.
    pub nofile_hard: u64,
    /// Every capability the container could hold (our bounding set).
    pub all_caps: Vec<String>,
    /// The nodes of `--device`, and all of the host's for `--privileged`.
    pub devices: Vec<crate::security::HostDevice>,
    /// The host path of berth-init, for `--init`.
    pub init: Option<std::path::PathBuf>,
    /// `<root>/volumes`: a volume's data is `<name>/_data` there.
    pub volumes: std::path::PathBuf,
    /// Other containers' namespaces and the /dev/shm to bind.
    pub shared: crate::namespaces::Shared,
}

impl HostInfo {
    /// A host with these limits and nothing else, for tests.
    pub fn with_nofile(nofile_hard: u64) -> HostInfo {
        HostInfo {
            nofile_hard,
            all_caps: crate::security::caps_of_mask(u64::MAX),
            devices: vec![],
            init: None,
            volumes: "/var/lib/berth/volumes".into(),
            shared: Default::default(),
        }
    }
}

/// The host's hard limit of open files.
pub fn host_nofile_hard() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(NOFILE_WANTED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespaceType;

    fn image() -> ImageConfig {
        ImageConfig {
            env: vec!["PATH=/img/bin".into(), "A=1".into()],
            cmd: vec!["sh".into()],
            entrypoint: vec![],
            working_dir: "/srv".into(),
            user: "".into(),
            ..Default::default()
        }
    }

    fn opts() -> RunOptions {
        RunOptions {
            image: "busybox".into(),
            ..Default::default()
        }
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn image_defaults_then_options() {
        let c = container_config(&image(), &opts(), ID, "host").unwrap();
        assert_eq!(c.cmd, ["sh"]);
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.hostname, "0123456789ab");
        assert_eq!(c.env, ["PATH=/img/bin", "HOSTNAME=0123456789ab", "A=1"]);
        let o = RunOptions {
            cmd: vec!["echo".into(), "hi".into()],
            env: vec!["A=2".into(), "B=3".into()],
            workdir: Some("/tmp".into()),
            user: Some("1000:1000".into()),
            hostname: Some("box".into()),
            ..opts()
        };
        let c = container_config(&image(), &o, ID, "host").unwrap();
        assert_eq!(args(&c), ["echo", "hi"]);
        assert_eq!(c.env, ["PATH=/img/bin", "HOSTNAME=box", "A=2", "B=3"]);
        assert_eq!(
            (c.working_dir.as_str(), c.user.as_str(), c.hostname.as_str()),
            ("/tmp", "1000:1000", "box")
        );
    }

    #[test]
    fn entrypoint_rules_are_dockers() {
        let mut img = image();
        img.entrypoint = vec!["/init".into()];
        let c = container_config(&img, &opts(), ID, "h").unwrap();
        assert_eq!(args(&c), ["/init", "sh"]);
        // --entrypoint clears the image's CMD.
        let o = RunOptions {
            entrypoint: Some("ls".into()),
            ..opts()
        };
        assert_eq!(args(&container_config(&img, &o, ID, "h").unwrap()), ["ls"]);
        let o = RunOptions {
            entrypoint: Some("".into()),
            cmd: vec!["id".into()],
            ..opts()
        };
        assert_eq!(args(&container_config(&img, &o, ID, "h").unwrap()), ["id"]);
        let o = RunOptions {
            entrypoint: Some("".into()),
            ..opts()
        };
        assert!(container_config(&img, &o, ID, "h")
            .unwrap_err()
            .to_string()
            .contains("no command"));
    }

    #[test]
    fn bad_options_are_refused() {
        let o = RunOptions {
            workdir: Some("rel".into()),
            ..opts()
        };
        assert!(container_config(&image(), &o, ID, "h")
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        let o = RunOptions {
            env: vec!["=x".into()],
            ..opts()
        };
        assert!(container_config(&image(), &o, ID, "h").is_err());
        let o = RunOptions {
            hostname: Some("a/b".into()),
            ..opts()
        };
        assert!(container_config(&image(), &o, ID, "h").is_err());
    }

    #[test]
    fn host_network_takes_the_host_name_and_no_netns() {
        let o = RunOptions {
            network: Network::Host,
            ..opts()
        };
        let c = container_config(&image(), &o, ID, "myhost").unwrap();
        assert_eq!(c.hostname, "myhost");
        let s = build(
            ID,
            &c,
            Path::new("/r"),
            &User::root(),
            &HostInfo::with_nofile(4096),
        )
        .unwrap();
        let ns: Vec<_> = s
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .clone()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(!ns.contains(&LinuxNamespaceType::Network));
        assert!(ns.contains(&LinuxNamespaceType::Uts));
    }

    #[test]
    fn docker_default_profile() {
        let c = container_config(&image(), &opts(), ID, "h").unwrap();
        let s = build(
            ID,
            &c,
            Path::new("/run/x/rootfs"),
            &User::root(),
            &HostInfo::with_nofile(20000),
        )
        .unwrap();
        berth_runtime::config::validate(&s).unwrap();
        let p = s.process().as_ref().unwrap();
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert_eq!(caps.effective(), caps.bounding());
        assert!(caps.inheritable().as_ref().is_none_or(|c| c.is_empty()));
        let r = &p.rlimits().as_ref().unwrap()[0];
        assert_eq!(
            (r.soft(), r.hard()),
            (20000, 20000),
            "clamped under the host's hard limit"
        );
        let s2 = build(
            ID,
            &c,
            Path::new("/r"),
            &User::root(),
            &HostInfo::with_nofile(u64::MAX),
        )
        .unwrap();
        assert_eq!(
            s2.process().as_ref().unwrap().rlimits().as_ref().unwrap()[0].hard(),
            NOFILE_WANTED
        );
        assert_eq!(s.hostname().as_deref(), Some("0123456789ab"));
        assert_eq!(
            s.root().as_ref().unwrap().path(),
            Path::new("/run/x/rootfs")
        );
        let linux = s.linux().as_ref().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .clone()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        for t in [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Cgroup,
        ] {
            assert!(ns.contains(&t), "{t:?}");
        }
        assert!(linux.seccomp().is_some());
        assert_eq!(linux.masked_paths().as_ref().unwrap().len(), 12);
        assert!(linux
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string()));
        let mounts = s.mounts().as_ref().unwrap();
        let find = |d: &str| {
            mounts
                .iter()
                .find(|m| m.destination() == Path::new(d))
                .unwrap_or_else(|| panic!("{d}"))
        };
        assert!(find("/dev/shm")
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=67108864".to_string()));
        assert!(find("/sys")
            .options()
            .as_ref()
            .unwrap()
            .contains(&"ro".to_string()));
        assert!(find("/sys/fs/cgroup")
            .options()
            .as_ref()
            .unwrap()
            .contains(&"ro".to_string()));
        for d in ["/proc", "/dev", "/dev/pts", "/dev/mqueue"] {
            find(d);
        }
    }

    #[test]
    fn non_root_user_gets_a_home() {
        let c = container_config(&image(), &opts(), ID, "h").unwrap();
        let u = User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![2000],
            home: "/home/user".into(),
        };
        let s = build(ID, &c, Path::new("/r"), &u, &HostInfo::with_nofile(1024)).unwrap();
        let p = s.process().as_ref().unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[2000][..]));
        assert!(p
            .env()
            .as_ref()
            .unwrap()
            .contains(&"HOME=/home/user".to_string()));
    }
}
