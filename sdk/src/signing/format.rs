//! The payload of the `signature` custom section, as wasmsign2 writes it.

use crate::wasm::{self, FormatError};

/// Specification version (`0x01`).
pub const SPEC_VERSION: u8 = 0x01;
/// Content type: `0x01`, WebAssembly module (also used for components).
pub const CONTENT_TYPE: u8 = 0x01;
/// Hash function: `0x01`, SHA-256.
pub const HASH_SHA256: u8 = 0x01;
/// Signature algorithm: `0x01`, Ed25519.
pub const ALG_ED25519: u8 = 0x01;
/// The domain separation prefix of the signed message.
pub const DOMAIN: &[u8] = b"wasmsig";
/// At most this many hash sets, and hashes per set (as wasmsign2).
pub const MAX_HASHES: usize = 64;
/// At most this many signatures per hash set (as wasmsign2).
pub const MAX_SIGNATURES: usize = 256;

/// One signature over a set of hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The signer's key id (may be empty).
    pub key_id: Vec<u8>,
    /// The 64-byte Ed25519 signature.
    pub signature: [u8; 64],
}

/// A set of hashes and the signatures over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHashes {
    /// The SHA-256 hashes (one per signed part; one for a whole file).
    pub hashes: Vec<[u8; 32]>,
    /// The signatures over `hashes`.
    pub signatures: Vec<Signature>,
}

impl SignedHashes {
    /// The message each signature signs:
    /// `"wasmsig" ‖ spec_version ‖ content_type ‖ hash_fn ‖ h1 ‖ … ‖ hn`.
    pub fn message(&self) -> Vec<u8> {
        let mut msg = Vec::with_capacity(DOMAIN.len() + 3 + 32 * self.hashes.len());
        msg.extend_from_slice(DOMAIN);
        msg.extend_from_slice(&[SPEC_VERSION, CONTENT_TYPE, HASH_SHA256]);
        for h in &self.hashes {
            msg.extend_from_slice(h);
        }
        msg
    }
}

/// A cursor over `bytes[..end]` that reports absolute offsets.
struct Cur<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn u32(&mut self) -> Result<u32, FormatError> {
        wasm::read_u32(self.bytes, &mut self.pos)
    }
    fn count(&mut self, what: &str, max: usize) -> Result<usize, FormatError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n > max {
            return Err(FormatError {
                offset: at,
                reason: format!("{n} {what}, at most {max} allowed"),
            });
        }
        Ok(n)
    }
    fn byte(&mut self) -> Result<u8, FormatError> {
        Ok(wasm::read_bytes(self.bytes, &mut self.pos, 1)?[0])
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        wasm::read_bytes(self.bytes, &mut self.pos, n)
    }
    /// A length-prefixed sub-record; returns a cursor bounded by it.
    fn record(&mut self) -> Result<Cur<'a>, FormatError> {
        let len = self.u32()? as usize;
        let start = self.pos;
        self.take(len)?;
        Ok(Cur {
            bytes: &self.bytes[..self.pos],
            pos: start,
        })
    }
    fn done(&self, what: &str) -> Result<(), FormatError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(FormatError {
                offset: self.pos,
                reason: format!("unexpected bytes after the {what}"),
            })
        }
    }
}

fn expect(c: &mut Cur<'_>, what: &str, want: u8) -> Result<(), FormatError> {
    let at = c.pos;
    let got = c.u32()?;
    if got != u32::from(want) {
        return Err(FormatError {
            offset: at,
            reason: format!("unsupported signature {what} {got:#04x}, expected {want:#04x}"),
        });
    }
    Ok(())
}

/// Parses the signature section's data, which lies at `range` in `file`
/// (offsets in errors are file offsets).
pub fn decode(
    file: &[u8],
    range: std::ops::Range<usize>,
) -> Result<Vec<SignedHashes>, FormatError> {
    let bytes = file.get(..range.end).ok_or(FormatError {
        offset: file.len(),
        reason: "signature section runs past the end of the file".into(),
    })?;
    let mut c = Cur {
        bytes,
        pos: range.start,
    };
    expect(&mut c, "specification version", SPEC_VERSION)?;
    expect(&mut c, "content type", CONTENT_TYPE)?;
    expect(&mut c, "hash function", HASH_SHA256)?;
    let n_sets = c.count("signed hash sets", MAX_HASHES)?;
    let mut sets = Vec::with_capacity(n_sets);
    for _ in 0..n_sets {
        let mut s = c.record()?;
        let n_hashes = s.count("hashes", MAX_HASHES)?;
        let mut hashes = Vec::with_capacity(n_hashes);
        for _ in 0..n_hashes {
            let mut h = [0u8; 32];
            h.copy_from_slice(s.take(32)?);
            hashes.push(h);
        }
        let n_sigs = s.count("signatures", MAX_SIGNATURES)?;
        let mut signatures = Vec::with_capacity(n_sigs);
        for _ in 0..n_sigs {
            let mut r = s.record()?;
            let id_len = r.u32()? as usize;
            let key_id = r.take(id_len)?.to_vec();
            let at = r.pos;
            let alg = r.byte()?;
            if alg != ALG_ED25519 {
                return Err(FormatError {
                    offset: at,
                    reason: format!(
                        "unsupported signature algorithm {alg:#04x}, expected Ed25519 (0x01)"
                    ),
                });
            }
            let at = r.pos;
            let len = r.u32()? as usize;
            if len != 64 {
                return Err(FormatError {
                    offset: at,
                    reason: format!("an Ed25519 signature has 64 bytes, not {len}"),
                });
            }
            let mut signature = [0u8; 64];
            signature.copy_from_slice(r.take(64)?);
            r.done("signature")?;
            signatures.push(Signature { key_id, signature });
        }
        s.done("signed hash set")?;
        if hashes.is_empty() {
            return Err(FormatError {
                offset: s.pos,
                reason: "a signed hash set has no hashes".into(),
            });
        }
        sets.push(SignedHashes { hashes, signatures });
    }
    c.done("signature data")?;
    Ok(sets)
}

fn put_slice(out: &mut Vec<u8>, b: &[u8]) {
    wasm::write_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

/// Encodes signature data (within wasmsign2's limits, so lengths fit u32).
pub fn encode(sets: &[SignedHashes]) -> Vec<u8> {
    let mut out = vec![SPEC_VERSION, CONTENT_TYPE, HASH_SHA256];
    wasm::write_u32(&mut out, sets.len() as u32);
    for set in sets {
        let mut s = Vec::new();
        wasm::write_u32(&mut s, set.hashes.len() as u32);
        for h in &set.hashes {
            s.extend_from_slice(h);
        }
        wasm::write_u32(&mut s, set.signatures.len() as u32);
        for sig in &set.signatures {
            let mut r = Vec::new();
            put_slice(&mut r, &sig.key_id);
            r.push(ALG_ED25519);
            put_slice(&mut r, &sig.signature);
            put_slice(&mut s, &r);
        }
        put_slice(&mut out, &s);
    }
    out
}
