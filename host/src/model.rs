//! One model version, verified, compiled and ready to instantiate.
//!
//! Loading is a pipeline whose every stage can refuse the file with a
//! [`LoadError`] that names the stage: the signature is verified before any
//! byte reaches the compiler; the manifest is read and validated; the
//! component is compiled and checked to export the interface version this
//! host speaks; its `metadata()` must equal the signed manifest; and the
//! manifest's examples must reproduce in the sandbox. Only then is the
//! version routable.
//!
//! A large component that is not in the compiled cache loads with Winch's
//! code (see `sandbox.rs`), and a background thread compiles it with
//! Cranelift, checks the metadata and examples again with that code, and
//! swaps it in: a request takes the code current when it starts, so calls
//! in flight finish on Winch's code and none fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use trademl_sdk::manifest::{self, Manifest};
use trademl_sdk::protocol::{self, TensorSpec};
use trademl_sdk::signing::{self, TrustStore, VerifyError};
use wasmtime::component::types::ComponentItem;

use crate::bindings::{self, ModelError, ModelPre};
use crate::sandbox::{
    CallError, CallLimits, CallState, CallStore, Compiled, PREDICT_EXPORT, Sandbox, SpareSlot, Tier,
};

/// Why a model file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The signature check failed: unsigned, untrusted, altered or malformed.
    #[error("{0}")]
    Signature(#[from] VerifyError),
    /// The manifest is missing or invalid.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The manifest asks for more memory than the host allows.
    #[error(
        "manifest asks for {asked} MiB of memory; this host allows at most {allowed} MiB (AI_MAX_MEMORY)"
    )]
    MemoryLimit {
        /// What the manifest asks for.
        asked: u32,
        /// The host's cap.
        allowed: u32,
    },
    /// The component does not compile.
    #[error("compile: {0}")]
    Compile(String),
    /// The component targets another interface, or imports what the sandbox
    /// does not provide.
    #[error("interface: {0}")]
    Interface(String),
    /// The component's metadata differs from its signed manifest.
    #[error("metadata: {0}")]
    Metadata(String),
    /// An example of the manifest does not reproduce.
    #[error("example {index}: {reason}")]
    Example {
        /// Which example (0-based).
        index: usize,
        /// What differed or failed.
        reason: String,
    },
}

/// Why a prediction failed.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The request does not fit the model (HTTP 400).
    #[error("{0}")]
    InvalidInput(String),
    /// The model reported a failure of its own (HTTP 500).
    #[error("model failure: {0}")]
    ModelFailure(String),
    /// The sandbox stopped the call (HTTP 500).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The host could not start the call (HTTP 500).
    #[error("could not start the model: {0}")]
    Instantiate(String),
}

/// Where the time of a load went.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LoadTimings {
    /// Signature verification.
    pub verify: Duration,
    /// Compilation to native code, or its load from the compiled cache.
    pub compile: Duration,
    /// Whether the compiled code came from the cache.
    pub from_cache: bool,
    /// Which compiler made the code the version was loaded with.
    pub tier: Option<Tier>,
    /// Instantiation, metadata and example checks.
    pub check: Duration,
}

/// A loaded, routable model version.
pub struct LoadedVersion {
    /// The signed manifest.
    pub manifest: Manifest,
    /// SHA-256 of the signed content, hex.
    pub digest: String,
    /// The trusted key that signed it (empty when loaded unsigned by `pack`).
    pub signer: String,
    /// Where the time of the load went.
    pub timings: LoadTimings,
    code: Arc<ArcSwap<Code>>,
    /// The background compile with Cranelift, when the version loaded with
    /// Winch's code: how long it took, or why it failed.
    optimising: Mutex<Option<JoinHandle<Result<Duration, String>>>>,
    sandbox: Arc<Sandbox>,
    limits: CallLimits,
    cost: CallCost,
}

/// What a version's calls have taken lately, and how many input elements
/// they had: averages over the calls that weigh the latest most, from which
/// the server judges whether a call is short enough to run on the thread
/// that received its request (see [`LoadedVersion::expected_call_time`]).
///
/// A request is expected to take the average call's time, scaled up in
/// proportion when it has more elements than the average call, never down.
/// For any cost of the form `fixed + per_element × elements` (both at least
/// 0) that is never less than the request's own cost: with more elements
/// than average, the scaled fixed part only grows; with fewer, the average
/// call's per-element part is the larger. A model called with large batches
/// is therefore not expected to answer one row in a batch's time divided by
/// its rows, nor a quick model to answer a batch in one row's time.
///
/// The averages are updated without a lock: two calls ending together may
/// lose a sample, or pair one call's time with another's size, which an
/// estimate can afford.
#[derive(Default)]
struct CallCost {
    /// The average call's nanoseconds, as `f64` bits; 0 before any call.
    nanos: AtomicU64,
    /// The average call's input elements (at least 1), as `f64` bits.
    elements: AtomicU64,
}

