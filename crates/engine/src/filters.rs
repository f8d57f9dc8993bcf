//! Docker's container filters (`ps --filter`, the API's `filters`):
//! status, name, label, ancestor, exited, health, id, network, volume,
//! publish, expose, before, since and is-task; one key given twice
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

/// Parsed `--filter key=value` flags; `before` and `since` name
/// containers, whose creation times [`Filters::resolve`] finds.
#[derive(Debug, Default)]
pub struct Filters {
    pairs: Vec<(String, String)>,
    /// `before`/`since` value -> that container's creation time.
    times: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>,
}

const KEYS: [&str; 14] = [
    "status", "name", "label", "ancestor", "exited", "health", "id", "network", "volume",
    "publish", "expose", "before", "since", "is-task",
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
        for (k, val) in flag_pairs(flags)? {
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
            if (k == "publish" || k == "expose") && port_range(val).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "invalid filter '{k}={val}': want PORT[/PROTO] or START-END[/PROTO]"
                )));
            }
            if k == "is-task" && val != "true" && val != "false" {
                return Err(Error::InvalidArgument(format!(
                    "invalid filter 'is-task={val}': true or false"
                )));
            }
            v.push((k.to_string(), val.to_string()));
        }
        Ok(Filters {
            pairs: v,
            times: Default::default(),
        })
    }

    /// The creation times of the containers `before` and `since` name, by
    /// `created` (a container's, found as every command finds one).
    pub fn resolve(
        &mut self,
        created: impl Fn(&str) -> Result<chrono::DateTime<chrono::Utc>>,
    ) -> Result<()> {
        for (k, v) in &self.pairs {
            if k == "before" || k == "since" {
                self.times.insert(v.clone(), created(v)?);
            }
        }
        Ok(())
    }

    /// Whether any filter asks for non-running containers (docker then
    /// lists them without `-a`).
    pub fn wants_stopped(&self) -> bool {
        self.pairs
            .iter()
            .any(|(k, v)| k == "exited" || (k == "status" && v != "running"))
    }

    /// Whether `c`, in docker state `state` and with health status
    /// `health` (`none` without a check), passes every filter.
    pub fn matches(&self, c: &Container, state: &str, health: &str) -> bool {
        KEYS.iter().all(|key| {
            let mut vals = self.pairs.iter().filter(|(k, _)| k == key).peekable();
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
                "network" => {
                    c.config.network_mode == *v
                        || c.config.net.endpoints.iter().any(|e| e.network == *v)
                }
                // docker's: a volume by name, any mount by its destination.
                "volume" => c
                    .config
                    .host_config
                    .mounts
                    .iter()
                    .any(|m| m.target == *v || (m.kind == "volume" && m.source == *v)),
                "publish" => ports_meet(v, &published(c)),
                "expose" => ports_meet(v, &c.config.net.exposed_ports),
                "before" => self.times.get(v).is_some_and(|t| c.created < *t),
                "since" => self.times.get(v).is_some_and(|t| c.created > *t),
                // No container of berth's is a swarm task.
                "is-task" => v == "false",
                _ => false,
            })
        })
    }
}

/// `PORT[/PROTO]` or `START-END[/PROTO]` (tcp when no protocol).
fn port_range(s: &str) -> Option<(u16, u16, &str)> {
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
    let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
    (a <= b && matches!(proto, "tcp" | "udp" | "sctp")).then_some((a, b, proto))
}

/// Whether the filter's range meets any of `ports` (`80/tcp`-style).
fn ports_meet(filter: &str, ports: &[String]) -> bool {
    let Some((lo, hi, proto)) = port_range(filter) else {
        return false;
    };
    ports
        .iter()
        .any(|p| port_range(p).is_some_and(|(a, b, pp)| pp == proto && a <= hi && lo <= b))
}

