//! The fixed-length gallery row of a fingerprint record.
//!
//! Galleries hold fixed-length rows, read in place from memory-mapped
//! segments, so a fingerprint is stored prepared: its cylinders (with their
//! minutiae) ready for the popcount kernel, plus the record's header and
//! minutiae so that the ISO/IEC 19794-2 record can be written back.
//!
//! Layout, little-endian, 17,984 bytes (a multiple of 64, so rows in a
//! segment keep the cylinders 64-byte aligned and are scored without a copy):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `BMF1` |
//! | 4 | 2 | cylinders stored (n, at most 64) |
//! | 6 | 2 | minutiae stored (at most 255) |
//! | 8 | 12 | width, height, x and y resolution, device type, all u16 |
//! | 20 | 5 | certification, finger position, view number, impression, quality |
//! | 25 | 39 | zero |
//! | 64 | 64 x 256 | cylinders, the first n used, the rest zero |
//! | 16,448 | 1,536 | minutiae in the ISO 6-byte form, the rest zero |
//!
//! Extended data blocks (ridge counts, cores, deltas) are not kept: the
//! matcher does not use them, and a record read back has none.

use std::borrow::Cow;

use biomatch_kernels::cylinder::{CYLINDER_BYTES, CylinderCode};

use super::iso::{FingerRecord, FingerView, Minutia, MinutiaKind};
use super::matcher::{FingerTemplate, MAX_CYLINDERS};
use crate::{MatcherError, row_as_bytes};

const MAGIC: &[u8; 4] = b"BMF1";
const HEADER: usize = 64;
const MAX_MINUTIAE: usize = 255;
const CYLINDERS_AT: usize = HEADER;
const MINUTIAE_AT: usize = CYLINDERS_AT + MAX_CYLINDERS * CYLINDER_BYTES;
/// Bytes of a stored fingerprint row.
pub const FINGER_ROW_BYTES: usize = MINUTIAE_AT + 1536;
/// Length of a stored fingerprint row in f32 words (the gallery's unit).
pub const FINGER_ROW_WORDS: usize = FINGER_ROW_BYTES / 4;
const _: () = assert!(FINGER_ROW_BYTES.is_multiple_of(64) && MAX_MINUTIAE * 6 <= 1536);

/// A fingerprint record accepted for matching: one finger view, parsed and
/// prepared.
#[derive(Clone, Debug)]
pub struct FingerprintTemplate {
    record: FingerRecord,
    prepared: FingerTemplate,
}

impl FingerprintTemplate {
    /// Parses an ISO/IEC 19794-2:2005 record of exactly one finger view and
    /// prepares it; fails when the record is malformed, holds several views
    /// (enroll each finger as its own record), or has no minutia with enough
    /// neighbours to be matched.
    pub fn from_iso(bytes: &[u8]) -> Result<FingerprintTemplate, MatcherError> {
        let record = FingerRecord::from_iso(bytes)?;
        FingerprintTemplate::from_record(record)
    }

    /// Fails unless the record holds exactly one finger view: a template is
    /// one finger. Cheap, so adapters can refuse a request before any
    /// preparation; [`FingerprintTemplate::from_record`] checks it too.
    pub fn check_single_view(record: &FingerRecord) -> Result<(), MatcherError> {
        if record.views.len() != 1 {
            return Err(MatcherError::Fingerprint(format!(
                "the record holds {} finger views; send one view per template (one record per finger)",
                record.views.len()
            )));
        }
        Ok(())
    }

    /// Prepares a parsed record (see [`FingerprintTemplate::from_iso`]).
    pub fn from_record(mut record: FingerRecord) -> Result<FingerprintTemplate, MatcherError> {
        FingerprintTemplate::check_single_view(&record)?;
        record.views[0].extended.clear();
        let prepared = FingerTemplate::from_view(&record, &record.views[0]);
        if prepared.is_empty() {
            return Err(MatcherError::Fingerprint(format!(
                "none of the record's {} minutiae has enough neighbours inside the print to be matched",
                record.views[0].minutiae.len()
            )));
        }
        Ok(FingerprintTemplate { record, prepared })
    }

    /// The record as kept (one view, no extended data).
    pub fn record(&self) -> &FingerRecord {
        &self.record
    }

    /// The prepared template.
    pub fn prepared(&self) -> &FingerTemplate {
        &self.prepared
    }

    /// The prepared template, without the record.
    pub fn into_prepared(self) -> FingerTemplate {
        self.prepared
    }

