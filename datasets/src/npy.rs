//! NumPy `.npy` files (format versions 1 to 3) holding 1-D or 2-D arrays of
//! little-endian float32 or float64, C order.

use std::path::Path;

use crate::DatasetError;

/// A row-major matrix of f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Number of rows (1 for a 1-D array).
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<Matrix, DatasetError> {
    let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    parse(&bytes).map_err(|detail| DatasetError::Format {
        path: path.into(),
        detail,
    })
}

fn parse(b: &[u8]) -> Result<Matrix, String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (hlen, hstart) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = b.get(hstart..hstart + hlen).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or(format!("header lacks '{key}'"))?;
        Ok(header[at + key.len() + 2..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr")?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(format!(
            "unsupported dtype {}; expected '<f4' or '<f8'",
            descr.split(',').next().unwrap_or("")
        ));
    };
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape = field("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("bad shape")?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape entry {s:?}")))
        .collect::<Result<_, _>>()?;
    let (rows, cols) = match dims.as_slice() {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        _ => return Err(format!("expected a 1-D or 2-D array, got shape {dims:?}")),
    };
    let n = rows.checked_mul(cols).ok_or("shape overflows")?;
    let body = &b[hstart + hlen..];
    if body.len() != n * width {
        return Err(format!(
            "data is {} bytes, shape {dims:?} needs {}",
            body.len(),
            n * width
        ));
    }
    let data = if width == 4 {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect()
    } else {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8")) as f32)
            .collect()
    };
    Ok(Matrix { rows, cols, data })
}

/// Writes a 2-D float32 `.npy` file (format 1.0).
pub fn write_npy(path: &Path, m: &Matrix) -> Result<(), DatasetError> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        m.rows, m.cols
    );
    // Pad so that magic + version + length + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + m.data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in &m.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let m = Matrix {
            rows: 3,
            cols: 2,
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5],
        };
        write_npy(&p, &m).unwrap();
        assert_eq!(read_npy(&p).unwrap(), m);
        assert_eq!(read_npy(&p).unwrap().row(2), &[5.0, -6.5]);
        let mut bad = std::fs::read(&p).unwrap();
        bad.pop();
        std::fs::write(&p, &bad).unwrap();
        assert!(read_npy(&p).unwrap_err().to_string().contains("needs 24"));
        std::fs::write(&p, b"hello world").unwrap();
        assert!(read_npy(&p).unwrap_err().to_string().contains("magic"));
    }

    #[test]
    fn reads_one_dimensional_float64() {
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        for v in [0.5f64, 1.5, -2.0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let m = parse(&b).unwrap();
        assert_eq!((m.rows, m.cols), (1, 3));
        assert_eq!(m.data, vec![0.5, 1.5, -2.0]);
    }
}
