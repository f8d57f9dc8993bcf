//! The crate's error: one enum whose variants name what failed, and a
//! [`ErrorKind`] the API and CLI map to HTTP and exit codes.

use std::io;

/// The small set of kinds the edges translate; nothing else about an
/// error should be matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    Conflict,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// invalid argument
    #[error("{0}")]
    Invalid(String),
    /// a name or address that is already in use
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// the subnet (or --ip-range) has no free address left
    #[error("no free address in {0}")]
    Exhausted(String),
    /// the kernel refused a netlink request; `op` says which
    #[error("netlink {op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("lease database: {0}")]
    Db(#[from] rusqlite::Error),
    /// teardown keeps going past failures and reports all of them
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) => ErrorKind::InvalidArgument,
            Error::Conflict(_) | Error::Exhausted(_) => ErrorKind::Conflict,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::Netlink { source, .. } | Error::Io { source, .. } => io_kind(source),
            Error::Db(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                ErrorKind::Unavailable
            }
            Error::Db(_) => ErrorKind::Internal,
            Error::Many(v) => v.first().map_or(ErrorKind::Internal, Error::kind),
        }
    }

    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn netlink(op: impl Into<String>, source: io::Error) -> Self {
        Error::Netlink {
            op: op.into(),
            source,
        }
    }

    /// The errno of a kernel or I/O error, for callers that tolerate
    /// e.g. EEXIST on an idempotent step.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Folds the failures of a teardown into one result.
    pub(crate) fn collect(errors: Vec<Error>) -> Result<(), Error> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.into_iter().next().expect("one error")),
            _ => Err(Error::Many(errors)),
        }
    }
}

fn io_kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        io::ErrorKind::InvalidInput => ErrorKind::InvalidArgument,
        io::ErrorKind::PermissionDenied => ErrorKind::Unavailable,
        _ => match e.raw_os_error() {
            Some(ENODEV) => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        },
    }
}

pub(crate) const EEXIST: i32 = 17;
pub(crate) const ENOENT: i32 = 2;
pub(crate) const ENODEV: i32 = 19;

pub type Result<T, E = Error> = std::result::Result<T, E>;
