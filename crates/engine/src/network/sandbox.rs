//! A started container's network: its namespace, attachments, published
//! ports and the /etc/hosts, /etc/hostname and /etc/resolv.conf it sees
//! (docker's "sandbox"). Made by [`setup`] just before the monitor starts
//! the container, undone by [`release`] when it exits or is removed.
//!
//! What was made is written to `<bundle>/network.json` (runroot: it dies
//! with the machine, like the namespace), so release needs no guessing;
//! without that file it falls back on the leases, so a crash in the middle
//! of setup leaves nothing that the next release or prune misses.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use berth_net::{netns, AttachOptions, Attachment, Net, PortMapping, PortSpec};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::settings::{parse_mac, DEFAULT_NETWORK};
use crate::container::Engine;
use crate::db::{Container, Db, State};
use crate::error::{io_err, Error, Result};

/// One attachment and the names it answers to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Joined {
    #[serde(flatten)]
    pub attachment: Attachment,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The network's id, for inspect.
    #[serde(default)]
    pub network_id: String,
}

/// `<bundle>/network.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetState {
    pub netns: PathBuf,
    pub joined: Vec<Joined>,
    pub ports: Vec<PortMapping>,
}

/// What the spec needs: the namespace to join and the files to bind.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The network namespace to join (None: the spec's own, a new one for
    /// `none`, the host's for `host`).
    pub netns: Option<PathBuf>,
    /// hosts, hostname, resolv.conf on the host (None: keep the image's).
    pub files: Option<[PathBuf; 3]>,
}

pub(crate) const FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// Where container `id`'s hosts, hostname and resolv.conf are kept: beside
/// its network state in the runroot (a tmpfs), since every start writes
/// them anew; creating them on the root's filesystem was a measurable
/// part of a start.
fn files_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.paths.bundle(id)
}

pub(crate) fn state_path(engine: &Engine, id: &str) -> PathBuf {
    engine.paths.bundle(id).join("network.json")
}

pub(crate) fn read_state(engine: &Engine, id: &str) -> Option<NetState> {
    let text = fs::read(state_path(engine, id)).ok()?;
    serde_json::from_slice(&text).ok()
}

pub(crate) fn write_state(engine: &Engine, id: &str, s: &NetState) -> Result<()> {
    let json = serde_json::to_vec(s).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    crate::container::write_atomic(&state_path(engine, id), &json)
}

fn net_err(e: berth_net::Error) -> Error {
    Error::Net(e)
}

/// Gives container `c` its network before it starts; None for `none` and
/// `host`, which need nothing from here.
pub(crate) fn setup(engine: &Engine, c: &Container) -> Result<Option<Sandbox>> {
    let mode = c.config.network_mode.as_str();
    if mode == "none" || mode == "host" {
        return Ok(None);
    }
    if let Some(target) = mode.strip_prefix("container:") {
        return join_container(engine, target).map(Some);
    }
    let id = &c.id;
    let net = engine.net()?;
    let runroot = &engine.paths.runroot;
    // A namespace left by a monitor that died: its attachments go first.
    if netns::path(runroot, id).exists() {
        release(engine, id, &mut Vec::new())?;
    }
    let path = netns::create(runroot, id).map_err(net_err)?;
    crate::timing::mark("net: namespace");
    let made = attach_all(engine, &net, c, &path);
    match made {
        Ok(files) => Ok(Some(Sandbox {
            netns: Some(path),
            files: Some(files),
        })),
        Err(e) => {
            if let Err(re) = release(engine, id, &mut Vec::new()) {
                tracing::warn!(id, error = %re, "undoing a failed network setup");
            }
            Err(e)
        }
    }
}

