//! Reading and checking a bundle's `config.json` (OCI runtime spec, configs
//! of versions 1.0 to 1.3).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// A loaded bundle: its absolute path, the spec, and the absolute rootfs.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let path = std::fs::canonicalize(dir).map_err(|source| Error::ConfigRead {
            path: dir.to_path_buf(),
            source,
        })?;
        let cfg = path.join("config.json");
        let bytes = std::fs::read(&cfg).map_err(|source| Error::ConfigRead {
            path: cfg.clone(),
            source,
        })?;
        let spec = parse(&bytes).map_err(|source| Error::ConfigParse {
            path: cfg.clone(),
            source,
        })?;
        validate(&spec)?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::InvalidConfig("root is missing".into()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            path.join(root.path())
        };
        let rootfs = std::fs::canonicalize(&rootfs).map_err(|source| Error::ConfigRead {
            path: rootfs.clone(),
            source,
        })?;
        Ok(Bundle { path, spec, rootfs })
    }
}

/// Parses a config without touching the filesystem.
pub fn parse(bytes: &[u8]) -> std::result::Result<Spec, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Checks what the spec requires and what serde cannot: the version, an
/// absolute cwd, args, namespaces listed once.
pub fn validate(spec: &Spec) -> Result<()> {
    let v = spec.version();
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next().unwrap_or("");
    let minor: u32 = parts
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(u32::MAX);
    if major != "1" || minor > 3 {
        return Err(Error::InvalidConfig(format!(
            "ociVersion {v:?} is not supported (1.0.0 to 1.3.x are)"
        )));
    }
    if let Some(p) = spec.process() {
        if !p.cwd().is_absolute() {
            return Err(Error::InvalidConfig(format!(
                "process.cwd {:?} is not absolute",
                p.cwd()
            )));
        }
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::InvalidConfig("process.args is empty".into()));
        }
        if p.apparmor_profile().as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(Error::Unsupported(
                "process.apparmorProfile (AppArmor is not available to berth-runtime)".into(),
            ));
        }
        if p.selinux_label().as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(Error::Unsupported(
                "process.selinuxLabel (SELinux is not available to berth-runtime)".into(),
            ));
        }
    }
    if let Some(linux) = spec.linux() {
        let mut seen = Vec::new();
        for ns in linux.namespaces().iter().flatten() {
            if seen.contains(&ns.typ()) {
                return Err(Error::InvalidConfig(format!(
                    "namespace {} is listed twice",
                    ns.typ()
                )));
            }
            seen.push(ns.typ());
        }
        let new_user = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
        if new_user && linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(Error::InvalidConfig(
                "a new user namespace needs linux.uidMappings".into(),
            ));
        }
        let has_uts = seen.contains(&LinuxNamespaceType::Uts);
        if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has_uts {
            return Err(Error::InvalidConfig(
                "hostname is set but there is no uts namespace".into(),
            ));
        }
        if linux.mount_label().as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(Error::Unsupported(
                "linux.mountLabel (SELinux is not available to berth-runtime)".into(),
            ));
        }
        if linux.intel_rdt().is_some() {
            return Err(Error::Unsupported("linux.intelRdt".into()));
        }
    } else {
        return Err(Error::InvalidConfig("linux is missing".into()));
    }
    Ok(())
}

/// The container ids runc accepts.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_json(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"ociVersion":"1.2.0","process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
               "root":{{"path":"rootfs"}},"linux":{{"namespaces":[{{"type":"pid"}},{{"type":"mount"}}]}}{extra}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn accepts_a_minimal_config() {
        let s = parse(&spec_json("")).unwrap();
        validate(&s).unwrap();
    }

    #[test]
    fn refuses_future_major_and_bad_minor() {
        let mut s = parse(&spec_json("")).unwrap();
        s.set_version("2.0.0".into());
        assert!(validate(&s).unwrap_err().to_string().contains("2.0.0"));
        s.set_version("1.4.0".into());
        assert!(validate(&s).is_err());
        s.set_version("1.0.2-dev".into());
        validate(&s).unwrap();
    }

    #[test]
    fn refuses_relative_cwd_and_empty_args() {
        let bad = String::from_utf8(spec_json(""))
            .unwrap()
            .replace(r#""cwd":"/""#, r#""cwd":"tmp""#);
        let s = parse(bad.as_bytes()).unwrap();
        assert!(validate(&s).unwrap_err().to_string().contains("cwd"));
        let bad = String::from_utf8(spec_json(""))
            .unwrap()
            .replace(r#"["sh"]"#, "[]");
        let s = parse(bad.as_bytes()).unwrap();
        assert!(validate(&s).unwrap_err().to_string().contains("args"));
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        assert!(parse(b"{\"ociVersion\": 1").is_err());
        assert!(parse(&spec_json(r#","linux":{"namespaces":[{"type":"bogus"}]}"#)).is_err());
    }

    #[test]
    fn hostname_needs_uts() {
        let s = parse(&spec_json(r#","hostname":"box""#)).unwrap();
        assert!(validate(&s).unwrap_err().to_string().contains("uts"));
    }

    #[test]
    fn user_namespace_needs_mappings() {
        let j = String::from_utf8(spec_json(""))
            .unwrap()
            .replace(r#"{"type":"mount"}"#, r#"{"type":"mount"},{"type":"user"}"#);
        let s = parse(j.as_bytes()).unwrap();
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("uidMappings"));
    }

    #[test]
    fn ids() {
        validate_id("abc-1.2_x").unwrap();
        for bad in ["", "..", "a/b", "a b", "x\n"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
