//! The floor under a model's time in the sandbox: the benchmark's echo
//! component, called with a model's own tensors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use trademl_sdk::protocol::{Tensor, TensorData};

use super::boundary::{Boundary, BoundaryTimes};
use crate::bindings::{self, ModelPre};
use crate::model::LoadedVersion;
use crate::sandbox::{CallLimits, CallState, Sandbox};

/// The benchmark's echo component (`bench/echo`, rebuilt by
/// `scripts/build-bench-echo`): a model with no model in it. Sent a model's
/// request and a description of that model's outputs, it returns zero-filled
/// outputs of the same datatypes and shapes, so that its call carries the
/// same tensors across the sandbox's boundary as the model's and computes
/// nothing else: the floor under the model's time in the sandbox.
pub const ECHO: &[u8] = include_bytes!("../../../bench/echo/trademl-bench-echo.wasm");

/// The echo's input that describes the outputs it returns.
const ECHO_SPEC: &str = "echo:outputs";

/// The bytes a tensor takes laid out in one buffer: its name, 8 bytes a
/// dimension, its elements (`BYTES`: a 4-byte offset and the bytes of each).
fn buffer_size(t: &Tensor) -> usize {
    let data = match &t.data {
        TensorData::Fp32(v) => 4 * v.len(),
        TensorData::Fp64(v) => 8 * v.len(),
        TensorData::Int64(v) => 8 * v.len(),
        TensorData::Bool(v) => v.len(),
        TensorData::Bytes(v) => v.iter().map(|e| 4 + e.len()).sum(),
    };
    t.name.len() + 8 * t.shape.len() + data
}

/// Tensors like `like` read out of one buffer laid out as [`buffer_size`]
/// counts (names, shapes and elements copied into their own allocations, as
/// the protocol's tensors hold them): the host's side of an interface that
/// carried outputs as bytes.
fn read_buffer(buffer: &[u8], like: &[Tensor]) -> Result<Vec<Tensor>> {
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8]> {
        let part = buffer.get(at..at + n).with_context(|| {
            format!(
                "the buffer of {} bytes ends before {}",
                buffer.len(),
                at + n
            )
        })?;
        at += n;
        Ok(part)
    };
    fn words<const N: usize, T>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
        bytes
            .chunks_exact(N)
            .map(|c| from(c.try_into().expect("N bytes")))
            .collect()
    }
    let mut out = Vec::with_capacity(like.len());
    for t in like {
        let name = String::from_utf8(take(t.name.len())?.to_vec())?;
        let shape = words(take(8 * t.shape.len())?, u64::from_le_bytes);
        let data = match &t.data {
            TensorData::Fp32(v) => TensorData::Fp32(words(take(4 * v.len())?, f32::from_le_bytes)),
            TensorData::Fp64(v) => TensorData::Fp64(words(take(8 * v.len())?, f64::from_le_bytes)),
            TensorData::Int64(v) => {
                TensorData::Int64(words(take(8 * v.len())?, i64::from_le_bytes))
            }
            TensorData::Bool(v) => {
                TensorData::Bool(take(v.len())?.iter().map(|&b| b != 0).collect())
            }
            TensorData::Bytes(v) => {
                // The offsets are read for what reading them costs; the
                // element lengths come from `like`, since the echo's buffer
                // holds filler where a real one would hold offsets.
                let ends = words(take(4 * v.len())?, u32::from_le_bytes);
                let mut elements = Vec::with_capacity(v.len());
                for (e, _) in v.iter().zip(ends) {
                    elements.push(take(e.len())?.to_vec());
                }
                TensorData::Bytes(elements)
            }
        };
        out.push(Tensor::new(name, shape, data));
    }
    Ok(out)
}

/// The echo component, compiled by the sandbox's own engine.
pub(super) struct Echo {
    sandbox: Arc<Sandbox>,
    pre: ModelPre<CallState>,
    /// The least calls, beside the echo's.
    boundary: Boundary,
}

impl Echo {
    pub(super) fn new(sandbox: &Arc<Sandbox>) -> Result<Echo> {
        let component = sandbox.compile(ECHO).context("the echo component")?;
        let pre = ModelPre::new(sandbox.linker().instantiate_pre(&component)?)?;
        Ok(Echo {
            sandbox: sandbox.clone(),
            pre,
            boundary: Boundary::new(sandbox)?,
        })
    }

    /// The words that describe `outputs` to the echo (see
    /// `bench/echo/src/lib.rs`).
    fn spec(outputs: &[Tensor]) -> Vec<i64> {
        let mut spec = Vec::new();
        for t in outputs {
            let (code, element_bytes) = match &t.data {
                TensorData::Fp32(_) => (0, 0),
                TensorData::Fp64(_) => (1, 0),
                TensorData::Int64(_) => (2, 0),
                TensorData::Bool(_) => (3, 0),
                TensorData::Bytes(v) => (4, v.iter().map(Vec::len).sum::<usize>() / v.len().max(1)),
            };
            spec.extend([code, t.name.len() as i64, t.shape.len() as i64]);
            spec.extend(t.shape.iter().map(|&d| d as i64));
            spec.push(element_bytes as i64);
        }
        spec
    }

