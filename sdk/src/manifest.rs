//! The model manifest: what a component says about itself, carried in its
//! `trademl-manifest` custom section as JSON and covered by its signature.
//!
//! `trademl pack` embeds it with [`embed_manifest`]; the host reads it with
//! [`read_manifest`] after verifying the signature.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ArtifactError;
use crate::protocol::{Tensor, TensorSpec, check_tensor};
use crate::wasm;

/// The name of the custom section holding the manifest.
pub const SECTION: &str = "trademl-manifest";
/// The WIT interface every trademl model exports.
pub const INTERFACE: &str = "trademl:model/predict@0.1.0";
/// The largest memory limit a manifest may ask for (64 GiB).
pub const MAX_MEMORY_LIMIT_MIB: u32 = 65536;

fn default_interface() -> String {
    INTERFACE.to_string()
}

fn default_tolerance() -> f64 {
    1e-6
}

/// A model version's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The model's name, as used in URLs: `[a-z0-9][a-z0-9._-]{0,63}`.
    pub name: String,
    /// The version, semantic versioning (`1.2.0`).
    pub version: String,
    /// What the model predicts, from what.
    pub description: String,
    /// The WIT interface the component exports; [`INTERFACE`] by default.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// The inputs a request must carry.
    pub inputs: Vec<TensorSpec>,
    /// The outputs a response carries.
    pub outputs: Vec<TensorSpec>,
    /// The linear-memory cap for an instance, in MiB (1..=65536).
    pub memory_limit_mib: u32,
    /// How the model was trained.
    #[serde(default)]
    pub provenance: Provenance,
    /// Example requests with their expected outputs, checked at publish time.
    #[serde(default)]
    pub examples: Vec<Example>,
}

/// How a model version was trained.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Provenance {
    /// The trainer (program and version) that produced the weights.
    pub trainer: String,
    /// The data it was trained on.
    pub data: Vec<DataSource>,
    /// When, RFC 3339.
    pub trained_at: String,
    /// Training parameters (hyper-parameters, seeds).
    pub parameters: serde_json::Value,
    /// Held-out metrics, and anything else the trainer reports (for example
    /// the training distribution used for drift detection).
    pub metrics: serde_json::Value,
}

/// One data set a model was trained on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataSource {
    /// Where it was read from.
    pub path: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Rows used.
    pub rows: u64,
    /// What it is, where it comes from, its licence.
    pub description: String,
}

/// An example request and the outputs the model must return for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The input tensors.
    pub inputs: Vec<Tensor>,
    /// The expected output tensors.
    pub outputs: Vec<Tensor>,
    /// Relative tolerance for float outputs (default `1e-6`).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

/// The rules a manifest breaks, all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// One message per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

impl std::error::Error for ManifestError {}

/// Whether `name` is a valid model name: `[a-z0-9][a-z0-9._-]{0,63}`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

fn check_specs(what: &str, specs: &[TensorSpec], problems: &mut Vec<String>) {
    if specs.is_empty() {
        problems.push(format!("{what} is empty; a model needs at least one"));
    }
    let mut seen = HashSet::new();
    for s in specs {
        if s.name.is_empty() {
            problems.push(format!("{what} has a tensor with an empty name"));
        } else if !seen.insert(s.name.as_str()) {
            problems.push(format!("{what} names \"{}\" twice", s.name));
        }
        if let Some(d) = s.shape.iter().find(|&&d| d < -1) {
            problems.push(format!(
                "{what} \"{}\": dimension {d} is invalid (use -1 for any size)",
                s.name
            ));
        }
    }
}

fn check_example_tensors(
    which: usize,
    what: &str,
    tensors: &[Tensor],
    specs: &[TensorSpec],
    problems: &mut Vec<String>,
) {
    for spec in specs {
        match tensors.iter().find(|t| t.name == spec.name) {
            None => problems.push(format!("example {which}: missing {what} \"{}\"", spec.name)),
            Some(t) => {
                if let Err(e) = check_tensor(t, spec) {
                    problems.push(format!("example {which}: {what} {e}"));
                }
            }
        }
    }
    for t in tensors {
        if !specs.iter().any(|s| s.name == t.name) {
            problems.push(format!(
                "example {which}: {what} \"{}\" is not in the manifest's {what}s",
                t.name
            ));
        }
    }
}

