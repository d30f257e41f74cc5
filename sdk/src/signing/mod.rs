//! Ed25519 signatures of model components, in the WebAssembly
//! tool-conventions signature format.
//!
//! # What is implemented
//!
//! The format is `Signatures.md` in `WebAssembly/tool-conventions`, with the
//! byte layout of its reference implementation, wasmsign2 (which adds a
//! length prefix before each signed-hash set and each signature record):
//!
//! - a custom section named `signature`, placed first, right after the
//!   8-byte preamble;
//! - its data: `spec_version` (`0x01`), `content_type` (`0x01`), `hash_fn`
//!   (`0x01` = SHA-256), then a `varuint32` count of signed-hash sets; each
//!   set is `varuint32` length + (`varuint32` hash count, the 32-byte
//!   hashes, `varuint32` signature count, then per signature `varuint32`
//!   length + (`varuint32` key-id length, key id, algorithm byte `0x01` =
//!   Ed25519, `varuint32` length 64, the signature));
//! - the hash: SHA-256 of every byte after the signature section (all the
//!   other sections, in file order) — the file is signed whole, as one part,
//!   without `signature_delimiter` sections. This is [`digest_of_content`];
//! - the signed message: `"wasmsig" ‖ 0x01 ‖ 0x01 ‖ 0x01 ‖ hash`
//!   (domain, spec version, content type, hash function, hashes);
//! - the key id stored with each signature: the first 12 bytes of
//!   HMAC-SHA-256 keyed with `"key_id"` over the 32-byte public key — the
//!   default key id of wasmsign2; shown as 24 hex characters;
//! - a second signer adds its signature to the same hash set, so every
//!   earlier signature stays valid.
//!
//! # Where it departs from the spec or wasmsign2
//!
//! - Components use content type `0x01` too. The spec says everything it
//!   says of modules applies to components and defines no other content
//!   type; wasmsign2 refuses any other value. The preamble (which tells a
//!   module from a component) is not covered by the hash, as in wasmsign2;
//!   [`verify`] accepts only the exact module or component preamble.
//! - The hash covers the raw bytes after the signature section, where
//!   wasmsign2 re-serialises each section; the two agree on files whose
//!   section sizes use the shortest LEB128 encoding, which is what every
//!   toolchain writes.
//! - Verification is stricter than "one valid signature suffices": a
//!   signature section that is not first, unknown algorithms, wrong lengths
//!   and trailing bytes are refused as malformed; every signature made by a
//!   trusted key must verify (Ed25519 strict verification) and cover the
//!   current content, and at least one must exist. Signatures by keys that
//!   are not in the trust store are ignored. Partial signatures (several
//!   hashes and delimiters) are not produced; a hash set is accepted when any
//!   of its hashes equals the digest of the whole content.
//! - Detached signatures are not supported.
//! - Keys are stored in trademl's own text files (see [`write_keypair`]),
//!   not in wasmsign2's binary key encodings.

mod format;
mod keys;

#[cfg(test)]
mod tests;

pub use format::{Signature, SignedHashes};
pub use keys::{
    KEY_ID_LEN, KeyError, PUBLIC_KEY_HEADER, PublicKey, SECRET_KEY_HEADER, SecretKey, TrustStore,
    generate, read_public_key, read_secret_key, write_keypair,
};

use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};

use crate::wasm::{self, FormatError, HEADER_LEN};

/// The name of the custom section holding the signatures.
pub const SECTION: &str = "signature";

/// Why a file could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The file does not start with `\0asm`.
    #[error("not a WebAssembly file (no \\0asm header)")]
    NotWasm,
    /// The file's framing or existing signature section is broken.
    #[error("malformed file at byte {offset}: {reason}")]
    Malformed {
        /// Where.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// This key already signed the file.
    #[error("already signed by key {key_id}")]
    AlreadySigned {
        /// The key's id, hex.
        key_id: String,
    },
    /// The file changed after an earlier signature was made, so adding one
    /// would leave a signature that no longer matches.
    #[error(
        "the file was changed after it was signed; remove the old signature section first, or sign the original file"
    )]
    AlteredSinceSigned,
    /// Too many signatures for the format.
    #[error("too many signatures (at most {max})")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
}

