//! `/_ping`, `/version` and `/info`: what clients read to negotiate the
//! API version and to describe the engine.

use hyper::{header, StatusCode};
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;
use crate::{API_VERSION, MIN_API_VERSION};

pub fn ping(head: bool) -> Response {
    let mut r = if head {
        body::empty(StatusCode::OK)
    } else {
        body::bytes(StatusCode::OK, "text/plain; charset=utf-8", b"OK".to_vec())
    };
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    r.headers_mut()
        .insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    r
}

/// Go's names for the machine (docker's clients print these).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn kernel() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

pub async fn version(_ctx: Ctx) -> Result<Response, ApiError> {
    Ok(body::json(StatusCode::OK, &version_json()))
}

/// dockerd's `/version` answer, which `berth version` shows as its server.
pub fn version_json() -> Value {
    let v = env!("CARGO_PKG_VERSION");
    json!({
            "Platform": {"Name": "berth"},
            "Components": [{
                "Name": "Engine",
                "Version": v,
                "Details": {
                    "ApiVersion": API_VERSION,
                    "MinAPIVersion": MIN_API_VERSION,
                    "Os": "linux",
                    "Arch": go_arch(),
                    "KernelVersion": kernel(),
                },
            }],
            "Version": v,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
            "Arch": go_arch(),
            "KernelVersion": kernel(),
    })
}

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

fn sysctl_on(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1")
}

fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

pub async fn info(ctx: Ctx) -> Result<Response, ApiError> {
    let minor = ctx.minor;
    let v = ctx.api.blocking(move |e| info_json(e, minor)).await?;
    Ok(body::json(StatusCode::OK, &v))
}

/// dockerd's `/info` answer for API version 1.`minor`, which `berth
/// info` shows too.
pub fn info_json(e: &berth_engine::Engine, minor: u32) -> berth_engine::Result<Value> {
    let (containers, images, driver) = (|| -> berth_engine::Result<_> {
        let list = e.list()?;
        let store = berth_engine::images::open(&e.paths)?;
        let images = store.images().map_err(berth_engine::Error::from)?.len();
        let driver = store.snapshotter().name().to_string();
        let states: Vec<&'static str> = list
            .iter()
            .map(|c| {
                if c.state == berth_engine::State::Running && e.is_paused(&c.id) {
                    "paused"
                } else {
                    c.state.as_str()
                }
            })
            .collect();
        Ok((states, images, driver))
    })()?;
    let count = |s: &str| containers.iter().filter(|x| **x == s).count();
    let paths = &e.paths;
    let uname = rustix::system::uname();
    let mut v: Value = json!({
        "ID": "",
        "Containers": containers.len(),
        "ContainersRunning": count("running"),
        "ContainersPaused": count("paused"),
        "ContainersStopped": containers.len() - count("running") - count("paused"),
        "Images": images,
        "Driver": driver,
        "DriverStatus": [],
        "DockerRootDir": paths.root.display().to_string(),
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": null,
            "Log": ["json-file"],
        },
        "MemoryLimit": true,
        // The v1 memory controller's switch, which --oom-kill-disable sets.
        "OomKillDisable": std::path::Path::new("/sys/fs/cgroup/memory/memory.oom_control").exists(),
        "BridgeNfIptables": sysctl_on("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "BridgeNfIp6tables": sysctl_on("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
        "NGoroutines": 0,
        "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version(),
        "NEventsListener": 0,
        "KernelVersion": kernel(),
        "OperatingSystem": os_release(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": uname.machine().to_string_lossy(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": [],
            "IndexConfigs": {},
            "Mirrors": [],
        },
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": mem_total(),
        "Name": uname.nodename().to_string_lossy(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"berth": {"path": "berth-monitor"}},
        "DefaultRuntime": "berth",
        "Swarm": {"LocalNodeState": "inactive", "ControlAvailable": false, "NodeID": "", "NodeAddr": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "berth-init",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    });
    if minor >= 49 {
        // Published ports and masquerading are nftables rules of berth's
        // own table.
        v["FirewallBackend"] = json!({"Driver": "nftables"});
    }
    Ok(v)
}

/// `GET /system/df`: the disk images, containers and volumes take, from
/// the engine's `system df` figures (there is no build cache to report).
pub async fn df(ctx: Ctx) -> Result<Response, ApiError> {
    if ctx.query.get("type").is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::bad_request(
            "system/df with a type is not supported by berth yet",
        ));
    }
    let v = ctx
        .api
        .blocking(|e| {
            let store = berth_engine::images::open(&e.paths)?;
            let d = berth_engine::image_ops::df(e, &store)?;
            let list = store.images().map_err(berth_engine::Error::from)?;
            let images: Vec<Value> = d
                .images
                .images
                .iter()
                .map(|u| {
                    let n = d.containers_of(&u.id);
                    let created = list
                        .iter()
                        .find(|i| i.id == u.id)
                        .map_or(0, |i| i.created.timestamp());
                    let tags: Vec<String> = u.tags.iter().map(|t| t.familiar()).collect();
                    json!({
                        "Id": u.id.to_string(),
                        "ParentId": "",
                        "RepoTags": tags,
                        "RepoDigests": [],
                        "Created": created,
                        "Size": u.size,
                        "SharedSize": u.shared_size,
                        "VirtualSize": u.size,
                        "Labels": {},
                        "Containers": n,
                    })
                })
                .collect();
            let containers: Vec<Value> = d
                .containers
                .iter()
                .map(|c| {
                    let state = berth_engine::status::docker_state(e, &c.container);
                    let mut v = crate::containers::list_entry(e, &c.container, state);
                    v["SizeRw"] = json!(c.size);
                    v
                })
                .collect();
            let mut volumes = Vec::new();
            for u in e.volume_usage()? {
                let mut v = e.volume_inspect(&u.volume.name)?;
                v["UsageData"] = json!({"Size": u.size, "RefCount": u.containers});
                volumes.push(v);
            }
            Ok(json!({
                "LayersSize": d.images.layers_size,
                "Images": images,
                "Containers": containers,
                "Volumes": volumes,
                "BuildCache": [],
            }))
        })
        .await?;
    Ok(body::json(StatusCode::OK, &v))
}
