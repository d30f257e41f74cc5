//! Errors of the artifact format.

use crate::manifest::ManifestError;
use crate::wasm::FormatError;

/// Why a manifest could not be read, embedded or extracted.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The file is not a well-formed WebAssembly module or component.
    #[error("not a valid WebAssembly file: {0}")]
    Format(#[from] FormatError),
    /// The manifest breaks a rule.
    #[error("invalid manifest: {0}")]
    Invalid(#[from] ManifestError),
    /// The manifest is not valid JSON for the manifest schema.
    #[error("manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The component carries no manifest.
    #[error("no trademl-manifest section: pack the component with `trademl pack`")]
    NoManifest,
    /// The component is already signed, so embedding would invalidate it.
    #[error("the file is signed; embed the manifest before signing")]
    Signed,
}
