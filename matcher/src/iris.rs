//! Iris templates compatible with open-iris, and its Hamming-distance
//! matchers reproduced bit for bit.
//!
//! Scores agree with open-iris 1.11.2 (`iris.nodes.matcher.utils`): the same
//! shift order (0, -1, +1, ..., -15, +15), the same skipping of shifts with no
//! common valid bit, the same strict `<` that keeps the earliest best shift,
//! and the same float64 arithmetic, including two quirks of the half-matching
//! path: each half's counts are doubled before normalising (which changes the
//! `norm_gradient * maskbitcount` term), and the second half's guard tests the
//! *first* half's mask count.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use biomatch_kernels::iris::{
    IRIS_BLOCKS, IRIS_STAGE_BLOCKS, IRIS_TEMPLATE_BYTES, IRIS_WORDS, IrisKernels, PreparedIrisProbe, ShiftCounts,
};

use crate::MatcherError;

/// Rows of an open-iris code array.
pub const IRIS_ROWS: usize = 16;
/// Bytes of one packed (numpy.packbits) code or mask array.
pub const IRIS_PACKED_BYTES: usize = IRIS_ROWS * IRIS_WORDS * 2 * 2 / 8;
/// Code bits of a template (the mask has as many).
pub const IRIS_CODE_BITS: usize = IRIS_PACKED_BYTES * 8;

/// A validated iris template in the column-word layout of
/// [`biomatch_kernels::iris`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrisTemplate {
    code: Vec<u64>,
    mask: Vec<u64>,
    version: String,
}

/// Bit `b` of word `c` is element (row b / 4, column c, wavelet b / 2 % 2,
/// real/imaginary b % 2) of the (16, 256, 2, 2) array.
fn unpack(packed: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; IRIS_WORDS];
    for (i, byte) in packed.iter().enumerate() {
        for k in 0..8 {
            if byte >> (7 - k) & 1 == 1 {
                let flat = i * 8 + k; // ((r * 256 + c) * 2 + w) * 2 + ri
                let (r, c, wri) = (flat / (IRIS_WORDS * 4), flat / 4 % IRIS_WORDS, flat % 4);
                words[c] |= 1u64 << (r * 4 + wri);
            }
        }
    }
    words
}

fn pack(words: &[u64]) -> Vec<u8> {
    let mut out = vec![0u8; IRIS_PACKED_BYTES];
    for flat in 0..IRIS_CODE_BITS {
        let (r, c, wri) = (flat / (IRIS_WORDS * 4), flat / 4 % IRIS_WORDS, flat % 4);
        if words[c] >> (r * 4 + wri) & 1 == 1 {
            out[flat / 8] |= 1 << (7 - flat % 8);
        }
    }
    out
}

fn check_version(v: &str) -> Result<(), MatcherError> {
    let ok = v
        .strip_prefix('v')
        .and_then(|r| r.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(MatcherError::Iris(format!(
            "iris_code_version {v:?} is not of the form v<major>.<minor>"
        )))
    }
}

impl IrisTemplate {
    /// From packed code and mask (numpy.packbits of (16, 256, 2, 2), MSB first).
    pub fn from_packed(code: &[u8], mask: &[u8], version: &str) -> Result<IrisTemplate, MatcherError> {
        for (name, b) in [("code", code), ("mask", mask)] {
            if b.len() != IRIS_PACKED_BYTES {
                return Err(MatcherError::Iris(format!(
                    "iris {name} is {} bytes; a (16, 256, 2, 2) bit array packs to {IRIS_PACKED_BYTES}",
                    b.len()
                )));
            }
        }
        check_version(version)?;
        let t = IrisTemplate {
            code: unpack(code),
            mask: unpack(mask),
            version: version.to_string(),
        };
        if t.mask.iter().all(|w| *w == 0) {
            return Err(MatcherError::Iris(
                "iris mask has no valid bit: nothing can be compared".into(),
            ));
        }
        Ok(t)
    }

