//! Folders of template files (ISO/IEC 19794-2 records, ...), one template
//! per file, named by the file's stem.

use std::path::Path;

use crate::DatasetError;

/// Every regular file of `dir` as (file stem, bytes), in file-name order;
/// fails on an unreadable file or a name that is not UTF-8.
pub fn read_dir_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, DatasetError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DatasetError::Io { path, source }
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let stem = p
                .file_stem()
                .and_then(|s| s.to_str())
                .ok_or_else(|| DatasetError::Format {
                    path: p.clone(),
                    detail: "file name is not UTF-8".into(),
                })?
                .to_string();
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            Ok((stem, bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_back_in_name_order_without_subfolders() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("b_2.iso"), b"two").unwrap();
        std::fs::write(d.path().join("a_1.iso"), b"one").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let got = read_dir_files(d.path()).unwrap();
        assert_eq!(
            got,
            vec![("a_1".into(), b"one".to_vec()), ("b_2".into(), b"two".to_vec())]
        );
        let e = read_dir_files(&d.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
