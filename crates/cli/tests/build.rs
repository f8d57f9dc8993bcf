//! `berth build` end to end, as root, on images made from busybox (and
//! one debootstrap Debian with gcc): a multi-stage build whose RUN steps
//! make files, COPY with .dockerignore and --chown, the cache (hits on
//! rebuild with the same image id, one changed file invalidating exactly
//! its step and those after), --target, --build-arg, heredocs, config
//! instructions, parallel stages, cache mounts, ADD of archives and URLs,
//! --cache-from, COPY --link, --squash, the --progress styles, RUN's
//! network, hosts, shm and ulimits, reproducible digests, every kind of
//! error located in the Dockerfile, hostile input refused, and a failed
//! RUN leaving the store as it was.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::Berth;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A context directory under the test's own, with `files` (parents made).
fn context(b: &Berth, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = b.dir.path().join(name);
    for (path, body) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tar of `files`, each with `mode` and owned by `id:id`.
fn tar_of(files: &[(&str, &str)], mode: u32, id: u64) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(mode);
        h.set_uid(id);
        h.set_gid(id);
        h.set_mtime(1);
        h.set_cksum();
        tar.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap()
}

/// A berth with busybox as `bb`, and a context `ctx` holding `files`;
/// `None` when root tests cannot run here.
fn setup(test: &str, files: &[(&str, &str)]) -> Option<(Berth, PathBuf)> {
    if !berth_testutil::require_root(test) {
        return None;
    }
    let b = Berth::with_image();
    let ctx = context(&b, "ctx", files);
    Some((b, ctx))
}

fn build(b: &Berth, args: &[&str], ctx: &Path) -> Output {
    let mut a: Vec<&str> = vec!["build"];
    a.extend_from_slice(args);
    a.push(ctx.to_str().unwrap());
    b.run(&a)
}

/// Builds and asserts success; returns stdout.
fn built(b: &Berth, args: &[&str], ctx: &Path) -> String {
    let o = build(b, args, ctx);
    assert!(
        o.status.success(),
        "build {args:?}: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        out(&o),
        err(&o)
    );
    out(&o)
}

/// Asserts a failed build (docker's exit 1) whose error says `needle`.
fn fails_with(o: &Output, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        out(o),
        err(o)
    );
    assert!(err(o).contains(needle), "{:?} lacks {needle:?}", err(o));
}

/// The short image id of "Successfully built ID".
fn built_id(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap_or_else(|| panic!("no image id in {output}"))
        .to_string()
}

/// The steps (by number) that ran rather than came from the cache.
fn ran_steps(output: &str) -> Vec<usize> {
    let mut ran = Vec::new();
    let mut current = None;
    let mut cached = false;
    let flush = |current: Option<usize>, cached: bool, ran: &mut Vec<usize>| {
        if let (Some(n), false) = (current, cached) {
            ran.push(n);
        }
    };
    for l in output.lines() {
        if let Some(rest) = l.strip_prefix("Step ") {
            flush(current, cached, &mut ran);
            let n: usize = rest.split('/').next().unwrap().parse().unwrap();
            // FROM is not a cached step.
            current = (!rest.contains(" : FROM ")).then_some(n);
            cached = false;
        } else if l == " ---> Using cache" {
            cached = true;
        }
    }
    flush(current, cached, &mut ran);
    ran
}

fn run_in(b: &Berth, image: &str, cmd: &[&str]) -> String {
    let mut a = vec!["run", "--rm", image];
    a.extend_from_slice(cmd);
    b.ok(&a)
}

fn inspect(b: &Berth, image: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["image", "inspect", image])).unwrap();
    v[0].clone()
}

#[test]
fn build_multi_stage_copy_dockerignore_chown_and_cache() {
    let Some((b, ctx)) = setup(
        "build_multi_stage_copy_dockerignore_chown_and_cache",
        &[
            (
                "Dockerfile",
                "FROM bb AS builder\n\
                 RUN mkdir -p /out && echo compiled > /out/bin && echo made-in-run\n\
                 FROM bb\n\
                 COPY --chown=user:user app /app\n\
                 COPY --chown=1234 conf.txt /etc/conf.txt\n\
                 COPY --from=builder /out/bin /usr/local/bin/tool\n\
                 RUN cat /usr/local/bin/tool > /from-run\n\
                 CMD [\"cat\", \"/from-run\"]\n",
            ),
            (".dockerignore", "app/*.log\napp/secret\n!app/keep.log\n"),
            ("app/main.txt", "main"),
            ("app/debug.log", "noise"),
            ("app/keep.log", "kept"),
            ("app/secret", "no"),
            ("app/sub/x.txt", "x"),
            ("conf.txt", "v1"),
        ],
    ) else {
        return;
    };
    let first = built(&b, &["-t", "app:1"], &ctx);
    assert!(first.contains("made-in-run"), "RUN output streams: {first}");
    assert!(first.contains("Step 1/8 : FROM bb AS builder"), "{first}");
    assert!(first.contains("Successfully tagged app:1"), "{first}");
    let id = built_id(&first);
    assert_eq!(run_in(&b, "app:1", &[]), "compiled\n");
    let ls = run_in(
        &b,
        "app:1",
        &[
            "sh",
            "-c",
            "cd /app && find . | sort && ls -ln /app /app/sub /etc/conf.txt",
        ],
    );
    let names: Vec<&str> = ls.lines().take_while(|l| l.starts_with('.')).collect();
    assert_eq!(
        names,
        [".", "./keep.log", "./main.txt", "./sub", "./sub/x.txt"],
        "{ls}"
    );
    let long: Vec<&str> = ls.lines().filter(|l| l.starts_with(['-', 'd'])).collect();
    for l in long
        .iter()
        .filter(|l| l.contains("main.txt") || l.contains("x.txt") || l.ends_with(" sub"))
    {
        assert_eq!(l.matches(" 1000 ").count(), 2, "owned by user:user: {l}");
    }
    let conf = ls.lines().find(|l| l.ends_with("/etc/conf.txt")).unwrap();
    assert!(
        conf.contains(" 1234 ") && conf.matches("1234").count() == 2,
        "uid as gid: {conf}"
    );

    // Nothing changed: every step from the cache, the same image.
    let again = built(&b, &["-t", "app:1"], &ctx);
    assert_eq!(ran_steps(&again), Vec::<usize>::new(), "{again}");
    assert_eq!(built_id(&again), id);
    // One file changed: its COPY and what follows run, nothing before.
    std::fs::write(ctx.join("conf.txt"), "v2").unwrap();
    let changed = built(&b, &["-t", "app:1"], &ctx);
    assert_eq!(ran_steps(&changed), vec![5, 6, 7, 8], "{changed}");
    assert_ne!(built_id(&changed), id);
    // An ignored file changing is invisible to the build.
    std::fs::write(ctx.join("app/debug.log"), "more noise").unwrap();
    let ignored = built(&b, &[], &ctx);
    assert_eq!(ran_steps(&ignored), Vec::<usize>::new(), "{ignored}");
    // --no-cache runs every step again.
    let fresh = built(&b, &["--no-cache"], &ctx);
    assert_eq!(ran_steps(&fresh), vec![2, 4, 5, 6, 7, 8], "{fresh}");
    // Build step images are hidden from `images` unless -a.
    let listed = b.ok(&["images", "-q"]);
    let all = b.ok(&["images", "-a", "-q"]);
    assert!(
        all.lines().count() > listed.lines().count() + 4,
        "{listed}\n{all}"
    );
    assert_eq!(b.ok(&["ps", "-aq"]), "", "no build container is left");
}

