//! Stable-Rust stand-in for the cargo-fuzz target: 50,000 generated
//! Dockerfile-ish inputs (grammar fragments plus mutations of real files)
//! through the parser, substitution and the planner, asserting nothing
//! panics. Deterministic (fixed seed), so a failure reproduces.

use super::*;
use crate::plan::{Plan, PlanOptions};

/// Seed Dockerfiles; also copied into the cargo-fuzz corpus.
pub(crate) const SEEDS: &[&str] = &[
    super::tests::MULTI_STAGE_C,
    "# escape=`\nFROM mcr.microsoft.com/windows/servercore\nRUN dir c:\\ `\n  && echo done\nENV P=C:\\Program` Files\n",
    "FROM alpine\nRUN <<EOF\necho hi\nEOF\nRUN <<-EOT sh\n\techo x\n\tEOT\nCOPY <<a.txt <<\"b.txt\" /dst/\n$A\na.txt\n${B:-x}\nb.txt\n",
    "ARG V=1\nFROM busybox:${V} AS base\nONBUILD RUN make\nFROM base\nCOPY --from=base --chown=1:1 --chmod=755 [\"a\", \"b\"]\nHEALTHCHECK --interval=5s CMD [\"true\"]\nSHELL [\"/bin/sh\", \"-c\"]\n",
    "FROM a\nENV A=1 B=\"x y\" C=${A:+z}\nLABEL k=v\nEXPOSE 80/tcp 1000-2000/udp\nVOLUME /v\nUSER u\nWORKDIR /w\nSTOPSIGNAL 9\nRUN --mount=type=cache,target=/c,sharing=locked --network=none make\n",
];

/// xorshift64*: small, deterministic, good enough to pick fragments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const FRAGMENTS: &[&str] = &[
    "FROM ",
    "RUN ",
    "CMD ",
    "ENTRYPOINT ",
    "ENV ",
    "ARG ",
    "LABEL ",
    "EXPOSE ",
    "COPY ",
    "ADD ",
    "WORKDIR ",
    "USER ",
    "VOLUME ",
    "STOPSIGNAL ",
    "HEALTHCHECK ",
    "SHELL ",
    "ONBUILD ",
    "MAINTAINER ",
    "from ",
    "AS ",
    "as ",
    "--platform=",
    "--mount=",
    "type=cache,target=/x",
    "type=secret,id=",
    "type=bind,from=",
    "--network=",
    "--from=",
    "--chown=",
    "--chmod=",
    "--link",
    "--exclude=",
    "--checksum=",
    "--interval=",
    "--retries=",
    "--",
    "-",
    "NONE",
    "CMD",
    "[",
    "]",
    "\"",
    "'",
    ",",
    "=",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    "-",
    "+",
    "?",
    ":?",
    "\\",
    "`",
    "\\\n",
    "`\n",
    "\n",
    "\n\n",
    "# comment\n",
    "# escape=`\n",
    "# escape=\\\n",
    "# syntax=x\n",
    "<<",
    "<<-",
    "<<EOF",
    "EOF",
    "\tEOF",
    "<<'EOF'",
    "<<\"EOF\"",
    "\r\n",
    " ",
    "\t",
    "é",
    "\u{feff}",
    "\0",
    "0",
    "9",
    "80/tcp",
    "1-2",
    "scratch",
    "stage",
    "/a/b",
    ".",
    "..",
    "*",
    "**",
    "x",
    "VAR",
    "$VAR",
    "${VAR:-d}",
    "[\"a\", \"b\"]",
    "[]",
    "{",
    "\u{1F600}",
];

fn generate(rng: &mut Rng) -> String {
    let mut s = String::new();
    if rng.below(2) == 0 {
        // Mutate a seed: splice random fragments into a real Dockerfile.
        s.push_str(SEEDS[rng.below(SEEDS.len())]);
        for _ in 0..1 + rng.below(6) {
            let mut at = rng.below(s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(3) {
                0 => s.insert_str(at, rng.pick(FRAGMENTS)),
                1 => {
                    let mut end = (at + rng.below(8)).min(s.len());
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    s.replace_range(at..end, "");
                }
                _ => {
                    let frag = rng.pick(FRAGMENTS).repeat(1 + rng.below(4));
                    s.insert_str(at, &frag);
                }
            }
        }
    } else {
        for _ in 0..rng.below(40) {
            s.push_str(rng.pick(FRAGMENTS));
        }
    }
    s
}

fn lookup(name: &str) -> Option<String> {
    (name.len() % 2 == 0).then(|| format!("v-{name}"))
}

/// Everything the fuzz target does, for one input.
pub(crate) fn exercise(input: &str) {
    let _ = expand_word(input, '\\', &mut lookup);
    let _ = expand_word(input, '`', &mut lookup);
    let _ = expand_words(input, '\\', &mut lookup);
    let _ = expand_heredoc(input, &mut lookup);
    if let Ok(df) = parse(input) {
        for node in df
            .global_args
            .iter()
            .chain(df.stages.iter().flat_map(|s| s.instructions.iter()))
        {
            let _ = node.instruction.expand(df.directives.escape, &mut lookup);
        }
        if let Ok(plan) = Plan::new(&df, &PlanOptions::default()) {
            for s in plan.order() {
                let mut scope = plan.scope(&[]);
                for node in &df.stages[s].instructions {
                    if let Ok(step) = scope.step(node) {
                        let parent = crate::plan::base_key(crate::plan::BaseKey::Scratch);
                        let _ = crate::plan::step_key(&parent, &step, None);
                    }
                }
            }
        }
    }
    let _ = crate::dockerignore::DockerIgnore::parse(input).map(|ig| ig.matches(input));
}

#[test]
fn fifty_thousand_generated_inputs_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for i in 0..50_000 {
        let input = generate(&mut rng);
        let result = std::panic::catch_unwind(|| exercise(&input));
        assert!(result.is_ok(), "input #{i} panicked: {input:?}");
        parsed += usize::from(parse(&input).is_ok());
    }
    // The generator must reach past the error paths, or this proves little.
    assert!(parsed > 2_500, "only {parsed} inputs parsed");
}

#[test]
fn seeds_parse() {
    for s in SEEDS {
        parse(s).unwrap_or_else(|e| panic!("{e}\n{s}"));
    }
}
