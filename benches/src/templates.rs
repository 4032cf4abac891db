//! Labelled template sets for the accuracy bench: read from the files users
//! bring or made by the seeded generators, and scored by the same matchers
//! the server uses, on the score scale the server reports (higher is more
//! alike).

use std::path::{Path, PathBuf};

use biomatch_datasets::{
    CsvColumns, ImpressionNoise, SyntheticEmbeddings, SyntheticFingerprints, SyntheticIris, VectorOptions,
    read_dir_files, read_json_objects, read_vectors_with,
};
use biomatch_kernels::Kernels;
use biomatch_matcher::fingerprint::geometry::Point;
use biomatch_matcher::fingerprint::{FingerTemplate, FingerprintMatcher};
use biomatch_matcher::{IrisMatchConfig, IrisMatcher, IrisTemplate};
use clap::{Args, ValueEnum};

use crate::BenchError;

/// Modalities the accuracy bench evaluates.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchModality {
    /// Face embeddings (cosine).
    Face,
    /// Voice embeddings (cosine).
    Voice,
    /// open-iris iris codes (1 - fractional Hamming distance, 31 rotations).
    Iris,
    /// ISO/IEC 19794-2 minutiae (MCC score).
    Fingerprint,
}

impl BenchModality {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            BenchModality::Face => "face",
            BenchModality::Voice => "voice",
            BenchModality::Iris => "iris",
            BenchModality::Fingerprint => "fingerprint",
        }
    }
}

/// Where the templates come from.
#[derive(Args, Debug, Clone)]
pub struct SetArgs {
    /// Modality of the templates.
    #[arg(long, value_enum)]
    pub modality: Option<BenchModality>,
    /// Templates: FACE/VOICE .npy, .fvecs, .bvecs, .csv (label columns by
    /// name), JSON / JSON lines records, or raw little-endian f32 with
    /// --dim; IRIS open-iris template JSON (object, list or lines) with
    /// "subject_id"; FINGERPRINT a directory of ISO/IEC 19794-2 records
    /// named SUBJECT_IMPRESSION.
    #[arg(long, conflicts_with = "synthetic")]
    pub input: Option<PathBuf>,
    /// Subject labels, one per line, for inputs that carry none.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Dimension of a raw f32 input; also the synthetic embedding dimension.
    #[arg(long)]
    pub dim: Option<usize>,
    /// CSV column holding the subject.
    #[arg(long)]
    pub subject_column: Option<String>,
    /// CSV column holding the record id.
    #[arg(long)]
    pub record_column: Option<String>,
    /// Generate the templates instead (seeded, see --subjects, --samples).
    #[arg(long)]
    pub synthetic: bool,
    /// Synthetic: subjects.
    #[arg(long, default_value_t = 200)]
    pub subjects: usize,
    /// Synthetic: samples per subject.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Synthetic embeddings: noise norm relative to the identity direction
    /// (0.5 separates well, 1.0 poorly).
    #[arg(long, default_value_t = 0.9)]
    pub noise: f32,
    /// Seed of the generator and of impostor sampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The templates of one set, prepared for scoring.
pub enum Templates {
    /// Unit-normalised embeddings, row-major.
    Embedding {
        /// Dimension.
        dim: usize,
        /// `len * dim` values.
        data: Vec<f32>,
        /// The dot-product kernels.
        kernels: Kernels,
    },
    /// Iris codes with the open-iris default matcher.
    Iris(IrisMatcher, Vec<IrisTemplate>),
    /// Prepared fingerprint cylinders.
    Fingerprint(FingerprintMatcher, Vec<FingerTemplate>),
}

/// A labelled set.
pub struct LabelledSet {
    /// What it is, for the report (a path or a generator description).
    pub source: String,
    /// Modality.
    pub modality: BenchModality,
    /// Subject of each template.
    pub subjects: Vec<String>,
    /// Id of each template.
    pub ids: Vec<String>,
    /// The templates.
    pub templates: Templates,
}

impl LabelledSet {
    /// Number of templates.
    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// Similarity of templates `i` and `j` on the server's scale.
    pub fn score(&self, i: usize, j: usize) -> f64 {
        match &self.templates {
            Templates::Embedding { dim, data, kernels } => {
                f64::from(kernels.dot(&data[i * dim..(i + 1) * dim], &data[j * dim..(j + 1) * dim]))
            }
            Templates::Iris(m, t) => f64::from(m.compare(&t[i], &t[j]).similarity()),
            Templates::Fingerprint(m, t) => f64::from(m.score(&t[i], &t[j])),
        }
    }

