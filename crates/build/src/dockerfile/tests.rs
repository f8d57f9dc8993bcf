//! Whole-file parser tests: realistic Dockerfiles and every error path
//! with its line and column.

use super::*;

fn ok(src: &str) -> Dockerfile {
    match parse(src) {
        Ok(df) => df,
        Err(e) => panic!("parse failed: {e}\n{src}"),
    }
}

fn instrs(df: &Dockerfile, stage: usize) -> Vec<&Instruction> {
    df.stages[stage]
        .instructions
        .iter()
        .map(|n| &n.instruction)
        .collect()
}

fn env(name: &str) -> Option<String> {
    match name {
        "VERSION" => Some("1.2".into()),
        "APP" => Some("/app".into()),
        "PORTS" => Some("80 443/udp".into()),
        _ => None,
    }
}

/// A realistic multi-stage C build; also the test data for the planner.
pub(crate) const MULTI_STAGE_C: &str = r#"# syntax=docker/dockerfile:1
ARG DEBIAN=bookworm
FROM debian:${DEBIAN} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY hello.c .
RUN --mount=type=cache,target=/root/.cache gcc -O2 -static -o hello hello.c

FROM busybox:1.36
COPY --from=build /src/hello /usr/local/bin/hello
ENTRYPOINT ["/usr/local/bin/hello"]
"#;

#[test]
fn multi_stage_c_build() {
    let df = ok(MULTI_STAGE_C);
    assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.global_args.len(), 1);
    assert_eq!(df.stages.len(), 2);
    let build = &df.stages[0];
    assert_eq!(build.from.image, "debian:${DEBIAN}");
    assert_eq!(build.from.name.as_deref(), Some("build"));
    assert_eq!(
        build.span,
        Span {
            line: 3,
            column: 1,
            end_line: 3
        }
    );
    let run = &build.instructions[0];
    assert_eq!(
        run.span,
        Span {
            line: 4,
            column: 1,
            end_line: 6
        }
    );
    match &run.instruction {
        Instruction::Run(r) => assert_eq!(
            r.command,
            Command::Shell(
                "apt-get update  && apt-get install -y --no-install-recommends build-essential  && rm -rf /var/lib/apt/lists/*"
                    .into()
            )
        ),
        other => panic!("{other:?}"),
    }
    match &build.instructions[3].instruction {
        Instruction::Run(r) => {
            assert_eq!(r.mounts[0].kind, MountKind::Cache);
            assert_eq!(
                r.command,
                Command::Shell("gcc -O2 -static -o hello hello.c".into())
            );
        }
        other => panic!("{other:?}"),
    }
    let final_stage = instrs(&df, 1);
    match final_stage[0] {
        Instruction::Copy(c) => {
            assert_eq!(c.from.as_deref(), Some("build"));
            assert_eq!(c.sources, [Source::Path("/src/hello".into())]);
            assert_eq!(c.dest, "/usr/local/bin/hello");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        *final_stage[1],
        Instruction::Entrypoint(Command::Exec(vec!["/usr/local/bin/hello".into()]))
    );
}

