//! The executor: a parsed, planned Dockerfile becomes images in the store.
//!
//! Each stage starts from its base (a local image, pulled through the
//! engine when missing; `scratch`; an earlier stage) and runs its steps in
//! order. Every step's result is an image (docker's classic builder does
//! the same): config-only steps change the config and add an empty-layer
//! history entry; RUN runs a container through the engine and commits its
//! upper directory as one layer; COPY and ADD write their layer straight
//! from the files. Before doing anything a step looks its cache key up
//! ([`crate::plan::step_key`]: parent, instruction, build args in scope,
//! content of COPY sources) and, on a hit, takes the image it made last
//! time. Stages that do not need each other build on their own threads.
//!
//! What happens is told as [`Event`]s; the caller prints them.

mod cache;
mod commit;
mod config;
pub mod context;
mod copy;
mod error;
mod mounts;
mod resolve;
mod run;
mod scratch;
mod source;
mod squash;
mod stage;
mod tarball;
pub mod transcript;
mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use berth_engine::hostconfig::Ulimit;
use berth_engine::{Engine, Network};
use berth_image::store::{Image, Store};
use berth_image::{Digest, Reference};

pub use cache::{intermediate_images, lineage, prune as prune_cache};
pub use context::{load, Context, Input};
pub use error::{BuildError, Result};

use crate::dockerfile::{parse_file, Dockerfile};
use crate::plan::{Plan, PlanOptions, Platform};

/// `docker build`'s flags that reach the executor.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `-t`: every one tags the result.
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--pull`: pull base images even when present.
    pub pull: bool,
    /// `--cache-from`: images whose layers may stand in for steps.
    pub cache_from: Vec<String>,
    /// `--label`: added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--network`: RUN's network unless the step says otherwise.
    pub network: Network,
    /// `--platform`; only the host's can be built.
    pub platform: Option<String>,
    /// `--secret id=ID,src=PATH`: what `RUN --mount=type=secret` reads.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// `--add-host`, `--shm-size`, `--ulimit` of RUN containers.
    pub add_hosts: Vec<String>,
    pub shm_size: i64,
    pub ulimits: Vec<Ulimit>,
    /// SOURCE_DATE_EPOCH: image times and file mtimes no later than this,
    /// so the same input gives the same digest.
    pub source_date_epoch: Option<i64>,
    /// `--squash`: the final stage's new layers as one.
    pub squash: bool,
    /// `-m`, `--memory-swap`, `--cpu-shares`, `--cpuset-cpus`,
    /// `--cpuset-mems`, `--cpu-period`, `--cpu-quota`: the limits of RUN
    /// containers, as a container's; its other fields stay at their
    /// defaults, under what the executor sets (mounts, shm, ulimits).
    pub limits: berth_engine::HostConfig,
}

/// What a build reports, in order per stage. Stages building side by side
/// interleave theirs; [`Event::Stages`] gives the order to show them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The stages that will build, in Dockerfile order.
    Stages(Vec<usize>),
    /// `Step 2/5 : RUN make`.
    Step {
        stage: usize,
        number: usize,
        total: usize,
        text: String,
    },
    /// The base image carries ONBUILD triggers; they run now.
    Triggers {
        stage: usize,
        count: usize,
    },
    /// A base or `--from` image is missing locally and is being pulled.
    Pulling {
        stage: usize,
        image: String,
    },
    UsingCache {
        stage: usize,
    },
    /// A RUN's container started.
    Running {
        stage: usize,
        container: String,
    },
    /// Output of a RUN (`stderr` tells which stream).
    Output {
        stage: usize,
        stderr: bool,
        data: Vec<u8>,
    },
    /// A RUN's container was removed.
    Removed {
        stage: usize,
        container: String,
    },
    /// The image a step ended with.
    Image {
        stage: usize,
        id: Digest,
    },
    /// The stage is over: all its steps done, or `failed` (by its own
    /// error, or stopped by another stage's).
    StageDone {
        stage: usize,
        failed: bool,
    },
    Warning(String),
}