#[test]
fn build_target_build_args_and_config_instructions() {
    let Some((b, ctx)) = setup(
        "build_target_build_args_and_config_instructions",
        &[(
            "Dockerfile",
            "ARG BASE=bb\n\
             FROM $BASE AS first\n\
             ARG WHO=world\n\
             RUN echo \"hello $WHO\" > /greeting\n\
             FROM first AS second\n\
             ENV MODE=prod\n\
             ENV WHERE=$MODE/here\n\
             WORKDIR /srv\n\
             WORKDIR data\n\
             USER user\n\
             EXPOSE 80 53/udp\n\
             LABEL org.example.name=\"the app\"\n\
             VOLUME /cache\n\
             STOPSIGNAL SIGINT\n\
             HEALTHCHECK --interval=5s --retries=2 CMD true\n\
             SHELL [\"/bin/sh\", \"-ec\"]\n\
             ENTRYPOINT [\"/bin/echo\"]\n\
             CMD [\"from\", \"cmd\"]\n\
             FROM bb AS never\n\
             RUN exit 1\n",
        )],
    ) else {
        return;
    };
    let o = built(
        &b,
        &[
            "--target",
            "second",
            "--build-arg",
            "WHO=berth",
            "--label",
            "extra=yes",
            "-t",
            "t:1",
        ],
        &ctx,
    );
    assert!(
        !o.contains("exit 1"),
        "a stage the target does not need is not built: {o}"
    );
    assert!(o.contains("Step 18/18 : LABEL \"extra\"=\"yes\""), "{o}");
    assert_eq!(run_in(&b, "t:1", &[]), "from cmd\n");
    assert_eq!(
        b.ok(&["run", "--rm", "--entrypoint", "cat", "t:1", "/greeting"]),
        "hello berth\n"
    );
    let cfg = &inspect(&b, "t:1")["Config"];
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"MODE=prod"), "{env:?}");
    assert!(env.contains(&"WHERE=prod/here"), "{env:?}");
    assert_eq!(cfg["WorkingDir"], "/srv/data");
    assert_eq!(cfg["User"], "user");
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert!(cfg["ExposedPorts"]["53/udp"].is_object(), "{cfg}");
    assert!(cfg["Volumes"]["/cache"].is_object(), "{cfg}");
    assert_eq!(cfg["Labels"]["org.example.name"], "the app");
    assert_eq!(cfg["Labels"]["extra"], "yes");
    assert_eq!(
        cfg["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(cfg["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    // Config-only steps add history, not layers.
    let layers = inspect(&b, "t:1")["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(layers, 2, "the base's and the RUN's");
    let history = b.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        "t:1",
    ]);
    assert!(history.contains("#(nop)  ENV MODE=prod"), "{history}");
    assert!(
        history.contains("|1 WHO=berth /bin/sh -c echo \"hello $WHO\" > /greeting"),
        "{history}"
    );

    // A changed build arg reruns the RUN that sees it.
    let o = built(&b, &["--target", "first", "--build-arg", "WHO=other"], &ctx);
    assert_eq!(ran_steps(&o), vec![3], "{o}");
    fails_with(
        &build(&b, &["--target", "nope"], &ctx),
        "target stage \"nope\" could not be found",
    );
}

#[test]
fn build_heredocs() {
    let Some((b, ctx)) = setup(
        "build_heredocs",
        &[(
            "Dockerfile",
            "FROM bb\n\
             ARG NAME=berth\n\
             RUN <<EOF\n\
             echo one > /one\n\
             echo \"two $NAME\" > /two\n\
             EOF\n\
             RUN <<'SCRIPT'\n\
             #!/bin/sh\n\
             echo \"script as $0\" > /three\n\
             SCRIPT\n\
             RUN cat <<A > /four && cat <<B > /five\n\
             four\n\
             A\n\
             five\n\
             B\n\
             COPY <<EOF /etc/app.conf\n\
             name=${NAME}\n\
             EOF\n\
             COPY --chmod=755 <<\"RUNME\" /runme\n\
             #!/bin/sh\n\
             echo $NAME\n\
             RUNME\n",
        )],
    ) else {
        return;
    };
    built(&b, &["-t", "h"], &ctx);
    let got = run_in(
        &b,
        "h",
        &[
            "sh",
            "-c",
            "cat /one /two /three /four /five /etc/app.conf /runme; ls -l /runme",
        ],
    );
    let mut lines = got.lines();
    assert_eq!(lines.next(), Some("one"));
    assert_eq!(lines.next(), Some("two berth"));
    assert_eq!(lines.next(), Some("script as /dev/pipes/SCRIPT"));
    assert_eq!(lines.next(), Some("four"));
    assert_eq!(lines.next(), Some("five"));
    assert_eq!(
        lines.next(),
        Some("name=berth"),
        "COPY heredocs are substituted"
    );
    assert_eq!(lines.next(), Some("#!/bin/sh"));
    assert_eq!(lines.next(), Some("echo $NAME"), "a quoted heredoc is not");
    assert!(lines.next().unwrap().starts_with("-rwxr-xr-x"), "{got}");
}

