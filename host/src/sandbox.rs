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
//! A finished store is handed to [`Sandbox::retire`] and dropped on a
//! background thread, in batches of [`RETIRE_BATCH`] (one wake-up per
//! batch, not per call; the epoch ticker drops what is left of a batch at its
//! next tick). Tearing an instance down (resetting the pages it wrote,
//! returning its pool slot) is about as long as the call itself, and the
//! caller already holds its outputs. The instance is still used once.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
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
/// `max_instances` (a batch being dropped and the next one filling), so that
/// stores waiting to be dropped never starve live calls of a slot.
pub const RETIRE_QUEUE: usize = 32;

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
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_memory_mib: 2048,
            max_instances: 64,
            pooling: true,
            cache_dir: None,
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
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
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
}

impl CallStore {
    /// Start the call's CPU deadline again from now, for a store that serves
    /// another call (the benchmark's warm instance).
    pub fn restart_deadline(&mut self) {
        self.store
            .set_epoch_deadline(deadline_ticks(self.limits.deadline));
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
                deadline: self.limits.deadline,
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

/// The engine and linker shared by every model.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    config: SandboxConfig,
    pooling: bool,
    cache: Option<CompiledCache>,
    retired: Arc<Retired>,
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

        let retired = Arc::new(Retired::default());
        let ticker = engine.weak();
        let ticker_retired = Arc::downgrade(&retired);
        std::thread::Builder::new()
            .name("trademl-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    if let Some(retired) = ticker_retired.upgrade() {
                        let batch = std::mem::take(&mut *retired.lock());
                        drop(batch);
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
            engine,
            linker,
            config,
            pooling,
            cache,
            retired,
        }))
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The linker every model is instantiated against.
    pub fn linker(&self) -> &Linker<CallState> {
        &self.linker
    }

    /// The host-wide memory cap, in MiB.
    pub fn max_memory_mib(&self) -> u32 {
        self.config.max_memory_mib
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// Compile a component (already verified by the caller).
    pub fn compile(&self, bytes: &[u8]) -> Result<Component> {
        Component::new(&self.engine, bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component")
    }

    /// The compiled component for `bytes`, whose signed content has this
    /// digest: from the compiled cache when it holds an authentic entry,
    /// else compiled and stored. Returns whether it came from the cache.
    pub fn compile_cached(&self, bytes: &[u8], digest: &str) -> Result<(Component, bool)> {
        let Some(cache) = &self.cache else {
            return Ok((self.compile(bytes)?, false));
        };
        if let Some(component) = cache.load(&self.engine, digest) {
            return Ok((component, true));
        }
        let component = self.compile(bytes)?;
        if let Err(err) = cache.store(digest, &component) {
            tracing::warn!("could not cache the compiled component: {err:#}");
        }
        Ok((component, false))
    }

    /// A fresh store for one call, with no capabilities and the given limits.
    pub fn store(&self, limits: CallLimits) -> CallStore {
        let hit_memory_cap = Arc::new(AtomicBool::new(false));
        let mut store = Store::new(
            &self.engine,
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
        }
    }

    /// Drop a finished store off the caller's path: at the epoch ticker's
    /// next tick, or here when [`RETIRE_QUEUE`] stores already wait. Call it
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
}

/// The epoch deadline of a call, in ticks from now: one more than the
/// deadline holds, as the first tick may come at once.
fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_micros() / TICK.as_micros()).max(1) as u64 + 1
}

/// The retiring thread: drops each batch of retired stores, until the
/// sandbox is gone (it wakes at least every tick to notice).
fn drop_retired(retired: std::sync::Weak<Retired>) {
    while let Some(retired) = retired.upgrade() {
        let mut stores = retired.lock();
        if stores.len() < RETIRE_BATCH {
            stores = retired
                .batch_ready
                .wait_timeout(stores, TICK * 20)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let batch = std::mem::take(&mut *stores);
        drop(stores);
        drop(retired);
        drop(batch);
    }
}

fn engine_config(config: &SandboxConfig, pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.memory_init_cow(true);
    c.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // For profiling only: `TRADEML_PROFILER=perfmap` writes /tmp/perf-<pid>.map
    // so that `perf report` names the models' compiled functions.
    if std::env::var("TRADEML_PROFILER").is_ok_and(|p| p == "perfmap") {
        c.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        let max_memory = (config.max_memory_mib as usize) << 20;
        let mut pool = PoolingAllocationConfig::default();
        // Live calls, plus finished stores waiting to be dropped (see retire).
        let instances = config.max_instances.max(1) + 2 * RETIRE_QUEUE as u32;
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
