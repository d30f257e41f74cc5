//! A cache of compiled components on disk, so that a restart does not
//! compile every model again.
//!
//! An entry is bound to the SHA-256 digest of the verified, signed content it
//! was compiled from, and authenticated with keyed BLAKE3 under a key that
//! only this host knows (`<cache>/key`, created with mode 0600). Native code
//! from the cache is executed only if its tag verifies, so a cache file that
//! was changed — by a bit flip or by someone who can write to the cache
//! directory but cannot read the key — is detected, discarded and compiled
//! afresh, never executed. wasmtime itself refuses an entry compiled by
//! another version or configuration of the engine; that too falls back to a
//! fresh compile.
//!
//! An entry is two files: `<digest>.cwasm`, wasmtime's serialized component
//! as it is, and `<digest>.tag`, `MAGIC` then the 32-byte tag over the digest
//! and the `.cwasm` bytes. Both are written with mode 0600 and replaced by
//! rename, never changed in place.
//!
//! Loading maps the `.cwasm` file rather than copying it (a large model's
//! compiled code is tens of megabytes): the tag is checked on the mapped
//! pages, and wasmtime maps the same open file (`/proc/self/fd/N`, never the
//! path again, which another writer of the directory could swap). This is
//! sound because only the file's owner can change a mode-0600 file's bytes,
//! and that owner is this host, which only ever replaces entries by rename;
//! a process running as this host's user could read the key anyway. A file
//! that others may write, or a system without `/proc`, is read into memory
//! instead, and the tag checked on that copy.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::routing::write_atomically_private;

/// Bumped whenever trademl's own change to wasmtime's compiler changes
/// (vendor/README.md): wasmtime checks that an entry was compiled by its own
/// version, and a patched compiler has the same version as the original.
/// An entry with an older tag is compiled afresh.
const MAGIC: &[u8; 16] = b"trademl-cwasm-3\n";
/// What every version of `MAGIC` starts with.
const MAGIC_FAMILY: &[u8] = b"trademl-cwasm-";
const TAG_LEN: usize = 32;

/// Payloads above this size are hashed on every core.
const PARALLEL_HASH_ABOVE: usize = 1 << 20;

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

    fn tag_path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.tag"))
    }

    fn tag(&self, digest: &str, payload: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(digest.as_bytes());
        if payload.len() > PARALLEL_HASH_ABOVE {
            hasher.update_rayon(payload);
        } else {
            hasher.update(payload);
        }
        hasher.finalize()
    }

    /// Whether `tag` authenticates `payload` as compiled from `digest`.
    fn authentic(&self, digest: &str, payload: &[u8], tag: &[u8; TAG_LEN]) -> Result<()> {
        // `blake3::Hash` compares in constant time.
        if self.tag(digest, payload) != blake3::Hash::from_bytes(*tag) {
            bail!("its authentication tag does not verify: the file was changed");
        }
        Ok(())
    }

    /// The component compiled from content with this digest, if the cache
    /// holds an authentic entry for it that this engine accepts. A refused
    /// entry is deleted and the reason logged.
    pub fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let tag_path = self.tag_path(digest);
        let tag = match fs::read(&tag_path) {
            Ok(tag) => tag,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(
                    "not using the compiled cache entry {}: {e}",
                    tag_path.display()
                );
                return None;
            }
        };
        match self.check(engine, digest, &tag) {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(
                    "discarding compiled cache entry {}: {err:#}",
                    self.path(digest).display()
                );
                let _ = fs::remove_file(&tag_path);
                let _ = fs::remove_file(self.path(digest));
                None
            }
        }
    }

    fn check(&self, engine: &Engine, digest: &str, tag_file: &[u8]) -> Result<Component> {
        let Some(tag) = tag_file.strip_prefix(MAGIC.as_slice()) else {
            if tag_file.starts_with(MAGIC_FAMILY) {
                bail!("it was compiled by another release of trademl's compiler");
            }
            bail!("its tag file is not a trademl cache tag");
        };
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| {
            anyhow::anyhow!("its tag file holds {} bytes, not {TAG_LEN}", tag.len())
        })?;
        let path = self.path(digest);
        let mut file =
            fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            bail!("it is not a regular file");
        }
        #[cfg(target_os = "linux")]
        if only_this_user_can_write(&metadata) {
            // SAFETY: the file's bytes cannot change while mapped: only its
            // owner (this host's user) may write it, and the host replaces
            // entries by rename, never in place (see the module documentation).
            let mapped = unsafe { memmap2::Mmap::map(&file) }
                .with_context(|| format!("mapping {}", path.display()))?;
            self.authentic(digest, &mapped, tag)?;
            use std::os::fd::AsRawFd;
            let same_file = format!("/proc/self/fd/{}", file.as_raw_fd());
            if Path::new(&same_file).exists() {
                // SAFETY: `Component::deserialize_file` runs native code as
                // compiled. The file it maps is the open file whose bytes the
                // tag under this host's secret key, checked just above in
                // constant time, proves unchanged since `store` wrote them
                // from `Component::serialize` of this host's engine; they
                // cannot change since (above). wasmtime checks that the
                // engine's version and configuration match.
                match unsafe { Component::deserialize_file(engine, &same_file) } {
                    Ok(component) => return Ok(component),
                    // A cache on a file system mounted noexec cannot map code
                    // executable: copy it into memory instead, below.
                    Err(err) => tracing::debug!(
                        "mapping {} as code failed ({err:#}); copying it",
                        path.display()
                    ),
                }
            }
            // SAFETY: as below, on the bytes just authenticated.
            return accepted(unsafe { Component::deserialize(engine, &mapped[..]) });
        }
        let mut payload = Vec::with_capacity(metadata.len() as usize);
        file.read_to_end(&mut payload)
            .with_context(|| format!("reading {}", path.display()))?;
        self.authentic(digest, &payload, tag)?;
        // SAFETY: `Component::deserialize` runs native code as compiled. These
        // bytes are exactly what `store` wrote from `Component::serialize` of
        // this host's engine: the tag under this host's secret key, checked
        // just above in constant time, proves they have not been changed since.
        // wasmtime checks that the engine's version and configuration match.
        accepted(unsafe { Component::deserialize(engine, &payload) })
    }

    /// Store a component compiled from content with this digest.
    pub fn store(&self, digest: &str, component: &Component) -> Result<()> {
        let payload = component
            .serialize()
            .map_err(anyhow::Error::from)
            .context("serializing the compiled component")?;
        let mut tag = Vec::with_capacity(MAGIC.len() + TAG_LEN);
        tag.extend_from_slice(MAGIC);
        tag.extend_from_slice(self.tag(digest, &payload).as_bytes());
        // The code first: a crash between the two leaves code without a
        // tag, which is a miss, never code under another entry's tag.
        let _ = fs::remove_file(self.tag_path(digest));
        write_atomically_private(&self.path(digest), &payload)?;
        write_atomically_private(&self.tag_path(digest), &tag)
    }
}

