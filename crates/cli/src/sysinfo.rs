//! `berth version` and `berth info` (`system info`): what dockerd's
//! `/version` and `/info` answer (berth serve's own answers), shown as
//! docker's CLI shows them, or through `--format`.

use anyhow::Result;
use berth_engine::Engine;
use clap::Args;
use serde_json::{json, Value};

#[derive(Args)]
pub struct FormatArgs {
    /// A Go template over the answer (`json` for all of it).
    #[arg(short, long)]
    format: Option<String>,
}

/// The client's part, beside the server's `version`: berth is its own
/// server, so the same binary.
fn client(version: &Value) -> Value {
    json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": berth_api::API_VERSION,
        "Os": "linux",
        "Arch": version["Arch"],
    })
}

/// Renders `data` through `--format` (`json` is the whole answer).
fn formatted(format: &str, data: &Value) -> Result<String> {
    if format == "json" {
        return Ok(format!("{data}\n"));
    }
    let mut out = crate::template::Template::parse(format)?.render(data)?;
    out.push('\n');
    Ok(out)
}

pub fn version(a: FormatArgs) -> Result<u8> {
    let server = berth_api::version_json();
    let data = json!({"Client": client(&server), "Server": server});
    if let Some(f) = &a.format {
        print!("{}", formatted(f, &data)?);
        return Ok(0);
    }
    let s = |k: &str| server[k].as_str().unwrap_or_default().to_string();
    let os_arch = format!("{}/{}", s("Os"), s("Arch"));
    print!(
        "Client:\n Version:           {}\n API version:       {}\n OS/Arch:           {os_arch}\n\n\
         Server: berth {}\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {})\n  \
         OS/Arch:          {os_arch}\n  Kernel:           {}\n",
        data["Client"]["Version"].as_str().unwrap_or_default(),
        data["Client"]["ApiVersion"].as_str().unwrap_or_default(),
        s("Version"),
        s("Version"),
        s("ApiVersion"),
        s("MinAPIVersion"),
        s("KernelVersion"),
    );
    Ok(0)
}

pub fn info(engine: &Engine, a: FormatArgs) -> Result<u8> {
    let mut v = berth_api::info_json(engine, berth_api::api_minor())?;
    v["ClientInfo"] = client(&berth_api::version_json());
    if let Some(f) = &a.format {
        print!("{}", formatted(f, &v)?);
        return Ok(0);
    }
    print!("{}", text(&v));
    Ok(0)
}

/// docker's `info` text for an `/info` answer.
fn text(v: &Value) -> String {
    let s = |k: &str| match &v[k] {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        x => x.to_string(),
    };
    let list = |k: &str| {
        v["Plugins"][k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let mut out = format!(
        "Client:\n Version:    {}\n\nServer:\n Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n \
         Images: {}\n Server Version: {}\n Storage Driver: {}\n Logging Driver: {}\n Cgroup Driver: {}\n \
         Cgroup Version: {}\n Plugins:\n  Volume: {}\n  Network: {}\n  Log: {}\n",
        v["ClientInfo"]["Version"].as_str().unwrap_or_default(),
        s("Containers"),
        s("ContainersRunning"),
        s("ContainersPaused"),
        s("ContainersStopped"),
        s("Images"),
        s("ServerVersion"),
        s("Driver"),
        s("LoggingDriver"),
        s("CgroupDriver"),
        s("CgroupVersion"),
        list("Volume"),
        list("Network"),
        list("Log"),
    );
    out.push_str(&format!(
        " Default Runtime: {}\n Init Binary: {}\n Security Options:\n",
        s("DefaultRuntime"),
        s("InitBinary")
    ));
    for o in v["SecurityOptions"].as_array().into_iter().flatten() {
        // name=seccomp,profile=builtin -> "seccomp" and its "Profile: builtin".
        let mut parts = o.as_str().unwrap_or_default().split(',');
        if let Some(name) = parts.next() {
            out.push_str(&format!("  {}\n", name.trim_start_matches("name=")));
        }
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                let mut k = k.to_string();
                k[..1].make_ascii_uppercase();
                out.push_str(&format!("   {k}: {val}\n"));
            }
        }
    }
    out.push_str(&format!(
        " Kernel Version: {}\n Operating System: {}\n OSType: {}\n Architecture: {}\n CPUs: {}\n \
         Total Memory: {}\n Name: {}\n Docker Root Dir: {}\n Debug Mode: false\n Live Restore Enabled: {}\n",
        s("KernelVersion"),
        s("OperatingSystem"),
        s("OSType"),
        s("Architecture"),
        s("NCPU"),
        crate::manage::binary_size(v["MemTotal"].as_u64().unwrap_or(0)),
        s("Name"),
        s("DockerRootDir"),
        s("LiveRestoreEnabled"),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_text_has_dockers_lines() {
        let v = json!({"ClientInfo": {"Version": "0.1.0"}, "Containers": 3, "ContainersRunning": 1,
            "ContainersPaused": 0, "ContainersStopped": 2, "Images": 4, "ServerVersion": "0.1.0",
            "Driver": "overlay", "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
            "CgroupVersion": "1", "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
            "Log": ["json-file"]}, "DefaultRuntime": "berth", "InitBinary": "berth-init",
            "SecurityOptions": ["name=seccomp,profile=builtin"], "KernelVersion": "6.1", "OperatingSystem": "Debian",
            "OSType": "linux", "Architecture": "x86_64", "NCPU": 2, "MemTotal": 2147483648u64, "Name": "h",
            "DockerRootDir": "/var/lib/berth", "LiveRestoreEnabled": true});
        let t = text(&v);
        for line in [
            " Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n",
            " Storage Driver: overlay\n",
            "  Network: bridge host null\n",
            "  seccomp\n   Profile: builtin\n",
            " Total Memory: 2GiB\n",
            " Docker Root Dir: /var/lib/berth\n",
        ] {
            assert!(t.contains(line), "{line:?} in\n{t}");
        }
        assert_eq!(
            formatted("{{.Containers}} {{.ClientInfo.Version}}", &v).unwrap(),
            "3 0.1.0\n"
        );
    }
}
