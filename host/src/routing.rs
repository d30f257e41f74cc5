//! Which versions of a model serve its traffic, and how that is kept on disk.
//!
//! A model's routing is a list of versions with traffic weights (one version
//! at 100 in the common case; several for a canary or an A/B test), labels
//! (`stable`, `canary`), and the history of earlier routings that
//! `rollback` returns to. It is written to `<model>/routing.json` atomically:
//! a temporary file is written and synced, then renamed over the old one and
//! the directory synced, so that a crash leaves either the old or the new
//! routing on disk, never a torn one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// How many earlier routings are kept for rollback.
pub const HISTORY: usize = 20;

/// One version's share of a model's traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weighted {
    /// The version.
    pub version: String,
    /// Its weight; a version's share is its weight over the sum.
    pub weight: u32,
}

/// The routing of one model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// The versions that serve unversioned requests, with their weights.
    pub versions: Vec<Weighted>,
    /// Named pointers to versions (`stable`, `canary`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Earlier routings, newest last: what `rollback` returns to.
    #[serde(default)]
    pub history: Vec<Routing>,
}

impl Routing {
    /// A routing that sends all traffic to one version.
    pub fn single(version: &str) -> Routing {
        Routing {
            versions: vec![Weighted {
                version: version.to_string(),
                weight: 100,
            }],
            labels: BTreeMap::from([("stable".to_string(), version.to_string())]),
            history: Vec::new(),
        }
    }

    /// The routing without its history.
    fn current(&self) -> Routing {
        Routing {
            history: Vec::new(),
            ..self.clone()
        }
    }

    /// The routing after `next` replaces this one, remembering this one.
    pub fn then(&self, mut next: Routing) -> Routing {
        let mut history = self.history.clone();
        if !self.versions.is_empty() {
            history.push(self.current());
        }
        if history.len() > HISTORY {
            history.drain(..history.len() - HISTORY);
        }
        next.history = history;
        next
    }

    /// The routing a rollback returns to, or `None` when there is none.
    pub fn rolled_back(&self) -> Option<Routing> {
        let mut history = self.history.clone();
        let mut previous = history.pop()?;
        previous.history = history;
        Some(previous)
    }

    /// Check the weights: at least one version, no duplicates, a positive sum.
    pub fn validate(&self) -> Result<()> {
        if self.versions.is_empty() {
            bail!("a routing needs at least one version");
        }
        for (i, w) in self.versions.iter().enumerate() {
            if self.versions[..i].iter().any(|o| o.version == w.version) {
                bail!("version {} is listed twice", w.version);
            }
        }
        if self.versions.iter().map(|w| w.weight as u64).sum::<u64>() == 0 {
            bail!("the weights add up to 0: no version would get traffic");
        }
        Ok(())
    }

    /// Read `path`, or `None` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<Routing>> {
        match fs::read(path) {
            Ok(bytes) => {
                let routing: Routing = serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(Some(routing))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Write to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomically(path, &json)
    }
}

/// Write `bytes` to `path` so that a crash at any moment leaves either the
/// old file or the new one: write a temporary file beside it, sync it, rename
/// it over `path`, sync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, bytes, None)
}

/// [`write_atomically`], the file readable and writable by its owner only
/// (on Unix).
pub fn write_atomically_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, bytes, Some(0o600))
}

fn write_atomically_with(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    // A bare file name ("model.wasm") lies in the current directory.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let file_name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_returns_to_the_previous_routing() {
        let a = Routing::single("1.0.0");
        let b = a.then(Routing::single("2.0.0"));
        let c = b.then(Routing::single("3.0.0"));
        let back = c.rolled_back().expect("has history");
        assert_eq!(back.versions, b.versions);
        let back2 = back.rolled_back().expect("has history");
        assert_eq!(back2.versions, a.versions);
        assert!(back2.rolled_back().is_none());
    }

    #[test]
    fn history_is_bounded() {
        let mut r = Routing::single("0.0.0");
        for i in 1..100 {
            r = r.then(Routing::single(&format!("{i}.0.0")));
        }
        assert_eq!(r.history.len(), HISTORY);
        assert_eq!(r.history.last().unwrap().versions[0].version, "98.0.0");
    }

    #[test]
    fn refuses_bad_weights() {
        let mut r = Routing::single("1.0.0");
        r.versions[0].weight = 0;
        assert!(
            r.validate()
                .unwrap_err()
                .to_string()
                .contains("add up to 0")
        );
        r.versions = vec![];
        assert!(r.validate().is_err());
        let mut r = Routing::single("1.0.0");
        r.versions.push(r.versions[0].clone());
        assert!(r.validate().unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn atomic_write_round_trips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routing.json");
        let r = Routing::single("1.0.0").then(Routing::single("2.0.0"));
        r.write(&path).unwrap();
        assert_eq!(Routing::read(&path).unwrap(), Some(r));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(Routing::read(&dir.path().join("none.json")).unwrap(), None);
    }
}
