//! What a gallery stores beside each vector.

use std::collections::BTreeMap;

/// Descriptive data of one record. The template bytes live apart from it, in
/// the segment's vector block or the write-ahead log.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordMeta {
    /// Unique id of the record.
    pub record_id: String,
    /// The subject (person) it belongs to.
    pub subject_id: String,
    /// Client metadata, usable as a search filter.
    pub metadata: BTreeMap<String, String>,
    /// Capture quality as the client reported it (0 = not reported).
    pub quality: f32,
    /// Enrollment time, ms since the Unix epoch.
    pub enrolled_at_ms: u64,
}

impl RecordMeta {
    /// True when every `(key, value)` of `filter` is in this record's metadata.
    pub fn matches(&self, filter: &BTreeMap<String, String>) -> bool {
        filter.iter().all(|(k, v)| self.metadata.get(k) == Some(v))
    }
}