#[test]
fn build_errors_point_at_the_dockerfile() {
    if !berth_testutil::require_root("build_errors_point_at_the_dockerfile") {
        return;
    }
    let b = Berth::with_image();
    // Every kind of error, located at the offending text where the
    // instruction shows it, else at the instruction.
    let cases: &[(&str, &str)] = &[
        ("FROM bb\nRUN true\nRUNN x\n", "Dockerfile:3:1: unknown instruction \"RUNN\""),
        ("FROM bb\n  COPY --bogus=1 a /\n", "Dockerfile:2:8: unknown flag \"bogus\" for COPY"),
        ("FROM bb\nCOPY missing.txt /\n", "Dockerfile:2:6: COPY: file not found in build context or excluded by .dockerignore: missing.txt"),
        ("FROM bb\nCOPY --from=nostage /x /\n", "Dockerfile:2:13: COPY: image nostage is not here and pulling it failed: "),
        ("FROM nothere\n", "Dockerfile:1:6: FROM: image nothere is not here and pulling it failed: "),
        ("FROM bb AS s\nFROM bb\nCOPY --from=s /nofile /\n", "Dockerfile:3:15: COPY: /nofile: no such file or directory in "),
        ("FROM bb\nENV A=${B:?unset}\n", "Dockerfile:2:7: B: unset\n"),
        ("FROM bb\nCOPY a b /dest\n", "Dockerfile:2:1: COPY: When using COPY with more than one source file, the destination must be a directory and end with a /"),
        ("FROM bb\nSTOPSIGNAL $NOPE\n", "Dockerfile:2:1: STOPSIGNAL: STOPSIGNAL: invalid signal"),
        ("FROM bb\nCOPY ../a /\n", "Dockerfile:2:6: COPY: forbidden path outside the build context: ../a"),
        ("FROM bb\nADD http://127.0.0.1:1/x /x\n", "Dockerfile:2:5: ADD: downloading http://127.0.0.1:1/x: "),
        ("FROM --platform=linux/s390x bb\n", "Dockerfile:1:1: FROM: FROM --platform=linux/s390x (only the host's platform"),
        ("FROM bb\nCOPY --exclude=ok --exclude=[abc a /\n", "Dockerfile:2:1: COPY: --exclude=[abc: syntax error in pattern \"[abc\""),
        ("FROM bb AS a\nCOPY --from=b /x /\nFROM bb AS b\nCOPY --from=a /y /\n", "Dockerfile:2:13: circular dependency between stages: a, b"),
        ("FROM bb\nCOPY --from=5 /x /\n", "Dockerfile:2:13: no stage with index 5"),
        ("FROM bb\nRUN exit 4\n", "Dockerfile:2:1: RUN: the command '/bin/sh -c exit 4' returned a non-zero code: 4"),
    ];
    for (i, (df, want)) in cases.iter().enumerate() {
        let ctx = context(
            &b,
            &format!("c{i}"),
            &[("Dockerfile", df), ("a", "a"), ("b", "b")],
        );
        fails_with(&build(&b, &[], &ctx), want);
    }
    // -f names the file in messages.
    let ctx = context(&b, "named", &[("build.df", "FROM bb\nFROM\n")]);
    let o = build(&b, &["-f", ctx.join("build.df").to_str().unwrap()], &ctx);
    fails_with(&o, "build.df:2:1: FROM requires at least one argument");
    // An ignore file beside a -f Dockerfile is named as such.
    let df = ctx.join("build.df");
    std::fs::write(format!("{}.dockerignore", df.display()), "ok\n!\n").unwrap();
    fails_with(
        &build(&b, &["-f", df.to_str().unwrap()], &ctx),
        &format!(
            "{}.dockerignore:2:1: illegal exclusion pattern \"!\"",
            df.display()
        ),
    );
    // A flag's value is no place in the Dockerfile.
    fails_with(
        &build(&b, &["--platform", "linux/s390x"], &b.dir.path().join("c0")),
        "--platform linux/s390x (only the host's platform",
    );
    // .dockerignore's own, by line and column.
    let ctx = context(
        &b,
        "ignore",
        &[
            ("Dockerfile", "FROM bb\n"),
            (".dockerignore", "ok\n  [abc\n"),
        ],
    );
    fails_with(
        &build(&b, &[], &ctx),
        ".dockerignore:2:3: syntax error in pattern \"  [abc\"",
    );
}

#[test]
fn build_refuses_paths_out_of_the_context() {
    if !berth_testutil::require_root("build_refuses_paths_out_of_the_context") {
        return;
    }
    let b = Berth::with_image();
    let outside = b.dir.path().join("outside.txt");
    std::fs::write(&outside, "host secret").unwrap();
    let ctx = context(&b, "ctx", &[("dir/file", "f")]);
    std::os::unix::fs::symlink(&outside, ctx.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../outside.txt", ctx.join("rel-link")).unwrap();
    std::os::unix::fs::symlink(b.dir.path(), ctx.join("dir/up")).unwrap();
    for src in [
        "../outside.txt",
        "abs-link",
        "rel-link",
        "dir/up/outside.txt",
        "/../outside.txt",
    ] {
        std::fs::write(ctx.join("Dockerfile"), format!("FROM bb\nCOPY {src} /x\n")).unwrap();
        fails_with(
            &build(&b, &[], &ctx),
            "forbidden path outside the build context",
        );
    }
    // A link inside a copied directory is copied as a link, never followed.
    std::fs::write(ctx.join("Dockerfile"), "FROM bb\nCOPY dir /d\n").unwrap();
    built(&b, &["-t", "links"], &ctx);
    let got = run_in(&b, "links", &["sh", "-c", "readlink /d/up; ls /d"]);
    assert_eq!(got.lines().next(), Some(b.dir.path().to_str().unwrap()));
    // An archive whose entries climb out of the destination is refused.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.as_gnu_mut().unwrap().name[..12].copy_from_slice(b"../../escape");
    h.set_cksum();
    tar.append(&h, &b"x"[..]).unwrap();
    std::fs::write(ctx.join("evil.tar"), tar.into_inner().unwrap()).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM bb\nADD evil.tar /x/\n").unwrap();
    fails_with(&build(&b, &[], &ctx), "leads out of the destination");
}

#[test]
fn build_failed_run_leaves_the_store_as_it_was() {
    let Some((b, ctx)) = setup(
        "build_failed_run_leaves_the_store_as_it_was",
        &[(
            "Dockerfile",
            "FROM bb\nRUN echo partial > /p && echo said-this && exit 7\n",
        )],
    ) else {
        return;
    };
    let images = b.ok(&["images", "-a", "-q", "--no-trunc"]);
    let snapshots = std::fs::read_dir(b.root.join("snapshots")).unwrap().count();
    let o = build(&b, &["-t", "broken"], &ctx);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains("said-this"),
        "the output is shown: {}",
        out(&o)
    );
    assert!(
        err(&o).contains(
            "Dockerfile:2:1: RUN: the command '/bin/sh -c echo partial > /p && echo said-this && exit 7' returned a non-zero code: 7"
        ),
        "{}",
        err(&o)
    );
    assert_eq!(b.ok(&["images", "-a", "-q", "--no-trunc"]), images);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(
        std::fs::read_dir(b.root.join("snapshots")).unwrap().count(),
        snapshots
    );
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    b.ok(&["system", "check"]);
    assert!(b.run(&["image", "inspect", "broken"]).status.code() != Some(0));
}

#[test]
fn build_runs_independent_stages_side_by_side() {
    if !berth_testutil::require_root("build_runs_independent_stages_side_by_side") {
        return;
    }
    let b = Berth::with_image();
    // Each stage waits for the other's mark in a shared cache mount: one
    // after the other, the first would give up and fail the build.
    let wait = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id=sync,target=/sync touch /sync/{me}; \
             i=0; while [ ! -e /sync/{other} ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.1; done; \
             echo {me} > /{me}; echo {me}-ran\n"
        )
    };
    let df = format!(
        "FROM bb AS a\n{}FROM bb AS b\n{}FROM bb\nCOPY --from=a /a /\nCOPY --from=b /b /\n",
        wait("a", "b"),
        wait("b", "a")
    );
    let ctx = context(&b, "ctx", &[("Dockerfile", &df)]);
    let o = built(&b, &["-t", "par"], &ctx);
    assert_eq!(run_in(&b, "par", &["cat", "/a", "/b"]), "a\nb\n");
    // Shown one stage after the other all the same.
    let pos = |s: &str| o.find(s).unwrap_or_else(|| panic!("{s} in {o}"));
    assert!(pos("a-ran") < pos("Step 3/7 : FROM bb AS b"), "{o}");
    assert!(pos("b-ran") < pos("Step 5/7 : FROM bb\n"), "{o}");
}

