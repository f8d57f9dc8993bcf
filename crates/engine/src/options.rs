//! What the user asks for, as plain data: the CLI (and later the API)
//! parses flags into these; the engine decides what they mean.

use std::collections::BTreeMap;

use crate::hostconfig::HostConfig;

/// `--network`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// A private network namespace holding only loopback.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A namespace of its own on these networks (`bridge` is the default
    /// one); the first gets eth0 and the default route.
    Networks(Vec<crate::network::Endpoint>),
    /// The network namespace of another container (`container:NAME`).
    Container(String),
}

impl Network {
    /// Parses one `--network` value; a name is a network's (checked at
    /// create).
    pub fn parse(s: &str) -> crate::Result<Network> {
        match s {
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            "" => Err(crate::Error::InvalidArgument("empty --network".into())),
            // docker's API calls the default network "default" too.
            "default" => Ok(Network::on(crate::network::DEFAULT_NETWORK)),
            other => match other.strip_prefix("container:") {
                Some("") => Err(crate::Error::InvalidArgument(
                    "--network container: needs a container".into(),
                )),
                Some(c) => Ok(Network::Container(c.to_string())),
                None => Ok(Network::on(other)),
            },
        }
    }

    /// On one network, with no options.
    pub fn on(name: &str) -> Network {
        Network::Networks(vec![crate::network::Endpoint {
            network: name.to_string(),
            ..Default::default()
        }])
    }

    /// docker's HostConfig.NetworkMode.
    pub fn mode(&self) -> String {
        match self {
            Network::None => "none".into(),
            Network::Host => "host".into(),
            Network::Networks(eps) => eps
                .first()
                .map_or_else(|| "none".into(), |e| e.network.clone()),
            Network::Container(c) => format!("container:{c}"),
        }
    }
}

/// `berth create` / `berth run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub image: String,
    pub name: Option<String>,
    /// `-e K=V` (a bare `K` was already filled from the caller's environment).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `--entrypoint`: `Some("")` clears the image's.
    pub entrypoint: Option<String>,
    pub cmd: Vec<String>,
    pub hostname: Option<String>,
    pub network: Network,
    /// `-p`, `-P`, `--expose`, `--dns*`, `--add-host`.
    pub net: crate::network::NetOptions,
    pub auto_remove: bool,
    pub domainname: Option<String>,
    /// `-l` and `--label-file`, over the image's labels.
    pub labels: BTreeMap<String, String>,
    /// `--stop-signal`, over the image's STOPSIGNAL.
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds.
    pub stop_timeout: Option<i64>,
    /// Resources and security; `security_opt` is parsed at create.
    pub host: HostConfig,
    /// `--volumes-from CONTAINER[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// `-t`, `-i`, and docker's StdinOnce (`-i` while attached).
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// `--health-*` (unset fields are the image's), or `--no-healthcheck`.
    pub healthcheck: Option<crate::health::Healthcheck>,
    /// `--log-driver` and `--log-opt`, checked.
    pub log_config: crate::logfile::LogConfig,
}

/// docker's warning for ports published on the host's network.
pub const HOST_PORTS_DISCARDED: &str = "Published ports are discarded when using host network mode";

impl RunOptions {
    /// `--publish` and `--publish-all` on the host's network, whose ports
    /// the container uses as they are: dropped, as docker and podman drop
    /// them, and the warning they print returned for the caller to show.
    pub fn discard_host_ports(&mut self) -> Option<&'static str> {
        if self.network != Network::Host || (self.net.publish.is_empty() && !self.net.publish_all) {
            return None;
        }
        self.net.publish.clear();
        self.net.publish_all = false;
        Some(HOST_PORTS_DISCARDED)
    }
}

/// The parts of an image's config a container starts from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: String,
    /// VOLUME: each becomes an anonymous volume.
    pub volumes: Vec<String>,
    /// EXPOSE (`80/tcp`): what `-P` publishes.
    pub exposed_ports: Vec<String>,
    /// HEALTHCHECK.
    pub healthcheck: Option<crate::health::Healthcheck>,
}

/// `berth exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `exec -t`: a pty, served through `berth-monitor exec --stream`.
    pub tty: bool,
    /// `exec --privileged`: every capability and no seccomp filter.
    pub privileged: bool,
}
