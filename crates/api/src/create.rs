//! `POST /containers/create`: docker's Config, HostConfig and
//! NetworkingConfig mapped onto the engine's [`RunOptions`]. Every field
//! is either mapped or, when set to anything but its zero value, refused
//! with a 400 naming it: a field silently dropped would run a container
//! other than the one asked for.

use std::collections::{BTreeMap, HashSet};

use berth_engine::health::Healthcheck;
use berth_engine::hostconfig::{self as hc, HostConfig};
use berth_engine::lifecycle::Update;
use berth_engine::network::{Endpoint, DEFAULT_NETWORK};
use berth_engine::restart::RestartPolicy;
use berth_engine::{Network, RunOptions};
use hyper::StatusCode;
use serde_json::{json, Map, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

type R<T> = Result<T, ApiError>;

/// The zero value of a field as Go's JSON writes it.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// One JSON object's fields, each taken once; what is left must be zero.
struct Fields<'a> {
    obj: Option<&'a Map<String, Value>>,
    section: &'static str,
    taken: HashSet<String>,
}

impl<'a> Fields<'a> {
    fn new(v: Option<&'a Value>, section: &'static str) -> R<Fields<'a>> {
        let obj = match v {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "{section} must be an object"
                )))
            }
        };
        Ok(Fields {
            obj,
            section,
            taken: HashSet::new(),
        })
    }

    fn bad(&self, k: &str, want: &str) -> ApiError {
        ApiError::bad_request(format!("{}{k}: expected {want}", self.prefix()))
    }

    fn prefix(&self) -> String {
        if self.section.is_empty() {
            String::new()
        } else {
            format!("{}.", self.section)
        }
    }

    fn get(&mut self, k: &str) -> Option<&'a Value> {
        self.taken.insert(k.to_string());
        self.obj.and_then(|o| o.get(k)).filter(|v| !v.is_null())
    }

    fn string(&mut self, k: &str) -> R<Option<String>> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(k, "a string")),
        }
    }

    fn boolean(&mut self, k: &str) -> R<bool> {
        match self.get(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.bad(k, "a boolean")),
        }
    }

    fn int(&mut self, k: &str) -> R<Option<i64>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.bad(k, "an integer")),
        }
    }

    /// A list of strings; docker's strslice also takes one string.
    fn strings(&mut self, k: &str) -> R<Option<Vec<String>>> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| self.bad(k, "a list of strings")),
            Some(_) => Err(self.bad(k, "a list of strings")),
        }
    }

    fn list(&mut self, k: &str) -> R<Vec<String>> {
        Ok(self.strings(k)?.unwrap_or_default())
    }

    fn string_map(&mut self, k: &str) -> R<BTreeMap<String, String>> {
        match self.get(k) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(o)) => o
                .iter()
                .map(|(k2, v)| v.as_str().map(|s| (k2.clone(), s.to_string())))
                .collect::<Option<_>>()
                .ok_or_else(|| self.bad(k, "an object of strings")),
            Some(_) => Err(self.bad(k, "an object of strings")),
        }
    }

    /// The keys of an object (`ExposedPorts`, `Volumes`).
    fn keys(&mut self, k: &str) -> R<Vec<String>> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Object(o)) => Ok(o.keys().cloned().collect()),
            Some(_) => Err(self.bad(k, "an object")),
        }
    }

    /// docker's `[{"Path": ..., "Rate": ...}]` (null or absent: none).
    fn throttles(&mut self, k: &str) -> R<Vec<hc::ThrottleDevice>> {
        let want = "a list of {\"Path\": \"/dev/...\", \"Rate\": N}";
        let Some(v) = self.get(k) else {
            return Ok(Vec::new());
        };
        let list = v.as_array().ok_or_else(|| self.bad(k, want))?;
        list.iter()
            .map(|t| match (t["Path"].as_str(), t["Rate"].as_u64()) {
                (Some(path), Some(rate)) if path.starts_with("/dev/") => Ok(hc::ThrottleDevice {
                    path: path.to_string(),
                    rate,
                }),
                _ => Err(self.bad(k, want)),
            })
            .collect()
    }

    /// Accepted whatever it holds: what only the client acts on.
    fn client_side(&mut self, k: &str) {
        self.taken.insert(k.to_string());
    }

    /// Everything not taken must be its zero value.
    fn finish(self) -> R<()> {
        let Some(o) = self.obj else { return Ok(()) };
        for (k, v) in o {
            if !self.taken.contains(k) && !is_zero(v) {
                return Err(ApiError::bad_request(format!(
                    "{}{k} is not supported by berth",
                    self.prefix()
                )));
            }
        }
        Ok(())
    }
}