    /// The request that has the echo return tensors of the datatypes,
    /// shapes and sizes of `outputs`: the model's own `inputs`, and the
    /// description of `outputs`.
    fn request(inputs: &[Tensor], outputs: &[Tensor]) -> Vec<Tensor> {
        let spec = Echo::spec(outputs);
        let mut request = inputs.to_vec();
        request.push(Tensor::new(
            ECHO_SPEC,
            vec![spec.len() as u64],
            TensorData::Int64(spec),
        ));
        request
    }

    /// The same exchange with every tensor in one buffer each way, as an
    /// interface that carried a request as bytes would: one `BYTES` input
    /// of one element as long as the inputs laid out back to back (the
    /// echo's description at its front), and one such output as long as the
    /// outputs.
    fn one_buffer_request(inputs: &[Tensor], outputs: &[Tensor]) -> Vec<Tensor> {
        let out_bytes: usize = outputs.iter().map(buffer_size).sum();
        let spec = [4, 0, 1, 1, out_bytes as i64];
        let mut buffer: Vec<u8> = std::iter::once(spec.len() as i64)
            .chain(spec)
            .flat_map(i64::to_le_bytes)
            .collect();
        let in_bytes: usize = inputs.iter().map(buffer_size).sum();
        buffer.resize(buffer.len().max(in_bytes), 0);
        vec![Tensor::new(
            ECHO_SPEC,
            vec![1],
            TensorData::Bytes(vec![buffer]),
        )]
    }

    /// One call as the server makes it, timed as the server's series is:
    /// the instance made before the clock starts, then the tensors converted,
    /// lowered, the guest run, the outputs lifted, converted back and handed
    /// to `then` (the server's series drops them in its timed answer too).
    /// The manifest's checks are left out: the native series runs them too.
    fn call<T>(
        &self,
        request: Vec<Tensor>,
        limits: CallLimits,
        then: impl FnOnce(Vec<Tensor>) -> T,
    ) -> Result<(Duration, T)> {
        let mut call = self.sandbox.store(limits);
        let echo = self.pre.instantiate(&mut call.store)?;
        let started = Instant::now();
        let inputs: Vec<bindings::Tensor> = request.into_iter().map(bindings::to_wit).collect();
        let outputs = echo
            .trademl_model_predict()
            .call_predict(&mut call.store, &inputs)?
            .map_err(|e| anyhow::anyhow!("the echo component refused its request: {e:?}"))?;
        let kept = then(outputs.into_iter().map(bindings::from_wit).collect());
        let took = started.elapsed();
        // Torn down on this thread, as the server tears its instances down
        // (`LoadedVersion::predict_answering`): handed to the retiring
        // thread, they would be freed there while the next calls are timed
        // here, and the two threads would contend for the allocator's locks.
        drop(call);
        Ok((took, kept))
    }

    /// The echo's requests for a model's request, checked: the echo
    /// returns as many outputs as the model, of the same datatypes and
    /// shapes, and in one buffer, as many bytes as they take.
    pub(super) fn requests_for(
        &self,
        loaded: &LoadedVersion,
        inputs: &[Tensor],
    ) -> Result<EchoRequests> {
        let outputs = loaded.predict(inputs.to_vec())?;
        let tensors = Echo::request(inputs, &outputs);
        let one_buffer = Echo::one_buffer_request(inputs, &outputs);
        let (_, echoed) = self.call(tensors.clone(), loaded.limits(), |o| o)?;
        let kind = |t: &Tensor| {
            (
                t.name.len(),
                t.shape.clone(),
                t.data.datatype(),
                t.data.len(),
            )
        };
        let want: Vec<_> = outputs.iter().map(kind).collect();
        let got: Vec<_> = echoed.iter().map(kind).collect();
        if want != got {
            bail!(
                "{}: the echo returned {got:?} for outputs {want:?}",
                loaded.name()
            );
        }
        // The buffer's bytes are the echo's filler: what is checked is its
        // length, and that it reads back into as many tensors.
        let want = outputs.iter().map(buffer_size).sum::<usize>();
        let (_, got) = self.call(one_buffer.clone(), loaded.limits(), |o| {
            let buffer = only_buffer(&o)?;
            read_buffer(buffer, &outputs)?;
            anyhow::Ok(buffer.len())
        })?;
        if got? != want {
            bail!(
                "{}: the echo's buffer is not the {want} bytes of the outputs",
                loaded.name()
            );
        }
        // The least call: the request's bytes in, the answer's out, bare.
        let in_bytes = vec![0; inputs.iter().map(buffer_size).sum::<usize>()];
        let out_len = want;
        self.boundary
            .bytes(&in_bytes, out_len, loaded.limits())
            .with_context(|| format!("{}: the boundary component", loaded.name()))?;
        Ok(EchoRequests {
            tensors,
            one_buffer,
            outputs,
            in_bytes,
            out_len,
        })
    }