    /// From the JSON that open-iris's `IrisTemplate.serialize()` produces.
    pub fn from_open_iris_json(text: &str) -> Result<IrisTemplate, MatcherError> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| MatcherError::Iris(format!("open-iris template is not JSON: {e}")))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .ok_or_else(|| MatcherError::Iris(format!("open-iris template lacks string field {k:?}")))
        };
        let decode = |k: &str| -> Result<Vec<u8>, MatcherError> {
            STANDARD
                .decode(field(k)?)
                .map_err(|e| MatcherError::Iris(format!("{k} is not valid base64: {e}")))
        };
        IrisTemplate::from_packed(
            &decode("iris_codes")?,
            &decode("mask_codes")?,
            field("iris_code_version")?,
        )
    }

    /// The open-iris JSON form.
    pub fn to_open_iris_json(&self) -> String {
        serde_json::json!({
            "iris_codes": STANDARD.encode(pack(&self.code)),
            "mask_codes": STANDARD.encode(pack(&self.mask)),
            "iris_code_version": self.version,
        })
        .to_string()
    }

    /// Packed code and mask.
    pub fn to_packed(&self) -> (Vec<u8>, Vec<u8>) {
        (pack(&self.code), pack(&self.mask))
    }

    /// The iris_code_version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Code words (one per column).
    pub fn code_words(&self) -> &[u64] {
        &self.code
    }

    /// Mask words.
    pub fn mask_words(&self) -> &[u64] {
        &self.mask
    }

    /// The stored form: code words then mask words, little-endian, as
    /// `IRIS_TEMPLATE_BYTES / 4` 32-bit words (a gallery row). The version is
    /// not stored; galleries keep one version (see the service).
    pub fn to_row(&self) -> Vec<f32> {
        self.code
            .iter()
            .chain(&self.mask)
            .flat_map(|w| [f32::from_bits(*w as u32), f32::from_bits((*w >> 32) as u32)])
            .collect()
    }

    /// Reads a stored row back.
    pub fn from_row(row: &[f32], version: &str) -> IrisTemplate {
        let b = row_bytes(row);
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        IrisTemplate {
            code: (0..IRIS_WORDS).map(w).collect(),
            mask: (IRIS_WORDS..2 * IRIS_WORDS).map(w).collect(),
            version: version.to_string(),
        }
    }
}

/// A stored row's bytes.
pub fn row_bytes(row: &[f32]) -> &[u8] {
    assert_eq!(row.len() * 4, IRIS_TEMPLATE_BYTES, "iris row has the wrong length");
    crate::row_as_bytes(row)
}

/// Words of a stored iris row.
pub const IRIS_ROW_WORDS: usize = IRIS_TEMPLATE_BYTES / 4;

/// Which open-iris matcher to reproduce, and its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IrisMatchConfig {
    /// Shifts tried: 0, -1, +1, ..., -n, +n columns (at most 128).
    pub rotation_shift: u32,
    /// Linear-approximation normalisation of the distance.
    pub normalise: bool,
    /// Non-match mean of the normalisation.
    pub norm_mean: f64,
    /// Gradient of the normalisation.
    pub norm_gradient: f64,
    /// Score the halves (columns 0..128 and 128..256) separately
    /// (`HammingDistanceMatcher`); false gives `SimpleHammingDistanceMatcher`.
    pub separate_half_matching: bool,
}

impl Default for IrisMatchConfig {
    /// open-iris `HammingDistanceMatcher()` defaults.
    fn default() -> Self {
        IrisMatchConfig {
            rotation_shift: 15,
            normalise: true,
            norm_mean: 0.45,
            norm_gradient: 0.00005,
            separate_half_matching: true,
        }
    }
}

/// Distance and the shift that gave it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IrisMatch {
    /// Hamming distance (normalised when configured); 1 when no shift had a
    /// common valid bit.
    pub distance: f64,
    /// Columns the probe was rolled by (numpy.roll along the angle).
    pub shift: i32,
}

impl IrisMatch {
    /// The service's score scale: `1 - distance`, higher is more alike.
    pub fn similarity(&self) -> f32 {
        (1.0 - self.distance) as f32
    }

    /// The distance above which a match's [`similarity`](Self::similarity)
    /// is certainly below `bound`: the cutoff to give
    /// [`IrisMatcher::compare_row_within`] for a search that wants scores of at
    /// least `bound`. The margin covers the rounding to f32; an infinite or
    /// NaN bound gives no cutoff.
    pub fn cutoff_for_score(bound: f32) -> f64 {
        if bound.is_finite() {
            1.0 - f64::from(bound) + 1e-6
        } else {
            f64::INFINITY
        }
    }
}