/// The container ports `c` publishes (`80/tcp`-style): its `-p`
/// bindings' container side, and every exposed port with `-P`.
fn published(c: &Container) -> Vec<String> {
    let net = &c.config.net;
    if net.publish_all_ports {
        return net.exposed_ports.clone();
    }
    net.port_bindings
        .iter()
        .filter_map(|b| {
            let (ports, proto) = b.rsplit_once('/').unwrap_or((b.as_str(), "tcp"));
            let container = ports.rsplit(':').next()?;
            Some(format!("{container}/{proto}"))
        })
        .collect()
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

    #[test]
    fn network_volume_ports_order_and_tasks() {
        let mut web = c("web1", State::Running, None);
        web.config.network_mode = "front".into();
        web.config.host_config.mounts = vec![crate::hostconfig::MountSpec {
            kind: "volume".into(),
            source: "data".into(),
            target: "/var/lib/data".into(),
            read_only: false,
            propagation: String::new(),
            options: String::new(),
        }];
        web.config.net.port_bindings = vec!["8080:80/tcp".into(), "127.0.0.1:5353:53/udp".into()];
        web.config.net.exposed_ports = vec!["80/tcp".into(), "443/tcp".into()];
        let m = |v: &[&str]| f(v).matches(&web, "running", "none");
        assert!(m(&["network=front"]) && !m(&["network=back"]));
        assert!(m(&["volume=data"]) && m(&["volume=/var/lib/data"]) && !m(&["volume=other"]));
        assert!(m(&["publish=80"]) && m(&["publish=53/udp"]) && m(&["publish=70-90"]));
        assert!(!m(&["publish=443"]) && !m(&["publish=53"]));
        assert!(m(&["expose=443/tcp"]) && !m(&["expose=8080"]));
        assert!(m(&["is-task=false"]) && !m(&["is-task=true"]));
        for bad in [
            "publish=x",
            "expose=90-80",
            "publish=80/ip",
            "is-task=maybe",
        ] {
            assert!(Filters::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
        // before/since: by the named container's creation time.
        let mut old = c("old", State::Exited, Some(0));
        old.id = "aa".repeat(32);
        old.created = web.created - chrono::Duration::seconds(5);
        let all = [old.clone(), web.clone()];
        let created = |k: &str| {
            all.iter()
                .find(|c| c.name == k)
                .map(|c| c.created)
                .ok_or_else(|| Error::NoSuchContainer(k.into()))
        };
        let mut since = f(&["since=old"]);
        since.resolve(created).unwrap();
        assert!(since.matches(&web, "running", "none") && !since.matches(&old, "exited", "none"));
        let mut before = f(&["before=web1"]);
        before.resolve(created).unwrap();
        assert!(before.matches(&old, "exited", "none") && !before.matches(&web, "running", "none"));
        assert!(f(&["before=nosuch"]).resolve(created).is_err());
    }

    #[test]
    fn image_filters_by_name_time_label_and_tags() {
        assert!(glob("bb", "bb") && glob("b*", "bb") && !glob("b*", "b/b"));
        assert!(glob("*/app:*", "org/app:1.0") && glob("b?", "bb") && !glob("bb", "bbb"));
        let pairs = |v: &[&'static str]| {
            v.iter()
                .map(|p| p.split_once('=').unwrap())
                .collect::<Vec<_>>()
        };
        let now = chrono::Utc::now();
        let old = now - chrono::Duration::hours(2);
        let mut f =
            ImageFilters::parse(pairs(&["since=base", "label=k=v", "reference=org/*"])).unwrap();
        f.resolve(|n| {
            assert_eq!(n, "base");
            Ok(old)
        })
        .unwrap();
        let labels = serde_json::json!({"k": "v"});
        assert!(f.matches(now, true, || &labels));
        assert!(!f.matches(old, true, || &labels), "since is after");
        assert!(!f.matches(now, true, || &serde_json::Value::Null));
        assert!(f.names("org/app", "1.0") && !f.names("app", "1.0"));
        let f = ImageFilters::parse(pairs(&["dangling=true", "until=1h"])).unwrap();
        assert!(f.matches(old, false, || unreachable!("no label asked")));
        assert!(!f.matches(now, false, || &labels) && !f.matches(old, true, || &labels));
        for bad in [
            &["since=x"][..],
            &["dangling=maybe"],
            &["until=soon"],
            &["colour=red"],
        ] {
            let parsed = ImageFilters::parse(pairs(bad));
            // since=x parses; it is its resolve that finds no image.
            if bad[0] == "since=x" {
                assert!(parsed
                    .unwrap()
                    .resolve(|_| Err(Error::NoSuchImage("x".into())))
                    .is_err());
            } else {
                assert!(parsed.is_err(), "{bad:?}");
            }
        }
    }
}

/// docker's `volume ls` filters (the CLI's `--filter`, the API's
/// `filters`): `name` (a part of it), `label`, `driver` (only `local`
/// exists) and `dangling` (used by no container, or by some).
#[derive(Debug, Default, Clone)]
pub struct VolumeFilters {
    names: Vec<String>,
    labels: Vec<String>,
    drivers: Vec<String>,
    pub dangling: Option<bool>,
}

impl VolumeFilters {
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<VolumeFilters> {
        let mut f = VolumeFilters::default();
        for (k, v) in pairs {
            match k {
                "name" => f.names.push(v.to_string()),
                "label" => f.labels.push(v.to_string()),
                "driver" => f.drivers.push(v.to_string()),
                "dangling" => f.dangling = Some(truth("dangling", v)?),
                _ => return Err(Error::InvalidArgument(format!("invalid filter '{k}'"))),
            }
        }
        Ok(f)
    }

    /// Whether volume `v` passes; `used` says whether a container uses it
    /// (asked only with `dangling`).
    pub fn matches(&self, v: &crate::volumes::Volume, used: impl FnOnce() -> bool) -> bool {
        (self.names.is_empty() || self.names.iter().any(|n| v.name.contains(n.as_str())))
            && labels_match(&self.labels, |k| v.labels.get(k).map(String::as_str))
            && (self.drivers.is_empty() || self.drivers.iter().any(|d| d == "local"))
            && self.dangling.is_none_or(|d| d != used())
    }
}

/// docker's `network ls` filters: `name` (a part), `id` (a prefix),
/// `label`, `driver`, `type` (`builtin`, the predefined networks, or
/// `custom`) and `scope` (every network of berth's is `local`).
#[derive(Debug, Default, Clone)]
pub struct NetworkFilters {
    names: Vec<String>,
    ids: Vec<String>,
    labels: Vec<String>,
    drivers: Vec<String>,
    types: Vec<String>,
    scopes: Vec<String>,
}

impl NetworkFilters {
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<NetworkFilters> {
        let mut f = NetworkFilters::default();
        for (k, v) in pairs {
            let list = match k {
                "name" => &mut f.names,
                "id" => &mut f.ids,
                "label" => &mut f.labels,
                "driver" => &mut f.drivers,
                "type" if v == "builtin" || v == "custom" => &mut f.types,
                "type" => {
                    return Err(Error::InvalidArgument(format!(
                        "invalid filter 'type={v}': builtin or custom"
                    )))
                }
                "scope" => &mut f.scopes,
                "dangling" => {
                    return Err(Error::NotSupported {
                        flag: "the network filter dangling".into(),
                    })
                }
                _ => return Err(Error::InvalidArgument(format!("invalid filter '{k}'"))),
            };
            list.push(v.to_string());
        }
        Ok(f)
    }

    pub fn matches(&self, n: &crate::network::NetworkInfo) -> bool {
        let builtin = crate::network::is_predefined(n.name());
        let any = |list: &[String], ok: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| ok(v))
        };
        any(&self.names, &|v| n.name().contains(v))
            && any(&self.ids, &|v| n.id().starts_with(v))
            && labels_match(&self.labels, |k| n.labels().get(k).map(String::as_str))
            && any(&self.drivers, &|v| v == n.driver())
            && any(&self.types, &|v| (v == "builtin") == builtin)
            && any(&self.scopes, &|v| v == "local")
    }
}

