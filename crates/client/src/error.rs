//! What can go wrong when talking to a server.

use wire::ErrorCode;

/// A failed call on [`crate::Client`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address could not be resolved or did not answer.
    #[error("cannot reach {addr}: {source}")]
    Unreachable {
        /// What the caller asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server answered with an error (the name is taken, the server is full, ...).
    #[error("{message}")]
    Server {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason, from the server.
        message: String,
    },
    /// The server sent something this client does not understand.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    /// The server took too long to answer.
    #[error("the server did not answer in time")]
    Timeout,
    /// The connection is closed.
    #[error("not connected")]
    Disconnected,
    /// The name asked for cannot be saved under: once reduced to one file name it still means
    /// a folder (`.`, `..`, nothing). No server shares a file by such a name, so its code is
    /// `no_such_file`.
    #[error("{0:?} is not a file name: no shared file can have it")]
    UnsafeName(String),
    /// A download into the same file is already under way.
    #[error("{} is already being downloaded", .0.display())]
    AlreadyDownloading(std::path::PathBuf),
}

impl ClientError {
    /// The wire error code this error stands for, if it came from the server.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(*code),
            Self::AlreadyDownloading(_) => Some(ErrorCode::Busy),
            Self::UnsafeName(_) => Some(ErrorCode::NoSuchFile),
            _ => None,
        }
    }
}
