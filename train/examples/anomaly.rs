//! Train or evaluate the anomaly detection without the `trademl` CLI.
//!
//! Run from the workspace root:
//! `cargo run --release -p trademl-train --example anomaly -- eval`
//! `cargo run --release -p trademl-train --example anomaly -- train`
//! (`trademl eval anomaly-detection` and `trademl train anomaly-detection` take the same arguments.)

use clap::{Parser, Subcommand};
use trademl_train::anomaly::{EvalArgs, TrainArgs, evaluate, train};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit the reference; write weights.rs and manifest.json.
    Train(TrainArgs),
    /// Run the protocol; write docs/models/anomaly-detection.{md,json}.
    Eval(EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => evaluate(&args),
    }
}