impl CallCost {
    /// The weight of the latest call in the averages.
    const WEIGHT: f64 = 1.0 / 8.0;

    fn record(&self, took: Duration, elements: usize) {
        let average = |field: &AtomicU64, sample: f64| {
            let before = f64::from_bits(field.load(Ordering::Relaxed));
            let after = if before == 0.0 {
                sample
            } else {
                before + Self::WEIGHT * (sample - before)
            };
            // Never 0 once a call was measured.
            field.store(after.max(f64::MIN_POSITIVE).to_bits(), Ordering::Relaxed);
        };
        average(&self.elements, elements.max(1) as f64);
        average(&self.nanos, took.as_nanos() as f64);
    }

    fn estimate(&self, elements: usize) -> Option<Duration> {
        let nanos = f64::from_bits(self.nanos.load(Ordering::Relaxed));
        let average = f64::from_bits(self.elements.load(Ordering::Relaxed));
        (nanos > 0.0 && average > 0.0).then(|| {
            let scale = (elements.max(1) as f64 / average).max(1.0);
            Duration::from_nanos((nanos * scale) as u64)
        })
    }
}

/// The instance of a finished call (if one was taken). Dropping it tears the
/// instance down and gives its pool slot back; whoever bounds the number of
/// live instances must count it until then.
pub struct SpentInstance {
    _call: Option<CallStore>,
}

/// How many elements a call's inputs hold, all tensors together.
fn elements(inputs: &[protocol::Tensor]) -> usize {
    inputs.iter().map(|t| t.data.len()).sum()
}

/// How many instances a version keeps made ahead of its calls: two cover a
/// call that starts while the thread of the call before is still making
/// its replacement.
const SPARES: usize = 2;

/// Code ready to instantiate, the compiler that made it, and its spares.
struct Code {
    pre: ModelPre<CallState>,
    tier: Tier,
    /// Instances made ahead of their call, each for one call (see
    /// `sandbox.rs`): they have run no call yet. Made only when asked
    /// ([`LoadedVersion::make_spares`]), as the server does after each call.
    spares: Mutex<Vec<Spare>>,
}

/// An instance made ahead of its call, in its own store, and the pool slot
/// it holds as a spare.
struct Spare {
    call: CallStore,
    model: bindings::Model,
    _slot: SpareSlot,
}

/// Whether a call may take a spare instance.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spares {
    /// A served call.
    Use,
    /// A check at load time, or the benchmark's measure of an instance made
    /// in the call.
    Bypass,
}

impl Code {
    fn new(sandbox: &Sandbox, compiled: &Compiled) -> Result<Code, LoadError> {
        check_exports(sandbox, compiled)?;
        let instance_pre = sandbox
            .linker_of(compiled.tier)
            .instantiate_pre(&compiled.component)
            .map_err(|e| LoadError::Interface(format!("{e:#}")))?;
        let pre =
            ModelPre::new(instance_pre).map_err(|e| LoadError::Interface(format!("{e:#}")))?;
        Ok(Code {
            pre,
            tier: compiled.tier,
            spares: Mutex::new(Vec::with_capacity(SPARES)),
        })
    }

    fn spares(&self) -> std::sync::MutexGuard<'_, Vec<Spare>> {
        self.spares.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make spares until there are [`SPARES`], or the sandbox's reserve of
    /// slots for them is taken. An instance that fails to be made is not
    /// retried here: the next call makes its own and reports why.
    fn make_spares(&self, sandbox: &Sandbox, limits: CallLimits) {
        while self.spares().len() < SPARES {
            let Some(slot) = sandbox.spare_slot() else {
                return;
            };
            let mut call = sandbox.store_of(self.tier, limits);
            let Ok(model) = self.pre.instantiate(&mut call.store) else {
                return;
            };
            let mut spares = self.spares();
            // Another thread may have filled them meanwhile.
            if spares.len() < SPARES {
                spares.push(Spare {
                    call,
                    model,
                    _slot: slot,
                });
            }
        }
    }
}

impl std::fmt::Debug for LoadedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedVersion")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("digest", &self.digest)
            .finish()
    }
}

impl LoadedVersion {
    /// Verify, compile and check a signed model file.
    pub fn load(
        sandbox: &Arc<Sandbox>,
        bytes: &[u8],
        trust: &TrustStore,
        deadline: Duration,
    ) -> Result<LoadedVersion, LoadError> {
        let started = Instant::now();
        let verified = signing::verify(bytes, trust)?;
        let verify = started.elapsed();
        // The content digest was computed by the verification: hashing a
        // large component again costs as much as verifying it.
        let mut loaded = Self::load_with_digest(sandbox, bytes, deadline, verified.digest)?;
        loaded.signer = verified.key_name;
        loaded.timings.verify = verify;
        Ok(loaded)
    }

