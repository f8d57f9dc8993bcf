//! Planner tests: stage graph, targets, parallel groups, arg scoping and
//! cache keys.

use std::collections::BTreeMap;

use berth_image::Digest;

use super::*;
use crate::dockerfile::{parse, Command, Instruction, KeyValue, Node};

fn plan(src: &str, opts: PlanOptions) -> Result<Plan, PlanError> {
    Plan::new(&parse(src).unwrap(), &opts)
}

fn opts(target: Option<&str>, args: &[(&str, &str)]) -> PlanOptions {
    PlanOptions {
        target: target.map(Into::into),
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target_platform: Platform::parse("linux/arm64").unwrap(),
        build_platform: Platform::parse("linux/amd64").unwrap(),
    }
}

const DIAMOND: &str = "FROM alpine AS base
RUN echo base
FROM base AS left
RUN echo left
FROM base AS right
RUN echo right
FROM scratch AS unrelated
COPY x /x
FROM busybox
COPY --from=left /l /l
RUN --mount=type=bind,from=right,target=/r cp /r/x /x
COPY --from=golang:1.22 /usr/local/go /go
";

#[test]
fn graph_order_and_parallel_groups() {
    let p = plan(DIAMOND, opts(None, &[])).unwrap();
    assert_eq!(p.target(), 4);
    let s = p.stages();
    assert_eq!(s[0].base, Base::Image("alpine".into()));
    assert_eq!(s[1].base, Base::Stage(0));
    assert_eq!(s[3].base, Base::Scratch);
    assert_eq!(s[4].deps.iter().copied().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        s[4].images.iter().cloned().collect::<Vec<_>>(),
        ["golang:1.22"]
    );
    // `unrelated` is not needed by the final stage, so it is not built.
    assert_eq!(p.parallel_groups(), [vec![0], vec![1, 2], vec![4]]);
    assert_eq!(p.order(), [0, 1, 2, 4]);
}

#[test]
fn target_builds_only_what_it_needs() {
    let p = plan(DIAMOND, opts(Some("LEFT"), &[])).unwrap();
    assert_eq!(p.target(), 1);
    assert_eq!(p.parallel_groups(), [vec![0], vec![1]]);
    let p = plan(DIAMOND, opts(Some("unrelated"), &[])).unwrap();
    assert_eq!(p.order(), [3]);
    assert_eq!(
        plan(DIAMOND, opts(Some("nope"), &[])).unwrap_err(),
        PlanError::UnknownTarget("nope".into())
    );
}

#[test]
fn copy_from_index_and_errors() {
    let p = plan("FROM a\nFROM b\nCOPY --from=0 /x /x\n", opts(None, &[])).unwrap();
    assert_eq!(p.parallel_groups(), [vec![0], vec![1]]);
    assert_eq!(
        plan("FROM a\nCOPY --from=3 /x /x\n", opts(None, &[]))
            .unwrap_err()
            .to_string(),
        "Dockerfile:2:13: no stage with index 3"
    );
    assert_eq!(
        plan("FROM a AS me\nCOPY --from=me /x /x\n", opts(None, &[]))
            .unwrap_err()
            .to_string(),
        "Dockerfile:2:13: stage \"me\" copies from itself"
    );
    // `FROM node AS node` names an image, not itself.
    let p = plan("FROM node AS node\nRUN x\n", opts(None, &[])).unwrap();
    assert_eq!(p.stages()[0].base, Base::Image("node".into()));
}

#[test]
fn hand_built_dockerfile_without_stages_is_an_error() {
    let mut df = parse("FROM a\n").unwrap();
    df.stages.clear();
    assert_eq!(
        Plan::new(&df, &opts(None, &[])).unwrap_err(),
        PlanError::NoStages
    );
}

