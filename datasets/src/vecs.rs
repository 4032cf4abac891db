//! The TEXMEX `.fvecs`, `.bvecs` and `.ivecs` formats used by the ANN
//! benchmark sets (SIFT1M, GIST1M, BIGANN): each vector is a little-endian
//! i32 dimension followed by that many f32, u8 or i32 values. Every vector
//! of a file must have the same dimension.

use std::path::Path;

use crate::{DatasetError, Matrix};

/// Element type of a `*vecs` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VecsKind {
    /// `.fvecs`: f32 values.
    F32,
    /// `.bvecs`: u8 values (SIFT descriptors), widened to f32.
    U8,
    /// `.ivecs`: i32 values (ground-truth neighbour ids).
    I32,
}

impl VecsKind {
    /// The kind an extension names (`fvecs`, `bvecs`, `ivecs`), if any.
    pub fn from_path(path: &Path) -> Option<VecsKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "fvecs" => Some(VecsKind::F32),
            "bvecs" => Some(VecsKind::U8),
            "ivecs" => Some(VecsKind::I32),
            _ => None,
        }
    }

    fn width(self) -> usize {
        match self {
            VecsKind::U8 => 1,
            VecsKind::F32 | VecsKind::I32 => 4,
        }
    }
}

/// Reads a `.fvecs` or `.bvecs` file as an f32 matrix.
pub fn read_vecs(path: &Path, kind: VecsKind) -> Result<Matrix, DatasetError> {
    let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    parse_vecs(&bytes, kind).map_err(|detail| DatasetError::Format {
        path: path.into(),
        detail,
    })
}

/// Reads an `.ivecs` file: one list of i32 per vector (for example the
/// ground-truth neighbours of each query).
pub fn read_ivecs(path: &Path) -> Result<Vec<Vec<i32>>, DatasetError> {
    let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    let (dim, rows) = layout(&bytes, VecsKind::I32).map_err(|detail| DatasetError::Format {
        path: path.into(),
        detail,
    })?;
    let stride = 4 + dim * 4;
    Ok((0..rows)
        .map(|r| {
            bytes[r * stride + 4..(r + 1) * stride]
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect()
        })
        .collect())
}

/// Writes an f32 matrix as `.fvecs`.
pub fn write_fvecs(path: &Path, m: &Matrix) -> Result<(), DatasetError> {
    let mut out = Vec::with_capacity(m.rows * (4 + m.cols * 4));
    for r in 0..m.rows {
        out.extend_from_slice(&(m.cols as i32).to_le_bytes());
        m.row(r).iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    }
    std::fs::write(path, out).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })
}

/// Checks the framing and returns (dimension, vector count).
fn layout(bytes: &[u8], kind: VecsKind) -> Result<(usize, usize), String> {
    if bytes.is_empty() {
        return Err("empty file: no vectors".into());
    }
    if bytes.len() < 4 {
        return Err(format!("{} bytes cannot hold a dimension header", bytes.len()));
    }
    let dim = i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    if dim <= 0 || dim > 1 << 20 {
        return Err(format!("byte 0: dimension {dim} is outside 1..=1048576"));
    }
    let dim = dim as usize;
    let stride = 4 + dim * kind.width();
    if !bytes.len().is_multiple_of(stride) {
        return Err(format!(
            "{} bytes is not a whole number of {stride}-byte vectors of dimension {dim}",
            bytes.len()
        ));
    }
    let rows = bytes.len() / stride;
    for r in 1..rows {
        let at = r * stride;
        let d = i32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if d as usize != dim {
            return Err(format!("byte {at}: vector {r} has dimension {d}, the first has {dim}"));
        }
    }
    Ok((dim, rows))
}

fn parse_vecs(bytes: &[u8], kind: VecsKind) -> Result<Matrix, String> {
    let (dim, rows) = layout(bytes, kind)?;
    let stride = 4 + dim * kind.width();
    let mut data = Vec::with_capacity(rows * dim);
    for r in 0..rows {
        let body = &bytes[r * stride + 4..(r + 1) * stride];
        match kind {
            VecsKind::F32 => data.extend(
                body.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
            ),
            VecsKind::U8 => data.extend(body.iter().map(|b| f32::from(*b))),
            VecsKind::I32 => data.extend(
                body.chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as f32),
            ),
        }
    }
    Ok(Matrix { rows, cols: dim, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fvecs_round_trip_and_bvecs_widen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.fvecs");
        let m = Matrix {
            rows: 3,
            cols: 2,
            data: vec![1.0, -2.5, 0.0, 3.25, 7.0, 8.0],
        };
        write_fvecs(&p, &m).unwrap();
        assert_eq!(VecsKind::from_path(&p), Some(VecsKind::F32));
        assert_eq!(read_vecs(&p, VecsKind::F32).unwrap(), m);

        let b = dir.path().join("a.bvecs");
        let mut raw = Vec::new();
        for row in [[1u8, 255, 0], [9, 8, 7]] {
            raw.extend_from_slice(&3i32.to_le_bytes());
            raw.extend_from_slice(&row);
        }
        std::fs::write(&b, &raw).unwrap();
        let got = read_vecs(&b, VecsKind::U8).unwrap();
        assert_eq!((got.rows, got.cols), (2, 3));
        assert_eq!(got.row(0), &[1.0, 255.0, 0.0]);

        let i = dir.path().join("gt.ivecs");
        let mut raw = Vec::new();
        for row in [[5i32, -1], [2, 3]] {
            raw.extend_from_slice(&2i32.to_le_bytes());
            row.iter().for_each(|v| raw.extend_from_slice(&v.to_le_bytes()));
        }
        std::fs::write(&i, &raw).unwrap();
        assert_eq!(read_ivecs(&i).unwrap(), vec![vec![5, -1], vec![2, 3]]);
    }

    #[test]
    fn bad_framing_is_a_clear_error() {
        let cases: [(&[u8], &str); 4] = [
            (&[], "empty file"),
            (&[1, 0], "cannot hold"),
            (&[0, 0, 0, 0], "outside"),
            (
                &[1, 0, 0, 0, 0, 0, 128, 63, 2, 0, 0, 0, 0, 0, 0, 0],
                "vector 1 has dimension 2",
            ),
        ];
        for (bytes, want) in cases {
            let err = parse_vecs(bytes, VecsKind::F32).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
        let err = parse_vecs(&[2, 0, 0, 0, 1, 2, 3], VecsKind::F32).unwrap_err();
        assert!(err.contains("whole number"), "{err}");
    }
}
