//! What a job imports and how: the specification a client submits, kept in
//! the job's checkpoint so that a resumed job runs with the same settings.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::EnrollmentError;

/// Records per durable batch unless the client asks otherwise.
pub const DEFAULT_BATCH: usize = 1024;
/// Largest batch a job may ask for.
pub const MAX_BATCH: usize = 65_536;

/// How the source is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// One JSON record per line (see [`crate::source::NdjsonRecord`]).
    Ndjson,
    /// A 2-D float32/float64 `.npy` matrix plus a labels file (one subject per line).
    Npy,
    /// A folder of ISO/IEC 19794-2 records named `SUBJECT_IMPRESSION.*`.
    IsoDir,
    /// A folder of open-iris template JSON files named `SUBJECT_SAMPLE.json`.
    IrisDir,
}

impl SourceFormat {
    /// The format a path implies: `.ndjson`/`.jsonl`, `.npy`; folders need
    /// the format named because ISO and iris folders look alike.
    pub fn infer(path: &Path) -> Option<SourceFormat> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl") => Some(SourceFormat::Ndjson),
            Some("npy") => Some(SourceFormat::Npy),
            _ => None,
        }
    }

    /// The name used in specs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Ndjson => "ndjson",
            SourceFormat::Npy => "npy",
            SourceFormat::IsoDir => "iso_dir",
            SourceFormat::IrisDir => "iris_dir",
        }
    }

    /// Parses [`SourceFormat::name`].
    pub fn parse(s: &str) -> Option<SourceFormat> {
        [
            SourceFormat::Ndjson,
            SourceFormat::Npy,
            SourceFormat::IsoDir,
            SourceFormat::IrisDir,
        ]
        .into_iter()
        .find(|f| f.name() == s)
    }
}

/// What to do with a record that looks like another subject's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateAction {
    /// Report it and do not enroll it.
    Skip,
    /// Report it and enroll it anyway.
    Enroll,
}

/// The duplicate check: every record is searched against the gallery before
/// it is enrolled; a candidate of another subject at or above `threshold`
/// makes it a suspected duplicate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DuplicateCheck {
    /// Score at or above which a match to another subject is reported; the
    /// modality's default threshold when absent.
    pub threshold: Option<f32>,
    /// What happens to a suspected duplicate.
    pub action: DuplicateAction,
}

impl DuplicateCheck {
    /// The check a client's flags ask for: none unless `on`.
    pub fn from_flags(on: bool, threshold: Option<f32>, enroll_duplicates: bool) -> Option<DuplicateCheck> {
        on.then_some(DuplicateCheck {
            threshold,
            action: if enroll_duplicates {
                DuplicateAction::Enroll
            } else {
                DuplicateAction::Skip
            },
        })
    }
}

/// Minimum sample quality for a record to be enrolled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityGate {
    /// Refuse templates whose reported quality (0..100) is below this; 0
    /// (the default) accepts all, and an unreported quality (0) always passes.
    pub min_quality: f32,
    /// Refuse fingerprint views with fewer minutiae than this.
    pub min_minutiae: u32,
    /// Refuse iris templates whose mask leaves less than this fraction of
    /// bits valid.
    pub min_iris_valid_fraction: f32,
}

/// A batch enrollment job as submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The file or folder to import, as the server sees it.
    pub source: PathBuf,
    /// Its format; inferred from the extension when absent.
    pub format: Option<SourceFormat>,
    /// FACE or VOICE for `.npy` sources (NDJSON records name their own).
    pub modality: Option<String>,
    /// Labels for `.npy` sources: one subject per line.
    pub labels: Option<PathBuf>,
    /// Prepended to record ids the source does not give (`.npy` rows are
    /// `PREFIX<row>`, folder files `PREFIX<stem>`); by default the source's
    /// file stem and a dash for `.npy`, nothing for folders.
    pub id_prefix: Option<String>,
    /// Records per durable batch (one fsync each).
    pub batch_size: usize,
    /// Quality gate.
    pub quality: QualityGate,
    /// Duplicate check, off when absent.
    pub dedup: Option<DuplicateCheck>,
}

impl JobSpec {
    /// A spec importing `source` with the defaults.
    pub fn new(source: impl Into<PathBuf>) -> JobSpec {
        JobSpec {
            source: source.into(),
            format: None,
            modality: None,
            labels: None,
            id_prefix: None,
            batch_size: DEFAULT_BATCH,
            quality: QualityGate::default(),
            dedup: None,
        }
    }

