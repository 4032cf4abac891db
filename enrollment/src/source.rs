//! Readers for the files a job imports. Each hands out records in a fixed
//! order with deterministic record ids, so that a resumed job, or the same
//! job submitted twice, names every record the same way; a [`Cursor`] says
//! where to start again.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use base64::Engine;
use biomatch_datasets::{Matrix, read_labels, read_npy};
use biomatch_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::{EnrollmentError, JobSpec, SourceFormat};

/// One record read from a source.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    /// Zero-based position in the source.
    pub index: u64,
    /// Record id: given by the source or derived from its position or file name.
    pub record_id: String,
    /// Subject.
    pub subject_id: String,
    /// The template, as a client would send it.
    pub template: pb::Template,
    /// Client metadata.
    pub metadata: BTreeMap<String, String>,
}

/// A record the source could not even parse.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceFailure {
    /// Zero-based position in the source.
    pub index: u64,
    /// The record id, when it could be read.
    pub record_id: String,
    /// What was wrong, with the line or file.
    pub message: String,
}

/// A parsed record or why it could not be parsed.
pub type SourceItem = Result<SourceRecord, SourceFailure>;

/// Where a source stands: the index of the next record and, for line-based
/// sources, the byte offset of its line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Records handed out so far.
    pub index: u64,
    /// Byte offset of the next line (NDJSON only).
    pub offset: u64,
}

/// A source of records in a fixed order.
pub trait RecordSource: Send {
    /// Number of records in the whole source, when known up front.
    fn total(&self) -> Option<u64>;
    /// Up to `max` next records; empty at the end.
    fn next_batch(&mut self, max: usize) -> Result<Vec<SourceItem>, EnrollmentError>;
    /// Where the next batch starts.
    fn cursor(&self) -> Cursor;
}

/// Opens the source a validated spec names, positioned at `at`.
pub fn open(spec: &JobSpec, at: Cursor) -> Result<Box<dyn RecordSource>, EnrollmentError> {
    let stem_prefix = || {
        let stem = spec.source.file_stem().and_then(|s| s.to_str()).unwrap_or("record");
        format!("{stem}-")
    };
    Ok(match spec.source_format() {
        SourceFormat::Ndjson => Box::new(NdjsonSource::open(
            &spec.source,
            spec.id_prefix.clone().unwrap_or_else(stem_prefix),
            at,
        )?),
        SourceFormat::Npy => Box::new(NpySource::open(
            spec,
            spec.id_prefix.clone().unwrap_or_else(stem_prefix),
            at,
        )?),
        f @ (SourceFormat::IsoDir | SourceFormat::IrisDir) => Box::new(DirSource::open(
            &spec.source,
            f == SourceFormat::IrisDir,
            spec.id_prefix.clone().unwrap_or_default(),
            at,
        )?),
    })
}

/// The modality named in a record, case-insensitively.
fn modality(name: &str) -> Option<pb::Modality> {
    match name.to_ascii_lowercase().as_str() {
        "face" => Some(pb::Modality::Face),
        "voice" => Some(pb::Modality::Voice),
        "iris" => Some(pb::Modality::Iris),
        "fingerprint" => Some(pb::Modality::Fingerprint),
        _ => None,
    }
}

/// The subject a file named `SUBJECT_SAMPLE` belongs to.
fn subject_of_stem(stem: &str) -> &str {
    stem.split('_').next().unwrap_or(stem)
}

