//! The one place that narrows wasmtime to what trademl uses.
//!
//! A [`Sandbox`] owns the [`Engine`] (component model on, epoch interruption
//! on, the pooling allocator with copy-on-write memory images) and the
//! [`Linker`] that every model is instantiated against. The linker grants WASI
//! with no capabilities: no preopened directories, no environment variables,
//! no arguments, no network (the default socket policy denies every address),
//! and standard output and error discarded. A guest built for `wasm32-wasip2`
//! links against it, and finds nothing to reach.
//!
//! Each call runs in a fresh [`Store`] with:
//! - a memory cap enforced by [`CallLimiter`], which records whether the cap
//!   was hit so that the error can say so;
//! - an epoch deadline: a background thread ticks the engine's epoch every
//!   [`TICK`], and a call that runs past its deadline traps.
//!
//! Compilation is tiered for large components. Cranelift, the optimising
//! compiler, takes minutes over a component with megabytes of code (the ONNX
//! runner: tract with every operator); Winch, wasmtime's baseline compiler,
//! compiles it in a small fraction of that, into slower code. A component
//! with more than [`Tiering::Background`]'s threshold of code that is not in
//! the compiled cache is compiled with Winch, in a second engine, so that it
//! serves at once; Cranelift then compiles it in the background (one
//! component at a time), the result goes into the compiled cache, and the
//! model version swaps to it (see `model.rs`). The compiled cache only ever
//! holds Cranelift's code, and a component under the threshold (every
//! first-party model) is compiled by Cranelift straight away.
//!
//! The server tears a finished call's instance down on the call's own
//! thread, after handing the answer back (`LoadedVersion::predict_answering`),
//! and counts it as live until then. Other callers hand a finished store to
//! [`Sandbox::retire`], which drops it on a background thread, in batches
//! of [`RETIRE_BATCH`] (one wake-up per batch, not per call; what is left
//! of a batch is dropped within [`RETIRE_WAIT`]). Only that thread drops
//! retired stores, so at most twice [`RETIRE_QUEUE`] of them hold a pool
//! slot (one batch being dropped, the next one waiting): the pool has that
//! many slots beyond
//! `max_instances`, and live calls never run out of instances. Tearing an
//! instance down (resetting the pages it wrote, returning its pool slot) is
//! about as long as the call itself, and the caller already holds its
//! outputs. The instance is still used once.
//!
//! Creating the store and instance is the other half of a small model's
//! sandbox overhead, and it too can leave the request's path: a model
//! version keeps a few instances made ahead of their call (spares, see
//! `model.rs`), which the server makes on the thread that ran a call, once
//! that call's answer is handed back. A spare has served no call: each
//! request still gets an instance of its own, used once and thrown away.
//! Spares hold at most [`SPARE_SLOTS`] pool slots, reserved beyond those of
//! live calls and retired stores, so that they never starve a live call.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    Trap,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::cache::CompiledCache;

/// How often the epoch ticker advances the engine's epoch.
pub const TICK: Duration = Duration::from_millis(5);

/// How much of each pooled memory and table stays resident between calls
/// (reset in place rather than returned to the kernel).
pub const KEEP_RESIDENT: usize = 1 << 20;

/// How many finished stores wake the retiring thread.
pub const RETIRE_BATCH: usize = 8;

/// How many finished stores may wait to be dropped. Beyond this many, a call
/// drops its own store. The pool holds twice this many instances beyond
/// `max_instances` (a batch being dropped by the one retiring thread and the
/// next one filling), so that stores waiting to be dropped never starve live
/// calls of a slot.
pub const RETIRE_QUEUE: usize = 16;

/// How long fewer than [`RETIRE_BATCH`] finished stores may wait.
pub const RETIRE_WAIT: Duration = Duration::from_millis(100);

/// Pool slots reserved for instances made ahead of their call (spares),
/// across all model versions. Beyond it, a call makes its instance itself.
pub const SPARE_SLOTS: u32 = 32;

/// A pool slot held by a spare instance: given back when dropped.
pub struct SpareSlot {
    spares_held: Arc<AtomicU32>,
}

