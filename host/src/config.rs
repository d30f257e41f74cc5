//! Server configuration: command-line flags over environment variables over
//! a TOML file over safe defaults.
//!
//! The environment variables are the ones the platform already uses:
//! `AI_MODELS_PATH` (the model repository), `AI_MAX_MEMORY` (MiB, the cap no
//! model may exceed) and `AI_PROVIDER` (must be `local` when set).
//!
//! ```toml
//! # trademl.toml
//! models = "/srv/trademl/models"
//! listen = "127.0.0.1:8080"
//! deadline_ms = 2000
//! max_memory_mib = 2048
//! max_instances = 8                     # default: 4 per core
//! compiled_cache = "/var/cache/trademl"   # default: <models>/.cache
//! inline_below_us = 100                 # 0: every call on a blocking thread
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::sandbox::{SandboxConfig, TIERED_ABOVE, Tiering};

/// The configuration file's keys; every one optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The model repository.
    pub models: Option<PathBuf>,
    /// The address to listen on.
    pub listen: Option<SocketAddr>,
    /// The CPU deadline of one call, in milliseconds.
    pub deadline_ms: Option<u64>,
    /// The memory cap no model may exceed, in MiB.
    pub max_memory_mib: Option<u32>,
    /// How many model instances may run at once.
    pub max_instances: Option<u32>,
    /// Where compiled components are cached.
    pub compiled_cache: Option<PathBuf>,
    /// A component with more code than this many KiB, not in the compiled
    /// cache, loads with Winch's code (in seconds) and is compiled by
    /// Cranelift in the background [default: 4096].
    pub winch_above_kib: Option<u64>,
    /// Whether Winch's code is replaced by Cranelift's compiled in the
    /// background [default: true]; false keeps Winch's code (a quick start,
    /// slower predictions).
    pub tier_up: Option<bool>,
    /// Calls expected to take at most this many microseconds run on the
    /// thread that received their request [default: 100; at most 1000; 0:
    /// every call on a blocking thread].
    pub inline_below_us: Option<u64>,
}

impl FileConfig {
    /// Read a TOML configuration file.
    pub fn read(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("in the configuration file {}", path.display()))
    }
}

/// The resolved configuration of `trademl serve`.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The model repository.
    pub models: PathBuf,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The CPU deadline of one call.
    pub deadline: Duration,
    /// Calls expected to take at most this long run on the thread that
    /// received their request ([`crate::server::CallPolicy`]).
    pub inline_below: Duration,
    /// The sandbox's sizing.
    pub sandbox: SandboxConfig,
}

/// Values given on the command line (None when not given).
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--models`.
    pub models: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--deadline-ms`.
    pub deadline_ms: Option<u64>,
    /// `--max-instances`.
    pub max_instances: Option<u32>,
    /// `--inline-below-us`.
    pub inline_below_us: Option<u64>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `--no-cache`.
    pub no_cache: bool,
}