/// What a create asks for besides the options: the tty's first size.
pub struct Parsed {
    pub opts: RunOptions,
    pub console: Option<(u16, u16)>,
}

pub fn parse(body: &Value, name: Option<String>) -> R<Parsed> {
    let mut cfg = Fields::new(Some(body), "")?;
    let image = cfg
        .string("Image")?
        .ok_or_else(|| ApiError::bad_request("Config.Image is required"))?;
    let mut opts = RunOptions {
        image,
        name,
        hostname: cfg.string("Hostname")?,
        domainname: cfg.string("Domainname")?,
        user: cfg.string("User")?,
        workdir: cfg.string("WorkingDir")?,
        env: cfg.list("Env")?,
        labels: cfg.string_map("Labels")?,
        stop_signal: cfg.string("StopSignal")?,
        stop_timeout: cfg.int("StopTimeout")?,
        tty: cfg.boolean("Tty")?,
        open_stdin: cfg.boolean("OpenStdin")?,
        stdin_once: cfg.boolean("StdinOnce")?,
        healthcheck: healthcheck(cfg.get("Healthcheck"))?,
        ..RunOptions::default()
    };
    let mut cmd = cfg.list("Cmd")?;
    match cfg.strings("Entrypoint")? {
        None => {}
        Some(e) if e.is_empty() => {}
        Some(mut e) => {
            // The engine takes one entrypoint word: the rest lead the
            // command, which gives the same process arguments.
            let first = e.remove(0);
            e.append(&mut cmd);
            cmd = e;
            opts.entrypoint = Some(first);
        }
    }
    opts.cmd = cmd;
    opts.net.expose = cfg.keys("ExposedPorts")?;
    let mut anonymous = Vec::new();
    for v in cfg.keys("Volumes")? {
        anonymous.push(berth_engine::volumes::parse_volume_flag(&v)?);
    }
    for k in ["AttachStdin", "AttachStdout", "AttachStderr"] {
        cfg.client_side(k);
    }
    let network_disabled = cfg.boolean("NetworkDisabled")?;
    let mac = cfg.string("MacAddress")?;
    let mut host = Fields::new(cfg.get("HostConfig"), "HostConfig")?;
    let netcfg = cfg.get("NetworkingConfig");
    cfg.finish()?;

    let (h, console) = host_config(&mut host, &mut opts, anonymous)?;
    opts.host = h;
    let mode = host.string("NetworkMode")?;
    host.finish()?;
    opts.network = network(mode.as_deref(), netcfg, network_disabled, mac)?;
    Ok(Parsed { opts, console })
}

