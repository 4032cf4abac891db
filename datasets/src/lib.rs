//! Dataset loaders and seeded synthetic generators.
//!
//! Loaders read what users bring: `.npy` arrays and JSON vectors. Generators
//! make data with known ground truth for tests and benchmarks; the same seed
//! gives the same data on every machine.

#![warn(missing_docs)]

mod error;
mod files;
pub mod fingerprint;
pub mod iris;
pub mod metrics;
mod npy;
mod synthetic;
mod vectors;

pub use error::DatasetError;
pub use files::read_dir_files;
pub use fingerprint::{ImpressionNoise, SyntheticFingerprints, SyntheticMinutia};
pub use iris::{PackedIris, SyntheticIris, conformance_pairs};
pub use npy::{Matrix, read_npy, write_npy};
pub use synthetic::{SyntheticEmbeddings, SyntheticSet};
pub use vectors::{VectorRecord, read_vectors};
