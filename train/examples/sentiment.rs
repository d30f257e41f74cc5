//! Train or evaluate the sentiment model without the `trademl` CLI.
//!
//! Run from the workspace root:
//! `cargo run --release -p trademl-train --example sentiment -- eval`
//! `cargo run --release -p trademl-train --example sentiment -- train`
//! (`trademl eval sentiment` and `trademl train sentiment` take the same arguments.)

use clap::{Parser, Subcommand};
use trademl_train::sentiment::{EvalArgs, TrainArgs, evaluate, train};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit the model; write the lexicon, weights and manifest.json.
    Train(TrainArgs),
    /// Run the evaluation protocol; write docs/models/sentiment.{md,json}.
    Eval(EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => evaluate(&args),
    }
}
