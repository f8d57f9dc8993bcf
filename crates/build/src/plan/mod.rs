//! The build plan: which stages exist, which the target needs, in what
//! order and with what parallelism they can build, how build args are
//! scoped, and the cache key of every step. Pure: the executor supplies
//! what only it knows (base image environment and digests, source content
//! digests) and does the work.
//!
//! Use: [`Plan::new`] on a parsed [`Dockerfile`]; build the stages of
//! [`Plan::parallel_groups`] group by group (each group's stages at once);
//! for each stage, [`Plan::scope`] with the base image's ENV, then for
//! each instruction [`Scope::step`] and [`step_key`], looking the key up in
//! the cache before running anything.

mod cache_key;
mod platform;
mod scope;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use cache_key::{base_key, link_key, step_key, BaseKey};
pub use platform::{Platform, PlatformError};
pub use scope::{Scope, Step, PROXY_ARGS};

use crate::dockerfile::{expand_word, Dockerfile, Instruction, MountKind, Span, SubstError};

/// What the user asked for (`docker build` flags that shape the plan).
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// `--target`; the last stage when `None`.
    pub target: Option<String>,
    /// `--build-arg NAME=VALUE`.
    pub build_args: BTreeMap<String, String>,
    /// `--platform`, the host's by default.
    pub target_platform: Platform,
    pub build_platform: Platform,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            target: None,
            build_args: BTreeMap::new(),
            target_platform: Platform::host(),
            build_platform: Platform::host(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Not the error's `source`: it is already in the message.
    #[error("{file}:{line}:{column}: {error}")]
    Substitution {
        file: String,
        line: usize,
        column: usize,
        error: SubstError,
    },
    #[error("{file}:{line}:{column}: base image name {text:?} is empty after substitution")]
    BlankBase {
        file: String,
        line: usize,
        column: usize,
        text: String,
    },
    #[error("the Dockerfile has no stages")]
    NoStages,
    #[error("target stage {0:?} could not be found")]
    UnknownTarget(String),
    /// At the first place one stage on the cycle names another.
    #[error("{file}:{line}:{column}: circular dependency between stages: {stages}")]
    Cycle {
        file: String,
        line: usize,
        column: usize,
        stages: String,
    },
    #[error("{file}:{line}:{column}: stage {stage:?} copies from itself")]
    SelfReference {
        file: String,
        line: usize,
        column: usize,
        stage: String,
    },
    #[error("{file}:{line}:{column}: no stage with index {index}")]
    StageIndex {
        file: String,
        line: usize,
        column: usize,
        index: usize,
    },
}

