//! Vectors to enroll, search or evaluate, from the files users bring:
//! `.npy`, `.fvecs`/`.bvecs`, CSV with label columns, raw little-endian f32
//! (`--dim` given), and JSON.
//!
//! JSON forms accepted: one vector `[0.1, ...]`; a list of vectors
//! `[[...], [...]]`; a list of records
//! `[{"subject_id": "...", "record_id": "...", "vector": [...], "metadata": {...}}]`;
//! or JSON lines, one vector or record per line.
//!
//! Formats without labels (`.npy`, `*vecs`, raw) take them from a labels
//! file: one subject per line, line `i` labelling vector `i`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{CsvColumns, DatasetError, Matrix, VecsKind, read_csv_vectors, read_npy, read_vecs};

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

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonLine {
    Plain(Vec<f32>),
    Record(VectorRecord),
}

/// How to read files whose format does not say everything.
#[derive(Clone, Debug, Default)]
pub struct VectorOptions {
    /// Subject labels, one per line, for formats that carry none.
    pub labels: Option<PathBuf>,
    /// Dimension of a raw little-endian f32 file (any extension not
    /// otherwise known, such as `.bytes` or `.f32`).
    pub dim: Option<usize>,
    /// Label columns of a CSV file.
    pub csv: CsvColumns,
}

/// Reads vectors, choosing the format by extension (`.npy`, `.fvecs`,
/// `.bvecs`, `.csv`, otherwise JSON or JSON lines).
pub fn read_vectors(path: &Path) -> Result<Vec<VectorRecord>, DatasetError> {
    read_vectors_with(path, &VectorOptions::default())
}

/// [`read_vectors`] with labels, a raw dimension or CSV columns.
pub fn read_vectors_with(path: &Path, opts: &VectorOptions) -> Result<Vec<VectorRecord>, DatasetError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let mut records = if ext == "npy" {
        from_matrix(read_npy(path)?)
    } else if let Some(kind @ (VecsKind::F32 | VecsKind::U8)) = VecsKind::from_path(path) {
        from_matrix(read_vecs(path, kind)?)
    } else if ext == "csv" {
        read_csv_vectors(path, &opts.csv)?
    } else if let Some(dim) = opts.dim {
        from_matrix(read_raw_f32(path, dim)?)
    } else {
        read_json_vectors(path)?
    };
    if let Some(labels) = &opts.labels {
        let subjects = read_labels(labels)?;
        if subjects.len() != records.len() {
            return Err(DatasetError::Format {
                path: labels.clone(),
                detail: format!("{} labels for {} vectors", subjects.len(), records.len()),
            });
        }
        for (r, s) in records.iter_mut().zip(subjects) {
            r.subject_id = Some(s);
        }
    }
    Ok(records)
}

fn from_matrix(m: Matrix) -> Vec<VectorRecord> {
    (0..m.rows)
        .map(|i| VectorRecord {
            vector: m.row(i).to_vec(),
            ..Default::default()
        })
        .collect()
}

/// Reads a headerless file of little-endian f32, `dim` per vector.
pub fn read_raw_f32(path: &Path, dim: usize) -> Result<Matrix, DatasetError> {
    let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    if dim == 0 || bytes.is_empty() || !bytes.len().is_multiple_of(dim * 4) {
        return Err(DatasetError::Format {
            path: path.into(),
            detail: format!(
                "{} bytes is not a whole, non-zero number of {dim}-float vectors",
                bytes.len()
            ),
        });
    }
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok(Matrix {
        rows: data.len() / dim,
        cols: dim,
        data,
    })
}

/// One label per non-empty line (trailing whitespace trimmed).
pub fn read_labels(path: &Path) -> Result<Vec<String>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

fn read_json_vectors(path: &Path) -> Result<Vec<VectorRecord>, DatasetError> {
    let plain = |v: Vec<f32>| VectorRecord {
        vector: v,
        ..Default::default()
    };
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    if let Ok(parsed) = serde_json::from_str::<JsonVectors>(&text) {
        return Ok(match parsed {
            JsonVectors::One(v) => vec![plain(v)],
            JsonVectors::Many(vs) => vs.into_iter().map(plain).collect(),
            JsonVectors::Records(rs) => rs,
        });
    }
    json_lines(&text)
        .map(|(n, line)| {
            let parsed: JsonLine = serde_json::from_str(line).map_err(|e| DatasetError::Format {
                path: path.into(),
                detail: format!(
                    "line {n}: expected a vector, a list of vectors, a list of records or JSON lines of them: {e}"
                ),
            })?;
            Ok(match parsed {
                JsonLine::Plain(v) => plain(v),
                JsonLine::Record(r) => r,
            })
        })
        .collect()
}

fn json_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
}

/// JSON objects from a file holding one object, a list of them, or one per
/// line (JSON lines): how open-iris templates travel.
pub fn read_json_objects(path: &Path) -> Result<Vec<serde_json::Value>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    let not_object = |n: usize| DatasetError::Format {
        path: path.into(),
        detail: format!("line {n}: expected a JSON object"),
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(items)) if items.iter().all(|v| v.is_object()) => return Ok(items),
        Ok(serde_json::Value::Array(_)) => return Err(not_object(1)),
        Ok(obj @ serde_json::Value::Object(_)) => return Ok(vec![obj]),
        _ => {}
    }
    json_lines(&text)
        .map(|(n, line)| match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err(not_object(n)),
            Err(e) => Err(DatasetError::Format {
                path: path.into(),
                detail: format!("line {n}: not JSON: {e}"),
            }),
        })
        .collect()
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
        std::fs::write(&p, "[1, 2]\n{\"subject_id\": \"b\", \"vector\": [3, 4]}\n").unwrap();
        let lines = read_vectors(&p).unwrap();
        assert_eq!(lines[1].subject_id.as_deref(), Some("b"));
        assert_eq!(lines[0].vector, vec![1.0, 2.0]);
    }

    #[test]
    fn raw_f32_with_a_labels_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.bytes");
        let raw: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&p, &raw).unwrap();
        let labels = dir.path().join("l.tsv");
        std::fs::write(&labels, "Ann Lee\nBo\n").unwrap();
        let opts = VectorOptions {
            labels: Some(labels.clone()),
            dim: Some(2),
            ..Default::default()
        };
        let got = read_vectors_with(&p, &opts).unwrap();
        assert_eq!(got[1].vector, vec![3.0, 4.0]);
        assert_eq!(got[0].subject_id.as_deref(), Some("Ann Lee"));
        let three = VectorOptions {
            dim: Some(3),
            ..opts.clone()
        };
        assert!(read_vectors_with(&p, &three).unwrap_err().to_string().contains("whole"));
        std::fs::write(&labels, "one\n").unwrap();
        assert!(
            read_vectors_with(&p, &opts)
                .unwrap_err()
                .to_string()
                .contains("1 labels for 2")
        );
    }

    #[test]
    fn json_objects_in_three_forms() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        for (text, n) in [
            (r#"{"a": 1}"#, 1),
            (r#"[{"a": 1}, {"b": 2}]"#, 2),
            ("{\"a\": 1}\n\n{\"b\": 2}\n", 2),
        ] {
            std::fs::write(&p, text).unwrap();
            assert_eq!(read_json_objects(&p).unwrap().len(), n);
        }
        std::fs::write(&p, "{\"a\": 1}\n[1]\n").unwrap();
        assert!(read_json_objects(&p).unwrap_err().to_string().contains("line 2"));
    }
}