/// docker's `images` filters (the CLI's `--filter`, the API's
/// `filters`): `dangling`, `reference` (a name or `name:tag`, with
/// path.Match wildcards), `label`, `before` and `since` (an image,
/// whose creation time [`ImageFilters::resolve`] finds) and `until`.
#[derive(Debug, Default, Clone)]
pub struct ImageFilters {
    pub dangling: Option<bool>,
    pub references: Vec<String>,
    labels: Vec<String>,
    /// `before`/`since` as given, then their images' creation times.
    before: Vec<String>,
    since: Vec<String>,
    times: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
}

impl ImageFilters {
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<ImageFilters> {
        let mut f = ImageFilters::default();
        for (k, v) in pairs {
            match k {
                "dangling" => f.dangling = Some(truth("dangling", v)?),
                "reference" => f.references.push(v.to_string()),
                "label" => f.labels.push(v.to_string()),
                "before" => f.before.push(v.to_string()),
                "since" => f.since.push(v.to_string()),
                "until" => {
                    let t = point_in_time(v, chrono::Utc::now()).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "invalid filter 'until={v}': want a Unix time, an RFC 3339 date or a duration like 24h"
                        ))
                    })?;
                    f.until = Some(f.until.map_or(t, |u| u.min(t)));
                }
                _ => return Err(Error::InvalidArgument(format!("invalid filter '{k}'"))),
            }
        }
        Ok(f)
    }

    /// The creation times of the images `before` and `since` name, by
    /// `created` (an image's, by reference or id); docker's error for one
    /// that is not there.
    pub fn resolve(
        &mut self,
        created: impl Fn(&str) -> Result<chrono::DateTime<chrono::Utc>>,
    ) -> Result<()> {
        for v in self.before.iter().chain(&self.since) {
            self.times.insert(v.clone(), created(v)?);
        }
        Ok(())
    }

    /// Whether an image made at `made`, `tagged` or not, passes the
    /// filters but `reference` (see [`ImageFilters::names`]); `labels`
    /// reads its config's labels, only when a label is asked for.
    pub fn matches<'a>(
        &self,
        made: chrono::DateTime<chrono::Utc>,
        tagged: bool,
        labels: impl FnOnce() -> &'a serde_json::Value,
    ) -> bool {
        let time_ok = self
            .before
            .iter()
            .all(|b| self.times.get(b).is_some_and(|t| made < *t))
            && self
                .since
                .iter()
                .all(|s| self.times.get(s).is_some_and(|t| made > *t))
            && self.until.is_none_or(|u| made < u);
        time_ok
            && self.dangling.is_none_or(|d| d != tagged)
            && (self.labels.is_empty() || {
                let l = labels();
                labels_match(&self.labels, |k| l[k].as_str())
            })
    }

    /// Whether [`ImageFilters::matches`] reads an image's labels.
    pub fn wants_labels(&self) -> bool {
        !self.labels.is_empty()
    }

    /// Whether a tag (`familiar` name and `tag`) passes `reference`:
    /// docker's path.Match of the name, or of `name:tag`.
    pub fn names(&self, familiar: &str, tag: &str) -> bool {
        let full = format!("{familiar}:{tag}");
        self.references.is_empty()
            || self
                .references
                .iter()
                .any(|p| glob(p, familiar) || glob(p, &full))
    }
}