/// Stops a build from another thread (a signal handler's): the stages
/// stop before their next step and running steps' containers are killed,
/// so the build ends at once and takes its containers with it.
#[derive(Debug, Default)]
pub struct Cancel {
    flag: AtomicBool,
    /// Step containers running now.
    running: Mutex<std::collections::HashSet<String>>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Cancels the build; `engine` kills the running steps.
    pub fn cancel(&self, engine: &Engine) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        let running: Vec<String> = self.lock().iter().cloned().collect();
        for id in running {
            // Not running yet, or already gone: its step sees the flag.
            let _ = engine.kill(&id, "KILL");
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the other stages after one failed (nothing to kill: their
    /// steps finish and they stop before the next).
    pub(crate) fn stop(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The build's result.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: Image,
    pub tags: Vec<Reference>,
}

/// What a finished stage left for the stages after it.
#[derive(Debug, Clone)]
pub(crate) struct StageResult {
    pub current: commit::Current,
    /// The key of its last step: a `FROM stage`'s parent key.
    pub key: Digest,
    /// Where it started (for `--squash`).
    pub base: commit::Current,
}

/// Everything the stages of one build share.
pub(crate) struct Build<'a> {
    pub engine: &'a Engine,
    pub store: Store,
    pub cache: cache::Cache,
    pub df: Dockerfile,
    pub plan: Plan,
    pub context: &'a Context,
    pub opts: &'a BuildOptions,
    pub events: &'a (dyn Fn(Event) + Sync),
    pub results: Mutex<Vec<Option<StageResult>>>,
    /// Each needed stage's first step number.
    pub numbers: BTreeMap<usize, usize>,
    pub total: usize,
    pub cancel: &'a Cancel,
    pub hashes: source::HashCache,
    /// Where views and scratch files go (under the runroot).
    pub scratch: PathBuf,
    /// One pull at a time, and each image once: two stages on one
    /// missing base pull it once.
    pub pulling: Mutex<std::collections::HashMap<String, Image>>,
    /// `--cache-from` images, loaded once.
    pub cache_from: Vec<commit::Current>,
}

/// Builds `input` with `opts`, telling `events` what happens; `cancel`
/// stops it from elsewhere.
pub fn build(
    engine: &Engine,
    input: &Input,
    opts: &BuildOptions,
    events: &(dyn Fn(Event) + Sync),
    cancel: &Cancel,
) -> Result<Built> {
    let host = Platform::host();
    if let Some(p) = &opts.platform {
        let want = Platform::parse(p).map_err(|e| BuildError::Invalid(e.to_string()))?;
        if want != host {
            return Err(BuildError::Unsupported(format!(
                "--platform {p} (only the host's platform, {host}, can be built)"
            )));
        }
    }
    let df = parse_file(&input.dockerfile, &input.text)?;
    let plan = Plan::new(
        &df,
        &PlanOptions {
            target: opts.target.clone(),
            build_args: opts.build_args.clone(),
            target_platform: host.clone(),
            build_platform: host,
        },
    )?;
    let store = berth_engine::images::open(&engine.paths)?;
    let cache = cache::Cache::open(&engine.paths.db())?;
    let order = {
        let mut o = plan.order();
        o.sort_unstable();
        o
    };
    let mut numbers = BTreeMap::new();
    let mut total = 0;
    for &s in &order {
        numbers.insert(s, total + 1);
        total += 1 + df.stages[s].instructions.len();
        if s == plan.target() && !opts.labels.is_empty() {
            total += 1;
        }
    }
    let cache_from = opts
        .cache_from
        .iter()
        .filter_map(|name| match store.image(name) {
            Ok(i) => commit::Current::of(&store, i).ok(),
            Err(_) => {
                events(Event::Warning(format!(
                    "--cache-from {name}: no such image here; not used"
                )));
                None
            }
        })
        .collect();
    let scratch = scratch::open(engine, &engine.paths.runroot.join("build"))?;
    let stages = df.stages.len();
    let b = Build {
        engine,
        store,
        cache,
        df,
        plan,
        context: &input.context,
        opts,
        events,
        results: Mutex::new(vec![None; stages]),
        numbers,
        total,
        cancel,
        hashes: source::HashCache::default(),
        scratch,
        pulling: Mutex::new(Default::default()),
        cache_from,
    };
    events(Event::Stages(order));
    for group in b.plan.parallel_groups().to_vec() {
        let outcomes: Vec<(usize, Result<()>)> = if group.len() == 1 {
            vec![(group[0], stage::run(&b, group[0]))]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = group
                    .iter()
                    .map(|&i| {
                        let b = &b;
                        (i, s.spawn(move || stage::run(b, i)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(i, h)| {
                        (
                            i,
                            h.join().unwrap_or_else(|_| {
                                Err(BuildError::Invalid(format!("stage {i} panicked")))
                            }),
                        )
                    })
                    .collect()
            })
        };
        // The first real failure in Dockerfile order; the stages it
        // cancelled only say so.
        let mut failure = None;
        for (_, r) in outcomes {
            if let Err(e) = r {
                match (&failure, &e) {
                    (None, _) | (Some(BuildError::Cancelled), _) => failure = Some(e),
                    _ => {}
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
    let target = b.plan.target();
    let result = b.results.lock().unwrap_or_else(|p| p.into_inner())[target]
        .clone()
        .expect("the target stage was built");
    let last = if opts.squash {
        squash::squash(
            &b.store,
            &result.base,
            &result.current,
            &b.scratch,
            &berth_image::layer::DiffOptions {
                source_date_epoch: opts.source_date_epoch,
            },
            &b.created(),
        )?
    } else {
        result.current
    };
    let image = commit::materialize(&b.store, &last)?;
    // The classic builder's only image events: a `tag` for each name.
    for t in &opts.tags {
        b.store.tag(&image.id, t)?;
        b.engine.tag_event(&b.store, &image, t);
    }
    // SOURCE_DATE_EPOCH is read by the builder itself, as BuildKit does.
    let unused: Vec<&String> = b
        .plan
        .unused_build_args()
        .iter()
        .filter(|a| *a != "SOURCE_DATE_EPOCH")
        .collect();
    if !unused.is_empty() {
        events(Event::Warning(format!(
            "One or more build-args [{}] were not consumed",
            unused
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    Ok(Built {
        image,
        tags: opts.tags.clone(),
    })
}
