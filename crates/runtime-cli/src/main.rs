//! `berth-runtime`: runc's command line over the `berth-runtime` library, so
//! containerd, Kubernetes, podman and docker can use berth as their
//! low-level runtime. Parsing and output only; the work is the library's.

mod update;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth_runtime::{CreateOptions, ExecOptions, Runtime};
use clap::{Parser, Subcommand, ValueEnum};
use oci_spec::runtime::Process;

#[derive(Parser)]
#[command(
    name = "berth-runtime",
    version,
    about = "berth's OCI runtime, with runc's command line"
)]
struct Cli {
    /// Where containers' state lives.
    #[arg(long, global = true, default_value = "/run/berth-runtime")]
    root: PathBuf,
    /// Write errors and debug output to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[arg(long, global = true)]
    debug: bool,
    /// Manage cgroups through systemd (not supported yet: an error).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container from a bundle; its process waits for `start`.
    Create(CreateArgs),
    /// Let a created container's process run.
    Start { id: String },
    /// Create, start and wait; exits with the process's code.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the process runs.
        #[arg(short, long)]
        detach: bool,
    },
    /// Print the container's state as the OCI spec defines it.
    State { id: String },
    /// Send a signal (default TERM) to the container's init, or to all its processes.
    Kill {
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a stopped container (or any, with --force).
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// List the container's processes.
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of the container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change the container's resource limits while it runs.
    Update(update::UpdateArgs),
    /// Print resource usage (--stats) or stream stats and OOM events.
    Events {
        id: String,
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Print what this runtime supports (OCI features JSON).
    Features,
    /// Write a default config.json in the current (or --bundle) directory.
    Spec {
        #[arg(short, long)]
        bundle: Option<PathBuf>,
        #[arg(long)]
        rootless: bool,
    },
}

#[derive(clap::Args)]
struct CreateArgs {
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    #[arg(long)]
    no_pivot: bool,
    #[arg(long)]
    no_new_keyring: bool,
    id: String,
}

#[derive(clap::Args)]
struct ExecArgs {
    /// A process.json (the config's `process` object); `-` reads stdin.
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(short, long)]
    tty: bool,
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(short, long)]
    env: Vec<String>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// uid[:gid]
    #[arg(short, long)]
    user: Option<String>,
    #[arg(long = "additional-gids", short = 'g')]
    additional_gids: Vec<u32>,
    /// Add a capability to the process's bounding, effective, permitted sets.
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long)]
    no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    if let Err(e) = berth_runtime::cloned::ensure_cloned(berth_runtime::cloned::needs_sealed_copy) {
        eprintln!("berth-runtime: {e:#}");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    init_tracing(&cli);
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            let msg = chain(&e);
            log_error(&cli, &msg);
            eprintln!("berth-runtime: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the
/// message before it already carries.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !out.contains(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
    }
    out
}

fn init_tracing(cli: &Cli) {
    let level = if cli.debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let Some(path) = &cli.log else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
        return;
    };
    let Ok(file) = fs::OpenOptions::new().create(true).append(true).open(path) else {
        return;
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false);
    let _ = if cli.log_format == LogFormat::Json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

/// containerd and docker read the runtime's last error from its log file
/// in logrus' JSON shape ({"level","msg","time"}).
fn log_error(cli: &Cli, msg: &str) {
    let Some(path) = &cli.log else { return };
    let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) else {
        return;
    };
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let line = if cli.log_format == LogFormat::Json {
        serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
    } else {
        format!("time=\"{time}\" level=error msg={msg:?}")
    };
    let _ = writeln!(f, "{line}");
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup is not supported: berth-runtime manages cgroupfs directly");
    }
    let rt = Runtime::new(&cli.root);
    match &cli.cmd {
        Cmd::Create(a) => {
            rt.create(&a.id, &a.bundle, &create_opts(a))?;
            Ok(0)
        }
        Cmd::Start { id } => {
            rt.start(id)?;
            Ok(0)
        }
        Cmd::Run { create, detach } => {
            Ok(rt.run(&create.id, &create.bundle, &create_opts(create), *detach)?)
        }
        Cmd::State { id } => {
            println!("{}", serde_json::to_string_pretty(&rt.state(id)?)?);
            Ok(0)
        }
        Cmd::Kill { id, signal, all } => {
            rt.kill(id, berth_runtime::signal::parse(signal)?, *all)?;
            Ok(0)
        }
        Cmd::Delete { id, force } => {
            rt.delete(id, *force)?;
            Ok(0)
        }
        Cmd::Exec(a) => exec(&rt, a),
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => ps(&rt, id, format, ps_args),
        Cmd::List { format, quiet } => list(&rt, format, *quiet),
        Cmd::Pause { id } => {
            rt.pause(id)?;
            Ok(0)
        }
        Cmd::Resume { id } => {
            rt.resume(id)?;
            Ok(0)
        }
        Cmd::Update(a) => {
            let res = a.resources()?;
            rt.update(&a.id, &res)?;
            Ok(0)
        }
        Cmd::Events {
            id,
            stats,
            interval,
        } => events(&rt, id, *stats, interval),
        Cmd::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&berth_runtime::features::features())?
            );
            Ok(0)
        }
        Cmd::Spec { bundle, rootless } => {
            let dir = bundle.clone().unwrap_or_else(|| PathBuf::from("."));
            let path = dir.join("config.json");
            if path.exists() {
                bail!("{} already exists: remove it first", path.display());
            }
            let spec = berth_runtime::default_spec(*rootless);
            fs::write(&path, serde_json::to_vec_pretty(&spec)?)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(0)
        }
    }
}

