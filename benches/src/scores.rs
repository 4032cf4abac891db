//! Score files: one score per line (pyeer's `-g`/`-i` files) or the
//! `probe,gallery,score,genuine` CSV of ../shared/datasets.

use std::io::Write;
use std::path::Path;

use crate::BenchError;

/// Reads one score per non-empty line.
pub fn read_scores(path: &Path) -> Result<Vec<f64>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::Io(path.into(), e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            l.trim()
                .parse::<f64>()
                .map_err(|e| BenchError::Input(format!("{}:{}: {l:?} is not a score: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// Writes one score per line, shortest form that reads back exactly.
pub fn write_scores(path: &Path, scores: &[f64]) -> Result<(), BenchError> {
    let io = |e| BenchError::Io(path.into(), e);
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for s in scores {
        writeln!(w, "{s}").map_err(io)?;
    }
    w.flush().map_err(io)
}

/// Reads a probe,gallery,score,genuine CSV into (genuine, impostor).
pub fn read_score_csv(path: &Path) -> Result<(Vec<f64>, Vec<f64>), BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::Io(path.into(), e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').map(str::trim).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| BenchError::Input(format!("{}: no {name:?} column", path.display())))
    };
    let (sc, gc) = (col("score")?, col("genuine")?);
    let (mut g, mut i) = (Vec::new(), Vec::new());
    for (n, l) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split(',').collect();
        let bad = || BenchError::Input(format!("{}:{}: malformed row {l:?}", path.display(), n + 2));
        let score: f64 = f.get(sc).and_then(|v| v.trim().parse().ok()).ok_or_else(bad)?;
        match f.get(gc).map(|v| v.trim()) {
            Some("1") => g.push(score),
            Some("0") => i.push(score),
            _ => return Err(bad()),
        }
    }
    Ok((g, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_trip_exactly_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.txt");
        let v = vec![0.1, 1.0 / 3.0, -2.5e-9, 0.7773];
        write_scores(&p, &v).unwrap();
        assert_eq!(read_scores(&p).unwrap(), v);
        std::fs::write(&p, "0.5\nx\n").unwrap();
        assert!(read_scores(&p).unwrap_err().to_string().contains(":2:"));
        let c = dir.path().join("s.csv");
        std::fs::write(&c, "probe,gallery,score,genuine\na,b,0.9,1\na,c,0.1,0\n").unwrap();
        assert_eq!(read_score_csv(&c).unwrap(), (vec![0.9], vec![0.1]));
        std::fs::write(&c, "probe,gallery,score,genuine\na,b,0.9,yes\n").unwrap();
        assert!(read_score_csv(&c).unwrap_err().to_string().contains(":2: malformed"));
    }
}