#[test]
fn every_instruction() {
    let df = ok(r#"FROM --platform=$BUILDPLATFORM alpine:3.19 AS base
MAINTAINER someone@example.com
RUN --network=none --security=insecure ["echo", "hi"]
CMD echo "$HOME"
ENTRYPOINT []
ENV A=1 B="two words" C=three\ words
ENV LEGACY some value here
ARG USER=app GROUP
LABEL org.opencontainers.image.title="berth test" version=$VERSION
EXPOSE 80 443/tcp 53/udp 8000-8010/tcp
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d --chmod=644 --link https://example.com/a.tar.gz /tmp/
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.12 /bk
COPY --chown=app:app --chmod=755 --link --parents --exclude=*.tmp --exclude=*.log ["a b", "c", "/dst/"]
WORKDIR ${APP}
USER app:app
VOLUME ["/data", "/logs"]
VOLUME /a /b
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=2s --retries=3 CMD curl -f http://localhost/ || exit 1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ONBUILD COPY . /app/src
"#);
    let s = &df.stages[0];
    assert_eq!(s.from.platform.as_deref(), Some("$BUILDPLATFORM"));
    let got: Vec<&str> = s
        .instructions
        .iter()
        .map(|n| n.instruction.keyword())
        .collect();
    assert_eq!(
        got,
        [
            "MAINTAINER",
            "RUN",
            "CMD",
            "ENTRYPOINT",
            "ENV",
            "ENV",
            "ARG",
            "LABEL",
            "EXPOSE",
            "ADD",
            "ADD",
            "COPY",
            "WORKDIR",
            "USER",
            "VOLUME",
            "VOLUME",
            "STOPSIGNAL",
            "HEALTHCHECK",
            "SHELL",
            "ONBUILD"
        ]
    );
    let i = instrs(&df, 0);
    match i[1] {
        Instruction::Run(r) => {
            assert_eq!(r.network, Some(NetworkMode::None));
            assert_eq!(r.security, Some(Security::Insecure));
            assert_eq!(r.command, Command::Exec(vec!["echo".into(), "hi".into()]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        *i[2],
        Instruction::Cmd(Command::Shell("echo \"$HOME\"".into()))
    );
    assert_eq!(*i[3], Instruction::Entrypoint(Command::Exec(vec![])));
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(
        *i[4],
        Instruction::Env(vec![
            kv("A", "1"),
            kv("B", "\"two words\""),
            kv("C", "three\\ words")
        ])
    );
    assert_eq!(
        *i[5],
        Instruction::Env(vec![kv("LEGACY", "some value here")])
    );
    assert_eq!(
        *i[6],
        Instruction::Arg(vec![
            ArgDecl {
                name: "USER".into(),
                default: Some("app".into())
            },
            ArgDecl {
                name: "GROUP".into(),
                default: None
            }
        ])
    );
    match i[9] {
        Instruction::Add(a) => {
            assert!(a.checksum.as_deref().unwrap().starts_with("sha256:"));
            assert_eq!(a.chmod.as_deref(), Some("644"));
            assert!(a.link);
        }
        other => panic!("{other:?}"),
    }
    match i[10] {
        Instruction::Add(a) => assert!(a.keep_git_dir),
        other => panic!("{other:?}"),
    }
    match i[11] {
        Instruction::Copy(c) => {
            assert_eq!(c.chown.as_deref(), Some("app:app"));
            assert!(c.link && c.parents);
            assert_eq!(c.excludes, ["*.tmp", "*.log"]);
            assert_eq!(
                c.sources,
                [Source::Path("a b".into()), Source::Path("c".into())]
            );
            assert_eq!(c.dest, "/dst/");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        *i[14],
        Instruction::Volume(vec!["/data".into(), "/logs".into()])
    );
    assert_eq!(*i[15], Instruction::Volume(vec!["/a".into(), "/b".into()]));
    match i[17] {
        Instruction::Healthcheck(Healthcheck::Check(h)) => {
            assert_eq!(h.interval, Some(std::time::Duration::from_secs(30)));
            assert_eq!(h.start_period, Some(std::time::Duration::from_secs(60)));
            assert_eq!(h.retries, Some(3));
            assert_eq!(
                h.command,
                Command::Shell("curl -f http://localhost/ || exit 1".into())
            );
        }
        other => panic!("{other:?}"),
    }
    match i[19] {
        Instruction::Onbuild(o) => {
            assert_eq!(o.source, "COPY . /app/src");
            assert!(matches!(*o.trigger, Instruction::Copy(_)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn heredocs() {
    let src = "FROM alpine\n\
RUN <<EOF\n\
apk add curl\n\
echo \"$HOME\"\n\
EOF\n\
RUN <<-EOT sh -e\n\
\techo tabbed\n\
\tEOT\n\
RUN <<FILE1 cat > /file1 && <<FILE2 cat > /file2\n\
I am\n\
first\n\
FILE1\n\
I am\n\
second\n\
FILE2\n\
RUN python3 <<'PY'\n\
print('$not_expanded')\n\
PY\n\
COPY <<robots.txt <<humans.txt /usr/share/nginx/html/\n\
User-agent: *\n\
robots.txt\n\
humans: ${APP}\n\
humans.txt\n\
COPY --chmod=755 <<\"EOF\" /run.sh\n\
#!/bin/sh\n\
echo $APP\n\
EOF\n\
CMD [\"/run.sh\"]\n";
    let df = ok(src);
    let i = instrs(&df, 0);
    let run = |n: usize| match i[n] {
        Instruction::Run(r) => r.clone(),
        other => panic!("{other:?}"),
    };
    let r = run(0);
    assert_eq!(r.command, Command::Shell("<<EOF".into()));
    assert_eq!(
        r.heredocs,
        [Heredoc {
            name: "EOF".into(),
            content: "apk add curl\necho \"$HOME\"\n".into(),
            expand: true,
            chomp: false
        }]
    );
    let r = run(1);
    assert_eq!(r.heredocs[0].content, "echo tabbed\n");
    assert!(r.heredocs[0].chomp);
    let r = run(2);
    assert_eq!(r.heredocs.len(), 2);
    assert_eq!(r.heredocs[0].content, "I am\nfirst\n");
    assert_eq!(r.heredocs[1].content, "I am\nsecond\n");
    let r = run(3);
    assert!(!r.heredocs[0].expand);
    assert_eq!(
        df.stages[0].instructions[3].span,
        Span {
            line: 16,
            column: 1,
            end_line: 18
        }
    );

    let copy = match i[4] {
        Instruction::Copy(c) => c.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(copy.dest, "/usr/share/nginx/html/");
    let names: Vec<&str> = copy
        .sources
        .iter()
        .map(|s| match s {
            Source::Heredoc(h) => h.name.as_str(),
            Source::Path(p) => p.as_str(),
        })
        .collect();
    assert_eq!(names, ["robots.txt", "humans.txt"]);
    // Unquoted heredoc bodies are substituted for COPY; quoted ones are not.
    let expanded = i[4].expand('\\', &mut env).unwrap();
    let Instruction::Copy(c) = expanded else {
        panic!()
    };
    assert_eq!(
        c.sources[1],
        Source::Heredoc(Heredoc {
            name: "humans.txt".into(),
            content: "humans: /app\n".into(),
            expand: true,
            chomp: false
        })
    );
    let Instruction::Copy(c) = i[5].expand('\\', &mut env).unwrap() else {
        panic!()
    };
    match &c.sources[0] {
        Source::Heredoc(h) => assert_eq!(h.content, "#!/bin/sh\necho $APP\n"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        *i[6],
        Instruction::Cmd(Command::Exec(vec!["/run.sh".into()]))
    );
}

#[test]
fn escape_backtick_windows_style() {
    let src = "# escape=`\n\
FROM mcr.microsoft.com/windows/servercore:ltsc2022\n\
COPY testfile.txt c:\\\n\
RUN dir c:\\ `\n\
    && echo done\n\
ENV P=C:\\Program` Files\\App\n";
    let df = ok(src);
    assert_eq!(df.directives.escape, '`');
    let i = instrs(&df, 0);
    match i[0] {
        Instruction::Copy(c) => assert_eq!(c.dest, "c:\\"),
        other => panic!("{other:?}"),
    }
    match i[1] {
        Instruction::Run(r) => {
            assert_eq!(r.command, Command::Shell("dir c:\\ && echo done".into()))
        }
        other => panic!("{other:?}"),
    }
    let Instruction::Env(kv) = i[2].expand('`', &mut env).unwrap() else {
        panic!()
    };
    assert_eq!(kv[0].value, "C:\\Program Files\\App");
}

#[test]
fn onbuild_triggers() {
    let df = ok("FROM node:20\nONBUILD ARG NODE_ENV=production\nONBUILD RUN npm ci\nonbuild copy --chown=node . /app\n");
    let i = instrs(&df, 0);
    let trig: Vec<&str> = i
        .iter()
        .map(|x| match x {
            Instruction::Onbuild(o) => o.trigger.keyword(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(trig, ["ARG", "RUN", "COPY"]);
    // Triggers are not substituted where they are declared.
    let Instruction::Onbuild(o) = i[2].expand('\\', &mut env).unwrap() else {
        panic!()
    };
    assert_eq!(o.source, "copy --chown=node . /app");
}

#[test]
fn substitution_in_instructions() {
    let df = ok("FROM a\nENV X=$VERSION Y=\"${APP}/bin\" Z='$APP'\nWORKDIR $APP/src\nEXPOSE $PORTS\nCOPY --chown=${USER:-root} $APP/x ${APP}/y\nRUN echo $APP\nUSER ${NOPE:-nobody}\nLABEL v=${VERSION:+set}\nSTOPSIGNAL ${SIG:-SIGINT}\nVOLUME $APP/data\n");
    let e: Vec<Instruction> = instrs(&df, 0)
        .iter()
        .map(|i| i.expand('\\', &mut env).unwrap())
        .collect();
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(
        e[0],
        Instruction::Env(vec![kv("X", "1.2"), kv("Y", "/app/bin"), kv("Z", "$APP")])
    );
    assert_eq!(e[1], Instruction::Workdir("/app/src".into()));
    assert_eq!(
        e[2],
        Instruction::Expose(vec!["80".into(), "443/udp".into()])
    );
    match &e[3] {
        Instruction::Copy(c) => {
            assert_eq!(c.chown.as_deref(), Some("root"));
            assert_eq!(c.sources, [Source::Path("/app/x".into())]);
            assert_eq!(c.dest, "/app/y");
        }
        other => panic!("{other:?}"),
    }
    // RUN's shell text is the shell's business.
    assert_eq!(e[4], *instrs(&df, 0)[4]);
    assert_eq!(e[5], Instruction::User("nobody".into()));
    assert_eq!(e[6], Instruction::Label(vec![kv("v", "set")]));
    assert_eq!(e[7], Instruction::StopSignal("SIGINT".into()));
    assert_eq!(e[8], Instruction::Volume(vec!["/app/data".into()]));
}

#[test]
fn keywords_are_case_insensitive_and_stage_names_lowercased() {
    let df = ok("from alpine as Builder\nrun true\n");
    assert_eq!(df.stages[0].from.name.as_deref(), Some("builder"));
    assert_eq!(df.stage("BUILDER").map(|s| s.index), Some(0));
    assert_eq!(df.stage("0").map(|s| s.index), Some(0));
    assert!(df.stage("nope").is_none());
}

#[test]
fn comments_and_continuations_like_buildkit() {
    let df = ok("FROM a\nRUN echo one \\\n# a comment inside\n\n    two\n   # trailing comment\nCMD [\"x\"]\n");
    let i = instrs(&df, 0);
    assert_eq!(
        *i[0],
        Instruction::Run(Run {
            mounts: vec![],
            network: None,
            security: None,
            command: Command::Shell("echo one     two".into()),
            heredocs: vec![]
        })
    );
    assert_eq!(df.stages[0].instructions[0].span.end_line, 5);
}

#[test]
fn invalid_json_falls_back_to_shell_form() {
    let df = ok("FROM a\nCMD [\"unterminated\"\nRUN [1, 2]\n");
    let i = instrs(&df, 0);
    assert_eq!(
        *i[0],
        Instruction::Cmd(Command::Shell("[\"unterminated\"".into()))
    );
    assert!(matches!(
        i[1],
        Instruction::Run(Run {
            command: Command::Shell(_),
            ..
        })
    ));
}

/// Every parse error with its exact one-line message.
#[test]
fn error_paths() {
    let rows: &[(&str, &str)] = &[
        ("", "Dockerfile:1:1: the Dockerfile has no instructions"),
        ("# only a comment\n\n", "Dockerfile:1:1: the Dockerfile has no instructions"),
        ("ARG A=1\n", "Dockerfile:1:1: no FROM instruction: the Dockerfile has no stage to build"),
        ("FROM a\nRUN x\n\n\n\n\nRUNN make\n", "Dockerfile:7:1: unknown instruction \"RUNN\""),
        ("FROM a\n  FOO bar\n", "Dockerfile:2:3: unknown instruction \"FOO\""),
        ("RUN x\nFROM a\n", "Dockerfile:1:1: RUN before the first FROM: only ARG may come before FROM"),
        ("# escape=x\nFROM a\n", "Dockerfile:1:1: invalid escape token \"x\": must be \\ or `"),
        ("# escape=`\n# escape=\\\nFROM a\n", "Dockerfile:2:1: only one \"escape\" parser directive can be used"),
        ("FROM\n", "Dockerfile:1:1: FROM requires at least one argument"),
        ("FROM a b\n", "Dockerfile:1:6: FROM: expected \"FROM [--platform=...] image [AS name]\": \"a b\""),
        ("FROM a AS 1st\n", "Dockerfile:1:11: FROM: invalid stage name: start with a letter; then letters, digits, '-', '_' or '.': \"1st\""),
        ("FROM a AS x\nFROM b AS X\n", "Dockerfile:2:11: duplicate stage name \"x\""),
        ("FROM --plat=x a\n", "Dockerfile:1:6: unknown flag \"plat\" for FROM"),
        ("FROM a\nRUN --network=bridge x\n", "Dockerfile:2:5: RUN: network must be default, none or host: \"bridge\""),
        ("FROM a\nRUN --network=host --network=none x\n", "Dockerfile:2:20: duplicate flag \"network\""),
        ("FROM a\nRUN --network x\n", "Dockerfile:2:5: missing a value on flag \"network\""),
        ("FROM a\nRUN --security=loose x\n", "Dockerfile:2:5: RUN: security must be sandbox or insecure: \"loose\""),
        ("FROM a\nRUN --mount=type=volume,target=/x x\n", "Dockerfile:2:5: RUN: unsupported mount type \"volume\": \"type=volume,target=/x\""),
        ("FROM a\nRUN \\\n  --mount=type=cache make\n", "Dockerfile:3:3: RUN: mount needs a target: \"type=cache\""),
        ("FROM a\nRUN\n", "Dockerfile:2:1: RUN requires at least one argument"),
        ("FROM a\nRUN []\n", "Dockerfile:2:1: RUN requires at least one argument"),
        ("FROM a\nCMD\n", "Dockerfile:2:1: CMD requires at least one argument"),
        ("FROM a\nCMD --x y\n", "Dockerfile:2:5: unknown flag \"x\" for CMD"),
        ("FROM a\nENV\n", "Dockerfile:2:1: ENV requires at least one argument"),
        ("FROM a\nENV ONLYNAME\n", "Dockerfile:2:5: ENV: needs a value (NAME=value or NAME value): \"ONLYNAME\""),
        ("FROM a\nENV A=1 B\n", "Dockerfile:2:9: ENV: expected NAME=value: \"B\""),
        ("FROM a\nLABEL =x\n", "Dockerfile:2:7: LABEL: empty name: \"=x\""),
        ("FROM a\nARG\n", "Dockerfile:2:1: ARG requires at least one argument"),
        ("FROM a\nARG =1\n", "Dockerfile:2:5: ARG: empty name: \"=1\""),
        ("FROM a\nEXPOSE 80 http\n", "Dockerfile:2:11: EXPOSE: invalid port: \"http\""),
        ("FROM a\nEXPOSE 80/xyz\n", "Dockerfile:2:8: EXPOSE: invalid protocol: \"80/xyz\""),
        ("FROM a\nEXPOSE 90-80\n", "Dockerfile:2:8: EXPOSE: invalid port range: \"90-80\""),
        ("FROM a\nCOPY onlyone\n", "Dockerfile:2:6: COPY: needs at least one source and a destination: \"onlyone\""),
        ("FROM a\nCOPY --checksum=sha256:ab a b\n", "Dockerfile:2:6: unknown flag \"checksum\" for COPY"),
        ("FROM a\nADD --from=x a b\n", "Dockerfile:2:5: unknown flag \"from\" for ADD"),
        ("FROM a\nADD --checksum=md5:xyz a b\n", "Dockerfile:2:5: ADD: invalid --checksum (expected sha256:<hex>): \"md5:xyz\""),
        ("FROM a\nCOPY --chmod=999 a b\n", "Dockerfile:2:6: COPY: invalid --chmod (octal like 755 or symbolic like u+x): \"999\""),
        ("FROM a\nCOPY --link=maybe a b\n", "Dockerfile:2:6: expecting a boolean value for flag \"link\", not \"maybe\""),
        ("FROM a\nWORKDIR\n", "Dockerfile:2:1: WORKDIR requires at least one argument"),
        ("FROM a\nUSER a b\n", "Dockerfile:2:6: USER: takes exactly one argument: \"a b\""),
        ("FROM a\nVOLUME [\"\"]\n", "Dockerfile:2:8: VOLUME: a volume path can not be empty: \"[\\\"\\\"]\""),
        ("FROM a\nSTOPSIGNAL SIGNOPE\n", "Dockerfile:2:12: STOPSIGNAL: invalid value: \"SIGNOPE\""),
        ("FROM a\nHEALTHCHECK --interval=soon CMD x\n", "Dockerfile:2:13: HEALTHCHECK: --interval must be a duration of at least 1ms (like 30s): \"soon\""),
        ("FROM a\nHEALTHCHECK --timeout=10ns CMD x\n", "Dockerfile:2:13: HEALTHCHECK: --timeout must be a duration of at least 1ms (like 30s): \"10ns\""),
        ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "Dockerfile:2:13: HEALTHCHECK: --retries must be a whole number: \"-1\""),
        ("FROM a\nHEALTHCHECK NONE x\n", "Dockerfile:2:13: HEALTHCHECK: HEALTHCHECK NONE takes no arguments: \"NONE x\""),
        ("FROM a\nHEALTHCHECK RUN x\n", "Dockerfile:2:13: HEALTHCHECK: unknown type (use CMD or NONE): \"RUN\""),
        ("FROM a\nHEALTHCHECK CMD\n", "Dockerfile:2:13: HEALTHCHECK: missing command after CMD: \"CMD\""),
        ("FROM a\nSHELL /bin/sh -c\n", "Dockerfile:2:7: SHELL: needs a non-empty JSON array, like [\"/bin/sh\", \"-c\"]: \"/bin/sh -c\""),
        ("FROM a\nSHELL []\n", "Dockerfile:2:7: SHELL: needs a non-empty JSON array, like [\"/bin/sh\", \"-c\"]: \"[]\""),
        ("FROM a\nONBUILD\n", "Dockerfile:2:1: ONBUILD requires at least one argument"),
        ("FROM a\nONBUILD ONBUILD RUN x\n", "Dockerfile:2:9: ONBUILD is not allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD FROM b\n", "Dockerfile:2:9: FROM is not allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD maintainer me\n", "Dockerfile:2:9: MAINTAINER is not allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD RUNN x\n", "Dockerfile:2:9: unknown instruction \"RUNN\""),
        ("FROM a\nONBUILD EXPOSE nope\n", "Dockerfile:2:16: EXPOSE: invalid port: \"nope\""),
        ("FROM a\nRUN cat <<EOF\nline\n", "Dockerfile:2:9: unterminated heredoc \"EOF\""),
        ("FROM a\nMAINTAINER\n", "Dockerfile:2:1: MAINTAINER requires at least one argument"),
    ];
    for (src, want) in rows {
        match parse(src) {
            Ok(df) => panic!("expected error {want:?} for {src:?}, got {df:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert_eq!(msg, *want, "source {src:?}");
                assert!(!msg.contains('\n'), "multi-line message {msg:?}");
            }
        }
    }
}

#[test]
fn error_names_the_file_and_cuts_long_text() {
    let long = "X".repeat(500);
    let e = parse_file("build/Dockerfile.dev", &format!("FROM a\n{long}\n")).unwrap_err();
    assert_eq!(e.file, "build/Dockerfile.dev");
    assert_eq!((e.line, e.column), (2, 1));
    let ParseErrorKind::UnknownInstruction(text) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(text.chars().count(), SNIPPET_MAX + 1);
    assert!(e
        .to_string()
        .starts_with("build/Dockerfile.dev:2:1: unknown instruction \"XXXX"));
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = parse("FROM a\nLABEL é=1 ünïcode\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 11));
}
