//! `berth`: docker's command line over the engine. It parses flags into
//! the engine's option structs, prints docker's tables and maps error kinds
//! to docker's exit codes; it does no work of its own and never enters a
//! container (exec goes through `berth-monitor`).
#![forbid(unsafe_code)]

mod archive;
mod attach;
mod build;
mod buildprogress;
mod containerfs;
mod containers;
mod cp;
mod events;
mod format;
mod images;
mod manage;
mod monitorflags;
mod network;
mod progress;
mod pslist;
mod registry;
mod runflags;
mod serve;
mod sysinfo;
mod template;
mod unsupported;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use berth_engine::{Engine, ErrorKind, Paths};
use clap::{Parser, Subcommand};

/// `--root` and `--runroot` when not given, for [`Cli`] and [`RunOnly`].
const DEFAULT_ROOT: &str = "/var/lib/berth";
const DEFAULT_RUNROOT: &str = "/run/berth";

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Containers in milliseconds, docker's way, without a daemon"
)]
struct Cli {
    /// Where persistent state lives (database, images, logs).
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Where state that dies with the machine lives (mounts, runtime, sockets).
    #[arg(long, global = true, default_value = DEFAULT_RUNROOT)]
    runroot: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

/// `berth run` alone: clap builds the parser of every subcommand before
/// it parses (half a millisecond of each `run`); this one has only run's.
/// Its global flags are [`Cli`]'s.
#[derive(Parser)]
#[command(name = "berth")]
struct RunOnly {
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    #[arg(long, global = true, default_value = DEFAULT_RUNROOT)]
    runroot: PathBuf,
    #[command(subcommand)]
    cmd: RunCmd,
}

#[derive(Subcommand)]
enum RunCmd {
    #[command(disable_help_flag = true)]
    Run(containers::RunArgs),
}

/// The command line, through [`RunOnly`] when it is a `run` that parses;
/// anything else, and any error or help, through the whole [`Cli`].
fn parse() -> Result<Cli, clap::Error> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut it = args.iter().skip(1);
    let sub = loop {
        match it.next().and_then(|a| a.to_str()) {
            Some("--root" | "--runroot") => {
                it.next();
            }
            Some(a) if a.starts_with("--root=") || a.starts_with("--runroot=") => {}
            other => break other,
        }
    };
    if sub == Some("run") {
        if let Ok(r) = RunOnly::try_parse_from(&args) {
            let RunCmd::Run(a) = r.cmd;
            return Ok(Cli {
                root: r.root,
                runroot: r.runroot,
                cmd: Cmd::Run(a),
            });
        }
    }
    Cli::try_parse_from(&args)
}

