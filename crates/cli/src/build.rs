//! `berth build`: docker's flags into the build crate's options; its
//! events are shown by [`crate::buildprogress`] in the `--progress` style.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Context as _, Result};
use berth_build::exec::{self, BuildOptions, Event};
use berth_engine::hostconfig as hc;
use berth_engine::{Engine, Network};
use berth_image::Reference;
use clap::Args;

use crate::buildprogress::{Printer, Style};

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (name:tag) for the image; repeatable.
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` for stdin).
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// A build-time variable, NAME=VALUE (NAME alone takes our environment's).
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Build this stage and what it needs, not the last one.
    #[arg(long)]
    target: Option<String>,
    /// Run every step, ignoring the cache.
    #[arg(long)]
    no_cache: bool,
    /// Pull base images even when they are here.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pull: Option<bool>,
    /// Remove the steps' containers (berth always does).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    rm: Option<bool>,
    /// Remove the steps' containers even after a failure (berth always does).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    force_rm: Option<bool>,
    /// Memory limit of RUN containers.
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Memory plus swap limit of RUN containers (-1 for unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// CPU shares of RUN containers.
    #[arg(short = 'c', long)]
    cpu_shares: Option<i64>,
    /// CPUs RUN containers may use (0-3, 0,1).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes RUN containers may use.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// The CFS period of RUN containers, in microseconds.
    #[arg(long)]
    cpu_period: Option<i64>,
    /// The CFS quota of RUN containers, in microseconds a period.
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// Images whose layers may stand in for steps.
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// A label for the image, KEY=VALUE.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Print only the image id.
    #[arg(short, long)]
    quiet: bool,
    /// The platform to build for (the host's only).
    #[arg(long)]
    platform: Option<String>,
    /// RUN's network: none (the default), host, default (the bridge) or a network's name.
    #[arg(long)]
    network: Option<String>,
    /// Write the image id to this file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// A secret for RUN --mount=type=secret: id=ID,src=PATH or id=ID,env=VAR.
    #[arg(long)]
    secret: Vec<String>,
    /// NAME:IP in RUN containers' /etc/hosts.
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// /dev/shm size of RUN containers.
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// Limits of RUN containers (name=soft[:hard]).
    #[arg(long)]
    ulimit: Vec<String>,
    /// auto (tty on a terminal, plain otherwise), plain, tty or quiet.
    #[arg(long)]
    progress: Option<String>,
    /// The final stage's new layers as one, on top of its base.
    #[arg(long)]
    squash: bool,
    /// A directory, or `-` for a tar of one (or a Dockerfile) on stdin.
    context: String,
}

fn key_value(flag: &str, s: &str, from_env: bool) -> Result<Option<(String, String)>> {
    match s.split_once('=') {
        Some(("", _)) => bail!("invalid argument {s:?} for {flag}: the name is empty"),
        Some((k, v)) => Ok(Some((k.to_string(), v.to_string()))),
        None if from_env => Ok(std::env::var(s).ok().map(|v| (s.to_string(), v))),
        None => Ok(Some((s.to_string(), String::new()))),
    }
}

impl BuildArgs {
    fn options(&self) -> Result<BuildOptions> {
        let mut tags = Vec::new();
        for t in &self.tags {
            let r = Reference::parse(t)
                .with_context(|| format!("invalid argument {t:?} for \"-t, --tag\" flag"))?;
            if r.digest().is_some() {
                bail!("invalid argument {t:?} for \"-t, --tag\" flag: a tag cannot hold a digest");
            }
            tags.push(r);
        }
        let mut build_args = BTreeMap::new();
        for a in &self.build_args {
            if let Some((k, v)) = key_value("--build-arg", a, true)? {
                build_args.insert(k, v);
            }
        }
        let mut labels = BTreeMap::new();
        for l in &self.labels {
            if let Some((k, v)) = key_value("--label", l, false)? {
                labels.insert(k, v);
            }
        }
        let mut secrets = BTreeMap::new();
        for s in &self.secret {
            let (id, data) = secret(s)?;
            secrets.insert(id, data);
        }
        let network = match self.network.as_deref() {
            None => Network::None,
            Some(n) => Network::parse(n)?,
        };
        let mut ulimits: Vec<hc::Ulimit> = Vec::new();
        for u in &self.ulimit {
            let u = hc::parse_ulimit(u)?;
            ulimits.retain(|x| x.name != u.name);
            ulimits.push(u);
        }
        let shm_size = match &self.shm_size {
            Some(s) => hc::parse_bytes("--shm-size", s)?,
            None => 0,
        };
        let source_date_epoch =
            match build_args
                .get("SOURCE_DATE_EPOCH")
                .cloned()
                .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
            {
                Some(v) if !v.is_empty() => Some(v.parse::<i64>().with_context(|| {
                    format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
                })?),
                _ => None,
            };
        // berth removes every step's container, failed or not; keeping
        // them is docker's --rm=false (and its default without --force-rm).
        for (flag, v) in [("--rm", self.rm), ("--force-rm", self.force_rm)] {
            if v == Some(false) {
                bail!(berth_engine::Error::NotSupported {
                    flag: format!("build {flag}=false (keeping the steps' containers)")
                });
            }
        }
        let limits = hc::HostConfig {
            memory: self
                .memory
                .as_deref()
                .map(|m| hc::parse_bytes("--memory", m))
                .transpose()?
                .unwrap_or(0),
            memory_swap: self
                .memory_swap
                .as_deref()
                .map(hc::parse_swap)
                .transpose()?
                .unwrap_or(0),
            cpu_shares: self.cpu_shares.unwrap_or(0),
            cpuset_cpus: self.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: self.cpuset_mems.clone().unwrap_or_default(),
            cpu_period: self.cpu_period.unwrap_or(0),
            cpu_quota: self.cpu_quota.unwrap_or(0),
            ..Default::default()
        };
        hc::validate(&limits)?;
        hc::check_host(&limits, &hc::HostLimits::probe())?;
        Ok(BuildOptions {
            tags,
            build_args,
            target: self.target.clone(),
            no_cache: self.no_cache,
            pull: self.pull.unwrap_or(false),
            cache_from: self.cache_from.clone(),
            labels,
            network,
            platform: self.platform.clone(),
            secrets,
            add_hosts: self.add_host.clone(),
            shm_size,
            ulimits,
            source_date_epoch,
            squash: self.squash,
            limits,
        })
    }
}

/// `--secret id=ID,src=PATH` (or `source=`), or `id=ID,env=VAR`.
fn secret(s: &str) -> Result<(String, Vec<u8>)> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => bail!("invalid --secret {s:?}: expected id=ID,src=PATH or id=ID,env=VAR"),
        }
    }
    let id = id
        .or_else(|| src.clone())
        .or_else(|| env.clone())
        .context(format!("invalid --secret {s:?}: no id"))?;
    let data = match (src, env) {
        (Some(p), _) => std::fs::read(&p).with_context(|| format!("--secret {id}: reading {p}"))?,
        (None, Some(v)) => std::env::var(&v)
            .with_context(|| format!("--secret {id}: ${v} is not set"))?
            .into_bytes(),
        (None, None) => bail!("invalid --secret {s:?}: give src=PATH or env=VAR"),
    };
    Ok((id, data))
}

/// Ctrl-C (or SIGTERM, SIGHUP) cancels the build rather than killing us:
/// its step containers are killed and removed before we exit. The
/// signals are blocked in every thread (the build's too) and read here;
/// the containers' processes start with them unblocked. Returns the
/// signal that came, 0 while none has.
fn watch_signals(
    engine: &Engine,
    cancel: &std::sync::Arc<exec::Cancel>,
) -> Result<std::sync::Arc<std::sync::atomic::AtomicI32>> {
    const SIGNALS: [i32; 3] = [2, 15, 1];
    berth_sys::signal::block(&SIGNALS).context("blocking signals")?;
    let fd = berth_sys::signal::signalfd(&SIGNALS).context("signalfd")?;
    let got = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    let (engine, cancel, seen) = (engine.clone(), cancel.clone(), got.clone());
    std::thread::spawn(move || {
        if let Ok(sig) = berth_sys::signal::read_signal(&fd) {
            seen.store(sig, std::sync::atomic::Ordering::SeqCst);
            cancel.cancel(&engine);
        }
    });
    Ok(got)
}

pub fn build(engine: &Engine, a: BuildArgs) -> Result<u8> {
    let opts = a.options()?;
    let style = Style::parse(a.progress.as_deref(), a.quiet)?;
    let scratch = engine.paths.runroot.join("build");
    let input = exec::load(
        &a.context,
        a.file.as_deref(),
        &mut std::io::stdin(),
        &scratch,
    )?;
    let printer = Mutex::new(Printer::new(style));
    let events = |e: Event| printer.lock().unwrap_or_else(|p| p.into_inner()).handle(e);
    let cancel = std::sync::Arc::new(exec::Cancel::new());
    let signalled = watch_signals(engine, &cancel)?;
    let result = exec::build(engine, &input, &opts, &events, &cancel);
    let mut p = printer.into_inner().unwrap_or_else(|p| p.into_inner());
    let built = match result {
        Ok(b) => b,
        Err(e) => {
            p.failed();
            let sig = signalled.load(std::sync::atomic::Ordering::SeqCst);
            if sig != 0 {
                eprintln!("berth: build cancelled");
                return Err(crate::Exit(128 + sig as u8).into());
            }
            return Err(e.into());
        }
    };
    if let Some(f) = &a.iidfile {
        let id = built.image.id.to_string();
        std::fs::write(f, &id).with_context(|| format!("writing {}", f.display()))?;
    }
    p.succeeded(&built);
    Ok(0)
}

#[derive(clap::Subcommand)]
pub enum BuilderCmd {
    /// Remove the build cache: the images build steps made that no tag
    /// and no container keeps.
    Prune(BuilderPruneArgs),
}

#[derive(Args)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not only that of builds whose
    /// images are gone.
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
    /// label=K[=V], label!=K[=V], until=TIME.
    #[arg(long)]
    filter: Vec<String>,
}

/// `builder prune`: docker's output, the removed cache objects and the
/// total.
pub fn builder(engine: &Engine, c: BuilderCmd) -> Result<u8> {
    let BuilderCmd::Prune(a) = c;
    let filters = berth_engine::filters::PruneFilters::parse_flags(&a.filter, "build cache", true)?;
    let what = if a.all { "all" } else { "all dangling" };
    if !a.force
        && !crate::images::confirm(&format!("WARNING! This will remove {what} build cache."))?
    {
        return Ok(0);
    }
    let (ids, bytes) = exec::prune_cache(engine, &filters, a.all)?;
    if !ids.is_empty() {
        println!("Deleted build cache objects:\n{}\n", ids.join("\n"));
    }
    println!("Total:\t{}", crate::format::human_size(bytes));
    Ok(0)
}
