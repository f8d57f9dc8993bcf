//! The Dockerfile parser: source text to a typed [`Dockerfile`].
//!
//! Pipeline: [`lexer`] reads parser directives, joins continuation lines,
//! drops comments and collects heredoc bodies; [`instructions`] turns each
//! logical line into an [`Instruction`] (with [`flags`], [`words`],
//! [`mounts`] and [`values`] helping); [`parse`] groups them into global ARGs
//! and stages. Substitution ([`substitution`], [`Instruction::expand`]) is
//! separate because docker substitutes at build time, with the environment
//! each step sees; the planner drives it.
//!
//! The parser never panics: every input gives a tree or a [`ParseError`]
//! with file, line and column (fuzzed by `fuzz/` and a stable-Rust test).

mod ast;
mod error;
mod expand;
mod flags;
mod heredoc;
mod instructions;
mod lexer;
mod mounts;
pub mod substitution;
mod values;
mod words;

#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
mod tests;

pub use ast::*;
pub use error::{ParseError, ParseErrorKind, SNIPPET_MAX};
pub use substitution::{expand_heredoc, expand_word, expand_words, SubstError};
pub use values::{parse_duration, valid_chmod, valid_signal, PortSpec, Protocol};

/// Parses a Dockerfile named `Dockerfile` in error messages.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    parse_file("Dockerfile", src)
}

/// Parses a Dockerfile; `file` is the name errors print (e.g. the `-f` path).
pub fn parse_file(file: &str, src: &str) -> Result<Dockerfile, ParseError> {
    let lines = lexer::physical_lines(src);
    let directives = lexer::directives(&lines, file)?;
    let mut lx = lexer::Lexer::new(lines, directives.escape, file);
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let at = |line: usize, column: usize, kind| ParseError {
        file: file.to_string(),
        line,
        column,
        kind,
    };
    while let Some(line) = lx.next_line()? {
        let instruction =
            instructions::parse(&line, 0, directives.escape).map_err(|(offset, kind)| {
                let (l, c) = line.locate(offset);
                at(l, c, kind)
            })?;
        let (l, c) = line.locate(0);
        let span = Span {
            line: l,
            column: c,
            end_line: line.end_line,
        };
        let source = line.text.trim().to_string();
        match instruction {
            Instruction::From(from) => {
                if let Some(name) = &from.name {
                    if stages.iter().any(|s| s.from.name.as_ref() == Some(name)) {
                        let (l, c) = line.locate(
                            line.text
                                .to_ascii_lowercase()
                                .rfind(name.as_str())
                                .unwrap_or(0),
                        );
                        return Err(at(l, c, ParseErrorKind::DuplicateStageName(name.clone())));
                    }
                }
                let index = stages.len();
                stages.push(Stage {
                    index,
                    from,
                    span,
                    source,
                    instructions: Vec::new(),
                });
            }
            instruction => {
                let node = Node {
                    span,
                    source,
                    instruction,
                };
                match stages.last_mut() {
                    Some(stage) => stage.instructions.push(node),
                    None if matches!(node.instruction, Instruction::Arg(_)) => {
                        global_args.push(node)
                    }
                    None => {
                        return Err(at(
                            l,
                            c,
                            ParseErrorKind::BeforeFrom(node.instruction.keyword()),
                        ))
                    }
                }
            }
        }
    }
    if stages.is_empty() {
        return Err(match global_args.first() {
            Some(n) => at(n.span.line, n.span.column, ParseErrorKind::NoStages),
            None => at(1, 1, ParseErrorKind::Empty),
        });
    }
    Ok(Dockerfile {
        file: file.to_string(),
        directives,
        global_args,
        stages,
    })
}

impl Dockerfile {
    /// The stage called `name` (case-insensitive), or with index `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.from.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }
}
