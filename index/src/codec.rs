//! Little-endian encoding of the structures the index writes to disk.
//!
//! Hand-written rather than serde-derived so that the on-disk layout is spelt
//! out in one place and cannot drift with a dependency upgrade.

use std::collections::BTreeMap;

use crate::record::RecordMeta;

/// The bytes of `x` in memory order, which is the files' little-endian order
/// on the targets we build for.
pub(crate) fn f32_bytes(x: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any bit pattern is a valid u8; u8 has
    // alignment 1.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
}

/// Appends little-endian values to a buffer.
#[derive(Default)]
pub(crate) struct Enc(pub Vec<u8>);

impl Enc {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    pub fn f32s(&mut self, v: &[f32]) {
        self.0.reserve(v.len() * 4);
        for x in v {
            self.f32(*x);
        }
    }
    pub fn meta(&mut self, m: &RecordMeta) {
        self.str(&m.record_id);
        self.str(&m.subject_id);
        self.f32(m.quality);
        self.u64(m.enrolled_at_ms);
        self.u32(m.metadata.len() as u32);
        for (k, v) in &m.metadata {
            self.str(k);
            self.str(v);
        }
    }
}

/// Reads what [`Enc`] wrote; every read is bounds-checked.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Why a decode failed, with the byte offset.
pub(crate) type DecResult<T> = Result<T, String>;

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }
    pub fn take(&mut self, n: usize) -> DecResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!("truncated at byte {} (wanted {n} more bytes)", self.pos)),
        }
    }
    pub fn u8(&mut self) -> DecResult<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> DecResult<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self) -> DecResult<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn f32(&mut self) -> DecResult<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn str(&mut self) -> DecResult<String> {
        let at = self.pos;
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("invalid UTF-8 string at byte {at}"))
    }
    pub fn f32s(&mut self, n: usize) -> DecResult<Vec<f32>> {
        let b = self.take(n.checked_mul(4).ok_or("length overflow")?)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
    pub fn meta(&mut self) -> DecResult<RecordMeta> {
        let record_id = self.str()?;
        let subject_id = self.str()?;
        let quality = self.f32()?;
        let enrolled_at_ms = self.u64()?;
        let n = self.u32()? as usize;
        let mut metadata = BTreeMap::new();
        for _ in 0..n {
            let k = self.str()?;
            let v = self.str()?;
            metadata.insert(k, v);
        }
        Ok(RecordMeta {
            record_id,
            subject_id,
            metadata,
            quality,
            enrolled_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_truncation_is_an_error() {
        let m = RecordMeta {
            record_id: "r-1".into(),
            subject_id: "s".into(),
            metadata: [("site".to_string(), "gate 3".to_string())].into(),
            quality: 55.5,
            enrolled_at_ms: 1_700_000_000_000,
        };
        let mut e = Enc::default();
        e.meta(&m);
        assert_eq!(Dec::new(&e.0).meta().unwrap(), m);
        for cut in 0..e.0.len() {
            assert!(Dec::new(&e.0[..cut]).meta().is_err(), "cut at {cut}");
        }
    }
}