/// A way to read environment variables (the process's, or a test's map).
pub trait Env {
    /// The variable's value, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl ServeConfig {
    /// Resolve the configuration.
    pub fn resolve(cli: Overrides, env: &dyn Env) -> Result<ServeConfig> {
        if let Some(provider) = env.var("AI_PROVIDER")
            && provider != "local"
        {
            bail!(
                "AI_PROVIDER is \"{provider}\": trademl computes every prediction locally; set AI_PROVIDER=local or unset it"
            );
        }
        let file = match &cli.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        let env_models = env.var("AI_MODELS_PATH").map(PathBuf::from);
        let env_memory = match env.var("AI_MAX_MEMORY") {
            Some(v) => Some(v.parse::<u32>().with_context(|| {
                format!("AI_MAX_MEMORY is \"{v}\"; expected a whole number of MiB, such as 2048")
            })?),
            None => None,
        };
        let max_memory_mib = env_memory.or(file.max_memory_mib).unwrap_or(2048);
        if !(1..=65536).contains(&max_memory_mib) {
            bail!("the memory cap must be between 1 and 65536 MiB, not {max_memory_mib}");
        }
        let deadline_ms = cli.deadline_ms.or(file.deadline_ms).unwrap_or(2000);
        if deadline_ms == 0 {
            bail!("the deadline must be at least 1 ms");
        }
        let max_instances = cli
            .max_instances
            .or(file.max_instances)
            .unwrap_or_else(crate::sandbox::default_max_instances);
        if max_instances == 0 {
            bail!("max_instances must be at least 1");
        }
        let inline_below = match cli.inline_below_us.or(file.inline_below_us) {
            Some(us) => Duration::from_micros(us),
            None => crate::server::INLINE_BELOW,
        };
        if inline_below > crate::server::INLINE_BELOW_MAX {
            bail!(
                "inline_below_us is {}: a call run on the thread that received its request holds up that thread's other connections, so at most {} µs is allowed (0 runs every call on a blocking thread)",
                inline_below.as_micros(),
                crate::server::INLINE_BELOW_MAX.as_micros()
            );
        }
        let models = cli
            .models
            .or(env_models)
            .or(file.models)
            .unwrap_or_else(|| PathBuf::from("models"));
        let cache_dir = if cli.no_cache {
            None
        } else {
            Some(
                cli.cache_dir
                    .or(file.compiled_cache)
                    .unwrap_or_else(|| models.join(".cache")),
            )
        };
        let above = file
            .winch_above_kib
            .map_or(TIERED_ABOVE, |kib| (kib as usize).saturating_mul(1024));
        let tiering = if file.tier_up.unwrap_or(true) {
            Tiering::Background { above }
        } else {
            Tiering::BaselineOnly { above }
        };
        Ok(ServeConfig {
            models,
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            deadline: Duration::from_millis(deadline_ms),
            inline_below,
            sandbox: SandboxConfig {
                max_memory_mib,
                max_instances,
                pooling: true,
                cache_dir,
                tiering,
                ..SandboxConfig::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct MapEnv(HashMap<&'static str, &'static str>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    #[test]
    fn defaults_are_local_and_safe() {
        let c = ServeConfig::resolve(Overrides::default(), &MapEnv(HashMap::new())).unwrap();
        assert_eq!(c.models, PathBuf::from("models"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.sandbox.max_memory_mib, 2048);
        assert_eq!(c.sandbox.cache_dir, Some(PathBuf::from("models/.cache")));
        let no_cache = Overrides {
            no_cache: true,
            ..Overrides::default()
        };
        let c = ServeConfig::resolve(no_cache, &MapEnv(HashMap::new())).unwrap();
        assert_eq!(c.sandbox.cache_dir, None);
    }

    #[test]
    fn environment_names_of_the_platform_are_honoured() {
        let env = MapEnv(HashMap::from([
            ("AI_MODELS_PATH", "/srv/models"),
            ("AI_MAX_MEMORY", "512"),
            ("AI_PROVIDER", "local"),
        ]));
        let c = ServeConfig::resolve(Overrides::default(), &env).unwrap();
        assert_eq!(c.models, PathBuf::from("/srv/models"));
        assert_eq!(c.sandbox.max_memory_mib, 512);
    }

    #[test]
    fn command_line_wins_over_environment() {
        let env = MapEnv(HashMap::from([("AI_MODELS_PATH", "/srv/models")]));
        let cli = Overrides {
            models: Some("here".into()),
            ..Overrides::default()
        };
        assert_eq!(
            ServeConfig::resolve(cli, &env).unwrap().models,
            PathBuf::from("here")
        );
    }

    #[test]
    fn refuses_a_remote_provider_and_a_bad_memory_cap() {
        let env = MapEnv(HashMap::from([("AI_PROVIDER", "openai")]));
        let err = ServeConfig::resolve(Overrides::default(), &env).unwrap_err();
        assert!(err.to_string().contains("AI_PROVIDER"));
        let env = MapEnv(HashMap::from([("AI_MAX_MEMORY", "lots")]));
        let err = ServeConfig::resolve(Overrides::default(), &env).unwrap_err();
        assert!(err.to_string().contains("AI_MAX_MEMORY"));
        let env = MapEnv(HashMap::from([("AI_MAX_MEMORY", "0")]));
        assert!(ServeConfig::resolve(Overrides::default(), &env).is_err());
    }

    #[test]
    fn reads_a_toml_file_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trademl.toml");
        std::fs::write(&path, "models = \"m\"\ndeadline_ms = 50\n").unwrap();
        let cli = Overrides {
            config: Some(path.clone()),
            ..Overrides::default()
        };
        let c = ServeConfig::resolve(cli, &MapEnv(HashMap::new())).unwrap();
        assert_eq!(c.models, PathBuf::from("m"));
        assert_eq!(c.deadline, Duration::from_millis(50));
        assert_eq!(
            c.sandbox.tiering,
            Tiering::Background {
                above: TIERED_ABOVE
            }
        );
        std::fs::write(
            &path,
            "winch_above_kib = 0
tier_up = false
",
        )
        .unwrap();
        let cli = Overrides {
            config: Some(path.clone()),
            ..Overrides::default()
        };
        let c = ServeConfig::resolve(cli, &MapEnv(HashMap::new())).unwrap();
        assert_eq!(c.sandbox.tiering, Tiering::BaselineOnly { above: 0 });
        std::fs::write(&path, "modles = \"m\"\n").unwrap();
        let cli = Overrides {
            config: Some(path),
            ..Overrides::default()
        };
        let err = format!(
            "{:#}",
            ServeConfig::resolve(cli, &MapEnv(HashMap::new())).unwrap_err()
        );
        assert!(err.contains("modles"), "{err}");
    }

    #[test]
    fn inline_calls_are_bounded() {
        let env = MapEnv(HashMap::new());
        let c = ServeConfig::resolve(Overrides::default(), &env).unwrap();
        assert_eq!(c.inline_below, crate::server::INLINE_BELOW);
        let with = |us| Overrides {
            inline_below_us: Some(us),
            ..Overrides::default()
        };
        let c = ServeConfig::resolve(with(0), &env).unwrap();
        assert_eq!(c.inline_below, Duration::ZERO);
        let c = ServeConfig::resolve(with(1000), &env).unwrap();
        assert_eq!(c.inline_below, Duration::from_millis(1));
        let err = ServeConfig::resolve(with(1001), &env).unwrap_err();
        assert!(err.to_string().contains("at most 1000 µs"), "{err}");
    }
}