/// Go's `path.Match` for `*`, `?` and literal characters: `*` does not
/// cross `/`, as docker's reference filter.
fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    fn m(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| m(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && t[0] != '/' && m(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && m(&p[1..], &t[1..]),
        }
    }
    m(&p, &t)
}

/// docker's boolean filter values (in any case, as the CLI's images
/// filter took them).
fn truth(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::InvalidArgument(format!(
            "invalid filter '{key}={v}': true or false"
        ))),
    }
}

/// docker's prune filters: `label=K`, `label=K=V` (the object must carry
/// it), `label!=K`, `label!=K=V` (it must not), `until=T` (made before T).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneFilters {
    pub labels: Vec<String>,
    pub not_labels: Vec<String>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl PruneFilters {
    /// From `key=value` pairs (the CLI's `--filter`, the API's `filters`)
    /// for pruning `what`; `until` only where `what` has a creation time.
    /// Other keys are an error naming them.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        what: &str,
        until_ok: bool,
    ) -> Result<PruneFilters> {
        let mut f = PruneFilters::default();
        for (k, v) in pairs {
            match k {
                "label" => f.labels.push(v.to_string()),
                "label!" => f.not_labels.push(v.to_string()),
                "until" if until_ok => {
                    let t = point_in_time(v, chrono::Utc::now()).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "{what} prune filter until={v:?}: want a Unix time, an RFC 3339 date or a duration like 24h"
                        ))
                    })?;
                    f.until = Some(f.until.map_or(t, |u| u.min(t)));
                }
                "until" => {
                    return Err(Error::NotSupported {
                        flag: format!(
                        "{what} prune --filter until (berth does not record when {what}s are made)"
                    ),
                    })
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "invalid filter {k:?} for {what} prune (label, label!{})",
                        if until_ok { ", until" } else { "" }
                    )))
                }
            }
        }
        Ok(f)
    }

    /// `key=value` flags, as the CLI's `--filter` gives them.
    pub fn parse_flags(flags: &[String], what: &str, until_ok: bool) -> Result<PruneFilters> {
        PruneFilters::parse(flag_pairs(flags)?, what, until_ok)
    }

    /// Whether an object with these labels, made at `created`, is to go.
    pub fn matches<'a>(
        &self,
        get: impl Fn(&str) -> Option<&'a str> + Copy,
        created: Option<chrono::DateTime<chrono::Utc>>,
    ) -> bool {
        labels_match(&self.labels, get)
            && self
                .not_labels
                .iter()
                .all(|w| !labels_match(std::slice::from_ref(w), get))
            && match (self.until, created) {
                (Some(u), Some(c)) => c < u,
                _ => true,
            }
    }
}

