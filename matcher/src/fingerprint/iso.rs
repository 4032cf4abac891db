//! ISO/IEC 19794-2:2005 finger minutiae records: strict reading and writing.
//!
//! All fields are big-endian (see ../shared/docs/reference.md section 3).
//! Reading checks every length, count, coordinate and reserved bit, and an
//! error names the byte offset where the record stops making sense, so that a
//! client can find the fault in a hex dump. The 2011 edition and ANSI/INCITS
//! 378 use other header layouts; they are recognised and refused by name.

use crate::MatcherError;

/// What a minutia is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinutiaKind {
    /// Type 00: other (or not recorded).
    Other,
    /// Type 01: ridge ending.
    RidgeEnding,
    /// Type 10: bifurcation.
    Bifurcation,
}

impl MinutiaKind {
    pub(crate) fn bits(self) -> u16 {
        match self {
            MinutiaKind::Other => 0,
            MinutiaKind::RidgeEnding => 1,
            MinutiaKind::Bifurcation => 2,
        }
    }
}

/// One minutia as the record holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Minutia {
    /// Ending, bifurcation or other.
    pub kind: MinutiaKind,
    /// Column in pixels from the left edge (< image width).
    pub x: u16,
    /// Row in pixels from the top edge (< image height).
    pub y: u16,
    /// Direction in units of 360/256 degrees, counter-clockwise from the x axis.
    pub angle: u8,
    /// Quality 0..=100 (0: not reported).
    pub quality: u8,
}

impl Minutia {
    /// Direction in radians.
    pub fn radians(&self) -> f64 {
        f64::from(self.angle) * std::f64::consts::TAU / 256.0
    }
}

/// One finger view (one impression of one finger).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FingerView {
    /// Finger position code 0..=10 (0: unknown, 1: right thumb, ... 10: left little).
    pub position: u8,
    /// View number 0..=15, distinguishing views of the same finger.
    pub view_number: u8,
    /// Impression type: 0 live-scan plain, 1 live-scan rolled, 2 non-live plain,
    /// 3 non-live rolled, 8 swipe.
    pub impression: u8,
    /// Finger quality 0..=100.
    pub quality: u8,
    /// The minutiae, at most 255.
    pub minutiae: Vec<Minutia>,
    /// The extended data blocks, kept as bytes (ridge counts, cores, deltas).
    pub extended: Vec<u8>,
}

/// A whole record: the capture context and one or more finger views.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FingerRecord {
    /// Capture equipment certification flags (4 bits).
    pub certification: u8,
    /// Capture device type id (12 bits).
    pub device_type: u16,
    /// Image width in pixels.
    pub width: u16,
    /// Image height in pixels.
    pub height: u16,
    /// Horizontal resolution in pixels per centimetre (197 = 500 ppi).
    pub x_resolution: u16,
    /// Vertical resolution in pixels per centimetre.
    pub y_resolution: u16,
    /// The finger views, at least one.
    pub views: Vec<FingerView>,
}

