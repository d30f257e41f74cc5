//! Train or evaluate the demand forecast without the `trademl` CLI.
//!
//! Run from the workspace root:
//! `cargo run --release -p trademl-train --example demand -- train`
//! `cargo run --release -p trademl-train --example demand -- eval`
//! (`trademl train demand-forecast` and `trademl eval demand-forecast` take the same arguments.)

use clap::{Parser, Subcommand};
use trademl_train::demand::{EvalArgs, TrainArgs, evaluate, train};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit the model; write weights.rs and manifest.json.
    Train(TrainArgs),
    /// Run the rolling-origin evaluation; write docs/models/demand-forecast.{md,json,svg}.
    Eval(EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => evaluate(&args),
    }
}
