//! One stage, step by step: substitute, key, look up, execute, record.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use berth_engine::hostconfig::{HostConfig, MountSpec};
use berth_engine::network::NetOptions;
use berth_engine::{Network, RunOptions};
use berth_image::layer::DiffOptions;
use berth_image::store::{Image, StoreError};
use berth_image::Digest;
use serde_json::{json, Map, Value};

use super::commit::{self, child, Current, Layer};
use super::config;
use super::error::{io_err, store, BuildError, Result};
use super::mounts::{From, RunMounts};
use super::resolve::Escape;
use super::run::{remove_stubs, StepContainer};
use super::source::{self, inline, Item, Tree};
use super::tarball::{self, Chmod};
use super::view::View;
use super::{Build, Event, StageResult};
use crate::dockerfile::{
    parse_file, Command, Copy, Instruction, KeyValue, MountKind, NetworkMode, Node, Run, Security,
    Source,
};
use crate::dockerignore::DockerIgnore;
use crate::plan::{base_key, step_key, Base, BaseKey, Platform, Scope, Step};

/// Builds stage `index` and records its result; always tells the printer
/// the stage is over, and on failure cancels the stages running beside.
pub(crate) fn run(b: &Build<'_>, index: usize) -> Result<()> {
    let r = build(b, index);
    if r.is_err() {
        b.cancel.stop();
    }
    (b.events)(Event::StageDone { stage: index });
    r
}

fn build(b: &Build<'_>, index: usize) -> Result<()> {
    let stage = &b.df.stages[index];
    let at = |e: BuildError| e.at(&b.df.file, stage.span.line, "FROM");
    let mut number = b.numbers[&index];
    let mut announce = |text: String| {
        (b.events)(Event::Step {
            stage: index,
            number,
            total: b.total,
            text,
        });
        number += 1;
    };
    announce(stage.source.clone());
    let planned = &b.plan.stages()[index];
    if let Some(p) = &planned.platform {
        let want = Platform::parse(p).map_err(|e| at(BuildError::Invalid(e.to_string())))?;
        if want != Platform::host() {
            return Err(at(BuildError::Unsupported(format!(
                "FROM --platform={p} (only the host's platform, {}, can be built)",
                Platform::host()
            ))));
        }
    }
    let (cur, key) = match &planned.base {
        Base::Scratch => (Current::scratch(), base_key(BaseKey::Scratch)),
        Base::Image(name) => {
            let img = b.image(index, name).map_err(at)?;
            let key = base_key(BaseKey::Image(&img.id));
            (Current::of(&b.store, img).map_err(at)?, key)
        }
        Base::Stage(i) => {
            let r = b.result(*i);
            let key = base_key(BaseKey::Stage(&r.key));
            (r.current, key)
        }
    };
    if let Some(id) = cur.id() {
        (b.events)(Event::Image {
            stage: index,
            id: id.clone(),
        });
    }
    let scope = b.plan.scope(&config::env_pairs(&cur.runtime()));
    let mut s = StageRun {
        b,
        index,
        cur,
        key,
        scope,
        cmd_set: false,
    };
    s.triggers().map_err(at)?;
    for node in &stage.instructions {
        if b.cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        announce(node.source.clone());
        s.node(node)
            .map_err(|e| e.at(&b.df.file, node.span.line, node.instruction.keyword()))?;
    }
    if index == b.plan.target() && !b.opts.labels.is_empty() {
        let kvs: Vec<KeyValue> = b
            .opts
            .labels
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        let text = kvs
            .iter()
            .map(|kv| format!("{:?}={:?}", kv.key, kv.value))
            .collect::<Vec<_>>()
            .join(" ");
        announce(format!("LABEL {text}"));
        s.step(Step {
            instruction: Instruction::Label(kvs),
            args: BTreeMap::new(),
        })
        .map_err(|e| e.at("--label", 0, "LABEL"))?;
    }
    b.results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(StageResult {
        current: s.cur,
        key: s.key,
    });
    Ok(())
}