#[test]
fn cycles_are_reported() {
    // The last stage is blocked by the cycle but not part of it.
    let err = plan("FROM b AS a\nFROM a AS b\nFROM a\n", opts(None, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dockerfile:1:6: circular dependency between stages: a, b",
        "at the first stage's name for the second"
    );
    let err = plan(
        "FROM x AS x2\nCOPY --from=y / /\nFROM alpine AS y\nCOPY --from=x2 / /\n",
        opts(None, &[]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dockerfile:2:13: circular dependency between stages: x2, y"
    );
}

#[test]
fn global_args_reach_from_lines_with_overrides() {
    let src = "ARG BASE=alpine\nARG TAG\nFROM ${BASE}:${TAG:-latest} AS one\nFROM --platform=$BUILDPLATFORM golang AS two\nFROM $TARGETARCH/thing\n";
    let p = plan(src, opts(None, &[])).unwrap();
    assert_eq!(p.stages()[0].base, Base::Image("alpine:latest".into()));
    assert_eq!(p.stages()[1].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(p.stages()[2].base, Base::Image("arm64/thing".into()));
    let p = plan(src, opts(Some("one"), &[("BASE", "debian"), ("TAG", "12")])).unwrap();
    assert_eq!(p.stages()[0].base, Base::Image("debian:12".into()));
    assert!(p.unused_build_args().is_empty());

    let err = plan("ARG B\nFROM ${B}\n", opts(None, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dockerfile:2:1: base image name \"${B}\" is empty after substitution"
    );
    let err = plan("FROM ${B:?need-a-base}\n", opts(None, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dockerfile:1:6: B: need-a-base",
        "at the variable"
    );
}

/// Steps through the last stage, returning the substituted steps.
fn steps(src: &str, o: PlanOptions, base_env: &[(&str, &str)]) -> Vec<Step> {
    let df = parse(src).unwrap();
    let p = Plan::new(&df, &o).unwrap();
    let env: Vec<(String, String)> = base_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut scope = p.scope(&env);
    df.stages[p.target()]
        .instructions
        .iter()
        .map(|n| scope.step(n).unwrap())
        .collect()
}

fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn arg_scoping_rules() {
    let src = "ARG GLOBAL=g\nARG OTHER=o\nFROM a\nARG GLOBAL\nARG LOCAL=l\nARG TARGETARCH\nARG UNSET\nRUN x\nWORKDIR /$GLOBAL/$LOCAL/$TARGETARCH/$OTHER/$UNSET\nENV LOCAL=env\nWORKDIR $LOCAL\n";
    let s = steps(src, opts(None, &[]), &[]);
    // RUN depends on every ARG in scope with a value.
    assert_eq!(
        s[4].args,
        args(&[("GLOBAL", "g"), ("LOCAL", "l"), ("TARGETARCH", "arm64")])
    );
    // Globals not redeclared (OTHER) are invisible inside the stage.
    assert_eq!(
        s[5].instruction,
        Instruction::Workdir("/g/l/arm64//".into())
    );
    assert_eq!(
        s[5].args,
        args(&[("GLOBAL", "g"), ("LOCAL", "l"), ("TARGETARCH", "arm64")])
    );
    // ENV overrides ARG, and then the step depends on no build arg.
    assert_eq!(s[7].instruction, Instruction::Workdir("env".into()));
    assert!(s[7].args.is_empty());

    let s = steps(
        src,
        opts(None, &[("GLOBAL", "G"), ("LOCAL", "L"), ("UNSET", "U")]),
        &[],
    );
    assert_eq!(
        s[5].instruction,
        Instruction::Workdir("/G/L/arm64//U".into())
    );
}

#[test]
fn base_image_env_is_seen_and_wins_over_args() {
    let s = steps(
        "FROM golang\nARG GOPATH=/nope\nWORKDIR $GOPATH/src\n",
        opts(None, &[]),
        &[("GOPATH", "/go")],
    );
    assert_eq!(s[1].instruction, Instruction::Workdir("/go/src".into()));
}

#[test]
fn env_in_one_instruction_sees_previous_values() {
    let s = steps(
        "FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n",
        opts(None, &[]),
        &[],
    );
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(
        s[1].instruction,
        Instruction::Env(vec![kv("abc", "bye"), kv("def", "hello")])
    );
    assert_eq!(s[2].instruction, Instruction::Env(vec![kv("ghi", "bye")]));
}

#[test]
fn proxy_args_reach_run_but_not_the_cache_key() {
    let df = parse("FROM a\nARG V=1\nRUN curl x\n").unwrap();
    let o = opts(
        None,
        &[("HTTP_PROXY", "http://proxy:3128"), ("NOT_DECLARED", "x")],
    );
    let p = Plan::new(&df, &o).unwrap();
    assert_eq!(p.unused_build_args(), ["NOT_DECLARED"]);
    let mut scope = p.scope(&[]);
    let nodes = &df.stages[0].instructions;
    scope.step(&nodes[0]).unwrap();
    let run = scope.step(&nodes[1]).unwrap();
    assert_eq!(run.args, args(&[("V", "1")]));
    assert_eq!(
        scope.run_env(),
        [
            ("V".to_string(), "1".to_string()),
            ("HTTP_PROXY".to_string(), "http://proxy:3128".to_string())
        ]
    );
}

fn digest(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

#[test]
fn cache_keys() {
    let parent = base_key(BaseKey::Image(&digest("alpine")));
    let step = |text: &str, a: &[(&str, &str)]| Step {
        instruction: Instruction::Cmd(Command::Shell(text.into())),
        args: args(a),
    };
    let k = step_key(&parent, &step("make", &[]), None);
    // Deterministic.
    assert_eq!(k, step_key(&parent, &step("make", &[]), None));
    // Each input changes the key.
    let others = [
        step_key(
            &base_key(BaseKey::Image(&digest("debian"))),
            &step("make", &[]),
            None,
        ),
        step_key(&parent, &step("make all", &[]), None),
        step_key(&parent, &step("make", &[("V", "1")]), None),
        step_key(&parent, &step("make", &[("V", "2")]), None),
        step_key(&parent, &step("make", &[]), Some(&digest("content"))),
        step_key(&parent, &step("make", &[]), Some(&digest("other content"))),
        step_key(&base_key(BaseKey::Scratch), &step("make", &[]), None),
        step_key(
            &base_key(BaseKey::Stage(&digest("alpine"))),
            &step("make", &[]),
            None,
        ),
    ];
    let mut all: Vec<&Digest> = others.iter().collect();
    all.push(&k);
    let unique: std::collections::BTreeSet<&Digest> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len());
    // Length prefixes keep field boundaries: (a, bc) differs from (ab, c).
    assert_ne!(
        step_key(&parent, &step("x", &[("a", "bc")]), None),
        step_key(&parent, &step("x", &[("ab", "c")]), None)
    );
    // A --link layer's key: the same on any parent, not for another
    // working directory, content or instruction, and never a step key.
    let l = link_key(&step("make", &[]), Some(&digest("c")), "/");
    assert_eq!(l, link_key(&step("make", &[]), Some(&digest("c")), "/"));
    assert_ne!(l, link_key(&step("make", &[]), Some(&digest("c")), "/src"));
    assert_ne!(l, link_key(&step("make", &[]), Some(&digest("d")), "/"));
    assert_ne!(l, link_key(&step("make all", &[]), Some(&digest("c")), "/"));
    assert!(!all.contains(&&l));
    // Pinned: the encoding is part of the cache format; changing it must
    // be deliberate (bump the domain tag).
    assert_eq!(
        base_key(BaseKey::Scratch).as_str(),
        "sha256:18aaff7d6820dfeefc0827cc29212b30c1a49b7e2b28cf2008bdc4094ee80718"
    );
}

#[test]
fn cache_invalidation_follows_substituted_text_not_source_text() {
    // The same source line gives different keys when the arg it uses
    // differs, and the same key when an unused arg differs.
    let src = "FROM a\nARG V\nARG UNUSED\nCOPY app-$V.tar /app/\n";
    let key = |o: PlanOptions| {
        let s = steps(src, o, &[]);
        step_key(&base_key(BaseKey::Scratch), &s[2], Some(&digest("ctx")))
    };
    let a = key(opts(None, &[("V", "1"), ("UNUSED", "x")]));
    let b = key(opts(None, &[("V", "1"), ("UNUSED", "y")]));
    let c = key(opts(None, &[("V", "2"), ("UNUSED", "x")]));
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Whitespace that does not change meaning does not change the key.
    let n1: Vec<Node> = parse("FROM a\nCOPY  a   b\n").unwrap().stages[0]
        .instructions
        .clone();
    let n2: Vec<Node> = parse("FROM a\nCOPY a b\n").unwrap().stages[0]
        .instructions
        .clone();
    let p = Plan::new(&parse("FROM a\n").unwrap(), &opts(None, &[])).unwrap();
    let parent = base_key(BaseKey::Scratch);
    let k1 = step_key(&parent, &p.scope(&[]).step(&n1[0]).unwrap(), None);
    let k2 = step_key(&parent, &p.scope(&[]).step(&n2[0]).unwrap(), None);
    assert_eq!(k1, k2);
}