    /// Compile and check a packed file without looking at its signatures:
    /// for `trademl pack`, which checks a component before it is signed.
    pub fn load_unverified(
        sandbox: &Arc<Sandbox>,
        bytes: &[u8],
        deadline: Duration,
    ) -> Result<LoadedVersion, LoadError> {
        let digest =
            signing::digest_of_content(bytes).map_err(|e| LoadError::Manifest(e.to_string()))?;
        Self::load_with_digest(sandbox, bytes, deadline, digest)
    }

    /// Compile and check a file whose content digest is `digest`.
    fn load_with_digest(
        sandbox: &Arc<Sandbox>,
        bytes: &[u8],
        deadline: Duration,
        digest: [u8; 32],
    ) -> Result<LoadedVersion, LoadError> {
        let manifest =
            manifest::read_manifest(bytes).map_err(|e| LoadError::Manifest(e.to_string()))?;
        manifest
            .validate()
            .map_err(|e| LoadError::Manifest(e.to_string()))?;
        if manifest.interface != manifest::INTERFACE {
            return Err(LoadError::Interface(format!(
                "the manifest declares {}; this host speaks {}",
                manifest.interface,
                manifest::INTERFACE
            )));
        }
        if manifest.memory_limit_mib > sandbox.max_memory_mib() {
            return Err(LoadError::MemoryLimit {
                asked: manifest.memory_limit_mib,
                allowed: sandbox.max_memory_mib(),
            });
        }
        let digest = hex::encode(digest);

        let started = Instant::now();
        let compiled = sandbox
            .compile_for_load(bytes, &digest)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let compile = started.elapsed();

        let started = Instant::now();
        let limits = CallLimits {
            max_memory_bytes: (manifest.memory_limit_mib as usize) << 20,
            deadline,
        };
        let mut loaded = LoadedVersion::checked(
            sandbox,
            manifest,
            digest,
            limits,
            Code::new(sandbox, &compiled)?,
        )?;
        loaded.timings.compile = compile;
        loaded.timings.from_cache = compiled.from_cache;
        loaded.timings.tier = Some(compiled.tier);
        loaded.timings.check = started.elapsed();
        if compiled.tier == Tier::Winch && sandbox.tiers_up() {
            let bytes = bytes.to_vec();
            let manifest = loaded.manifest.clone();
            let digest = loaded.digest.clone();
            let slot = Arc::downgrade(&loaded.code);
            let sandbox = sandbox.clone();
            let thread = std::thread::Builder::new()
                .name("trademl-optimise".into())
                .spawn(move || optimise(&sandbox, &bytes, manifest, digest, limits, slot))
                .map_err(|e| LoadError::Compile(format!("starting the Cranelift compile: {e}")))?;
            *loaded
                .optimising
                .get_mut()
                .unwrap_or_else(|p| p.into_inner()) = Some(thread);
        }
        Ok(loaded)
    }

    /// A version with this code, whose metadata and examples are checked.
    fn checked(
        sandbox: &Arc<Sandbox>,
        manifest: Manifest,
        digest: String,
        limits: CallLimits,
        code: Code,
    ) -> Result<LoadedVersion, LoadError> {
        let loaded = LoadedVersion {
            manifest,
            digest,
            signer: String::new(),
            timings: LoadTimings::default(),
            code: Arc::new(ArcSwap::from_pointee(code)),
            optimising: Mutex::new(None),
            sandbox: sandbox.clone(),
            limits,
            cost: CallCost::default(),
        };
        loaded.check_metadata()?;
        loaded.check_examples()?;
        Ok(loaded)
    }

    /// Which compiler made the code that serves now.
    pub fn tier(&self) -> Tier {
        self.code.load().tier
    }

