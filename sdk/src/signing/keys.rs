//! Ed25519 keys, their key ids, key files and the trust store.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::Sha256;

/// The first line of a secret key file.
pub const SECRET_KEY_HEADER: &str = "trademl-ed25519-secret-key v1";
/// The first line of a public key file.
pub const PUBLIC_KEY_HEADER: &str = "trademl-ed25519-public-key v1";
/// The length of a key id in bytes (hex: twice that).
pub const KEY_ID_LEN: usize = 12;

/// A key-file or trust-store problem, naming the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A key file would be overwritten.
    #[error("{} already exists; refusing to overwrite a key file", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A file is not a key of the expected kind.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key name that cannot be a file name.
    #[error(
        "invalid key name \"{0}\": use letters, digits, '.', '_' and '-', not starting with '.'"
    )]
    InvalidName(String),
}

/// A key id: the first 12 bytes of HMAC-SHA-256 keyed with `"key_id"` over
/// the 32-byte public key, as wasmsign2's default key id.
pub(crate) fn key_id_bytes(public: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    let mac = hmac_sha256(b"key_id", public);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&mac[..KEY_ID_LEN]);
    id
}

pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// An Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(pub(crate) VerifyingKey);

impl PublicKey {
    /// The key from its 32 bytes; refuses bytes that are not a curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, String> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| "not a valid Ed25519 public key".to_string())
    }

    /// The 32 bytes of the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key id as raw bytes (stored in signatures).
    pub fn key_id_bytes(&self) -> [u8; KEY_ID_LEN] {
        key_id_bytes(&self.0.to_bytes())
    }

    /// The key id, lowercase hex (24 characters).
    pub fn key_id(&self) -> String {
        hex::encode(self.key_id_bytes())
    }

    /// The public key file's text.
    pub fn to_file_text(&self) -> String {
        format!("{PUBLIC_KEY_HEADER}\n{}\n", hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// An Ed25519 secret key (the 32-byte seed).
#[derive(Clone)]
pub struct SecretKey(pub(crate) SigningKey);

impl SecretKey {
    /// The key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed. Keep it secret.
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key id of the matching public key, hex.
    pub fn key_id(&self) -> String {
        self.public().key_id()
    }

    /// The secret key file's text.
    pub fn to_file_text(&self) -> String {
        format!("{SECRET_KEY_HEADER}\n{}\n", hex::encode(self.to_seed()))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(key id {}, secret redacted)", self.key_id())
    }
}

/// A new secret key from the operating system's random source.
///
/// # Panics
///
/// If the operating system has no random source (getrandom fails), since a
/// key must never come from anything weaker.
pub fn generate() -> SecretKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system's random source failed");
    SecretKey::from_seed(&seed)
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Generates a key pair and writes `dir/NAME.key` (secret, mode 0600) and
/// `dir/NAME.pub`, creating `dir` if needed. Refuses to overwrite either
/// file. Returns the secret and public key paths.
pub fn write_keypair(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), KeyError> {
    if !valid_key_name(name) {
        return Err(KeyError::InvalidName(name.to_string()));
    }
    fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let secret_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    for p in [&secret_path, &public_path] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    let key = generate();
    write_new(&secret_path, key.to_file_text().as_bytes(), true)?;
    write_new(&public_path, key.public().to_file_text().as_bytes(), false)?;
    Ok((secret_path, public_path))
}

fn write_new(path: &Path, text: &[u8], secret: bool) -> Result<(), KeyError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            KeyError::Io {
                action: "write",
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(text).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Reads a key file: checks the header line and decodes the 32 hex bytes.
fn read_key_file(
    path: &Path,
    header: &str,
    other_header: &str,
    other: &str,
) -> Result<[u8; 32], KeyError> {
    let bad = |reason: String| KeyError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = fs::read(path).map_err(|source| KeyError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        bad(format!(
            "not a trademl key file (expected first line `{header}`)"
        ))
    })?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some(h) if h == header => {}
        Some(h) if h == other_header => {
            return Err(bad(format!(
                "this is a {other} key file, expected `{header}`"
            )));
        }
        _ => {
            return Err(bad(format!(
                "not a trademl key file (expected first line `{header}`)"
            )));
        }
    }
    let hex_line = lines
        .next()
        .ok_or_else(|| bad("the key is missing after the header line".into()))?;
    if lines.next().is_some() {
        return Err(bad("unexpected text after the key".into()));
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_line, &mut key)
        .map_err(|_| bad("the key must be 64 hexadecimal characters".into()))?;
    Ok(key)
}

/// Reads a secret key file written by [`write_keypair`].
pub fn read_secret_key(path: &Path) -> Result<SecretKey, KeyError> {
    let seed = read_key_file(path, SECRET_KEY_HEADER, PUBLIC_KEY_HEADER, "public")?;
    Ok(SecretKey::from_seed(&seed))
}

/// Reads a public key file written by [`write_keypair`].
pub fn read_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let bytes = read_key_file(path, PUBLIC_KEY_HEADER, SECRET_KEY_HEADER, "secret")?;
    PublicKey::from_bytes(&bytes).map_err(|reason| KeyError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// The public keys whose signatures are trusted, by name.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    keys: Vec<(String, PublicKey)>,
}

impl TrustStore {
    /// Reads every `*.pub` file in `dir`; a key's name is its file stem.
    /// Fails on a missing directory or on any bad `.pub` file, naming it.
    pub fn load(dir: &Path) -> Result<TrustStore, KeyError> {
        let io = |source| KeyError::Io {
            action: "read trust store directory",
            path: dir.to_path_buf(),
            source,
        };
        let mut keys = Vec::new();
        for entry in fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pub") || !path.is_file() {
                continue;
            }
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            keys.push((name, read_public_key(&path)?));
        }
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(TrustStore { keys })
    }

    /// A trust store holding exactly these named keys.
    pub fn from_keys(keys: Vec<(String, PublicKey)>) -> TrustStore {
        TrustStore { keys }
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The named keys.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &PublicKey)> {
        self.keys.iter().map(|(n, k)| (n.as_str(), k))
    }

    /// The keys whose key id is `id`.
    pub(crate) fn matching(&self, id: &[u8]) -> impl Iterator<Item = (&str, &PublicKey)> {
        self.keys()
            .filter(move |(_, k)| k.key_id_bytes().as_slice() == id)
    }
}