/// One line of an NDJSON source. Exactly one of `embedding`, `open_iris`
/// and `iso_19794_2` (base64) carries the template, matching `modality`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonRecord {
    /// Record id; `PREFIX<index>` when absent.
    #[serde(default)]
    pub record_id: Option<String>,
    /// Subject (required).
    pub subject_id: String,
    /// face, voice, iris or fingerprint.
    pub modality: String,
    /// FACE/VOICE values.
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
    /// IRIS: an open-iris template object.
    #[serde(default)]
    pub open_iris: Option<serde_json::Value>,
    /// FINGERPRINT: an ISO/IEC 19794-2 record, base64.
    #[serde(default)]
    pub iso_19794_2: Option<String>,
    /// Sample quality 0..100.
    #[serde(default)]
    pub quality: f32,
    /// Client metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl NdjsonRecord {
    fn template(&self) -> Result<pb::Template, String> {
        let m = modality(&self.modality)
            .ok_or_else(|| format!("modality {:?} is not face, voice, iris or fingerprint", self.modality))?;
        let kind = match (m, &self.embedding, &self.open_iris, &self.iso_19794_2) {
            (pb::Modality::Face | pb::Modality::Voice, Some(v), None, None) => {
                return Ok(pb::Template {
                    quality: self.quality,
                    ..pb::Template::embedding(m, v)
                });
            }
            (pb::Modality::Iris, None, Some(o), None) => pb::template::Kind::Iris(pb::IrisTemplate {
                form: Some(pb::iris_template::Form::OpenIrisJson(o.to_string())),
            }),
            (pb::Modality::Fingerprint, None, None, Some(b)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| format!("iso_19794_2 is not base64: {e}"))?;
                pb::template::Kind::Fingerprint(pb::FingerprintTemplate { iso_19794_2: bytes })
            }
            _ => {
                return Err(format!(
                    "a {} record carries exactly one of {}",
                    self.modality,
                    match m {
                        pb::Modality::Iris => "open_iris",
                        pb::Modality::Fingerprint => "iso_19794_2",
                        _ => "embedding",
                    }
                ));
            }
        };
        Ok(pb::Template {
            modality: m as i32,
            kind: Some(kind),
            quality: self.quality,
        })
    }
}

/// Newline-delimited JSON records.
pub struct NdjsonSource {
    path: PathBuf,
    reader: BufReader<File>,
    prefix: String,
    cursor: Cursor,
    total: u64,
    line: String,
}

impl NdjsonSource {
    /// Opens `path` at `at`; counts its records first so progress has a total.
    pub fn open(path: &Path, prefix: String, at: Cursor) -> Result<NdjsonSource, EnrollmentError> {
        let mut total = 0u64;
        {
            let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(EnrollmentError::io(path))?);
            let mut line = Vec::new();
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).map_err(EnrollmentError::io(path))? == 0 {
                    break;
                }
                if !line.trim_ascii().is_empty() {
                    total += 1;
                }
            }
        }
        let mut file = File::open(path).map_err(EnrollmentError::io(path))?;
        file.seek(SeekFrom::Start(at.offset))
            .map_err(EnrollmentError::io(path))?;
        Ok(NdjsonSource {
            path: path.into(),
            reader: BufReader::with_capacity(1 << 20, file),
            prefix,
            cursor: at,
            total,
            line: String::new(),
        })
    }
}

/// One NDJSON line as a record, or why it is not one.
fn parse_line(prefix: &str, line_at: u64, index: u64, text: &str) -> SourceItem {
    let fallback_id = format!("{prefix}{index}");
    match serde_json::from_str::<NdjsonRecord>(text) {
        Ok(r) => {
            let record_id = r.record_id.clone().unwrap_or(fallback_id);
            match r.template() {
                Ok(template) => Ok(SourceRecord {
                    index,
                    record_id,
                    subject_id: r.subject_id,
                    template,
                    metadata: r.metadata,
                }),
                Err(message) => Err(SourceFailure {
                    index,
                    record_id,
                    message: format!("record at byte {line_at}: {message}"),
                }),
            }
        }
        Err(e) => Err(SourceFailure {
            index,
            record_id: fallback_id,
            message: format!("record at byte {line_at}: not a valid record: {e}"),
        }),
    }
}

impl RecordSource for NdjsonSource {
    fn total(&self) -> Option<u64> {
        Some(self.total)
    }