/// The CLI's `--filter key=value` flags as pairs; an error names a flag
/// without `=`. (`label!=k` splits at its `=`: the key is `label!`.)
pub fn flag_pairs(flags: &[String]) -> Result<Vec<(&str, &str)>> {
    flags
        .iter()
        .map(|s| {
            s.split_once('=').ok_or_else(|| {
                Error::InvalidArgument(format!("bad format of filter {s:?} (expected name=value)"))
            })
        })
        .collect()
}

/// A `--since`/`--until` flag's value (`logs`, `events`) read by
/// [`point_in_time`] at this moment; an error names the flag.
pub fn time_flag(flag: &str, v: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    let Some(v) = v else {
        return Ok(None);
    };
    point_in_time(v, chrono::Utc::now())
        .map(Some)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "invalid value for --{flag}: {v:?} is not a time or a duration"
            ))
        })
}

/// A time as docker's filters give it: seconds since the epoch (with a
/// fraction), an RFC 3339 date-time or date, or a duration before `now`
/// in Go's syntax (`90s`, `10m`, `1h30m`).
pub fn point_in_time(
    v: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDate, Utc};
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() {
            return DateTime::from_timestamp_millis((secs * 1000.0) as i64);
        }
        return None;
    }
    crate::health::parse_duration(v)
        .and_then(|d| now.checked_sub_signed(chrono::Duration::from_std(d).ok()?))
}

#[cfg(test)]
mod prune_tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn times_as_docker_takes_them() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        let at = |s: &str| point_in_time(s, now).map(|t| t.to_rfc3339());
        assert_eq!(at("1h30m").unwrap(), "2026-01-02T01:34:05+00:00");
        assert_eq!(at("90s").unwrap(), "2026-01-02T03:02:35+00:00");
        assert_eq!(at("1700000000").unwrap(), "2023-11-14T22:13:20+00:00");
        assert_eq!(at("2025-12-31").unwrap(), "2025-12-31T00:00:00+00:00");
        assert_eq!(
            at("2025-12-31T10:00:00+01:00").unwrap(),
            "2025-12-31T09:00:00+00:00"
        );
        for bad in ["", "1d", "h", "yesterday", "NaN"] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn prune_filters_select_as_docker() {
        let f = PruneFilters::parse_flags(
            &[
                "label=app".into(),
                "label!=keep=yes".into(),
                "until=1h".into(),
            ],
            "volume",
            true,
        )
        .unwrap();
        let labels = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let old = Some(chrono::Utc::now() - chrono::Duration::hours(2));
        let new = Some(chrono::Utc::now());
        let app = labels(&[("app", "x")]);
        let kept = labels(&[("app", "x"), ("keep", "yes")]);
        let other = labels(&[("keep", "no")]);
        let on = |m: &BTreeMap<String, String>, created| {
            f.matches(|k| m.get(k).map(String::as_str), created)
        };
        assert!(on(&app, old));
        assert!(!on(&app, new), "too young");
        assert!(!on(&kept, old), "label!= keeps it");
        assert!(!on(&other, old), "no app label");
        let e = PruneFilters::parse_flags(&["until=1h".into()], "network", false).unwrap_err();
        assert!(e.to_string().contains("until"), "{e}");
        let e = PruneFilters::parse_flags(&["dangling=true".into()], "volume", true).unwrap_err();
        assert!(e.to_string().contains("dangling"), "{e}");
        assert!(PruneFilters::parse_flags(&["label".into()], "volume", true).is_err());
    }
}
