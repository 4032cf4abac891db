//! The biometric modalities.

use std::fmt;

/// A biometric modality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modality {
    /// ISO/IEC 19794-2 finger minutiae.
    Fingerprint,
    /// Face embeddings.
    Face,
    /// Iris codes.
    Iris,
    /// Speaker embeddings.
    Voice,
    /// Several modalities fused.
    Multi,
}

impl Modality {
    /// Every modality.
    pub const ALL: [Modality; 5] = [
        Modality::Fingerprint,
        Modality::Face,
        Modality::Iris,
        Modality::Voice,
        Modality::Multi,
    ];

    /// Lower-case name, used in gallery names ("face-512") and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Fingerprint => "fingerprint",
            Modality::Face => "face",
            Modality::Iris => "iris",
            Modality::Voice => "voice",
            Modality::Multi => "multi",
        }
    }

    /// Parses a name as [`Modality::as_str`] writes it (any case).
    pub fn parse(s: &str) -> Option<Modality> {
        Modality::ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    /// True for modalities whose templates are float embeddings.
    pub fn is_embedding(self) -> bool {
        matches!(self, Modality::Face | Modality::Voice)
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str().to_ascii_uppercase())
    }
}