fn attach_all(engine: &Engine, net: &Net, c: &Container, path: &Path) -> Result<[PathBuf; 3]> {
    let id = &c.id;
    let s = &c.config.net;
    let mut state = NetState {
        netns: path.to_path_buf(),
        ..Default::default()
    };
    for (i, ep) in s.endpoints.iter().enumerate() {
        let cfg = if ep.network == DEFAULT_NETWORK {
            net.ensure_default()
        } else {
            net.network(&ep.network)
        }
        .map_err(net_err)?;
        let opts = AttachOptions {
            ip: ep.ip,
            ip6: ep.ip6,
            mac: ep.mac.as_deref().map(parse_mac).transpose()?,
            iface: format!("eth{i}"),
            default_route: i == 0,
            names: dns_names(c, &ep.aliases),
            upstream: s.dns.clone(),
        };
        let a = attach(engine, net, &cfg.name, id, path, &opts)?;
        crate::timing::mark("net: attached");
        state.joined.push(Joined {
            attachment: a,
            aliases: ep.aliases.clone(),
            network_id: cfg.id,
        });
    }
    // Before ports: a failure below must find the attachments to undo.
    write_state(engine, id, &state)?;
    if let Some(first) = state.joined.first() {
        let (ip, ip6) = (first.attachment.ip, first.attachment.ip6);
        let mappings = port_mappings(s)?;
        if !mappings.is_empty() {
            net.publish(id, ip, ip6, &mappings).map_err(net_err)?;
            crate::timing::mark("net: published");
            state.ports = mappings;
            write_state(engine, id, &state)?;
        }
    }
    write_files(engine, net, c, &state)
}

/// `-p` resolved to host ports now, plus `-P`'s exposed ports on
/// ephemeral ones (skipping those `-p` already maps).
fn port_mappings(s: &super::NetSettings) -> Result<Vec<PortMapping>> {
    let invalid = |e: berth_net::Error| match e.kind() {
        berth_net::ErrorKind::InvalidArgument => Error::InvalidArgument(e.to_string()),
        _ => Error::Net(e),
    };
    let flags: Vec<&str> = s.port_bindings.iter().map(String::as_str).collect();
    let mut all = berth_net::ports::parse_all(&flags).map_err(invalid)?;
    if s.publish_all_ports {
        for p in &s.exposed_ports {
            let spec = PortSpec::parse(p).map_err(invalid)?;
            let taken = all
                .iter()
                .any(|m| m.container_port == spec.container_ports.0 && m.proto == spec.proto);
            if !taken {
                all.extend(spec.resolve().map_err(invalid)?);
            }
        }
    }
    Ok(all)
}

/// `--network container:ID`: the other container's namespace (by path,
/// so it need not be one of ours) and its files, as docker shares them.
fn join_container(engine: &Engine, target: &str) -> Result<Sandbox> {
    let t = engine.find(target)?;
    if t.state != State::Running || t.pid <= 0 {
        return Err(Error::WrongState {
            id: t.id,
            state: t.state.to_string(),
            op: "share its network (--network container:) as it is not running",
        });
    }
    let own = berth_net::netns::path(&engine.paths.runroot, &t.id);
    let netns = if own.exists() {
        own
    } else {
        PathBuf::from(format!("/proc/{}/ns/net", t.pid))
    };
    let dir = files_dir(engine, &t.id);
    let files = FILES.map(|f| dir.join(f));
    let have = files.iter().all(|f| f.exists());
    Ok(Sandbox {
        netns: Some(netns),
        files: have.then_some(files),
    })
}

/// Joins `network`; an exhausted subnet first gets back the addresses
/// of containers that died without releasing them (a crash), then the
/// attach is tried once more: the repair docker does at daemon start,
/// done when it is needed.
pub(crate) fn attach(
    engine: &Engine,
    net: &Net,
    network: &str,
    id: &str,
    path: &Path,
    opts: &AttachOptions,
) -> Result<Attachment> {
    match net.attach(network, id, path, opts) {
        Err(e @ berth_net::Error::Exhausted(_)) => {
            let reclaimed = engine.reclaim_network_leftovers()?;
            if reclaimed == 0 {
                return Err(net_err(e));
            }
            net.attach(network, id, path, opts).map_err(net_err)
        }
        other => other.map_err(net_err),
    }
}

/// The names the network's DNS gives a container: its name, short id,
/// hostname and aliases on that network, without repeats.
pub(crate) fn dns_names(c: &Container, aliases: &[String]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for n in [
        c.name.as_str(),
        &c.id[..12.min(c.id.len())],
        &c.config.hostname,
    ]
    .into_iter()
    .chain(aliases.iter().map(String::as_str))
    {
        if !n.is_empty() && !v.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            v.push(n.to_string());
        }
    }
    v
}

