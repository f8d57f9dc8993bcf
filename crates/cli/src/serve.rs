//! `berth serve`: the Docker Engine API on unix sockets (and loopback
//! TCP), over the same store as the CLI.

use anyhow::Result;
use berth_api::{Host, ServeOptions};
use berth_engine::Engine;
use clap::Args;

#[derive(Args)]
pub struct ServeArgs {
    /// Where to listen: unix:///PATH, tcp://127.0.0.1:PORT or fd://
    /// (systemd socket activation); repeatable.
    #[arg(short = 'H', long = "host", value_name = "HOST",
          default_value = concat!("unix://", "/run/berth/berth.sock"))]
    hosts: Vec<String>,
    /// The group that owns the unix sockets (default: docker, if it
    /// exists; root otherwise).
    #[arg(short = 'G', long)]
    group: Option<String>,
}

pub fn serve(engine: &Engine, a: ServeArgs) -> Result<u8> {
    let hosts = a
        .hosts
        .iter()
        .map(|h| h.parse::<Host>())
        .collect::<Result<Vec<_>, _>>()?;
    let opts = ServeOptions {
        hosts,
        group: a.group,
    };
    // dockerd starts the containers whose restart policy says so when it
    // starts: a failed one is reported, and does not keep the API down.
    match engine.boot() {
        Ok(tried) => {
            for (c, r) in tried {
                if let Err(e) = r {
                    eprintln!("berth: restarting {}: {e}", c.name);
                }
            }
        }
        Err(e) => eprintln!("berth: restarting containers: {e}"),
    }
    let shown: Vec<&str> = a.hosts.iter().map(String::as_str).collect();
    berth_api::serve(engine.clone().outliving_containers(), opts, || {
        eprintln!("berth: serving the Docker API on {}", shown.join(", "));
    })?;
    Ok(0)
}
