//! Durable galleries of fixed-dimension vectors.
//!
//! A gallery is a directory with a manifest, immutable checksummed segment
//! files read through memory maps, and a write-ahead log per write shard
//! (`shard.rs`). What it guarantees:
//!
//! * An acknowledged write (enroll or delete) is fsynced to the log first, so
//!   it survives a crash of the process or the machine.
//! * A crash mid-write leaves at most a torn log tail, which recovery cuts
//!   off; damage anywhere else is reported with the file's name and the
//!   gallery is not served.
//! * A deleted record is never returned again, and after compaction its
//!   template bytes are in no file of the gallery.
//!
//! See `write.rs` and `shard.rs` for the write path and `segment.rs` / `wal.rs` /
//! `manifest.rs` for the file formats.

#![warn(missing_docs)]

pub mod ann;
mod catalog;
mod codec;
mod error;
mod fsutil;
mod gallery;
mod manifest;
mod record;
mod rewrite;
mod segment;
mod shard;
mod state;
mod state_lock;
mod wal;
mod write;

pub use catalog::{Catalog, Entry};
pub use error::{IndexError, Result};
pub use fsutil::write_atomic;
pub use gallery::{Gallery, GalleryOptions, GalleryStats, NewRecord, RowScorer, Search, SearchHit, StoredRecord};
pub use record::RecordMeta;
pub use rewrite::OptimizeReport;
pub use segment::Segment;
