//! The engine's error: each variant names the thing at fault in one line;
//! [`ErrorKind`] is what the edges (`cli` exit codes, `api` statuses) see.

use std::io;

/// The broad classes of failure, shared with the lower crates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    /// The container is not in a state that allows the operation.
    Conflict,
    Unavailable,
    Internal,
    /// A registry refused our credentials (or we had none).
    Unauthorized,
    /// Never allowed, whatever the state: changing a predefined network.
    Forbidden,
    /// The container's command exists but cannot be run (docker's 126).
    CannotInvoke,
    /// The container's command does not exist (docker's 127).
    CommandNotFound,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    #[error("container name {0:?} is already in use")]
    NameInUse(String),
    #[error("invalid container name {0:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit")]
    InvalidName(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{flag} is not supported yet")]
    NotSupported { flag: String },
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("image with reference {image} was found but does not match the specified platform: wanted {wanted}, actual: {actual}")]
    PlatformMismatch {
        image: String,
        wanted: String,
        actual: String,
    },
    /// docker's words for what is never allowed (a predefined network).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Net(#[from] berth_net::Error),
    #[error("container {id} is {state}: cannot {op}")]
    WrongState {
        id: String,
        state: String,
        op: &'static str,
    },
    #[error("{0}")]
    CommandNotFound(String),
    #[error("{0}")]
    CannotInvoke(String),
    /// The container's init failed for another reason (a mount, seccomp...).
    #[error("starting the container: {0}")]
    StartFailed(String),
    #[error("state database {path}: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("monitor of container {id}: {reason}")]
    Monitor { id: String, reason: String },
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    #[error(transparent)]
    Image(#[from] berth_image::store::StoreError),
    #[error(transparent)]
    Archive(#[from] berth_image::archive::ArchiveError),
    #[error(transparent)]
    Registry(#[from] berth_registry::RegistryError),
    /// Teardown keeps going past a failure and reports all of them.
    #[error("removing {id}: {}", .errors.join("; "))]
    Teardown { id: String, errors: Vec<String> },
}

impl Error {
    /// The end of a teardown that kept going past failures: `Ok` when
    /// nothing failed, else every failure at once.
    pub(crate) fn teardown(id: &str, errors: Vec<String>) -> Result<()> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Teardown {
                id: id.to_string(),
                errors,
            })
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchContainer(_) | Error::NoSuchImage(_) | Error::NoSuchVolume(_) => {
                ErrorKind::NotFound
            }
            Error::NameInUse(_) => ErrorKind::AlreadyExists,
            Error::InvalidName(_) | Error::InvalidArgument(_) | Error::NotSupported { .. } => {
                ErrorKind::InvalidArgument
            }
            Error::WrongState { .. } => ErrorKind::Conflict,
            Error::CommandNotFound(_) => ErrorKind::CommandNotFound,
            Error::CannotInvoke(_) => ErrorKind::CannotInvoke,
            Error::Db {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if e.code == rusqlite::ErrorCode::DatabaseBusy => ErrorKind::Unavailable,
            Error::Runtime(e) => runtime_kind(e),
            Error::Image(e) => image_kind(e.kind()),
            Error::Archive(e) => image_kind(e.kind()),
            Error::Registry(e) => registry_kind(e.kind()),
            Error::NoSuchNetwork(_) | Error::PlatformMismatch { .. } => ErrorKind::NotFound,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Net(e) => net_kind(e.kind()),
            Error::Db { .. }
            | Error::Io { .. }
            | Error::Monitor { .. }
            | Error::StartFailed(_)
            | Error::Teardown { .. } => ErrorKind::Internal,
        }
    }

    /// Classifies a failure to start the container's process the way
    /// docker's exit codes do: a missing command is 127, one that cannot be
    /// executed 126. The runtime reports both as text from the init.
    pub fn from_start_failure(msg: String) -> Error {
        if msg.contains("not found") || msg.contains("no such file") {
            Error::CommandNotFound(msg)
        } else if msg.contains("permission denied") {
            Error::CannotInvoke(msg)
        } else {
            Error::StartFailed(msg)
        }
    }
}

fn runtime_kind(e: &berth_runtime::Error) -> ErrorKind {
    use berth_runtime::ErrorKind as K;
    match e.kind() {
        K::NotFound => ErrorKind::NotFound,
        K::AlreadyExists => ErrorKind::AlreadyExists,
        K::InvalidArgument => ErrorKind::InvalidArgument,
        K::Conflict => ErrorKind::Conflict,
        K::Unavailable => ErrorKind::Unavailable,
        K::Internal => ErrorKind::Internal,
    }
}

fn image_kind(k: berth_image::ErrorKind) -> ErrorKind {
    use berth_image::ErrorKind as K;
    match k {
        K::NotFound => ErrorKind::NotFound,
        K::AlreadyExists => ErrorKind::AlreadyExists,
        K::InvalidArgument => ErrorKind::InvalidArgument,
        K::Conflict => ErrorKind::Conflict,
        K::Unavailable => ErrorKind::Unavailable,
        K::Internal => ErrorKind::Internal,
    }
}

fn net_kind(k: berth_net::ErrorKind) -> ErrorKind {
    use berth_net::ErrorKind as K;
    match k {
        K::NotFound => ErrorKind::NotFound,
        K::AlreadyExists => ErrorKind::AlreadyExists,
        K::InvalidArgument => ErrorKind::InvalidArgument,
        K::Conflict => ErrorKind::Conflict,
        K::Unavailable => ErrorKind::Unavailable,
        K::Internal => ErrorKind::Internal,
    }
}

fn registry_kind(k: berth_registry::ErrorKind) -> ErrorKind {
    use berth_registry::ErrorKind as K;
    match k {
        K::NotFound => ErrorKind::NotFound,
        K::AlreadyExists => ErrorKind::AlreadyExists,
        K::InvalidArgument => ErrorKind::InvalidArgument,
        K::Conflict => ErrorKind::Conflict,
        K::Unauthorized => ErrorKind::Unauthorized,
        K::Unavailable => ErrorKind::Unavailable,
        K::Internal => ErrorKind::Internal,
    }
}

/// Wraps an io error with what was being done.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures_map_to_docker_codes() {
        let e = Error::from_start_failure(
            "container init failed: exec: \"nope\": executable file not found in $PATH".into(),
        );
        assert_eq!(e.kind(), ErrorKind::CommandNotFound);
        let e =
            Error::from_start_failure("exec \"/etc\": is a directory: permission denied".into());
        assert_eq!(e.kind(), ErrorKind::CannotInvoke);
        let e = Error::from_start_failure("mounting /proc: EPERM".into());
        assert_eq!(e.kind(), ErrorKind::Internal);
    }
}