impl Build<'_> {
    /// A finished stage's result (the plan builds dependencies first).
    fn result(&self, stage: usize) -> StageResult {
        self.results.lock().unwrap_or_else(|p| p.into_inner())[stage]
            .clone()
            .expect("a stage's dependencies are built before it")
    }

    /// A base or `--from` image: the local one, pulled when missing (or
    /// always, with `--pull`).
    fn image(&self, stage: usize, name: &str) -> Result<Image> {
        let local = || -> Result<Option<Image>> {
            match self.store.image(name) {
                Ok(i) => Ok(Some(i)),
                Err(StoreError::NotFound(_)) => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        if !self.opts.pull {
            if let Some(i) = local()? {
                return Ok(i);
            }
        }
        let mut pulled = self.pulling.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = pulled.get(name) {
            return Ok(i.clone());
        }
        if !self.opts.pull {
            if let Some(i) = local()? {
                return Ok(i);
            }
        }
        (self.events)(Event::Pulling {
            stage,
            image: name.to_string(),
        });
        let (_, p) = berth_engine::pull::client()
            .and_then(|client| berth_engine::pull::pull(&client, &self.store, name, None, &|_| {}))
            .map_err(|cause| BuildError::Pull {
                image: name.to_string(),
                cause: Box::new(cause),
            })?;
        pulled.insert(name.to_string(), p.image.clone());
        Ok(p.image)
    }

    fn created(&self) -> String {
        match self
            .opts
            .source_date_epoch
            .and_then(|e| chrono::DateTime::from_timestamp(e, 0))
        {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            None => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

struct StageRun<'b> {
    b: &'b Build<'b>,
    index: usize,
    cur: Current,
    /// The key of the last step (or the base's).
    key: Digest,
    scope: Scope,
    /// Whether this stage set CMD (an ENTRYPOINT then keeps it).
    cmd_set: bool,
}

/// What a COPY or ADD reads, kept readable until its layer is written.
struct Sources<'b> {
    items: Vec<Item>,
    digest: Digest,
    _view: Option<View<'b>>,
    _tmp: Option<tempfile::TempDir>,
}

impl<'b> StageRun<'b> {
    fn emit(&self, e: Event) {
        (self.b.events)(e)
    }

    fn node(&mut self, node: &Node) -> Result<()> {
        let step = self
            .scope
            .step(node)
            .map_err(|e| BuildError::Invalid(e.to_string()))?;
        self.step(step)
    }

    /// The base image's ONBUILD triggers run first, and are not passed on.
    fn triggers(&mut self) -> Result<()> {
        let rt = self.cur.runtime();
        let triggers: Vec<String> = rt
            .get("OnBuild")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if triggers.is_empty() {
            return Ok(());
        }
        self.emit(Event::Triggers {
            stage: self.index,
            count: triggers.len(),
        });
        self.cur.config["config"]["OnBuild"] = Value::Null;
        let span = self.b.df.stages[self.index].span;
        for t in triggers {
            let parsed = parse_file(&self.b.df.file, &format!("FROM scratch\n{t}\n"))
                .map_err(|e| BuildError::Invalid(format!("ONBUILD trigger {t:?}: {}", e.kind)))?;
            for mut node in parsed.stages.into_iter().flat_map(|s| s.instructions) {
                node.span = span;
                self.node(&node)?;
            }
        }
        Ok(())
    }

    fn step(&mut self, step: Step) -> Result<()> {
        let is_cmd = matches!(step.instruction, Instruction::Cmd(_));
        let sources = match &step.instruction {
            Instruction::Copy(c) => Some(self.sources(c, false)?),
            Instruction::Add(c) => Some(self.sources(c, true)?),
            _ => None,
        };
        let key = step_key(&self.key, &step, sources.as_ref().map(|s| &s.digest));
        let cached = if self.b.opts.no_cache {
            None
        } else {
            self.lookup(&key)?
        };
        let next = match cached {
            Some(c) => {
                self.emit(Event::UsingCache { stage: self.index });
                c
            }
            None => {
                let created_by = self.created_by(&step, sources.as_ref())?;
                let next = match self.reuse_cache_from(&step, &created_by)? {
                    Some(c) => {
                        self.emit(Event::UsingCache { stage: self.index });
                        c
                    }
                    None => self.execute(&step, sources, &created_by)?,
                };
                if let Some(id) = next.id() {
                    self.b.cache.put(&key, id, self.cur.id())?;
                }
                next
            }
        };
        self.cur = next;
        self.key = key;
        if is_cmd {
            self.cmd_set = true;
        }
        if let Some(id) = self.cur.id() {
            self.emit(Event::Image {
                stage: self.index,
                id: id.clone(),
            });
        }
        Ok(())
    }

    fn lookup(&self, key: &Digest) -> Result<Option<Current>> {
        let Some(id) = self.b.cache.get(key)? else {
            return Ok(None);
        };
        match self.b.store.image(&id) {
            Ok(img) => Ok(Some(Current::of(&self.b.store, img)?)),
            // Removed since (rmi, prune): a miss.
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The history text of a step: what `docker history` shows and what
    /// `--cache-from` compares.
    fn created_by(&self, step: &Step, sources: Option<&Sources<'_>>) -> Result<String> {
        let rt = self.cur.runtime();
        Ok(match (&step.instruction, sources) {
            (Instruction::Run(r), _) => {
                let (argv, _) = run_command(r, &config::shell(&rt));
                let mut s = String::new();
                if !step.args.is_empty() {
                    s = format!("|{} ", step.args.len());
                    for (k, v) in &step.args {
                        s.push_str(&format!("{k}={v} "));
                    }
                }
                s + &argv.join(" ")
            }
            (Instruction::Copy(c) | Instruction::Add(c), Some(src)) => {
                let kind = match src.items.as_slice() {
                    [one] if one.is_dir => "dir",
                    [_] => "file",
                    _ => "multi",
                };
                format!(
                    "/bin/sh -c #(nop) {} {kind}:{} in {} ",
                    step.instruction.keyword(),
                    src.digest.hex(),
                    c.dest
                )
            }
            (ins, _) => config::nop(ins, &rt),
        })
    }

    /// The runtime config after a config-only step (unchanged for the
    /// others).
    fn next_runtime(&self, ins: &Instruction) -> Result<Map<String, Value>> {
        let mut rt = self.cur.runtime();
        match ins {
            Instruction::Run(_)
            | Instruction::Copy(_)
            | Instruction::Add(_)
            | Instruction::From(_) => {}
            ins => config::apply(&mut rt, ins, self.cmd_set)?,
        }
        Ok(rt)
    }

    /// `--cache-from`: an image whose history up to here is ours and whose
    /// next entry is this step gives its layer (or its empty entry)
    /// instead of running it, as docker's classic builder does.
    fn reuse_cache_from(&self, step: &Step, created_by: &str) -> Result<Option<Current>> {
        if self.b.cache_from.is_empty() {
            return Ok(None);
        }
        let ours = self.cur.history();
        let our_layers = self.cur.diff_ids();
        let same = |a: &Value, b: &Value| {
            a["created_by"] == b["created_by"]
                && a["empty_layer"].as_bool().unwrap_or(false)
                    == b["empty_layer"].as_bool().unwrap_or(false)
        };
        for target in &self.b.cache_from {
            let theirs = target.history();
            let layers = target.diff_ids();
            let n = ours.len();
            if theirs.len() <= n
                || !theirs.iter().zip(&ours).all(|(a, b)| same(a, b))
                || layers.len() < our_layers.len()
                || layers[..our_layers.len()] != our_layers[..]
                || theirs[n]["created_by"].as_str() != Some(created_by)
            {
                continue;
            }
            let layer = if theirs[n]["empty_layer"].as_bool().unwrap_or(false) {
                Layer::None
            } else {
                let Some(diff_id) = layers.get(our_layers.len()).cloned() else {
                    continue;
                };
                let Some(descriptor) = target
                    .layer_descriptors(&self.b.store)?
                    .get(our_layers.len())
                    .cloned()
                else {
                    continue;
                };
                Layer::Reuse {
                    descriptor,
                    diff_id,
                }
            };
            let rt = self.next_runtime(&step.instruction)?;
            let history = json!({"created_by": created_by});
            return Ok(Some(child(
                &self.b.store,
                &self.cur,
                rt,
                history,
                layer,
                &self.b.created(),
            )?));
        }
        Ok(None)
    }

    fn execute(
        &mut self,
        step: &Step,
        sources: Option<Sources<'b>>,
        created_by: &str,
    ) -> Result<Current> {
        let history = json!({"created_by": created_by});
        let created = self.b.created();
        match &step.instruction {
            Instruction::Run(r) => self.run(r, history),
            Instruction::Copy(c) | Instruction::Add(c) => {
                let sources = sources.expect("COPY and ADD read their sources first");
                self.copy(c, step.instruction.keyword(), &sources, history)
            }
            Instruction::Maintainer(m) => {
                let mut parent = self.cur.clone();
                parent.config["author"] = json!(m);
                child(
                    &self.b.store,
                    &parent,
                    self.cur.runtime(),
                    history,
                    Layer::None,
                    &created,
                )
            }
            ins => {
                let rt = self.next_runtime(ins)?;
                child(&self.b.store, &self.cur, rt, history, Layer::None, &created)
            }
        }
    }

    /// A stage (by name or index) or an image named by `--from`.
    fn image_named(&self, name: &str) -> Result<Option<Image>> {
        match self.b.df.stage(name) {
            Some(s) if s.index != self.index => {
                let r = self.b.result(s.index);
                Ok(r.current.image)
            }
            _ => self.b.image(self.index, name).map(Some),
        }
    }

    fn sources(&self, c: &Copy, add: bool) -> Result<Sources<'b>> {
        if c.parents {
            return Err(BuildError::Unsupported("COPY --parents".into()));
        }
        let view = match &c.from {
            Some(f) => Some(View::mount(
                &self.b.store,
                self.image_named(f)?.as_ref(),
                &self.b.scratch,
            )?),
            None => None,
        };
        let from_name = c.from.clone().unwrap_or_default();
        let tree = match &view {
            Some(v) => Tree {
                root: v.root(),
                ignore: None,
                escape: Escape::Clamp,
                keep_owner: true,
                name: &from_name,
            },
            None => Tree {
                root: self.b.context.root(),
                ignore: Some(self.b.context.ignore()),
                escape: Escape::Refuse,
                keep_owner: false,
                name: "build context",
            },
        };
        let mut items = Vec::new();
        let mut tmp = None;
        let mut urls = 0;
        for s in &c.sources {
            match s {
                Source::Heredoc(h) => items.push(inline(
                    &h.name,
                    h.content.clone().into_bytes(),
                    0o644,
                    now(),
                )),
                Source::Path(p) if add && is_git(p) => {
                    return Err(BuildError::Unsupported(format!(
                        "ADD of a git repository ({p})"
                    )))
                }
                Source::Path(p) if add && is_url(p) => {
                    urls += 1;
                    items.push(self.download(p, c, &mut tmp)?);
                }
                Source::Path(p) => {
                    let mut selected = tree.select(p)?;
                    if add && c.from.is_none() && c.unpack != Some(false) {
                        for it in &mut selected {
                            if let (false, Some(src)) = (it.is_dir, it.entries[0].src.clone()) {
                                if is_archive(&src)? {
                                    it.archive = Some(src);
                                }
                            }
                        }
                    }
                    items.extend(selected);
                }
            }
        }
        if c.checksum.is_some() && urls != c.sources.len() {
            return Err(BuildError::Invalid(
                "ADD --checksum checks downloads only: every source must be a URL".into(),
            ));
        }
        if !c.excludes.is_empty() {
            let ex = DockerIgnore::parse(&c.excludes.join("\n"))?;
            items.retain(|i| !ex.matches(&i.name));
            for i in &mut items {
                let name = i.name.clone();
                i.entries.retain(|e| {
                    e.rel.is_empty()
                        || !(ex.matches(&e.rel) || ex.matches(&format!("{name}/{}", e.rel)))
                });
            }
        }
        let digest = source::digest(&items, &self.b.hashes)?;
        Ok(Sources {
            items,
            digest,
            _view: view,
            _tmp: tmp,
        })
    }

    /// ADD of a URL: fetched now (its content is part of the cache key),
    /// mode 0600 and the server's Last-Modified time, as docker does.
    fn download(&self, url: &str, c: &Copy, tmp: &mut Option<tempfile::TempDir>) -> Result<Item> {
        let fail = |reason: String| BuildError::Download {
            url: url.to_string(),
            reason,
        };
        let resp = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
        let mtime = resp
            .header("Last-Modified")
            .and_then(|t| chrono::DateTime::parse_from_rfc2822(t).ok())
            .map_or_else(now, |t| t.timestamp());
        let mut data = Vec::new();
        resp.into_reader()
            .read_to_end(&mut data)
            .map_err(|e| fail(e.to_string()))?;
        if let Some(want) = &c.checksum {
            let got = Digest::of(&data);
            if got.as_str() != want {
                return Err(fail(format!("checksum is {got}, --checksum wants {want}")));
            }
        }
        let path = url
            .split(['?', '#'])
            .next()
            .unwrap_or(url)
            .split_once("://")
            .map_or("", |(_, rest)| rest);
        let name = match path.split_once('/') {
            Some((_, p)) if !source::base_name(p).is_empty() => source::base_name(p).to_string(),
            _ if c.dest.ends_with('/') => {
                return Err(fail(
                    "cannot name the file: the URL has no path; give a destination file name"
                        .into(),
                ))
            }
            _ => "download".to_string(),
        };
        let mut item = inline(&name, data, 0o600, mtime);
        if c.unpack == Some(true) {
            let dir = tempfile::Builder::new()
                .prefix("add-")
                .tempdir_in(&self.b.scratch)
                .map_err(io_err("creating a download directory"))?;
            let file = dir.path().join("archive");
            std::fs::write(&file, item.entries[0].data.as_deref().unwrap_or_default())
                .map_err(io_err("saving a download"))?;
            if is_archive(&file)? {
                item.archive = Some(file);
            }
            *tmp = Some(dir);
        }
        Ok(item)
    }

    fn copy(
        &self,
        c: &Copy,
        keyword: &str,
        sources: &Sources<'_>,
        history: Value,
    ) -> Result<Current> {
        let view = View::mount(&self.b.store, self.cur.image.as_ref(), &self.b.scratch)?;
        let rt = self.cur.runtime();
        let workdir = rt
            .get("WorkingDir")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string();
        let workdir = if workdir.is_empty() {
            "/".to_string()
        } else {
            workdir
        };
        let chown = c
            .chown
            .as_deref()
            .map(|s| chown_ids(s, view.root()))
            .transpose()?;
        let chmod = c.chmod.as_deref().map(Chmod::parse).transpose()?;
        let placed = tarball::place(&sources.items, &c.dest, &workdir, view.root(), keyword)?;
        let o = tarball::Options {
            chown,
            chmod,
            epoch: self.b.opts.source_date_epoch,
            now: now(),
        };
        let mut write = |w: &mut dyn Write| tarball::write(w, view.root(), &placed, &o).map(|_| ());
        child(
            &self.b.store,
            &self.cur,
            rt,
            history,
            Layer::Write(&mut write),
            &self.b.created(),
        )
    }

    fn run(&self, r: &Run, history: Value) -> Result<Current> {
        if r.security == Some(Security::Insecure) {
            return Err(BuildError::Unsupported(
                "RUN --security=insecure (berth build grants no extra privileges)".into(),
            ));
        }
        let b = self.b;
        let image = commit::materialize(&b.store, &self.cur)?;
        let rt = self.cur.runtime();
        let workdir = rt
            .get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string();
        let (argv, script) = run_command(r, &config::shell(&rt));
        let mut mounts = RunMounts::default();
        for m in &r.mounts {
            let from = match (&m.kind, &m.from) {
                (MountKind::Bind, Some(f)) => From::View(View::mount(
                    &b.store,
                    self.image_named(f)?.as_ref(),
                    &b.scratch,
                )?),
                _ => From::Context,
            };
            mounts.add(m, from, &workdir, b)?;
        }
        if let Some((name, content)) = script {
            let dir = tempfile::Builder::new()
                .prefix("heredoc-")
                .tempdir_in(&b.scratch)
                .map_err(io_err("creating a heredoc directory"))?;
            let file = dir.path().join(&name);
            std::fs::write(&file, content).map_err(io_err("writing a heredoc"))?;
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(io_err("writing a heredoc"))?;
            let target = format!("/dev/pipes/{name}");
            mounts.binds.push(MountSpec {
                kind: "bind".into(),
                source: file.display().to_string(),
                target: target.clone(),
                read_only: true,
                propagation: "rprivate".into(),
                options: String::new(),
            });
            mounts.temps.push(dir);
        }
        // The directories the runtime will make to hold mount points, for
        // taking them back out of the layer with the mount points.
        let mut stubs = mounts.targets.clone();
        if !stubs.is_empty() {
            let view = View::mount(&b.store, self.cur.image.as_ref(), &b.scratch)?;
            for t in &mounts.targets {
                for dir in Path::new(t).ancestors().skip(1) {
                    let rel = dir.strip_prefix("/").unwrap_or(dir);
                    if !rel.as_os_str().is_empty() && !view.root().join(rel).exists() {
                        stubs.push(dir.display().to_string());
                    }
                }
            }
        }
        let network = match r.network {
            None | Some(NetworkMode::Default) => b.opts.network.clone(),
            Some(NetworkMode::None) => Network::None,
            Some(NetworkMode::Host) => Network::Host,
        };
        let mut env: Vec<String> = self
            .scope
            .run_env()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.extend(mounts.env.iter().cloned());
        let opts = RunOptions {
            image: image.id.to_string(),
            entrypoint: Some(String::new()),
            cmd: argv.clone(),
            env,
            network,
            host: HostConfig {
                mounts: mounts.binds.clone(),
                tmpfs: mounts.tmpfs.clone(),
                shm_size: b.opts.shm_size,
                ulimits: b.opts.ulimits.clone(),
                ..Default::default()
            },
            net: NetOptions {
                add_hosts: b.opts.add_hosts.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = StepContainer::create(b.engine, &opts, b.cancel)?;
        let short: String = c.id.chars().take(12).collect();
        self.emit(Event::Running {
            stage: self.index,
            container: short.clone(),
        });
        let stage = self.index;
        let code = c.run(&|stderr, data| {
            (b.events)(Event::Output {
                stage,
                stderr,
                data: data.to_vec(),
            })
        });
        let code = match code {
            Ok(c) => c,
            Err(e) => {
                drop(c);
                return Err(e);
            }
        };
        if code != 0 {
            drop(c);
            if b.cancel.is_cancelled() {
                return Err(BuildError::Cancelled);
            }
            self.emit(Event::Removed {
                stage,
                container: short,
            });
            return Err(BuildError::RunFailed {
                command: argv.join(" "),
                code,
            });
        }
        let upper = b.store.snapshotter().upper(&c.id).map_err(store)?;
        remove_stubs(&upper, &stubs);
        let opts = DiffOptions {
            source_date_epoch: b.opts.source_date_epoch,
        };
        let mut write = |w: &mut dyn Write| -> Result<()> {
            berth_image::layer::diff(&upper, w, &opts).map_err(store)?;
            Ok(())
        };
        let next = child(
            &b.store,
            &self.cur,
            rt,
            history,
            Layer::Write(&mut write),
            &b.created(),
        );
        drop(c);
        drop(mounts);
        self.emit(Event::Removed {
            stage,
            container: short,
        });
        next
    }
}

/// RUN's argv, and for a heredoc script with a `#!` line, the script to
/// run as a file (BuildKit's rules: a command that is only `<<EOF` runs
/// the body with the shell; any other heredocs go to the shell whole).
fn run_command(r: &Run, shell: &[String]) -> (Vec<String>, Option<(String, String)>) {
    let with_shell = |s: String| {
        let mut v = shell.to_vec();
        v.push(s);
        v
    };
    match &r.command {
        Command::Exec(v) => (v.clone(), None),
        Command::Shell(text) if r.heredocs.is_empty() => (with_shell(text.clone()), None),
        Command::Shell(text) => {
            if let [h] = r.heredocs.as_slice() {
                let marker = text.trim().strip_prefix("<<").map(|t| {
                    t.strip_prefix('-')
                        .unwrap_or(t)
                        .trim()
                        .trim_matches(['"', '\''])
                        .to_string()
                });
                if marker.as_deref() == Some(h.name.as_str()) {
                    if h.content.starts_with("#!") {
                        return (
                            vec![format!("/dev/pipes/{}", h.name)],
                            Some((h.name.clone(), h.content.clone())),
                        );
                    }
                    return (with_shell(h.content.clone()), None);
                }
            }
            let mut full = text.clone();
            for h in &r.heredocs {
                full.push('\n');
                full.push_str(&h.content);
                full.push_str(&h.name);
            }
            (with_shell(full), None)
        }
    }
}

/// `--chown=user[:group]`: names from the image's own passwd and group;
/// without a group, the gid is the uid (docker's rule).
fn chown_ids(spec: &str, root: &Path) -> Result<(u32, u32)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => berth_engine::user::resolve_in_root(root, u)?.uid,
    };
    let gid = match g {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => berth_engine::user::resolve_in_root(root, &format!("0:{g}"))?.gid,
        },
    };
    Ok((uid, gid))
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn is_git(s: &str) -> bool {
    s.starts_with("git@")
        || s.starts_with("git://")
        || (is_url(s)
            && s.split(['?', '#'])
                .next()
                .is_some_and(|p| p.ends_with(".git")))
}

/// Whether ADD unpacks `path`: a tar, plain or gzip/zstd compressed.
/// bzip2 and xz archives, which docker also unpacks, are refused rather
/// than copied as they are.
fn is_archive(path: &Path) -> Result<bool> {
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .and_then(|f| f.take(6).read_to_end(&mut head))
        .map_err(io_err(format!("reading {}", path.display())))?;
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(BuildError::Unsupported(format!(
            "ADD of a bzip2 or xz archive ({})",
            path.display()
        )));
    }
    let f = std::fs::File::open(path).map_err(io_err(format!("reading {}", path.display())))?;
    Ok(super::context::holds_tar(std::io::BufReader::new(f)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::Heredoc;

    fn run(cmd: &str, docs: &[(&str, &str)]) -> Run {
        Run {
            mounts: vec![],
            network: None,
            security: None,
            command: Command::Shell(cmd.into()),
            heredocs: docs
                .iter()
                .map(|(n, c)| Heredoc {
                    name: n.to_string(),
                    content: c.to_string(),
                    expand: true,
                    chomp: false,
                })
                .collect(),
        }
    }

    #[test]
    fn heredoc_commands_as_buildkit_runs_them() {
        let sh: Vec<String> = vec!["/bin/sh".into(), "-c".into()];
        let (argv, script) = run_command(&run("<<EOF", &[("EOF", "echo a\necho b\n")]), &sh);
        assert_eq!(argv, ["/bin/sh", "-c", "echo a\necho b\n"]);
        assert!(script.is_none());
        let (argv, script) = run_command(&run("<<'S'", &[("S", "#!/bin/sh\necho x\n")]), &sh);
        assert_eq!(argv, ["/dev/pipes/S"]);
        assert_eq!(script.unwrap().1, "#!/bin/sh\necho x\n");
        let (argv, _) = run_command(&run("cat <<A > /a", &[("A", "hi\n")]), &sh);
        assert_eq!(argv[2], "cat <<A > /a\nhi\nA");
    }

    #[test]
    fn chown_names_and_numbers() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "app:x:1001:1002::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(t.path().join("etc/group"), "staff:x:50:\n").unwrap();
        assert_eq!(chown_ids("7", t.path()).unwrap(), (7, 7));
        assert_eq!(chown_ids("app", t.path()).unwrap(), (1001, 1001));
        assert_eq!(chown_ids("app:staff", t.path()).unwrap(), (1001, 50));
        assert_eq!(chown_ids("5:6", t.path()).unwrap(), (5, 6));
        assert!(chown_ids("nobody", t.path()).is_err());
    }
}