    /// The gallery row.
    pub fn to_row(&self) -> Vec<f32> {
        let mut b = vec![0u8; FINGER_ROW_BYTES];
        let (r, v) = (&self.record, &self.record.views[0]);
        b[..4].copy_from_slice(MAGIC);
        let codes = self.prepared.codes();
        let halves = [
            codes.len() as u16,
            v.minutiae.len() as u16,
            r.width,
            r.height,
            r.x_resolution,
            r.y_resolution,
            r.device_type,
        ];
        for (i, h) in halves.iter().enumerate() {
            b[4 + 2 * i..6 + 2 * i].copy_from_slice(&h.to_le_bytes());
        }
        b[18..23].copy_from_slice(&[r.certification, v.position, v.view_number, v.impression, v.quality]);
        for (i, c) in codes.iter().enumerate() {
            let at = CYLINDERS_AT + i * CYLINDER_BYTES;
            b[at..at + CYLINDER_BYTES].copy_from_slice(&c.to_bytes());
        }
        for (i, m) in v.minutiae.iter().enumerate() {
            let at = MINUTIAE_AT + 6 * i;
            let xk = (m.kind.bits() << 14) | m.x;
            b[at..at + 2].copy_from_slice(&xk.to_le_bytes());
            b[at + 2..at + 4].copy_from_slice(&m.y.to_le_bytes());
            b[at + 4..at + 6].copy_from_slice(&[m.angle, m.quality]);
        }
        b.chunks_exact(4)
            .map(|w| f32::from_bits(u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
            .collect()
    }

    /// Reads a row written by [`FingerprintTemplate::to_row`] back.
    pub fn from_row(row: &[f32]) -> Result<FingerprintTemplate, MatcherError> {
        let codes = row_cylinders(row)?.into_owned();
        let b = row_as_bytes(row);
        let h = |i: usize| u16::from_le_bytes([b[4 + 2 * i], b[5 + 2 * i]]);
        let n_min = usize::from(h(1));
        if n_min > MAX_MINUTIAE {
            return Err(corrupt(format!("{n_min} minutiae")));
        }
        let minutiae = (0..n_min)
            .map(|i| {
                let m = &b[MINUTIAE_AT + 6 * i..MINUTIAE_AT + 6 * i + 6];
                let xk = u16::from_le_bytes([m[0], m[1]]);
                Minutia {
                    kind: match xk >> 14 {
                        1 => MinutiaKind::RidgeEnding,
                        2 => MinutiaKind::Bifurcation,
                        _ => MinutiaKind::Other,
                    },
                    x: xk & 0x3fff,
                    y: u16::from_le_bytes([m[2], m[3]]),
                    angle: m[4],
                    quality: m[5],
                }
            })
            .collect();
        let record = FingerRecord {
            certification: b[18],
            device_type: h(6),
            width: h(2),
            height: h(3),
            x_resolution: h(4),
            y_resolution: h(5),
            views: vec![FingerView {
                position: b[19],
                view_number: b[20],
                impression: b[21],
                quality: b[22],
                minutiae,
                extended: Vec::new(),
            }],
        };
        Ok(FingerprintTemplate {
            record,
            prepared: FingerTemplate::from_codes(codes),
        })
    }
}

fn corrupt(what: String) -> MatcherError {
    MatcherError::Fingerprint(format!("stored fingerprint row is corrupt: {what}"))
}

/// The cylinders of a stored row, borrowed in place when the row is 64-byte
/// aligned (rows of a memory-mapped segment), copied otherwise.
pub fn row_cylinders(row: &[f32]) -> Result<Cow<'_, [CylinderCode]>, MatcherError> {
    if row.len() != FINGER_ROW_WORDS {
        return Err(corrupt(format!("{} words, {FINGER_ROW_WORDS} expected", row.len())));
    }
    let b = row_as_bytes(row);
    if &b[..4] != MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let n = usize::from(u16::from_le_bytes([b[4], b[5]]));
    if n > MAX_CYLINDERS {
        return Err(corrupt(format!("{n} cylinders")));
    }
    CylinderCode::slice_from_bytes(&b[CYLINDERS_AT..CYLINDERS_AT + n * CYLINDER_BYTES])
        .ok_or_else(|| corrupt("cylinder block".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(views: usize, n: u16) -> FingerRecord {
        let view = |v: u8| FingerView {
            position: 2,
            view_number: v,
            impression: 0,
            quality: 80,
            minutiae: (0..n)
                .map(|i| Minutia {
                    kind: if i % 3 == 0 {
                        MinutiaKind::Bifurcation
                    } else {
                        MinutiaKind::RidgeEnding
                    },
                    x: 20 + (i * 37) % 300,
                    y: 30 + (i * 53) % 350,
                    angle: (i * 29 % 256) as u8,
                    quality: 60,
                })
                .collect(),
            extended: vec![],
        };
        FingerRecord {
            certification: 0,
            device_type: 7,
            width: 400,
            height: 420,
            x_resolution: 197,
            y_resolution: 197,
            views: (0..views as u8).map(view).collect(),
        }
    }

    #[test]
    fn a_row_round_trips_the_record_and_the_cylinders() {
        let t = FingerprintTemplate::from_record(record(1, 60)).unwrap();
        let row = t.to_row();
        assert_eq!(row.len(), FINGER_ROW_WORDS);
        let back = FingerprintTemplate::from_row(&row).unwrap();
        assert_eq!(back.record(), t.record());
        assert_eq!(back.prepared(), t.prepared());
        assert_eq!(
            back.record().to_iso().unwrap(),
            t.record().to_iso().unwrap(),
            "the ISO record written back is the same"
        );
    }

    #[test]
    fn several_views_and_unmatchable_records_are_refused() {
        let e = FingerprintTemplate::from_record(record(2, 30)).unwrap_err();
        assert!(e.to_string().contains("2 finger views"), "{e}");
        let e = FingerprintTemplate::from_record(record(1, 1)).unwrap_err();
        assert!(e.to_string().contains("enough neighbours"), "{e}");
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let mut row = FingerprintTemplate::from_record(record(1, 40)).unwrap().to_row();
        assert!(row_cylinders(&row[1..]).is_err());
        row[1] = f32::from_bits(u32::from_le_bytes([0xff, 0xff, 0, 0]));
        assert!(row_cylinders(&row).is_err());
        row[0] = 0.0;
        assert!(FingerprintTemplate::from_row(&row).is_err());
    }
}