/// A bounds-checked big-endian reader that knows its offset.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, offset: usize, reason: impl Into<String>) -> MatcherError {
        MatcherError::Iso {
            offset,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], MatcherError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len()).ok_or_else(|| {
            self.err(
                self.at,
                format!(
                    "record ends inside {what} ({n} bytes needed, {} left)",
                    self.b.len() - self.at
                ),
            )
        })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, MatcherError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, MatcherError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, MatcherError> {
        let s = self.take(4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
}

impl FingerRecord {
    /// Reads a record; any deviation from the 2005 layout is an error naming
    /// its byte offset.
    pub fn from_iso(bytes: &[u8]) -> Result<FingerRecord, MatcherError> {
        let mut r = Reader { b: bytes, at: 0 };
        let magic = r.take(4, "the format identifier")?;
        if magic != b"FMR\0" {
            return Err(r.err(0, format!("format identifier is {magic:02x?}, not \"FMR\\0\"")));
        }
        let version = r.take(4, "the version")?;
        match version {
            b" 20\0" => {}
            b"030\0" => {
                return Err(r.err(
                    4,
                    "version \"030\" is ISO/IEC 19794-2:2011, which is not supported; send a 2005 record",
                ));
            }
            v => return Err(r.err(4, format!("version {v:02x?} is not \" 20\\0\" (ISO/IEC 19794-2:2005)"))),
        }
        let length = r.u32("the record length")? as usize;
        if length != bytes.len() {
            // ANSI/INCITS 378 has a 2- or 6-byte length here, so its bytes read
            // as a wildly wrong 4-byte length.
            return Err(r.err(
                8,
                format!(
                    "record length field says {length} bytes but {} were given \
                     (an ANSI/INCITS 378 record has a different header and is not supported)",
                    bytes.len()
                ),
            ));
        }
        let equipment = r.u16("the capture equipment")?;
        let width = r.u16("the image width")?;
        let height = r.u16("the image height")?;
        let x_resolution = r.u16("the x resolution")?;
        let y_resolution = r.u16("the y resolution")?;
        let n_views = r.u8("the number of finger views")?;
        let reserved = r.u8("the reserved header byte")?;
        if width == 0 || height == 0 {
            return Err(r.err(14, format!("image size {width}x{height} has a zero side")));
        }
        if x_resolution == 0 || y_resolution == 0 {
            return Err(r.err(18, "resolution is zero"));
        }
        if n_views == 0 {
            return Err(r.err(22, "the record holds no finger view"));
        }
        if reserved != 0 {
            return Err(r.err(23, format!("reserved byte is {reserved}, must be 0")));
        }
        let mut views = Vec::with_capacity(n_views as usize);
        for v in 0..n_views {
            views.push(Self::read_view(&mut r, v, width, height)?);
        }
        if r.at != bytes.len() {
            return Err(r.err(r.at, format!("{} bytes after the last finger view", bytes.len() - r.at)));
        }
        Ok(FingerRecord {
            certification: (equipment >> 12) as u8,
            device_type: equipment & 0x0fff,
            width,
            height,
            x_resolution,
            y_resolution,
            views,
        })
    }

    fn read_view(r: &mut Reader<'_>, v: u8, width: u16, height: u16) -> Result<FingerView, MatcherError> {
        let start = r.at;
        let position = r.u8("a finger view header")?;
        if position > 10 {
            return Err(r.err(start, format!("view {v}: finger position {position} is not 0..=10")));
        }
        let vi = r.u8("a finger view header")?;
        let (view_number, impression) = (vi >> 4, vi & 0x0f);
        if !matches!(impression, 0..=3 | 8) {
            return Err(r.err(
                start + 1,
                format!("view {v}: impression type {impression} is not 0..=3 or 8"),
            ));
        }
        let quality = r.u8("a finger view header")?;
        if quality > 100 {
            return Err(r.err(start + 2, format!("view {v}: finger quality {quality} exceeds 100")));
        }
        let count = r.u8("a finger view header")?;
        let mut minutiae = Vec::with_capacity(count as usize);
        for i in 0..count {
            let at = r.at;
            let what = format!("minutia {i} of view {v}");
            let tx = r.u16(&what)?;
            let ry = r.u16(&what)?;
            let angle = r.u8(&what)?;
            let q = r.u8(&what)?;
            let kind = match tx >> 14 {
                0 => MinutiaKind::Other,
                1 => MinutiaKind::RidgeEnding,
                2 => MinutiaKind::Bifurcation,
                _ => return Err(r.err(at, format!("{what}: type bits 11 are reserved"))),
            };
            let (x, y) = (tx & 0x3fff, ry & 0x3fff);
            if ry >> 14 != 0 {
                return Err(r.err(at + 2, format!("{what}: reserved bits above y are set")));
            }
            if x >= width || y >= height {
                return Err(r.err(
                    at,
                    format!("{what}: position ({x}, {y}) is outside the {width}x{height} image"),
                ));
            }
            if q > 100 {
                return Err(r.err(at + 5, format!("{what}: quality {q} exceeds 100")));
            }
            minutiae.push(Minutia {
                kind,
                x,
                y,
                angle,
                quality: q,
            });
        }
        let ext_at = r.at;
        let ext_len = r.u16("the extended data length")? as usize;
        let extended = r.take(ext_len, "the extended data")?.to_vec();
        Self::check_extended(&extended, ext_at + 2)?;
        Ok(FingerView {
            position,
            view_number,
            impression,
            quality,
            minutiae,
            extended,
        })
    }

    /// Extended data is a sequence of blocks: type id (2), length (2, header
    /// included), data. The blocks must tile the declared length exactly.
    fn check_extended(ext: &[u8], base: usize) -> Result<(), MatcherError> {
        let mut at = 0;
        while at < ext.len() {
            if ext.len() - at < 4 {
                return Err(MatcherError::Iso {
                    offset: base + at,
                    reason: "extended data ends inside a block header".into(),
                });
            }
            let len = u16::from_be_bytes([ext[at + 2], ext[at + 3]]) as usize;
            if len < 4 || len > ext.len() - at {
                return Err(MatcherError::Iso {
                    offset: base + at + 2,
                    reason: format!("extended data block length {len} does not fit"),
                });
            }
            at += len;
        }
        Ok(())
    }

    /// Writes the record in the 2005 layout; fails when a field does not fit
    /// (more than 255 views or minutiae, a coordinate over 14 bits, ...).
    pub fn to_iso(&self) -> Result<Vec<u8>, MatcherError> {
        let bad = |reason: String| MatcherError::Iso { offset: 0, reason };
        if self.views.is_empty() || self.views.len() > 255 {
            return Err(bad(format!("{} finger views (1..=255 allowed)", self.views.len())));
        }
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"FMR\0 20\0");
        out.extend_from_slice(&[0; 4]); // length, filled in below
        out.extend_from_slice(
            &((u16::from(self.certification & 0x0f) << 12) | (self.device_type & 0x0fff)).to_be_bytes(),
        );
        for v in [self.width, self.height, self.x_resolution, self.y_resolution] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.push(self.views.len() as u8);
        out.push(0);
        for (i, v) in self.views.iter().enumerate() {
            if v.minutiae.len() > 255 || v.extended.len() > usize::from(u16::MAX) {
                return Err(bad(format!("view {i}: too many minutiae or extended bytes")));
            }
            out.extend_from_slice(&[
                v.position,
                (v.view_number << 4) | (v.impression & 0x0f),
                v.quality,
                v.minutiae.len() as u8,
            ]);
            for m in &v.minutiae {
                if m.x > 0x3fff || m.y > 0x3fff {
                    return Err(bad(format!("view {i}: coordinate ({}, {}) exceeds 14 bits", m.x, m.y)));
                }
                out.extend_from_slice(&((m.kind.bits() << 14) | m.x).to_be_bytes());
                out.extend_from_slice(&m.y.to_be_bytes());
                out.extend_from_slice(&[m.angle, m.quality]);
            }
            out.extend_from_slice(&(v.extended.len() as u16).to_be_bytes());
            out.extend_from_slice(&v.extended);
        }
        let len = out.len() as u32;
        out[8..12].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FingerRecord {
        FingerRecord {
            certification: 0,
            device_type: 0,
            width: 388,
            height: 374,
            x_resolution: 197,
            y_resolution: 197,
            views: vec![FingerView {
                position: 0,
                view_number: 0,
                impression: 0,
                quality: 60,
                minutiae: vec![
                    Minutia {
                        kind: MinutiaKind::RidgeEnding,
                        x: 10,
                        y: 20,
                        angle: 200,
                        quality: 55,
                    },
                    Minutia {
                        kind: MinutiaKind::Bifurcation,
                        x: 387,
                        y: 373,
                        angle: 0,
                        quality: 100,
                    },
                ],
                extended: vec![],
            }],
        }
    }

    #[test]
    fn a_record_round_trips() {
        let r = sample();
        let b = r.to_iso().unwrap();
        // Header 24, view header 4, two minutiae of 6, extended length 2.
        assert_eq!(b.len(), 24 + 4 + 2 * 6 + 2);
        assert_eq!(FingerRecord::from_iso(&b).unwrap(), r);
    }

    #[test]
    fn faults_are_reported_at_their_offset() {
        let good = sample().to_iso().unwrap();
        let err = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            FingerRecord::from_iso(&b).unwrap_err().to_string()
        };
        assert!(err(&|b| b[0] = b'X').contains("byte 0: format identifier"));
        assert!(err(&|b| b[4..8].copy_from_slice(b"030\0")).contains("2011"));
        assert!(err(&|b| b.truncate(30)).contains("byte 8: record length"));
        assert!(err(&|b| b[23] = 1).contains("byte 23: reserved"));
        assert!(err(&|b| b[24] = 11).contains("byte 24: view 0: finger position 11"));
        // First minutia starts at 28: set its type bits to 11.
        assert!(err(&|b| b[28] |= 0xc0).contains("byte 28: minutia 0 of view 0: type bits 11"));
        assert!(err(&|b| b[30] |= 0x40).contains("byte 30: minutia 0 of view 0: reserved bits"));
        // Second minutia x = 388 = width.
        assert!(err(&|b| b[35] = 0x84).contains("outside the 388x374 image"));
        assert!(err(&|b| b[33] = 101).contains("byte 33: minutia 0 of view 0: quality 101"));
        // A count that claims more minutiae than the record holds.
        assert!(err(&|b| b[27] = 3).contains("record ends inside"));
    }
}