/// A configured matcher.
#[derive(Clone, Debug)]
pub struct IrisMatcher {
    cfg: IrisMatchConfig,
    shifts: Vec<i32>,
    kernels: IrisKernels,
}

/// Cutoffs above this skip the two-step path: impostors sit near 0.5, and
/// with 4 of 32 column blocks unseen the bound stays under about 0.41, so a
/// looser cutoff prunes nothing and the check would be pure cost.
const EARLY_EXIT_MAX_CUTOFF: f64 = 0.40;

/// A probe prepared once for many comparisons.
pub struct PreparedIris {
    probe: PreparedIrisProbe,
    /// Per shift (in the matcher's order): valid probe bits that land in the
    /// columns the second scoring step covers, an upper bound on the valid
    /// bits that step can add.
    rest_mask: Vec<u32>,
}

impl IrisMatcher {
    /// A matcher; fails when the configuration is out of range.
    pub fn new(cfg: IrisMatchConfig) -> Result<IrisMatcher, MatcherError> {
        Self::with_kernels(cfg, IrisKernels::active())
    }

    /// A matcher on a given kernel flavour (tests, benchmarks).
    pub fn with_kernels(cfg: IrisMatchConfig, kernels: IrisKernels) -> Result<IrisMatcher, MatcherError> {
        if cfg.rotation_shift > 128 {
            return Err(MatcherError::Iris(format!(
                "rotation_shift {} exceeds 128 columns",
                cfg.rotation_shift
            )));
        }
        if !(0.0..=1.0).contains(&cfg.norm_mean) || !cfg.norm_gradient.is_finite() {
            return Err(MatcherError::Iris(
                "norm_mean must be in [0, 1] and norm_gradient finite".into(),
            ));
        }
        let n = cfg.rotation_shift as i32;
        let shifts = std::iter::once(0).chain((1..=n).flat_map(|x| [-x, x])).collect();
        Ok(IrisMatcher { cfg, shifts, kernels })
    }

    /// The configuration.
    pub fn config(&self) -> &IrisMatchConfig {
        &self.cfg
    }

    /// Prepares a probe.
    pub fn prepare(&self, probe: &IrisTemplate) -> PreparedIris {
        let rest_mask = self
            .shifts
            .iter()
            .map(|s| {
                (IRIS_STAGE_BLOCKS * 8..IRIS_WORDS)
                    .map(|c| probe.mask[(c as i32 - s).rem_euclid(IRIS_WORDS as i32) as usize].count_ones())
                    .sum()
            })
            .collect();
        PreparedIris {
            probe: PreparedIrisProbe::new(&probe.code, &probe.mask),
            rest_mask,
        }
    }

    /// Compares a prepared probe with a stored row.
    pub fn compare_row(&self, probe: &PreparedIris, row: &[f32]) -> IrisMatch {
        let mut counts = [[0u32; 4]; 2 * 128 + 1];
        let counts = &mut counts[..self.shifts.len()];
        self.kernels.counts(&probe.probe, row_bytes(row), &self.shifts, counts);
        self.best(counts)
    }

    /// Like [`compare_row`](Self::compare_row) for a search that only wants
    /// distances at most `cutoff`: returns None, having scored only the first
    /// `IRIS_STAGE_BLOCKS` of 32 column blocks, when those already prove that
    /// every shift's distance exceeds `cutoff` (tried for cutoffs up to 0.40). A `Some` result may still
    /// exceed `cutoff`; it is then exactly what `compare_row` gives.
    ///
    /// The proof: after the first step the lower half's counts are final and
    /// the upper half's mismatches can only grow, while its valid bits can grow
    /// by at most min(the probe's valid bits rotated into the remaining
    /// columns, the template's valid bits there). Every open-iris distance is
    /// increasing in mismatches and decreasing in valid bits (for a
    /// non-negative normalisation gradient), so evaluating it at (mismatches
    /// so far, largest possible valid bits) bounds it from below.
    pub fn compare_row_within(&self, probe: &PreparedIris, row: &[f32], cutoff: f64) -> Option<IrisMatch> {
        if cutoff.is_nan() || cutoff > EARLY_EXIT_MAX_CUTOFF || self.cfg.norm_gradient < 0.0 {
            return Some(self.compare_row(probe, row));
        }
        let bytes = row_bytes(row);
        let mut counts = [[0u32; 4]; 2 * 128 + 1];
        let counts = &mut counts[..self.shifts.len()];
        self.kernels
            .add_counts(&probe.probe, bytes, &self.shifts, 0..IRIS_STAGE_BLOCKS, counts);
        let rest_gallery: u32 = bytes[(IRIS_WORDS + IRIS_STAGE_BLOCKS * 8) * 8..]
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")).count_ones())
            .sum();
        let beyond = counts.iter().zip(&probe.rest_mask).all(|(c, rest_probe)| {
            // A tiny margin keeps float rounding of the bound from pruning a tie.
            self.lower_bound(c, (*rest_probe).min(rest_gallery)) > cutoff + 1e-9
        });
        if beyond {
            return None;
        }
        self.kernels.add_counts(
            &probe.probe,
            bytes,
            &self.shifts,
            IRIS_STAGE_BLOCKS..IRIS_BLOCKS,
            counts,
        );
        Some(self.best(counts))
    }