/// The container's hosts, hostname and resolv.conf (see [`files_dir`]).
/// Plain writes: nothing reads them before the container starts, and
/// they are rewritten at every start, so there is nothing to fsync for.
/// On user networks names come from the network's DNS server, so
/// /etc/hosts has only the container's own line, as docker's has.
fn write_files(
    engine: &Engine,
    net: &Net,
    c: &Container,
    state: &NetState,
) -> Result<[PathBuf; 3]> {
    let s = &c.config.net;
    let gateway = state.joined.first().map(|j| j.attachment.gateway);
    let mut extra: Vec<(String, IpAddr)> = Vec::new();
    for h in &s.extra_hosts {
        extra.push(
            berth_net::files::parse_add_host(h, gateway)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?,
        );
    }
    for l in &s.links {
        for (name, ip) in link_hosts(engine, c, state, l)? {
            // compose links one container under several aliases.
            if !extra.iter().any(|(n, _)| *n == name) {
                extra.push((name, ip));
            }
        }
    }
    let me = host_line_names(c, state.joined.first().map_or(&[][..], |j| &j.aliases));
    let own = state.joined.first().map(|j| IpAddr::V4(j.attachment.ip));
    let names: Vec<&str> = me.split(' ').collect();
    let hosts = berth_net::files::hosts(own.map(|ip| (ip, &names[..])), &extra);
    let resolv = resolv_conf(net, c, state);
    write_three(engine, c, hosts, resolv)
}

/// Writes `c`'s hosts, its hostname and `resolv` where [`files_dir`] says;
/// their paths, in [`FILES`]' order.
fn write_three(
    engine: &Engine,
    c: &Container,
    hosts: String,
    resolv: String,
) -> Result<[PathBuf; 3]> {
    let dir = files_dir(engine, &c.id);
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let files = FILES.map(|f| dir.join(f));
    for (path, text) in files
        .iter()
        .zip([hosts, format!("{}\n", c.config.hostname), resolv])
    {
        fs::write(path, text).map_err(io_err(format!("writing {}", path.display())))?;
    }
    Ok(files)
}

/// The hosts, hostname and resolv.conf of a `none` or `host` container,
/// which has no network of berth's to set up but gets these files as
/// docker gives them: with `none` its own hosts (loopback and
/// `--add-host`) and the host's resolvers as a bridge gets them (or
/// `--dns*`); with `host` the host's own hosts and resolv.conf, with
/// `--add-host` and `--dns*` as given.
pub(crate) fn local_files(engine: &Engine, c: &Container) -> Result<Sandbox> {
    let s = &c.config.net;
    let resolv_path = super::settings::host_resolv_conf(&engine.paths)?;
    let host_resolv = fs::read_to_string(&resolv_path).unwrap_or_default();
    let mut extra = Vec::new();
    for h in &s.extra_hosts {
        extra.push(
            berth_net::files::parse_add_host(h, None)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?,
        );
    }
    let (hosts, resolv) = if c.config.network_mode == "host" {
        let hosts = fs::read_to_string("/etc/hosts")
            .map(|h| berth_net::files::host_network_hosts(&h, &extra))
            .unwrap_or_else(|_| berth_net::files::hosts(None, &extra));
        (
            hosts,
            berth_net::files::host_network_resolv_conf(&host_resolv, &s.dns_options()),
        )
    } else {
        (
            berth_net::files::hosts(None, &extra),
            berth_net::files::resolv_conf(&host_resolv, None, &s.dns_options()),
        )
    };
    Ok(Sandbox {
        netns: None,
        files: Some(write_three(engine, c, hosts, resolv)?),
    })
}

/// The /etc/hosts lines of one link (`CONTAINER:ALIAS`): the alias and
/// the container's name at its address on the first network the two
/// share. As docker, the linked container must be running.
fn link_hosts(
    engine: &Engine,
    c: &Container,
    state: &NetState,
    link: &str,
) -> Result<Vec<(String, IpAddr)>> {
    let (target, alias) = link.split_once(':').unwrap_or((link, link));
    let t = engine.find(target)?;
    let cannot = |why: &str| {
        Error::InvalidArgument(format!(
            "cannot link {} to {target} as {alias}: {why}",
            c.name
        ))
    };
    let theirs = read_state(engine, &t.id)
        .filter(|_| t.state == State::Running)
        .ok_or_else(|| cannot("it is not running"))?;
    let ip = state
        .joined
        .iter()
        .find_map(|mine| {
            theirs
                .joined
                .iter()
                .find(|j| j.attachment.network == mine.attachment.network)
                .map(|j| IpAddr::V4(j.attachment.ip))
        })
        .ok_or_else(|| cannot("the two share no network"))?;
    let mut v = vec![(alias.to_string(), ip)];
    if t.name != alias {
        v.push((t.name, ip));
    }
    Ok(v)
}

