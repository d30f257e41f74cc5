//! Train or evaluate the price optimizer without the `trademl` CLI.
//!
//! Run from the workspace root:
//! `cargo run --release -p trademl-train --example price -- train`
//! `cargo run --release -p trademl-train --example price -- eval`
//! (`trademl train price-optimizer` and `trademl eval price-optimizer` take the same arguments.)

use clap::{Parser, Subcommand};
use trademl_train::price::{EvalArgs, TrainArgs, evaluate, train};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit the model; write weights.rs and manifest.json.
    Train(TrainArgs),
    /// Run the held-out protocol; write docs/models/price-optimizer.{md,json,svg}.
    Eval(EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => evaluate(&args),
    }
}
