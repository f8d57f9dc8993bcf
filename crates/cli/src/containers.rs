//! The container commands: flags in, engine calls, docker's output out.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};
use berth_engine::{Engine, ExecOptions, Network, RunOptions, State};
use clap::Args;

use crate::format;
use crate::runflags::HostFlags;
use crate::unsupported::Unsupported;
use crate::Exit;

#[derive(Args)]
pub struct RunArgs {
    /// Run in the background and print the container's id.
    #[arg(short, long)]
    detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (K=V, or K to pass ours on).
    #[arg(short, long = "env")]
    env: Vec<String>,
    #[arg(short, long)]
    workdir: Option<String>,
    /// user[:group], by name or id.
    #[arg(short, long)]
    user: Option<String>,
    #[arg(long)]
    entrypoint: Option<String>,
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// none or host (other modes come with networking).
    #[arg(long, alias = "net", default_value = "none")]
    network: String,
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    host: HostFlags,
    #[command(flatten)]
    pull: crate::registry::PullFlags,
    #[command(flatten)]
    unsupported: Unsupported,
    /// IMAGE [COMMAND [ARG...]]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND]"
    )]
    args: Vec<String>,
}

impl RunArgs {
    fn options(&self) -> Result<RunOptions> {
        if let Some(flag) = self.unsupported.first() {
            return Err(berth_engine::Error::NotSupported { flag }.into());
        }
        let network = Network::parse(&self.network)?;
        let parsed = self.host.parse(network == Network::Host)?;
        let env = parsed
            .env
            .iter()
            .chain(&self.env)
            .filter_map(|e| {
                if e.contains('=') {
                    Some(e.clone())
                } else {
                    // docker: a bare name passes our value, or nothing.
                    std::env::var(e).ok().map(|v| format!("{e}={v}"))
                }
            })
            .collect();
        Ok(RunOptions {
            image: self.args[0].clone(),
            name: self.name.clone(),
            env,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            entrypoint: self.entrypoint.clone(),
            cmd: self.args[1..].to_vec(),
            hostname: self.hostname.clone(),
            network,
            auto_remove: self.rm,
            domainname: parsed.domainname,
            labels: parsed.labels,
            stop_signal: parsed.stop_signal,
            stop_timeout: parsed.stop_timeout,
            host: parsed.host,
            volumes_from: parsed.volumes_from,
        })
    }
}

pub fn create(engine: &Engine, a: RunArgs) -> Result<u8> {
    let opts = a.options()?;
    crate::registry::ensure_image(engine, &a.pull, &opts.image)?;
    let c = engine.create(&opts)?;
    println!("{}", c.id);
    Ok(0)
}

pub fn run(engine: &Engine, a: RunArgs) -> Result<u8> {
    let opts = a.options()?;
    crate::registry::ensure_image(engine, &a.pull, &opts.image)?;
    let c = engine.create(&opts)?;
    let started = engine.start(&c.id, !a.detach);
    let handle = match started {
        Ok(h) => h,
        Err(e) => {
            // The monitor removes a `--rm` container whose start it saw fail;
            // a failure before the monitor ran leaves it to us.
            if opts.auto_remove {
                let _ = engine.remove(&c.id, true, true);
            }
            return Err(e.into());
        }
    };
    if a.detach {
        println!("{}", c.id);
        return Ok(0);
    }
    let code = handle.wait()?;
    Err(Exit(code.clamp(0, 255) as u8).into())
}