/// Why a file did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The file does not start with `\0asm`.
    #[error("not a WebAssembly file (no \\0asm header)")]
    NotWasm,
    /// The file's framing or signature section is broken.
    #[error("malformed file at byte {offset}: {reason}")]
    Malformed {
        /// Where.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// There is no signature section.
    #[error("not signed: the file has no signature section")]
    Unsigned,
    /// No signature was made by a trusted key.
    #[error("signed only by keys not in the trust store: {}", key_ids.join(", "))]
    Untrusted {
        /// The ids (hex) of the keys that did sign.
        key_ids: Vec<String>,
    },
    /// A trusted signature is valid, but over other content.
    #[error("altered after signing: the content's SHA-256 does not match any signed digest")]
    Altered,
    /// A signature claiming a trusted key is invalid.
    #[error("the signature by trusted key {key_name} does not verify")]
    BadSignature {
        /// The trusted key's name.
        key_name: String,
    },
    /// The trust store is empty, so nothing can verify.
    #[error("no trusted keys: the trust store is empty; add the publisher's .pub file to it")]
    NoTrustedKeys,
}

impl From<FormatError> for SignError {
    fn from(e: FormatError) -> Self {
        SignError::Malformed {
            offset: e.offset,
            reason: e.reason,
        }
    }
}

impl From<FormatError> for VerifyError {
    fn from(e: FormatError) -> Self {
        VerifyError::Malformed {
            offset: e.offset,
            reason: e.reason,
        }
    }
}

/// What a successful verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// SHA-256 of the signed content ([`digest_of_content`]).
    pub digest: [u8; 32],
    /// The name of the (first) trusted key that signed it.
    pub key_name: String,
    /// That key's id, hex.
    pub key_id: String,
}

/// A file split at its signature section.
struct Split {
    /// The signature section's data, if the file has one.
    signature: Option<std::ops::Range<usize>>,
    /// Where the signed content starts.
    content_start: usize,
}

fn split(bytes: &[u8]) -> Result<Split, FormatError> {
    let secs = wasm::sections(bytes)?;
    if let Some(s) = secs.iter().skip(1).find(|s| s.is_custom(SECTION)) {
        return Err(FormatError {
            offset: s.range.start,
            reason: "a signature section must be the first section".into(),
        });
    }
    Ok(match secs.first() {
        Some(s) if s.is_custom(SECTION) => Split {
            signature: Some(s.data.clone()),
            content_start: s.range.end,
        },
        _ => Split {
            signature: None,
            content_start: HEADER_LEN,
        },
    })
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// SHA-256 of everything after the signature section (after the preamble if
/// the file is unsigned): the digest a signature covers. The host binds its
/// compiled-code cache to it.
pub fn digest_of_content(bytes: &[u8]) -> Result<[u8; 32], VerifyError> {
    if !wasm::has_magic(bytes) {
        return Err(VerifyError::NotWasm);
    }
    let s = split(bytes)?;
    Ok(sha256(&bytes[s.content_start..]))
}

/// A copy of `bytes` without its signature section.
pub fn strip_signatures(bytes: &[u8]) -> Result<Vec<u8>, FormatError> {
    wasm::without_custom_section(bytes, SECTION)
}

/// The key ids (hex) of every signature the file carries, without checking
/// them.
pub fn signer_key_ids(bytes: &[u8]) -> Result<Vec<String>, VerifyError> {
    Ok(signatures(bytes)?.into_iter().map(|s| s.key_id).collect())
}

/// One signature a file carries, for display (`trademl inspect`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SignatureInfo {
    /// The signer's key id, hex (empty if the signature names no key).
    pub key_id: String,
    /// The signature algorithm: `"ed25519"`.
    pub algorithm: String,
    /// The SHA-256 digests (hex) the signature covers.
    pub digests: Vec<String>,
}

/// Every signature the file carries, without checking any of them.
pub fn signatures(bytes: &[u8]) -> Result<Vec<SignatureInfo>, VerifyError> {
    if !wasm::has_magic(bytes) {
        return Err(VerifyError::NotWasm);
    }
    let s = split(bytes)?;
    let Some(range) = s.signature else {
        return Ok(Vec::new());
    };
    let sets = format::decode(bytes, range)?;
    Ok(sets
        .iter()
        .flat_map(|set| {
            set.signatures.iter().map(|sig| SignatureInfo {
                key_id: hex::encode(&sig.key_id),
                algorithm: "ed25519".to_string(),
                digests: set.hashes.iter().map(hex::encode).collect(),
            })
        })
        .collect())
}

