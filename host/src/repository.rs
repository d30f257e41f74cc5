//! The model repository: every loaded version of every model, and the
//! routing that decides which version answers.
//!
//! On disk (`AI_MODELS_PATH`, `models/` by default):
//!
//! ```text
//! trust/*.pub                  publisher keys whose signatures are accepted
//! <name>/<version>.wasm        signed components, immutable once written
//! <name>/routing.json          the model's routing, written atomically
//! ```
//!
//! In memory each model's routing sits behind an [`ArcSwap`]: a request takes
//! a snapshot, picks a version and holds an `Arc` to it until it finishes, so
//! a promotion or rollback — one atomic pointer swap, done after the new
//! routing is safely on disk — never fails or reroutes a request in flight.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use semver::Version;
use serde::Serialize;
use trademl_sdk::signing::TrustStore;

use crate::model::{LoadError, LoadedVersion};
use crate::routing::{Routing, Weighted, write_atomically};
use crate::sandbox::{Sandbox, Tier};

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No such model or version.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the repository's state.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The file was refused.
    #[error("refused: {0}")]
    Refused(#[from] LoadError),
    /// The host failed (disk, I/O).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A routing resolved to loaded versions.
pub struct Route {
    /// The routing as persisted.
    pub routing: Routing,
    targets: Vec<(Arc<LoadedVersion>, u64)>,
    total: u64,
}

impl Route {
    fn resolve(
        routing: Routing,
        versions: &BTreeMap<Version, Arc<LoadedVersion>>,
    ) -> Result<Route, RepoError> {
        routing
            .validate()
            .map_err(|e| RepoError::BadRequest(e.to_string()))?;
        let mut targets = Vec::new();
        for w in &routing.versions {
            let loaded = parse_version(&w.version)
                .ok()
                .and_then(|v| versions.get(&v))
                .ok_or_else(|| RepoError::NotFound(format!("no loaded version {}", w.version)))?;
            targets.push((loaded.clone(), w.weight as u64));
        }
        let total = targets.iter().map(|(_, w)| w).sum();
        Ok(Route {
            routing,
            targets,
            total,
        })
    }

    /// The versions this route sends traffic to and `next` does not.
    fn left_by<'a>(&'a self, next: &'a Route) -> impl Iterator<Item = &'a Arc<LoadedVersion>> {
        self.targets
            .iter()
            .map(|(v, _)| v)
            .filter(|v| !next.targets.iter().any(|(n, _)| Arc::ptr_eq(v, n)))
    }

    /// Pick a version by weight.
    pub fn pick(&self) -> &Arc<LoadedVersion> {
        if self.targets.len() == 1 {
            return &self.targets[0].0;
        }
        let mut r = fastrand::u64(0..self.total);
        for (v, w) in &self.targets {
            if r < *w {
                return v;
            }
            r -= w;
        }
        &self.targets[self.targets.len() - 1].0
    }
}

/// One model: its loaded versions and its routing.
pub struct ModelEntry {
    /// The model's name.
    pub name: String,
    versions: RwLock<BTreeMap<Version, Arc<LoadedVersion>>>,
    route: ArcSwap<Route>,
}

impl ModelEntry {
    /// The current routing.
    pub fn route(&self) -> Arc<Route> {
        self.route.load_full()
    }

    /// A version by its string, if loaded.
    pub fn version(&self, version: &str) -> Option<Arc<LoadedVersion>> {
        let v = parse_version(version).ok()?;
        self.versions.read().expect("lock").get(&v).cloned()
    }

    /// All loaded versions, oldest first.
    pub fn versions(&self) -> Vec<Arc<LoadedVersion>> {
        self.versions
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }
}

/// The state of one version, as listed by the repository API.
#[derive(Debug, Serialize)]
pub struct VersionInfo {
    /// The version.
    pub version: String,
    /// SHA-256 of the signed content.
    pub digest: String,
    /// The key that signed it.
    pub signer: String,
    /// `serving` when it gets traffic, `ready` otherwise.
    pub state: &'static str,
    /// The compiler of the code that serves it: `cranelift`, or `winch`
    /// while a large component's Cranelift compile runs in the background.
    pub compiler: Tier,
}

/// What `GET /v2/repository/models/{name}/versions` returns.
#[derive(Debug, Serialize)]
pub struct ModelVersions {
    /// The model.
    pub name: String,
    /// Every loaded version.
    pub versions: Vec<VersionInfo>,
    /// The current routing.
    pub routing: Routing,
}

/// What a publish returns.
#[derive(Debug, Serialize)]
pub struct Published {
    /// The model.
    pub name: String,
    /// The version.
    pub version: String,
    /// SHA-256 of the signed content.
    pub digest: String,
    /// Whether the version now gets traffic (true for a model's first version).
    pub routed: bool,
}

/// Every model the server serves.
pub struct Repository {
    root: PathBuf,
    trust: TrustStore,
    sandbox: Arc<Sandbox>,
    deadline: Duration,
    models: RwLock<BTreeMap<String, Arc<ModelEntry>>>,
    admin: tokio::sync::Mutex<()>,
}

impl Repository {
    /// Open the repository at `root`: read its trust store and load every
    /// model file, logging (and skipping) each file that is refused.
    pub fn open(root: &Path, sandbox: Arc<Sandbox>, deadline: Duration) -> Result<Repository> {
        let trust_dir = root.join("trust");
        let trust = TrustStore::load(&trust_dir)
            .with_context(|| format!("reading the trust store {}", trust_dir.display()))?;
        if trust.is_empty() {
            tracing::warn!(
                "the trust store {} holds no keys: every model will be refused",
                trust_dir.display()
            );
        }
        let repo = Repository {
            root: root.to_path_buf(),
            trust,
            sandbox,
            deadline,
            models: RwLock::new(BTreeMap::new()),
            admin: tokio::sync::Mutex::new(()),
        };
        repo.load_all()?;
        Ok(repo)
    }

    fn load_all(&self) -> Result<()> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .with_context(|| format!("reading the model repository {}", self.root.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n != "trust" && !n.to_string_lossy().starts_with('.'))
            })
            .collect();
        dirs.sort();
        for dir in dirs {
            let name = dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
                .collect();
            files.sort();
            let mut versions = BTreeMap::new();
            for file in files {
                match self.load_file(&name, &file) {
                    Ok(loaded) => {
                        tracing::info!(
                            model = %name,
                            version = %loaded.version(),
                            signer = %loaded.signer,
                            verify_ms = loaded.timings.verify.as_secs_f64() * 1e3,
                            compile_ms = loaded.timings.compile.as_secs_f64() * 1e3,
                            cached = loaded.timings.from_cache,
                            compiler = ?loaded.tier(),
                            check_ms = loaded.timings.check.as_secs_f64() * 1e3,
                            "loaded {}",
                            file.display()
                        );
                        let v = parse_version(loaded.version()).expect("validated by the manifest");
                        versions.insert(v, Arc::new(loaded));
                    }
                    Err(err) => tracing::warn!("refused {}: {err}", file.display()),
                }
            }
            if versions.is_empty() {
                continue;
            }
            let routing_path = dir.join("routing.json");
            let stored = match Routing::read(&routing_path) {
                Ok(r) => r,
                Err(err) => {
                    tracing::warn!("ignoring {}: {err:#}", routing_path.display());
                    None
                }
            };
            let route = match stored.map(|r| Route::resolve(r, &versions)) {
                Some(Ok(route)) => route,
                other => {
                    if let Some(Err(err)) = other {
                        tracing::warn!(
                            "routing of {name} names a version that did not load ({err}); routing to the newest version"
                        );
                    }
                    let newest = versions.keys().next_back().expect("non-empty").to_string();
                    Route::resolve(Routing::single(&newest), &versions).expect("loaded")
                }
            };
            self.models.write().expect("lock").insert(
                name.clone(),
                Arc::new(ModelEntry {
                    name,
                    versions: RwLock::new(versions),
                    route: ArcSwap::from_pointee(route),
                }),
            );
        }
        Ok(())
    }

    fn load_file(&self, dir_name: &str, file: &Path) -> Result<LoadedVersion, LoadError> {
        let bytes = std::fs::read(file)
            .map_err(|e| LoadError::Manifest(format!("reading the file: {e}")))?;
        let loaded = LoadedVersion::load(&self.sandbox, &bytes, &self.trust, self.deadline)?;
        let stem = file.file_stem().unwrap_or_default().to_string_lossy();
        if loaded.name() != dir_name || loaded.version() != stem {
            return Err(LoadError::Manifest(format!(
                "the manifest says {} {} but the file is stored as {dir_name}/{stem}.wasm",
                loaded.name(),
                loaded.version()
            )));
        }
        Ok(loaded)
    }

    /// The repository's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sandbox models run in.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// A model by name.
    pub fn model(&self, name: &str) -> Result<Arc<ModelEntry>, RepoError> {
        self.models
            .read()
            .expect("lock")
            .get(name)
            .cloned()
            .ok_or_else(|| {
                let known = self.names();
                RepoError::NotFound(format!(
                    "unknown model \"{name}\"; this server has {}",
                    if known.is_empty() {
                        "no models".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            })
    }

    /// The version that should answer a request: the named one, or one
    /// picked by the model's routing.
    pub fn resolve(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<LoadedVersion>, RepoError> {
        let model = self.model(name)?;
        match version {
            Some(v) => model.version(v).ok_or_else(|| {
                RepoError::NotFound(format!(
                    "model \"{name}\" has no version \"{v}\"; it has {}",
                    model
                        .versions()
                        .iter()
                        .map(|l| l.version().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
            None => Ok(model.route().pick().clone()),
        }
    }

    /// The names of every model, sorted.
    pub fn names(&self) -> Vec<String> {
        self.models.read().expect("lock").keys().cloned().collect()
    }

    /// Every model.
    pub fn models(&self) -> Vec<Arc<ModelEntry>> {
        self.models
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }

    /// The versions and routing of a model.
    pub fn versions(&self, name: &str) -> Result<ModelVersions, RepoError> {
        let model = self.model(name)?;
        let route = model.route();
        let versions = model
            .versions()
            .iter()
            .map(|l| VersionInfo {
                version: l.version().to_string(),
                digest: l.digest.clone(),
                signer: l.signer.clone(),
                state: if route
                    .routing
                    .versions
                    .iter()
                    .any(|w| w.version == l.version() && w.weight > 0)
                {
                    "serving"
                } else {
                    "ready"
                },
                compiler: l.tier(),
            })
            .collect();
        Ok(ModelVersions {
            name: model.name.clone(),
            versions,
            routing: route.routing.clone(),
        })
    }

    /// Publish a signed model file: verify, compile and check it, store it,
    /// and make it addressable. A model's first version is routed at once;
    /// later versions wait for [`Repository::promote`].
    pub async fn publish(
        self: &Arc<Self>,
        expected_name: Option<&str>,
        bytes: Vec<u8>,
    ) -> Result<Published, RepoError> {
        let _admin = self.admin.lock().await;
        let this = self.clone();
        let (loaded, bytes) = tokio::task::spawn_blocking(move || {
            LoadedVersion::load(&this.sandbox, &bytes, &this.trust, this.deadline)
                .map(|l| (l, bytes))
        })
        .await
        .map_err(|e| RepoError::Internal(anyhow::anyhow!("publish task failed: {e}")))??;
        let name = loaded.name().to_string();
        let version_text = loaded.version().to_string();
        if let Some(expected) = expected_name
            && expected != name
        {
            return Err(RepoError::BadRequest(format!(
                "the file's manifest names model \"{name}\", not \"{expected}\""
            )));
        }
        let version = parse_version(&version_text).map_err(RepoError::BadRequest)?;
        let existing = self.models.read().expect("lock").get(&name).cloned();
        if let Some(model) = &existing
            && let Some(old) = model.version(&version_text)
        {
            if old.digest == loaded.digest {
                return Ok(Published {
                    name,
                    version: version_text,
                    digest: loaded.digest.clone(),
                    routed: model
                        .route()
                        .routing
                        .versions
                        .iter()
                        .any(|w| w.version == old.version()),
                });
            }
            return Err(RepoError::Conflict(format!(
                "{name} {version_text} is already published with digest {}; versions are immutable, publish a new version",
                old.digest
            )));
        }

        let dir = self.root.join(&name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomically(&dir.join(format!("{version_text}.wasm")), &bytes)?;
        let digest = loaded.digest.clone();
        let loaded = Arc::new(loaded);

        let routed = match existing {
            Some(model) => {
                model
                    .versions
                    .write()
                    .expect("lock")
                    .insert(version, loaded);
                false
            }
            None => {
                let routing = Routing::single(&version_text);
                routing.write(&dir.join("routing.json"))?;
                let versions = BTreeMap::from([(version, loaded)]);
                let route = Route::resolve(routing, &versions)?;
                self.models.write().expect("lock").insert(
                    name.clone(),
                    Arc::new(ModelEntry {
                        name: name.clone(),
                        versions: RwLock::new(versions),
                        route: ArcSwap::from_pointee(route),
                    }),
                );
                true
            }
        };
        tracing::info!(model = %name, version = %version_text, %digest, routed, "published");
        Ok(Published {
            name,
            version: version_text,
            digest,
            routed,
        })
    }

    /// Send all of a model's traffic to `version`.
    pub async fn promote(&self, name: &str, version: &str) -> Result<Routing, RepoError> {
        self.change_routing(name, |current| {
            let mut next = Routing::single(version);
            next.labels = current.labels.clone();
            next.labels.insert("stable".into(), version.to_string());
            next.labels.remove("canary");
            Ok(current.then(next))
        })
        .await
    }

    /// Split a model's traffic between versions by weight (a canary or an
    /// A/B test).
    pub async fn set_traffic(
        &self,
        name: &str,
        versions: Vec<Weighted>,
    ) -> Result<Routing, RepoError> {
        self.change_routing(name, |current| {
            let mut next = current.clone();
            next.versions = versions;
            next.history.clear();
            Ok(current.then(next))
        })
        .await
    }

    /// Return a model to its previous routing.
    pub async fn rollback(&self, name: &str) -> Result<Routing, RepoError> {
        self.change_routing(name, |current| {
            current.rolled_back().ok_or_else(|| {
                RepoError::Conflict(format!(
                    "model \"{name}\" has no earlier routing to roll back to"
                ))
            })
        })
        .await
    }

    async fn change_routing(
        &self,
        name: &str,
        change: impl FnOnce(&Routing) -> Result<Routing, RepoError>,
    ) -> Result<Routing, RepoError> {
        let _admin = self.admin.lock().await;
        let model = self.model(name)?;
        let current = model.route();
        let next = change(&current.routing)?;
        let route = {
            let versions = model.versions.read().expect("lock");
            Route::resolve(next, &versions)?
        };
        // On disk first: if the write fails, nothing changed.
        route
            .routing
            .write(&self.root.join(name).join("routing.json"))?;
        let routing = route.routing.clone();
        let route = Arc::new(route);
        model.route.store(route.clone());
        // The versions that lost their traffic give up their spare
        // instances, which would otherwise hold pool slots for calls that
        // may never come. A call still running on such a version makes its
        // spares again when it ends, as does a call that names the version:
        // at most two per version, as before this change.
        for version in current.left_by(&route) {
            version.drop_spares();
        }
        tracing::info!(model = %name, routing = ?routing.versions, "routing changed");
        Ok(routing)
    }
}

fn parse_version(v: &str) -> Result<Version, String> {
    Version::parse(v).map_err(|e| format!("\"{v}\" is not a semantic version: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxConfig;

    /// Two loaded versions (the shipped anomaly-detection, loaded twice) as
    /// a model's 1.0.0 and 2.0.0.
    fn two_versions() -> BTreeMap<Version, Arc<LoadedVersion>> {
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let trust = TrustStore::load(&models.join("trust")).unwrap();
        let bytes = std::fs::read(models.join("anomaly-detection/1.0.1.wasm")).unwrap();
        ["1.0.0", "2.0.0"]
            .into_iter()
            .map(|v| {
                let loaded =
                    LoadedVersion::load(&sandbox, &bytes, &trust, Duration::from_secs(5)).unwrap();
                (Version::parse(v).unwrap(), Arc::new(loaded))
            })
            .collect()
    }

    fn route(versions: &BTreeMap<Version, Arc<LoadedVersion>>, weights: &[(&str, u32)]) -> Route {
        let routing = Routing {
            versions: weights
                .iter()
                .map(|&(version, weight)| Weighted {
                    version: version.to_string(),
                    weight,
                })
                .collect(),
            ..Routing::default()
        };
        Route::resolve(routing, versions).unwrap()
    }

    /// The versions whose spares `change_routing` drops are those that lose
    /// their traffic, and only those; then, as `change_routing` does, they
    /// give their spares up while the version that keeps its traffic keeps
    /// its own. (`change_routing` itself is not run here: a repository with
    /// two versions of one model needs two signed files of it, which the
    /// unit tests do not have; the e2e hot-swap tests promote and roll back.)
    #[test]
    fn the_versions_a_routing_change_leaves_are_those_that_lose_their_traffic() {
        let versions = two_versions();
        let v1 = &versions[&Version::new(1, 0, 0)];
        let v2 = &versions[&Version::new(2, 0, 0)];
        let left = |from: &Route, to: &Route| -> Vec<String> {
            from.left_by(to)
                .map(|v| {
                    let key = versions.iter().find(|(_, l)| Arc::ptr_eq(l, v)).unwrap().0;
                    key.to_string()
                })
                .collect()
        };
        let only_1 = route(&versions, &[("1.0.0", 100)]);
        let only_2 = route(&versions, &[("2.0.0", 100)]);
        let canary = route(&versions, &[("1.0.0", 90), ("2.0.0", 10)]);
        assert_eq!(left(&only_1, &only_2), ["1.0.0"]);
        assert_eq!(left(&only_1, &canary), Vec::<String>::new());
        assert_eq!(left(&canary, &only_2), ["1.0.0"]);
        assert_eq!(left(&canary, &only_1), ["2.0.0"]);
        assert_eq!(left(&only_2, &only_2), Vec::<String>::new());

        // What the repository then does with them.
        v1.make_spares();
        v2.make_spares();
        for v in only_1.left_by(&only_2) {
            v.drop_spares();
        }
        assert_eq!(v1.spares_ready(), 0);
        assert!(
            v2.spares_ready() > 0,
            "the version that keeps its traffic keeps its spares"
        );
    }
}
