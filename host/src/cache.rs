//! A cache of compiled components on disk, so that a restart does not
//! compile every model again.
//!
//! An entry is bound to the SHA-256 digest of the verified, signed content it
//! was compiled from, and authenticated with HMAC-SHA-256 under a key that
//! only this host knows (`<cache>/key`, created with mode 0600). Native code
//! from the cache is executed only if its tag verifies, so a cache file that
//! was changed — by a bit flip or by someone who can write to the cache
//! directory but cannot read the key — is detected, discarded and compiled
//! afresh, never executed. wasmtime itself refuses an entry compiled by
//! another version or configuration of the engine; that too falls back to a
//! fresh compile.
//!
//! Entry layout: `MAGIC`, the 32-byte tag, then wasmtime's serialized
//! component. The tag covers the digest and the serialized bytes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::routing::write_atomically;

const MAGIC: &[u8; 16] = b"trademl-cwasm-1\n";
const TAG_LEN: usize = 32;

/// The compiled-component cache of one host.
pub struct CompiledCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl CompiledCache {
    /// Open (or create) the cache in `dir`, with its key.
    pub fn open(dir: &Path) -> Result<CompiledCache> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let key_path = dir.join("key");
        let key = match fs::read(&key_path) {
            Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                anyhow::anyhow!(
                    "{} is not a 32-byte cache key; delete the cache directory to start afresh",
                    key_path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| anyhow::anyhow!("no randomness for the cache key: {e}"))?;
                let mut options = fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options
                    .open(&key_path)
                    .with_context(|| format!("creating {}", key_path.display()))?;
                f.write_all(&key)
                    .and_then(|()| f.sync_all())
                    .with_context(|| format!("writing {}", key_path.display()))?;
                key
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", key_path.display())),
        };
        Ok(CompiledCache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    fn tag(&self, digest: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(digest.as_bytes());
        mac.update(payload);
        mac
    }

    /// The component compiled from content with this digest, if the cache
    /// holds an authentic entry for it that this engine accepts. A refused
    /// entry is deleted and the reason logged.
    pub fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest);
        let bytes = fs::read(&path).ok()?;
        match self.check(engine, digest, &bytes) {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(
                    "discarding compiled cache entry {}: {err:#}",
                    path.display()
                );
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    fn check(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> Result<Component> {
        let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            bail!("not a trademl cache entry");
        };
        if rest.len() < TAG_LEN {
            bail!("truncated");
        }
        let (tag, payload) = rest.split_at(TAG_LEN);
        self.tag(digest, payload).verify_slice(tag).map_err(|_| {
            anyhow::anyhow!("its authentication tag does not verify: the file was changed")
        })?;
        // SAFETY: `Component::deserialize` runs native code as compiled. These
        // bytes are exactly what `store` wrote from `Component::serialize` of
        // this host's engine: the HMAC under this host's secret key, checked
        // just above in constant time, proves they have not been changed since.
        // wasmtime checks that the engine's version and configuration match.
        let component = unsafe { Component::deserialize(engine, payload) }
            .map_err(anyhow::Error::from)
            .context("wasmtime refused the entry")?;
        Ok(component)
    }

    /// Store a component compiled from content with this digest.
    pub fn store(&self, digest: &str, component: &Component) -> Result<()> {
        let payload = component
            .serialize()
            .map_err(anyhow::Error::from)
            .context("serializing the compiled component")?;
        let tag = self.tag(digest, &payload).finalize().into_bytes();
        let mut bytes = Vec::with_capacity(MAGIC.len() + TAG_LEN + payload.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&tag);
        bytes.extend_from_slice(&payload);
        write_atomically(&self.path(digest), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component: a header and nothing else.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    #[test]
    fn round_trips_and_refuses_changed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompiledCache::open(dir.path()).unwrap();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        let digest = "ab".repeat(32);
        assert!(cache.load(&engine, &digest).is_none(), "empty cache");
        cache.store(&digest, &component).unwrap();
        assert!(cache.load(&engine, &digest).is_some());

        // Another digest does not find it.
        assert!(cache.load(&engine, &"cd".repeat(32)).is_none());

        // A single flipped bit anywhere after the magic is detected, and the
        // entry is discarded.
        let path = cache.path(&digest);
        let good = fs::read(&path).unwrap();
        for at in [
            MAGIC.len(),
            MAGIC.len() + TAG_LEN,
            good.len() - 1,
            good.len() / 2,
        ] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            assert!(cache.load(&engine, &digest).is_none(), "flip at {at}");
            assert!(!path.exists(), "the refused entry is deleted");
        }

        // Another host's key does not accept this host's entries.
        fs::write(&path, &good).unwrap();
        let other = tempfile::tempdir().unwrap();
        let other_cache = CompiledCache::open(other.path()).unwrap();
        fs::copy(&path, other_cache.path(&digest)).unwrap();
        assert!(other_cache.load(&engine, &digest).is_none());
        // The key persists across opens.
        let reopened = CompiledCache::open(dir.path()).unwrap();
        assert!(reopened.load(&engine, &digest).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn the_key_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        CompiledCache::open(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join("key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}
