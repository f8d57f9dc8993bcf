//! The runtime's error: one enum whose variants name the thing at fault,
//! with a [`ErrorKind`] that the binaries map to exit codes.

use std::io;
use std::path::PathBuf;

/// The broad class of an error, for callers that map errors to exit codes
/// or HTTP statuses without matching every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    /// The container is not in a state that allows the operation.
    Conflict,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// container does not exist
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '-' and '.' (at most 1024)")]
    InvalidId(String),
    #[error("{path}: {source}")]
    ConfigRead { path: PathBuf, source: io::Error },
    #[error("{path}: invalid config: {source}")]
    ConfigParse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("container {id} is {state}: cannot {op}")]
    WrongState {
        id: String,
        state: String,
        op: &'static str,
    },
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("container init failed: {0}")]
    Init(String),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::Error),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::Error),
    #[error("hook {path}: {reason}")]
    Hook { path: PathBuf, reason: String },
    #[error("unknown signal {0:?}")]
    BadSignal(String),
    /// ps(1) failed or printed no PID column.
    #[error("{0}")]
    Ps(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::InvalidId(_)
            | Error::ConfigParse { .. }
            | Error::InvalidConfig(_)
            | Error::BadSignal(_)
            | Error::Ps(_) => ErrorKind::InvalidArgument,
            Error::ConfigRead { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::WrongState { .. } => ErrorKind::Conflict,
            Error::Unsupported(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

/// Wraps an io error with what was being done, in the runtime's words.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The same for rustix's errno.
pub(crate) fn errno(what: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> Error {
    let what = what.into();
    move |e| Error::Io {
        what,
        source: e.into(),
    }
}

pub type Result<T> = std::result::Result<T, Error>;
