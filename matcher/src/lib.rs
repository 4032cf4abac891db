//! Biometric templates per modality: what a valid template is, how it is
//! normalised before storage, and how two templates are compared.
//!
//! Face and voice embeddings are compared by cosine similarity. They are
//! L2-normalised once, at enrollment and per probe, so that every stored
//! comparison is a plain inner product that the SIMD scan can run.

#![warn(missing_docs)]

pub mod calibration;
mod embedding;
mod error;
pub mod fingerprint;
pub mod fusion;
pub mod iris;
mod modality;

pub use calibration::Calibration;
pub use embedding::{Embedding, decode_f32_le};
pub use error::MatcherError;
pub use iris::{IrisMatch, IrisMatchConfig, IrisMatcher, IrisTemplate};
pub use modality::Modality;

/// The bytes of a stored gallery row (rows are f32 words in the index, but
/// iris and fingerprint rows are bit-packed data read in place).
pub(crate) fn row_as_bytes(row: &[f32]) -> &[u8] {
    // SAFETY: f32 and u8 have no invalid bit patterns; the length is exact.
    unsafe { std::slice::from_raw_parts(row.as_ptr().cast::<u8>(), std::mem::size_of_val(row)) }
}

/// The verification rule for similarity scores: a match when
/// `score >= threshold`. Ties accept, as in pyeer and bob.measure.
pub fn is_match(score: f32, threshold: f32) -> bool {
    score >= threshold
}

/// A seeded xorshift stream of uniform numbers in (0, 1) for unit tests:
/// deterministic, dependency-free.
#[cfg(test)]
pub(crate) fn test_uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}
