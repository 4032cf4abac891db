//! Conversions between protobuf messages and service-layer types.

use biomatch_matcher::{Embedding, Modality, decode_f32_le};
use biomatch_proto::v1 as pb;

use crate::error::ServiceError;
use crate::service::{MatchService, RecordView};

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

/// Validates a template message into an embedding; `field` names it in errors.
pub fn template(svc: &MatchService, t: Option<pb::Template>, field: &str) -> Result<(Embedding, f32), ServiceError> {
    let t = t.ok_or_else(|| ServiceError::InvalidArgument(format!("{field} is required")))?;
    let m = modality(t.modality, &format!("{field}.modality"))?;
    // Say so before looking at the payload: the modality itself is what is missing.
    svc.ensure_served(m)?;
    let values = match t.kind {
        Some(pb::template::Kind::Embedding(e)) => match e.values {
            Some(pb::embedding::Values::F32Le(b)) => decode_f32_le(&b)?,
            Some(pb::embedding::Values::Floats(f)) => f.values,
            None => {
                return Err(ServiceError::InvalidArgument(format!(
                    "empty template: {field}.embedding has neither f32_le nor floats"
                )));
            }
        },
        Some(_) => {
            return Err(ServiceError::InvalidArgument(format!(
                "{field}: {m} templates must carry an embedding"
            )));
        }
        None => {
            return Err(ServiceError::InvalidArgument(format!(
                "empty template: {field} carries no embedding"
            )));
        }
    };
    if !t.quality.is_finite() {
        return Err(ServiceError::InvalidArgument(format!(
            "{field}.quality is not a finite number"
        )));
    }
    Ok((svc.embedding(m, values)?, t.quality))
}

/// A stored record as a proto message.
pub fn record(v: RecordView) -> pb::Record {
    let m = v.record.meta;
    pb::Record {
        record_id: m.record_id,
        subject_id: m.subject_id,
        modality: modality_to_pb(v.gallery.modality) as i32,
        dimension: v.gallery.dim as u32,
        metadata: m.metadata.into_iter().collect(),
        quality: m.quality,
        enrolled_at_ms: m.enrolled_at_ms,
        template: v.record.vector.map(|values| pb::Template {
            modality: modality_to_pb(v.gallery.modality) as i32,
            kind: Some(pb::template::Kind::Embedding(pb::Embedding {
                values: Some(pb::embedding::Values::F32Le(
                    values.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )),
            })),
            quality: m.quality,
        }),
    }
}
