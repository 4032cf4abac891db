//! Conversions between protobuf messages and service-layer types.

use biomatch_index::ann::{AnnQuery, SearchMode};
use biomatch_matcher::fingerprint::{FingerRecord, FingerprintTemplate};
use biomatch_matcher::{IrisTemplate, Modality, decode_f32_le};
use biomatch_proto::v1 as pb;

use crate::error::ServiceError;
use crate::service::{MatchService, RecordView, Template};

/// The proto enum value as a modality.
pub fn modality(value: i32, field: &str) -> Result<Modality, ServiceError> {
    match pb::Modality::try_from(value) {
        Ok(pb::Modality::Fingerprint) => Ok(Modality::Fingerprint),
        Ok(pb::Modality::Face) => Ok(Modality::Face),
        Ok(pb::Modality::Iris) => Ok(Modality::Iris),
        Ok(pb::Modality::Voice) => Ok(Modality::Voice),
        Ok(pb::Modality::Multi) => Ok(Modality::Multi),
        Ok(pb::Modality::Unspecified) => Err(ServiceError::InvalidArgument(format!("{field} is required"))),
        Err(_) => Err(ServiceError::InvalidArgument(format!(
            "{field} has unknown value {value}"
        ))),
    }
}

/// A modality as the proto enum value.
pub fn modality_to_pb(m: Modality) -> pb::Modality {
    match m {
        Modality::Fingerprint => pb::Modality::Fingerprint,
        Modality::Face => pb::Modality::Face,
        Modality::Iris => pb::Modality::Iris,
        Modality::Voice => pb::Modality::Voice,
        Modality::Multi => pb::Modality::Multi,
    }
}

/// Identify's search options. Ranges are checked by the service, which
/// also knows whether the gallery can have graphs.
pub fn search_options(mode: i32, ef: u32, oversample: u32) -> Result<AnnQuery, ServiceError> {
    let mode = match pb::SearchMode::try_from(mode) {
        Ok(pb::SearchMode::Unspecified) => SearchMode::Auto,
        Ok(pb::SearchMode::Exact) => SearchMode::Exact,
        Ok(pb::SearchMode::Ann) => SearchMode::Ann,
        Err(_) => {
            return Err(ServiceError::InvalidArgument(format!(
                "search_mode has unknown value {mode}"
            )));
        }
    };
    Ok(AnnQuery {
        mode,
        ef: ef as usize,
        oversample: oversample as usize,
    })
}

/// Validates a template message; `field` names it in errors.
pub fn template(svc: &MatchService, t: Option<pb::Template>, field: &str) -> Result<(Template, f32), ServiceError> {
    let t = t.ok_or_else(|| ServiceError::InvalidArgument(format!("{field} is required")))?;
    let m = modality(t.modality, &format!("{field}.modality"))?;
    // Say so before looking at the payload: the modality itself is what is missing.
    svc.ensure_served(m)?;
    if !t.quality.is_finite() {
        return Err(ServiceError::InvalidArgument(format!(
            "{field}.quality is not a finite number"
        )));
    }
    let template = match (m, t.kind) {
        (_, None) => {
            return Err(ServiceError::InvalidArgument(format!(
                "empty template: {field} carries no template"
            )));
        }
        (Modality::Iris, Some(pb::template::Kind::Iris(i))) => {
            let parsed = match i.form {
                Some(pb::iris_template::Form::Packed(p)) => IrisTemplate::from_packed(&p.code, &p.mask, &p.version)?,
                Some(pb::iris_template::Form::OpenIrisJson(j)) => IrisTemplate::from_open_iris_json(&j)?,
                None => {
                    return Err(ServiceError::InvalidArgument(format!(
                        "empty template: {field}.iris has neither packed nor open_iris_json"
                    )));
                }
            };
            svc.iris_template(parsed)?
        }
        (Modality::Fingerprint, Some(pb::template::Kind::Fingerprint(f))) => {
            if f.iso_19794_2.is_empty() {
                return Err(ServiceError::InvalidArgument(format!(
                    "empty template: {field}.fingerprint.iso_19794_2 is empty"
                )));
            }
            svc.fingerprint_template(FingerRecord::from_iso(&f.iso_19794_2)?)?
        }
        (Modality::Fingerprint, Some(_)) => {
            return Err(ServiceError::InvalidArgument(format!(
                "{field}: FINGERPRINT templates must carry a fingerprint template (ISO/IEC 19794-2 record)"
            )));
        }
        (Modality::Iris, Some(_)) => {
            return Err(ServiceError::InvalidArgument(format!(
                "{field}: IRIS templates must carry an iris template"
            )));
        }
        (m, Some(pb::template::Kind::Embedding(e))) => {
            let values = match e.values {
                Some(pb::embedding::Values::F32Le(b)) => decode_f32_le(&b)?,
                Some(pb::embedding::Values::Floats(f)) => f.values,
                None => {
                    return Err(ServiceError::InvalidArgument(format!(
                        "empty template: {field}.embedding has neither f32_le nor floats"
                    )));
                }
            };
            Template::Embedding(svc.embedding(m, values)?)
        }
        (m, Some(_)) => {
            return Err(ServiceError::InvalidArgument(format!(
                "{field}: {m} templates must carry an embedding"
            )));
        }
    };
    Ok((template, t.quality))
}

/// A stored record as a proto message; `iris_version` labels iris templates.
/// Fails only when a stored fingerprint row cannot be read back.
pub fn record(v: RecordView, iris_version: &str) -> Result<pb::Record, ServiceError> {
    let m = v.record.meta;
    let fingerprint = v.gallery.modality == Modality::Fingerprint;
    let template = match v.record.vector {
        Some(values) => Some(match v.gallery.modality {
            Modality::Iris => {
                let (code, mask) = IrisTemplate::from_row(&values, iris_version).to_packed();
                pb::template::Kind::Iris(pb::IrisTemplate {
                    form: Some(pb::iris_template::Form::Packed(pb::PackedIrisCode {
                        code,
                        mask,
                        version: iris_version.to_string(),
                    })),
                })
            }
            Modality::Fingerprint => {
                let iso = FingerprintTemplate::from_row(&values)
                    .and_then(|t| t.record().to_iso())
                    .map_err(|e| ServiceError::DataLoss(format!("record {:?}: {e}", m.record_id)))?;
                pb::template::Kind::Fingerprint(pb::FingerprintTemplate { iso_19794_2: iso })
            }
            _ => pb::template::Kind::Embedding(pb::Embedding {
                values: Some(pb::embedding::Values::F32Le(
                    values.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )),
            }),
        }),
        None => None,
    };
    Ok(pb::Record {
        record_id: m.record_id,
        subject_id: m.subject_id,
        modality: modality_to_pb(v.gallery.modality) as i32,
        dimension: if fingerprint { 0 } else { v.gallery.dim as u32 },
        metadata: m.metadata.into_iter().collect(),
        quality: m.quality,
        enrolled_at_ms: m.enrolled_at_ms,
        template: template.map(|kind| pb::Template {
            modality: modality_to_pb(v.gallery.modality) as i32,
            kind: Some(kind),
            quality: m.quality,
        }),
    })
}
