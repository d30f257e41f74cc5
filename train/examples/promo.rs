//! Train or evaluate promo-effectiveness without the `trademl` CLI.
//!
//! Run from the workspace root:
//! `cargo run --release -p trademl-train --example promo -- train`
//! `cargo run --release -p trademl-train --example promo -- eval`
//! (`trademl train promo-effectiveness` and `trademl eval promo-effectiveness` take the same
//! arguments.)

use clap::{Parser, Subcommand};
use trademl_train::promo::{EvalArgs, TrainArgs, evaluate, train};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit the model; write weights.rs and manifest.json.
    Train(TrainArgs),
    /// Score the test weeks beside the baselines; write docs/models/promo-effectiveness.{md,json}.
    Eval(EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => evaluate(&args),
    }
}
