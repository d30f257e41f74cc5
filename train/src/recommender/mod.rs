//! Product and promotion recommendations from recent baskets: a personal repurchase score
//! (logistic regression on frequency, recency-decayed share, orders since last bought, cart
//! position, the product's reorder rate and popularity, the customer's reorder propensity).
//!
//! - [`train`] reads an order-lines CSV, tunes and fits the model on the inner split (each
//!   customer's second-to-last order held out), measures it on the test split (the last order held
//!   out), recomputes the product statistics on every order and writes the guest crate's
//!   `src/weights.rs` and `manifest.json`.
//! - [`evaluate`] runs the same protocol beside the buy-again and popularity baselines and writes
//!   `docs/models/recommender.md` and `.json`.

pub mod data;
pub mod fit;
mod output;

use std::path::PathBuf;

use anyhow::{Result, ensure};

use self::data::{Columns, OrderTable};
use self::fit::Stats;

/// The input data: where it is and which columns hold what.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Order-lines CSV, one product of one order per row (`.csv` or gzip-compressed `.csv.gz`).
    #[arg(long, default_value = "data/instacart_order_lines.csv.gz")]
    pub data: PathBuf,
    /// Column holding the customer identifier.
    #[arg(long, default_value = "user_id")]
    pub user_column: String,
    /// Column holding the order's sequence number within the customer's orders (1 = first).
    #[arg(long, default_value = "order_number")]
    pub order_number_column: String,
    /// Column holding the product id (an integer >= 1).
    #[arg(long, default_value = "product_id")]
    pub product_column: String,
    /// Column holding the line's position in the cart (1 = added first).
    #[arg(long, default_value = "add_to_cart_order")]
    pub cart_position_column: String,
    /// Per-order decays of the recency-decayed share tried on the inner split.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.5,0.7,0.8,0.9,0.95,1.0"
    )]
    pub decays: Vec<f64>,
    /// L2 penalty of the logistic regression (on standardised features).
    #[arg(long, default_value_t = 1.0)]
    pub l2: f64,
    /// Popular products scored for every customer besides their own history.
    #[arg(long, default_value_t = 30)]
    pub popular: usize,
}

impl DataArgs {
    fn columns(&self) -> Columns {
        Columns {
            user: self.user_column.clone(),
            order_number: self.order_number_column.clone(),
            product: self.product_column.clone(),
            cart_position: self.cart_position_column.clone(),
        }
    }

    /// Reads the data.
    pub fn load(&self) -> Result<OrderTable> {
        ensure!(
            self.popular >= trademl_model_recommender::model::TOP_K,
            "--popular {} must be at least {}",
            self.popular,
            trademl_model_recommender::model::TOP_K
        );
        let table = data::load(&self.data, &self.columns())?;
        eprintln!(
            "{}: {} rows, {} customers, {} orders, {} products",
            self.data.display(),
            table.rows,
            table.users.len(),
            table.orders(),
            table.products
        );
        Ok(table)
    }
}

/// `trademl train recommender`: fit the model and write its weights and manifest.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Where to write the generated weights.
    #[arg(long, default_value = "guest-models/recommender/src/weights.rs")]
    pub out_weights: PathBuf,
    /// Where to write the manifest.
    #[arg(long, default_value = "guest-models/recommender/manifest.json")]
    pub out_manifest: PathBuf,
    /// Where the evaluation report is (linked from the manifest).
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// `trademl eval recommender`: each customer's last order held out, beside the baselines.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Where to write recommender.md and recommender.json.
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

fn print(evaluation: &fit::Evaluation) {
    for row in &evaluation.tuning {
        eprintln!(
            "inner, decay {}: hit {:.4} recall {:.4} ndcg {:.4}",
            row.decay, row.inner.hit_rate, row.inner.recall, row.inner.ndcg
        );
    }
    for (name, m) in [
        ("model", &evaluation.model),
        ("buy-again", &evaluation.buy_again),
        ("popularity", &evaluation.popularity),
    ] {
        eprintln!(
            "test, {name}: hit@10 {:.4} recall@10 {:.4} ndcg@10 {:.4} ({} customers)",
            m.hit_rate, m.recall, m.ndcg, m.users
        );
    }
}

/// Trains on the CSV and writes `weights.rs` and `manifest.json`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let table = args.data.load()?;
    let d = &args.data;
    let (params, evaluation) = fit::evaluate(&table.users, &d.decays, d.l2, d.popular)?;
    print(&evaluation);
    // The shipped statistics count every order of every customer.
    let stats = Stats::compute(&table.users, |u| u.orders.len(), d.popular);
    output::write_weights(args, &table, &stats, &params, &evaluation)?;
    output::write_manifest(args, &table, &stats, &params, &evaluation)?;
    eprintln!(
        "wrote {} and {}",
        args.out_weights.display(),
        args.out_manifest.display()
    );
    Ok(())
}

/// Runs the protocol and writes the report.
pub fn evaluate(args: &EvalArgs) -> Result<()> {
    let table = args.data.load()?;
    let d = &args.data;
    let (_, evaluation) = fit::evaluate(&table.users, &d.decays, d.l2, d.popular)?;
    print(&evaluation);
    output::write_report(args, &table, &evaluation)
}
