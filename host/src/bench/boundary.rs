//! The least a call across the sandbox costs: the benchmark's boundary
//! component, called with a model's request as bare bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::sandbox::{CallLimits, CallState, Sandbox};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../bench/boundary/wit",
        world: "boundary",
    });
}

/// The benchmark's boundary component (`bench/boundary`, rebuilt by
/// `scripts/build-bench-boundary`): `nothing`, and `bytes`, one list of
/// bytes in and one out, with the allocator of a model built by
/// `trademl new`. A model's call sends its request and gets its answer
/// through an interface of tensors; any interface at all sends at least the
/// request's bytes in and the answer's bytes out, so the time of `bytes`
/// with those sizes is the bound below the model's time in the sandbox for
/// any interface it could be given, and `nothing` the bound below any call.
pub const BOUNDARY: &[u8] = include_bytes!("../../../bench/boundary/trademl-bench-boundary.wasm");

/// The boundary component, compiled by the sandbox's own engine.
pub(super) struct Boundary {
    sandbox: Arc<Sandbox>,
    pre: bindings::BoundaryPre<CallState>,
}

/// The times of one step of the boundary's series.
pub(super) struct BoundaryTimes {
    /// `bytes` with the request's and the answer's sizes.
    pub bytes: Duration,
    /// `nothing`.
    pub nothing: Duration,
}

impl Boundary {
    pub(super) fn new(sandbox: &Arc<Sandbox>) -> Result<Boundary> {
        let component = sandbox
            .compile(BOUNDARY)
            .context("the boundary component")?;
        let pre = bindings::BoundaryPre::new(sandbox.linker().instantiate_pre(&component)?)?;
        Ok(Boundary {
            sandbox: sandbox.clone(),
            pre,
        })
    }

    /// `bytes` in a fresh instance made before the clock starts, as the
    /// server's calls are: timed from the call until the answer's bytes are
    /// the host's, checked to be `output_len` long.
    pub(super) fn bytes(
        &self,
        input: &[u8],
        output_len: usize,
        limits: CallLimits,
    ) -> Result<Duration> {
        let mut call = self.sandbox.store(limits);
        let boundary = self.pre.instantiate(&mut call.store)?;
        let len = u32::try_from(output_len).context("an answer of more than 4 GiB")?;
        let started = Instant::now();
        let output = boundary.call_bytes(&mut call.store, input, len)?;
        let took = started.elapsed();
        if output.len() != output_len {
            bail!(
                "the boundary component returned {} bytes for {output_len}",
                output.len()
            );
        }
        drop(call);
        Ok(took)
    }

    /// `nothing` in a fresh instance made before the clock starts.
    pub(super) fn nothing(&self, limits: CallLimits) -> Result<Duration> {
        let mut call = self.sandbox.store(limits);
        let boundary = self.pre.instantiate(&mut call.store)?;
        let started = Instant::now();
        boundary.call_nothing(&mut call.store)?;
        let took = started.elapsed();
        drop(call);
        Ok(took)
    }

    /// One step of the series: `bytes` with these sizes, then `nothing`.
    pub(super) fn time(
        &self,
        input: &[u8],
        output_len: usize,
        limits: CallLimits,
    ) -> Result<BoundaryTimes> {
        Ok(BoundaryTimes {
            bytes: self.bytes(input, output_len, limits)?,
            nothing: self.nothing(limits)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxConfig;

    #[test]
    fn the_boundary_component_is_built_from_the_sources_in_the_repository() {
        crate::test_support::assert_built_from_recorded_sources(
            "bench/boundary/trademl-bench-boundary.sources",
            "scripts/build-bench-boundary",
        );
    }

    #[test]
    fn the_boundary_component_answers_with_as_many_bytes_as_it_is_asked() {
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        let boundary = Boundary::new(&sandbox).unwrap();
        let limits = CallLimits {
            max_memory_bytes: 64 << 20,
            deadline: Duration::from_secs(10),
        };
        for (input, output_len) in [(0, 0), (3, 1), (100_000, 70_000)] {
            boundary
                .time(&vec![7; input], output_len, limits)
                .unwrap_or_else(|e| panic!("{input} bytes in, {output_len} out: {e:#}"));
        }
    }
}