    /// Wait for the background compile with Cranelift, if the version loaded
    /// with Winch's code: how long it took, or why it failed (the version
    /// then goes on serving Winch's code). None when there was none, or it
    /// was already waited for.
    pub fn wait_optimised(&self) -> Option<Result<Duration, String>> {
        let thread = self
            .optimising
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        Some(
            thread
                .join()
                .unwrap_or_else(|_| Err("the Cranelift compile panicked".into())),
        )
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The model's version.
    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> CallLimits {
        self.limits
    }

    /// Check a request's inputs against the manifest: every input known,
    /// present once, of the declared datatype and shape.
    pub fn check_inputs(&self, inputs: &[protocol::Tensor]) -> Result<(), PredictError> {
        let specs = &self.manifest.inputs;
        for (i, t) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|o| o.name == t.name) {
                return Err(PredictError::InvalidInput(format!(
                    "input \"{}\" is given twice",
                    t.name
                )));
            }
            let Some(spec) = specs.iter().find(|s| s.name == t.name) else {
                return Err(PredictError::InvalidInput(format!(
                    "unknown input \"{}\"; model \"{}\" takes {}",
                    t.name,
                    self.name(),
                    names(specs)
                )));
            };
            protocol::check_tensor(t, spec).map_err(PredictError::InvalidInput)?;
        }
        if let Some(missing) = specs
            .iter()
            .find(|s| !inputs.iter().any(|t| t.name == s.name))
        {
            return Err(PredictError::InvalidInput(format!(
                "missing input \"{}\" ({} {}); model \"{}\" takes {}",
                missing.name,
                missing.datatype.as_str(),
                shape_text(&missing.shape),
                self.name(),
                names(specs)
            )));
        }
        Ok(())
    }

    /// Run one prediction in a fresh instance: one that has served no other
    /// call, made ahead of the call when a spare is ready (see
    /// [`LoadedVersion::make_spares`]), else made now. Blocking: call it
    /// from a blocking thread. The instance's teardown is handed to the
    /// sandbox's retiring thread (see [`LoadedVersion::predict_answering`]
    /// for a caller that tears it down itself, after answering).
    pub fn predict(
        &self,
        inputs: Vec<protocol::Tensor>,
    ) -> Result<Vec<protocol::Tensor>, PredictError> {
        self.retiring(self.predict_with(inputs, Spares::Use, self.limits.deadline))
    }

    /// How long a call with these inputs should take, from what this
    /// version's calls have taken lately (the checks of its examples at load
    /// included): their average time, scaled up for inputs with more
    /// elements than their average, never down (see `CallCost`); None
    /// before any call was measured.
    pub fn expected_call_time(&self, inputs: &[protocol::Tensor]) -> Option<Duration> {
        self.cost.estimate(elements(inputs))
    }

    /// [`LoadedVersion::predict`] on this thread under a CPU deadline of
    /// `within` when that is shorter than the version's own, with the spent
    /// instance for the caller to drop when it suits it (after answering).
    /// The server runs the calls it expects to be short this way, on the
    /// thread that received their request; a call stopped by the shorter
    /// deadline fails with [`CallError::Deadline`] naming it, and its time
    /// counts in [`LoadedVersion::expected_call_time`] like any other call's.
    pub fn predict_within(
        &self,
        inputs: Vec<protocol::Tensor>,
        within: Duration,
    ) -> (Result<Vec<protocol::Tensor>, PredictError>, SpentInstance) {
        let (result, call) = self.predict_with(inputs, Spares::Use, within);
        (result, SpentInstance { _call: call })
    }

    /// [`LoadedVersion::predict`], handing the result to `answer` as soon as
    /// the outputs are out of the instance, then tearing the instance down
    /// on this thread. The server answers this way: the teardown (resetting
    /// the pool slot's memory and tables) runs while the answer is being
    /// sent, and no other thread has to be woken for it. Whoever bounds the
    /// number of live instances (the server's call permits) must count this
    /// call until the function returns, not until `answer` runs.
    pub fn predict_answering(
        &self,
        inputs: Vec<protocol::Tensor>,
        answer: impl FnOnce(Result<Vec<protocol::Tensor>, PredictError>),
    ) {
        self.answering(inputs, Spares::Use, answer);
    }

    /// [`LoadedVersion::predict`] with the instance made in the call, as
    /// before spares. For the checks at load time.
    pub fn predict_making_instance(
        &self,
        inputs: Vec<protocol::Tensor>,
    ) -> Result<Vec<protocol::Tensor>, PredictError> {
        self.retiring(self.predict_with(inputs, Spares::Bypass, self.limits.deadline))
    }

    /// [`LoadedVersion::predict_answering`] with the instance made in the
    /// call, as before spares. For benchmarks: the instance is torn down on
    /// this thread, as the server tears its own down, so that no other
    /// thread frees memory while the next call is timed.
    pub fn predict_making_instance_answering(
        &self,
        inputs: Vec<protocol::Tensor>,
        answer: impl FnOnce(Result<Vec<protocol::Tensor>, PredictError>),
    ) {
        self.answering(inputs, Spares::Bypass, answer);
    }

    /// The call, its result handed to `answer`, then its instance torn down
    /// on this thread.
    fn answering(
        &self,
        inputs: Vec<protocol::Tensor>,
        spares: Spares,
        answer: impl FnOnce(Result<Vec<protocol::Tensor>, PredictError>),
    ) {
        let (result, call) = self.predict_with(inputs, spares, self.limits.deadline);
        answer(result);
        drop(call);
    }

    /// A finished call's result, its store handed to the retiring thread.
    fn retiring<T>(&self, (result, call): (T, Option<CallStore>)) -> T {
        if let Some(call) = call {
            self.sandbox.retire(call);
        }
        result
    }

    /// The prediction under a CPU deadline of `deadline` (at most the
    /// version's own), and the store it ran in (none when the inputs were
    /// refused before any instance was taken), for the caller to tear down.
    /// Its time counts in the version's [`CallCost`].
    fn predict_with(
        &self,
        inputs: Vec<protocol::Tensor>,
        spares: Spares,
        deadline: Duration,
    ) -> (
        Result<Vec<protocol::Tensor>, PredictError>,
        Option<CallStore>,
    ) {
        if let Err(err) = self.check_inputs(&inputs) {
            return (Err(err), None);
        }
        let started = Instant::now();
        let elements = elements(&inputs);
        let inputs: Vec<bindings::Tensor> = inputs.into_iter().map(bindings::to_wit).collect();
        let (outputs, call) = self.call_predict(&inputs, spares, deadline);
        let result = outputs.and_then(|outputs| {
            let outputs: Vec<protocol::Tensor> =
                outputs.into_iter().map(bindings::from_wit).collect();
            self.check_outputs(&outputs)?;
            Ok(outputs)
        });
        self.cost.record(started.elapsed(), elements);
        (result, call)
    }

    fn call_predict(
        &self,
        inputs: &[bindings::Tensor],
        spares: Spares,
        deadline: Duration,
    ) -> (
        Result<Vec<bindings::Tensor>, PredictError>,
        Option<CallStore>,
    ) {
        let code = self.code.load_full();
        let spare = match spares {
            Spares::Use => code.spares().pop(),
            Spares::Bypass => None,
        };
        let (mut call, model) = match spare {
            Some(Spare {
                mut call, model, ..
            }) => {
                // The deadline counts from the call, not from the making.
                call.start_deadline_within(deadline);
                (call, model)
            }
            None => {
                let mut call = self.sandbox.store_of(code.tier, self.limits);
                call.start_deadline_within(deadline);
                match code.pre.instantiate(&mut call.store) {
                    Ok(model) => (call, model),
                    Err(err) => {
                        let err = match call.classify(err) {
                            CallError::Trap(msg) => PredictError::Instantiate(msg),
                            other => PredictError::Call(other),
                        };
                        return (Err(err), Some(call));
                    }
                }
            }
        };
        let result = match model
            .trademl_model_predict()
            .call_predict(&mut call.store, inputs)
        {
            Ok(Ok(outputs)) => Ok(outputs),
            Ok(Err(ModelError::InvalidInput(msg))) => Err(PredictError::InvalidInput(msg)),
            Ok(Err(ModelError::ModelFailure(msg))) => Err(PredictError::ModelFailure(msg)),
            Err(err) => Err(PredictError::Call(call.classify(err))),
        };
        // The outputs are lifted out of the instance's memory: its teardown
        // need not delay the answer, and is left to the caller.
        (result, Some(call))
    }

    /// Make the instances the next calls will take (up to two; fewer when
    /// the sandbox's reserve of slots for them is taken), so that their
    /// making is not part of those calls. Call it off the answer's path: the
    /// server calls it on the thread that ran a call, once the answer is
    /// handed back. A version that is never asked keeps none, and each of
    /// its calls makes its own instance.
    pub fn make_spares(&self) {
        self.code
            .load_full()
            .make_spares(&self.sandbox, self.limits);
    }

    /// Give up the instances made ahead of calls this version may no longer
    /// get: the repository calls it when a routing change takes the
    /// version's traffic away. Their pool slots go back to the reserve for
    /// spares, which the routed versions need; the stores are torn down by
    /// the sandbox's retiring thread. A later call (by version) makes its
    /// own instance and, through the server, the spares again.
    pub fn drop_spares(&self) {
        let spares = std::mem::take(&mut *self.code.load().spares());
        for Spare { call, .. } in spares {
            self.sandbox.retire(call);
        }
    }

    /// How many instances made ahead of their call wait for one.
    pub fn spares_ready(&self) -> usize {
        self.code.load().spares().len()
    }

    /// Create a fresh store and instance, as each request gets (the server
    /// makes them ahead of the request, see [`LoadedVersion::make_spares`]),
    /// and return how long that took. For benchmarks.
    pub fn time_instantiation(&self) -> Result<Duration, PredictError> {
        let started = Instant::now();
        let code = self.code.load_full();
        let mut call = self.sandbox.store_of(code.tier, self.limits);
        code.pre
            .instantiate(&mut call.store)
            .map_err(|e| PredictError::Instantiate(call.classify(e).to_string()))?;
        Ok(started.elapsed())
    }

    /// One instance kept for several calls, for the benchmark's measure of
    /// what a fresh instance per request costs. The server never does this:
    /// each request gets a fresh instance (DESIGN.md, "The sandbox"), so that
    /// nothing a call leaves in the model's memory reaches the next request.
    pub fn warm_instance(&self) -> Result<WarmInstance<'_>, PredictError> {
        let code = self.code.load_full();
        let mut call = self.sandbox.store_of(code.tier, self.limits);
        let model = code
            .pre
            .instantiate(&mut call.store)
            .map_err(|e| PredictError::Instantiate(call.classify(e).to_string()))?;
        Ok(WarmInstance {
            version: self,
            call,
            model,
        })
    }

    /// Check a model's outputs against the manifest: every output declared,
    /// of its datatype and shape.
    pub fn check_outputs(&self, outputs: &[protocol::Tensor]) -> Result<(), PredictError> {
        for t in outputs {
            let Some(spec) = self.manifest.outputs.iter().find(|s| s.name == t.name) else {
                return Err(PredictError::ModelFailure(format!(
                    "the model returned an undeclared output \"{}\"",
                    t.name
                )));
            };
            protocol::check_tensor(t, spec).map_err(|e| {
                PredictError::ModelFailure(format!("the model returned a bad output: {e}"))
            })?;
        }
        Ok(())
    }

    fn check_metadata(&self) -> Result<(), LoadError> {
        let code = self.code.load_full();
        let mut call = self.sandbox.store_of(code.tier, self.limits);
        let model = code
            .pre
            .instantiate(&mut call.store)
            .map_err(|e| LoadError::Metadata(format!("instantiating: {}", call.classify(e))))?;
        let meta = model
            .trademl_model_predict()
            .call_metadata(&mut call.store)
            .map_err(|e| {
                LoadError::Metadata(format!("calling metadata(): {}", call.classify(e)))
            })?;
        let m = &self.manifest;
        let field =
            |what: &str, component: &dyn std::fmt::Debug, manifest: &dyn std::fmt::Debug| {
                LoadError::Metadata(format!(
                    "the component's {what} is {component:?} but the manifest says {manifest:?}"
                ))
            };
        if meta.name != m.name {
            return Err(field("name", &meta.name, &m.name));
        }
        if meta.version != m.version {
            return Err(field("version", &meta.version, &m.version));
        }
        if meta.description != m.description {
            return Err(LoadError::Metadata(format!(
                "the component's description differs from the manifest's {}",
                first_difference(&meta.description, &m.description)
            )));
        }
        let inputs: Vec<TensorSpec> = meta.inputs.iter().map(bindings::spec).collect();
        if inputs != m.inputs {
            return Err(field("inputs", &inputs, &m.inputs));
        }
        let outputs: Vec<TensorSpec> = meta.outputs.iter().map(bindings::spec).collect();
        if outputs != m.outputs {
            return Err(field("outputs", &outputs, &m.outputs));
        }
        Ok(())
    }

    fn check_examples(&self) -> Result<(), LoadError> {
        for (index, example) in self.manifest.examples.iter().enumerate() {
            let fail = |reason: String| LoadError::Example { index, reason };
            let outputs = self
                .predict_making_instance(example.inputs.clone())
                .map_err(|e| fail(e.to_string()))?;
            for expected in &example.outputs {
                let actual = outputs
                    .iter()
                    .find(|t| t.name == expected.name)
                    .ok_or_else(|| fail(format!("no output \"{}\"", expected.name)))?;
                protocol::tensors_close(expected, actual, example.tolerance).map_err(fail)?;
            }
        }
        Ok(())
    }
}