    /// Compares two templates.
    pub fn compare(&self, probe: &IrisTemplate, gallery: &IrisTemplate) -> IrisMatch {
        self.compare_row(&self.prepare(probe), &gallery.to_row())
    }

    /// Open-iris's normalised distance for `h` mismatches in `m` valid bits
    /// (both already doubled where half matching doubles them).
    fn nhd(&self, h: u64, m: u64) -> f64 {
        let v =
            self.cfg.norm_mean - (self.cfg.norm_mean - h as f64 / m as f64) * (self.cfg.norm_gradient * m as f64 + 0.5);
        // Python's max(0, v): NaN (0 / 0) and non-positive values give 0.
        if v > 0.0 { v } else { 0.0 }
    }

    /// A lower bound on one shift's final distance from the counts of the
    /// first scoring step, when the upper half may gain up to `extra` valid
    /// bits; +inf when the shift is certain to be skipped, -inf when no bound
    /// is known.
    fn lower_bound(&self, c: &ShiftCounts, extra: u32) -> f64 {
        let [h_lo, m_lo, h_hi, m_hi] = c.map(u64::from);
        let extra = u64::from(extra);
        if !self.cfg.separate_half_matching {
            let (h, m) = (h_lo + h_hi, m_lo + m_hi + extra);
            return match (m, self.cfg.normalise) {
                (0, _) => f64::INFINITY,
                (_, true) => self.nhd(h, m),
                (_, false) => h as f64 / m as f64,
            };
        }
        // As in `distance`: half 0 is columns 128.., half 1 columns ..128, doubled.
        let (h0, m0_min, m0_max, h1, m1) = (2 * h_hi, 2 * m_hi, 2 * (m_hi + extra), 2 * h_lo, 2 * m_lo);
        if m0_max + m1 == 0 {
            return f64::INFINITY;
        }
        if !self.cfg.normalise {
            return (h0 + h1) as f64 / (m0_max + m1) as f64;
        }
        if m0_min == 0 {
            // The final upper-half count may be 0, which switches open-iris to
            // another formula; do not bound.
            return f64::NEG_INFINITY;
        }
        let normdist = self.nhd(h0 + h1, m0_max + m1);
        let (n0, n1) = (self.nhd(h0, m0_max), self.nhd(h1, m1));
        // The halves' mean weighted by valid bits: with n0 at its bound it moves
        // monotonically with the weight m0, so the least value is at an end.
        let mean = |m0: u64| (n0 * m0 as f64 + n1 * m1 as f64) / (m0 + m1) as f64;
        (normdist + mean(m0_min).min(mean(m0_max))) / 2.0
    }

    fn best(&self, counts: &[ShiftCounts]) -> IrisMatch {
        let mut best = IrisMatch {
            distance: 1.0,
            shift: 0,
        };
        for (shift, c) in self.shifts.iter().zip(counts) {
            if let Some(d) = self.distance(c)
                && d < best.distance
            {
                best = IrisMatch {
                    distance: d,
                    shift: *shift,
                };
            }
        }
        best
    }

