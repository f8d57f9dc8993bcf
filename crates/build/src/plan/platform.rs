//! Platforms (`os/arch[/variant]`) and the automatic build args docker
//! derives from them: TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT
//! and the BUILD* equivalents.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Why a platform string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant], like linux/amd64")]
pub struct PlatformError(pub String);

impl Platform {
    /// Parses `os/arch[/variant]`, normalising the architecture aliases
    /// docker accepts (`x86_64` is `amd64`, `aarch64` is `arm64`).
    pub fn parse(text: &str) -> Result<Platform, PlatformError> {
        let err = || PlatformError(text.to_string());
        let parts: Vec<&str> = text.split('/').collect();
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(err());
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: normalize_arch(&parts[1].to_ascii_lowercase()).to_string(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    /// The platform berth runs on (always Linux).
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }
}

fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" => "386",
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

/// The automatic platform args, available in the global scope (FROM lines)
/// without declaration and inside a stage once declared with `ARG NAME`.
pub(crate) fn automatic_args(target: &Platform, build: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let rows: &[(&str, &str)] = &[
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("Linux/AArch64", "linux/arm64"),
            ("linux/arm/v7", "linux/arm/v7"),
        ];
        for (text, want) in rows {
            assert_eq!(Platform::parse(text).unwrap().to_string(), *want);
        }
        for bad in ["linux", "", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn automatic() {
        let t = Platform::parse("linux/arm64/v8").unwrap();
        let b = Platform::parse("linux/amd64").unwrap();
        let m = automatic_args(&t, &b);
        assert_eq!(m["TARGETPLATFORM"], "linux/arm64/v8");
        assert_eq!(m["TARGETARCH"], "arm64");
        assert_eq!(m["TARGETVARIANT"], "v8");
        assert_eq!(m["BUILDOS"], "linux");
        assert_eq!(m["BUILDVARIANT"], "");
    }
}