#[derive(Args)]
pub struct StartArgs {
    #[arg(short, long)]
    attach: bool,
    #[arg(short, long)]
    interactive: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn start(engine: &Engine, a: StartArgs) -> Result<u8> {
    if a.attach || a.interactive {
        bail!(berth_engine::Error::NotSupported {
            flag: if a.attach {
                "start --attach"
            } else {
                "start --interactive"
            }
            .into()
        });
    }
    each(&a.containers, |c| {
        match engine.start(c, false) {
            Ok(_) => {}
            // docker: starting a running container is not an error.
            Err(berth_engine::Error::WrongState { state, .. }) if state == "running" => {}
            Err(e) => return Err(e.into()),
        }
        println!("{c}");
        Ok(())
    })
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL.
    /// (default: the container's --stop-timeout, or 10)
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<u64>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn stop(engine: &Engine, a: StopArgs) -> Result<u8> {
    each(&a.containers, |c| {
        engine.stop(c, a.time.map(Duration::from_secs))?;
        println!("{c}");
        Ok(())
    })
}

#[derive(Args)]
pub struct KillArgs {
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn kill(engine: &Engine, a: KillArgs) -> Result<u8> {
    each(&a.containers, |c| {
        engine.kill(c, &a.signal)?;
        println!("{c}");
        Ok(())
    })
}

#[derive(Args)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    force: bool,
    #[arg(short = 'v', long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn rm(engine: &Engine, a: RmArgs) -> Result<u8> {
    each(&a.containers, |c| {
        engine.remove(c, a.force, a.volumes)?;
        println!("{c}");
        Ok(())
    })
}

/// Runs `f` on each argument, reporting each failure and going on, as
/// docker does for multi-container commands.
fn each(items: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<u8> {
    let mut failed = false;
    for i in items {
        if let Err(e) = f(i) {
            eprintln!("berth: {e:#}");
            failed = true;
        }
    }
    if failed {
        Err(Exit(1).into())
    } else {
        Ok(0)
    }
}

#[derive(Args)]
pub struct PsArgs {
    #[arg(short, long)]
    all: bool,
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    no_trunc: bool,
}

fn status(c: &berth_engine::Container) -> String {
    match c.state {
        State::Created => "Created".into(),
        State::Running => format!(
            "Up {}",
            format::human_duration(chrono::Utc::now() - c.started.unwrap_or(c.created))
        ),
        State::Exited => match c.finished {
            Some(f) => format!("Exited ({}) {}", c.exit_code.unwrap_or(0), format::ago(f)),
            None => format!("Exited ({})", c.exit_code.unwrap_or(0)),
        },
        State::Removing => "Removal In Progress".into(),
    }
}

pub fn ps(engine: &Engine, a: PsArgs) -> Result<u8> {
    let list: Vec<_> = engine
        .list()?
        .into_iter()
        .filter(|c| a.all || c.state == State::Running)
        .collect();
    let id = |c: &berth_engine::Container| {
        if a.no_trunc {
            c.id.clone()
        } else {
            c.id[..12].to_string()
        }
    };
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for c in &list {
            writeln!(out, "{}", id(c))?;
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                id(c),
                c.image.clone(),
                format::command(&berth_engine::spec::args(&c.config)),
                format::ago(c.created),
                status(c),
                String::new(),
                c.name.clone(),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        format::table(
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES"
            ],
            &rows
        )
    )?;
    Ok(0)
}

#[derive(Args)]
pub struct LogsArgs {
    #[arg(short, long)]
    follow: bool,
    #[arg(short, long)]
    timestamps: bool,
    container: String,
}

pub fn logs(engine: &Engine, a: LogsArgs) -> Result<u8> {
    engine.logs(
        &a.container,
        a.follow,
        a.timestamps,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )?;
    Ok(0)
}

#[derive(Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn wait(engine: &Engine, a: WaitArgs) -> Result<u8> {
    each(&a.containers, |c| {
        println!("{}", engine.wait(c)?);
        Ok(())
    })
}

#[derive(Args)]
pub struct ExecArgs {
    #[arg(short, long = "env")]
    env: Vec<String>,
    #[arg(short, long)]
    workdir: Option<String>,
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short, long)]
    interactive: bool,
    #[arg(short, long)]
    tty: bool,
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    privileged: bool,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CONTAINER COMMAND")]
    args: Vec<String>,
}

pub fn exec(engine: &Engine, a: ExecArgs) -> Result<u8> {
    for (set, flag) in [
        (a.tty, "exec --tty"),
        (a.detach, "exec --detach"),
        (a.privileged, "exec --privileged"),
    ] {
        if set {
            bail!(berth_engine::Error::NotSupported { flag: flag.into() });
        }
    }
    let opts = ExecOptions {
        cmd: a.args[1..].to_vec(),
        env: a.env,
        workdir: a.workdir,
        user: a.user,
    };
    let code = engine.exec(&a.args[0], &opts, a.interactive)?;
    if code == 0 {
        Ok(0)
    } else {
        Err(Exit(code.clamp(0, 255) as u8).into())
    }
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn inspect(engine: &Engine, a: InspectArgs) -> Result<u8> {
    let mut all = Vec::new();
    let mut failed = false;
    for c in &a.containers {
        match engine.inspect(c) {
            Ok(v) => all.push(v),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&all)?);
    if failed {
        Err(Exit(1).into())
    } else {
        Ok(0)
    }
}