#[test]
fn build_run_mounts_reach_the_step_not_the_image() {
    let df = "FROM bb\n\
        RUN --mount=type=cache,target=/root/.cache echo x >> /root/.cache/runs && wc -l < /root/.cache/runs > /count\n\
        RUN --mount=type=bind,source=data,target=/data cat /data/in > /copied\n\
        RUN --mount=type=tmpfs,target=/scratch touch /scratch/t\n\
        RUN --mount=type=secret,id=tok --mount=type=secret,id=env,env=TOK \
            test \"$(cat /run/secrets/tok)\" = s3cret && test \"$TOK\" = from-env && echo secrets-seen\n";
    let Some((b, ctx)) = setup(
        "build_run_mounts_reach_the_step_not_the_image",
        &[("Dockerfile", df), ("data/in", "from the context")],
    ) else {
        return;
    };
    let secret = b.dir.path().join("tok");
    std::fs::write(&secret, "s3cret").unwrap();
    let iid = b.dir.path().join("iid");
    let build_with_secrets = |extra: &[&str]| {
        let src = format!("id=tok,src={}", secret.display());
        let mut args = vec!["build", "--secret", &src, "--secret", "id=env,env=TOK_SRC"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let o = b.cmd(&args).env("TOK_SRC", "from-env").output().unwrap();
        assert!(o.status.success(), "{}\n{}", out(&o), err(&o));
        out(&o)
    };
    let first = build_with_secrets(&["-t", "c1", "--iidfile", iid.to_str().unwrap()]);
    assert!(first.contains("secrets-seen"), "{first}");
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(
        id.starts_with(&format!("sha256:{}", built_id(&first))),
        "{id}"
    );
    build_with_secrets(&["--no-cache", "-t", "c2"]);
    assert_eq!(run_in(&b, "c1", &["cat", "/count"]).trim(), "1");
    assert_eq!(
        run_in(&b, "c2", &["cat", "/count"]).trim(),
        "2",
        "the cache outlived a build"
    );
    assert_eq!(run_in(&b, "c2", &["cat", "/copied"]), "from the context");
    // Neither the mounts' contents nor the points they were mounted on.
    let left = run_in(
        &b,
        "c2",
        &[
            "sh",
            "-c",
            "ls -A /root/.cache /data /scratch /run/secrets 2>&1; true",
        ],
    );
    assert_eq!(
        left.matches("No such file or directory").count(),
        4,
        "{left}"
    );
}

#[test]
fn build_add_archives_and_urls() {
    let Some((b, ctx)) = setup("build_add_archives_and_urls", &[]) else {
        return;
    };
    // A gzip-compressed tar, unpacked by ADD.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_of(
        &[("pkg/a.txt", "aaa"), ("pkg/b/c.txt", "ccc")],
        0o640,
        7,
    ))
    .unwrap();
    std::fs::write(ctx.join("pkg.tar.gz"), gz.finish().unwrap()).unwrap();
    // A tiny HTTP server on loopback for ADD <url>.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = "downloaded";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let sum = format!("sha256:{}", berth_image::Digest::of(b"downloaded").hex());
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM bb\n\
             ADD pkg.tar.gz /opt/\n\
             ADD --checksum={sum} http://127.0.0.1:{port}/files/remote.txt /srv/\n\
             COPY pkg.tar.gz /kept/\n"
        ),
    )
    .unwrap();
    built(&b, &["-t", "add"], &ctx);
    let got = run_in(&b, "add", &["sh", "-c", "cat /opt/pkg/a.txt /opt/pkg/b/c.txt; echo; ls -ln /opt/pkg/a.txt /srv/remote.txt /kept; cat /srv/remote.txt"]);
    assert!(got.starts_with("aaaccc\n"), "{got}");
    let a = got.lines().find(|l| l.ends_with("/opt/pkg/a.txt")).unwrap();
    assert!(
        a.starts_with("-rw-r-----") && a.contains(" 7 "),
        "the archive's mode and owner: {a}"
    );
    let r = got
        .lines()
        .find(|l| l.ends_with("/srv/remote.txt"))
        .unwrap();
    assert!(
        r.starts_with("-rw-------") && r.contains("2015"),
        "mode 0600, Last-Modified: {r}"
    );
    assert!(got.contains("pkg.tar.gz"), "COPY does not unpack: {got}");
    assert!(got.ends_with("downloaded"), "{got}");
    // A checksum that does not match fails the step.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM bb\nADD --checksum=sha256:{} http://127.0.0.1:{port}/x /x\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    fails_with(&build(&b, &[], &ctx), "checksum is sha256:");
    server.join().unwrap();
}

