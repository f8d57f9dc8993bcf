//! The variables a step sees, and which of them it uses.
//!
//! docker's rules, in order of precedence when a word is substituted:
//! ENV (the base image's, then the stage's own) overrides ARG. An ARG
//! declared in the stage gets, in order: the `--build-arg` value, else for
//! `ARG NAME` without default the global ARG's value or the automatic
//! platform value, else its default. Global ARGs are seen only by FROM
//! lines unless redeclared. The predefined proxy args (HTTP_PROXY…) need no
//! declaration to reach RUN's environment and never enter cache keys.

use std::collections::{BTreeMap, BTreeSet};

use crate::dockerfile::{Instruction, Node, SubstError};

/// docker's predefined args: passable with `--build-arg` without an ARG
/// line, given to RUN, and excluded from the cache key unless declared.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What a stage's steps are substituted with; see the module docs.
#[derive(Debug, Clone)]
pub struct Scope {
    pub(crate) escape: char,
    pub(crate) env: BTreeMap<String, String>,
    /// ARGs declared in the stage so far; `None` is declared without value.
    pub(crate) args: BTreeMap<String, Option<String>>,
    pub(crate) build_args: BTreeMap<String, String>,
    pub(crate) globals: BTreeMap<String, Option<String>>,
    pub(crate) automatic: BTreeMap<String, String>,
    /// `--build-arg` names an ARG line has consumed.
    pub(crate) consumed: BTreeSet<String>,
}

/// One step after substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The instruction with its words substituted.
    pub instruction: Instruction,
    /// Build args whose values this step depends on: those its words
    /// referenced, and for RUN every ARG in scope (they are its
    /// environment). ENV values are not here: earlier steps fix them, so
    /// the parent key already covers them.
    pub args: BTreeMap<String, String>,
}

impl Scope {
    /// Substitutes `node` with the variables in scope, records what it
    /// declares (ENV, ARG), and reports the args it depends on.
    pub fn step(&mut self, node: &Node) -> Result<Step, SubstError> {
        let mut used = BTreeMap::new();
        let instruction = {
            let (env, args) = (&self.env, &self.args);
            node.instruction.expand(self.escape, &mut |name: &str| {
                if let Some(v) = env.get(name) {
                    return Some(v.clone());
                }
                let v = args.get(name)?.clone()?;
                used.insert(name.to_string(), v.clone());
                Some(v)
            })?
        };
        match &instruction {
            Instruction::Env(kvs) => {
                for kv in kvs {
                    self.env.insert(kv.key.clone(), kv.value.clone());
                }
            }
            Instruction::Arg(decls) => {
                for d in decls {
                    let value = self.resolve(&d.name, d.default.clone());
                    self.args.insert(d.name.clone(), value);
                }
            }
            Instruction::Run(_) => {
                for (k, v) in &self.args {
                    if let (Some(v), false) = (v, self.env.contains_key(k)) {
                        used.insert(k.clone(), v.clone());
                    }
                }
            }
            _ => {}
        }
        Ok(Step {
            instruction,
            args: used,
        })
    }

    fn resolve(&mut self, name: &str, default: Option<String>) -> Option<String> {
        if let Some(v) = self.build_args.get(name) {
            self.consumed.insert(name.to_string());
            return Some(v.clone());
        }
        if default.is_some() {
            return default;
        }
        if let Some(Some(v)) = self.globals.get(name) {
            return Some(v.clone());
        }
        self.automatic.get(name).cloned()
    }

    /// The environment a RUN step gets on top of the image's ENV: ARGs in
    /// scope that ENV does not override, plus undeclared proxy build args.
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .args
            .iter()
            .filter(|(k, _)| !self.env.contains_key(*k))
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        for p in PROXY_ARGS {
            if let (Some(v), false) = (self.build_args.get(*p), self.args.contains_key(*p)) {
                out.push((p.to_string(), v.clone()));
            }
        }
        out
    }

    /// The ENV variables in scope (base image plus the stage's ENV lines).
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }
}
