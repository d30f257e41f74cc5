//! Train or evaluate the recommender without the `trademl` CLI.
//!
//! Run from the workspace root:
//! `cargo run --release -p trademl-train --example recommender -- train`
//! `cargo run --release -p trademl-train --example recommender -- eval`
//! (`trademl train recommender` and `trademl eval recommender` take the same arguments.)

use clap::{Parser, Subcommand};
use trademl_train::recommender::{EvalArgs, TrainArgs, evaluate, train};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit the model; write weights.rs and manifest.json.
    Train(TrainArgs),
    /// Run the held-out protocol; write docs/models/recommender.{md,json}.
    Eval(EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => evaluate(&args),
    }
}