/// The background half of a tiered load: compile with Cranelift (into the
/// compiled cache), check the metadata and examples with that code, and swap
/// it into the version, unless the version was dropped meanwhile. Returns
/// how long that took (not counting the wait for its turn).
fn optimise(
    sandbox: &Arc<Sandbox>,
    bytes: &[u8],
    manifest: Manifest,
    digest: String,
    limits: CallLimits,
    slot: Weak<ArcSwap<Code>>,
) -> Result<Duration, String> {
    let name = format!("{} {}", manifest.name, manifest.version);
    let _turn = sandbox.background_turn();
    if slot.strong_count() == 0 {
        return Err("the version was dropped before its Cranelift compile".into());
    }
    let started = Instant::now();
    let result = (|| {
        let (component, from_cache) = sandbox
            .in_background(|| sandbox.compile_cached(bytes, &digest))
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let compiled = Compiled {
            component,
            tier: Tier::Cranelift,
            from_cache,
        };
        let code = Code::new(sandbox, &compiled)?;
        let checked = LoadedVersion::checked(sandbox, manifest, digest, limits, code)?;
        Ok::<_, LoadError>(checked.code.load_full())
    })();
    match result {
        Ok(code) => {
            if let Some(slot) = slot.upgrade() {
                slot.store(code);
            }
            let took = started.elapsed();
            tracing::info!(
                "{name}: now serving Cranelift's code (compiled in {:.1} s)",
                took.as_secs_f64()
            );
            Ok(took)
        }
        Err(e) => {
            tracing::warn!("{name}: the Cranelift compile failed, serving Winch's code: {e}");
            Err(e.to_string())
        }
    }
}

