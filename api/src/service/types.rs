//! Domain types of the service layer: what the gRPC adapter (and later the
//! REST adapter) converts requests into, and results out of.

use std::collections::BTreeMap;

use biomatch_index::StoredRecord;
use biomatch_matcher::fingerprint::{FINGER_ROW_WORDS, FingerRecord, FingerprintTemplate};
use biomatch_matcher::iris::{IRIS_CODE_BITS, IRIS_ROW_WORDS};
use biomatch_matcher::{Embedding, IrisTemplate, MatcherError, Modality};

/// The `dim` of the fingerprint gallery key: the version of the stored row
/// layout (`fingerprint-1`), since fingerprints have no dimension.
pub const FINGERPRINT_ROW_FORMAT: usize = 1;

/// Identifies a gallery: one modality at one dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GalleryKey {
    /// Modality.
    pub modality: Modality,
    /// Embedding dimension.
    pub dim: usize,
}

impl GalleryKey {
    /// Directory and display name, e.g. `face-512`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.modality.as_str(), self.dim)
    }

    /// 32-bit words per stored row: the dimension for embeddings, the
    /// packed code and mask for iris, the prepared template for fingerprints.
    pub fn row_len(&self) -> usize {
        match self.modality {
            Modality::Iris => IRIS_ROW_WORDS,
            Modality::Fingerprint => FINGER_ROW_WORDS,
            _ => self.dim,
        }
    }

    /// The dimension of a modality whose galleries have only one: iris
    /// codes and fingerprint rows. None for embeddings.
    pub fn fixed_dim(modality: Modality) -> Option<usize> {
        match modality {
            Modality::Iris => Some(IRIS_CODE_BITS),
            Modality::Fingerprint => Some(FINGERPRINT_ROW_FORMAT),
            _ => None,
        }
    }

    /// Parses a name made by [`GalleryKey::name`].
    pub fn parse(name: &str) -> Option<GalleryKey> {
        let (m, d) = name.rsplit_once('-')?;
        Some(GalleryKey {
            modality: Modality::parse(m)?,
            dim: d.parse().ok()?,
        })
    }
}

/// A validated template of any served modality.
#[derive(Clone, Debug)]
pub enum Template {
    /// FACE or VOICE embedding, unit length.
    Embedding(Embedding),
    /// IRIS code and mask.
    Iris(IrisTemplate),
    /// FINGERPRINT: a parsed ISO/IEC 19794-2 record of one finger view. Its
    /// cylinders are built on the matching pool, not by the adapter.
    Fingerprint(FingerRecord),
}

impl Template {
    /// Its modality.
    pub fn modality(&self) -> Modality {
        match self {
            Template::Embedding(e) => e.modality(),
            Template::Iris(_) => Modality::Iris,
            Template::Fingerprint(_) => Modality::Fingerprint,
        }
    }

    /// The gallery it belongs to: embeddings by dimension, iris codes by
    /// code size (`iris-16384`).
    pub fn key(&self) -> GalleryKey {
        match self {
            Template::Embedding(e) => GalleryKey {
                modality: e.modality(),
                dim: e.dim(),
            },
            Template::Iris(_) => GalleryKey {
                modality: Modality::Iris,
                dim: IRIS_CODE_BITS,
            },
            Template::Fingerprint(_) => GalleryKey {
                modality: Modality::Fingerprint,
                dim: FINGERPRINT_ROW_FORMAT,
            },
        }
    }

    /// The stored row; fails for a fingerprint with nothing to match. CPU
    /// work for fingerprints (about a millisecond): call it on the pool.
    pub fn into_row(self) -> Result<Vec<f32>, MatcherError> {
        Ok(match self {
            Template::Embedding(e) => e.into_values(),
            Template::Iris(t) => t.to_row(),
            Template::Fingerprint(r) => FingerprintTemplate::from_record(r)?.to_row(),
        })
    }
}