/// Signs `bytes` with `key`: returns the file with a signature section first
/// that carries the new signature next to any earlier ones.
pub fn sign(bytes: &[u8], key: &SecretKey) -> Result<Vec<u8>, SignError> {
    if !wasm::has_magic(bytes) {
        return Err(SignError::NotWasm);
    }
    let s = split(bytes)?;
    let content = &bytes[s.content_start..];
    let digest = sha256(content);
    let mut sets = match s.signature {
        Some(range) => format::decode(bytes, range)?,
        None => Vec::new(),
    };
    if sets.iter().any(|set| !set.hashes.contains(&digest)) {
        return Err(SignError::AlteredSinceSigned);
    }
    let key_id = key.public().key_id_bytes().to_vec();
    if sets
        .iter()
        .any(|set| set.signatures.iter().any(|sig| sig.key_id == key_id))
    {
        return Err(SignError::AlreadySigned {
            key_id: key.key_id(),
        });
    }
    let idx = match sets.iter().position(|set| set.hashes == [digest]) {
        Some(i) => i,
        None => {
            if sets.len() >= format::MAX_HASHES {
                return Err(SignError::TooManySignatures {
                    max: format::MAX_HASHES,
                });
            }
            sets.push(SignedHashes {
                hashes: vec![digest],
                signatures: Vec::new(),
            });
            sets.len() - 1
        }
    };
    let set = &mut sets[idx];
    if set.signatures.len() >= format::MAX_SIGNATURES {
        return Err(SignError::TooManySignatures {
            max: format::MAX_SIGNATURES,
        });
    }
    let signature = key.0.sign(&set.message()).to_bytes();
    set.signatures.push(Signature { key_id, signature });
    let section = wasm::encode_custom_section(SECTION, &format::encode(&sets))?;
    let mut out = Vec::with_capacity(HEADER_LEN + section.len() + content.len());
    out.extend_from_slice(&bytes[..HEADER_LEN]);
    out.extend_from_slice(&section);
    out.extend_from_slice(content);
    Ok(out)
}

/// Verifies that a key in `trust` signed exactly this content.
///
/// Depends on nothing but `bytes` and `trust`; never panics. See the module
/// documentation for the rules.
pub fn verify(bytes: &[u8], trust: &TrustStore) -> Result<Verified, VerifyError> {
    if !wasm::has_magic(bytes) {
        return Err(VerifyError::NotWasm);
    }
    let s = split(bytes)?;
    let range = s.signature.ok_or(VerifyError::Unsigned)?;
    let sets = format::decode(bytes, range)?;
    if trust.is_empty() {
        return Err(VerifyError::NoTrustedKeys);
    }
    let digest = sha256(&bytes[s.content_start..]);
    if sets.iter().all(|set| set.signatures.is_empty()) {
        return Err(VerifyError::Unsigned);
    }
    let mut good: Option<(String, String)> = None;
    let mut altered = false;
    let mut untrusted = Vec::new();
    for set in &sets {
        let msg = set.message();
        for sig in &set.signatures {
            let signature = ed25519_dalek::Signature::from_bytes(&sig.signature);
            let ok = |key: &PublicKey| key.0.verify_strict(&msg, &signature).is_ok();
            let signer = if sig.key_id.is_empty() {
                // No key id: any trusted key whose signature it is.
                trust.keys().find(|(_, key)| ok(key))
            } else {
                match trust.matching(&sig.key_id).next() {
                    None => None,
                    Some((name, key)) if ok(key) => Some((name, key)),
                    Some((name, _)) => {
                        return Err(VerifyError::BadSignature {
                            key_name: name.to_string(),
                        });
                    }
                }
            };
            match signer {
                None if sig.key_id.is_empty() => untrusted.push("(no key id)".to_string()),
                None => untrusted.push(hex::encode(&sig.key_id)),
                Some(_) if !set.hashes.contains(&digest) => altered = true,
                Some((name, key)) => {
                    if good.is_none() {
                        good = Some((name.to_string(), key.key_id()));
                    }
                }
            }
        }
    }
    if altered {
        return Err(VerifyError::Altered);
    }
    match good {
        Some((key_name, key_id)) => Ok(Verified {
            digest,
            key_name,
            key_id,
        }),
        None => Err(VerifyError::Untrusted { key_ids: untrusted }),
    }
}