#[test]
fn build_context_on_stdin_and_dockerfile_elsewhere() {
    if !berth_testutil::require_root("build_context_on_stdin_and_dockerfile_elsewhere") {
        return;
    }
    let b = Berth::with_image();
    let stdin_build = |args: &[&str], input: &[u8]| {
        let mut a = vec!["build"];
        a.extend_from_slice(args);
        let mut c = b.cmd(&a);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    // A Dockerfile alone on stdin: an empty context.
    let o = stdin_build(&["-t", "s1", "-"], b"FROM bb\nRUN echo from-stdin > /s\n");
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(run_in(&b, "s1", &["cat", "/s"]), "from-stdin\n");
    // A tar of a context on stdin, its Dockerfile inside.
    let tar = tar_of(
        &[("Dockerfile", "FROM bb\nCOPY f /f\n"), ("f", "in the tar")],
        0o644,
        0,
    );
    let o = stdin_build(&["-t", "s2", "-"], &tar);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(run_in(&b, "s2", &["cat", "/f"]), "in the tar");
    // -f - with a directory context; -f outside the context.
    let ctx = context(&b, "ctx", &[("f", "from the dir")]);
    let o = stdin_build(
        &["-f", "-", "-t", "s3", ctx.to_str().unwrap()],
        b"FROM bb\nCOPY f /f\n",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(run_in(&b, "s3", &["cat", "/f"]), "from the dir");
    let df = b.dir.path().join("elsewhere.Dockerfile");
    std::fs::write(&df, "FROM bb\nCOPY f /g\n").unwrap();
    built(&b, &["-f", df.to_str().unwrap(), "-t", "s4"], &ctx);
    assert_eq!(run_in(&b, "s4", &["cat", "/g"]), "from the dir");
}

#[test]
fn build_onbuild_triggers_fire_in_the_child() {
    if !berth_testutil::require_root("build_onbuild_triggers_fire_in_the_child") {
        return;
    }
    let b = Berth::with_image();
    let parent = context(
        &b,
        "parent",
        &[(
            "Dockerfile",
            "FROM bb\nONBUILD COPY marker /marker\nONBUILD RUN echo fired > /fired\n",
        )],
    );
    built(&b, &["-t", "parent"], &parent);
    let child = context(
        &b,
        "child",
        &[
            (
                "Dockerfile",
                "FROM parent\nCMD [\"cat\", \"/marker\", \"/fired\"]\n",
            ),
            ("marker", "m\n"),
        ],
    );
    let o = built(&b, &["-t", "child"], &child);
    assert!(o.contains("# Executing 2 build triggers"), "{o}");
    assert_eq!(run_in(&b, "child", &[]), "m\nfired\n");
    assert!(
        inspect(&b, "child")["Config"]["OnBuild"].is_null(),
        "triggers are not inherited"
    );
}

#[test]
fn build_cache_from_reuses_a_loaded_images_layers() {
    let Some((b, ctx)) = setup(
        "build_cache_from_reuses_a_loaded_images_layers",
        &[
            (
                "Dockerfile",
                "FROM bb\nCOPY app /app\nRUN echo ran > /ran\nENV X=1\n",
            ),
            ("app", "code"),
        ],
    ) else {
        return;
    };
    built(&b, &["-t", "ci:1"], &ctx);
    let archive = b.dir.path().join("ci.tar");
    b.ok(&["save", "-o", archive.to_str().unwrap(), "ci:1", "bb"]);
    let layers = inspect(&b, "ci:1")["RootFS"]["Layers"].clone();
    // A fresh store, as on another CI machine: only the saved images.
    let fresh = Berth::new();
    fresh.ok(&["load", "-i", archive.to_str().unwrap()]);
    let o = built(&fresh, &["--cache-from", "ci:1", "-t", "ci:2"], &ctx);
    assert_eq!(ran_steps(&o), Vec::<usize>::new(), "{o}");
    assert!(!o.contains("Running in"), "{o}");
    assert_eq!(inspect(&fresh, "ci:2")["RootFS"]["Layers"], layers);
    // Without it, the steps run.
    let o = built(&fresh, &["--no-cache", "-t", "ci:3"], &ctx);
    assert_eq!(ran_steps(&o), vec![2, 3, 4], "{o}");
}

#[test]
fn build_with_source_date_epoch_is_reproducible() {
    let Some((b, ctx)) = setup(
        "build_with_source_date_epoch_is_reproducible",
        &[
            (
                "Dockerfile",
                "FROM bb\nCOPY f /srv/f\nRUN echo made > /made && mkdir -p /d\nCMD [\"true\"]\n",
            ),
            ("f", "content"),
        ],
    ) else {
        return;
    };
    let args = ["--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let o = build(&b, &args, &ctx);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        !err(&o).contains("not consumed"),
        "the builder reads it: {}",
        err(&o)
    );
    let one = built_id(&out(&o));
    let two = built_id(&built(&b, &args, &ctx));
    assert_eq!(one, two);
    let other = built_id(&built(&b, &["--no-cache"], &ctx));
    assert_ne!(one, other);
}

#[test]
fn build_interrupted_takes_its_containers_with_it() {
    let Some((b, ctx)) = setup(
        "build_interrupted_takes_its_containers_with_it",
        &[("Dockerfile", "FROM bb\nRUN echo started && sleep 300\n")],
    ) else {
        return;
    };
    let mut child = b
        .cmd(&["build", "-t", "never", ctx.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("started\n") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "the build ended early: {seen}");
        seen.push_str(&line);
    }
    assert_eq!(b.ok(&["ps", "-q"]).lines().count(), 1, "the step runs");
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", err(&o));
    assert!(err(&o).contains("build cancelled"), "{}", err(&o));
    assert_eq!(b.ok(&["ps", "-aq"]), "", "the step's container is gone");
    assert!(b.run(&["image", "inspect", "never"]).status.code() != Some(0));
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
}

#[test]
fn build_pulls_a_missing_base_through_the_engine() {
    let Some((b, ctx)) = setup("build_pulls_a_missing_base_through_the_engine", &[]) else {
        return;
    };
    let reg = berth_testutil::peers::Registry::start();
    let base = format!("{}/base/bb:1", reg.host());
    b.ok(&["tag", "bb", &base]);
    b.ok(&["push", &base]);
    // Another store, which has never seen the base.
    let fresh = Berth::new();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN echo on-the-pulled-base > /x\n"),
    )
    .unwrap();
    let o = built(&fresh, &["-t", "pulled"], &ctx);
    assert!(o.contains(&format!("Pulling {base}")), "{o}");
    assert_eq!(
        run_in(&fresh, "pulled", &["cat", "/x"]),
        "on-the-pulled-base\n"
    );
    // Present now: the next build does not pull.
    let o = built(&fresh, &[], &ctx);
    assert!(!o.contains("Pulling"), "{o}");
    // --pull asks the registry again.
    let o = built(&fresh, &["--pull"], &ctx);
    assert!(o.contains("Pulling"), "{o}");
}

/// The layers of `image` (diff ids).
fn layers(b: &Berth, image: &str) -> Vec<serde_json::Value> {
    inspect(b, image)["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn build_squash_merges_the_final_stages_layers_into_one() {
    let Some((b, ctx)) = setup(
        "build_squash_merges_the_final_stages_layers_into_one",
        &[
            (
                "Dockerfile",
                "FROM bb AS other\n\
                 RUN echo other > /from-other\n\
                 FROM bb\n\
                 RUN mkdir /w && echo old > /w/old && echo temp > /temp\n\
                 RUN rm -r /w /temp /etc/group && mkdir /w && echo new > /w/new\n\
                 COPY f /f\n\
                 COPY --from=other /from-other /\n\
                 ENV SQUASHED=yes\n\
                 CMD [\"sh\", \"-c\", \"ls -A /w; cat /f /from-other; echo $SQUASHED; ls /temp /etc/group 2>&1; true\"]\n",
            ),
            ("f", "file\n"),
        ],
    ) else {
        return;
    };
    let base = layers(&b, "bb");
    built(&b, &["-t", "plain"], &ctx);
    assert_eq!(layers(&b, "plain").len(), base.len() + 4);
    built(&b, &["--squash", "-t", "sq"], &ctx);
    let squashed = layers(&b, "sq");
    assert_eq!(squashed.len(), base.len() + 1, "{squashed:?}");
    assert_eq!(squashed[..base.len()], base[..], "the base's layers stay");
    let want = "new\nfile\nother\nyes\n\
                ls: /temp: No such file or directory\n\
                ls: /etc/group: No such file or directory\n";
    assert_eq!(run_in(&b, "plain", &[]), want);
    assert_eq!(
        run_in(&b, "sq", &[]),
        want,
        "the same files, whiteouts kept"
    );
    // The steps' history stays, as entries with no layer, and one more
    // holds the merged layer.
    let history = b.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "sq",
    ]);
    let bb_id = inspect(&b, "bb")["Id"].as_str().unwrap().to_string();
    let top = history.lines().next().unwrap();
    assert!(
        top.starts_with("|merge sha256:") && top.ends_with(&format!(" to {bb_id}")),
        "{history}"
    );
    assert!(history.contains("ENV SQUASHED=yes"), "{history}");
    let cfg = &inspect(&b, "sq")["Config"];
    assert!(
        cfg["Env"].to_string().contains("SQUASHED=yes"),
        "the final config: {cfg}"
    );
    // The merged layer is smaller than the layers it replaces: what the
    // second RUN deleted is in none of it.
    let size = |img: &str| inspect(&b, img)["Size"].as_i64().unwrap();
    assert!(
        size("sq") < size("plain"),
        "{} < {}",
        size("sq"),
        size("plain")
    );
    // On scratch: one layer, "created new" rather than merged onto a base.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY f /a\nCOPY f /b\n",
    )
    .unwrap();
    built(&b, &["--squash", "-t", "sq:scratch"], &ctx);
    assert_eq!(layers(&b, "sq:scratch").len(), 1);
    let history = b.ok(&["history", "--format", "{{.Comment}}", "sq:scratch"]);
    assert!(history.starts_with("create new from sha256:"), "{history}");
}