fn host_config(
    f: &mut Fields<'_>,
    opts: &mut RunOptions,
    anonymous: Vec<hc::MountSpec>,
) -> R<(HostConfig, Option<(u16, u16)>)> {
    let mut h = HostConfig {
        memory: f.int("Memory")?.unwrap_or(0),
        memory_swap: f.int("MemorySwap")?.unwrap_or(0),
        memory_reservation: f.int("MemoryReservation")?.unwrap_or(0),
        nano_cpus: f.int("NanoCpus")?.unwrap_or(0),
        cpu_shares: f.int("CpuShares")?.unwrap_or(0),
        cpu_period: f.int("CpuPeriod")?.unwrap_or(0),
        cpu_quota: f.int("CpuQuota")?.unwrap_or(0),
        cpuset_cpus: f.string("CpusetCpus")?.unwrap_or_default(),
        cpuset_mems: f.string("CpusetMems")?.unwrap_or_default(),
        device_cgroup_rules: f.list("DeviceCgroupRules")?,
        annotations: f.string_map("Annotations")?,
        // docker's client sends -1 for "the kernel's default".
        memory_swappiness: f.int("MemorySwappiness")?.filter(|n| *n != -1),
        blkio_device_read_bps: f.throttles("BlkioDeviceReadBps")?,
        blkio_device_write_bps: f.throttles("BlkioDeviceWriteBps")?,
        blkio_device_read_iops: f.throttles("BlkioDeviceReadIOps")?,
        blkio_device_write_iops: f.throttles("BlkioDeviceWriteIOps")?,
        // docker: 0 and null both leave the limit unset.
        pids_limit: f.int("PidsLimit")?.filter(|n| *n != 0),
        cap_add: f.list("CapAdd")?,
        cap_drop: f.list("CapDrop")?,
        privileged: f.boolean("Privileged")?,
        security_opt: f.list("SecurityOpt")?,
        readonly_rootfs: f.boolean("ReadonlyRootfs")?,
        shm_size: f.int("ShmSize")?.unwrap_or(0),
        sysctls: f.string_map("Sysctls")?,
        oom_kill_disable: f.boolean("OomKillDisable")?,
        oom_score_adj: i32::try_from(f.int("OomScoreAdj")?.unwrap_or(0))
            .map_err(|_| ApiError::bad_request("HostConfig.OomScoreAdj is out of range"))?,
        group_add: f.list("GroupAdd")?,
        tmpfs: f.string_map("Tmpfs")?,
        init: f.boolean("Init")?,
        ..HostConfig::default()
    };
    if !h.cpuset_cpus.is_empty() {
        hc::parse_cpuset("HostConfig.CpusetCpus", &h.cpuset_cpus)?;
    }
    if !h.cpuset_mems.is_empty() {
        hc::parse_cpuset("HostConfig.CpusetMems", &h.cpuset_mems)?;
    }
    for (p, o) in h.tmpfs.clone() {
        let spec = if o.is_empty() {
            p.clone()
        } else {
            format!("{p}:{o}")
        };
        hc::parse_tmpfs(&spec)?;
    }
    if let Some(Value::Array(list)) = f.get("Ulimits") {
        for u in list {
            let (Some(name), Some(soft), Some(hard)) =
                (u["Name"].as_str(), u["Soft"].as_u64(), u["Hard"].as_u64())
            else {
                return Err(ApiError::bad_request(
                    "HostConfig.Ulimits: want Name, Soft and Hard",
                ));
            };
            h.ulimits.retain(|x| x.name != name);
            h.ulimits
                .push(hc::parse_ulimit(&format!("{name}={soft}:{hard}"))?);
        }
    }
    if let Some(Value::Array(list)) = f.get("Devices") {
        for d in list {
            let host = d["PathOnHost"].as_str().unwrap_or_default();
            let ctr = d["PathInContainer"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or(host);
            let perms = d["CgroupPermissions"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("rwm");
            h.devices
                .push(hc::parse_device(&format!("{host}:{ctr}:{perms}"))?);
        }
    }
    let mut mounts = Vec::new();
    for b in f.list("Binds")? {
        mounts.push(berth_engine::volumes::parse_volume_flag(&b)?);
    }
    if let Some(Value::Array(list)) = f.get("Mounts") {
        for m in list {
            mounts.push(mount(m)?);
        }
    }
    // As dockerd: a `Volumes` path that a bind or mount already covers
    // gets no anonymous volume (docker-compose sends a named volume in
    // both).
    for v in anonymous {
        if !mounts.iter().any(|m| m.target == v.target) {
            mounts.push(v);
        }
    }
    h.mounts = mounts;
    if let Some(rp) = f.get("RestartPolicy") {
        h.restart_policy = restart_policy(rp)?.unwrap_or_default();
    }
    opts.auto_remove = f.boolean("AutoRemove")?;
    opts.volumes_from = f.list("VolumesFrom")?;
    opts.net.dns = f.list("Dns")?;
    opts.net.dns_options = f.list("DnsOptions")?;
    opts.net.dns_search = f.list("DnsSearch")?;
    opts.net.add_hosts = f.list("ExtraHosts")?;
    opts.net.links = f.list("Links")?;
    opts.net.publish_all = f.boolean("PublishAllPorts")?;
    if let Some(pb) = f.get("PortBindings") {
        let Value::Object(pb) = pb else {
            return Err(ApiError::bad_request(
                "HostConfig.PortBindings must be an object",
            ));
        };
        for (port, bindings) in pb {
            let list = bindings.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                opts.net.expose.push(port.clone());
            }
            for b in list {
                let ip = b["HostIp"].as_str().unwrap_or("");
                let hp = b["HostPort"].as_str().unwrap_or("");
                opts.net.publish.push(match (ip, hp) {
                    ("", "") => port.clone(),
                    ("", hp) => format!("{hp}:{port}"),
                    (ip, hp) => format!("{ip}:{hp}:{port}"),
                });
            }
        }
    }
    if let Some(lc) = f.get("LogConfig") {
        let kind = lc["Type"].as_str().filter(|k| !k.is_empty());
        let mut cfg = Vec::new();
        match &lc["Config"] {
            Value::Null => {}
            Value::Object(o) => {
                for (k, v) in o {
                    let v = v.as_str().ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "HostConfig.LogConfig.Config.{k}: expected a string"
                        ))
                    })?;
                    cfg.push(format!("{k}={v}"));
                }
            }
            _ => {
                return Err(ApiError::bad_request(
                    "HostConfig.LogConfig.Config: expected an object",
                ))
            }
        }
        opts.log_config = berth_engine::logfile::LogConfig::parse(kind, &cfg)?;
    }
    if let Some(rt) = f.string("Runtime")? {
        if rt != "berth" && rt != "runc" {
            return Err(ApiError::bad_request(format!(
                "HostConfig.Runtime {rt:?} is not supported: berth runs containers itself"
            )));
        }
    }
    f.client_side("ContainerIDFile");
    let console = match f.get("ConsoleSize") {
        None => None,
        Some(v) => match (v[0].as_u64(), v[1].as_u64()) {
            (Some(0), Some(0)) => None,
            (Some(r), Some(c)) => Some((
                u16::try_from(r)
                    .map_err(|_| ApiError::bad_request("HostConfig.ConsoleSize is out of range"))?,
                u16::try_from(c)
                    .map_err(|_| ApiError::bad_request("HostConfig.ConsoleSize is out of range"))?,
            )),
            _ => {
                return Err(ApiError::bad_request(
                    "HostConfig.ConsoleSize: want [height, width]",
                ))
            }
        },
    };
    Ok((h, console))
}