    fn next_batch(&mut self, max: usize) -> Result<Vec<SourceItem>, EnrollmentError> {
        // Read the batch's lines in order, then parse them in parallel:
        // JSON float parsing is most of an embedding import's CPU time.
        let mut lines: Vec<(u64, u64, String)> = Vec::new();
        while lines.len() < max {
            self.line.clear();
            let n = self
                .reader
                .read_line(&mut self.line)
                .map_err(EnrollmentError::io(&self.path))?;
            if n == 0 {
                break;
            }
            let line_at = self.cursor.offset;
            self.cursor.offset += n as u64;
            if self.line.trim().is_empty() {
                continue;
            }
            lines.push((line_at, self.cursor.index, std::mem::take(&mut self.line)));
            self.cursor.index += 1;
        }
        use rayon::prelude::*;
        let prefix = &self.prefix;
        Ok(lines
            .into_par_iter()
            .map(|(line_at, index, text)| parse_line(prefix, line_at, index, text.trim()))
            .collect())
    }

    fn cursor(&self) -> Cursor {
        self.cursor
    }
}

/// Rows of a `.npy` matrix labelled by a subjects file.
pub struct NpySource {
    matrix: Matrix,
    labels: Vec<String>,
    modality: pb::Modality,
    prefix: String,
    cursor: Cursor,
}

impl NpySource {
    /// Opens the spec's matrix and labels at `at`.
    pub fn open(spec: &JobSpec, prefix: String, at: Cursor) -> Result<NpySource, EnrollmentError> {
        let matrix = read_npy(&spec.source)?;
        let labels_path = spec
            .labels
            .as_ref()
            .ok_or_else(|| EnrollmentError::InvalidSpec("npy sources need a labels file".into()))?;
        let labels = read_labels(labels_path)?;
        if labels.len() != matrix.rows {
            return Err(EnrollmentError::Format {
                path: labels_path.clone(),
                detail: format!(
                    "{} labels for {} rows of {}",
                    labels.len(),
                    matrix.rows,
                    spec.source.display()
                ),
            });
        }
        let modality = spec
            .modality
            .as_deref()
            .and_then(modality)
            .unwrap_or(pb::Modality::Face);
        Ok(NpySource {
            matrix,
            labels,
            modality,
            prefix,
            cursor: at,
        })
    }
}

impl RecordSource for NpySource {
    fn total(&self) -> Option<u64> {
        Some(self.matrix.rows as u64)
    }

    fn next_batch(&mut self, max: usize) -> Result<Vec<SourceItem>, EnrollmentError> {
        let start = (self.cursor.index as usize).min(self.matrix.rows);
        let end = (start + max).min(self.matrix.rows);
        self.cursor.index = end as u64;
        Ok((start..end)
            .map(|i| {
                Ok(SourceRecord {
                    index: i as u64,
                    record_id: format!("{}{i}", self.prefix),
                    subject_id: self.labels[i].clone(),
                    template: pb::Template::embedding(self.modality, self.matrix.row(i)),
                    metadata: BTreeMap::new(),
                })
            })
            .collect())
    }

    fn cursor(&self) -> Cursor {
        self.cursor
    }
}

/// A folder of template files, one per record, read in file-name order.
pub struct DirSource {
    files: Vec<PathBuf>,
    iris: bool,
    prefix: String,
    cursor: Cursor,
}

impl DirSource {
    /// Lists `dir` (regular files, sorted by name) and starts at `at`.
    pub fn open(dir: &Path, iris: bool, prefix: String, at: Cursor) -> Result<DirSource, EnrollmentError> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(EnrollmentError::io(dir))? {
            let path = entry.map_err(EnrollmentError::io(dir))?.path();
            if path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Ok(DirSource {
            files,
            iris,
            prefix,
            cursor: at,
        })
    }