#[test]
fn build_progress_styles() {
    let Some((b, ctx)) = setup(
        "build_progress_styles",
        &[
            ("Dockerfile", "FROM bb\nCOPY f /f\nRUN echo hello-out\n"),
            ("f", "f"),
        ],
    ) else {
        return;
    };
    // tty: BuildKit's lines on stderr, nothing on stdout.
    let o = build(&b, &["--progress", "tty", "-t", "p:1"], &ctx);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "");
    let e = err(&o);
    for want in [
        " => [1/3] FROM bb",
        " => [2/3] COPY f /f",
        " => => # hello-out\n",
        " => [3/3] RUN echo hello-out DONE ",
        "(3/3) FINISHED\n",
        " => writing image sha256:",
        " => naming to docker.io/library/p:1\n",
    ] {
        assert!(e.contains(want), "{want:?} in {e}");
    }
    assert!(e.starts_with(" => [1/3] FROM bb"), "{e}");
    assert!(e.contains("\n[+] Building "), "{e}");
    // A step that printed nothing has its line redrawn with its time.
    assert!(e.contains("\x1b[1A\r\x1b[2K => [2/3] COPY f /f "), "{e:?}");
    let o = build(&b, &["--progress", "tty"], &ctx);
    let e = err(&o);
    assert!(e.contains(" => CACHED [2/3] COPY f /f "), "{e}");
    assert!(e.contains(" => CACHED [3/3] RUN echo hello-out "), "{e}");
    assert!(!e.contains(" => => # "), "a cached RUN prints nothing: {e}");

    // -q and --progress quiet: the image id alone.
    let id = inspect(&b, "p:1")["Id"].as_str().unwrap().to_string();
    for args in [
        &["-q"][..],
        &["--progress", "quiet"],
        &["-q", "--progress", "tty"],
    ] {
        let o = build(&b, args, &ctx);
        assert!(o.status.success(), "{}", err(&o));
        assert_eq!(out(&o), format!("{id}\n"), "{args:?}");
        assert_eq!(err(&o), "", "{args:?}");
    }
    // plain, and auto when not on a terminal: docker's classic lines.
    for args in [&["--progress", "plain"][..], &[], &["--progress", "auto"]] {
        let o = built(&b, args, &ctx);
        assert!(
            o.contains("Step 2/3 : COPY f /f\n ---> Using cache\n"),
            "{args:?}: {o}"
        );
        assert!(o.contains("Successfully built "), "{o}");
    }
    // auto on a terminal is tty.
    let inner = b.cmd(&["build", ctx.to_str().unwrap()]);
    let line: Vec<String> = std::iter::once(inner.get_program())
        .chain(inner.get_args())
        .map(|a| format!("'{}'", a.to_str().unwrap()))
        .collect();
    let mut outer = std::process::Command::new("script");
    outer.args(["-qec", &line.join(" "), "/dev/null"]);
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            outer.env(k, v);
        }
    }
    let o = outer.output().unwrap();
    let shown = out(&o);
    assert!(o.status.success(), "{shown}");
    assert!(shown.contains("(3/3) FINISHED"), "{shown}");
    assert!(!shown.contains("Step 1/3"), "{shown}");

    // A failing step: its output, then FAILED, then the error.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nRUN echo bad-news; exit 3\n",
    )
    .unwrap();
    let o = build(&b, &["--progress", "tty"], &ctx);
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    let pos = |s: &str| e.find(s).unwrap_or_else(|| panic!("{s:?} in {e}"));
    assert!(
        pos(" => => # bad-news") < pos(" => ERROR [2/2] RUN echo bad-news"),
        "{e}"
    );
    assert!(pos(" => ERROR [2/2]") < pos("(1/2) FAILED"), "{e}");
    assert!(pos("FAILED") < pos("returned a non-zero code: 3"), "{e}");

    let o = build(&b, &["--progress", "fancy"], &ctx);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        err(&o).contains("\"fancy\" for \"--progress\""),
        "{}",
        err(&o)
    );
}

#[test]
fn build_compiles_c_with_gcc_on_a_debian_base_into_a_small_image() {
    if !berth_testutil::require_root(
        "build_compiles_c_with_gcc_on_a_debian_base_into_a_small_image",
    ) {
        return;
    }
    // debootstrap runs once per machine; the tar is kept in TEST_CACHE.
    let debian = berth_testutil::debian_gcc_rootfs_tar().expect("a debootstrap Debian with gcc");
    let b = Berth::new();
    b.ok(&["import", debian.to_str().unwrap(), "debian-gcc"]);
    let ctx = context(
        &b,
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM debian-gcc AS builder\n\
                 WORKDIR /src\n\
                 COPY hello.c .\n\
                 RUN gcc --version | head -n1 && gcc -O2 -static -o /hello hello.c && strip /hello\n\
                 FROM scratch\n\
                 COPY --from=builder /hello /hello\n\
                 ENTRYPOINT [\"/hello\"]\n\
                 CMD [\"world\"]\n",
            ),
            (
                "hello.c",
                "#include <stdio.h>\n\
                 int main(int argc, char **argv) {\n\
                 \x20   printf(\"hello, %s, from gcc\\n\", argc > 1 ? argv[1] : \"nobody\");\n\
                 \x20   return 0;\n\
                 }\n",
            ),
        ],
    );
    let o = built(&b, &["-t", "hello:c"], &ctx);
    assert!(o.contains("gcc (Debian 12"), "the compiler ran: {o}");
    assert_eq!(run_in(&b, "hello:c", &[]), "hello, world, from gcc\n");
    assert_eq!(
        run_in(&b, "hello:c", &["berth"]),
        "hello, berth, from gcc\n"
    );
    // The final image holds the binary alone: one small layer, where the
    // builder's base alone is hundreds of megabytes.
    let size = |img: &str| inspect(&b, img)["Size"].as_i64().unwrap();
    assert_eq!(layers(&b, "hello:c").len(), 1);
    assert!(size("hello:c") < 2 << 20, "{} bytes", size("hello:c"));
    let o = built(&b, &["--target", "builder", "-t", "hello:builder"], &ctx);
    assert_eq!(
        ran_steps(&o),
        Vec::<usize>::new(),
        "the builder is cached: {o}"
    );
    assert!(
        size("hello:builder") > 100 << 20,
        "{} bytes",
        size("hello:builder")
    );
}