    /// Loads or generates the set `a` describes.
    pub fn load(a: &SetArgs) -> Result<LabelledSet, BenchError> {
        let modality = a
            .modality
            .ok_or_else(|| BenchError::Usage("--modality is required with --input or --synthetic".into()))?;
        let set = match (&a.input, a.synthetic) {
            (Some(path), false) => from_files(modality, path, a)?,
            (None, true) => synthetic(modality, a)?,
            _ => return Err(BenchError::Usage("give --input FILE or --synthetic".into())),
        };
        if set.len() < 2 {
            return Err(BenchError::Usage(format!(
                "{} holds {} template(s); need at least 2",
                set.source,
                set.len()
            )));
        }
        Ok(set)
    }
}

fn embeddings(rows: Vec<Vec<f32>>, source: &str) -> Result<Templates, BenchError> {
    let dim = rows.first().map_or(0, Vec::len);
    if dim == 0 {
        return Err(BenchError::Input(format!("{source}: empty vectors")));
    }
    let mut data = Vec::with_capacity(rows.len() * dim);
    for (i, r) in rows.into_iter().enumerate() {
        if r.len() != dim {
            return Err(BenchError::Input(format!(
                "{source}: vector {i} has {} values, the first has {dim}",
                r.len()
            )));
        }
        let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(BenchError::Input(format!(
                "{source}: vector {i} has norm {norm}; cannot take a cosine"
            )));
        }
        data.extend(r.into_iter().map(|x| x / norm));
    }
    Ok(Templates::Embedding {
        dim,
        data,
        kernels: Kernels::active(),
    })
}

fn from_files(modality: BenchModality, path: &Path, a: &SetArgs) -> Result<LabelledSet, BenchError> {
    if modality == BenchModality::Iris || modality == BenchModality::Fingerprint {
        for flag in [("--labels", a.labels.is_some()), ("--dim", a.dim.is_some())] {
            if flag.1 {
                return Err(BenchError::Usage(format!(
                    "{} does not apply to {}",
                    flag.0,
                    modality.name()
                )));
            }
        }
    }
    let source = path.display().to_string();
    let unlabelled = |i: usize| {
        BenchError::Input(format!(
            "{source}: template {i} names no subject (give --labels, a subject column or \"subject_id\")"
        ))
    };
    let (subjects, ids, templates) = match modality {
        BenchModality::Face | BenchModality::Voice => {
            let opts = VectorOptions {
                labels: a.labels.clone(),
                dim: a.dim,
                csv: CsvColumns {
                    subject: a.subject_column.clone(),
                    record: a.record_column.clone(),
                },
            };
            let records = read_vectors_with(path, &opts)?;
            let mut subjects = Vec::with_capacity(records.len());
            let mut ids = Vec::with_capacity(records.len());
            let mut rows = Vec::with_capacity(records.len());
            for (i, r) in records.into_iter().enumerate() {
                subjects.push(r.subject_id.ok_or_else(|| unlabelled(i))?);
                ids.push(r.record_id.unwrap_or_else(|| i.to_string()));
                rows.push(r.vector);
            }
            (subjects, ids, embeddings(rows, &source)?)
        }
        BenchModality::Iris => {
            let mut subjects = Vec::new();
            let mut ids = Vec::new();
            let mut t = Vec::new();
            for (i, o) in read_json_objects(path)?.into_iter().enumerate() {
                let label = |k: &str| o.get(k).and_then(|v| v.as_str()).map(String::from);
                subjects.push(label("subject_id").ok_or_else(|| unlabelled(i))?);
                ids.push(label("record_id").unwrap_or_else(|| i.to_string()));
                t.push(
                    IrisTemplate::from_open_iris_json(&o.to_string())
                        .map_err(|e| BenchError::Input(format!("{source}: template {i}: {e}")))?,
                );
            }
            (
                subjects,
                ids,
                Templates::Iris(IrisMatcher::new(IrisMatchConfig::default())?, t),
            )
        }
        BenchModality::Fingerprint => {
            if !path.is_dir() {
                return Err(BenchError::Input(format!(
                    "{source}: fingerprint input is a directory of ISO/IEC 19794-2 records named SUBJECT_IMPRESSION"
                )));
            }
            let mut subjects = Vec::new();
            let mut ids = Vec::new();
            let mut t = Vec::new();
            for (stem, bytes) in read_dir_files(path)? {
                let template =
                    FingerTemplate::from_iso(&bytes).map_err(|e| BenchError::Input(format!("{source}/{stem}: {e}")))?;
                subjects.push(stem.split('_').next().unwrap_or(&stem).to_string());
                ids.push(stem);
                t.push(template);
            }
            (subjects, ids, Templates::Fingerprint(FingerprintMatcher::default(), t))
        }
    };
    Ok(LabelledSet {
        source,
        modality,
        subjects,
        ids,
        templates,
    })
}