/// An instance that serves several calls in turn: see
/// [`LoadedVersion::warm_instance`]. For benchmarks only.
pub struct WarmInstance<'a> {
    version: &'a LoadedVersion,
    call: CallStore,
    model: bindings::Model,
}

impl WarmInstance<'_> {
    /// The same prediction as [`LoadedVersion::predict`] (the manifest
    /// checks, the tensors through the canonical ABI), in this instance.
    pub fn predict(
        &mut self,
        inputs: Vec<protocol::Tensor>,
    ) -> Result<Vec<protocol::Tensor>, PredictError> {
        self.version.check_inputs(&inputs)?;
        let inputs: Vec<bindings::Tensor> = inputs.into_iter().map(bindings::to_wit).collect();
        self.call.restart_deadline();
        let outputs = match self
            .model
            .trademl_model_predict()
            .call_predict(&mut self.call.store, &inputs)
        {
            Ok(Ok(outputs)) => outputs,
            Ok(Err(ModelError::InvalidInput(msg))) => return Err(PredictError::InvalidInput(msg)),
            Ok(Err(ModelError::ModelFailure(msg))) => return Err(PredictError::ModelFailure(msg)),
            Err(err) => return Err(PredictError::Call(self.call.classify(err))),
        };
        let outputs: Vec<protocol::Tensor> = outputs.into_iter().map(bindings::from_wit).collect();
        self.version.check_outputs(&outputs)?;
        Ok(outputs)
    }
}

