//! `RUN --mount=` values: comma-separated `key=value` fields (BuildKit's
//! runmount.go). The type is fixed at parse time; other values are words.

use super::ast::{CacheSharing, Mount, MountKind};
use super::values::{valid_octal, valid_size};

/// Parses one `--mount` value; the error is a problem description.
pub(crate) fn parse_mount(value: &str) -> Result<Mount, String> {
    let mut kind = MountKind::Bind;
    let mut fields = Vec::new();
    for field in value.split(',').filter(|f| !f.is_empty()) {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        if key == "type" {
            kind = match val.as_deref() {
                Some("bind") => MountKind::Bind,
                Some("cache") => MountKind::Cache,
                Some("tmpfs") => MountKind::Tmpfs,
                Some("secret") => MountKind::Secret,
                Some("ssh") => MountKind::Ssh,
                other => return Err(format!("unsupported mount type {:?}", other.unwrap_or(""))),
            };
        } else {
            fields.push((key, val));
        }
    }
    let mut m = Mount::new(kind);
    for (key, val) in fields {
        let need =
            |v: Option<String>| v.ok_or_else(|| format!("mount option {key:?} needs a value"));
        match key.as_str() {
            "target" | "dst" | "destination" => m.target = Some(need(val)?),
            "source" | "src" => m.source = Some(need(val)?),
            "from" => m.from = Some(need(val)?),
            "id" => m.id = Some(need(val)?),
            "env" => m.env = Some(need(val)?),
            "readonly" | "ro" => m.read_only = Some(boolean(&key, val.as_deref())?),
            "readwrite" | "rw" => m.read_only = Some(!boolean(&key, val.as_deref())?),
            "required" => m.required = Some(boolean(&key, val.as_deref())?),
            "sharing" => {
                m.sharing = Some(match val.as_deref() {
                    Some("shared") => CacheSharing::Shared,
                    Some("private") => CacheSharing::Private,
                    Some("locked") => CacheSharing::Locked,
                    other => {
                        return Err(format!(
                            "unsupported sharing value {:?}",
                            other.unwrap_or("")
                        ))
                    }
                })
            }
            "mode" => m.mode = Some(checked(&key, need(val)?, valid_octal)?),
            "uid" => m.uid = Some(checked(&key, need(val)?, |v| v.parse::<u32>().is_ok())?),
            "gid" => m.gid = Some(checked(&key, need(val)?, |v| v.parse::<u32>().is_ok())?),
            "size" => m.size = Some(checked(&key, need(val)?, valid_size)?),
            _ => return Err(format!("unexpected key {key:?} in mount")),
        }
    }
    match m.kind {
        MountKind::Bind | MountKind::Cache | MountKind::Tmpfs if m.target.is_none() => {
            Err("mount needs a target".to_string())
        }
        MountKind::Tmpfs if m.from.is_some() || m.source.is_some() => {
            Err("tmpfs mounts take no from or source".to_string())
        }
        MountKind::Secret if m.id.is_none() && m.target.is_none() && m.env.is_none() => {
            Err("secret mount needs an id, a target or an env".to_string())
        }
        _ => Ok(m),
    }
}

fn boolean(key: &str, val: Option<&str>) -> Result<bool, String> {
    match val.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!(
            "mount option {key:?} takes true or false, not {other:?}"
        )),
    }
}

/// Checks a literal value; values with `$` are checked after substitution.
fn checked(key: &str, val: String, ok: impl Fn(&str) -> bool) -> Result<String, String> {
    if val.contains('$') || ok(&val) {
        Ok(val)
    } else {
        Err(format!("invalid mount option {key}={val:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        let m =
            parse_mount("type=cache,target=/root/.cache,sharing=locked,id=pip,mode=0755,uid=1000")
                .unwrap();
        assert_eq!(m.kind, MountKind::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, Some(CacheSharing::Locked));
        assert_eq!(m.id.as_deref(), Some("pip"));
        assert_eq!(m.mode.as_deref(), Some("0755"));

        let m = parse_mount("target=/src,from=build,source=/out,ro").unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert_eq!(m.from.as_deref(), Some("build"));
        assert_eq!(m.read_only, Some(true));

        let m = parse_mount("type=secret,id=npmrc,required").unwrap();
        assert_eq!((m.kind, m.required), (MountKind::Secret, Some(true)));
        assert_eq!(parse_mount("type=ssh").unwrap().kind, MountKind::Ssh);
        assert_eq!(
            parse_mount("type=tmpfs,dst=/tmp,size=64m")
                .unwrap()
                .size
                .as_deref(),
            Some("64m")
        );
        assert_eq!(
            parse_mount("type=bind,target=$T,rw=true")
                .unwrap()
                .read_only,
            Some(false)
        );
        assert_eq!(
            parse_mount("type=cache,target=/x,uid=$UID")
                .unwrap()
                .uid
                .as_deref(),
            Some("$UID")
        );
    }

    #[test]
    fn rejected() {
        let rows: &[(&str, &str)] = &[
            ("type=volume,target=/x", "unsupported mount type \"volume\""),
            ("type", "unsupported mount type \"\""),
            ("type=cache", "mount needs a target"),
            ("type=bind,source=/x", "mount needs a target"),
            (
                "type=tmpfs,target=/t,from=x",
                "tmpfs mounts take no from or source",
            ),
            (
                "type=secret",
                "secret mount needs an id, a target or an env",
            ),
            (
                "type=cache,target=/x,sharing=everyone",
                "unsupported sharing value \"everyone\"",
            ),
            (
                "type=cache,target=/x,mode=999",
                "invalid mount option mode=\"999\"",
            ),
            (
                "type=cache,target=/x,uid=root",
                "invalid mount option uid=\"root\"",
            ),
            (
                "type=tmpfs,target=/x,size=big",
                "invalid mount option size=\"big\"",
            ),
            (
                "target=/x,ro=maybe",
                "mount option \"ro\" takes true or false, not \"maybe\"",
            ),
            (
                "target=/x,colour=blue",
                "unexpected key \"colour\" in mount",
            ),
            ("target", "mount option \"target\" needs a value"),
        ];
        for (value, want) in rows {
            assert_eq!(parse_mount(value).unwrap_err(), *want, "{value}");
        }
    }
}
