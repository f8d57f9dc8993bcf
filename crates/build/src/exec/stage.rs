//! One stage, step by step: substitute, key, look up, execute, record.

use std::collections::BTreeMap;

use berth_image::store::{Image, StoreError};
use berth_image::Digest;
use serde_json::{json, Map, Value};

use super::commit::{child, Current, Layer};
use super::config;
use super::copy::Sources;
use super::error::{BuildError, Result};
use super::run::run_command;
use super::{Build, Event, StageResult};
use crate::dockerfile::{parse_file, Instruction, KeyValue, Node};
use crate::plan::{base_key, link_key, step_key, Base, BaseKey, Platform, Scope, Step};

/// Builds stage `index` and records its result; always tells the printer
/// the stage is over, and on failure cancels the stages running beside.
pub(crate) fn run(b: &Build<'_>, index: usize) -> Result<()> {
    let r = build(b, index);
    if r.is_err() {
        b.cancel.stop();
    }
    (b.events)(Event::StageDone {
        stage: index,
        failed: r.is_err(),
    });
    r
}

fn build(b: &Build<'_>, index: usize) -> Result<()> {
    let stage = &b.df.stages[index];
    let at = |e: BuildError| e.at(&b.df.file, stage.span, &stage.source, "FROM");
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
    let base = cur.clone();
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
        s.node(node).map_err(|e| {
            e.at(
                &b.df.file,
                node.span,
                &node.source,
                node.instruction.keyword(),
            )
        })?;
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
        })?;
    }
    b.results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(StageResult {
        current: s.cur,
        key: s.key,
        base,
    });
    Ok(())
}

impl Build<'_> {
    /// A finished stage's result (the plan builds dependencies first).
    pub(super) fn result(&self, stage: usize) -> StageResult {
        self.results.lock().unwrap_or_else(|p| p.into_inner())[stage]
            .clone()
            .expect("a stage's dependencies are built before it")
    }

    /// A base or `--from` image: the local one, pulled when missing (or
    /// always, with `--pull`).
    pub(super) fn image(&self, stage: usize, name: &str) -> Result<Image> {
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
            .and_then(|client| {
                berth_engine::pull::pull(self.engine, &client, &self.store, name, None, &|_| {})
            })
            .map_err(|cause| BuildError::Pull {
                image: name.to_string(),
                cause: Box::new(cause),
            })?;
        pulled.insert(name.to_string(), p.image.clone());
        Ok(p.image)
    }

    pub(super) fn created(&self) -> String {
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

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A stage being built: where it is, and what its next step needs.
pub(super) struct StageRun<'b> {
    pub b: &'b Build<'b>,
    pub index: usize,
    pub cur: Current,
    /// The key of the last step (or the base's).
    pub key: Digest,
    pub scope: Scope,
    /// Whether this stage set CMD (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl<'b> StageRun<'b> {
    pub(super) fn emit(&self, e: Event) {
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
                // Located at the FROM that brought them in.
                node.span = span;
                node.source = self.b.df.stages[self.index].source.clone();
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
                let link = self.link_key(&step, sources.as_ref());
                let reused = match self.reuse_cache_from(&step, &created_by)? {
                    Some(c) => Some(c),
                    None if self.b.opts.no_cache => None,
                    None => match &link {
                        Some(k) => self.reuse_link(k, &step, &created_by)?,
                        None => None,
                    },
                };
                let next = match reused {
                    Some(c) => {
                        self.emit(Event::UsingCache { stage: self.index });
                        c
                    }
                    None => self.execute(&step, sources, &created_by)?,
                };
                if let Some(id) = next.id() {
                    self.b.cache.put(&key, id, self.cur.id())?;
                    if let Some(k) = &link {
                        self.b.cache.put(k, id, self.cur.id())?;
                    }
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

    /// The key of a `COPY --link` (or `ADD --link`) layer, which does not
    /// depend on the steps before it. `--chown` by name reads the image's
    /// passwd, so such a step is keyed as any other.
    fn link_key(&self, step: &Step, sources: Option<&Sources<'_>>) -> Option<Digest> {
        let (Instruction::Copy(c) | Instruction::Add(c)) = &step.instruction else {
            return None;
        };
        let numeric = |s: &str| s.split(':').all(|p| p.parse::<u32>().is_ok());
        if !c.link || !c.chown.as_deref().is_none_or(numeric) {
            return None;
        }
        let workdir = self
            .cur
            .runtime()
            .get("WorkingDir")
            .and_then(Value::as_str)
            .map(String::from);
        Some(link_key(
            step,
            sources.map(|s| &s.digest),
            workdir.as_deref().unwrap_or(""),
        ))
    }

    /// A `--link` layer made before, on whatever parent, put on this one
    /// (BuildKit's rebase): the image it went into last time gives its top
    /// layer.
    fn reuse_link(&self, key: &Digest, step: &Step, created_by: &str) -> Result<Option<Current>> {
        let Some(made) = self.lookup(key)? else {
            return Ok(None);
        };
        let empty = made
            .history()
            .last()
            .is_some_and(|h| h["empty_layer"].as_bool().unwrap_or(false));
        let layer = if empty {
            Layer::None
        } else {
            let (Some(descriptor), Some(diff_id)) = (
                made.layer_descriptors(&self.b.store)?.last().cloned(),
                made.diff_ids().last().cloned(),
            ) else {
                return Ok(None);
            };
            Layer::Reuse {
                descriptor,
                diff_id,
            }
        };
        let rt = self.next_runtime(&step.instruction)?;
        Ok(Some(child(
            &self.b.store,
            &self.cur,
            rt,
            json!({"created_by": created_by}),
            layer,
            &self.b.created(),
        )?))
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
    pub(super) fn image_named(&self, name: &str) -> Result<Option<Image>> {
        match self.b.df.stage(name) {
            Some(s) if s.index != self.index => {
                let r = self.b.result(s.index);
                Ok(r.current.image)
            }
            _ => self.b.image(self.index, name).map(Some),
        }
    }
}
