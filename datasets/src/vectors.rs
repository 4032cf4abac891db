//! Vectors to enroll or search, from JSON or `.npy`.
//!
//! JSON forms accepted: one vector `[0.1, ...]`; a list of vectors
//! `[[...], [...]]`; or a list of records
//! `[{"subject_id": "...", "record_id": "...", "vector": [...], "metadata": {...}}]`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::{DatasetError, read_npy};

/// A vector with optional labels.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct VectorRecord {
    /// Subject, when the file names one.
    #[serde(default)]
    pub subject_id: Option<String>,
    /// Record id, when the file names one.
    #[serde(default)]
    pub record_id: Option<String>,
    /// The values.
    pub vector: Vec<f32>,
    /// Metadata, when the file gives it.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonVectors {
    One(Vec<f32>),
    Many(Vec<Vec<f32>>),
    Records(Vec<VectorRecord>),
}

/// Reads vectors from a `.npy` file (by extension) or JSON.
pub fn read_vectors(path: &Path) -> Result<Vec<VectorRecord>, DatasetError> {
    let plain = |v: Vec<f32>| VectorRecord {
        vector: v,
        ..Default::default()
    };
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
        let m = read_npy(path)?;
        return Ok((0..m.rows).map(|i| plain(m.row(i).to_vec())).collect());
    }
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    let parsed: JsonVectors = serde_json::from_str(&text).map_err(|e| DatasetError::Format {
        path: path.into(),
        detail: format!("expected a vector, a list of vectors or a list of records: {e}"),
    })?;
    Ok(match parsed {
        JsonVectors::One(v) => vec![plain(v)],
        JsonVectors::Many(vs) => vs.into_iter().map(plain).collect(),
        JsonVectors::Records(rs) => rs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_json_forms() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.json");
        std::fs::write(&p, "[1, 2.5]").unwrap();
        assert_eq!(read_vectors(&p).unwrap()[0].vector, vec![1.0, 2.5]);
        std::fs::write(&p, "[[1], [2]]").unwrap();
        assert_eq!(read_vectors(&p).unwrap().len(), 2);
        std::fs::write(&p, r#"[{"subject_id": "a", "vector": [3], "metadata": {"k": "v"}}]"#).unwrap();
        let r = &read_vectors(&p).unwrap()[0];
        assert_eq!(r.subject_id.as_deref(), Some("a"));
        assert_eq!(r.metadata["k"], "v");
        std::fs::write(&p, r#"{"nope": 1}"#).unwrap();
        assert!(read_vectors(&p).unwrap_err().to_string().contains("expected a vector"));
    }
}