/// Config.Healthcheck: docker's HealthConfig, over the image's check as
/// `--health-*` is; `{"Test": ["NONE"]}` turns it off, and all zero (as
/// compose sends it, with nulls) is the image's check.
fn healthcheck(v: Option<&Value>) -> R<Option<Healthcheck>> {
    let Some(v) = v else { return Ok(None) };
    let mut f = Fields::new(Some(v), "Healthcheck")?;
    let h = Healthcheck {
        test: f.list("Test")?,
        interval: f.int("Interval")?.unwrap_or(0),
        timeout: f.int("Timeout")?.unwrap_or(0),
        start_period: f.int("StartPeriod")?.unwrap_or(0),
        start_interval: f.int("StartInterval")?.unwrap_or(0),
        retries: f.int("Retries")?.unwrap_or(0),
    };
    f.finish()?;
    Ok((h != Healthcheck::default()).then_some(h))
}

/// docker's `RestartPolicy` object; `None` for an empty name.
fn restart_policy(rp: &Value) -> R<Option<RestartPolicy>> {
    let name = rp["Name"].as_str().unwrap_or("");
    let count = rp["MaximumRetryCount"].as_i64().unwrap_or(0);
    let spec = match (name, count) {
        ("", _) => return Ok(None),
        ("on-failure", n) if n > 0 => format!("on-failure:{n}"),
        (n, _) => n.to_string(),
    };
    Ok(Some(RestartPolicy::parse(&spec)?))
}

/// `POST /containers/{id}/update`'s body: docker's Resources (its zero
/// values mean "unchanged") and RestartPolicy.
pub fn update_body(body: &Value) -> R<Update> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "invalid JSON: the update body must be an object",
        ));
    }
    let mut f = Fields::new(Some(body), "")?;
    let positive = |v: Option<i64>| v.filter(|n| *n != 0);
    let u = Update {
        memory: positive(f.int("Memory")?),
        memory_swap: positive(f.int("MemorySwap")?),
        memory_reservation: positive(f.int("MemoryReservation")?),
        nano_cpus: positive(f.int("NanoCpus")?),
        cpu_shares: positive(f.int("CpuShares")?),
        cpu_period: positive(f.int("CpuPeriod")?),
        cpu_quota: positive(f.int("CpuQuota")?),
        cpuset_cpus: f.string("CpusetCpus")?.filter(|c| !c.is_empty()),
        // docker: 0 and -1 both lift the limit.
        pids_limit: f.int("PidsLimit")?.map(|n| if n == 0 { -1 } else { n }),
        restart: match f.get("RestartPolicy") {
            None => None,
            Some(rp) => restart_policy(rp)?,
        },
    };
    f.finish()?;
    Ok(u)
}

