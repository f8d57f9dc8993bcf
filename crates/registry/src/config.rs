//! Registry settings the engine reads from `/etc/berth/berth.toml`: which
//! registries may be spoken to over plain HTTP, Docker Hub mirrors, and
//! where per-registry certificates live (docker's `certs.d` layout).

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{RegistryError, Result};

pub const DEFAULT_CERTS_DIR: &str = "/etc/berth/certs.d";

/// The `[registry]` table of berth.toml.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RegistryConfig {
    /// Hosts (`host` or `host:port`) allowed over plain HTTP when HTTPS
    /// fails. Loopback registries always are, as with docker.
    pub insecure_registries: Vec<String>,
    /// Docker Hub mirrors (`https://mirror.example`), tried in order
    /// before Docker Hub itself, for pulls only.
    pub mirrors: Vec<String>,
    /// Per-registry `ca.crt`, `client.cert` and `client.key` under
    /// `<certs_dir>/<host[:port]>/`.
    pub certs_dir: PathBuf,
    /// Layers downloaded at once by one pull.
    pub max_concurrent_downloads: usize,
    /// Blobs larger than this are pushed in chunks (PATCH) of this size;
    /// smaller ones in a single PUT.
    pub chunk_size: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure_registries: Vec::new(),
            mirrors: Vec::new(),
            certs_dir: PathBuf::from(DEFAULT_CERTS_DIR),
            max_concurrent_downloads: 3,
            chunk_size: 32 << 20,
        }
    }
}

#[derive(Deserialize, Default)]
struct File {
    #[serde(default)]
    registry: Option<RegistryConfig>,
}

impl RegistryConfig {
    /// Reads the `[registry]` table from berth.toml text; other tables
    /// belong to other crates and are ignored. `origin` names the file in
    /// errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<RegistryConfig> {
        let table: toml::Table = toml::from_str(text).map_err(|e| RegistryError::Config {
            path: origin.to_string(),
            reason: e.to_string(),
        })?;
        let only_ours = toml::Table::from_iter(
            table
                .get("registry")
                .map(|v| ("registry".to_string(), v.clone())),
        );
        let file: File =
            only_ours
                .try_into()
                .map_err(|e: toml::de::Error| RegistryError::Config {
                    path: origin.to_string(),
                    reason: e.to_string(),
                })?;
        Ok(file.registry.unwrap_or_default())
    }

    /// Whether `host` may fall back to plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        is_loopback(host) || self.insecure_registries.iter().any(|h| h == host)
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        // A bare IPv6 address has colons but no port.
        None if host.parse::<std::net::IpAddr>().is_ok() => host,
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_registry_table_only() {
        let c = RegistryConfig::from_toml(
            "[storage]\ndriver = \"overlay\"\n[registry]\ninsecure-registries = [\"r.local:5000\"]\nmirrors = [\"https://m.example\"]\nmax-concurrent-downloads = 5\n",
            "berth.toml",
        )
        .unwrap();
        assert_eq!(c.insecure_registries, vec!["r.local:5000"]);
        assert_eq!(c.mirrors, vec!["https://m.example"]);
        assert_eq!(c.max_concurrent_downloads, 5);
        assert_eq!(c.certs_dir, PathBuf::from(DEFAULT_CERTS_DIR));
        assert!(c.is_insecure("r.local:5000"));
        assert!(!c.is_insecure("r.local"));
        assert_eq!(
            RegistryConfig::from_toml("", "x").unwrap(),
            RegistryConfig::default()
        );
        let e = RegistryConfig::from_toml("[registry]\nbogus = 1\n", "berth.toml").unwrap_err();
        assert!(
            e.to_string().contains("berth.toml") && e.to_string().contains("bogus"),
            "{e}"
        );
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "docker.io"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
