//! What the user asks for, as plain data: the CLI (and later the API)
//! parses flags into these; the engine decides what they mean.

use std::collections::BTreeMap;

use crate::hostconfig::HostConfig;

/// `--network`: only the modes that need no network driver exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A private network namespace holding only loopback.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

impl Network {
    /// Parses `--network`; any other mode is the networking issue's.
    pub fn parse(s: &str) -> crate::Result<Network> {
        match s {
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            other => Err(crate::Error::NotSupported {
                flag: format!(
                    "--network {other} (only none and host work until the networking issue lands)"
                ),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Host => "host",
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
}

/// `berth exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}
