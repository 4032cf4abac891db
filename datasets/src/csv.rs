//! Embeddings in CSV with labels: a header row, then one embedding per row.
//! Label columns are chosen by name; every other column must be numeric and
//! becomes a component, in column order. Fields may be double-quoted (a
//! quoted field may hold commas; `""` is a literal quote).

use std::path::Path;

use crate::{DatasetError, VectorRecord};

/// Which columns carry the labels.
#[derive(Clone, Debug, Default)]
pub struct CsvColumns {
    /// Subject column; `None` tries `subject_id`, `subject`, `speaker`,
    /// `identity`, `label`, `person` in that order.
    pub subject: Option<String>,
    /// Record id column; `None` tries `record_id`, `id`, `utterance`,
    /// `image`, `file`, `name`.
    pub record: Option<String>,
}

const SUBJECT_NAMES: [&str; 6] = ["subject_id", "subject", "speaker", "identity", "label", "person"];
const RECORD_NAMES: [&str; 6] = ["record_id", "id", "utterance", "image", "file", "name"];

/// Reads a CSV of labelled embeddings.
pub fn read_csv_vectors(path: &Path, columns: &CsvColumns) -> Result<Vec<VectorRecord>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    parse(&text, columns).map_err(|detail| DatasetError::Format {
        path: path.into(),
        detail,
    })
}

fn find(header: &[String], wanted: &Option<String>, defaults: &[&str]) -> Result<Option<usize>, String> {
    match wanted {
        Some(name) => header
            .iter()
            .position(|h| h == name)
            .map(Some)
            .ok_or_else(|| format!("no column named {name:?}; the header has {header:?}")),
        None => Ok(defaults.iter().find_map(|d| header.iter().position(|h| h == d))),
    }
}

fn parse(text: &str, columns: &CsvColumns) -> Result<Vec<VectorRecord>, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, head) = lines.next().ok_or("empty file: no header row")?;
    let header: Vec<String> = split(head).map_err(|e| format!("line 1: {e}"))?;
    let subject = find(&header, &columns.subject, &SUBJECT_NAMES)?;
    let record = find(&header, &columns.record, &RECORD_NAMES)?;
    let values: Vec<usize> = (0..header.len())
        .filter(|c| Some(*c) != subject && Some(*c) != record)
        .collect();
    if values.is_empty() {
        return Err("no value columns besides the labels".into());
    }
    let mut out = Vec::new();
    for (n, line) in lines {
        let at = |detail: String| format!("line {}: {detail}", n + 1);
        let fields = split(line).map_err(at)?;
        if fields.len() != header.len() {
            return Err(at(format!("{} fields, the header has {}", fields.len(), header.len())));
        }
        let vector = values
            .iter()
            .map(|&c| {
                fields[c].trim().parse::<f32>().map_err(|_| {
                    at(format!(
                        "column {:?} holds {:?}, not a number (name label columns with --subject-column / --record-column)",
                        header[c], fields[c]
                    ))
                })
            })
            .collect::<Result<Vec<f32>, String>>()?;
        out.push(VectorRecord {
            subject_id: subject.map(|c| fields[c].clone()),
            record_id: record.map(|c| fields[c].clone()),
            vector,
            ..Default::default()
        });
    }
    Ok(out)
}

/// Splits one CSV line into fields.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(cur);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_by_default_names_and_by_choice() {
        let text = "utterance,speaker,e0,e1\nu1,1688,0.5,-1\n\"u,2\",1688,1e-3,2\n";
        let got = parse(text, &CsvColumns::default()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].subject_id.as_deref(), Some("1688"));
        assert_eq!(got[1].record_id.as_deref(), Some("u,2"));
        assert_eq!(got[1].vector, vec![1e-3, 2.0]);

        let text = "who,x\nann,1\n";
        let cols = CsvColumns {
            subject: Some("who".into()),
            record: None,
        };
        assert_eq!(parse(text, &cols).unwrap()[0].subject_id.as_deref(), Some("ann"));
    }

    #[test]
    fn bad_rows_name_their_line() {
        let cols = CsvColumns::default();
        let err = parse("name,x\na,1\nb,oops\n", &cols).unwrap_err();
        assert!(err.contains("line 3") && err.contains("not a number"), "{err}");
        let err = parse("name,x\na,1,2\n", &cols).unwrap_err();
        assert!(err.contains("3 fields"), "{err}");
        let wanted = CsvColumns {
            subject: Some("nope".into()),
            record: None,
        };
        assert!(parse("name,x\n", &wanted).unwrap_err().contains("no column named"));
        assert!(parse("", &cols).unwrap_err().contains("empty file"));
        assert!(parse("name,x\n\"a,1\n", &cols).unwrap_err().contains("unterminated"));
    }
}
