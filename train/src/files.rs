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
