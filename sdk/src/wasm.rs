//! The binary framing of WebAssembly modules and components: the 8-byte
//! preamble and the sequence of sections.
//!
//! Both kinds start with `\0asm`; a module continues with version
//! `01 00 00 00`, a component with `0d 00 01 00`. Each section is an id byte,
//! a LEB128 `u32` size and that many payload bytes. A custom section has id 0
//! and a payload of a name (LEB128 length + UTF-8) followed by its data.
//!
//! Nothing here interprets the other sections. Every function is bounds- and
//! overflow-checked and returns a [`FormatError`] with the byte offset
//! instead of panicking, whatever the input.

use std::fmt;
use std::ops::Range;

/// The 4-byte magic both modules and components start with.
pub const MAGIC: &[u8; 4] = b"\0asm";
/// The version bytes of a core module.
pub const MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
/// The version and layer bytes of a component.
pub const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
/// The length of the preamble (magic + version).
pub const HEADER_LEN: usize = 8;

/// What went wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// The byte offset of the problem.
    pub offset: usize,
    /// What is wrong there.
    pub reason: String,
}

impl FormatError {
    fn new(offset: usize, reason: impl Into<String>) -> Self {
        FormatError {
            offset,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for FormatError {}

/// Whether a file is a core module or a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A core WebAssembly module.
    Module,
    /// A WebAssembly component.
    Component,
}

/// One section: its id and where it lies in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The section id (0 = custom).
    pub id: u8,
    /// The whole section: id byte, size and payload.
    pub range: Range<usize>,
    /// The payload (for a custom section: name and data).
    pub payload: Range<usize>,
    /// A custom section's name.
    pub name: Option<String>,
    /// A custom section's data (after the name); equals `payload` otherwise.
    pub data: Range<usize>,
}

impl Section {
    /// Whether this is the custom section called `name`.
    pub fn is_custom(&self, name: &str) -> bool {
        self.id == 0 && self.name.as_deref() == Some(name)
    }
}

/// Whether `bytes` start with the WebAssembly magic `\0asm`.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Reads the preamble: a module or a component.
pub fn kind(bytes: &[u8]) -> Result<Kind, FormatError> {
    if !has_magic(bytes) {
        return Err(FormatError::new(
            0,
            "not a WebAssembly file (no \\0asm magic)",
        ));
    }
    match bytes.get(4..HEADER_LEN) {
        None => Err(FormatError::new(bytes.len(), "truncated preamble")),
        Some(v) if v == MODULE_VERSION => Ok(Kind::Module),
        Some(v) if v == COMPONENT_VERSION => Ok(Kind::Component),
        Some(v) => Err(FormatError::new(
            4,
            format!(
                "unsupported version bytes {v:02x?}; expected a module (01 00 00 00) or a component (0d 00 01 00)"
            ),
        )),
    }
}

/// Reads a LEB128 `u32` at `*pos`, advancing it.
pub fn read_u32(bytes: &[u8], pos: &mut usize) -> Result<u32, FormatError> {
    let start = *pos;
    let mut result: u32 = 0;
    for i in 0..5u32 {
        let b = *bytes
            .get(*pos)
            .ok_or_else(|| FormatError::new(*pos, "truncated LEB128 integer"))?;
        *pos += 1;
        if i == 4 && b & 0xf0 != 0 {
            return Err(FormatError::new(start, "LEB128 integer too large for u32"));
        }
        result |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(result);
        }
    }
    Err(FormatError::new(start, "LEB128 integer too long"))
}

/// Appends `v` as LEB128.
pub fn write_u32(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Reads `len` bytes at `*pos`, advancing it.
pub fn read_bytes<'a>(
    bytes: &'a [u8],
    pos: &mut usize,
    len: usize,
) -> Result<&'a [u8], FormatError> {
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            FormatError::new(
                *pos,
                format!(
                    "{len} bytes needed, {} left",
                    bytes.len().saturating_sub(*pos)
                ),
            )
        })?;
    let s = &bytes[*pos..end];
    *pos = end;
    Ok(s)
}

/// All sections of a module or component, in order.
pub fn sections(bytes: &[u8]) -> Result<Vec<Section>, FormatError> {
    kind(bytes)?;
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let start = pos;
        let id = bytes[pos];
        pos += 1;
        let size = read_u32(bytes, &mut pos)? as usize;
        let payload_start = pos;
        read_bytes(bytes, &mut pos, size).map_err(|_| {
            FormatError::new(
                start,
                format!(
                    "section {id} claims {size} bytes but only {} remain",
                    bytes.len() - payload_start
                ),
            )
        })?;
        let payload = payload_start..pos;
        let (name, data) = if id == 0 {
            let mut p = payload_start;
            let sub = &bytes[..payload.end];
            let len = read_u32(sub, &mut p)? as usize;
            let name_bytes = read_bytes(sub, &mut p, len).map_err(|_| {
                FormatError::new(payload_start, "custom section name runs past the section")
            })?;
            let name = std::str::from_utf8(name_bytes)
                .map_err(|_| FormatError::new(payload_start, "custom section name is not UTF-8"))?;
            (Some(name.to_string()), p..payload.end)
        } else {
            (None, payload.clone())
        };
        out.push(Section {
            id,
            range: start..pos,
            payload,
            name,
            data,
        });
    }
    Ok(out)
}

/// The data of the first custom section called `name`, if any.
pub fn custom_section<'a>(bytes: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, FormatError> {
    Ok(sections(bytes)?
        .into_iter()
        .find(|s| s.is_custom(name))
        .map(|s| &bytes[s.data]))
}