impl Drop for SpareSlot {
    fn drop(&mut self) {
        self.spares_held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Finished stores waiting to be dropped, and the retiring thread's signal.
#[derive(Default)]
struct Retired {
    stores: Mutex<Vec<CallStore>>,
    batch_ready: Condvar,
}

impl Retired {
    /// The waiting stores, even if a thread panicked while holding them (a
    /// store's drop does not leave the list half-updated).
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CallStore>> {
        self.stores.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Code size above which a component not in the compiled cache is compiled
/// first with Winch, then with Cranelift in the background: 4 MiB. The
/// first-party models have at most a few hundred KiB of code (Cranelift
/// compiles them in 100 to 300 ms); the ONNX runner has about 15 MiB.
pub const TIERED_ABOVE: usize = 4 << 20;

/// When to compile with Winch first (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tiering {
    /// Always Cranelift.
    Off,
    /// Components with more than this many bytes of code, not in the cache:
    /// Winch now, Cranelift in the background, then a swap.
    Background {
        /// The code size threshold in bytes.
        above: usize,
    },
    /// Components with more than this many bytes of code: Winch only, no
    /// Cranelift and no cache entry. For `trademl pack`, which only checks
    /// the component it writes and never serves it.
    BaselineOnly {
        /// The code size threshold in bytes.
        above: usize,
    },
}

/// Which compiler made a component's code, and so which engine it runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Cranelift, optimising: the code a model serves with.
    Cranelift,
    /// Winch, baseline: fast to compile, slower to run; served until
    /// Cranelift's code is ready.
    Winch,
}

/// The compiler of the serving engine (Cranelift at its default optimisation
/// level unless measuring the alternatives, as `trademl bench --compilers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compiler {
    /// Cranelift, optimising for speed (the default).
    Cranelift,
    /// Cranelift without its optimisation passes.
    CraneliftNoOpt,
    /// Winch.
    Winch,
}

/// The interface version this host speaks, as a component export name.
pub const PREDICT_EXPORT: &str = "trademl:model/predict@0.1.0";

/// Sizing of the sandbox, from the server's configuration.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The memory cap no model may exceed, in MiB (`AI_MAX_MEMORY`).
    pub max_memory_mib: u32,
    /// How many instances may be live at once, across all models.
    pub max_instances: u32,
    /// Whether to use the pooling allocator (falls back to on-demand if the
    /// machine cannot reserve the pool's address space).
    pub pooling: bool,
    /// Where to cache compiled components (none: compile at every load).
    pub cache_dir: Option<PathBuf>,
    /// When to compile with Winch first.
    pub tiering: Tiering,
    /// The serving engine's compiler.
    pub compiler: Compiler,
    /// Whether to compile a component's functions on every core.
    pub parallel_compilation: bool,
}

/// The default number of calls that may run at once: four per core. Calls
/// are CPU-bound, so more than a few per core only queue inside the pool,
/// and every pool slot a call has used keeps up to [`KEEP_RESIDENT`] of
/// memory resident: with 64 on two cores the server passed 300 MiB under
/// load (docs/benchmarks.md, "Memory"). Requests beyond it wait for a slot.
pub fn default_max_instances() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores).clamp(4, 256) as u32
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_memory_mib: 2048,
            max_instances: default_max_instances(),
            pooling: true,
            cache_dir: None,
            tiering: Tiering::Background {
                above: TIERED_ABOVE,
            },
            compiler: Compiler::Cranelift,
            parallel_compilation: true,
        }
    }
}

/// The per-call state of a store: WASI with no capabilities, and the limiter.
pub struct CallState {
    /// Built on the guest's first WASI call, which most predictions never
    /// make (a model computes on its inputs; std reaches WASI to report a
    /// panic). Building it for every store (random generators, clocks, empty
    /// streams) was about a third of the store's creation.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    limiter: CallLimiter,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            // No preopens, no env, no args, no network: `WasiCtx::builder()`
            // grants none of them unless asked. Output is discarded.
            ctx: self.wasi.get_or_insert_with(|| WasiCtx::builder().build()),
            table: &mut self.table,
        }
    }
}

