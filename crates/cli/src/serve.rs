//! `berth serve`: the Docker Engine API on unix sockets (and TCP, with
//! dockerd's TLS flags), over the same store as the CLI.

use anyhow::bail;
use anyhow::Result;
use berth_api::{Host, ServeOptions, TlsOptions};
use berth_engine::Engine;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ServeArgs {
    /// Where to listen: unix:///PATH, tcp://IP:PORT (off loopback only
    /// with --tlsverify) or fd:// (systemd socket activation); repeatable.
    #[arg(short = 'H', long = "host", value_name = "HOST",
          default_value = concat!("unix://", "/run/berth/berth.sock"))]
    hosts: Vec<String>,
    /// The group that owns the unix sockets (default: docker, if it
    /// exists; root otherwise).
    #[arg(short = 'G', long)]
    group: Option<String>,
    /// Serve TCP hosts over TLS (implied by --tlsverify).
    #[arg(long)]
    tls: bool,
    /// Serve TCP hosts over TLS and accept only clients whose certificate
    /// --tlscacert signed.
    #[arg(long)]
    tlsverify: bool,
    /// The CA that signs client certificates (PEM).
    #[arg(long, value_name = "FILE")]
    tlscacert: Option<PathBuf>,
    /// The server's certificate (PEM).
    #[arg(long, value_name = "FILE")]
    tlscert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, value_name = "FILE")]
    tlskey: Option<PathBuf>,
}

impl ServeArgs {
    /// dockerd's rules: --tlsverify implies --tls; the files go with them.
    fn tls(&self) -> Result<Option<TlsOptions>> {
        if !self.tls && !self.tlsverify {
            for (given, flag) in [
                (self.tlscacert.is_some(), "--tlscacert"),
                (self.tlscert.is_some(), "--tlscert"),
                (self.tlskey.is_some(), "--tlskey"),
            ] {
                if given {
                    bail!("{flag} needs --tls or --tlsverify");
                }
            }
            return Ok(None);
        }
        let need = |f: &Option<PathBuf>, flag: &str| match f {
            Some(p) => Ok(p.clone()),
            None => Err(anyhow::anyhow!(
                "--tls and --tlsverify need {flag} (docker's default files are not looked for)"
            )),
        };
        let client_ca = if self.tlsverify {
            Some(need(&self.tlscacert, "--tlscacert")?)
        } else if self.tlscacert.is_some() {
            bail!("--tlscacert needs --tlsverify (with --tls alone clients are not verified)");
        } else {
            None
        };
        Ok(Some(TlsOptions {
            cert: need(&self.tlscert, "--tlscert")?,
            key: need(&self.tlskey, "--tlskey")?,
            client_ca,
        }))
    }
}

pub fn serve(engine: &Engine, a: ServeArgs) -> Result<u8> {
    let hosts = a
        .hosts
        .iter()
        .map(|h| h.parse::<Host>())
        .collect::<Result<Vec<_>, _>>()?;
    let opts = ServeOptions {
        hosts,
        tls: a.tls()?,
        group: a.group.clone(),
    };
    opts.check()?;
    // dockerd starts the containers whose restart policy says so when it
    // starts: a failed one is reported, and does not keep the API down.
    // With the server's engine, whose reaper takes their monitors.
    let boot = |engine: &Engine| {
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
        // The first start's monitor, loaded before it is asked for.
        if let Err(e) = engine.hold_spare() {
            eprintln!("berth: starting a spare monitor: {e}");
        }
    };
    let shown: Vec<&str> = a.hosts.iter().map(String::as_str).collect();
    berth_api::serve(engine.clone(), opts, boot, || {
        eprintln!("berth: serving the Docker API on {}", shown.join(", "));
    })?;
    Ok(0)
}