/// One `HostConfig.Mounts` entry, as the `--mount` flag would say it.
fn mount(m: &Value) -> R<hc::MountSpec> {
    let mut f = Fields::new(Some(m), "HostConfig.Mounts")?;
    let mut parts = Vec::new();
    if let Some(t) = f.string("Type")? {
        parts.push(format!("type={t}"));
    }
    if let Some(s) = f.string("Source")? {
        parts.push(format!("source={s}"));
    }
    let target = f
        .string("Target")?
        .ok_or_else(|| ApiError::bad_request("HostConfig.Mounts: Target is required"))?;
    parts.push(format!("target={target}"));
    if f.boolean("ReadOnly")? {
        parts.push("readonly".into());
    }
    f.client_side("Consistency");
    if let Some(b) = f.get("BindOptions") {
        let mut bf = Fields::new(Some(b), "HostConfig.Mounts.BindOptions")?;
        if let Some(p) = bf.string("Propagation")? {
            parts.push(format!("bind-propagation={p}"));
        }
        bf.finish()?;
    }
    if let Some(v) = f.get("VolumeOptions") {
        let mut vf = Fields::new(Some(v), "HostConfig.Mounts.VolumeOptions")?;
        if vf.boolean("NoCopy")? {
            parts.push("volume-nocopy".into());
        }
        vf.finish()?;
    }
    if let Some(t) = f.get("TmpfsOptions") {
        let mut tf = Fields::new(Some(t), "HostConfig.Mounts.TmpfsOptions")?;
        if let Some(n) = tf.int("SizeBytes")?.filter(|n| *n > 0) {
            parts.push(format!("tmpfs-size={n}"));
        }
        if let Some(mode) = tf.int("Mode")?.filter(|n| *n > 0) {
            parts.push(format!("tmpfs-mode={mode:o}"));
        }
        tf.finish()?;
    }
    f.finish()?;
    Ok(berth_engine::volumes::parse_mount_flag(&parts.join(","))?)
}

/// An address field of IPAMConfig, when given.
fn parse_ip<T: std::str::FromStr>(v: Option<String>, field: &str) -> R<Option<T>> {
    v.map(|s| {
        s.parse()
            .map_err(|_| ApiError::bad_request(format!("invalid {field} {s:?}")))
    })
    .transpose()
}

fn network(
    mode: Option<&str>,
    netcfg: Option<&Value>,
    disabled: bool,
    mac: Option<String>,
) -> R<Network> {
    let mut eps: Vec<Endpoint> = Vec::new();
    let mut nf = Fields::new(netcfg, "NetworkingConfig")?;
    if let Some(Value::Object(cfgs)) = nf.get("EndpointsConfig") {
        for (name, e) in cfgs {
            let mut ef = Fields::new(Some(e), "NetworkingConfig.EndpointsConfig")?;
            let (ip, ip6) = match ef.get("IPAMConfig") {
                None => (None, None),
                Some(ipam) => {
                    let mut f =
                        Fields::new(Some(ipam), "NetworkingConfig.EndpointsConfig.IPAMConfig")?;
                    let ip = f.string("IPv4Address")?;
                    let ip6 = f.string("IPv6Address")?;
                    f.finish()?;
                    (parse_ip(ip, "IPv4Address")?, parse_ip(ip6, "IPv6Address")?)
                }
            };
            let aliases = ef.list("Aliases")?;
            let mac = ef.string("MacAddress")?;
            // Filled in by docker's own inspect output; clients echo them.
            for k in [
                "NetworkID",
                "EndpointID",
                "Gateway",
                "IPAddress",
                "IPPrefixLen",
                "DNSNames",
            ] {
                ef.client_side(k);
            }
            ef.finish()?;
            eps.push(Endpoint {
                // docker's client (28) keys the endpoint of a run without
                // --network by the mode's "default" too.
                network: if name == "default" {
                    DEFAULT_NETWORK.to_string()
                } else {
                    name.clone()
                },
                ip,
                ip6,
                aliases,
                mac,
            });
        }
    }
    nf.finish()?;
    if disabled {
        return Ok(Network::None);
    }
    let mut net = match mode {
        None | Some("default") => Network::parse("default")?,
        Some(m) => Network::parse(m)?,
    };
    if let Network::Networks(list) = &mut net {
        let first = list[0].network.clone();
        // The mode's network first (its endpoint settings if given), then
        // the others the client named.
        if let Some(pos) = eps.iter().position(|e| e.network == first) {
            list[0] = eps.remove(pos);
        }
        list.append(&mut eps);
        if let Some(m) = mac {
            list[0].mac = Some(m);
        }
    } else if !eps.is_empty() || mac.is_some() {
        return Err(ApiError::bad_request(format!(
            "NetworkingConfig and MacAddress need a network; NetworkMode is {:?}",
            mode.unwrap_or("")
        )));
    }
    Ok(net)
}