/// wasmtime's answer to an entry, with what refused it.
fn accepted(component: wasmtime::Result<Component>) -> Result<Component> {
    component
        .map_err(anyhow::Error::from)
        .context("wasmtime refused the entry")
}

/// Whether no one but its owner, this process's user, may write the file.
#[cfg(target_os = "linux")]
fn only_this_user_can_write(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    metadata.uid() == rustix::process::geteuid().as_raw() && metadata.mode() & 0o022 == 0
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

        // A single flipped bit anywhere in the code or in the tag is
        // detected, and the entry is discarded.
        let (code_path, tag_path) = (cache.path(&digest), cache.tag_path(&digest));
        let (code, tag) = (fs::read(&code_path).unwrap(), fs::read(&tag_path).unwrap());
        let restore = || {
            write_atomically_private(&code_path, &code).unwrap();
            write_atomically_private(&tag_path, &tag).unwrap();
        };
        for at in [0, code.len() / 2, code.len() - 1] {
            restore();
            let mut bad = code.clone();
            bad[at] ^= 0x10;
            write_atomically_private(&code_path, &bad).unwrap();
            assert!(cache.load(&engine, &digest).is_none(), "code flip at {at}");
            assert!(
                !code_path.exists() && !tag_path.exists(),
                "the refused entry is deleted"
            );
        }
        for at in [0, MAGIC.len(), tag.len() - 1] {
            restore();
            let mut bad = tag.clone();
            bad[at] ^= 0x10;
            write_atomically_private(&tag_path, &bad).unwrap();
            assert!(cache.load(&engine, &digest).is_none(), "tag flip at {at}");
            assert!(
                !code_path.exists() && !tag_path.exists(),
                "the refused entry is deleted"
            );
        }
        // An entry written by a release whose compiler differed, which
        // wasmtime cannot tell apart, is compiled afresh.
        restore();
        let mut earlier = b"trademl-cwasm-2\n".to_vec();
        earlier.extend_from_slice(&tag[MAGIC.len()..]);
        let refusal = cache.check(&engine, &digest, &earlier).unwrap_err();
        assert!(
            refusal.to_string().contains("another release"),
            "{refusal:#}"
        );
        write_atomically_private(&tag_path, &earlier).unwrap();
        assert!(cache.load(&engine, &digest).is_none(), "earlier release");
        assert!(!tag_path.exists(), "the refused entry is deleted");
        // Code without its tag (a crash between the two writes) is a miss.
        restore();
        fs::remove_file(&tag_path).unwrap();
        assert!(cache.load(&engine, &digest).is_none(), "no tag");
        // A truncated tag is refused.
        restore();
        fs::write(&tag_path, &tag[..tag.len() - 1]).unwrap();
        assert!(cache.load(&engine, &digest).is_none(), "short tag");

        // Another host's key does not accept this host's entries.
        restore();
        let other = tempfile::tempdir().unwrap();
        let other_cache = CompiledCache::open(other.path()).unwrap();
        fs::copy(&code_path, other_cache.path(&digest)).unwrap();
        fs::copy(&tag_path, other_cache.tag_path(&digest)).unwrap();
        assert!(other_cache.load(&engine, &digest).is_none());
        // The key persists across opens.
        let reopened = CompiledCache::open(dir.path()).unwrap();
        assert!(reopened.load(&engine, &digest).is_some());
    }

    /// An entry that others could have written (read rather than mapped)
    /// is still authenticated.
    #[cfg(unix)]
    #[test]
    fn an_entry_others_may_write_is_still_authenticated() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompiledCache::open(dir.path()).unwrap();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        let digest = "ef".repeat(32);
        cache.store(&digest, &component).unwrap();
        let code_path = cache.path(&digest);
        let mode = fs::metadata(&code_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "stored with mode {mode:o}");
        fs::set_permissions(&code_path, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(cache.load(&engine, &digest).is_some());
        let mut bad = fs::read(&code_path).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        fs::write(&code_path, &bad).unwrap();
        assert!(cache.load(&engine, &digest).is_none());
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