#[derive(Subcommand)]
enum Cmd {
    /// Create and start a container from an image.
    #[command(disable_help_flag = true)]
    Run(containers::RunArgs),
    /// Create a container without starting it.
    #[command(disable_help_flag = true)]
    Create(containers::RunArgs),
    /// Start stopped or created containers.
    Start(containers::StartArgs),
    /// Stop running containers (SIGTERM, then SIGKILL after the timeout).
    Stop(containers::StopArgs),
    /// Send a signal to running containers.
    Kill(containers::KillArgs),
    /// Remove containers.
    Rm(containers::RmArgs),
    /// List containers.
    Ps(containers::PsArgs),
    /// Show a container's output.
    Logs(containers::LogsArgs),
    /// Wait for containers to stop and print their exit codes.
    Wait(containers::WaitArgs),
    /// Run a command in a running container.
    Exec(containers::ExecArgs),
    /// Attach our terminal to a running container.
    Attach(containers::AttachArgs),
    /// Restart containers.
    Restart(manage::RestartArgs),
    /// Freeze every process of containers.
    Pause(manage::PauseArgs),
    /// Thaw paused containers.
    Unpause(manage::PauseArgs),
    /// Show a container's processes.
    Top(manage::TopArgs),
    /// Show containers' resource usage.
    Stats(manage::StatsArgs),
    /// Rename a container.
    Rename(manage::RenameArgs),
    /// Change containers' limits and restart policy.
    Update(manage::UpdateArgs),
    /// Manage containers: the container commands under one name.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Copy files between a container and the host.
    Cp(cp::CpArgs),
    /// Show containers' details as JSON.
    Inspect(containers::InspectArgs),
    /// Show the engine's events: containers, images, networks, volumes.
    Events(events::EventsArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// List a container's published ports.
    Port(network::PortArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volumes::VolumeCmd),
    /// Serve the Docker Engine API for docker's clients.
    Serve(serve::ServeArgs),
    /// Build an image from a Dockerfile.
    Build(build::BuildArgs),
    /// Manage builds: the build cache.
    #[command(subcommand)]
    Builder(build::BuilderCmd),
    /// Image and registry commands (images.rs gathers them).
    #[command(flatten)]
    Image(images::ImageCmd),
}

/// `container COMMAND`: docker's management command, the same commands as
/// at the top (`container ls` is `ps`) and `prune`.
#[derive(Subcommand)]
enum ContainerCmd {
    /// List containers.
    #[command(visible_aliases = ["ps", "list"])]
    Ls(containers::PsArgs),
    /// Create and start a container from an image.
    #[command(disable_help_flag = true)]
    Run(containers::RunArgs),
    /// Create a container without starting it.
    #[command(disable_help_flag = true)]
    Create(containers::RunArgs),
    /// Start stopped or created containers.
    Start(containers::StartArgs),
    /// Stop running containers.
    Stop(containers::StopArgs),
    /// Send a signal to running containers.
    Kill(containers::KillArgs),
    /// Remove containers.
    #[command(visible_alias = "remove")]
    Rm(containers::RmArgs),
    /// Show a container's output.
    Logs(containers::LogsArgs),
    /// Wait for containers to stop and print their exit codes.
    Wait(containers::WaitArgs),
    /// Run a command in a running container.
    Exec(containers::ExecArgs),
    /// Attach our terminal to a running container.
    Attach(containers::AttachArgs),
    /// Restart containers.
    Restart(manage::RestartArgs),
    /// Freeze every process of containers.
    Pause(manage::PauseArgs),
    /// Thaw paused containers.
    Unpause(manage::PauseArgs),
    /// Show a container's processes.
    Top(manage::TopArgs),
    /// Show containers' resource usage.
    Stats(manage::StatsArgs),
    /// Rename a container.
    Rename(manage::RenameArgs),
    /// Change containers' limits and restart policy.
    Update(manage::UpdateArgs),
    /// Copy files between a container and the host.
    Cp(cp::CpArgs),
    /// Show containers' details as JSON.
    Inspect(containers::InspectArgs),
    /// List a container's published ports.
    Port(network::PortArgs),
    /// Export a container's filesystem as a tar archive.
    Export(containerfs::ExportArgs),
    /// Create a new image from a container's changes.
    Commit(containerfs::CommitArgs),
    /// Inspect changes to files on a container's filesystem.
    Diff(containerfs::DiffArgs),
    /// Remove all stopped containers.
    Prune(manage::PruneArgs),
}

impl ContainerCmd {
    /// The top-level command it is; `prune`, which has none, stays.
    fn top(self) -> Cmd {
        use images::ImageCmd;
        match self {
            ContainerCmd::Ls(a) => Cmd::Ps(a),
            ContainerCmd::Run(a) => Cmd::Run(a),
            ContainerCmd::Create(a) => Cmd::Create(a),
            ContainerCmd::Start(a) => Cmd::Start(a),
            ContainerCmd::Stop(a) => Cmd::Stop(a),
            ContainerCmd::Kill(a) => Cmd::Kill(a),
            ContainerCmd::Rm(a) => Cmd::Rm(a),
            ContainerCmd::Logs(a) => Cmd::Logs(a),
            ContainerCmd::Wait(a) => Cmd::Wait(a),
            ContainerCmd::Exec(a) => Cmd::Exec(a),
            ContainerCmd::Attach(a) => Cmd::Attach(a),
            ContainerCmd::Restart(a) => Cmd::Restart(a),
            ContainerCmd::Pause(a) => Cmd::Pause(a),
            ContainerCmd::Unpause(a) => Cmd::Unpause(a),
            ContainerCmd::Top(a) => Cmd::Top(a),
            ContainerCmd::Stats(a) => Cmd::Stats(a),
            ContainerCmd::Rename(a) => Cmd::Rename(a),
            ContainerCmd::Update(a) => Cmd::Update(a),
            ContainerCmd::Cp(a) => Cmd::Cp(a),
            ContainerCmd::Inspect(a) => Cmd::Inspect(a),
            ContainerCmd::Port(a) => Cmd::Port(a),
            ContainerCmd::Export(a) => Cmd::Image(ImageCmd::Export(a)),
            ContainerCmd::Commit(a) => Cmd::Image(ImageCmd::Commit(a)),
            ContainerCmd::Diff(a) => Cmd::Image(ImageCmd::Diff(a)),
            ContainerCmd::Prune(a) => Cmd::Container(ContainerCmd::Prune(a)),
        }
    }
}

/// Which of docker's exit-code conventions a command follows.
#[derive(Clone, Copy, PartialEq)]
enum Codes {
    /// run, create, start: 125 for the engine, 126/127 for the command.
    Container,
    /// exec, attach: 126/127 for the command, 1 for what the engine (docker's
    /// daemon) cannot find or do, such as an unknown or stopped container,
    /// and 125 for a request refused as invalid.
    Exec,
    /// Everything else: 1.
    Plain,
}

/// An error that already knows its exit code.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn exit_code(e: &anyhow::Error, codes: Codes) -> u8 {
    if let Some(Exit(c)) = e.downcast_ref::<Exit>() {
        return *c;
    }
    let kind = e.downcast_ref::<berth_engine::Error>().map(|e| e.kind());
    match (codes, kind) {
        (Codes::Container, Some(ErrorKind::CommandNotFound)) => 127,
        (Codes::Container, Some(ErrorKind::CannotInvoke)) => 126,
        (Codes::Container, _) => 125,
        (Codes::Exec, Some(ErrorKind::CommandNotFound)) => 127,
        (Codes::Exec, Some(ErrorKind::CannotInvoke)) => 126,
        (Codes::Exec, Some(ErrorKind::InvalidArgument) | None) => 125,
        (Codes::Exec, Some(_)) => 1,
        (Codes::Plain, _) => 1,
    }
}

