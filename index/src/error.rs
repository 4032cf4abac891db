//! The index crate's one error type.

use std::path::{Path, PathBuf};

use biomatch_kernels::Cancelled;

/// Everything that can go wrong in a gallery.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A file operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes failed a checksum or did not parse; the file is not served.
    #[error("corrupt data in {}: {detail}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What was wrong and where.
        detail: String,
    },
    /// A record with this id is already live.
    #[error("record {0:?} already exists")]
    AlreadyExists(String),
    /// No live record has this id.
    #[error("record {0:?} not found")]
    RecordNotFound(String),
    /// A vector's length does not match the gallery's dimension.
    #[error("dimension mismatch: the gallery holds {expected}-d vectors, got {got}")]
    Dimension {
        /// The gallery's dimension.
        expected: usize,
        /// The vector's length.
        got: usize,
    },
    /// The gallery could not be opened and is not served.
    #[error("gallery {name} is unavailable: {reason}")]
    Unavailable {
        /// Gallery name.
        name: String,
        /// Why it failed to open (names the file when a file is at fault).
        reason: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {} is locked by another process", .0.display())]
    Locked(PathBuf),
    /// The search was cancelled (deadline passed or client went away).
    #[error("search cancelled")]
    Cancelled,
}

impl From<Cancelled> for IndexError {
    fn from(_: Cancelled) -> Self {
        IndexError::Cancelled
    }
}

/// Shorthand for `Result<T, IndexError>`.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A corruption error for `path`.
pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> IndexError {
    IndexError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}