pub async fn create(mut ctx: Ctx) -> Result<Response, ApiError> {
    let name = ctx
        .query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(String::from);
    let platform = ctx
        .query
        .get("platform")
        .filter(|p| !p.is_empty())
        .map(String::from);
    let body: Value = ctx.json().await?;
    let parsed = parse(&body, name)?;
    let mut opts = parsed.opts;
    let warnings: Vec<&str> = opts.discard_host_ports().into_iter().collect();
    let c = ctx
        .api
        .blocking(move |e| {
            if let Some(p) = &platform {
                let store = e.store()?;
                berth_engine::pull::check_platform(&store, &opts.image, p)?;
            }
            e.create(&opts)
        })
        .await?;
    // Its start's monitor loads while the client attaches and asks to
    // start: off the start's path, and not beside a container's exit.
    let api = ctx.api.clone();
    tokio::spawn(async move {
        if let Err(e) = api.blocking(|e| e.hold_spare()).await {
            tracing::warn!(error = %e.message, "starting a spare monitor");
        }
    });
    if let Some(size) = parsed.console {
        ctx.api.set_console(&c.id, size);
    }
    Ok(body::json(
        StatusCode::CREATED,
        &json!({"Id": c.id, "Warnings": warnings}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> R<RunOptions> {
        parse(&v, None).map(|p| p.opts)
    }

    #[test]
    fn an_update_body_takes_the_cfs_period_and_quota() {
        // What docker 20.10 sends for `docker update --cpu-period 200000
        // --cpu-quota 50000`: every other field at its zero, unchanged.
        let u = update_body(
            &json!({"CpuPeriod": 200000, "CpuQuota": 50000, "CpuShares": 0,
            "Memory": 0, "NanoCpus": 0, "CpusetCpus": "", "RestartPolicy": {"Name": ""}}),
        )
        .unwrap();
        assert_eq!((u.cpu_period, u.cpu_quota), (Some(200000), Some(50000)));
        assert_eq!((u.cpu_shares, u.nano_cpus, u.memory), (None, None, None));
        let u = update_body(&json!({"CpuQuota": -1})).unwrap();
        assert_eq!((u.cpu_period, u.cpu_quota), (None, Some(-1)));
    }

    #[test]
    fn dockers_create_body_maps_onto_run_options() {
        // What Debian's docker 20.10 sends for `docker run -d --rm -e A=1
        // -p 8080:80 -v /data --network none bb sh -c 'echo hi'`, trimmed of
        // nothing but fields at their zero values.
        let o = p(json!({
            "Hostname": "", "User": "", "AttachStdin": false, "AttachStdout": true,
            "Tty": false, "OpenStdin": false, "Env": ["A=1"], "Cmd": ["sh", "-c", "echo hi"],
            "Image": "bb", "Volumes": {"/data": {}}, "WorkingDir": "", "Entrypoint": null,
            "OnBuild": null, "Labels": {"k": "v"},
            "HostConfig": {
                "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
                "NetworkMode": "none", "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": true,
                "VolumeDriver": "", "VolumesFrom": null, "CapAdd": null, "CapDrop": null,
                "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null,
                "GroupAdd": null, "IpcMode": "", "Cgroup": "", "Links": null, "OomScoreAdj": 0,
                "PidMode": "", "Privileged": false, "PublishAllPorts": false, "ReadonlyRootfs": false,
                "SecurityOpt": null, "UTSMode": "", "UsernsMode": "", "ShmSize": 0,
                "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
                "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [], "CpuPeriod": 0,
                "CpuQuota": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
                "DeviceCgroupRules": null, "DeviceRequests": null, "KernelMemory": 0,
                "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": -1,
                "OomKillDisable": false, "PidsLimit": null, "Ulimits": null,
                "MaskedPaths": null, "ReadonlyPaths": null
            },
            "NetworkingConfig": {"EndpointsConfig": {}}
        }))
        .unwrap();
        assert_eq!(o.image, "bb");
        assert_eq!(o.cmd, ["sh", "-c", "echo hi"]);
        assert_eq!(o.env, ["A=1"]);
        assert!(o.auto_remove);
        assert_eq!(o.network, Network::None);
        assert_eq!(o.net.publish, ["8080:80/tcp"]);
        assert_eq!(o.host.mounts.len(), 1);
        assert_eq!(o.host.mounts[0].target, "/data");
        assert_eq!(o.labels["k"], "v");
        assert_eq!(o.host.pids_limit, None);
        // Block device rates as docker sends them; -1 swappiness is the kernel's.
        let o = p(json!({"Image": "bb", "HostConfig": {
            "BlkioDeviceReadBps": [{"Path": "/dev/vda", "Rate": 1048576}],
            "BlkioDeviceWriteIOps": [{"Path": "/dev/vdb", "Rate": 40}],
            "BlkioDeviceWriteBps": null, "CpuPeriod": 50000, "CpuQuota": 25000,
            "MemorySwappiness": -1}}))
        .unwrap();
        assert_eq!(
            o.host.blkio_device_read_bps,
            [hc::ThrottleDevice {
                path: "/dev/vda".into(),
                rate: 1048576
            }]
        );
        assert_eq!(o.host.blkio_device_write_iops[0].rate, 40);
        assert!(o.host.blkio_device_write_bps.is_empty());
        assert_eq!((o.host.cpu_period, o.host.cpu_quota), (50000, 25000));
        assert_eq!(o.host.memory_swappiness, None);
        for bad in [
            json!([{"Path": "vda", "Rate": 1}]),
            json!({"Path": "/dev/vda"}),
            json!([{"Path": "/dev/vda", "Rate": -1}]),
        ] {
            let e = p(json!({"Image": "bb", "HostConfig": {"BlkioDeviceReadBps": bad}}))
                .err()
                .unwrap();
            assert!(
                e.message.contains("HostConfig.BlkioDeviceReadBps"),
                "{}",
                e.message
            );
        }
        // docker-py names a bind's target in Volumes too: one mount, the bind.
        let o = p(json!({"Image": "bb", "Volumes": {"/s": {}, "/v": {}},
            "HostConfig": {"Binds": ["/run/x.sock:/s:rw"]}}))
        .unwrap();
        let m: Vec<(&str, &str)> = o
            .host
            .mounts
            .iter()
            .map(|m| (m.target.as_str(), m.source.as_str()))
            .collect();
        assert_eq!(m, [("/s", "/run/x.sock"), ("/v", "")]);
    }

    #[test]
    fn a_volumes_path_under_a_bind_gets_no_anonymous_volume() {
        // docker-compose 1.29's body for a service with `shared:/shared`.
        let o = p(
            json!({"Image": "bb", "Volumes": {"/shared": {}, "/other": {}},
            "HostConfig": {"Binds": ["proj_shared:/shared:rw"]}}),
        )
        .unwrap();
        let m: Vec<_> = o
            .host
            .mounts
            .iter()
            .map(|m| (m.source.as_str(), m.target.as_str()))
            .collect();
        assert_eq!(m, [("proj_shared", "/shared"), ("", "/other")]);
    }

    #[test]
    fn healthchecks_as_compose_sends_them() {
        let o = p(
            json!({"Image": "bb", "Healthcheck": {"Test": ["CMD-SHELL", "test -e /ok"],
            "Interval": 1_000_000_000i64, "Timeout": 0, "Retries": 3, "StartPeriod": 0}}),
        )
        .unwrap();
        let h = o.healthcheck.unwrap();
        assert_eq!(
            (h.test.join(" "), h.interval, h.retries),
            ("CMD-SHELL test -e /ok".to_string(), 1_000_000_000, 3)
        );
        let o = p(json!({"Image": "bb", "Healthcheck": {"Test": ["NONE"]}})).unwrap();
        assert_eq!(o.healthcheck, Some(Healthcheck::none()));
        let o = p(json!({"Image": "bb", "Healthcheck": {"Test": []}})).unwrap();
        assert_eq!(o.healthcheck, None);
        assert!(p(json!({"Image": "bb", "Healthcheck": {"Interval": "1s"}})).is_err());
    }

    #[test]
    fn log_options_reach_the_engine() {
        let o = p(
            json!({"Image": "bb", "HostConfig": {"LogConfig": {"Type": "json-file",
            "Config": {"max-size": "1m", "max-file": "2"}}}}),
        )
        .unwrap();
        let l = o.log_config.limits().unwrap();
        assert_eq!((l.max_size, l.max_files), (Some(1_000_000), 2));
        let o = p(json!({"Image": "bb", "HostConfig": {"LogConfig": {"Type": "none"}}})).unwrap();
        assert!(!o.log_config.readable());
        let bad =
            json!({"Image": "bb", "HostConfig": {"LogConfig": {"Config": {"max-size": "x"}}}});
        assert_eq!(p(bad).unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn entrypoints_and_networks() {
        let o =
            p(json!({"Image": "bb", "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo x"]})).unwrap();
        assert_eq!(
            (o.entrypoint.as_deref(), o.cmd.as_slice()),
            (Some("/bin/sh"), &["-c".to_string(), "echo x".into()][..])
        );
        let o = p(json!({"Image": "bb", "Entrypoint": [""]})).unwrap();
        assert_eq!(o.entrypoint.as_deref(), Some(""));
        let o = p(json!({"Image": "bb", "HostConfig": {"NetworkMode": "web"},
            "NetworkingConfig": {"EndpointsConfig": {"web": {"Aliases": ["db"], "IPAMConfig": {"IPv4Address": "10.1.0.9"}}}}})).unwrap();
        let Network::Networks(eps) = o.network else {
            panic!()
        };
        assert_eq!(
            (eps[0].network.as_str(), eps[0].aliases.as_slice()),
            ("web", &["db".to_string()][..])
        );
        assert_eq!(eps[0].ip, Some("10.1.0.9".parse().unwrap()));
        let o = p(json!({"Image": "bb"})).unwrap();
        assert_eq!(o.network, Network::parse("default").unwrap());
        assert_eq!(o.healthcheck, None);
        let o = p(
            json!({"Image": "bb", "Healthcheck": {"Test": ["CMD-SHELL", "true"],
            "Interval": 1_000_000_000_i64, "Retries": 3}}),
        )
        .unwrap();
        let h = o.healthcheck.unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!((h.interval, h.retries, h.timeout), (1_000_000_000, 3, 0));
        // docker 28's `docker run` without --network: one endpoint, on the
        // default network, not a second network called "default".
        let o = p(json!({"Image": "bb", "HostConfig": {"NetworkMode": "default"},
            "NetworkingConfig": {"EndpointsConfig": {"default": {"MacAddress": "", "GwPriority": 0}}}}))
        .unwrap();
        assert_eq!(o.network, Network::parse("default").unwrap());
    }

    #[test]
    fn what_is_not_mapped_is_refused_by_name() {
        let e = p(json!({"Image": "bb", "HostConfig": {"PidMode": "host"}})).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.message, "HostConfig.PidMode is not supported by berth");
        let e = p(json!({"Image": "bb", "Shell": ["/bin/bash", "-c"]})).unwrap_err();
        assert_eq!(e.message, "Shell is not supported by berth");
        let e = p(json!({"Image": "bb", "Healthcheck": {"Test": ["CMD", "true"], "Every": 1}}))
            .unwrap_err();
        assert_eq!(e.message, "Healthcheck.Every is not supported by berth");
        let e =
            p(json!({"Image": "bb", "HostConfig": {"LogConfig": {"Type": "syslog"}}})).unwrap_err();
        assert!(e.message.contains("syslog"), "{}", e.message);
        let e = p(json!({"Cmd": ["x"]})).unwrap_err();
        assert_eq!(e.message, "Config.Image is required");
        let e = p(json!({"Image": "bb", "HostConfig": {"Memory": "lots"}})).unwrap_err();
        assert!(e.message.contains("HostConfig.Memory"), "{}", e.message);
    }
}
