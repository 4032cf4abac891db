//! The set of galleries under one data directory.
//!
//! Each gallery lives in `<data dir>/galleries/<name>/`. A gallery that fails
//! to open (a checksum mismatch, say) is kept in the catalog as *broken*: it
//! is reported with its error, and nothing reads from or writes to it, while
//! the healthy galleries go on serving.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use tracing::error;

use crate::error::{IndexError, Result, io_err};
use crate::gallery::{Gallery, GalleryOptions};

/// A gallery as the catalog holds it.
#[derive(Clone)]
pub enum Entry {
    /// Open and serving.
    Ready(Arc<Gallery>),
    /// Failed to open; the string says why, naming the file at fault.
    Broken(Arc<str>),
}

/// All galleries of a data directory.
pub struct Catalog {
    root: PathBuf,
    opts: GalleryOptions,
    galleries: RwLock<BTreeMap<String, Entry>>,
    // Held for the catalog's lifetime: two servers on one data directory
    // would interleave log appends.
    _lock: File,
}

impl Catalog {
    /// Opens (creating if needed) the data directory `root` and every gallery
    /// in it. Fails only when the directory itself is unusable or locked.
    pub fn open(root: &Path, opts: GalleryOptions) -> Result<Catalog> {
        let gdir = root.join("galleries");
        std::fs::create_dir_all(&gdir).map_err(io_err(&gdir))?;
        let lock_path = root.join("LOCK");
        let lock = File::create(&lock_path).map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(IndexError::Locked(root.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let mut galleries = BTreeMap::new();
        let mut names: Vec<String> = std::fs::read_dir(&gdir)
            .map_err(io_err(&gdir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            let entry = match Gallery::open(&gdir.join(&name), &name, opts.clone()) {
                Ok(g) => Entry::Ready(Arc::new(g)),
                Err(e) => {
                    error!(gallery = %name, error = %e, "gallery not served");
                    Entry::Broken(e.to_string().into())
                }
            };
            galleries.insert(name, entry);
        }
        Ok(Catalog {
            root: root.to_path_buf(),
            opts,
            galleries: RwLock::new(galleries),
            _lock: lock,
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The named gallery: None when it does not exist, an `Unavailable`
    /// error when it is broken.
    pub fn get(&self, name: &str) -> Option<Result<Arc<Gallery>>> {
        self.galleries.read().get(name).map(|e| ready(name, e))
    }

    /// The named gallery, created with dimension `dim` when missing.
    pub fn get_or_create(&self, name: &str, dim: usize) -> Result<Arc<Gallery>> {
        if let Some(g) = self.get(name) {
            return g;
        }
        let mut all = self.galleries.write();
        if let Some(e) = all.get(name) {
            return ready(name, e);
        }
        let g = Arc::new(Gallery::create(
            &self.root.join("galleries").join(name),
            name,
            dim,
            self.opts.clone(),
        )?);
        all.insert(name.to_string(), Entry::Ready(g.clone()));
        Ok(g)
    }

    /// Every gallery, by name.
    pub fn entries(&self) -> Vec<(String, Entry)> {
        self.galleries
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The healthy galleries.
    pub fn ready(&self) -> Vec<Arc<Gallery>> {
        self.galleries
            .read()
            .values()
            .filter_map(|e| match e {
                Entry::Ready(g) => Some(g.clone()),
                Entry::Broken(_) => None,
            })
            .collect()
    }
}

fn ready(name: &str, e: &Entry) -> Result<Arc<Gallery>> {
    match e {
        Entry::Ready(g) => Ok(g.clone()),
        Entry::Broken(reason) => Err(IndexError::Unavailable {
            name: name.to_string(),
            reason: reason.to_string(),
        }),
    }
}
