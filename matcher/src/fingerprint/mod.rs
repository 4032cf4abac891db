//! Fingerprint minutiae: ISO/IEC 19794-2 records and a Minutia Cylinder-Code
//! matcher.

mod cylinder;
pub mod geometry;
pub mod iso;
mod lanes;
mod matcher;
pub mod screen;
mod stored;

pub use iso::{FingerRecord, FingerView, Minutia, MinutiaKind};
pub use matcher::{FingerTemplate, FingerprintMatcher, MAX_CYLINDERS};
pub use screen::ScreenProbe;
pub use stored::{FINGER_ROW_BYTES, FINGER_ROW_WORDS, FingerprintTemplate, row_cylinders};
