//! `ps`'s `--filter` and `--format`: docker's filter keys (status, name,
//! label, ancestor, exited; one key given twice matches either value,
//! different keys must all match) and its template fields.

use anyhow::{bail, Result};
use berth_engine::{Container, Engine, State};
use serde_json::{json, Value};

use crate::format;

/// A container's docker state, `paused` included (the freezer's).
pub fn docker_state(engine: &Engine, c: &Container) -> &'static str {
    if c.state == State::Running && engine.is_paused(&c.id) {
        "paused"
    } else {
        c.state.as_str()
    }
}

/// Parsed `--filter key=value` flags.
#[derive(Debug, Default)]
pub struct Filters(Vec<(String, String)>);

const KEYS: [&str; 5] = ["status", "name", "label", "ancestor", "exited"];

impl Filters {
    pub fn parse(flags: &[String]) -> Result<Filters> {
        let mut v = Vec::new();
        for f in flags {
            let Some((k, val)) = f.split_once('=') else {
                bail!(berth_engine::Error::InvalidArgument(format!(
                    "bad format of filter (expected name=value): {f}"
                )));
            };
            if !KEYS.contains(&k) {
                bail!(berth_engine::Error::InvalidArgument(format!(
                    "invalid filter '{k}'"
                )));
            }
            if k == "exited" && val.parse::<i32>().is_err() {
                bail!(berth_engine::Error::InvalidArgument(format!(
                    "invalid filter 'exited={val}': not a number"
                )));
            }
            v.push((k.to_string(), val.to_string()));
        }
        Ok(Filters(v))
    }

    /// Whether any filter asks for non-running containers (docker then
    /// lists them without `-a`).
    pub fn wants_stopped(&self) -> bool {
        self.0
            .iter()
            .any(|(k, v)| k == "exited" || (k == "status" && v != "running"))
    }

    pub fn matches(&self, c: &Container, state: &str) -> bool {
        KEYS.iter().all(|key| {
            let mut vals = self.0.iter().filter(|(k, _)| k == key).peekable();
            if vals.peek().is_none() {
                return true;
            }
            vals.any(|(_, v)| match *key {
                "status" => state == v,
                "name" => c.name.contains(v.as_str()),
                "label" => match v.split_once('=') {
                    Some((k, want)) => c.config.labels.get(k).is_some_and(|x| x == want),
                    None => c.config.labels.contains_key(v.as_str()),
                },
                "ancestor" => {
                    let bare = v.strip_prefix("sha256:").unwrap_or(v);
                    c.image == *v
                        || format!("{v}:latest") == c.image
                        || c.image_id.trim_start_matches("sha256:").starts_with(bare)
                }
                "exited" => {
                    c.state == State::Exited
                        && c.exit_code.map(|x| x.to_string()) == Some(v.clone())
                }
                _ => false,
            })
        })
    }
}

/// The fields `ps --format` offers, docker's names.
pub fn row(c: &Container, state: &str, status: &str, no_trunc: bool) -> Value {
    let labels: Vec<String> = c
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let args = berth_engine::spec::args(&c.config);
    json!({
        "ID": if no_trunc { c.id.clone() } else { c.id[..12].to_string() },
        "Image": c.image,
        "Command": if no_trunc { format!("\"{}\"", args.join(" ")) } else { format::command(&args) },
        "CreatedAt": c.created.format("%Y-%m-%d %H:%M:%S %z UTC").to_string(),
        "RunningFor": format::ago(c.created),
        "Ports": "",
        "State": state,
        "Status": status,
        "Names": c.name,
        "Labels": labels.join(","),
        "Mounts": c.config.host_config.mounts.iter().map(|m| m.source.clone()).collect::<Vec<_>>().join(","),
        "Networks": c.config.network_mode,
    })
}

/// `ps`'s columns by field, for `table` templates.
pub const HEADERS: [(&str, &str); 12] = [
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, state: State, code: Option<i32>) -> Container {
        let mut cfg = berth_engine::ContainerConfig::default();
        cfg.labels.insert("tier".into(), "web".into());
        Container {
            id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            name: name.into(),
            image: "bb".into(),
            image_id: "sha256:feedface".into(),
            config: cfg,
            created: chrono::Utc::now(),
            state,
            pid: 0,
            exit_code: code,
            started: None,
            finished: None,
            error: None,
        }
    }

    fn f(v: &[&str]) -> Filters {
        Filters::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn filters_or_within_a_key_and_across_keys() {
        let web = c("web1", State::Exited, Some(3));
        assert!(f(&["status=exited", "status=running"]).matches(&web, "exited"));
        assert!(!f(&["status=running"]).matches(&web, "exited"));
        assert!(f(&["name=web", "exited=3"]).matches(&web, "exited"));
        assert!(!f(&["name=web", "exited=0"]).matches(&web, "exited"));
        assert!(f(&["label=tier"]).matches(&web, "exited"));
        assert!(f(&["label=tier=web"]).matches(&web, "exited"));
        assert!(!f(&["label=tier=db"]).matches(&web, "exited"));
        assert!(f(&["ancestor=bb"]).matches(&web, "exited"));
        assert!(f(&["ancestor=feedfa"]).matches(&web, "exited"));
        assert!(!f(&["ancestor=alpine"]).matches(&web, "exited"));
        assert!(Filters::parse(&["bogus=1".into()]).is_err());
        assert!(Filters::parse(&["exited=x".into()]).is_err());
        assert!(f(&["status=exited"]).wants_stopped());
    }
}
