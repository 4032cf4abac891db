//! The matcher crate's one error type. Every variant is a problem with the
//! client's template, so the service maps all of them to INVALID_ARGUMENT.

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MatcherError {
    /// No values at all.
    #[error("empty template: the {modality} embedding has no values")]
    Empty {
        /// Modality name.
        modality: &'static str,
    },
    /// Packed f32 bytes whose length is not a multiple of 4.
    #[error("embedding f32_le has {0} bytes, not a multiple of 4")]
    ByteLength(usize),
    /// More components than the service accepts.
    #[error("embedding dimension {got} exceeds the maximum of {max}")]
    TooLarge {
        /// Components given.
        got: usize,
        /// Configured maximum.
        max: usize,
    },
    /// NaN or infinity at some index.
    #[error("embedding value at index {index} is {value} (must be finite)")]
    NonFinite {
        /// First offending index.
        index: usize,
        /// The value, printed as NaN, inf or -inf.
        value: f32,
    },
    /// All zeros (or too small to normalise): cosine is undefined.
    #[error("zero vector: the embedding has no direction, so cosine similarity is undefined")]
    ZeroVector,
    /// The template kind does not fit the modality.
    #[error("{0}")]
    WrongKind(String),
    /// An iris template or matcher setting is malformed.
    #[error("{0}")]
    Iris(String),
    /// A fingerprint record is malformed: the byte offset of the first problem
    /// and what is wrong there.
    #[error("ISO/IEC 19794-2 record, byte {offset}: {reason}")]
    Iso {
        /// Offset from the start of the record.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A fingerprint template cannot be matched (too few minutiae, ...).
    #[error("{0}")]
    Fingerprint(String),
    /// Calibration input or a target FMR is out of range.
    #[error("{0}")]
    Calibration(String),
    /// The modality is not served (yet).
    #[error("{0}")]
    Unsupported(String),
}
