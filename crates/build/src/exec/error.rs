//! The executor's error: one line naming the thing at fault, and for a
//! failed step the Dockerfile location it came from.

use std::io;

use berth_engine::ErrorKind;

use crate::dockerfile::{ParseError, Span};
use crate::dockerignore::IgnoreError;
use crate::plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A bad pattern in the ignore file `file`.
    #[error("{file}:{error}")]
    Ignore { file: String, error: IgnoreError },
    /// A step failed: where it is in the Dockerfile (at the offending
    /// text when the instruction shows it), and why.
    #[error("{file}:{line}:{column}: {keyword}: {cause}")]
    Step {
        file: String,
        line: usize,
        column: usize,
        keyword: &'static str,
        cause: Box<BuildError>,
    },
    /// A COPY/ADD source that resolves outside the context.
    #[error("forbidden path outside the build context: {0}")]
    OutsideContext(String),
    #[error("file not found in build context or excluded by .dockerignore: {0}")]
    NotInContext(String),
    #[error("{0}: no such file or directory in {1}")]
    NotInImage(String, String),
    #[error("no source files were specified")]
    NoSources,
    #[error("the command '{command}' returned a non-zero code: {code}")]
    RunFailed { command: String, code: i32 },
    #[error("image {image} is not here and pulling it failed: {cause}")]
    Pull {
        image: String,
        cause: Box<berth_engine::Error>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("downloading {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("build cache database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The engine's, or the image store's (carried as the engine's, whose
    /// kinds the edges already map).
    #[error(transparent)]
    Engine(#[from] berth_engine::Error),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// Another stage failed first; this one stopped without finishing.
    #[error("cancelled")]
    Cancelled,
}

impl BuildError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            BuildError::Parse(_)
            | BuildError::Plan(_)
            | BuildError::Ignore { .. }
            | BuildError::OutsideContext(_)
            | BuildError::NoSources
            | BuildError::Invalid(_)
            | BuildError::Unsupported(_) => ErrorKind::InvalidArgument,
            BuildError::NotInContext(_) | BuildError::NotInImage(..) => ErrorKind::NotFound,
            BuildError::Step { cause, .. } => cause.kind(),
            BuildError::RunFailed { .. } | BuildError::Cancelled => ErrorKind::Internal,
            BuildError::Download { .. } => ErrorKind::Unavailable,
            BuildError::Db(_) => ErrorKind::Internal,
            BuildError::Engine(e) => e.kind(),
            BuildError::Pull { cause, .. } => cause.kind(),
            BuildError::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                    ErrorKind::InvalidArgument
                }
                _ => ErrorKind::Internal,
            },
        }
    }

    /// Locates this error at the instruction at `span`, whose text is
    /// `source` (once: an error that already knows its line keeps it).
    pub(crate) fn at(
        self,
        file: &str,
        span: Span,
        source: &str,
        keyword: &'static str,
    ) -> BuildError {
        match self {
            e @ (BuildError::Step { .. } | BuildError::Cancelled | BuildError::Parse(_)) => e,
            e => {
                // The source of an instruction on one line is that line
                // (trimmed), so an offset into it is a column.
                let column = match e.offending() {
                    Some(text) if span.line == span.end_line && !text.is_empty() => source
                        .find(text)
                        .or_else(|| source.find(text.trim_start_matches('/')))
                        .map_or(span.column, |i| span.column + source[..i].chars().count()),
                    _ => span.column,
                };
                BuildError::Step {
                    file: file.to_string(),
                    line: span.line,
                    column,
                    keyword,
                    cause: Box::new(e),
                }
            }
        }
    }

    /// The text of the instruction this error is about, if it names one.
    fn offending(&self) -> Option<&str> {
        match self {
            BuildError::OutsideContext(s)
            | BuildError::NotInContext(s)
            | BuildError::NotInImage(s, _) => Some(s),
            BuildError::Pull { image, .. } => Some(image),
            BuildError::Download { url, .. } => Some(url),
            _ => None,
        }
    }
}

impl From<berth_image::store::StoreError> for BuildError {
    fn from(e: berth_image::store::StoreError) -> Self {
        BuildError::Engine(e.into())
    }
}

impl From<berth_image::content::ContentError> for BuildError {
    fn from(e: berth_image::content::ContentError) -> Self {
        BuildError::Engine(berth_image::store::StoreError::from(e).into())
    }
}

/// An image-crate error (snapshot, layer...) as a build error.
pub(crate) fn store(e: impl Into<berth_image::store::StoreError>) -> BuildError {
    BuildError::from(e.into())
}

pub type Result<T> = std::result::Result<T, BuildError>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}
