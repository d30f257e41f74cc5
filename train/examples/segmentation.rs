//! Train or evaluate the customer segmentation without the `trademl` CLI.
//!
//! Run from the workspace root:
//! `cargo run --release -p trademl-train --example segmentation -- train`
//! `cargo run --release -p trademl-train --example segmentation -- eval`
//! (`trademl train customer-segmentation` and `trademl eval customer-segmentation` take the same arguments.)

use clap::{Parser, Subcommand};
use trademl_train::segmentation::{EvalArgs, TrainArgs, evaluate, train};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit the model; write weights.rs and manifest.json.
    Train(TrainArgs),
    /// Run the stability protocol; write docs/models/customer-segmentation.{md,json}.
    Eval(EvalArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => evaluate(&args),
    }
}