/// Enforces a model's memory cap and remembers whether it was hit.
pub struct CallLimiter {
    max_memory_bytes: usize,
    hit_memory_cap: Arc<AtomicBool>,
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // How much memory calls take, for sizing `memory_limit_mib`
        // (`RUST_LOG=trademl::sandbox=trace`; creating an instance is the
        // growth from 0).
        tracing::trace!(current, desired, "linear memory growing");
        if desired > self.max_memory_bytes {
            self.hit_memory_cap.store(true, Ordering::Relaxed);
            // Trap rather than return -1 from memory.grow: a guest's allocator
            // would abort anyway, and a trap names the cause.
            return Err(wasmtime::format_err!(
                "memory cap of {} MiB reached",
                self.max_memory_bytes >> 20
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Limits of one call.
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// The model's memory cap in bytes.
    pub max_memory_bytes: usize,
    /// The CPU deadline of the call.
    pub deadline: Duration,
}

/// A store for one call, with the flag its limiter sets.
pub struct CallStore {
    /// The store to instantiate and call in.
    pub store: Store<CallState>,
    hit_memory_cap: Arc<AtomicBool>,
    limits: CallLimits,
    /// The CPU deadline in force: the limits' own, or a shorter one set by
    /// [`CallStore::start_deadline_within`].
    deadline: Duration,
}

impl CallStore {
    /// Start the call's CPU deadline again from now, for a store that serves
    /// another call (the benchmark's warm instance).
    pub fn restart_deadline(&mut self) {
        self.start_deadline_within(self.limits.deadline);
    }

    /// Start the call's CPU deadline from now: `within`, or the limits' own
    /// deadline when that is shorter. A call past it traps, and
    /// [`CallStore::classify`] names the deadline that stopped it.
    pub fn start_deadline_within(&mut self, within: Duration) {
        self.deadline = within.min(self.limits.deadline);
        self.store.set_epoch_deadline(deadline_ticks(self.deadline));
    }

    /// Turn a wasmtime error from this store into a [`CallError`] that says
    /// what happened in words a model user understands.
    pub fn classify(&self, err: wasmtime::Error) -> CallError {
        if self.hit_memory_cap.load(Ordering::Relaxed) {
            return CallError::MemoryCap {
                limit_mib: (self.limits.max_memory_bytes >> 20) as u64,
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::Deadline {
                deadline: self.deadline,
            },
            Some(trap) => CallError::Trap(format!("{trap}: {err:#}")),
            None => CallError::Trap(format!("{err:#}")),
        }
    }
}

/// Why a call into a component failed (as opposed to the model returning its
/// own error).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call ran past its CPU deadline and was interrupted.
    #[error("the model ran past its deadline of {} ms and was stopped", deadline.as_millis())]
    Deadline {
        /// The deadline that was exceeded.
        deadline: Duration,
    },
    /// The model tried to grow its memory past its cap.
    #[error("the model exceeded its memory limit of {limit_mib} MiB and was stopped")]
    MemoryCap {
        /// The cap, in MiB.
        limit_mib: u64,
    },
    /// The model trapped (a panic, an out-of-bounds access, `unreachable`).
    #[error("the model trapped: {0}")]
    Trap(String),
}

/// An engine and the linker every model is instantiated against in it.
struct Backend {
    engine: Engine,
    linker: Linker<CallState>,
}

impl Backend {
    fn new(engine: Engine) -> Result<Backend> {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI into the sandbox")?;
        // The types interface holds only types; it still has to be defined.
        linker
            .instance("trademl:model/types@0.1.0")
            .map(|_| ())
            .map_err(anyhow::Error::from)
            .context("defining trademl:model/types")?;
        Ok(Backend { engine, linker })
    }
}

/// A compiled component and the engine it belongs to.
#[derive(Clone)]
pub struct Compiled {
    /// The component.
    pub component: Component,
    /// Which compiler made it.
    pub tier: Tier,
    /// Whether it came from the compiled cache.
    pub from_cache: bool,
}

/// The engines and linkers shared by every model.
pub struct Sandbox {
    main: Backend,
    /// Winch's engine, for tiered compilation (none when tiering is off).
    baseline: Option<Backend>,
    config: SandboxConfig,
    pooling: bool,
    cache: Option<CompiledCache>,
    retired: Arc<Retired>,
    /// How many pool slots spare instances hold.
    spares_held: Arc<AtomicU32>,
    /// Held by the background Cranelift compile in progress.
    background: Mutex<()>,
    /// The threads of the background compiles (see [`Sandbox::in_background`]),
    /// made at the first; none if they could not be started.
    background_pool: OnceLock<Option<rayon::ThreadPool>>,
}

/// The niceness of the background compiles' threads: with the default 0 for
/// every other thread, Linux's scheduler gives such a thread about a tenth of
/// a processor that a thread at 0 also wants, and all of an idle one.
pub const BACKGROUND_NICENESS: i32 = 10;

/// Lowers the calling thread's priority to [`BACKGROUND_NICENESS`], never
/// raises it (a server started with `nice` stays below it). Linux keeps a
/// niceness per thread, so this leaves the rest of the server alone.
/// Elsewhere, or if refused, the thread keeps its priority.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let this = Some(rustix::thread::gettid());
        let lowered = getpriority_process(this)
            .and_then(|now| setpriority_process(this, now.max(BACKGROUND_NICENESS)));
        if let Err(e) = lowered {
            tracing::warn!("a background compile thread keeps its priority: {e}");
        }
    }
}

impl Sandbox {
    /// Build the engine and start its epoch ticker.
    pub fn new(config: SandboxConfig) -> Result<Arc<Sandbox>> {
        let (engine, pooling) = if config.pooling {
            match Engine::new(&engine_config(&config, true)) {
                Ok(engine) => (engine, true),
                Err(err) => {
                    tracing::warn!(
                        "pooling allocator unavailable ({err:#}); using on-demand allocation"
                    );
                    (Engine::new(&engine_config(&config, false))?, false)
                }
            }
        } else {
            (Engine::new(&engine_config(&config, false))?, false)
        };
        let main = Backend::new(engine)?;
        let baseline = match config.tiering {
            Tiering::Off => None,
            Tiering::Background { .. } | Tiering::BaselineOnly { .. } => {
                // On-demand allocation: Winch's code serves only until
                // Cranelift's is ready, and a second pool would reserve as
                // much address space again.
                let mut c = engine_config(&config, false);
                winch(&mut c);
                Some(Backend::new(
                    Engine::new(&c)
                        .map_err(anyhow::Error::from)
                        .context("starting the Winch engine")?,
                )?)
            }
        };

        let retired = Arc::new(Retired::default());
        let ticker = main.engine.weak();
        let baseline_ticker = baseline.as_ref().map(|b| b.engine.weak());
        std::thread::Builder::new()
            .name("trademl-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    if let Some(engine) = baseline_ticker.as_ref().and_then(|t| t.upgrade()) {
                        engine.increment_epoch();
                    }
                    std::thread::sleep(TICK);
                }
            })
            .context("starting the epoch ticker")?;
        let retiring = Arc::downgrade(&retired);
        std::thread::Builder::new()
            .name("trademl-retire".into())
            .spawn(move || drop_retired(retiring))
            .context("starting the store-retiring thread")?;

        let cache = match &config.cache_dir {
            Some(dir) => Some(CompiledCache::open(dir)?),
            None => None,
        };
        Ok(Arc::new(Sandbox {
            main,
            baseline,
            config,
            pooling,
            cache,
            retired,
            spares_held: Arc::default(),
            background: Mutex::new(()),
            background_pool: OnceLock::new(),
        }))
    }

    fn backend(&self, tier: Tier) -> &Backend {
        match (tier, &self.baseline) {
            (Tier::Winch, Some(baseline)) => baseline,
            _ => &self.main,
        }
    }

    /// The serving engine.
    pub fn engine(&self) -> &Engine {
        &self.main.engine
    }

    /// The engine that runs code of this tier.
    pub fn engine_of(&self, tier: Tier) -> &Engine {
        &self.backend(tier).engine
    }

    /// The linker every model is instantiated against in the serving engine.
    pub fn linker(&self) -> &Linker<CallState> {
        &self.main.linker
    }

    /// The linker of the engine that runs code of this tier.
    pub fn linker_of(&self, tier: Tier) -> &Linker<CallState> {
        &self.backend(tier).linker
    }

    /// The sandbox's configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The host-wide memory cap, in MiB.
    pub fn max_memory_mib(&self) -> u32 {
        self.config.max_memory_mib
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// Compile a component (already verified by the caller) for the
    /// serving engine.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component> {
        Component::new(&self.main.engine, bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component")
    }

    /// Compile a component (already verified by the caller) with Winch, when
    /// the sandbox tiers (else with the serving engine's compiler).
    pub fn compile_baseline(&self, bytes: &[u8]) -> Result<Compiled> {
        let tier = if self.baseline.is_some() {
            Tier::Winch
        } else {
            Tier::Cranelift
        };
        let component = Component::new(self.engine_of(tier), bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component with Winch")?;
        Ok(Compiled {
            component,
            tier,
            from_cache: false,
        })
    }

    /// The compiled component for a load of `bytes` (verified by the caller;
    /// `digest` is that of its signed content): from the compiled cache when
    /// it holds an authentic entry; else, when the component has more code
    /// than the tiering threshold and Winch compiles it, Winch's code (the
    /// caller then compiles it with Cranelift in the background, if
    /// [`Sandbox::tiers_up`]); else Cranelift's, stored in the cache.
    pub fn compile_for_load(&self, bytes: &[u8], digest: &str) -> Result<Compiled> {
        if let Some(component) = self
            .cache
            .as_ref()
            .and_then(|c| c.load(self.engine(), digest))
        {
            return Ok(Compiled {
                component,
                tier: Tier::Cranelift,
                from_cache: true,
            });
        }
        let above = match self.config.tiering {
            Tiering::Off => None,
            Tiering::Background { above } | Tiering::BaselineOnly { above } => Some(above),
        };
        if above.is_some_and(|above| code_size(bytes) > above) {
            match self.compile_baseline(bytes) {
                Ok(compiled) => return Ok(compiled),
                // Winch lacks some proposals Cranelift has (tail calls, some
                // SIMD): such a component loads the slow way.
                Err(err) => tracing::warn!("{err:#}; compiling with Cranelift instead"),
            }
        }
        let (component, from_cache) = self.compile_cached(bytes, digest)?;
        Ok(Compiled {
            component,
            tier: Tier::Cranelift,
            from_cache,
        })
    }

    /// Whether Winch-compiled code is to be replaced by Cranelift's in the
    /// background.
    pub fn tiers_up(&self) -> bool {
        matches!(self.config.tiering, Tiering::Background { .. })
    }

    /// The turn of a background Cranelift compile: one at a time, so that
    /// loading many large components does not run as many compilations
    /// (and hold their memory) at once. Hold it while compiling.
    pub fn background_turn(&self) -> std::sync::MutexGuard<'_, ()> {
        self.background.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `compile` (a background Cranelift compile) on the background
    /// compiles' own threads. wasmtime compiles a component's functions in
    /// parallel on the rayon pool it is called from. On the global pool, a
    /// model loaded meanwhile (at start-up, or published) queued its own
    /// compile behind the more than ten thousand functions of the ONNX
    /// runner's and waited for all of them: at start-up, price-optimizer's
    /// compile of 0.4 s took 55 s, and the server was not ready until
    /// demand-forecast-lstm's background compile had ended. On a pool of its
    /// own the background compile only shares the processors, and its threads
    /// run at a lower priority ([`BACKGROUND_NICENESS`]): loads and requests
    /// meanwhile get most of the processors, and the component already serves
    /// Winch's code while it waits.
    pub fn in_background<R: Send>(&self, compile: impl FnOnce() -> R + Send) -> R {
        let pool = self.background_pool.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .thread_name(|i| format!("trademl-cranelift-{i}"))
                .start_handler(|_| lower_this_threads_priority())
                .build()
                .inspect_err(|e| {
                    tracing::warn!(
                        "no threads of their own for the background compiles ({e}); \
                         they share the loads' threads"
                    )
                })
                .ok()
        });
        match pool {
            Some(pool) => pool.install(compile),
            None => compile(),
        }
    }

    /// The compiled component for `bytes`, whose signed content has this
    /// digest: from the compiled cache when it holds an authentic entry,
    /// else compiled and stored. Returns whether it came from the cache.
    pub fn compile_cached(&self, bytes: &[u8], digest: &str) -> Result<(Component, bool)> {
        let Some(cache) = &self.cache else {
            return Ok((self.compile(bytes)?, false));
        };
        if let Some(component) = cache.load(&self.main.engine, digest) {
            return Ok((component, true));
        }
        let component = self.compile(bytes)?;
        if let Err(err) = cache.store(digest, &component) {
            tracing::warn!("could not cache the compiled component: {err:#}");
        }
        Ok((component, false))
    }

    /// A fresh store for one call in the serving engine, with no
    /// capabilities and the given limits.
    pub fn store(&self, limits: CallLimits) -> CallStore {
        self.store_of(Tier::Cranelift, limits)
    }

    /// A fresh store for one call in the engine of `tier`, with no
    /// capabilities and the given limits.
    pub fn store_of(&self, tier: Tier, limits: CallLimits) -> CallStore {
        let hit_memory_cap = Arc::new(AtomicBool::new(false));
        let mut store = Store::new(
            self.engine_of(tier),
            CallState {
                wasi: None,
                table: ResourceTable::new(),
                limiter: CallLimiter {
                    max_memory_bytes: limits.max_memory_bytes,
                    hit_memory_cap: hit_memory_cap.clone(),
                },
            },
        );
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(deadline_ticks(limits.deadline));
        store.epoch_deadline_trap();
        CallStore {
            store,
            hit_memory_cap,
            limits,
            deadline: limits.deadline,
        }
    }

    /// Drop a finished store off the caller's path: on the retiring thread,
    /// or here when [`RETIRE_QUEUE`] stores already wait. Call it
    /// once the outputs have been lifted out of the store.
    pub fn retire(&self, call: CallStore) {
        let mut stores = self.retired.lock();
        if stores.len() >= RETIRE_QUEUE {
            drop(stores);
            drop(call);
            return;
        }
        stores.push(call);
        if stores.len() == RETIRE_BATCH {
            self.retired.batch_ready.notify_one();
        }
    }

    /// A pool slot for a spare instance, unless spares already hold
    /// [`SPARE_SLOTS`] (or the sandbox has no pool, where spares would
    /// only hold memory).
    pub fn spare_slot(&self) -> Option<SpareSlot> {
        if !self.pooling {
            return None;
        }
        self.spares_held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held < SPARE_SLOTS).then_some(held + 1)
            })
            .ok()?;
        Some(SpareSlot {
            spares_held: self.spares_held.clone(),
        })
    }
}

