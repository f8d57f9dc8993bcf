//! The server's own failures (binding, the runtime) and docker's error
//! responses: `{"message": "..."}` with the status docker uses for the
//! engine's error kind.

use hyper::StatusCode;

/// What stops `berth serve` itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid --host {host:?}: {why}")]
    BadHost { host: String, why: String },
    #[error("listening on {what}: {source}")]
    Listen {
        what: String,
        source: std::io::Error,
    },
    #[error("TLS: {what}: {why}")]
    Tls { what: String, why: String },
    #[error("socket group {0:?} does not exist")]
    NoSuchGroup(String),
    #[error("starting the server: {0}")]
    Runtime(std::io::Error),
}

/// A request's failure as docker reports it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// docker's status for each kind of engine error.
pub fn status_of(kind: berth_engine::ErrorKind) -> StatusCode {
    use berth_engine::ErrorKind as K;
    match kind {
        K::NotFound => StatusCode::NOT_FOUND,
        K::AlreadyExists | K::Conflict => StatusCode::CONFLICT,
        // docker reports a command that cannot run as a bad parameter;
        // its client reads 126/127 from the message.
        K::InvalidArgument | K::CannotInvoke | K::CommandNotFound => StatusCode::BAD_REQUEST,
        K::Unauthorized => StatusCode::UNAUTHORIZED,
        K::Forbidden => StatusCode::FORBIDDEN,
        K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        K::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<berth_engine::Error> for ApiError {
    fn from(e: berth_engine::Error) -> ApiError {
        use berth_engine::Error as E;
        // Clients match these two messages as docker words them.
        let message = match &e {
            E::NoSuchContainer(x) => format!("No such container: {x}"),
            E::NoSuchImage(x) => format!("No such image: {x}"),
            e => e.to_string(),
        };
        ApiError::new(status_of(e.kind()), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_kinds_become_dockers_statuses() {
        let e: ApiError = berth_engine::Error::NoSuchContainer("x".into()).into();
        assert_eq!(
            (e.status, e.message.as_str()),
            (StatusCode::NOT_FOUND, "No such container: x")
        );
        let e: ApiError = berth_engine::Error::NameInUse("web".into()).into();
        assert_eq!(e.status, StatusCode::CONFLICT);
        let e: ApiError = berth_engine::Error::NotSupported {
            flag: "--pid".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e: ApiError = berth_engine::Error::StartFailed("mount".into()).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
