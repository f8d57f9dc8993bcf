//! `berth volume create/ls/inspect/rm/prune`, with docker's output.

use std::io::Write;

use anyhow::Result;
use berth_engine::Engine;
use clap::{Args, Subcommand};

use crate::format;

#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show volumes' details as JSON.
    Inspect(InspectArgs),
    /// Remove volumes.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused volumes.
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Set metadata (key=value).
    #[arg(short = 'l', long)]
    label: Vec<String>,
    /// Only the local driver exists.
    #[arg(short = 'd', long, default_value = "local")]
    driver: String,
    name: Option<String>,
}

#[derive(Args)]
pub struct LsArgs {
    #[arg(short, long)]
    quiet: bool,
    /// Only what these select: name=PART, label=K[=V], driver=local,
    /// dangling=true|false.
    #[arg(short, long)]
    filter: Vec<String>,
    /// `table`, `json` or a Go template over Name, Driver, Scope,
    /// Mountpoint and Labels.
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// A Go template over each volume's JSON.
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Remove even if a container uses it.
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// All unused volumes, not only anonymous ones.
    #[arg(short, long)]
    all: bool,
    /// Do not ask for confirmation (berth never asks).
    #[arg(short, long)]
    force: bool,
    /// Only what these select: label=K[=V], label!=K[=V], until=TIME.
    #[arg(long)]
    filter: Vec<String>,
}

pub fn run(engine: &Engine, cmd: VolumeCmd) -> Result<u8> {
    match cmd {
        VolumeCmd::Create(a) => {
            if a.driver != "local" {
                anyhow::bail!(berth_engine::Error::NotSupported {
                    flag: format!("--driver {}", a.driver)
                });
            }
            let mut labels = std::collections::BTreeMap::new();
            for l in &a.label {
                let (k, v) = berth_engine::hostconfig::parse_label(l)?;
                labels.insert(k, v);
            }
            let v = engine.volume_create(a.name.as_deref(), &labels, false)?;
            println!("{}", v.name);
            Ok(0)
        }
        VolumeCmd::Ls(a) => {
            let filters = berth_engine::filters::VolumeFilters::parse(
                berth_engine::filters::flag_pairs(&a.filter)?,
            )?;
            let list = engine.volumes_where(&filters)?;
            let mut out = std::io::stdout().lock();
            if a.quiet {
                for v in &list {
                    writeln!(out, "{}", v.name)?;
                }
                return Ok(0);
            }
            let rows: Vec<serde_json::Value> = list
                .iter()
                .map(|v| {
                    let labels: Vec<String> =
                        v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    serde_json::json!({
                        "Name": v.name,
                        "Driver": "local",
                        "Scope": "local",
                        "Mountpoint": engine.volume_data(&v.name),
                        "Labels": labels.join(","),
                    })
                })
                .collect();
            let fmt =
                crate::template::Format::parse(a.format.as_deref(), "{{.Driver}}\t{{.Name}}")?;
            let headers = [
                ("Driver", "DRIVER"),
                ("Name", "VOLUME NAME"),
                ("Scope", "SCOPE"),
                ("Mountpoint", "MOUNTPOINT"),
                ("Labels", "LABELS"),
            ];
            write!(out, "{}", fmt.render(&rows, &headers)?)?;
            Ok(0)
        }
        VolumeCmd::Inspect(a) => {
            format::inspect(&a.names, a.format.as_deref(), |n| engine.volume_inspect(n))
        }
        VolumeCmd::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                match engine.volume_remove(n, a.force) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        failed = true;
                    }
                }
            }
            Ok(u8::from(failed))
        }
        VolumeCmd::Prune(a) => {
            let _ = a.force;
            let filters =
                berth_engine::filters::PruneFilters::parse_flags(&a.filter, "volume", true)?;
            let removed = engine.volume_prune(a.all, &filters)?;
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                for n in &removed {
                    println!("{n}");
                }
                println!();
            }
            println!("Total reclaimed space: 0B");
            Ok(0)
        }
    }
}
