//! Train or evaluate the customer churn without the `trademl` CLI.
//!
//! Run from the workspace root:
//! `cargo run --release -p trademl-train --example churn -- train`
//! `cargo run --release -p trademl-train --example churn -- eval`
//! (`trademl train churn` and `trademl eval churn` take the same arguments.)

use clap::{Parser, Subcommand};
use trademl_train::churn::{EvalArgs, TrainArgs, evaluate, train};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit the model; write weights.rs and manifest.json.
    Train(TrainArgs),
    /// Run the cross-validation; write docs/models/churn.{md,json}.
    Eval(EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => evaluate(&args),
    }
}
