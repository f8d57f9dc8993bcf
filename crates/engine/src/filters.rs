//! Docker's container filters (`ps --filter`, the API's `filters`):
//! status, name, label, ancestor, exited, health and id; one key given twice
//! matches either value, except `label`, whose values must all match (as
//! docker: compose selects a project's service with two labels, Ryuk reaps
//! by session label and `org.testcontainers=true` together); different
//! keys must all match.

use crate::db::{Container, State};
use crate::error::{Error, Result};

/// docker's `label` filters on networks, volumes and images: every one
/// must hold, `k` by presence and `k=v` by value; `get` looks a label up
/// on the object.
pub fn labels_match<'a>(wants: &[String], get: impl Fn(&str) -> Option<&'a str>) -> bool {
    wants.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => get(k) == Some(v),
        None => get(w).is_some(),
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
            if *key == "label" {
                // Unlike the other keys, every label asked for must be
                // there (docker's; Ryuk reaps by session label and
                // `org.testcontainers=true` together).
                let wants: Vec<String> = vals.map(|(_, v)| v.clone()).collect();
                return labels_match(&wants, |k| c.config.labels.get(k).map(String::as_str));
            }
            vals.any(|(_, v)| match *key {
                "status" => state == v,
                "name" => c.name.contains(v.as_str()),
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
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_filter_must_hold() {
        let labels: std::collections::BTreeMap<String, String> = [("a".into(), "b".into())].into();
        let get = |k: &str| labels.get(k).map(String::as_str);
        assert!(labels_match(&["a=b".into(), "a".into()], get));
        assert!(!labels_match(&["a=b".into(), "c".into()], get));
        assert!(!labels_match(&["a=c".into()], get));
        assert!(labels_match(&[], get));
    }

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
