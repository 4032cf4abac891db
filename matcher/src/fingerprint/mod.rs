//! Fingerprint minutiae: ISO/IEC 19794-2 records and a Minutia Cylinder-Code
//! matcher.

mod cylinder;
pub mod geometry;
pub mod iso;
mod matcher;

pub use iso::{FingerRecord, FingerView, Minutia, MinutiaKind};
pub use matcher::{FingerTemplate, FingerprintMatcher};