    /// One series step of the floors and the least calls: the timed calls.
    pub(super) fn time(&self, r: &EchoRequests, limits: CallLimits) -> Result<FloorTimes> {
        let (tensors, ()) = self.call(r.tensors.clone(), limits, drop)?;
        let (one_buffer, read) = self.call(r.one_buffer.clone(), limits, |o| {
            read_buffer(only_buffer(&o)?, &r.outputs).map(drop)
        })?;
        read?;
        Ok(FloorTimes {
            tensors,
            one_buffer,
            least: self.boundary.time(&r.in_bytes, r.out_len, limits)?,
        })
    }
}

/// The times of one step of the floors' series.
pub(super) struct FloorTimes {
    /// The echo with the model's tensors: the floor.
    pub tensors: Duration,
    /// The echo with the same bytes in one buffer each way.
    pub one_buffer: Duration,
    /// The boundary component's calls: `bytes` with the request's and the
    /// answer's sizes, the least call carrying them, and `nothing`.
    pub least: BoundaryTimes,
}

/// The echo's requests for one model request.
pub(super) struct EchoRequests {
    /// The model's inputs and the outputs' description.
    tensors: Vec<Tensor>,
    /// The same bytes in one buffer.
    one_buffer: Vec<Tensor>,
    /// The model's outputs for the request.
    outputs: Vec<Tensor>,
    /// As many bytes as the request's tensors laid out in one buffer.
    in_bytes: Vec<u8>,
    /// As many bytes as the answer's.
    out_len: usize,
}

/// The one element of the one `BYTES` output of a one-buffer call.
fn only_buffer(outputs: &[Tensor]) -> Result<&[u8]> {
    match outputs {
        [
            Tensor {
                data: TensorData::Bytes(elements),
                ..
            },
        ] if elements.len() == 1 => Ok(&elements[0]),
        _ => bail!("the echo did not return one buffer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_component_is_built_from_the_sources_in_the_repository() {
        crate::test_support::assert_built_from_recorded_sources(
            "bench/echo/trademl-bench-echo.sources",
            "scripts/build-bench-echo",
        );
    }

    /// `tensors` laid out as [`buffer_size`] counts: what an interface
    /// carrying tensors as bytes would send.
    fn write_buffer(tensors: &[Tensor]) -> Vec<u8> {
        let mut out = Vec::new();
        for t in tensors {
            out.extend(t.name.as_bytes());
            out.extend(t.shape.iter().flat_map(|d| d.to_le_bytes()));
            match &t.data {
                TensorData::Fp32(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
                TensorData::Fp64(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
                TensorData::Int64(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
                TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
                TensorData::Bytes(v) => {
                    let mut end = 0u32;
                    for e in v {
                        end += e.len() as u32;
                        out.extend(end.to_le_bytes());
                    }
                    v.iter().for_each(|e| out.extend(e));
                }
            }
        }
        out
    }

    fn outputs() -> Vec<Tensor> {
        vec![
            Tensor::new("score", vec![2], TensorData::Fp64(vec![0.5, -3.25])),
            Tensor::new("flag", vec![2], TensorData::Bool(vec![true, false])),
            Tensor::new(
                "driver",
                vec![2, 1],
                TensorData::Bytes(vec![b"humidity".to_vec(), b"t".to_vec()]),
            ),
            Tensor::new("id", vec![1], TensorData::Int64(vec![-7])),
            Tensor::new("p", vec![1], TensorData::Fp32(vec![0.25])),
        ]
    }

    #[test]
    fn a_buffer_reads_back_into_the_tensors_it_was_written_from() {
        let tensors = outputs();
        let buffer = write_buffer(&tensors);
        assert_eq!(buffer.len(), tensors.iter().map(buffer_size).sum::<usize>());
        assert_eq!(read_buffer(&buffer, &tensors).unwrap(), tensors);
        let short = read_buffer(&buffer[..buffer.len() - 1], &tensors).unwrap_err();
        assert!(short.to_string().contains("ends before"), "{short}");
    }

    #[test]
    fn the_description_has_one_record_per_output() {
        // [datatype, name length, rank, dims…, bytes per element]
        assert_eq!(
            Echo::spec(&outputs()),
            vec![
                1, 5, 1, 2, 0, 3, 4, 1, 2, 0, 4, 6, 2, 2, 1, 4, 2, 2, 1, 1, 0, 0, 1, 1, 1, 0
            ]
        );
        let request = Echo::one_buffer_request(&outputs()[..1], &outputs());
        let [
            Tensor {
                name,
                data: TensorData::Bytes(elements),
                ..
            },
        ] = &request[..]
        else {
            panic!("not one BYTES tensor: {request:?}")
        };
        assert_eq!(name, ECHO_SPEC);
        // Six words (the count, then one record of five); the input's 29 bytes fit in them.
        let words: Vec<i64> = elements[0][..48]
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let out_bytes = outputs().iter().map(buffer_size).sum::<usize>() as i64;
        assert_eq!(words, vec![5, 4, 0, 1, 1, out_bytes]);
        assert_eq!(elements[0].len(), 48);
    }
}
