//! Scoring kernels for float embeddings.
//!
//! The instruction set is chosen once per process ([`Isa::active`]): AVX-512F,
//! else AVX2 with FMA, else portable scalar code. Every kernel exists in each
//! flavour, and tests compare all flavours the machine supports against an f64
//! reference, so the scalar path is always exercised even on AVX-512 hardware.
//!
//! Scans ([`scan_topk`], [`scan_topk_batch`]) split a gallery into chunks that
//! rayon scores in parallel on whatever pool the caller runs them in; each
//! chunk keeps its own [`TopK`] and the partial results are merged.
//!
//! [`iris`] holds the masked, rotation-aware Hamming counts for iris codes;
//! [`cylinder`] the popcounts of fingerprint cylinder descriptors, and
//! [`screen`] the fingerprint screen's best-code similarities.

#![warn(missing_docs)]

pub mod cylinder;
mod dispatch;
pub mod iris;
mod quant;
mod scalar;
mod scan;
pub mod screen;
mod topk;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use dispatch::{Isa, Kernels};
pub use quant::quantize_i8;
pub use scan::{Cancelled, ChunkScorer, Metric, RowFilter, ScanParams, scan_topk, scan_topk_batch, scan_topk_by};
pub use topk::{Hit, TopK};