/// What a stage builds on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An image reference, substituted.
    Image(String),
    /// An earlier (or later: docker allows any order) stage.
    Stage(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStage {
    pub index: usize,
    pub name: Option<String>,
    pub base: Base,
    /// `FROM --platform=` after substitution.
    pub platform: Option<String>,
    /// Stages this one needs: its base, `COPY --from`, `RUN --mount=from=`.
    pub deps: BTreeSet<usize>,
    /// Where each of `deps` is first named: (line, column).
    pub dep_sites: BTreeMap<usize, (usize, usize)>,
    /// Images (not stages) named by `COPY --from` or a mount's `from`.
    pub images: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    stages: Vec<PlannedStage>,
    target: usize,
    groups: Vec<Vec<usize>>,
    escape: char,
    /// The Dockerfile's name in messages.
    file: String,
    options: PlanOptions,
    globals: BTreeMap<String, Option<String>>,
    automatic: BTreeMap<String, String>,
    unused_build_args: Vec<String>,
}

impl Plan {
    pub fn new(df: &Dockerfile, options: &PlanOptions) -> Result<Plan, PlanError> {
        let automatic = platform::automatic_args(&options.target_platform, &options.build_platform);
        let escape = df.directives.escape;
        let subst_err = |span: Span, text: &str, error| PlanError::Substitution {
            file: df.file.clone(),
            line: span.line,
            column: subst_column(span, text, &error),
            error,
        };

        // Global scope: automatic platform args, then the ARGs before FROM.
        let mut globals: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut consumed = BTreeSet::new();
        for node in &df.global_args {
            let lookup_globals = |globals: &BTreeMap<String, Option<String>>, name: &str| {
                globals
                    .get(name)
                    .cloned()
                    .flatten()
                    .or_else(|| automatic.get(name).cloned())
            };
            let expanded = node
                .instruction
                .expand(escape, &mut |n| lookup_globals(&globals, n))
                .map_err(|e| subst_err(node.span, &node.source, e))?;
            if let Instruction::Arg(decls) = expanded {
                for d in decls {
                    let value = match options.build_args.get(&d.name) {
                        Some(v) => {
                            consumed.insert(d.name.clone());
                            Some(v.clone())
                        }
                        None => d.default.or_else(|| automatic.get(&d.name).cloned()),
                    };
                    globals.insert(d.name, value);
                }
            }
        }

        let names: Vec<Option<&str>> = df.stages.iter().map(|s| s.from.name.as_deref()).collect();
        let by_name = |name: &str, except: usize| {
            let lower = name.to_ascii_lowercase();
            names
                .iter()
                .enumerate()
                .find(|(i, n)| *i != except && **n == Some(lower.as_str()))
                .map(|(i, _)| i)
        };

        let mut plan = Plan {
            stages: Vec::new(),
            target: 0,
            groups: Vec::new(),
            escape,
            file: df.file.clone(),
            options: options.clone(),
            globals,
            automatic,
            unused_build_args: Vec::new(),
        };

        for stage in &df.stages {
            let (globals, automatic) = (&plan.globals, &plan.automatic);
            let mut lookup = |n: &str| {
                globals
                    .get(n)
                    .cloned()
                    .flatten()
                    .or_else(|| automatic.get(n).cloned())
            };
            let at_from = |e| subst_err(stage.span, &stage.source, e);
            let image = expand_word(&stage.from.image, escape, &mut lookup).map_err(at_from)?;
            let platform = stage
                .from
                .platform
                .as_deref()
                .map(|p| expand_word(p, escape, &mut lookup))
                .transpose()
                .map_err(at_from)?;
            if image.trim().is_empty() {
                return Err(PlanError::BlankBase {
                    file: df.file.clone(),
                    line: stage.span.line,
                    column: stage.span.column,
                    text: stage.from.image.clone(),
                });
            }
            let mut deps = BTreeSet::new();
            let mut dep_sites = BTreeMap::new();
            let base = if image == "scratch" {
                Base::Scratch
            } else if let Some(i) = by_name(&image, stage.index) {
                deps.insert(i);
                dep_sites.insert(
                    i,
                    site(
                        stage.span,
                        &stage.source,
                        &format!(" {}", stage.from.image),
                        1,
                    ),
                );
                Base::Stage(i)
            } else {
                Base::Image(image)
            };
            let mut images = BTreeSet::new();

            // Walk the stage with an empty base environment to find the
            // stages and images its COPY --from and mounts name.
            let mut scope = plan.scope(&[]);
            for node in &stage.instructions {
                let step = scope
                    .step(node)
                    .map_err(|e| subst_err(node.span, &node.source, e))?;
                let mut refs: Vec<&str> = Vec::new();
                match &step.instruction {
                    Instruction::Copy(c) => refs.extend(c.from.as_deref()),
                    Instruction::Run(r) => refs.extend(
                        r.mounts
                            .iter()
                            .filter(|m| matches!(m.kind, MountKind::Bind | MountKind::Cache))
                            .filter_map(|m| m.from.as_deref()),
                    ),
                    _ => {}
                }
                for r in refs {
                    let at = || {
                        let (line, column) = site(node.span, &node.source, &format!("from={r}"), 5);
                        (df.file.clone(), line, column)
                    };
                    if let Ok(index) = r.parse::<usize>() {
                        if index >= df.stages.len() {
                            let (file, line, column) = at();
                            return Err(PlanError::StageIndex {
                                file,
                                line,
                                column,
                                index,
                            });
                        }
                        if index == stage.index {
                            let (file, line, column) = at();
                            return Err(PlanError::SelfReference {
                                file,
                                line,
                                column,
                                stage: r.to_string(),
                            });
                        }
                        deps.insert(index);
                        dep_sites.entry(index).or_insert_with(|| {
                            site(node.span, &node.source, &format!("from={r}"), 5)
                        });
                    } else if stage.from.name.as_deref() == Some(r.to_ascii_lowercase().as_str()) {
                        let (file, line, column) = at();
                        return Err(PlanError::SelfReference {
                            file,
                            line,
                            column,
                            stage: r.to_string(),
                        });
                    } else if let Some(i) = by_name(r, stage.index) {
                        deps.insert(i);
                        dep_sites.entry(i).or_insert_with(|| {
                            site(node.span, &node.source, &format!("from={r}"), 5)
                        });
                    } else {
                        images.insert(r.to_string());
                    }
                }
            }
            consumed.extend(scope.consumed);
            plan.stages.push(PlannedStage {
                index: stage.index,
                name: stage.from.name.clone(),
                base,
                platform,
                deps,
                dep_sites,
                images,
            });
        }

        plan.target = match &options.target {
            // The parser never yields a Dockerfile without stages, but the
            // fields are public, so a hand-built one gets an error.
            None => plan
                .stages
                .len()
                .checked_sub(1)
                .ok_or(PlanError::NoStages)?,
            Some(t) => by_name(t, usize::MAX).ok_or_else(|| PlanError::UnknownTarget(t.clone()))?,
        };
        plan.groups = plan.levels()?;
        plan.unused_build_args = options
            .build_args
            .keys()
            .filter(|k| !consumed.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .cloned()
            .collect();
        Ok(plan)
    }

    /// Groups of needed stages: every stage's dependencies are in earlier
    /// groups, so the stages of one group can build in parallel. Errors on
    /// a dependency cycle.
    fn levels(&self) -> Result<Vec<Vec<usize>>, PlanError> {
        let needed = self.needed_set();
        let mut level: BTreeMap<usize, usize> = BTreeMap::new();
        // Kahn-style relaxation: at most |needed| rounds when acyclic.
        for _ in 0..=needed.len() {
            let mut progressed = false;
            for &s in &needed {
                if level.contains_key(&s) {
                    continue;
                }
                let deps = &self.stages[s].deps;
                if deps.iter().all(|d| level.contains_key(d)) {
                    let l = deps.iter().map(|d| level[d] + 1).max().unwrap_or(0);
                    level.insert(s, l);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        if level.len() != needed.len() {
            let stuck: BTreeSet<usize> = needed
                .iter()
                .copied()
                .filter(|s| !level.contains_key(s))
                .collect();
            // Name only the stages on a cycle, not those merely behind one.
            let on: Vec<usize> = stuck
                .iter()
                .copied()
                .filter(|&s| self.reaches(s, s, &stuck))
                .collect();
            let names: Vec<String> = on.iter().map(|&s| self.display_name(s)).collect();
            let (line, column) = on
                .iter()
                .find_map(|&s| {
                    let sites = &self.stages[s].dep_sites;
                    on.iter().find_map(|d| sites.get(d).copied())
                })
                .unwrap_or((1, 1));
            return Err(PlanError::Cycle {
                file: self.file.clone(),
                line,
                column,
                stages: names.join(", "),
            });
        }
        let depth = level.values().max().map_or(0, |m| m + 1);
        let mut groups = vec![Vec::new(); depth];
        for (s, l) in level {
            groups[l].push(s);
        }
        Ok(groups)
    }

    /// Whether `to` is reachable from `from` through dependencies in `within`.
    fn reaches(&self, from: usize, to: usize, within: &BTreeSet<usize>) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<usize> = self.stages[from].deps.iter().copied().collect();
        while let Some(s) = todo.pop() {
            if s == to {
                return true;
            }
            if within.contains(&s) && seen.insert(s) {
                todo.extend(self.stages[s].deps.iter().copied());
            }
        }
        false
    }

    fn needed_set(&self) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![self.target];
        while let Some(s) = todo.pop() {
            if seen.insert(s) {
                todo.extend(self.stages[s].deps.iter().copied());
            }
        }
        seen
    }

    fn display_name(&self, s: usize) -> String {
        self.stages[s].name.clone().unwrap_or_else(|| s.to_string())
    }

    pub fn stages(&self) -> &[PlannedStage] {
        &self.stages
    }

    /// The stage the build produces.
    pub fn target(&self) -> usize {
        self.target
    }

    /// The stages the target needs (itself included), in a topological
    /// order: dependencies first.
    pub fn order(&self) -> Vec<usize> {
        self.groups.iter().flatten().copied().collect()
    }

    /// The needed stages grouped so that each group depends only on earlier
    /// groups; stages within a group are independent.
    pub fn parallel_groups(&self) -> &[Vec<usize>] {
        &self.groups
    }

    /// `--build-arg` names no ARG consumed (docker warns about these).
    pub fn unused_build_args(&self) -> &[String] {
        &self.unused_build_args
    }

    /// The global ARGs with their values (for FROM lines).
    pub fn global_args(&self) -> &BTreeMap<String, Option<String>> {
        &self.globals
    }

    /// A fresh scope for stepping through `stage`, given the ENV of the
    /// image it starts from (`KEY`, `VALUE` pairs).
    pub fn scope(&self, base_env: &[(String, String)]) -> Scope {
        Scope {
            escape: self.escape,
            env: base_env.iter().cloned().collect(),
            args: BTreeMap::new(),
            build_args: self.options.build_args.clone(),
            globals: self.globals.clone(),
            automatic: self.automatic.clone(),
            consumed: BTreeSet::new(),
        }
    }
}

/// The column of the variable a substitution error is about, when the
/// instruction is on one line and shows it; else the instruction's.
fn subst_column(span: Span, text: &str, error: &SubstError) -> usize {
    let SubstError::Required { name, .. } = error else {
        return span.column;
    };
    if span.line != span.end_line {
        return span.column;
    }
    [format!("${{{name}"), format!("${name}")]
        .iter()
        .find_map(|v| text.find(v.as_str()))
        .map_or(span.column, |i| span.column + text[..i].chars().count())
}

/// (line, column) of what follows the first `skip` bytes of `needle` in
/// an instruction at `span` whose text is `source`, or of the instruction
/// when it spans lines or does not show it.
fn site(span: Span, source: &str, needle: &str, skip: usize) -> (usize, usize) {
    let at = (span.line == span.end_line)
        .then(|| source.find(needle))
        .flatten()
        .map(|i| i + skip);
    (
        span.line,
        at.map_or(span.column, |i| {
            span.column + source.get(..i).map_or(0, |p| p.chars().count())
        }),
    )
}
