//! Small helpers for crash-safe file replacement.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Result, io_err};

/// fsyncs a directory so that a file created, renamed or removed in it is
/// itself durable, not only the file's contents.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Writes `bytes` to `path` atomically: a temporary file is written and
/// fsynced, renamed over `path`, and the directory fsynced. A crash leaves
/// either the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}
