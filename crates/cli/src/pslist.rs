//! `ps`'s `--format`: its template fields. The `--filter`s are the
//! engine's (the API filters the same way).

use berth_engine::Container;
use serde_json::{json, Value};

use crate::format;

pub use berth_engine::filters::Filters;
pub use berth_engine::status::docker_state;

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

/// The networks `c` is on, by name, as `{{.Networks}}` shows them.
pub fn networks(engine: &berth_engine::Engine, c: &Container) -> String {
    match engine.network_settings(c)["Networks"].as_object() {
        Some(n) if !n.is_empty() => n.keys().cloned().collect::<Vec<_>>().join(","),
        _ => c.config.network_mode.clone(),
    }
}

/// `ps`'s columns by field, for `table` templates.
pub const HEADERS: [(&str, &str); 13] = [
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
    ("Size", "SIZE"),
];