/// resolv.conf: the DNS server of the first joined network that has one
/// (its gateway), else the host's resolvers or `--dns`.
fn resolv_conf(net: &Net, c: &Container, state: &NetState) -> String {
    let host = fs::read_to_string(&net.config().resolv_conf).unwrap_or_default();
    let server = state.joined.iter().find_map(|j| {
        net.network(&j.attachment.network)
            .ok()
            .filter(|n| n.dns)
            .map(|n| IpAddr::V4(n.gateway))
    });
    berth_net::files::resolv_conf(&host, server, &c.config.net.dns_options())
}

/// After connect or disconnect: points a running container's resolv.conf
/// at the DNS server it now has (or no longer has), in place, since the
/// file is bind-mounted (docker rewrites it too).
pub(crate) fn refresh_resolv_conf(engine: &Engine, c: &Container, state: &NetState) -> Result<()> {
    let path = files_dir(engine, &c.id).join("resolv.conf");
    let text = resolv_conf(&engine.net()?, c, state);
    if fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(io_err(format!("writing {}", path.display())))
}

/// The names on the container's own /etc/hosts line: hostname, name,
/// short id and aliases, without repeats.
fn host_line_names(c: &Container, aliases: &[String]) -> String {
    let mut v: Vec<&str> = vec![c.config.hostname.as_str()];
    for n in [c.name.as_str(), &c.id[..12.min(c.id.len())]]
        .into_iter()
        .chain(aliases.iter().map(String::as_str))
    {
        if !n.is_empty() && !v.contains(&n) {
            v.push(n);
        }
    }
    v.join(" ")
}

/// The networks of a started container, as (id, name): what its state
/// file records, or the predefined `host` or `none` network it is on
/// (asked over `db`, the caller's connection). A `container:` one has
/// none of its own.
pub(crate) fn joined(engine: &Engine, db: &Db, c: &Container) -> Vec<(String, String)> {
    let mode = c.config.network_mode.as_str();
    if mode == "none" || mode == "host" {
        return on_predefined(db, c).into_iter().collect();
    }
    if mode.starts_with("container:") {
        return Vec::new();
    }
    read_state(engine, &c.id).map_or_else(Vec::new, |s| ids_and_names(&s))
}

/// The predefined network (`host` or `none`) `c` is on, as (id, name):
/// dockerd reports a connect to it at start and a disconnect at exit.
/// Its id made on first use; a failure to read it loses the event, not
/// the start or exit it goes with.
pub(crate) fn on_predefined(db: &Db, c: &Container) -> Option<(String, String)> {
    let mode = c.config.network_mode.as_str();
    if mode != "none" && mode != "host" {
        return None;
    }
    match berth_net::store::predefined(db.conn(), mode) {
        Ok(p) => Some((p.id, p.name)),
        Err(e) => {
            tracing::warn!(id = c.id, network = mode, error = %e, "reading a predefined network's id");
            None
        }
    }
}

fn ids_and_names(s: &NetState) -> Vec<(String, String)> {
    s.joined
        .iter()
        .map(|j| (j.network_id.clone(), j.attachment.network.clone()))
        .collect()
}