/// Encodes a custom section called `name` holding `data`.
pub fn encode_custom_section(name: &str, data: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut payload = Vec::with_capacity(name.len() + data.len() + 5);
    let name_len = u32::try_from(name.len())
        .map_err(|_| FormatError::new(0, "custom section name too long"))?;
    write_u32(&mut payload, name_len);
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(data);
    let size = u32::try_from(payload.len())
        .map_err(|_| FormatError::new(0, format!("custom section \"{name}\" exceeds 4 GiB")))?;
    let mut out = Vec::with_capacity(payload.len() + 6);
    out.push(0);
    write_u32(&mut out, size);
    out.extend_from_slice(&payload);
    Ok(out)
}

/// A copy of `bytes` where the custom section `name` holds `data`: the first
/// such section is replaced in place (later duplicates are dropped), or a
/// new one is appended at the end.
pub fn with_custom_section(bytes: &[u8], name: &str, data: &[u8]) -> Result<Vec<u8>, FormatError> {
    let secs = sections(bytes)?;
    let new = encode_custom_section(name, data)?;
    let mut out = Vec::with_capacity(bytes.len() + new.len());
    out.extend_from_slice(&bytes[..HEADER_LEN]);
    let mut placed = false;
    for s in &secs {
        if s.is_custom(name) {
            if !placed {
                out.extend_from_slice(&new);
                placed = true;
            }
        } else {
            out.extend_from_slice(&bytes[s.range.clone()]);
        }
    }
    if !placed {
        out.extend_from_slice(&new);
    }
    Ok(out)
}

/// A copy of `bytes` without any custom section called `name`.
pub fn without_custom_section(bytes: &[u8], name: &str) -> Result<Vec<u8>, FormatError> {
    let secs = sections(bytes)?;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..HEADER_LEN]);
    for s in secs.iter().filter(|s| !s.is_custom(name)) {
        out.extend_from_slice(&bytes[s.range.clone()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> Vec<u8> {
        let mut m = MAGIC.to_vec();
        m.extend_from_slice(&MODULE_VERSION);
        // type section: one func type () -> ()
        m.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]);
        m
    }

    #[test]
    fn reads_header_and_sections() {
        let m = with_custom_section(&module(), "hello", b"world").unwrap();
        assert_eq!(kind(&m).unwrap(), Kind::Module);
        let s = sections(&m).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].id, 1);
        assert_eq!(s[1].name.as_deref(), Some("hello"));
        assert_eq!(custom_section(&m, "hello").unwrap(), Some(&b"world"[..]));
        assert_eq!(custom_section(&m, "nope").unwrap(), None);
        let mut c = MAGIC.to_vec();
        c.extend_from_slice(&COMPONENT_VERSION);
        assert_eq!(kind(&c).unwrap(), Kind::Component);
        assert!(sections(&c).unwrap().is_empty());
    }

    #[test]
    fn replaces_and_removes() {
        let m = with_custom_section(&module(), "a", b"1").unwrap();
        let m = with_custom_section(&m, "b", b"2").unwrap();
        let m2 = with_custom_section(&m, "a", b"333").unwrap();
        let names: Vec<_> = sections(&m2).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec![None, Some("a".into()), Some("b".into())]);
        assert_eq!(custom_section(&m2, "a").unwrap(), Some(&b"333"[..]));
        let m3 = without_custom_section(&m2, "a").unwrap();
        assert_eq!(custom_section(&m3, "a").unwrap(), None);
        assert_eq!(custom_section(&m3, "b").unwrap(), Some(&b"2"[..]));
        assert_eq!(without_custom_section(&m3, "a").unwrap(), m3);
    }

    #[test]
    fn leb128_round_trip_and_limits() {
        for v in [0, 1, 127, 128, 300, u32::MAX] {
            let mut out = Vec::new();
            write_u32(&mut out, v);
            let mut p = 0;
            assert_eq!(read_u32(&out, &mut p).unwrap(), v);
            assert_eq!(p, out.len());
        }
        let mut p = 0;
        assert!(read_u32(&[0xff, 0xff, 0xff, 0xff, 0x1f], &mut p).is_err());
        p = 0;
        assert!(read_u32(&[0x80, 0x80], &mut p).is_err());
    }

    #[test]
    fn refuses_bad_input_with_offsets() {
        assert!(kind(b"").is_err());
        assert!(kind(b"\0asm").unwrap_err().reason.contains("truncated"));
        assert_eq!(kind(b"\0asm\x02\0\0\0").unwrap_err().offset, 4);
        assert!(
            kind(b"ELF!\x01\0\0\0")
                .unwrap_err()
                .reason
                .contains("magic")
        );
        let mut m = module();
        m.extend_from_slice(&[0, 10, 1]);
        let e = sections(&m).unwrap_err();
        assert_eq!(e.offset, 14);
        let mut m = module();
        m.extend_from_slice(&[0, 2, 5, b'a']);
        assert!(sections(&m).unwrap_err().reason.contains("name"));
        let mut m = module();
        m.extend_from_slice(&[0, 2, 1, 0xff]);
        assert!(sections(&m).unwrap_err().reason.contains("UTF-8"));
    }

    #[test]
    fn never_panics_on_truncation_or_flips() {
        let m = with_custom_section(&module(), "x", &[7; 200]).unwrap();
        for n in 0..m.len() {
            let _ = sections(&m[..n]);
        }
        for i in 0..m.len() {
            for bit in 0..8 {
                let mut b = m.clone();
                b[i] ^= 1 << bit;
                let _ = sections(&b);
                let _ = with_custom_section(&b, "x", b"y");
            }
        }
    }
}
