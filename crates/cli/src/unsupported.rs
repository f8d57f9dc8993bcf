//! docker's `run`/`create` flags that berth does not do yet. They are
//! accepted by the parser only to be refused by name: a flag silently
//! ignored would run a container other than the one asked for.

use clap::Args;

macro_rules! unsupported_flags {
    (
        switches { $( $sw:ident : $swlong:literal $(, short = $swshort:literal)? ; )* }
        values { $( $field:ident : $long:literal $(, short = $short:literal)? ; )* }
    ) => {
        #[derive(Args, Debug, Default)]
        pub struct Unsupported {
            $(
                #[arg(long = $swlong, $(short = $swshort,)? hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
                $sw: Option<String>,
            )*
            $(
                #[arg(long = $long, $(short = $short,)? hide = true, action = clap::ArgAction::Append)]
                $field: Vec<String>,
            )*
        }

        impl Unsupported {
            /// The first flag given, as the user would write it.
            pub fn first(&self) -> Option<String> {
                $(
                    if self.$sw.is_some() {
                        return Some(format!("--{}", $swlong));
                    }
                )*
                $(
                    if !self.$field.is_empty() {
                        return Some(format!("--{}", $long));
                    }
                )*
                None
            }
        }
    };
}

unsupported_flags! {
    switches {
        interactive: "interactive", short = 'i';
        tty: "tty", short = 't';
        publish_all: "publish-all", short = 'P';
        privileged: "privileged";
        read_only: "read-only";
        init: "init";
        oom_kill_disable: "oom-kill-disable";
        sig_proxy: "sig-proxy";
        no_healthcheck: "no-healthcheck";
    }
    values {
        attach: "attach", short = 'a';
        volume: "volume", short = 'v';
        mount: "mount";
        tmpfs: "tmpfs";
        publish: "publish", short = 'p';
        restart: "restart";
        memory: "memory", short = 'm';
        memory_swap: "memory-swap";
        cpus: "cpus";
        cpu_shares: "cpu-shares", short = 'c';
        cpuset_cpus: "cpuset-cpus";
        pids_limit: "pids-limit";
        ulimit: "ulimit";
        cap_add: "cap-add";
        cap_drop: "cap-drop";
        security_opt: "security-opt";
        env_file: "env-file";
        label: "label", short = 'l';
        device: "device";
        shm_size: "shm-size";
        sysctl: "sysctl";
        pid: "pid";
        ipc: "ipc";
        uts: "uts";
        userns: "userns";
        cgroupns: "cgroupns";
        group_add: "group-add";
        domainname: "domainname";
        stop_signal: "stop-signal";
        stop_timeout: "stop-timeout";
        health_cmd: "health-cmd";
        log_driver: "log-driver";
        log_opt: "log-opt";
        platform: "platform";
        pull: "pull";
        volumes_from: "volumes-from";
        oom_score_adj: "oom-score-adj";
        detach_keys: "detach-keys";
        add_host: "add-host";
        dns: "dns";
    }
}
