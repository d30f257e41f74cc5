//! What every trainer writes its outputs with.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// Write a file, creating its directory first.
pub(crate) fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The command that ran, the program named by its file name (`trademl train …`), for the
/// provenance of what a trainer writes.
pub(crate) fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(program) = args.first_mut()
        && let Some(name) = Path::new(program.as_str()).file_name()
    {
        *program = name.to_string_lossy().into_owned();
    }
    args.join(" ")
}

/// Today's date (UTC), YYYY-MM-DD.
pub(crate) fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

/// A CSV file read whole (gzip-decompressed when its name ends in `.gz`), with the SHA-256 of
/// its bytes on disk for the provenance of what is trained on it.
pub(crate) struct Csv {
    /// SHA-256 of the file as stored, hex.
    pub sha256: String,
    /// The rows after the header.
    pub reader: csv::Reader<std::io::Cursor<Vec<u8>>>,
    /// The header row.
    pub headers: csv::StringRecord,
}

impl Csv {
    /// Read `path`.
    pub(crate) fn open(path: &Path) -> Result<Csv> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let text = if path.extension().is_some_and(|e| e == "gz") {
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut text)
                .with_context(|| format!("decompressing {}", path.display()))?;
            text
        } else {
            bytes
        };
        let mut reader = csv::Reader::from_reader(std::io::Cursor::new(text));
        let headers = reader
            .headers()
            .with_context(|| format!("reading the header row of {}", path.display()))?
            .clone();
        Ok(Csv {
            sha256,
            reader,
            headers,
        })
    }
}

/// The index of the column `name` (playing `role`) among `headers` of the file at `path`, or an
/// error that names the column, its role and the columns the file has.
pub(crate) fn column(
    path: &Path,
    headers: &csv::StringRecord,
    role: &str,
    name: &str,
) -> Result<usize> {
    headers
        .iter()
        .position(|h| h.trim() == name)
        .with_context(|| {
            format!(
                "{}: no column {name:?} (the {role} column); the columns are: {}",
                path.display(),
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })
}
