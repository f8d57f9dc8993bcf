//! Parse errors. Every error carries the file, line and column of the
//! offending text and prints as one line, so editors and CI logs can jump
//! to it: `Dockerfile:7:1: unknown instruction "RUNN"`.

/// A located parse error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {kind}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub kind: ParseErrorKind,
}

/// What went wrong. Offending text is printed with `{:?}` so a message
/// never spans lines, and is cut to [`SNIPPET_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("the Dockerfile has no instructions")]
    Empty,
    #[error("invalid escape token {0:?}: must be \\ or `")]
    InvalidEscape(String),
    #[error("only one {0:?} parser directive can be used")]
    DuplicateDirective(String),
    #[error("unknown instruction {0:?}")]
    UnknownInstruction(String),
    #[error("unknown flag {flag:?} for {instruction}")]
    UnknownFlag {
        instruction: &'static str,
        flag: String,
    },
    #[error("duplicate flag {0:?}")]
    DuplicateFlag(String),
    #[error("missing a value on flag {0:?}")]
    MissingFlagValue(String),
    #[error("expecting a boolean value for flag {flag:?}, not {value:?}")]
    BadBool { flag: String, value: String },
    #[error("{0} requires at least one argument")]
    MissingArguments(&'static str),
    /// An instruction whose arguments have the wrong shape or value.
    #[error("{instruction}: {problem}: {text:?}")]
    Invalid {
        instruction: &'static str,
        problem: String,
        text: String,
    },
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    #[error("{0} is not allowed as an ONBUILD trigger")]
    BadOnbuildTrigger(&'static str),
    #[error("{0} before the first FROM: only ARG may come before FROM")]
    BeforeFrom(&'static str),
    #[error("no FROM instruction: the Dockerfile has no stage to build")]
    NoStages,
    #[error("duplicate stage name {0:?}")]
    DuplicateStageName(String),
}

/// Longest offending text quoted in a message.
pub const SNIPPET_MAX: usize = 80;

/// Cuts `text` to [`SNIPPET_MAX`] characters for a message.
pub(crate) fn snippet(text: &str) -> String {
    let mut out: String = text.chars().take(SNIPPET_MAX).collect();
    if text.chars().nth(SNIPPET_MAX).is_some() {
        out.push('…');
    }
    out
}

pub(crate) fn invalid(
    instruction: &'static str,
    problem: impl Into<String>,
    text: &str,
) -> ParseErrorKind {
    ParseErrorKind::Invalid {
        instruction,
        problem: problem.into(),
        text: snippet(text),
    }
}
