//! Float embeddings (face, voice).

use crate::{MatcherError, Modality};

/// A validated, L2-normalised embedding.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    modality: Modality,
    values: Vec<f32>,
}

impl Embedding {
    /// Validates `values` and normalises them to unit length.
    ///
    /// Refused: an empty vector, more than `max_dim` values, NaN or
    /// infinity, and a vector whose norm is zero (or underflows), for which
    /// cosine similarity has no meaning.
    pub fn new(modality: Modality, values: Vec<f32>, max_dim: usize) -> Result<Embedding, MatcherError> {
        if !modality.is_embedding() {
            return Err(MatcherError::WrongKind(format!(
                "{modality} templates are not float embeddings"
            )));
        }
        if values.is_empty() {
            return Err(MatcherError::Empty {
                modality: modality.as_str(),
            });
        }
        if values.len() > max_dim {
            return Err(MatcherError::TooLarge {
                got: values.len(),
                max: max_dim,
            });
        }
        if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(MatcherError::NonFinite { index, value: *value });
        }
        // f64 so that large finite components cannot overflow the norm.
        let norm = values.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt();
        if norm.is_nan() || norm <= f64::from(f32::MIN_POSITIVE) {
            return Err(MatcherError::ZeroVector);
        }
        let values = values.into_iter().map(|v| (v as f64 / norm) as f32).collect();
        Ok(Embedding { modality, values })
    }

    /// The modality.
    pub fn modality(&self) -> Modality {
        self.modality
    }

    /// Number of components.
    pub fn dim(&self) -> usize {
        self.values.len()
    }

    /// The unit-length values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Takes the values out.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }
}

/// Decodes packed little-endian f32 bytes.
pub fn decode_f32_le(bytes: &[u8]) -> Result<Vec<f32>, MatcherError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(MatcherError::ByteLength(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_bad_vectors_with_the_reason() {
        let e = |v: Vec<f32>| Embedding::new(Modality::Face, v, 8).unwrap_err();
        assert!(matches!(e(vec![]), MatcherError::Empty { .. }));
        assert!(matches!(e(vec![1.0; 9]), MatcherError::TooLarge { got: 9, max: 8 }));
        assert!(e(vec![1.0, f32::NAN]).to_string().contains("index 1 is NaN"));
        assert!(matches!(
            e(vec![f32::INFINITY]),
            MatcherError::NonFinite { index: 0, .. }
        ));
        assert_eq!(e(vec![0.0, 0.0]), MatcherError::ZeroVector);
        assert!(e(vec![1e-45]).to_string().contains("zero vector"));
        assert!(Embedding::new(Modality::Iris, vec![1.0], 8).is_err());
        assert_eq!(decode_f32_le(&[0, 0, 128]).unwrap_err(), MatcherError::ByteLength(3));
    }

    proptest! {
        #[test]
        fn normalised_to_unit_length(v in proptest::collection::vec(-1e30f32..1e30, 1..64)) {
            prop_assume!(v.iter().any(|x| x.abs() > 1e-20));
            let e = Embedding::new(Modality::Voice, v, 64).unwrap();
            let n: f64 = e.values().iter().map(|x| (*x as f64).powi(2)).sum();
            prop_assert!((n - 1.0).abs() < 1e-5);
        }

        #[test]
        fn packed_bytes_round_trip(v in proptest::collection::vec(any::<f32>(), 0..32)) {
            let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let d = decode_f32_le(&b).unwrap();
            prop_assert_eq!(d.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        }
    }
}