/// The epoch deadline of a call, in ticks from now: one more than the
/// deadline holds, as the first tick may come at once.
fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_micros() / TICK.as_micros()).max(1) as u64 + 1
}

/// The retiring thread, the only one that drops retired stores: drops each
/// batch, until the sandbox is gone (it wakes at least every
/// [`RETIRE_WAIT`] to notice).
fn drop_retired(retired: std::sync::Weak<Retired>) {
    while let Some(retired) = retired.upgrade() {
        let mut stores = retired.lock();
        if stores.len() < RETIRE_BATCH {
            stores = retired
                .batch_ready
                .wait_timeout(stores, RETIRE_WAIT)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let batch = std::mem::take(&mut *stores);
        drop(stores);
        drop(retired);
        drop(batch);
    }
}

/// How many bytes of code (function bodies) a component's core modules hold;
/// 0 for bytes that do not parse (the compiler then says what is wrong).
pub fn code_size(bytes: &[u8]) -> usize {
    let mut size = 0;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::CodeSectionStart { size: s, .. }) => size += s as usize,
            Ok(_) => (),
            Err(_) => return 0,
        }
    }
    size
}

/// Compile with Winch. Winch compiles the component's functions; the
/// trampolines through which the host calls them (one for each function a
/// table or an export can reach: thousands in a large guest) are compiled by
/// Cranelift, and with its optimisations and its backtracking register
/// allocator they took about a quarter of a large model's Winch compile
/// (docs/benchmarks.md, "The fourteenth round"). A trampoline is a handful of
/// moves and a call, and Winch's code serves only until Cranelift's replaces
/// it, trampolines included: the fastest settings compile them.
fn winch(c: &mut Config) {
    c.strategy(wasmtime::Strategy::Winch)
        .cranelift_opt_level(wasmtime::OptLevel::None)
        .cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
}