/// clap's error as one line: its first paragraph (the error and what it
/// names, e.g. the missing arguments), without the tips and usage after.
fn usage_error(rendered: &str) -> String {
    let first = rendered
        .trim_start()
        .split("\n\n")
        .next()
        .unwrap_or_default();
    let words: Vec<&str> = first
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = words.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

/// Runs `cmd`; its exit-code convention and what came of it.
fn dispatch(engine: &Engine, cmd: Cmd) -> (Codes, anyhow::Result<u8>) {
    match cmd {
        Cmd::Run(a) => (Codes::Container, containers::run(engine, a)),
        Cmd::Create(a) => (Codes::Container, containers::create(engine, a)),
        Cmd::Start(a) => (Codes::Container, containers::start(engine, a)),
        Cmd::Stop(a) => (Codes::Plain, containers::stop(engine, a)),
        Cmd::Kill(a) => (Codes::Plain, containers::kill(engine, a)),
        Cmd::Rm(a) => (Codes::Plain, containers::rm(engine, a)),
        Cmd::Ps(a) => (Codes::Plain, containers::ps(engine, a)),
        Cmd::Logs(a) => (Codes::Plain, containers::logs(engine, a)),
        Cmd::Wait(a) => (Codes::Plain, containers::wait(engine, a)),
        Cmd::Exec(a) => (Codes::Exec, containers::exec(engine, a)),
        Cmd::Attach(a) => (Codes::Exec, containers::attach(engine, a)),
        Cmd::Restart(a) => (Codes::Plain, manage::restart(engine, a)),
        Cmd::Pause(a) => (Codes::Plain, manage::pause(engine, a)),
        Cmd::Unpause(a) => (Codes::Plain, manage::unpause(engine, a)),
        Cmd::Top(a) => (Codes::Plain, manage::top(engine, a)),
        Cmd::Stats(a) => (Codes::Plain, manage::stats(engine, a)),
        Cmd::Rename(a) => (Codes::Plain, manage::rename(engine, a)),
        Cmd::Update(a) => (Codes::Plain, manage::update(engine, a)),
        Cmd::Container(ContainerCmd::Prune(a)) => {
            (Codes::Plain, manage::container_prune(engine, a))
        }
        Cmd::Container(c) => dispatch(engine, c.top()),
        Cmd::Cp(a) => (Codes::Plain, cp::cp(engine, a)),
        Cmd::Inspect(a) => (Codes::Plain, containers::inspect(engine, a)),
        Cmd::Events(a) => (Codes::Plain, events::events(engine, a)),
        Cmd::Network(a) => (Codes::Plain, network::run(engine, a)),
        Cmd::Port(a) => (Codes::Plain, network::port(engine, a)),
        Cmd::Volume(a) => (Codes::Plain, volumes::run(engine, a)),
        Cmd::Serve(a) => (Codes::Plain, serve::serve(engine, a)),
        Cmd::Build(a) => (Codes::Plain, build::build(engine, a)),
        Cmd::Builder(c) => (Codes::Plain, build::builder(engine, c)),
        Cmd::Image(c) => (Codes::Plain, images::run(engine, c)),
    }
}

fn main() -> ExitCode {
    berth_engine::timing::mark("cli: main");
    let cli = match parse() {
        Ok(c) => c,
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                // Docker exits 125 on a flag it does not know.
                _ => {
                    eprintln!("berth: {}", usage_error(&e.render().to_string()));
                    ExitCode::from(125)
                }
            };
        }
    };
    berth_engine::timing::mark("cli: parsed");
    let engine = Engine::new(Paths::new(cli.root, cli.runroot));
    let (codes, result) = dispatch(&engine, cli.cmd);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if e.downcast_ref::<Exit>().is_none() {
                eprintln!("berth: {e:#}");
            }
            ExitCode::from(exit_code(&e, codes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(args: &[&str]) -> String {
        match Cli::try_parse_from(args) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(e) => usage_error(&e.render().to_string()),
        }
    }

    #[test]
    fn usage_errors_are_one_line_naming_the_flag() {
        let e = parse_error(&["berth", "run", "--pids-limit", "lots", "bb"]);
        assert!(
            !e.contains('\n') && e.contains("--pids-limit") && e.contains("lots"),
            "{e}"
        );
        let e = parse_error(&["berth", "nosuchcmd"]);
        assert!(!e.contains('\n') && e.contains("nosuchcmd"), "{e}");
        // The missing argument is on clap's second line: it is kept.
        let e = parse_error(&["berth", "tag", "bb"]);
        assert!(
            !e.contains('\n') && e.contains("required") && e.contains('<'),
            "{e}"
        );
        assert!(!e.starts_with("error:"), "{e}");
    }
}
