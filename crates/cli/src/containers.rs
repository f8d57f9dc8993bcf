//! The container commands: flags in, engine calls, docker's output out.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_engine::{Engine, ExecOptions, Network, RunOptions, State};
use clap::Args;

use crate::attach;
use crate::format;
use crate::runflags::HostFlags;
use crate::unsupported::Unsupported;
use crate::Exit;

#[derive(Args)]
pub struct RunArgs {
    /// Run in the background and print the container's id.
    #[arg(short, long)]
    detach: bool,
    /// Attach to STDIN, STDOUT or STDERR (repeat for several; default:
    /// the output streams, and STDIN with -i).
    #[arg(short = 'a', long = "attach")]
    attach: Vec<String>,
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
    #[command(flatten)]
    net: crate::network::NetFlags,
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    stdio: StdioFlags,
    /// no, on-failure[:N], always or unless-stopped.
    #[arg(long, default_value = "no")]
    restart: String,
    #[command(flatten)]
    host: HostFlags,
    #[command(flatten)]
    monitor: crate::monitorflags::MonitorFlags,
    #[command(flatten)]
    pull: crate::registry::PullFlags,
    /// Write the container's id to this file (which must not exist).
    #[arg(long)]
    cidfile: Option<std::path::PathBuf>,
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
        unknown_flag(&self.args)?;
        let network = self.net.network()?;
        let parsed = self.host.parse(network == Network::Host)?;
        let env = crate::runflags::with_our_values(parsed.env.iter().chain(&self.env));
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
            net: self.net.options(),
            auto_remove: self.rm,
            domainname: parsed.domainname,
            labels: parsed.labels,
            stop_signal: parsed.stop_signal,
            stop_timeout: parsed.stop_timeout,
            host: berth_engine::HostConfig {
                restart_policy: berth_engine::restart::RestartPolicy::parse(&self.restart)?,
                ..parsed.host
            },
            volumes_from: parsed.volumes_from,
            tty: self.stdio.tty,
            open_stdin: self.stdio.interactive,
            // docker's StdinOnce: an attached `-i` owns the container's stdin.
            stdin_once: self.stdio.interactive && !self.detach,
            healthcheck: self.monitor.healthcheck()?,
            log_config: self.monitor.log_config()?,
        })
    }
}

/// What docker's daemon drops from a container's options with a warning
/// (the CLI prints it): dropped, and the warning printed.
fn warn_discarded(opts: &mut RunOptions) {
    if let Some(w) = opts.discard_host_ports() {
        eprintln!("WARNING: {w}");
    }
}

pub fn create(engine: &Engine, a: RunArgs) -> Result<u8> {
    if !a.attach.is_empty() {
        // `start -a` attaches the output streams as they are.
        bail!(berth_engine::Error::NotSupported {
            flag: "create --attach".into()
        });
    }
    let mut opts = a.options()?;
    warn_discarded(&mut opts);
    let cid = a.cidfile.as_deref().map(CidFile::create).transpose()?;
    crate::registry::ensure_image(engine, &a.pull, &opts.image)?;
    let c = engine.create(&opts)?;
    if let Some(f) = cid {
        f.write(&c.id)?;
    }
    println!("{}", c.id);
    Ok(0)
}