fn synthetic(modality: BenchModality, a: &SetArgs) -> Result<LabelledSet, BenchError> {
    if a.subjects < 2 || a.samples < 1 {
        return Err(BenchError::Usage(
            "synthetic sets need --subjects >= 2 and --samples >= 1".into(),
        ));
    }
    let n = a.subjects * a.samples;
    let label = |k: usize| format!("s{:05}", k / a.samples);
    let subjects: Vec<String> = (0..n).map(label).collect();
    let ids: Vec<String> = (0..n).map(|k| format!("{}_{}", label(k), k % a.samples)).collect();
    let (templates, source) = match modality {
        BenchModality::Face | BenchModality::Voice => {
            let dim = a.dim.unwrap_or(if modality == BenchModality::Face { 512 } else { 192 });
            let set = SyntheticEmbeddings {
                dim,
                subjects: a.subjects,
                samples_per_subject: a.samples,
                noise: a.noise,
                seed: a.seed,
            }
            .generate();
            let rows = set.data.chunks(dim).map(<[f32]>::to_vec).collect();
            (
                embeddings(rows, "synthetic")?,
                format!("synthetic embeddings dim {dim} noise {} seed {}", a.noise, a.seed),
            )
        }
        BenchModality::Iris => {
            let (packed, _) = SyntheticIris {
                subjects: a.subjects,
                samples_per_subject: a.samples,
                poor_capture_share: 0.05,
                seed: a.seed,
            }
            .generate();
            let t = packed
                .iter()
                .map(|p| IrisTemplate::from_packed(&p.code, &p.mask, "v2.1"))
                .collect::<Result<Vec<_>, _>>()?;
            (
                Templates::Iris(IrisMatcher::new(IrisMatchConfig::default())?, t),
                format!("synthetic iris (Daugman statistics, 5% poor captures) seed {}", a.seed),
            )
        }
        BenchModality::Fingerprint => {
            let g = SyntheticFingerprints { seed: a.seed };
            let noise = ImpressionNoise::default();
            let t = (0..n)
                .map(|k| {
                    let points: Vec<Point> = g
                        .impression((k / a.samples) as u64, (k % a.samples) as u64, &noise)
                        .into_iter()
                        .map(|m| Point {
                            x: m.x,
                            y: m.y,
                            theta: m.theta,
                        })
                        .collect();
                    FingerTemplate::from_points(&points)
                })
                .collect();
            (
                Templates::Fingerprint(FingerprintMatcher::default(), t),
                format!(
                    "synthetic minutiae (rotation +-180, distortion, 15% missing, 10% spurious) seed {}",
                    a.seed
                ),
            )
        }
    };
    Ok(LabelledSet {
        source,
        modality,
        subjects,
        ids,
        templates,
    })
}

/// The real fingerprint sets the figure binaries read, as command-line
/// arguments: set folders under a root, each with `templates/` of ISO records.
#[derive(Args, Clone, Debug)]
pub struct FingerprintSets {
    /// Sets (folders under --root, each with templates/).
    #[arg(long, default_value = "fvc2002_db1_b,fvc2002_db2_b")]
    pub sets: String,
    /// Folder holding the sets.
    #[arg(long, default_value = "../shared/datasets/fingerprint")]
    pub root: PathBuf,
}

impl FingerprintSets {
    /// Each set's name and folder.
    pub fn dirs(&self) -> Vec<(String, PathBuf)> {
        self.sets
            .split(',')
            .map(str::trim)
            .map(|s| (s.to_string(), self.root.join(s)))
            .collect()
    }

    /// Every set's ISO records, set by set, as (stem, bytes).
    pub fn records(&self) -> Result<Vec<(String, Vec<u8>)>, BenchError> {
        let mut out = Vec::new();
        for (_, dir) in self.dirs() {
            out.extend(read_dir_files(&dir.join("templates"))?);
        }
        Ok(out)
    }
}