fn engine_config(config: &SandboxConfig, pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.memory_init_cow(true);
    c.parallel_compilation(config.parallel_compilation);
    match config.compiler {
        Compiler::Cranelift => {
            c.cranelift_opt_level(wasmtime::OptLevel::Speed);
        }
        Compiler::CraneliftNoOpt => {
            c.cranelift_opt_level(wasmtime::OptLevel::None);
        }
        Compiler::Winch => winch(&mut c),
    }
    // For profiling only: `TRADEML_PROFILER=perfmap` writes /tmp/perf-<pid>.map
    // so that `perf report` names the models' compiled functions.
    if std::env::var("TRADEML_PROFILER").is_ok_and(|p| p == "perfmap") {
        c.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        let max_memory = (config.max_memory_mib as usize) << 20;
        let mut pool = PoolingAllocationConfig::default();
        // Live calls, plus finished stores waiting to be dropped (see retire),
        // plus the examples checks that run beside the calls: a version being
        // published or loaded (one at a time) and the background Cranelift
        // compile's (one at a time), plus the spares made ahead of their call.
        let instances = config.max_instances.max(1) + 2 * RETIRE_QUEUE as u32 + 2 + SPARE_SLOTS;
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            .total_stacks(instances)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_memory_size(max_memory);
        // Reset a freed instance's memory in place: PAGEMAP_SCAN (Linux 6.7+)
        // finds the pages the call wrote and only those are reset, by memset,
        // up to KEEP_RESIDENT; without it every call ends in an madvise, a TLB
        // flush and fresh page faults on the next call (half of a one-row
        // prediction's time, see docs/benchmarks.md).
        pool.linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::repository::Repository;

    /// The server lets `max_instances` calls run at once; each leaves its
    /// store to be dropped off its path. However fast those calls come, the
    /// stores waiting to be dropped must never hold the pool's instances
    /// that a live call needs.
    #[test]
    fn finished_stores_never_starve_live_calls_of_an_instance() {
        let dir = crate::test_support::shipped_models(&["anomaly-detection"]);
        let calls = 2;
        let sandbox = Sandbox::new(SandboxConfig {
            max_instances: calls,
            ..SandboxConfig::default()
        })
        .unwrap();
        assert!(sandbox.pooling(), "this test needs the pooling allocator");
        let repo = Repository::open(dir.path(), sandbox, Duration::from_secs(10)).unwrap();
        let model = repo.resolve("anomaly-detection", None).unwrap();
        let inputs = model.manifest.examples[0].inputs.clone();
        let started = Instant::now();
        let busy = || started.elapsed() < Duration::from_secs(3);
        let done: Vec<usize> = std::thread::scope(|s| {
            // Threads competing for the cores, as on a loaded machine: the
            // thread dropping finished stores gets preempted with a batch.
            for _ in 0..6 {
                s.spawn(|| {
                    while busy() {
                        std::hint::spin_loop();
                    }
                });
            }
            let workers: Vec<_> = (0..calls)
                .map(|_| {
                    s.spawn(|| {
                        let mut n = 0;
                        while busy() {
                            if let Err(err) = model.predict(inputs.clone()) {
                                panic!("call {n} failed: {err}");
                            }
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert!(done.iter().all(|&n| n > 0), "{done:?}");
    }

    /// The engine compiles with trademl's wasmtime-cranelift
    /// (vendor/README.md). A wasmtime upgrade that left it behind would make
    /// cargo drop the patch with no more than a warning, and the models would
    /// quietly lose what it gains.
    #[test]
    fn the_compiler_is_the_vendored_crate() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
        let lock: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
        let packages = lock["package"].as_array().unwrap();
        let package = |name: &str| {
            let found: Vec<_> = packages
                .iter()
                .filter(|p| p["name"].as_str() == Some(name))
                .collect();
            assert_eq!(found.len(), 1, "{name} in Cargo.lock: {found:?}");
            found[0]
        };
        let wasmtime = package("wasmtime");
        let compiler = package("wasmtime-internal-cranelift");
        assert_eq!(compiler["version"].as_str(), wasmtime["version"].as_str());
        assert!(
            compiler.get("source").is_none(),
            "wasmtime-internal-cranelift comes from {}, not vendor/",
            compiler["source"]
        );
    }

    /// A loop whose every iteration keeps eight floats, four integers and a
    /// vector live across its loop header, where the epoch check sits.
    const LIVE_ACROSS_CHECKS: &str = r#"(module
      (func (export "run") (param $n i32)
        (result f64 f64 f64 f64 f64 f64 f64 f64 i64 i64 f64 f64)
        (local $i i32) (local $x f64)
        (local $a f64) (local $b f64) (local $c f64) (local $d f64)
        (local $e f64) (local $f f64) (local $g f64) (local $h f64)
        (local $p i64) (local $q i64) (local $r i64) (local $s i64)
        (local $v v128)
        (local.set $g (f64.const 1))
        (loop $next
          (local.set $x (f64.convert_i32_u (local.get $i)))
          (local.set $a (f64.add (local.get $a) (f64.mul (local.get $x) (f64.const 0.5))))
          (local.set $b (f64.add (f64.mul (local.get $b) (f64.const 0.999)) (local.get $a)))
          (local.set $c (f64.add (local.get $c) (f64.sqrt (local.get $x))))
          (local.set $d (f64.sub (local.get $d) (f64.mul (local.get $b) (f64.const 1e-6))))
          (local.set $e (f64.add (local.get $e)
            (f64.mul (f64.mul (local.get $a) (local.get $c)) (f64.const 1e-9))))
          (local.set $f (f64.add (local.get $f)
            (f64.div (f64.const 1) (f64.add (local.get $x) (f64.const 1)))))
          (local.set $g (f64.mul (local.get $g) (f64.const 1.0000001)))
          (local.set $h (f64.add (local.get $h) (f64.sub (local.get $a) (local.get $d))))
          (local.set $p (i64.add (i64.mul (local.get $p) (i64.const 6364136223846793005))
            (i64.const 1442695040888963407)))
          (local.set $q (i64.xor (local.get $q) (i64.shr_u (local.get $p) (i64.const 17))))
          (local.set $r (i64.add (local.get $r) (local.get $q)))
          (local.set $s (i64.add (local.get $s) (i64.extend_i32_u (local.get $i))))
          (local.set $v (f64x2.add (local.get $v)
            (f64x2.replace_lane 1 (f64x2.splat (local.get $x)) (local.get $a))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $next (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $a) (local.get $b) (local.get $c) (local.get $d)
        (local.get $e) (local.get $f) (local.get $g) (local.get $h)
        (i64.xor (local.get $r) (local.get $p)) (local.get $s)
        (f64x2.extract_lane 0 (local.get $v)) (f64x2.extract_lane 1 (local.get $v))))"#;

    type Live = (f64, f64, f64, f64, f64, f64, f64, f64, i64, i64, f64, f64);

    /// [`LIVE_ACROSS_CHECKS`] in Rust.
    fn live_across_checks_natively(n: u32) -> Live {
        let (mut a, mut b, mut c, mut d) = (0f64, 0f64, 0f64, 0f64);
        let (mut e, mut f, mut g, mut h) = (0f64, 0f64, 1f64, 0f64);
        let (mut p, mut q, mut r, mut s) = (0u64, 0u64, 0u64, 0u64);
        let mut v = [0f64; 2];
        for i in 0..n.max(1) {
            let x = f64::from(i);
            a += x * 0.5;
            b = b * 0.999 + a;
            c += x.sqrt();
            d -= b * 1e-6;
            e += a * c * 1e-9;
            f += 1.0 / (x + 1.0);
            g *= 1.0000001;
            h += a - d;
            p = p
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            q ^= p >> 17;
            r = r.wrapping_add(q);
            s = s.wrapping_add(u64::from(i));
            v[0] += x;
            v[1] += a;
        }
        (a, b, c, d, e, f, g, h, (r ^ p) as i64, s as i64, v[0], v[1])
    }

    fn bits(l: Live) -> [u64; 12] {
        let (a, b, c, d, e, f, g, h, rp, s, v0, v1) = l;
        [
            a.to_bits(),
            b.to_bits(),
            c.to_bits(),
            d.to_bits(),
            e.to_bits(),
            f.to_bits(),
            g.to_bits(),
            h.to_bits(),
            rp as u64,
            s as u64,
            v0.to_bits(),
            v1.to_bits(),
        ]
    }

    /// A background Cranelift compile runs on threads of its own, so a
    /// component compiled meanwhile (a model loaded at start-up, or
    /// published) does not wait for it. Here the background work holds every
    /// thread it runs on until the other compile is done. On the threads the
    /// other compile uses, it would hold that compile for ever: the test
    /// gives up after two minutes, where the compile takes a second.
    #[test]
    fn a_compile_does_not_wait_for_a_background_compile() {
        use rayon::prelude::*;
        use std::sync::mpsc;

        let dir = crate::test_support::shipped_models(&["anomaly-detection"]);
        let file = std::fs::read_dir(dir.path().join("anomaly-detection"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "wasm"))
            .unwrap();
        let bytes = std::fs::read(file).unwrap();
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();

        let release = Arc::new((Mutex::new(false), Condvar::new()));
        let (started, holding) = mpsc::channel();
        let background = {
            let sandbox = sandbox.clone();
            let release = release.clone();
            std::thread::spawn(move || {
                sandbox.in_background(|| {
                    // As many pieces of work as threads, each holding one.
                    let threads = rayon::current_num_threads();
                    (0..threads).into_par_iter().for_each(|_| {
                        started.send(threads).unwrap();
                        let (released, wake) = &*release;
                        let mut released = released.lock().unwrap();
                        while !*released {
                            released = wake.wait(released).unwrap();
                        }
                    });
                })
            })
        };
        let threads = holding.recv().unwrap();
        for _ in 1..threads {
            holding.recv().unwrap();
        }

        let (done, compiled) = mpsc::channel();
        let compiling = {
            let sandbox = sandbox.clone();
            std::thread::spawn(move || done.send(sandbox.compile(&bytes).is_ok()))
        };
        let outcome = compiled.recv_timeout(Duration::from_secs(120));
        *release.0.lock().unwrap() = true;
        release.1.notify_all();
        background.join().unwrap();
        compiling.join().unwrap().ok();
        assert_eq!(
            outcome,
            Ok(true),
            "the compile waited for the background work holding {threads} threads"
        );
    }

    /// The background compiles run below the server's other threads, each
    /// of their threads lowered on its own: the thread that hands the work
    /// over, and every other thread of the process, keep their priority.
    #[cfg(target_os = "linux")]
    #[test]
    fn background_compiles_run_at_a_lower_priority() {
        use rayon::prelude::*;
        use rustix::process::getpriority_process;
        use rustix::thread::gettid;

        let niceness = || getpriority_process(Some(gettid())).unwrap();
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        let caller = niceness();
        let seen: Vec<i32> =
            sandbox.in_background(|| (0..64).into_par_iter().map(|_| niceness()).collect());
        assert!(
            seen.iter().all(|&n| n == BACKGROUND_NICENESS.max(caller)),
            "{seen:?}"
        );
        assert_eq!(niceness(), caller, "the caller's own priority changed");
        let elsewhere = std::thread::spawn(niceness).join().unwrap();
        assert_eq!(
            elsewhere, caller,
            "a new thread of the process inherited the lower priority"
        );
    }

    /// The epoch check at every loop header calls into wasmtime once the
    /// deadline has passed. trademl's wasmtime-cranelift makes that call
    /// preserve every register (vendor/README.md), so that loops keep their
    /// values in registers rather than on the stack. Here the host is called
    /// at every check and lets the loop go on each time: what the loop
    /// computes must still be, bit for bit, what native code computes, for
    /// both compilers the sandbox uses. A deadline that traps still stops it.
    #[test]
    fn a_loop_that_calls_the_host_at_every_epoch_check_computes_what_native_code_does() {
        use wasmtime::{Module, Store, UpdateDeadline};

        let wasm = wat::parse_str(LIVE_ACROSS_CHECKS).unwrap();
        let n = 20_000;
        let native = bits(live_across_checks_natively(n));
        for compiler in [Compiler::Cranelift, Compiler::Winch] {
            let config = SandboxConfig {
                compiler,
                ..SandboxConfig::default()
            };
            let engine = Engine::new(&engine_config(&config, false)).unwrap();
            let module = Module::new(&engine, &wasm).unwrap();
            let run = |deadline: u64, interrupt: bool| {
                let mut store = Store::new(&engine, 0u64);
                store.set_epoch_deadline(deadline);
                store.epoch_deadline_callback(move |mut cx| {
                    *cx.data_mut() += 1;
                    Ok(if interrupt {
                        UpdateDeadline::Interrupt
                    } else {
                        UpdateDeadline::Continue(0)
                    })
                });
                let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
                let result = instance
                    .get_typed_func::<u32, Live>(&mut store, "run")
                    .unwrap()
                    .call(&mut store, n);
                (result, *store.data())
            };

            let (quiet, calls) = run(1 << 40, false);
            assert_eq!(bits(quiet.unwrap()), native, "{compiler:?}, no deadline");
            assert_eq!(
                calls, 0,
                "{compiler:?}: the host was called with no deadline"
            );

            let (checked, calls) = run(0, false);
            assert_eq!(
                bits(checked.unwrap()),
                native,
                "{compiler:?}, the host called at every check"
            );
            assert!(
                calls > u64::from(n),
                "{compiler:?}: the host was called {calls} times in {n} iterations"
            );

            let (stopped, calls) = run(0, true);
            let err = stopped.unwrap_err();
            assert_eq!(
                err.downcast_ref::<wasmtime::Trap>(),
                Some(&wasmtime::Trap::Interrupt),
                "{compiler:?}: {err:?}"
            );
            assert_eq!(calls, 1, "{compiler:?}");
        }
    }
}