pub fn run(engine: &Engine, a: RunArgs) -> Result<u8> {
    let streams = Streams::parse(&a.attach, a.detach)?;
    let mut opts = a.options()?;
    if streams.stdin {
        // `-a stdin` asks for our input to reach the container.
        opts.open_stdin = true;
        opts.stdin_once = true;
    }
    let keys = a.stdio.check()?;
    warn_discarded(&mut opts);
    if opts.host.pid_mode.is_empty() {
        // It loads while we create the container. A failure to start
        // one is the start's to report, from the monitor it launches.
        let _ = engine.hold_spare();
    }
    berth_engine::timing::mark("cli: spare held");
    let cid = a.cidfile.as_deref().map(CidFile::create).transpose()?;
    crate::registry::ensure_image(engine, &a.pull, &opts.image)?;
    berth_engine::timing::mark("cli: image ensured");
    let c = engine.create(&opts)?;
    if let Some(f) = cid {
        f.write(&c.id)?;
    }
    berth_engine::timing::mark("cli: created");
    let (ours, attach) = if a.detach {
        (None, None)
    } else {
        let (ours, theirs) = attach::pair()?;
        (Some(ours), Some(attach_to(theirs, a.stdio.tty)))
    };
    let started = engine.start(&c.id, attach);
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
    let Some(sock) = ours else {
        println!("{}", c.id);
        return Ok(0);
    };
    let session = attach::Session {
        engine,
        id: c.id.clone(),
        sock,
        tty: a.stdio.tty,
        stdin: opts.open_stdin,
        detach_keys: keys,
        sig_proxy: a.stdio.sig_proxy,
        output: streams.output,
    };
    let code = finish(session.run()?, || handle.wait());
    berth_engine::timing::mark("cli: exited");
    code
}

/// `--cidfile`: docker's file of the container's id. Made before the
/// container, so that one already there (another container's) refuses
/// the run; removed again when the container could not be made.
struct CidFile {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
}

impl CidFile {
    fn create(path: &std::path::Path) -> Result<CidFile> {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(f) => Ok(CidFile {
                path: path.to_path_buf(),
                file: Some(f),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!(berth_engine::Error::InvalidArgument(format!(
                    "container ID file found, make sure the other container isn't running or delete {}",
                    path.display()
                )))
            }
            Err(e) => bail!(berth_engine::Error::InvalidArgument(format!(
                "--cidfile {}: {e}",
                path.display()
            ))),
        }
    }

