//! Dataset loaders and seeded synthetic generators.
//!
//! Loaders read what users bring: `.npy`, `.fvecs`/`.bvecs`, CSV with label
//! columns, raw f32 with a labels file, JSON and JSON lines, folders of
//! template files. Generators
//! make data with known ground truth for tests and benchmarks; the same seed
//! gives the same data on every machine.

#![warn(missing_docs)]

mod csv;
mod error;
mod files;
pub mod fingerprint;
pub mod identification;
pub mod iris;
pub mod metrics;
mod npy;
mod synthetic;
mod vecs;
mod vectors;

pub use csv::{CsvColumns, read_csv_vectors};
pub use error::DatasetError;
pub use files::read_dir_files;
pub use fingerprint::{ImpressionNoise, SyntheticFingerprints, SyntheticMinutia};
pub use iris::{PackedIris, SyntheticIris, conformance_pairs};
pub use npy::{Matrix, read_npy, write_npy};
pub use synthetic::{SyntheticEmbeddings, SyntheticSet};
pub use vecs::{VecsKind, read_ivecs, read_vecs, write_fvecs};
pub use vectors::{
    VectorOptions, VectorRecord, read_json_objects, read_labels, read_raw_f32, read_vectors, read_vectors_with,
};