fn create_opts(a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
    }
}

fn exec(rt: &Runtime, a: &ExecArgs) -> Result<i32> {
    let rec = rt.load(&a.id)?;
    let mut p: Process = match &a.process {
        Some(path) => {
            let bytes = if path == Path::new("-") {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                v
            } else {
                fs::read(path).with_context(|| format!("reading {}", path.display()))?
            };
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: invalid process JSON", path.display()))?
        }
        None => {
            if a.args.is_empty() {
                bail!("exec needs a command (or --process FILE)");
            }
            let mut p = rec.config.process().clone().unwrap_or_default();
            p.set_args(Some(a.args.clone()));
            p.set_terminal(Some(a.tty));
            p
        }
    };
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for kv in &a.env {
            let key = kv.split('=').next().unwrap_or("");
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        p.user_mut().set_uid(
            uid.parse()
                .with_context(|| format!("--user {u}: uid must be a number"))?,
        );
        p.user_mut().set_gid(
            gid.parse()
                .with_context(|| format!("--user {u}: gid must be a number"))?,
        );
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::Value::String(c.to_ascii_uppercase()))
                    .with_context(|| format!("unknown capability {c}"))?;
            for set in [
                caps.bounding().clone(),
                caps.effective().clone(),
                caps.permitted().clone(),
            ]
            .iter()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => caps.set_bounding(Some(s)),
                    1 => caps.set_effective(Some(s)),
                    _ => caps.set_permitted(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(caps));
    }
    let opts = ExecOptions {
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        detach: a.detach,
        no_seccomp: false,
    };
    Ok(rt.exec(&a.id, &p, &opts)?)
}

fn ps(rt: &Runtime, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    if format == "json" {
        println!("{}", serde_json::to_string(&rt.pids(id)?)?);
        return Ok(0);
    }
    let (header, rows) = rt.ps(id, ps_args)?;
    println!("{header}");
    for l in rows {
        println!("{l}");
    }
    Ok(0)
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<i32> {
    let all = rt.list()?;
    if quiet {
        for s in &all {
            println!("{}", s["id"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    if format == "json" {
        println!("{}", serde_json::to_string(&all)?);
        return Ok(0);
    }
    println!(
        "{:<20} {:<8} {:<10} {:<40} {:<32} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    for s in &all {
        println!(
            "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
            s["id"].as_str().unwrap_or(""),
            s["pid"],
            s["status"].as_str().unwrap_or(""),
            s["bundle"].as_str().unwrap_or(""),
            s["created"].as_str().unwrap_or(""),
            s["owner"].as_str().unwrap_or("")
        );
    }
    Ok(0)
}

fn events(rt: &Runtime, id: &str, once: bool, interval: &str) -> Result<i32> {
    let every = humantime_secs(interval)?;
    let emit = |kind: &str, data: serde_json::Value| {
        let mut v = serde_json::json!({"type": kind, "id": id});
        if !data.is_null() {
            v["data"] = data;
        }
        println!("{v}");
        let _ = std::io::stdout().flush();
    };
    if once {
        emit("stats", serde_json::to_value(rt.stats(id)?)?);
        return Ok(0);
    }
    let mut ooms = rt.oom_kills(id).unwrap_or(0);
    loop {
        // OOM kills first: the kill may be what stopped the container.
        let now = rt.oom_kills(id).unwrap_or(ooms);
        if now > ooms {
            emit("oom", serde_json::Value::Null);
            ooms = now;
        }
        if rt.status(id)? == berth_runtime::Status::Stopped {
            return Ok(0);
        }
        emit("stats", serde_json::to_value(rt.stats(id)?)?);
        std::thread::sleep(every);
    }
}

fn humantime_secs(s: &str) -> Result<std::time::Duration> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num.parse().with_context(|| format!("bad interval {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => bail!("bad interval {s:?}: use s, ms or m"),
    };
    if secs <= 0.0 {
        bail!("bad interval {s:?}: must be positive");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}