/// A record to enroll.
#[derive(Clone, Debug)]
pub struct EnrollInput {
    /// Subject.
    pub subject_id: String,
    /// Record id, or None to have one assigned.
    pub record_id: Option<String>,
    /// The validated template.
    pub template: Template,
    /// Quality 0..100.
    pub quality: f32,
    /// Client metadata.
    pub metadata: BTreeMap<String, String>,
}

/// A durable enrollment.
#[derive(Clone, Debug, PartialEq)]
pub struct EnrollOutput {
    /// The record id.
    pub record_id: String,
    /// The gallery name.
    pub gallery: String,
}

/// Whom a probe is verified against.
#[derive(Clone, Debug)]
pub enum Target {
    /// All of a subject's records (best score counts).
    Subject(String),
    /// One record.
    Record(String),
}

/// A 1:1 comparison.
#[derive(Clone, Debug)]
pub struct VerifyInput {
    /// The probe.
    pub probe: Template,
    /// The target.
    pub target: Target,
    /// Threshold, or the modality default.
    pub threshold: Option<f32>,
    /// Decide at this false match rate (needs a calibrated gallery).
    pub target_fmr: Option<f64>,
}

/// The outcome of a 1:1 comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyOutput {
    /// Best score.
    pub score: f32,
    /// score >= threshold.
    pub matched: bool,
    /// The threshold used.
    pub threshold: f32,
    /// The best record.
    pub record_id: String,
    /// Templates compared.
    pub compared: u32,
    /// IRIS: the Hamming distance and rotation behind the score.
    pub iris: Option<biomatch_matcher::IrisMatch>,
    /// The score's false match rate, when the gallery is calibrated.
    pub fmr: Option<f64>,
}

/// A 1:N search.
#[derive(Clone, Debug)]
pub struct IdentifyInput {
    /// The probe.
    pub probe: Template,
    /// Number of subjects wanted.
    pub top_k: usize,
    /// Minimum score, when set.
    pub threshold: Option<f32>,
    /// Largest false match rate of a candidate's score, when set.
    pub target_fmr: Option<f64>,
    /// Metadata equality filter.
    pub filter: BTreeMap<String, String>,
    /// Exact or graph search, beam width, oversampling (embedding
    /// galleries); exact or screened (fingerprint galleries).
    pub search: biomatch_index::ann::AnnQuery,
    /// FINGERPRINT screened search: the share of the gallery scored in
    /// full; None = the configured default.
    pub penetration: Option<f32>,
}

/// One candidate subject.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Subject.
    pub subject_id: String,
    /// Its best record.
    pub record_id: String,
    /// That record's score.
    pub score: f32,
    /// IRIS: the Hamming distance and rotation behind the score.
    pub iris: Option<biomatch_matcher::IrisMatch>,
    /// The score's false match rate, when the gallery is calibrated.
    pub fmr: Option<f64>,
}

/// The outcome of a 1:N search.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentifyOutput {
    /// Candidates, best first.
    pub candidates: Vec<Candidate>,
    /// Live records in the gallery.
    pub gallery_size: u64,
    /// Gallery name, empty when none exists yet.
    pub gallery: String,
}

/// A record read back, with the gallery it lives in.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordView {
    /// Its gallery.
    pub gallery: GalleryKey,
    /// The record.
    pub record: StoredRecord,
}

/// One gallery's statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct GalleryInfo {
    /// Name.
    pub name: String,
    /// Parsed key, when the name is well-formed.
    pub key: Option<GalleryKey>,
    /// Sizes (zero when broken).
    pub stats: biomatch_index::GalleryStats,
    /// Why it is not served, when broken.
    pub error: Option<String>,
}

/// A page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct ListPage {
    /// Records in id order.
    pub records: Vec<RecordView>,
    /// Token to continue after this page; None at the end.
    pub next_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gallery_names_round_trip() {
        let k = GalleryKey {
            modality: Modality::Voice,
            dim: 192,
        };
        assert_eq!(k.name(), "voice-192");
        assert_eq!(GalleryKey::parse("voice-192"), Some(k));
        assert_eq!(GalleryKey::parse("voice"), None);
        assert_eq!(GalleryKey::parse("nose-12"), None);
    }
}
