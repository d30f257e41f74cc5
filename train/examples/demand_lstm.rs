//! Train or evaluate the LSTM demand forecast without the `trademl` CLI.
//!
//! Run from the workspace root:
//! `cargo run --release -p trademl-train --example demand_lstm -- train`
//! `cargo run --release -p trademl-train --example demand_lstm -- eval`
//! (`trademl train demand-forecast-lstm` and `trademl eval demand-forecast-lstm` take the same
//! arguments.)

use clap::{Parser, Subcommand};
use trademl_train::demand_lstm::{EvalArgs, TrainArgs, evaluate, train};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit the network; write onnx-models/demand-forecast-lstm/.
    Train(TrainArgs),
    /// Run the rolling-origin evaluation; write docs/models/demand-forecast-lstm.{md,json}.
    Eval(EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => evaluate(&args),
    }
}
