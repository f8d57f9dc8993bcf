//! Docker's container filters (`ps --filter`, the API's `filters`):
//! status, name, label, ancestor, exited, health and id; one key given twice
//! matches either value, except `label`, whose values must all match (as
//! docker: compose selects a project's service with two labels); different
//! keys must all match.

use std::collections::BTreeMap;

use crate::db::{Container, State};
use crate::error::{Error, Result};

/// Docker's `label` filter over `labels`: every value (`KEY` or
/// `KEY=VALUE`) must match, for containers, networks, volumes and events
/// alike.
pub fn labels_match(wanted: &[String], labels: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|v| match v.split_once('=') {
        Some((k, want)) => labels.get(k).is_some_and(|x| x == want),
        None => labels.contains_key(v.as_str()),
    })
}

/// Parsed `--filter key=value` flags.
#[derive(Debug, Default)]
pub struct Filters(Vec<(String, String)>);

const KEYS: [&str; 7] = [
    "status", "name", "label", "ancestor", "exited", "health", "id",
];

/// What `health=` accepts: docker's statuses, and `none` for a container
/// without a check.
const HEALTH: [&str; 4] = [
    crate::health::STARTING,
    crate::health::HEALTHY,
    crate::health::UNHEALTHY,
    crate::health::NONE,
];

impl Filters {
    pub fn parse(flags: &[String]) -> Result<Filters> {
        let mut v = Vec::new();
        for f in flags {
            let Some((k, val)) = f.split_once('=') else {
                return Err(Error::InvalidArgument(format!(
                    "bad format of filter (expected name=value): {f}"
                )));
            };
            if !KEYS.contains(&k) {
                return Err(Error::InvalidArgument(format!("invalid filter '{k}'")));
            }
            if k == "exited" && val.parse::<i32>().is_err() {
                return Err(Error::InvalidArgument(format!(
                    "invalid filter 'exited={val}': not a number"
                )));
            }
            if k == "health" && !HEALTH.contains(&val) {
                return Err(Error::InvalidArgument(format!(
                    "unrecognised filter value for health: {val} (use {})",
                    HEALTH.join(", ")
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

    /// Whether `c`, in docker state `state` and with health status
    /// `health` (`none` without a check), passes every filter.
    pub fn matches(&self, c: &Container, state: &str, health: &str) -> bool {
        KEYS.iter().all(|key| {
            let mut vals = self.0.iter().filter(|(k, _)| k == key).peekable();
            if vals.peek().is_none() {
                return true;
            }
            let one = |v: &String| match *key {
                "status" => state == v,
                "name" => c.name.contains(v.as_str()),
                "label" => labels_match(std::slice::from_ref(v), &c.config.labels),
                "ancestor" => {
                    let bare = v.strip_prefix("sha256:").unwrap_or(v);
                    c.image == *v
                        || format!("{v}:latest") == c.image
                        || c.image_id.trim_start_matches("sha256:").starts_with(bare)
                }
                "id" => c.id.starts_with(v.as_str()),
                "health" => health == v,
                "exited" => {
                    c.state == State::Exited
                        && c.exit_code.map(|x| x.to_string()) == Some(v.clone())
                }
                _ => false,
            };
            if *key == "label" {
                vals.all(|(_, v)| one(v))
            } else {
                vals.any(|(_, v)| one(v))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, state: State, code: Option<i32>) -> Container {
        let mut cfg = crate::ContainerConfig::default();
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
            oom_killed: false,
        }
    }

    fn f(v: &[&str]) -> Filters {
        Filters::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn filters_or_within_a_key_and_across_keys() {
        let web = c("web1", State::Exited, Some(3));
        assert!(f(&["status=exited", "status=running"]).matches(&web, "exited", "none"));
        assert!(!f(&["status=running"]).matches(&web, "exited", "none"));
        assert!(f(&["name=web", "exited=3"]).matches(&web, "exited", "none"));
        assert!(!f(&["name=web", "exited=0"]).matches(&web, "exited", "none"));
        assert!(f(&["label=tier"]).matches(&web, "exited", "none"));
        assert!(f(&["label=tier=web"]).matches(&web, "exited", "none"));
        assert!(!f(&["label=tier=db"]).matches(&web, "exited", "none"));
        assert!(!f(&["label=tier=web", "label=other"]).matches(&web, "exited", "none"));
        assert!(f(&["label=tier=web", "label=tier"]).matches(&web, "exited", "none"));
        assert!(f(&["ancestor=bb"]).matches(&web, "exited", "none"));
        assert!(f(&["ancestor=feedfa"]).matches(&web, "exited", "none"));
        assert!(!f(&["ancestor=alpine"]).matches(&web, "exited", "none"));
        assert!(Filters::parse(&["bogus=1".into()]).is_err());
        assert!(Filters::parse(&["exited=x".into()]).is_err());
        assert!(f(&["status=exited"]).wants_stopped());
        assert!(f(&["id=0123"]).matches(&web, "exited", "none"));
        assert!(!f(&["id=1234"]).matches(&web, "exited", "none"));
        assert!(f(&["health=none"]).matches(&web, "exited", "none"));
        assert!(f(&["health=healthy", "health=starting"]).matches(&web, "running", "starting"));
        assert!(!f(&["health=healthy"]).matches(&web, "running", "unhealthy"));
        assert!(Filters::parse(&["health=sick".into()]).is_err());
    }
}