    fn read(&self, index: u64, path: &Path) -> SourceItem {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let fail = |message: String| SourceFailure {
            index,
            record_id: format!("{}{stem}", self.prefix),
            message: format!("{}: {message}", path.display()),
        };
        if stem.is_empty() {
            return Err(fail("file name is not UTF-8".into()));
        }
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let mut subject = subject_of_stem(&stem).to_string();
        let kind = if self.iris {
            let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 JSON".into()))?;
            if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(s) = o.get("subject_id").and_then(|v| v.as_str())
            {
                subject = s.to_string();
            }
            pb::template::Kind::Iris(pb::IrisTemplate {
                form: Some(pb::iris_template::Form::OpenIrisJson(text)),
            })
        } else {
            pb::template::Kind::Fingerprint(pb::FingerprintTemplate { iso_19794_2: bytes })
        };
        let modality = if self.iris {
            pb::Modality::Iris
        } else {
            pb::Modality::Fingerprint
        };
        Ok(SourceRecord {
            index,
            record_id: format!("{}{stem}", self.prefix),
            subject_id: subject,
            template: pb::Template {
                modality: modality as i32,
                kind: Some(kind),
                quality: 0.0,
            },
            metadata: BTreeMap::new(),
        })
    }
}

impl RecordSource for DirSource {
    fn total(&self) -> Option<u64> {
        Some(self.files.len() as u64)
    }

    fn next_batch(&mut self, max: usize) -> Result<Vec<SourceItem>, EnrollmentError> {
        let start = (self.cursor.index as usize).min(self.files.len());
        let end = (start + max).min(self.files.len());
        self.cursor.index = end as u64;
        Ok((start..end).map(|i| self.read(i as u64, &self.files[i])).collect())
    }

    fn cursor(&self) -> Cursor {
        self.cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndjson(dir: &Path, lines: &[&str]) -> PathBuf {
        let p = dir.join("people.ndjson");
        std::fs::write(&p, lines.join("\n")).unwrap();
        p
    }

    #[test]
    fn ndjson_resumes_at_the_cursor_with_the_same_ids() {
        let dir = tempfile::tempdir().unwrap();
        let p = ndjson(
            dir.path(),
            &[
                r#"{"subject_id":"a","modality":"face","embedding":[1,0]}"#,
                "",
                r#"{"subject_id":"b","modality":"voice","embedding":[0,1],"record_id":"rb"}"#,
                r#"{"subject_id":"c","modality":"face"}"#,
                r#"not json"#,
            ],
        );
        let mut s = NdjsonSource::open(&p, "people-".into(), Cursor::default()).unwrap();
        assert_eq!(s.total(), Some(4));
        let first = s.next_batch(2).unwrap();
        assert_eq!(first[0].as_ref().unwrap().record_id, "people-0");
        assert_eq!(first[1].as_ref().unwrap().record_id, "rb");
        let at = s.cursor();
        assert_eq!(at.index, 2);
        let rest = s.next_batch(10).unwrap();
        let mut again = NdjsonSource::open(&p, "people-".into(), at).unwrap();
        assert_eq!(rest, again.next_batch(10).unwrap());
        let e = rest[0].as_ref().unwrap_err();
        assert_eq!(e.record_id, "people-2");
        assert!(e.message.contains("exactly one of embedding"), "{}", e.message);
        assert!(rest[1].as_ref().unwrap_err().message.contains("not a valid record"));
        assert!(s.next_batch(10).unwrap().is_empty());
    }

    #[test]
    fn folders_name_subjects_by_file_stem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("101_2.ist"), b"iso").unwrap();
        std::fs::write(dir.path().join("101_1.ist"), b"iso").unwrap();
        let mut s = DirSource::open(dir.path(), false, String::new(), Cursor { index: 1, offset: 0 }).unwrap();
        let b = s.next_batch(5).unwrap();
        let r = b[0].as_ref().unwrap();
        assert_eq!(
            (r.record_id.as_str(), r.subject_id.as_str(), r.index),
            ("101_2", "101", 1)
        );
    }
}