/// Refuse, with a message naming both versions, a component that does not
/// export the interface version this host speaks.
pub(crate) fn check_exports(sandbox: &Sandbox, compiled: &Compiled) -> Result<(), LoadError> {
    let engine = sandbox.engine_of(compiled.tier);
    let ty = compiled.component.component_type();
    let instances: Vec<String> = ty
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| name.to_string())
        .collect();
    if instances.iter().any(|e| e == PREDICT_EXPORT) {
        return Ok(());
    }
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let other = exports
        .iter()
        .find(|e| e.starts_with("trademl:model/predict"));
    Err(LoadError::Interface(match other {
        Some(other) => format!(
            "the component exports {other}, an interface version this host does not speak; it speaks {PREDICT_EXPORT}"
        ),
        None => format!(
            "the component does not export {PREDICT_EXPORT} (it exports: {}); build it against trademl-sdk",
            if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            }
        ),
    }))
}

/// Where two texts first differ, with a little context from each.
fn first_difference(a: &str, b: &str) -> String {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or(a.len().min(b.len()));
    let start = a[..at].char_indices().rev().nth(20).map_or(0, |(i, _)| i);
    let snippet = |s: &str| {
        s.get(start..)
            .unwrap_or("")
            .chars()
            .take(60)
            .collect::<String>()
    };
    format!(
        "at byte {at}: component \"…{}…\", manifest \"…{}…\"",
        snippet(a),
        snippet(b)
    )
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| format!("\"{}\"", s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn shape_text(shape: &[i64]) -> String {
    format!("{shape:?}")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sandbox::SandboxConfig;

    fn anomaly_detection(sandbox: &Arc<Sandbox>, deadline: Duration) -> LoadedVersion {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let trust = TrustStore::load(&models.join("trust")).unwrap();
        let bytes = std::fs::read(models.join("anomaly-detection/1.0.1.wasm")).unwrap();
        LoadedVersion::load(sandbox, &bytes, &trust, deadline).unwrap()
    }

    /// A spare is made long before its call; the call's CPU deadline counts
    /// from the call. A spare's store keeping the deadline it was made with
    /// would have it stop the call at once.
    #[test]
    fn a_spare_made_long_before_its_call_gets_the_whole_deadline() {
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        assert!(sandbox.pooling(), "spares need the pooling allocator");
        let deadline = Duration::from_millis(30);
        let model = anomaly_detection(&sandbox, deadline);
        let example = model.manifest.examples[0].clone();
        assert_eq!(model.spares_ready(), 0, "loading made spares");

        model.make_spares();
        assert_eq!(model.spares_ready(), SPARES);
        std::thread::sleep(5 * deadline);
        let outputs = model.predict(example.inputs.clone()).unwrap();
        assert_eq!(model.spares_ready(), SPARES - 1, "the call made its own");
        for expected in &example.outputs {
            let actual = outputs.iter().find(|t| t.name == expected.name).unwrap();
            protocol::tensors_close(expected, actual, example.tolerance).unwrap();
        }
    }

    #[test]
    fn call_cost_scales_up_with_elements_and_follows_the_latest_calls() {
        let cost = CallCost::default();
        assert_eq!(cost.estimate(1), None, "no call measured yet");
        cost.record(Duration::from_micros(40), 4);
        // A request of the average call's size, or smaller: its time.
        assert_eq!(cost.estimate(4), Some(Duration::from_micros(40)));
        assert_eq!(cost.estimate(1), Some(Duration::from_micros(40)));
        assert_eq!(cost.estimate(0), Some(Duration::from_micros(40)));
        // Larger: in proportion.
        assert_eq!(cost.estimate(100), Some(Duration::from_micros(1000)));
        // A long call raises the estimate at once; quick ones bring it back.
        cost.record(Duration::from_millis(10), 4);
        let raised = cost.estimate(4).unwrap();
        assert!(raised > Duration::from_millis(1), "{raised:?}");
        for _ in 0..60 {
            cost.record(Duration::from_micros(40), 4);
        }
        let back = cost.estimate(4).unwrap();
        assert!(back < Duration::from_micros(41), "{back:?}");
    }

    /// Whatever mix of sizes a version is called with, a request is never
    /// expected to take less than it does, when a call costs a fixed part
    /// and a part per element.
    #[test]
    fn call_cost_never_expects_less_than_a_fixed_plus_per_element_cost() {
        let cost_of = |n: usize| Duration::from_nanos(5_000 + 30 * n as u64);
        for mix in [
            &[1_usize][..],
            &[1000],
            &[1, 1000],
            &[2, 2, 2, 200],
            &[500, 7, 64],
        ] {
            let cost = CallCost::default();
            for _ in 0..40 {
                for &n in mix {
                    cost.record(cost_of(n), n);
                }
            }
            for n in [1, 2, 7, 64, 200, 500, 1000, 5000] {
                let expected = cost.estimate(n).unwrap();
                // A nanosecond for the averages' rounding.
                assert!(
                    expected + Duration::from_nanos(1) >= cost_of(n),
                    "calls of {mix:?} elements: {n} expected to take {expected:?}, takes {:?}",
                    cost_of(n)
                );
            }
        }
    }

    /// A version's calls, the checks of its examples at load included, tell
    /// the server how long its next call should take; a call under a shorter
    /// deadline than the version's answers as any other.
    #[test]
    fn calls_measure_the_expected_call_time() {
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        let model = anomaly_detection(&sandbox, Duration::from_secs(10));
        let example = model.manifest.examples[0].clone();
        let before = model
            .expected_call_time(&example.inputs)
            .expect("the examples' checks measured the calls");
        assert!(before > Duration::ZERO);
        let (outputs, spent) =
            model.predict_within(example.inputs.clone(), Duration::from_millis(500));
        drop(spent);
        let outputs = outputs.unwrap();
        for expected in &example.outputs {
            let actual = outputs.iter().find(|t| t.name == expected.name).unwrap();
            protocol::tensors_close(expected, actual, example.tolerance).unwrap();
        }
        // More elements are never expected to be quicker, and twice the
        // elements at most twice as long.
        let mut doubled = example.inputs.clone();
        doubled.extend(example.inputs.clone());
        let none = model.expected_call_time(&[]).unwrap();
        let one = model.expected_call_time(&example.inputs).unwrap();
        let two = model.expected_call_time(&doubled).unwrap();
        assert!(none <= one && one <= two, "{none:?} {one:?} {two:?}");
        assert!(two <= 2 * one + Duration::from_nanos(2), "{one:?} {two:?}");
    }

    /// The server's path answers once, with what `predict` gives, whether
    /// the call ran or its inputs were refused before taking an instance.
    #[test]
    fn predict_answering_answers_once_whatever_the_outcome() {
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        let model = anomaly_detection(&sandbox, Duration::from_secs(10));
        let example = model.manifest.examples[0].clone();
        model.make_spares();
        let mut answers = Vec::new();
        model.predict_answering(example.inputs.clone(), |r| answers.push(r));
        assert_eq!(answers.len(), 1);
        let outputs = answers.pop().unwrap().unwrap();
        for expected in &example.outputs {
            let actual = outputs.iter().find(|t| t.name == expected.name).unwrap();
            protocol::tensors_close(expected, actual, example.tolerance).unwrap();
        }
        assert_eq!(model.spares_ready(), SPARES - 1, "the call took a spare");

        model.predict_answering(Vec::new(), |r| answers.push(r));
        assert_eq!(answers.len(), 1);
        match answers.pop().unwrap() {
            Err(PredictError::InvalidInput(msg)) => assert!(msg.contains("missing input"), "{msg}"),
            other => panic!("expected a refused request, got {other:?}"),
        }
        assert_eq!(
            model.spares_ready(),
            SPARES - 1,
            "a refused request took a spare"
        );
    }

    /// Spares hold only the slots the pool reserves for them: beyond those,
    /// a version makes none, and its calls make their own instances.
    #[test]
    fn spares_stop_at_the_reserved_slots() {
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        let versions: Vec<LoadedVersion> = (0..crate::sandbox::SPARE_SLOTS as usize / SPARES + 1)
            .map(|_| anomaly_detection(&sandbox, Duration::from_secs(5)))
            .collect();
        for v in &versions {
            v.make_spares();
        }
        let held: usize = versions.iter().map(LoadedVersion::spares_ready).sum();
        assert_eq!(held, crate::sandbox::SPARE_SLOTS as usize);
        let last = versions.last().unwrap();
        assert_eq!(last.spares_ready(), 0);
        let example = &last.manifest.examples[0];
        last.predict(example.inputs.clone()).unwrap();
        // A version that gives up its spares gives their slots back.
        versions[0].drop_spares();
        assert_eq!(versions[0].spares_ready(), 0);
        last.make_spares();
        assert_eq!(last.spares_ready(), SPARES);
        // So does a version that is dropped.
        drop(versions);
        let again = anomaly_detection(&sandbox, Duration::from_secs(5));
        again.make_spares();
        assert_eq!(again.spares_ready(), SPARES);
    }
}