    fn write(mut self, id: &str) -> Result<()> {
        let mut f = self.file.take().expect("written once");
        std::io::Write::write_all(&mut f, id.as_bytes())
            .with_context(|| format!("writing the container's id to {}", self.path.display()))
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        // Not written: the container was not made.
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `run -a`: the streams attached.
#[derive(Debug, PartialEq, Eq)]
struct Streams {
    stdin: bool,
    output: attach::Output,
}

impl Streams {
    fn parse(names: &[String], detach: bool) -> Result<Streams> {
        if names.is_empty() {
            return Ok(Streams {
                stdin: false,
                output: attach::Output::BOTH,
            });
        }
        if detach {
            bail!(berth_engine::Error::InvalidArgument(
                "conflicting options: --attach and --detach".into()
            ));
        }
        let mut s = Streams {
            stdin: false,
            output: attach::Output {
                stdout: false,
                stderr: false,
            },
        };
        for n in names {
            match n.to_ascii_lowercase().as_str() {
                "stdin" => s.stdin = true,
                "stdout" => s.output.stdout = true,
                "stderr" => s.output.stderr = true,
                _ => bail!(berth_engine::Error::InvalidArgument(format!(
                    "invalid value {n:?} for --attach: valid streams are STDIN, STDOUT and STDERR"
                ))),
            }
        }
        Ok(s)
    }
}

/// The stream handed to the monitor at start, with our terminal's size.
fn attach_to(theirs: std::os::fd::OwnedFd, tty: bool) -> berth_engine::attach::AttachTo {
    berth_engine::attach::AttachTo {
        stream: theirs,
        console_size: if tty { attach::terminal_size() } else { None },
    }
}

/// The exit code of an attached command: the container's, 0 on a detach.
fn finish(
    outcome: attach::Outcome,
    wait: impl FnOnce() -> berth_engine::Result<i32>,
) -> Result<u8> {
    let code = match outcome {
        attach::Outcome::Exited(code) => code,
        attach::Outcome::Detached => return Ok(0),
        attach::Outcome::Closed => wait()?,
    };
    container_code(code)
}

/// The container's exit code as ours: 0 is success, anything else an
/// [`Exit`] that main turns into that code.
fn container_code(code: i32) -> Result<u8> {
    if code == 0 {
        Ok(0)
    } else {
        Err(Exit(code.clamp(0, 255) as u8).into())
    }
}

/// `-i`, `-t`, `--detach-keys`, `--sig-proxy` of `run` and `create`.
#[derive(Args)]
pub struct StdioFlags {
    /// Keep stdin open and forward ours to it.
    #[arg(short, long)]
    interactive: bool,
    /// Give the container a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// The keys that detach from the container (ctrl-p,ctrl-q).
    #[arg(long, default_value = attach::DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    /// Forward the signals we receive to the container (without -t).
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
}

impl StdioFlags {
    /// The detach keys; refuses `-it` without a terminal, as docker does.
    fn check(&self) -> Result<Vec<u8>> {
        if self.tty && self.interactive && !attach::stdin_is_terminal() {
            bail!(berth_engine::Error::InvalidArgument(
                "the input device is not a TTY".into()
            ));
        }
        Ok(berth_engine::stream::parse_detach_keys(&self.detach_keys)?)
    }
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach to the container's output (and forward signals).
    #[arg(short, long)]
    attach: bool,
    /// Attach to the container's stdin too.
    #[arg(short, long)]
    interactive: bool,
    /// The keys that detach from the container (ctrl-p,ctrl-q).
    #[arg(long, default_value = attach::DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn start(engine: &Engine, a: StartArgs) -> Result<u8> {
    if a.attach || a.interactive {
        let [key] = &a.containers[..] else {
            bail!(berth_engine::Error::InvalidArgument(
                "you cannot start and attach multiple containers at once".into()
            ));
        };
        let keys = berth_engine::stream::parse_detach_keys(&a.detach_keys)?;
        let c = engine.find(key)?;
        let (ours, theirs) = attach::pair()?;
        let handle = engine.start(&c.id, Some(attach_to(theirs, c.config.tty)))?;
        let session = attach::Session {
            engine,
            id: c.id.clone(),
            sock: ours,
            tty: c.config.tty,
            stdin: a.interactive && c.config.open_stdin,
            detach_keys: keys,
            sig_proxy: true,
            output: attach::Output::BOTH,
        };
        return finish(session.run()?, || handle.wait());
    }
    each(&a.containers, |c| {
        match engine.start(c, None) {
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
    /// The signal to stop with (default: the container's stop signal).
    #[arg(short = 's', long)]
    signal: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn stop(engine: &Engine, a: StopArgs) -> Result<u8> {
    each(&a.containers, |c| {
        engine.stop(c, a.time.map(Duration::from_secs), a.signal.as_deref())?;
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
/// docker does for multi-argument commands; exit 1 if any failed.
pub(crate) fn each(items: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<u8> {
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
    /// Show all containers (default: the running ones).
    #[arg(short, long)]
    all: bool,
    /// Only the ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show the N last created containers, in any state (-1: no limit).
    #[arg(short = 'n', long, default_value_t = -1, allow_negative_numbers = true)]
    last: i64,
    /// Show the last created container, in any state.
    #[arg(short, long)]
    latest: bool,
    /// Show each container's size: its writable layer, and with its image.
    #[arg(short, long)]
    size: bool,
    #[arg(long)]
    no_trunc: bool,
    /// status=, name=, label=, ancestor=, exited=, health=
    #[arg(short, long)]
    filter: Vec<String>,
    /// A Go template (`table ...` for columns), or json.
    #[arg(long)]
    format: Option<String>,
}

fn status(c: &berth_engine::Container) -> String {
    berth_engine::status::status(c)
}

pub fn ps(engine: &Engine, a: PsArgs) -> Result<u8> {
    let mut filters = crate::pslist::Filters::parse(&a.filter)?;
    // docker: -n and -l show containers in any state, newest first.
    let last = if a.latest {
        Some(1)
    } else {
        usize::try_from(a.last).ok()
    };
    let all = a.all || last.is_some() || filters.wants_stopped();
    let healths = engine.health_statuses()?;
    let health = |c: &berth_engine::Container| healths.get(&c.id).map(String::as_str);
    filters.resolve(|k| Ok(engine.find(k)?.created))?;
    let mut list: Vec<_> = engine
        .list()?
        .into_iter()
        .filter(|c| all || c.state == State::Running)
        .filter(|c| {
            let h = health(c).unwrap_or(berth_engine::health::NONE);
            filters.matches(c, crate::pslist::docker_state(engine, c), h)
        })
        .collect();
    if let Some(n) = last {
        list.truncate(n);
    }
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
    let shown_status = |c: &berth_engine::Container| {
        if c.state != State::Running {
            return status(c);
        }
        if engine.is_paused(&c.id) {
            return format!("{} (Paused)", status(c));
        }
        match health(c) {
            Some(berth_engine::health::STARTING) => format!("{} (health: starting)", status(c)),
            Some(h) => format!("{} ({h})", status(c)),
            None => status(c),
        }
    };
    // docker's CLI asks for sizes too when a template shows them.
    let sized = a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size"));
    let store = if sized { Some(engine.store()?) } else { None };
    // docker's SIZE: the writable layer's, and with the image's.
    let size = |c: &berth_engine::Container| {
        store.as_ref().map(|s| {
            let (rw, rootfs) = berth_engine::image_ops::container_sizes(s, c);
            format!(
                "{} (virtual {})",
                format::human_size(rw),
                format::human_size(rootfs)
            )
        })
    };
    if let Some(f) = &a.format {
        let rows: Vec<_> = list
            .iter()
            .map(|c| {
                let st = crate::pslist::docker_state(engine, c);
                let mut row = crate::pslist::row(c, st, &shown_status(c), a.no_trunc);
                row["Ports"] = crate::network::ps_ports(engine, c).into();
                row["Networks"] = crate::pslist::networks(engine, c).into();
                row["Size"] = size(c).unwrap_or_default().into();
                row
            })
            .collect();
        let f = crate::template::Format::parse(Some(f), "")?;
        write!(out, "{}", f.render(&rows, &crate::pslist::HEADERS)?)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let mut row = vec![
                id(c),
                c.image.clone(),
                format::command(&berth_engine::spec::args(&c.config)),
                format::ago(c.created),
                shown_status(c),
                crate::network::ps_ports(engine, c),
                c.name.clone(),
            ];
            row.extend(size(c));
            row
        })
        .collect();
    let mut headers = vec![
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    if a.size {
        headers.push("SIZE");
    }
    write!(out, "{}", format::table(&headers, &rows))?;
    Ok(0)
}

#[derive(Args)]
pub struct LogsArgs {
    /// Follow the output until the container exits.
    #[arg(short, long)]
    follow: bool,
    /// Show each line's timestamp.
    #[arg(short, long)]
    timestamps: bool,
    /// Show the attributes each line carries (see --log-opt labels, env).
    #[arg(long)]
    details: bool,
    /// Number of lines to show from the end of the log, or "all".
    #[arg(
        short = 'n',
        long,
        default_value = "all",
        allow_negative_numbers = true
    )]
    tail: String,
    /// Show lines written since a time: RFC 3339 ("2013-01-02T13:23:37Z"),
    /// Unix seconds, or a duration before now ("42m").
    #[arg(long)]
    since: Option<String>,
    /// Show lines written until a time, in the same forms as --since.
    #[arg(long)]
    until: Option<String>,
    container: String,
}

pub fn logs(engine: &Engine, a: LogsArgs) -> Result<u8> {
    let Some(tail) = berth_engine::logs::parse_tail(&a.tail) else {
        bail!(
            "invalid value for --tail: {:?} is not a number or \"all\"",
            a.tail
        );
    };
    let opts = berth_engine::LogOptions {
        follow: a.follow,
        timestamps: a.timestamps,
        details: a.details,
        tail,
        select: berth_engine::logs::Selection {
            since: berth_engine::filters::time_flag("since", a.since.as_deref())?,
            until: berth_engine::filters::time_flag("until", a.until.as_deref())?,
            ..Default::default()
        },
    };
    engine.logs(
        &a.container,
        &opts,
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
    /// Set an environment variable (K=V, or K to pass ours on).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (K=V or K lines).
    #[arg(long)]
    env_file: Vec<String>,
    #[arg(short, long)]
    workdir: Option<String>,
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short, long)]
    interactive: bool,
    #[arg(short, long)]
    tty: bool,
    /// Start the command and return; it runs on, its output discarded.
    #[arg(short, long)]
    detach: bool,
    /// Every capability and no seccomp filter for the command.
    #[arg(long)]
    privileged: bool,
    /// The keys that detach from the process (ctrl-p,ctrl-q).
    #[arg(long, default_value = attach::DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CONTAINER COMMAND")]
    args: Vec<String>,
}

/// A flag clap does not know lands in the trailing arguments (they take
/// hyphens for the container's command): it is the first of them, as no
/// image or container name starts with '-'. docker's words for it.
fn unknown_flag(args: &[String]) -> Result<()> {
    match args.first() {
        Some(a) if a.starts_with('-') => bail!(berth_engine::Error::InvalidArgument(format!(
            "unknown flag: {}",
            a.split('=').next().unwrap_or(a)
        ))),
        _ => Ok(()),
    }
}

pub fn exec(engine: &Engine, a: ExecArgs) -> Result<u8> {
    unknown_flag(&a.args)?;
    if a.detach && (a.tty || a.interactive) {
        // Nothing would hold the pty or feed the input.
        bail!(berth_engine::Error::InvalidArgument(
            "exec --detach cannot be used with --tty or --interactive".into()
        ));
    }
    let from_files = crate::runflags::env_files(&a.env_file)?;
    let opts = ExecOptions {
        cmd: a.args[1..].to_vec(),
        env: crate::runflags::with_our_values(from_files.iter().chain(&a.env)),
        workdir: a.workdir,
        user: a.user,
        tty: a.tty,
        privileged: a.privileged,
    };
    if a.detach {
        engine.exec_detached(&a.args[0], &opts)?;
        return Ok(0);
    }
    if a.tty {
        return exec_tty(engine, &a.args[0], &opts, a.interactive, &a.detach_keys);
    }
    let code = engine.exec(&a.args[0], &opts, a.interactive)?;
    container_code(code)
}

#[derive(Args)]
pub struct InspectArgs {
    /// A Go template over each object's JSON.
    #[arg(short, long)]
    format: Option<String>,
    /// Only this kind of object: container, image, network or volume
    /// (default: the first kind a name is found as, in that order).
    #[arg(long = "type", value_parser = ["container", "image", "network", "volume"])]
    kind: Option<String>,
    /// With a container's sizes (SizeRw, SizeRootFs).
    #[arg(short, long)]
    size: bool,
    #[arg(required = true, value_name = "NAME|ID")]
    objects: Vec<String>,
}

/// docker's `inspect`: containers, and images, networks and volumes by
/// the same names.
pub fn inspect(engine: &Engine, a: InspectArgs) -> Result<u8> {
    let kinds: &[&str] = match a.kind.as_deref() {
        Some("container") => &["container"],
        Some("image") => &["image"],
        Some("network") => &["network"],
        Some("volume") => &["volume"],
        _ => &["container", "image", "network", "volume"],
    };
    let parents = std::cell::OnceCell::new();
    let find = |name: &str| -> std::result::Result<serde_json::Value, String> {
        for kind in kinds {
            let found = match *kind {
                "container" => engine.inspect_sized(name, a.size),
                "image" => {
                    let s = engine.store().map_err(|e| e.to_string())?;
                    // Read once, at the first image asked for.
                    let parents = match parents.get() {
                        Some(p) => p,
                        None => {
                            let p = berth_build::exec::lineage(&engine.paths.db())
                                .map_err(|e| e.to_string())?;
                            parents.get_or_init(|| p)
                        }
                    };
                    berth_engine::images::find(&s, name)
                        .and_then(|i| berth_engine::image_ops::inspect(&s, &i, parents))
                        .and_then(|i| {
                            serde_json::to_value(i)
                                .map_err(|e| berth_engine::Error::InvalidArgument(e.to_string()))
                        })
                }
                "network" => engine.network_inspect(name),
                _ => engine.volume_inspect(name),
            };
            match found {
                Err(e) if kinds.len() > 1 && e.kind() == berth_engine::ErrorKind::NotFound => {}
                other => return other.map_err(|e| e.to_string()),
            }
        }
        Err(format!("no such object: {name}"))
    };
    match format::inspect(&a.objects, a.format.as_deref(), find)? {
        0 => Ok(0),
        n => Err(Exit(n).into()),
    }
}

/// `exec -t`: the process's pty is served by a `berth-monitor exec`
/// child over an attach stream, as a container's is by its monitor.
fn exec_tty(
    engine: &Engine,
    key: &str,
    opts: &ExecOptions,
    stdin: bool,
    detach_keys: &str,
) -> Result<u8> {
    let keys = berth_engine::stream::parse_detach_keys(detach_keys)?;
    if stdin && !attach::stdin_is_terminal() {
        bail!(berth_engine::Error::InvalidArgument(
            "the input device is not a TTY".into()
        ));
    }
    let id = engine.find(key)?.id;
    let (mut child, sock, file) = engine.exec_attached(key, opts)?;
    let session = attach::Session {
        engine,
        id,
        sock,
        tty: true,
        stdin,
        detach_keys: keys,
        sig_proxy: false,
        output: attach::Output::BOTH,
    };
    let outcome = session.run();
    let _ = std::fs::remove_file(&file);
    let outcome = outcome?;
    if outcome == attach::Outcome::Detached {
        // The helper serves the process on until it exits, unwatched.
        return Ok(0);
    }
    finish(outcome, || {
        let st = child.wait().map_err(|e| berth_engine::Error::Io {
            what: "waiting for the exec".into(),
            source: e,
        })?;
        Ok(st.code().unwrap_or(255))
    })
}

#[derive(Args)]
pub struct AttachArgs {
    /// Do not attach stdin.
    #[arg(long)]
    no_stdin: bool,
    /// The keys that detach from the container (ctrl-p,ctrl-q).
    #[arg(long, default_value = attach::DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    /// Forward the signals we receive to the container (without a tty).
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    container: String,
}

/// `attach`: our terminal to a running container's stdio.
pub fn attach(engine: &Engine, a: AttachArgs) -> Result<u8> {
    let keys = berth_engine::stream::parse_detach_keys(&a.detach_keys)?;
    let c = engine.find(&a.container)?;
    let (id, sock) = engine.attach(&c.id)?;
    let session = attach::Session {
        engine,
        id: id.clone(),
        sock,
        tty: c.config.tty,
        stdin: !a.no_stdin && c.config.open_stdin,
        detach_keys: keys,
        sig_proxy: a.sig_proxy,
        output: attach::Output::BOTH,
    };
    finish(session.run()?, || engine.wait(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_streams_are_dockers() {
        let s = |v: &[&str], d: bool| {
            Streams::parse(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>(), d)
        };
        assert_eq!(
            s(&[], false).unwrap(),
            Streams {
                stdin: false,
                output: attach::Output::BOTH
            }
        );
        let o = s(&["STDOUT"], false).unwrap();
        assert!(o.output.stdout && !o.output.stderr && !o.stdin);
        let o = s(&["stdin", "stderr"], false).unwrap();
        assert!(!o.output.stdout && o.output.stderr && o.stdin);
        assert!(s(&["stdout"], true)
            .unwrap_err()
            .to_string()
            .contains("--attach and --detach"));
        assert!(s(&["stdio"], false)
            .unwrap_err()
            .to_string()
            .contains("STDIN, STDOUT and STDERR"));
    }
}