impl Manifest {
    /// Checks every rule and reports all the problems found.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut problems = Vec::new();
        if !valid_name(&self.name) {
            problems.push(format!(
                "name \"{}\" is invalid: use 1 to 64 characters a-z, 0-9, '.', '_', '-', starting with a letter or digit",
                self.name
            ));
        }
        if let Err(e) = semver::Version::parse(&self.version) {
            problems.push(format!(
                "version \"{}\" is not semantic versioning (x.y.z): {e}",
                self.version
            ));
        }
        if self.interface != INTERFACE {
            problems.push(format!(
                "interface \"{}\" is not supported; this trademl speaks {INTERFACE}",
                self.interface
            ));
        }
        if !(1..=MAX_MEMORY_LIMIT_MIB).contains(&self.memory_limit_mib) {
            problems.push(format!(
                "memory_limit_mib {} is out of range 1..={MAX_MEMORY_LIMIT_MIB}",
                self.memory_limit_mib
            ));
        }
        check_specs("inputs", &self.inputs, &mut problems);
        check_specs("outputs", &self.outputs, &mut problems);
        for (i, ex) in self.examples.iter().enumerate() {
            check_example_tensors(i, "input", &ex.inputs, &self.inputs, &mut problems);
            check_example_tensors(i, "output", &ex.outputs, &self.outputs, &mut problems);
            if !(ex.tolerance.is_finite() && ex.tolerance >= 0.0) {
                problems.push(format!(
                    "example {i}: tolerance {} must be a non-negative number",
                    ex.tolerance
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ManifestError { problems })
        }
    }

    /// Parses a manifest from JSON and validates it.
    pub fn from_json(json: &[u8]) -> Result<Manifest, ArtifactError> {
        let m: Manifest = serde_json::from_slice(json)?;
        m.validate()?;
        Ok(m)
    }

    /// The manifest as indented JSON.
    pub fn to_json_pretty(&self) -> String {
        // Serialising these types cannot fail: all map keys are strings.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A copy of `component` carrying `m` in its `trademl-manifest` section
/// (replacing any earlier manifest). Validates `m` first, and refuses a
/// signed file, since changing it would invalidate the signature.
pub fn embed_manifest(component: &[u8], m: &Manifest) -> Result<Vec<u8>, ArtifactError> {
    m.validate()?;
    let secs = wasm::sections(component)?;
    if secs.iter().any(|s| s.is_custom(crate::signing::SECTION)) {
        return Err(ArtifactError::Signed);
    }
    Ok(wasm::with_custom_section(
        component,
        SECTION,
        serde_json::to_string(m)?.as_bytes(),
    )?)
}

/// The manifest a component carries, parsed and validated.
pub fn read_manifest(bytes: &[u8]) -> Result<Manifest, ArtifactError> {
    let data = wasm::custom_section(bytes, SECTION)?.ok_or(ArtifactError::NoManifest)?;
    Manifest::from_json(data)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::{Datatype, TensorData};

    pub(crate) fn sample() -> Manifest {
        let spec = |name: &str| TensorSpec {
            name: name.into(),
            datatype: Datatype::Fp64,
            shape: vec![-1],
            description: String::new(),
        };
        Manifest {
            name: "churn".into(),
            version: "1.0.0".into(),
            description: "test".into(),
            interface: INTERFACE.into(),
            inputs: vec![spec("x")],
            outputs: vec![spec("y")],
            memory_limit_mib: 64,
            provenance: Provenance::default(),
            examples: vec![Example {
                inputs: vec![Tensor::new("x", vec![1], TensorData::Fp64(vec![1.0]))],
                outputs: vec![Tensor::new("y", vec![1], TensorData::Fp64(vec![2.0]))],
                tolerance: 1e-6,
            }],
        }
    }

    fn module() -> Vec<u8> {
        let mut m = wasm::MAGIC.to_vec();
        m.extend_from_slice(&wasm::COMPONENT_VERSION);
        m
    }

    #[test]
    fn valid_manifest_round_trips() {
        let m = sample();
        m.validate().unwrap();
        let json = m.to_json_pretty();
        assert_eq!(Manifest::from_json(json.as_bytes()).unwrap(), m);
        let packed = embed_manifest(&module(), &m).unwrap();
        assert_eq!(read_manifest(&packed).unwrap(), m);
        // Re-packing replaces the manifest.
        let mut m2 = m.clone();
        m2.version = "1.0.1".into();
        let repacked = embed_manifest(&packed, &m2).unwrap();
        assert_eq!(read_manifest(&repacked).unwrap().version, "1.0.1");
        assert_eq!(wasm::sections(&repacked).unwrap().len(), 1);
    }

    #[test]
    fn defaults_apply() {
        let json = r#"{"name":"a","version":"0.1.0","description":"","inputs":[{"name":"x","datatype":"FP64","shape":[-1]}],
            "outputs":[{"name":"y","datatype":"FP64","shape":[-1]}],"memory_limit_mib":16,
            "examples":[{"inputs":[],"outputs":[]}]}"#;
        let m: Manifest = serde_json::from_str(json).unwrap();
        assert_eq!(m.interface, INTERFACE);
        assert_eq!(m.examples[0].tolerance, 1e-6);
        assert_eq!(m.provenance, Provenance::default());
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("example 0: missing input \"x\""), "{e}");
    }

    #[test]
    fn each_rule_is_enforced() {
        let check = |f: &dyn Fn(&mut Manifest), want: &str| {
            let mut m = sample();
            f(&mut m);
            let e = m.validate().unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?} in {e:?}");
        };
        check(&|m| m.name = "Churn".into(), "name \"Churn\" is invalid");
        check(&|m| m.name = String::new(), "name \"\" is invalid");
        check(&|m| m.name = "a".repeat(65), "is invalid");
        check(&|m| m.name = "-a".into(), "is invalid");
        check(
            &|m| m.version = "1.0".into(),
            "version \"1.0\" is not semantic",
        );
        check(
            &|m| m.interface = "trademl:model/predict@0.2.0".into(),
            "0.2.0\" is not supported",
        );
        check(&|m| m.memory_limit_mib = 0, "memory_limit_mib 0");
        check(&|m| m.memory_limit_mib = 65537, "out of range");
        check(&|m| m.inputs.clear(), "inputs is empty");
        check(&|m| m.outputs.clear(), "outputs is empty");
        check(
            &|m| m.inputs.push(m.inputs[0].clone()),
            "inputs names \"x\" twice",
        );
        check(&|m| m.inputs[0].shape = vec![-2], "dimension -2");
        check(
            &|m| m.examples[0].inputs[0].data = TensorData::Int64(vec![1]),
            "example 0: input tensor \"x\": datatype is INT64, expected FP64",
        );
        check(
            &|m| m.examples[0].outputs[0].shape = vec![1, 1],
            "shape is [1, 1]",
        );
        check(
            &|m| m.examples[0].outputs[0].name = "z".into(),
            "output \"z\" is not in",
        );
        check(&|m| m.examples[0].tolerance = f64::NAN, "tolerance");
        assert!(valid_name("demand-forecast.v2_a"));
    }

    #[test]
    fn embedding_refuses_invalid_and_signed() {
        let mut bad = sample();
        bad.name = "BAD".into();
        assert!(matches!(
            embed_manifest(&module(), &bad),
            Err(ArtifactError::Invalid(_))
        ));
        let signed = wasm::with_custom_section(&module(), crate::signing::SECTION, b"x").unwrap();
        let e = embed_manifest(&signed, &sample()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the file is signed; embed the manifest before signing"
        );
        assert!(matches!(
            embed_manifest(b"nope", &sample()),
            Err(ArtifactError::Format(_))
        ));
    }

    #[test]
    fn reading_reports_missing_and_bad_manifest() {
        let e = read_manifest(&module()).unwrap_err().to_string();
        assert_eq!(
            e,
            "no trademl-manifest section: pack the component with `trademl pack`"
        );
        let junk = wasm::with_custom_section(&module(), SECTION, b"{").unwrap();
        assert!(matches!(read_manifest(&junk), Err(ArtifactError::Json(_))));
    }
}