#[test]
fn build_run_steps_get_the_network_hosts_shm_and_ulimits_asked_for() {
    let Some((b, ctx)) = setup(
        "build_run_steps_get_the_network_hosts_shm_and_ulimits_asked_for",
        &[(
            "Dockerfile",
            "FROM bb\n\
             RUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' ' > /ifaces\n\
             RUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' ' > /ifaces-none\n\
             RUN (grep foo.test /etc/hosts || echo no-foo) > /hosts-line\n\
             RUN df -k /dev/shm | tail -n1 | awk '{print $2}' > /shm\n\
             RUN ulimit -n > /nofile\n\
             RUN readlink /proc/self/ns/net > /netns\n",
        )],
    ) else {
        return;
    };
    let show = |img: &str| {
        run_in(
            &b,
            img,
            &[
                "sh",
                "-c",
                "cat /ifaces; echo '|'; cat /ifaces-none; echo '|'; cat /hosts-line /shm /nofile",
            ],
        )
    };
    built(
        &b,
        &[
            "--network",
            "default",
            "--add-host",
            "foo.test:10.9.8.7",
            "--shm-size",
            "8m",
            "--ulimit",
            "nofile=300:400",
            "-t",
            "flags:bridge",
        ],
        &ctx,
    );
    let got = show("flags:bridge");
    let parts: Vec<&str> = got.split("|\n").collect();
    assert!(
        parts[0].contains("eth0 ") && parts[0].contains("lo "),
        "{got}"
    );
    assert_eq!(
        parts[1], "lo ",
        "RUN --network=none wins over the flag: {got}"
    );
    let rest: Vec<&str> = parts[2].lines().collect();
    assert_eq!(
        rest[0].split_whitespace().collect::<Vec<_>>(),
        ["10.9.8.7", "foo.test"]
    );
    assert_eq!(rest[1], "8192", "--shm-size 8m: {got}");
    assert_eq!(rest[2], "300", "--ulimit nofile soft limit: {got}");

    // No --network: RUN has none (lo only), and --add-host still goes
    // into its /etc/hosts, as a container's on --network none.
    built(&b, &["--no-cache", "-t", "flags:none"], &ctx);
    let got = show("flags:none");
    assert!(got.starts_with("lo |\nlo |\nno-foo\n"), "{got}");
    built(
        &b,
        &[
            "--no-cache",
            "--add-host",
            "foo.test:10.9.8.7",
            "-t",
            "flags:nonehosts",
        ],
        &ctx,
    );
    let got = show("flags:nonehosts");
    assert!(got.starts_with("lo |\nlo |\n10.9.8.7\tfoo.test\n"), "{got}");

    // --network host: the host's network namespace itself.
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host = format!("{}\n", host.display());
    assert_ne!(run_in(&b, "flags:bridge", &["cat", "/netns"]), host);
    built(
        &b,
        &["--no-cache", "--network", "host", "-t", "flags:host"],
        &ctx,
    );
    assert_eq!(run_in(&b, "flags:host", &["cat", "/netns"]), host);

    // The limits of RUN containers: -m, -c, --cpu-period, --cpu-quota;
    // --pull=false, --rm and --force-rm as docker takes them.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nRUN cd /sys/fs/cgroup && cat memory/memory.limit_in_bytes cpu/cpu.shares \
         cpu/cpu.cfs_period_us cpu/cpu.cfs_quota_us > /limits\n",
    )
    .unwrap();
    built(
        &b,
        &[
            "-m",
            "64m",
            "-c",
            "256",
            "--cpu-period",
            "50000",
            "--cpu-quota",
            "25000",
            "--pull=false",
            "--rm",
            "--force-rm",
            "-t",
            "flags:limits",
        ],
        &ctx,
    );
    assert_eq!(
        run_in(&b, "flags:limits", &["cat", "/limits"]),
        "67108864\n256\n50000\n25000\n"
    );
    fails_with(&build(&b, &["-m", "1k"], &ctx), "--memory");
    fails_with(&build(&b, &["--rm=false"], &ctx), "build --rm=false");
}

#[test]
fn build_dockerignore_double_star_exceptions_and_the_dockerfile() {
    let Some((b, ctx)) = setup(
        "build_dockerignore_double_star_exceptions_and_the_dockerfile",
        &[
            (
                "Dockerfile",
                "# escape=`\n\
                 FROM bb\n\
                 COPY --link . /ctx/\n\
                 RUN cd /ctx && find . -type f | sort > /list && `\n\
                 \x20   echo escaped-continuation\n",
            ),
            (
                ".dockerignore",
                "# docker's rules\n**/*.tmp\n!keep/**/*.tmp\nsecret\n/build\nDockerfile\n.dockerignore\n",
            ),
            ("a.tmp", "x"),
            ("deep/er/b.tmp", "x"),
            ("keep/c.tmp", "kept"),
            ("keep/sub/d.tmp", "kept"),
            ("secret/key", "x"),
            ("build/out.o", "x"),
            ("src/build/keep.txt", "a build dir not at the top"),
            ("src/main.c", "int main;"),
        ],
    ) else {
        return;
    };
    let o = built(&b, &["-t", "ign"], &ctx);
    assert!(o.contains("escaped-continuation"), "{o}");
    assert_eq!(
        run_in(&b, "ign", &["cat", "/list"]),
        "./keep/c.tmp\n./keep/sub/d.tmp\n./src/build/keep.txt\n./src/main.c\n",
        "an ignored Dockerfile is still the one built"
    );
    // A file that no rule keeps is not in the context: COPY of it fails.
    std::fs::write(ctx.join("Dockerfile"), "FROM bb\nCOPY deep/er/b.tmp /\n").unwrap();
    fails_with(&build(&b, &[], &ctx), "Dockerfile:2:6: COPY: file not found in build context or excluded by .dockerignore: deep/er/b.tmp");
}

#[test]
fn build_copy_link_layers_stand_apart_from_the_steps_below() {
    let Some((b, ctx)) = setup(
        "build_copy_link_layers_stand_apart_from_the_steps_below",
        &[
            (
                "Dockerfile",
                "FROM bb\n\
                 ARG V=1\n\
                 RUN echo $V > /v && ln -s /tmp /linked && ln -s /tmp /followed\n\
                 COPY --link app /srv/app\n\
                 COPY --link app /linked/\n\
                 COPY app /followed/\n",
            ),
            ("app/x", "x"),
        ],
    ) else {
        return;
    };
    built(&b, &["-t", "link:1"], &ctx);
    // A --link COPY does not go through the image's links: its
    // destination is a directory of its own layer.
    let got = run_in(
        &b,
        "link:1",
        &[
            "sh",
            "-c",
            "cat /srv/app/x; ls -ld /linked | cut -c1; ls /tmp; ls -ld /followed | cut -c1",
        ],
    );
    assert_eq!(got, "xd\nx\nl\n", "{got}");
    // Another RUN below: the --link layers are put on the new parent as
    // they were, the plain COPY runs again.
    let o = built(&b, &["--build-arg", "V=2", "-t", "link:2"], &ctx);
    assert_eq!(ran_steps(&o), vec![3, 6], "{o}");
    let (one, two) = (layers(&b, "link:1"), layers(&b, "link:2"));
    assert_ne!(
        one[..one.len() - 3],
        two[..two.len() - 3],
        "the RUN changed"
    );
    assert_eq!(
        one[one.len() - 3..one.len() - 1],
        two[two.len() - 3..two.len() - 1]
    );
    assert_eq!(run_in(&b, "link:2", &["cat", "/v", "/srv/app/x"]), "2\nx");
    // --no-cache makes them again all the same.
    let o = built(&b, &["--no-cache", "--build-arg", "V=2"], &ctx);
    assert_eq!(ran_steps(&o), vec![2, 3, 4, 5, 6], "{o}");
}