    /// One shift's distance, or None when open-iris skips the shift.
    fn distance(&self, c: &ShiftCounts) -> Option<f64> {
        let [h_lo, m_lo, h_hi, m_hi] = c.map(u64::from);
        let nhd = |h, m| self.nhd(h, m);
        if !self.cfg.separate_half_matching {
            let (h, m) = (h_lo + h_hi, m_lo + m_hi);
            if m == 0 {
                return None;
            }
            return Some(if self.cfg.normalise {
                nhd(h, m)
            } else {
                h as f64 / m as f64
            });
        }
        // open-iris orders the halves as [columns 128.., columns ..128] and
        // doubles each half's counts.
        let (h0, m0, h1, m1) = (2 * h_hi, 2 * m_hi, 2 * h_lo, 2 * m_lo);
        let msum = m0 + m1;
        if msum == 0 {
            return None;
        }
        if !self.cfg.normalise {
            return Some((h0 + h1) as f64 / msum as f64);
        }
        let normdist = nhd(h0 + h1, msum);
        let (n0, n1) = if m0 > 0 {
            (nhd(h0, m0), nhd(h1, m1))
        } else {
            (self.cfg.norm_mean, self.cfg.norm_mean)
        };
        let halves = (n0 * m0 as f64 + n1 * m1 as f64) / msum as f64;
        let d = (normdist + halves) / 2.0;
        (!d.is_nan()).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(seed: u64, valid_every: u64) -> IrisTemplate {
        let mut x = seed | 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let code: Vec<u8> = (0..IRIS_PACKED_BYTES).map(|_| next() as u8).collect();
        let mask: Vec<u8> = (0..IRIS_PACKED_BYTES)
            .map(|i| {
                if (i as u64).is_multiple_of(valid_every) {
                    0
                } else {
                    0xff
                }
            })
            .collect();
        IrisTemplate::from_packed(&code, &mask, "v2.1").unwrap()
    }

    #[test]
    fn packed_and_json_forms_round_trip() {
        let t = template(3, 5);
        let (c, m) = t.to_packed();
        assert_eq!(IrisTemplate::from_packed(&c, &m, "v2.1").unwrap(), t);
        assert_eq!(IrisTemplate::from_open_iris_json(&t.to_open_iris_json()).unwrap(), t);
        assert_eq!(IrisTemplate::from_row(&t.to_row(), "v2.1"), t);
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let e = |r: Result<IrisTemplate, MatcherError>| r.unwrap_err().to_string();
        assert!(e(IrisTemplate::from_packed(&[0; 10], &[0xff; IRIS_PACKED_BYTES], "v2.1")).contains("10 bytes"));
        assert!(
            e(IrisTemplate::from_packed(
                &[0; IRIS_PACKED_BYTES],
                &[0xff; IRIS_PACKED_BYTES],
                "2.1"
            ))
            .contains("iris_code_version")
        );
        assert!(
            e(IrisTemplate::from_packed(
                &[0; IRIS_PACKED_BYTES],
                &[0; IRIS_PACKED_BYTES],
                "v2.1"
            ))
            .contains("no valid bit")
        );
        assert!(e(IrisTemplate::from_open_iris_json("{}")).contains("iris_codes"));
        assert!(
            e(IrisTemplate::from_open_iris_json(
                r#"{"iris_codes": "!!", "mask_codes": "", "iris_code_version": "v2.1"}"#
            ))
            .contains("base64")
        );
    }

    #[test]
    fn a_rotated_copy_matches_at_its_shift_on_every_flavour() {
        let t = template(9, 7);
        // Roll the code and mask words by 5 columns: the probe is t rolled by -5.
        let roll = |w: &[u64]| (0..IRIS_WORDS).map(|c| w[(c + 5) % IRIS_WORDS]).collect::<Vec<_>>();
        let g = IrisTemplate {
            code: roll(&t.code),
            mask: roll(&t.mask),
            version: "v2.1".into(),
        };
        for isa in biomatch_kernels::iris::IrisIsa::supported() {
            for half in [true, false] {
                let cfg = IrisMatchConfig {
                    normalise: false,
                    separate_half_matching: half,
                    ..Default::default()
                };
                let m = IrisMatcher::with_kernels(cfg, IrisKernels::for_isa(isa).unwrap()).unwrap();
                let r = m.compare(&t, &g);
                assert_eq!(
                    r,
                    IrisMatch {
                        distance: 0.0,
                        shift: -5
                    },
                    "{isa:?}"
                );
            }
        }
        let impostor = IrisMatcher::new(IrisMatchConfig::default())
            .unwrap()
            .compare(&t, &template(10, 7));
        // Normalisation stretches distances about 0.45: random codes land near 0.5.
        assert!(impostor.distance > 0.45 && impostor.distance < 0.6, "{impostor:?}");
    }
}
