//! A component with no model in it: it returns tensors of the shapes it is
//! told, filled with zeros, and computes nothing else.
//!
//! `trademl-bench` sends it a model's own request plus one more input,
//! [`SPEC`], describing that model's outputs for that request. A call then
//! carries the same tensors across the sandbox's boundary as the model's call
//! (the same inputs lowered into the guest and lifted by its bindings, outputs
//! of the same datatypes, shapes and sizes built by the guest and lifted by the
//! host), so its time is the floor under any model's time in the sandbox:
//! what the boundary costs when the model's own work costs nothing.
//!
//! [`SPEC`], `INT64`, is one record per output, back to back:
//! `[datatype, name length, rank, dim 0, …, dim rank-1, bytes per element]`,
//! the datatype as 0 `FP32`, 1 `FP64`, 2 `INT64`, 3 `BOOL`, 4 `BYTES`, and
//! bytes per element used by `BYTES` only. An output is named by as many
//! `n`s as its name length (the bench's own names do not matter, their
//! lengths do). [`SPEC`] may also be `BYTES`: one buffer whose front holds
//! the same words (see [`spec_in_buffer`]) and whose rest stands for a
//! request sent as one buffer.

// Only the wasm32 build exports the model; natively the crate is unit-tested.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorData, tensor};

/// The input describing the outputs to return.
pub const SPEC: &str = "echo:outputs";

struct Echo;

/// The outputs [`SPEC`] describes.
fn outputs(spec: &[i64]) -> Result<Vec<Tensor>, String> {
    let mut rest = spec.iter().peekable();
    let mut out = Vec::new();
    while rest.peek().is_some() {
        let mut take = |what: &str| -> Result<usize, String> {
            let &v = rest
                .next()
                .ok_or_else(|| format!("{SPEC} ends inside an output's record, at its {what}"))?;
            usize::try_from(v).map_err(|_| format!("{SPEC}: {what} {v} is negative"))
        };
        let datatype = take("datatype")?;
        let name = "n".repeat(take("name length")?);
        let rank = take("rank")?;
        let shape = (0..rank)
            .map(|_| take("dimension").map(|d| d as u64))
            .collect::<Result<Vec<u64>, String>>()?;
        let element_bytes = take("bytes per element")?;
        let n = shape.iter().product::<u64>() as usize;
        let data = match datatype {
            0 => TensorData::Fp32(vec![0.0; n]),
            1 => TensorData::Fp64(vec![0.0; n]),
            2 => TensorData::Int64(vec![0; n]),
            3 => TensorData::Boolean(vec![false; n]),
            4 => TensorData::Bytes(vec![vec![b'x'; element_bytes]; n]),
            other => return Err(format!("{SPEC}: no datatype {other}")),
        };
        out.push(Tensor { name, shape, data });
    }
    Ok(out)
}

/// The description carried at the front of one buffer, for the bench's
/// series with all inputs in one buffer: the number of `i64`s, then the
/// `i64`s, little-endian; the rest of the buffer stands for the inputs.
fn spec_in_buffer(buffer: &[u8]) -> Result<Vec<i64>, String> {
    let word = |i: usize| -> Result<i64, String> {
        buffer
            .get(i * 8..i * 8 + 8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| {
                format!(
                    "{SPEC}: the buffer of {} bytes ends at word {i}",
                    buffer.len()
                )
            })
    };
    let n = usize::try_from(word(0)?).map_err(|_| format!("{SPEC}: a negative length"))?;
    (1..=n).map(word).collect()
}

impl Model for Echo {
    fn metadata() -> ModelMetadata {
        ModelMetadata {
            name: "echo".to_string(),
            version: "1.0.0".to_string(),
            description: "Returns zero-filled tensors of the shapes its input echo:outputs \
                describes, and computes nothing else (trademl-bench's floor)."
                .to_string(),
            inputs: vec![tensor::spec(
                SPEC,
                Datatype::Int64,
                &[-1],
                "Per output: datatype, name length, rank, dimensions, bytes per element.",
            )],
            outputs: vec![],
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let spec = inputs
            .iter()
            .find(|t| t.name == SPEC)
            .ok_or_else(|| Error::InvalidInput(format!("missing input {SPEC}")))?;
        match &spec.data {
            TensorData::Int64(spec) => outputs(spec),
            TensorData::Bytes(elements) => elements
                .first()
                .ok_or_else(|| format!("{SPEC} has no element"))
                .and_then(|buffer| outputs(&spec_in_buffer(buffer)?)),
            _ => Err(format!("{SPEC} must be INT64 or BYTES")),
        }
        .map_err(Error::InvalidInput)
    }
}

#[cfg(target_arch = "wasm32")]
trademl_sdk::export_model!(Echo);
trademl_sdk::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_outputs_the_spec_describes() {
        let out = outputs(&[1, 5, 1, 3, 0, 4, 6, 2, 3, 1, 8, 3, 2, 1, 3, 0]).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(
            (out[0].name.as_str(), &out[0].shape[..]),
            ("nnnnn", &[3][..])
        );
        assert_eq!(out[0].data, TensorData::Fp64(vec![0.0; 3]));
        assert_eq!(out[1].shape, vec![3, 1]);
        assert_eq!(
            out[1].data,
            TensorData::Bytes(vec![b"xxxxxxxx".to_vec(); 3])
        );
        assert_eq!(out[2].data, TensorData::Boolean(vec![false; 3]));
    }

    #[test]
    fn reads_the_spec_at_the_front_of_a_buffer() {
        let mut buffer: Vec<u8> = [2i64, 4, 1].iter().flat_map(|w| w.to_le_bytes()).collect();
        buffer.extend([0; 5]);
        assert_eq!(spec_in_buffer(&buffer).unwrap(), vec![4, 1]);
        assert!(
            spec_in_buffer(&buffer[..20])
                .unwrap_err()
                .contains("ends at word 2")
        );
    }

    #[test]
    fn a_truncated_or_wrong_spec_is_refused() {
        assert!(outputs(&[1, 5, 1]).unwrap_err().contains("dimension"));
        assert!(
            outputs(&[7, 1, 0, 0])
                .unwrap_err()
                .contains("no datatype 7")
        );
        assert!(outputs(&[1, -1]).unwrap_err().contains("negative"));
        assert!(outputs(&[]).unwrap().is_empty());
    }
}
