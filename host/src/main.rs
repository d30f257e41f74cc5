//! `trademl`: the server and the command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use trademl::client::Client;
use trademl::config::{Overrides, ProcessEnv, ServeConfig};
use trademl::repository::Repository;
use trademl::sandbox::Sandbox;
use trademl_sdk::manifest;
use trademl_sdk::signing;

const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// trademl serves signed WebAssembly model components over the Open
/// Inference Protocol v2, and packs, signs, verifies and publishes them.
#[derive(Parser)]
#[command(name = "trademl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every signed model of a repository over HTTP.
    Serve {
        /// The model repository [env: AI_MODELS_PATH] [default: models]
        #[arg(long)]
        models: Option<PathBuf>,
        /// The address to listen on [default: 127.0.0.1:8080]
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The CPU deadline of one prediction, in milliseconds [default: 2000]
        #[arg(long)]
        deadline_ms: Option<u64>,
        /// How many predictions may run at once; more wait [default: 4 per core]
        #[arg(long)]
        max_instances: Option<u32>,
        /// Predictions expected to take at most this many microseconds run on
        /// the thread that received their request, not handed to a blocking
        /// thread; 0 hands every one over [default: 100; at most 1000]
        #[arg(long)]
        inline_below_us: Option<u64>,
        /// A TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where to cache compiled components [default: <models>/.cache]
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Compile every model at every start.
        #[arg(long, conflicts_with = "cache_dir")]
        no_cache: bool,
    },
    /// Make a new Ed25519 publisher key pair: NAME.key (secret) and NAME.pub.
    Keygen {
        /// The directory to write the keys to.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// The key's name.
        #[arg(long, default_value = "publisher")]
        name: String,
    },
    /// Embed a manifest into a component, after checking in the sandbox that
    /// the component's metadata matches it and its examples reproduce; or,
    /// with --onnx, make an ONNX file into such a component.
    Pack(PackArgs),
    /// Start a new model crate: a Rust guest against trademl-sdk, with a test
    /// that runs the model natively.
    New(trademl::author::NewArgs),
    /// Build a model crate into a packed component, ready to sign.
    Build(trademl::author::BuildArgs),
    /// Sign a packed component with a secret key (adds a signature).
    Sign {
        /// The packed component.
        file: PathBuf,
        /// The secret key file (from `trademl keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the signed file [default: in place]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check that a file is intact and signed by a trusted key.
    Verify {
        /// The signed component.
        file: PathBuf,
        /// The directory of trusted public keys [default: $AI_MODELS_PATH/trust or models/trust]
        #[arg(long)]
        trust: Option<PathBuf>,
    },
    /// Print a component's manifest and signatures.
    Inspect {
        /// The component.
        file: PathBuf,
    },
    /// Publish a signed component to a running server.
    Publish {
        /// The signed component.
        file: PathBuf,
        /// The server.
        #[arg(long, default_value = DEFAULT_SERVER)]
        server: String,
    },
    /// Route all of a model's traffic to one version.
    Promote {
        /// The model.
        name: String,
        /// The version.
        version: String,
        /// The server.
        #[arg(long, default_value = DEFAULT_SERVER)]
        server: String,
    },
    /// Return a model to its previous routing.
    Rollback {
        /// The model.
        name: String,
        /// The server.
        #[arg(long, default_value = DEFAULT_SERVER)]
        server: String,
    },
    /// List a model's versions and routing.
    Versions {
        /// The model.
        name: String,
        /// The server.
        #[arg(long, default_value = DEFAULT_SERVER)]
        server: String,
    },
    /// Measure load time, instantiation and prediction latency (in process
    /// and over HTTP on loopback) of every model in a repository.
    Bench {
        #[command(flatten)]
        series: trademl::bench::SeriesArgs,
        /// Write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Train a first-party model natively.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Evaluate a first-party model on held-out data and write its report.
    #[command(subcommand)]
    Eval(EvalCommand),
}

#[derive(clap::Args)]
struct PackArgs {
    /// The component (.wasm) built for wasm32-wasip2.
    #[arg(required_unless_present = "onnx", conflicts_with = "onnx")]
    component: Option<PathBuf>,
    /// The manifest (JSON).
    #[arg(long, required_unless_present = "onnx", conflicts_with = "onnx")]
    manifest: Option<PathBuf>,
    /// An ONNX file to run with tract in the sandbox; its inputs and outputs
    /// are read from the graph.
    #[arg(long, requires_all = ["name", "version", "description"])]
    onnx: Option<PathBuf>,
    /// The model's name (with --onnx).
    #[arg(long)]
    name: Option<String>,
    /// The model's version, x.y.z (with --onnx).
    #[arg(long)]
    version: Option<String>,
    /// What the model predicts, from what (with --onnx).
    #[arg(long)]
    description: Option<String>,
    /// Example inputs and the outputs they must give, JSON (with --onnx).
    #[arg(long, requires = "onnx")]
    examples: Option<PathBuf>,
    /// Relative tolerance of the examples (with --onnx).
    #[arg(long, default_value_t = trademl::pack::DEFAULT_ONNX_TOLERANCE)]
    tolerance: f64,
    /// Memory cap of one instance in MiB (with --onnx).
    #[arg(long, default_value_t = trademl::pack::DEFAULT_ONNX_MEMORY_MIB)]
    memory_limit_mib: u32,
    /// Another build of the ONNX runner component (with --onnx).
    #[arg(long, requires = "onnx")]
    runner: Option<PathBuf>,
    /// Where to write the packed component.
    #[arg(long)]
    out: PathBuf,
    /// A compiled-component cache to use, e.g. the server's
    /// (<models>/.cache), so that its first load of this file does not compile.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum TrainCommand {
    /// Customer segments (k-means on recency, frequency, monetary value, tenure).
    CustomerSegmentation(trademl_train::segmentation::TrainArgs),
    /// Customer churn: probability of no purchase next period.
    Churn(trademl_train::churn::TrainArgs),
    /// Product and promotion recommendations from recent baskets.
    Recommender(trademl_train::recommender::TrainArgs),
    /// Sentiment of texts.
    Sentiment(trademl_train::sentiment::TrainArgs),
    /// Unusual readings in sensor streams.
    AnomalyDetection(trademl_train::anomaly::TrainArgs),
    /// Price recommendations per store from own- and cross-price elasticities.
    PriceOptimizer(trademl_train::price::TrainArgs),
    /// Weekly demand of a store's brand for the next 4 weeks at planned prices and promotions.
    DemandForecast(trademl_train::demand::TrainArgs),
    /// The same forecast by an LSTM run with tract (writes the ONNX graph to pack).
    DemandForecastLstm(trademl_train::demand_lstm::TrainArgs),
    /// Promotion effectiveness: units, lift, incremental profit and ROI of a promotion.
    PromoEffectiveness(trademl_train::promo::TrainArgs),
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum EvalCommand {
    /// Customer segments: stability of held-out assignments under bootstrap refits.
    CustomerSegmentation(trademl_train::segmentation::EvalArgs),
    /// Customer churn on a calibration/holdout split.
    Churn(trademl_train::churn::EvalArgs),
    /// Recommendations: each user's last order held out.
    Recommender(trademl_train::recommender::EvalArgs),
    /// Sentiment: cross-validation and cross-domain.
    Sentiment(trademl_train::sentiment::EvalArgs),
    /// Anomalies against the labels, none used in fitting.
    AnomalyDetection(trademl_train::anomaly::EvalArgs),
    /// Price recommendations on held-out weeks, scored by their own and an independent demand model.
    PriceOptimizer(trademl_train::price::EvalArgs),
    /// Demand forecast: the last 12 weeks as 3 rolling origins, beside the baselines.
    DemandForecast(trademl_train::demand::EvalArgs),
    /// Demand forecast by the LSTM, on the same protocol, beside the baselines and the trees.
    DemandForecastLstm(trademl_train::demand_lstm::EvalArgs),
    /// Promotion effectiveness on held-out weeks beside the baselines.
    PromoEffectiveness(trademl_train::promo::EvalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve {
            models,
            listen,
            deadline_ms,
            max_instances,
            inline_below_us,
            config,
            cache_dir,
            no_cache,
        } => serve(ServeConfig::resolve(
            Overrides {
                models,
                listen,
                deadline_ms,
                max_instances,
                inline_below_us,
                config,
                cache_dir,
                no_cache,
            },
            &ProcessEnv,
        )?),
        Command::Keygen { out, name } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let (secret, public) = signing::write_keypair(&out, &name)?;
            println!("secret key: {} (keep it private)", secret.display());
            println!(
                "public key: {} (copy it into the server's trust/ directory)",
                public.display()
            );
            Ok(())
        }
        Command::Pack(args) => pack(args),
        Command::New(args) => trademl::author::new(&args),
        Command::Build(args) => trademl::author::build(&args).map(|_| ()),
        Command::Sign { file, key, out } => {
            let bytes = read(&file)?;
            let key = signing::read_secret_key(&key)?;
            let signed = signing::sign(&bytes, &key)?;
            let out = out.unwrap_or(file);
            trademl::routing::write_atomically(&out, &signed)?;
            println!(
                "signed {} with key {}",
                out.display(),
                key.public().key_id()
            );
            Ok(())
        }
        Command::Verify { file, trust } => {
            let trust = trust.unwrap_or_else(default_trust_dir);
            let store = signing::TrustStore::load(&trust)?;
            let bytes = read(&file)?;
            match signing::verify(&bytes, &store) {
                Ok(v) => {
                    println!(
                        "{}: intact, signed by trusted key {} ({}), sha256 {}",
                        file.display(),
                        v.key_name,
                        v.key_id,
                        hex::encode(v.digest)
                    );
                    Ok(())
                }
                Err(e) => bail!("{}: refused: {e}", file.display()),
            }
        }
        Command::Inspect { file } => inspect(&file),
        Command::Publish { file, server } => {
            let bytes = read(&file)?;
            let m = manifest::read_manifest(&bytes)?;
            let reply = Client::new(&server).publish(&m.name, bytes)?;
            println!("{}", serde_json::to_string_pretty(&reply)?);
            Ok(())
        }
        Command::Promote {
            name,
            version,
            server,
        } => print(Client::new(&server).promote(&name, &version)?),
        Command::Rollback { name, server } => print(Client::new(&server).rollback(&name)?),
        Command::Versions { name, server } => print(Client::new(&server).versions(&name)?),
        Command::Bench { series, json } => {
            // The models' native code is linked into `trademl-bench`, not here.
            trademl::bench::run(&series.options(Vec::new(), json)).map(|_| ())
        }
        Command::Train(TrainCommand::CustomerSegmentation(args)) => {
            trademl_train::segmentation::train(&args)
        }
        Command::Eval(EvalCommand::CustomerSegmentation(args)) => {
            trademl_train::segmentation::evaluate(&args)
        }
        Command::Train(TrainCommand::Churn(args)) => trademl_train::churn::train(&args),
        Command::Eval(EvalCommand::Churn(args)) => trademl_train::churn::evaluate(&args),
        Command::Train(TrainCommand::Recommender(args)) => trademl_train::recommender::train(&args),
        Command::Eval(EvalCommand::Recommender(args)) => {
            trademl_train::recommender::evaluate(&args)
        }
        Command::Train(TrainCommand::Sentiment(args)) => trademl_train::sentiment::train(&args),
        Command::Eval(EvalCommand::Sentiment(args)) => trademl_train::sentiment::evaluate(&args),
        Command::Train(TrainCommand::DemandForecast(args)) => trademl_train::demand::train(&args),
        Command::Eval(EvalCommand::DemandForecast(args)) => trademl_train::demand::evaluate(&args),
        Command::Train(TrainCommand::DemandForecastLstm(args)) => {
            trademl_train::demand_lstm::train(&args)
        }
        Command::Eval(EvalCommand::DemandForecastLstm(args)) => {
            trademl_train::demand_lstm::evaluate(&args)
        }
        Command::Train(TrainCommand::PromoEffectiveness(args)) => {
            trademl_train::promo::train(&args)
        }
        Command::Eval(EvalCommand::PromoEffectiveness(args)) => {
            trademl_train::promo::evaluate(&args)
        }
        Command::Train(TrainCommand::AnomalyDetection(args)) => {
            trademl_train::anomaly::train(&args)
        }
        Command::Eval(EvalCommand::AnomalyDetection(args)) => {
            trademl_train::anomaly::evaluate(&args)
        }
        Command::Train(TrainCommand::PriceOptimizer(args)) => trademl_train::price::train(&args),
        Command::Eval(EvalCommand::PriceOptimizer(args)) => trademl_train::price::evaluate(&args),
    }
}

fn print(v: serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn default_trust_dir() -> PathBuf {
    std::env::var_os("AI_MODELS_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models"))
        .join("trust")
}

fn serve(config: ServeConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let sandbox = Sandbox::new(config.sandbox.clone())?;
        tracing::info!(
            models = %config.models.display(),
            pooling = sandbox.pooling(),
            max_memory_mib = config.sandbox.max_memory_mib,
            max_instances = config.sandbox.max_instances,
            deadline_ms = config.deadline.as_millis() as u64,
            inline_below_us = config.inline_below.as_micros() as u64,
            "opening the model repository"
        );
        let models = config.models.clone();
        let deadline = config.deadline;
        let repo =
            tokio::task::spawn_blocking(move || Repository::open(&models, sandbox, deadline))
                .await??;
        let repo = Arc::new(repo);
        let app = trademl::server::app(
            repo.clone(),
            trademl::server::CallPolicy {
                max_concurrent: config.sandbox.max_instances as usize,
                inline_below: config.inline_below,
            },
        );
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(models = ?repo.names(), "serving");
        // Tests and scripts read this line to learn the port.
        println!("trademl listening on http://{addr}");
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn pack(args: PackArgs) -> Result<()> {
    let packed = match (args.onnx, args.component, args.manifest) {
        (Some(onnx), _, _) => trademl::pack::pack_onnx(&trademl::pack::OnnxPack {
            onnx,
            // clap requires these three with --onnx.
            name: args.name.unwrap_or_default(),
            version: args.version.unwrap_or_default(),
            description: args.description.unwrap_or_default(),
            examples: args.examples,
            tolerance: args.tolerance,
            memory_limit_mib: args.memory_limit_mib,
            runner: args.runner,
            out: args.out.clone(),
            cache_dir: args.cache_dir,
        })?,
        (None, Some(component), Some(manifest)) => {
            trademl::pack::pack_files(&component, &manifest, &args.out, args.cache_dir)?
        }
        _ => bail!("give a component and --manifest, or --onnx"),
    };
    println!("packed {} into {}", packed, args.out.display());
    Ok(())
}

fn inspect(file: &Path) -> Result<()> {
    let bytes = read(file)?;
    let m = manifest::read_manifest(&bytes)?;
    let signatures = signing::signatures(&bytes)?;
    let out = serde_json::json!({
        "file": file.display().to_string(),
        "size": bytes.len(),
        "sha256_of_content": hex::encode(signing::digest_of_content(&bytes)?),
        "signatures": signatures,
        "manifest": m,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