/// Undoes [`setup`]: ports, attachments, namespace, state. Repeatable and
/// cheap for containers that never had a network (one stat, one open).
/// The networks it left, as (id, name), are added to `left`.
pub(crate) fn release(engine: &Engine, id: &str, left: &mut Vec<(String, String)>) -> Result<()> {
    let path = netns::path(&engine.paths.runroot, id);
    let state = read_state(engine, id);
    if state.is_none() && !path.exists() {
        return Ok(());
    }
    if let Some(s) = &state {
        left.extend(ids_and_names(s));
    }
    let net = engine.net()?;
    crate::timing::mark("release: net opened");
    let mut errors = Vec::new();
    let joined: Vec<String> = match &state {
        Some(s) => s
            .joined
            .iter()
            .map(|j| j.attachment.network.clone())
            .collect(),
        // Died between namespace and state file: the leases know.
        None => match net.leases_of(id) {
            Ok(l) => l.into_iter().map(|l| l.network).collect(),
            Err(e) => {
                errors.push(e.to_string());
                Vec::new()
            }
        },
    };
    // Deleting a veth waits for an RCU grace period (15-20 ms, most of a
    // teardown). Unmounting the namespace instead lets the kernel destroy
    // it, and with it both ends of every veth, in its own cleanup work,
    // off our path. Only while other containers still live in the
    // namespace (`--network container:`) must the veths go now, since the
    // addresses return to the pool.
    let shared = has_joiners(engine, id);
    for network in &joined {
        let done = if shared {
            net.detach(network, id)
        } else {
            net.release_lease(network, id)
        };
        if let Err(e) = done {
            errors.push(e.to_string());
        }
    }
    crate::timing::mark("release: leases");
    let unpublished = match &state {
        Some(s) if s.ports.is_empty() => Ok(()),
        Some(s) => match s.joined.first() {
            Some(j) => net.unpublish(&berth_net::PortHandle {
                container: id.to_string(),
                ip: j.attachment.ip,
                ip6: j.attachment.ip6,
                ports: s.ports.clone(),
            }),
            None => net.unpublish_container(id),
        },
        // Died before its state was written: look everywhere.
        None => net.unpublish_container(id),
    };
    if let Err(e) = unpublished {
        errors.push(e.to_string());
    }
    if let Err(e) = netns::remove(&path) {
        errors.push(e.to_string());
    }
    crate::timing::mark("release: netns removed");
    match fs::remove_file(state_path(engine, id)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(format!("removing the network state: {e}")),
    }
    Error::teardown(id, errors)
}

/// True if a running container shares `id`'s namespace.
fn has_joiners(engine: &Engine, id: &str) -> bool {
    let Ok(db) = engine.db() else {
        // Unknown: the slow, always-correct teardown.
        return true;
    };
    let pattern = format!("%\"NetworkMode\":\"container:{id}\"%");
    db.conn()
        .query_row(
            "SELECT count(*) FROM containers WHERE state = 'running' AND config LIKE ?1",
            [pattern],
            |r| r.get::<_, i64>(0),
        )
        .map_or(true, |n| n > 0)
}

/// Points the spec's network namespace at the sandbox's and binds its
/// files over the image's, as docker does (rprivate, so nothing mounted
/// on them propagates back).
pub(crate) fn apply(spec: &mut oci_spec::runtime::Spec, sb: &Sandbox) -> Result<()> {
    let mut v = serde_json::to_value(&*spec).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let ns = v["linux"]["namespaces"]
        .as_array_mut()
        .ok_or_else(|| Error::InvalidArgument("spec without namespaces".into()))?;
    if let Some(path) = &sb.netns {
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "network", "path": path}));
    }
    if let (Some(files), Some(mounts)) = (&sb.files, v["mounts"].as_array_mut()) {
        for (f, name) in files.iter().zip(FILES) {
            let dest = format!("/etc/{name}");
            mounts.retain(|m| m["destination"] != dest.as_str());
            mounts.push(json!({"destination": dest, "type": "bind", "source": f,
                               "options": ["rbind", "rprivate"]}));
        }
    }
    *spec = serde_json::from_value(v).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_sets_the_namespace_path_and_files() {
        let mut s = oci_spec::runtime::Spec::default();
        let sb = Sandbox {
            netns: Some("/run/berth/netns/abc".into()),
            files: Some(FILES.map(|f| PathBuf::from("/c").join(f))),
        };
        apply(&mut s, &sb).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        let nets: Vec<_> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "network")
            .collect();
        assert_eq!(nets.len(), 1);
        assert_eq!(nets[0]["path"], "/run/berth/netns/abc");
        let m = v["mounts"].as_array().unwrap();
        assert!(m
            .iter()
            .any(|m| m["destination"] == "/etc/resolv.conf" && m["source"] == "/c/resolv.conf"));
    }
}
