//! Manifests as the distribution API serves them: OCI and Docker schema 2
//! image manifests, OCI indexes and Docker manifest lists, and choosing
//! the manifest for a platform. Schema 1 is recognised only to be refused.

use std::fmt;

use berth_image::digest::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// What a manifest request accepts, best first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A pointer to content: what every manifest is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// os/architecture[/variant], in Go's names (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os/arch[/variant]` (`--platform`); a bare `arch` means linux.
    pub fn parse(s: &str) -> Result<Platform> {
        let bad = || {
            RegistryError::InvalidArgument(format!(
                "invalid platform {s:?}: expected os/arch[/variant]"
            ))
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(*v)),
            _ => return Err(bad()),
        };
        Ok(Platform {
            os: os.to_ascii_lowercase(),
            architecture: normalize_arch(&arch.to_ascii_lowercase()).to_string(),
            variant: variant.map(str::to_ascii_lowercase),
        })
    }

    /// Whether an index entry for `other` serves a request for `self`: os
    /// and architecture equal, and the variant too when asked for one
    /// (arm64's missing variant is v8, as containerd treats it).
    pub fn matches(&self, other: &Platform) -> bool {
        let norm = |p: &Platform| -> Option<String> {
            match (p.architecture.as_str(), p.variant.as_deref()) {
                ("arm64", None) => Some("v8".into()),
                (_, v) => v.map(str::to_string),
            }
        };
        self.os == other.os
            && normalize_arch(&self.architecture) == normalize_arch(&other.architecture)
            && (self.variant.is_none() || norm(self) == norm(other))
    }
}

fn normalize_arch(a: &str) -> &str {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (OCI or Docker schema 2: the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An OCI index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A fetched manifest, by what it turned out to be.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses `bytes`, trusting the body's `mediaType` over the HTTP
    /// `Content-Type` (`header`) and the shape over both when neither says.
    pub fn parse(reference: &str, header: Option<&str>, bytes: &[u8]) -> Result<Manifest> {
        let invalid = |reason: String| RegistryError::InvalidManifest {
            reference: reference.to_string(),
            reason,
        };
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let header = header.map(|h| h.split(';').next().unwrap_or(h).trim());
        let media_type = probe.media_type.as_deref().or(header).unwrap_or("");
        if probe.schema_version == Some(1)
            || media_type == DOCKER_SCHEMA1
            || media_type == DOCKER_SCHEMA1_SIGNED
        {
            return Err(RegistryError::Schema1 {
                reference: reference.to_string(),
            });
        }
        let is_index = match media_type {
            OCI_INDEX | DOCKER_LIST => true,
            OCI_MANIFEST | DOCKER_MANIFEST => false,
            // OCI allows leaving mediaType out; then the shape decides.
            "" | "application/json" | "application/octet-stream" if probe.manifests.is_some() => {
                true
            }
            "" | "application/json" | "application/octet-stream" if probe.config.is_some() => false,
            other => {
                return Err(RegistryError::UnsupportedMediaType {
                    reference: reference.to_string(),
                    media_type: other.to_string(),
                })
            }
        };
        if is_index {
            Ok(Manifest::Index(
                serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?,
            ))
        } else {
            Ok(Manifest::Image(
                serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?,
            ))
        }
    }
}

impl Index {
    /// The entry for `want`; an error listing every platform there is when
    /// none fits. Attestation entries (`unknown/unknown`) never match.
    pub fn select(&self, reference: &str, want: &Platform) -> Result<&Descriptor> {
        let images = self
            .manifests
            .iter()
            .filter(|d| matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST));
        // An exact variant match wins over an entry without a variant.
        let mut best: Option<&Descriptor> = None;
        for d in images {
            let Some(p) = &d.platform else { continue };
            if want.matches(p) {
                let exact = p.variant == want.variant;
                if best.is_none() || exact {
                    best = Some(d);
                }
                if exact {
                    break;
                }
            }
        }
        best.ok_or_else(|| RegistryError::UnsupportedPlatform {
            reference: reference.to_string(),
            wanted: want.to_string(),
            available: self
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(Platform::to_string)
                .filter(|p| p != "unknown/unknown")
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests;