    /// Checks the options and fills in the format; fails with a message
    /// that names the option at fault.
    pub fn validated(mut self) -> Result<JobSpec, EnrollmentError> {
        let bad = |m: String| Err(EnrollmentError::InvalidSpec(m));
        if self.source.as_os_str().is_empty() {
            return bad("source is required".into());
        }
        if !self.source.exists() {
            return bad(format!("source {} does not exist", self.source.display()));
        }
        let format = match self.format.or_else(|| SourceFormat::infer(&self.source)) {
            Some(f) => f,
            None => {
                return bad(format!(
                    "cannot tell the format of {}; name one of ndjson, npy, iso_dir, iris_dir",
                    self.source.display()
                ));
            }
        };
        let is_dir = self.source.is_dir();
        let wants_dir = matches!(format, SourceFormat::IsoDir | SourceFormat::IrisDir);
        if is_dir != wants_dir {
            return bad(format!(
                "format {} needs a {}, and {} is not one",
                format.name(),
                if wants_dir { "folder" } else { "file" },
                self.source.display()
            ));
        }
        self.format = Some(format);
        if format == SourceFormat::Npy {
            match self.modality.as_deref() {
                Some("face" | "voice") => {}
                Some(m) => return bad(format!("modality {m:?} cannot come from .npy; use face or voice")),
                None => return bad("npy sources need a modality (face or voice)".into()),
            }
            match &self.labels {
                Some(l) if l.is_file() => {}
                Some(l) => return bad(format!("labels file {} does not exist", l.display())),
                None => return bad("npy sources need a labels file (one subject per line)".into()),
            }
        } else if self.modality.is_some() || self.labels.is_some() {
            return bad(format!(
                "modality and labels apply to npy sources only; {} records say their own",
                format.name()
            ));
        }
        self.batch_size = check_handling(self.batch_size, &self.quality, self.dedup.as_ref())?;
        Ok(self)
    }

    /// The format, once [`JobSpec::validated`] has filled it in.
    pub fn source_format(&self) -> SourceFormat {
        self.format.unwrap_or(SourceFormat::Ndjson)
    }
}

/// Checks how records are to be handled, for file jobs and streamed imports
/// alike: the batch size (0 means [`DEFAULT_BATCH`]; returns the size to
/// use), the quality gate's ranges and the duplicate threshold.
pub fn check_handling(
    batch_size: usize,
    quality: &QualityGate,
    dedup: Option<&DuplicateCheck>,
) -> Result<usize, EnrollmentError> {
    let bad = |m: String| Err(EnrollmentError::InvalidSpec(m));
    let batch_size = if batch_size == 0 { DEFAULT_BATCH } else { batch_size };
    if batch_size > MAX_BATCH {
        return bad(format!("batch_size {batch_size} is above {MAX_BATCH}"));
    }
    if !(0.0..=100.0).contains(&quality.min_quality) {
        return bad(format!("min_quality {} is outside 0..100", quality.min_quality));
    }
    if !(0.0..=1.0).contains(&quality.min_iris_valid_fraction) {
        return bad(format!(
            "min_iris_valid_fraction {} is outside 0..1",
            quality.min_iris_valid_fraction
        ));
    }
    if let Some(t) = dedup.and_then(|d| d.threshold)
        && !t.is_finite()
    {
        return bad(format!("duplicate threshold {t} is not a finite number"));
    }
    Ok(batch_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_option_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("g.npy");
        std::fs::write(&npy, b"x").unwrap();
        let err = |s: JobSpec| s.validated().unwrap_err().to_string();
        assert!(err(JobSpec::new(dir.path().join("missing.ndjson"))).contains("does not exist"));
        assert!(err(JobSpec::new(&npy)).contains("modality"));
        let mut s = JobSpec::new(&npy);
        s.modality = Some("face".into());
        assert!(err(s.clone()).contains("labels"));
        s.modality = Some("iris".into());
        assert!(err(s).contains("iris"));
        assert!(err(JobSpec::new(dir.path())).contains("cannot tell the format"));
        let mut s = JobSpec::new(dir.path());
        s.format = Some(SourceFormat::Ndjson);
        assert!(err(s).contains("needs a file"));
        let mut s = JobSpec::new(dir.path());
        s.format = Some(SourceFormat::IsoDir);
        s.batch_size = MAX_BATCH + 1;
        assert!(err(s).contains("batch_size"));
    }

    #[test]
    fn format_names_round_trip() {
        for f in ["ndjson", "npy", "iso_dir", "iris_dir"] {
            assert_eq!(SourceFormat::parse(f).unwrap().name(), f);
        }
        assert_eq!(SourceFormat::infer(Path::new("a.jsonl")), Some(SourceFormat::Ndjson));
    }
}