/// `builder prune` removes the build cache (the images of build steps no
/// tag or container keeps); `system prune` every kind of unused thing,
/// each in docker's report.
#[test]
fn image_prune_keeps_the_images_an_image_was_built_on() {
    let Some((b, ctx)) = setup(
        "image_prune_keeps_the_images_an_image_was_built_on",
        &[(
            "Dockerfile",
            "FROM bb\nRUN echo one > /one\nRUN echo two > /two\n",
        )],
    ) else {
        return;
    };
    let ids = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = b.ok(args).lines().map(String::from).collect();
        v.sort();
        v
    };
    let before = ids(&["images", "-aq", "--no-trunc"]);
    built(&b, &["-t", "app"], &ctx);
    let every = ids(&["images", "-aq", "--no-trunc"]);
    let steps: Vec<String> = every
        .iter()
        .filter(|i| !before.contains(i) && !ids(&["images", "-q", "--no-trunc"]).contains(i))
        .cloned()
        .collect();
    assert_eq!(steps.len(), 1, "the first RUN's image: {every:?}");
    // Each names the image it was built on, as docker's inspect does.
    let parent = |name: &str| b.ok(&["image", "inspect", "-f", "{{.Parent}}", name]);
    assert_eq!(parent("app").trim(), steps[0]);
    assert_eq!(parent(&steps[0]).trim(), before[0]);
    assert_eq!(parent("bb").trim(), "");
    // history names each step by the image it made, down to the base.
    let app = parent("app");
    let app_id = b.ok(&["image", "inspect", "-f", "{{.Id}}", "app"]);
    assert_eq!(
        b.ok(&["history", "-q", "--no-trunc", "app"]),
        format!("{}{}\n{}\n", app_id, app.trim(), before[0])
    );
    // app was built on it: it is not dangling, with or without -a.
    let o = b.ok(&["image", "prune", "-f"]);
    assert_eq!(o, "Total reclaimed space: 0B\n");
    // With -a, what a container uses stays, and so do the images under it.
    b.ok(&[
        "create",
        "--name",
        "user",
        "--network",
        "none",
        "app",
        "true",
    ]);
    b.ok(&["image", "prune", "-f", "-a"]);
    assert_eq!(ids(&["images", "-aq", "--no-trunc"]), every);
    b.ok(&["rm", "user"]);
    // Once app is gone nothing stands on it, and prune takes it.
    b.ok(&["rmi", "app"]);
    let o = b.ok(&["image", "prune", "-f"]);
    assert!(
        o.starts_with(&format!("Deleted Images:\ndeleted: {}\n", steps[0])),
        "{o}"
    );
    assert_eq!(ids(&["images", "-aq", "--no-trunc"]), before);
}

#[test]
fn builder_and_system_prune_remove_what_nothing_keeps() {
    let Some((b, ctx)) = setup(
        "builder_and_system_prune_remove_what_nothing_keeps",
        &[(
            "Dockerfile",
            "FROM bb\nRUN echo one > /one\nRUN echo two > /two\n",
        )],
    ) else {
        return;
    };
    let ids = |all: bool| -> Vec<String> {
        let args: &[&str] = if all {
            &["images", "-aq", "--no-trunc"]
        } else {
            &["images", "-q", "--no-trunc"]
        };
        let mut v: Vec<String> = b.ok(args).lines().map(String::from).collect();
        v.sort();
        v
    };
    built(&b, &["-t", "app"], &ctx);
    let cache_of = |before: &[String]| -> Vec<String> {
        let tagged = ids(false);
        ids(true)
            .into_iter()
            .filter(|i| !tagged.contains(i) && !before.contains(i))
            .collect()
    };
    let app_cache = cache_of(&[]);
    assert_eq!(app_cache.len(), 1, "the first RUN's image is app's cache");
    // Another build, whose image then goes: its cache is dangling.
    let other = context(
        &b,
        "other",
        &[("Dockerfile", "FROM bb\nRUN echo x > /x\nRUN echo y > /y\n")],
    );
    built(&b, &["-t", "other"], &other);
    let other_cache = cache_of(&app_cache);
    assert_eq!(other_cache.len(), 1);
    b.ok(&["rmi", "other"]);
    let o = b.ok(&["builder", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(o, "Total:\t0B\n", "made just now: not an hour ago");
    let o = b.ok(&["builder", "prune", "-f"]);
    assert!(
        o.starts_with(&format!(
            "Deleted build cache objects:\n{}\n\nTotal:\t",
            other_cache[0]
        )),
        "{o}"
    );
    assert!(
        ids(true).contains(&app_cache[0]),
        "a tagged image's cache stays without -a"
    );
    let o = b.ok(&["builder", "prune", "-a", "-f"]);
    assert!(
        o.starts_with(&format!("Deleted build cache objects:\n{}\n", app_cache[0])),
        "{o}"
    );
    let tagged = ids(false);
    assert_eq!(ids(true), tagged, "only the cache went");
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", "app", "cat", "/two"]),
        "two\n"
    );
    let o = b.run(&["builder", "prune", "-f", "--filter", "colour=red"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("invalid filter \"colour\" for build cache prune"),
        "{}",
        err(&o)
    );

    // system prune: a stopped container, a network, an untagged image.
    b.ok(&[
        "run",
        "--name",
        "stopped",
        "--network",
        "none",
        "bb",
        "true",
    ]);
    b.ok(&["network", "create", "spare"]);
    let tar = b.dir.path().join("rootfs.tar");
    let loose = b.ok(&["import", tar.to_str().unwrap()]).trim().to_string();
    // With until, networks keep: berth has no time of theirs.
    let o = b.ok(&["system", "prune", "-f", "--filter", "until=1h"]);
    assert!(o.contains("Networks not pruned"), "{o}");
    let o = b.ok(&["system", "prune", "-f"]);
    assert!(o.starts_with("Deleted Containers:\n"), "{o}");
    assert!(o.contains("\n\nDeleted Networks:\nspare\n"), "{o}");
    assert!(
        o.contains(&format!("Deleted Images:\ndeleted: {loose}\n")),
        "{o}"
    );
    assert!(o.contains("\nTotal reclaimed space: "), "{o}");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(ids(true), tagged, "tagged images stay without -a");
    assert!(!b
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .contains("spare"));
}
