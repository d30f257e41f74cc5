//! Anomaly detection on sensor readings: window modified z-scores, no label used in fitting.
//!
//! - [`train`] reads a readings CSV (one reading per row: series id, time order, humidity,
//!   temperature; column names configurable), fits the reference spreads and resolution floors
//!   of [`methods::fit_reference`] (no label is read), and writes the guest crate's
//!   `src/weights.rs` and `manifest.json`.
//! - [`evaluate`] scores every labelled reading with the model and the baselines (rolling
//!   z-score, isolation forest) and a robust Mahalanobis variant, each series' score coming from
//!   fits on the other half of the series only, and writes `docs/models/anomaly-detection.md`
//!   and `.json`.

pub mod data;
pub mod methods;
pub mod metrics;
mod output;

use std::path::PathBuf;

use anyhow::{Result, ensure};
use trademl_model_anomaly_detection::model::Reference;

use self::data::{Columns, Table};

/// The input data: where it is and which columns hold what.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Readings CSV, one reading per row (`.csv` or gzip-compressed `.csv.gz`).
    #[arg(long, default_value = "data/sensor_anomalies.csv.gz")]
    pub data: PathBuf,
    /// Column holding the sensor (series) identifier; each series is scored on its own.
    #[arg(long, default_value = "mote_id")]
    pub series_column: String,
    /// Column holding the reading's position in time (a number) within its series.
    #[arg(long, default_value = "reading")]
    pub order_column: String,
    /// Column holding the humidity (the model's `humidity` input).
    #[arg(long, default_value = "humidity")]
    pub humidity_column: String,
    /// Column holding the temperature (the model's `temperature` input).
    #[arg(long, default_value = "temperature")]
    pub temperature_column: String,
}

impl DataArgs {
    fn columns(&self, label: Option<&str>) -> Columns {
        Columns {
            series: self.series_column.clone(),
            order: self.order_column.clone(),
            variables: vec![
                self.humidity_column.clone(),
                self.temperature_column.clone(),
            ],
            label: label.map(str::to_string),
        }
    }
}

/// Training options.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to write the generated weights.
    #[arg(long, default_value = "guest-models/anomaly-detection/src/weights.rs")]
    pub out_weights: PathBuf,
    /// Where to write the manifest.
    #[arg(long, default_value = "guest-models/anomaly-detection/manifest.json")]
    pub out_manifest: PathBuf,
    /// The evaluation report (`trademl eval anomaly-detection`) whose figures the manifest quotes,
    /// when it exists.
    #[arg(long, default_value = "docs/models/anomaly-detection.json")]
    pub report_json: PathBuf,
}

/// Evaluation options.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Column holding the 0/1 label (1 anomalous); read only here, to measure.
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Seed of the isolation forests.
    #[arg(long, default_value_t = 20250101)]
    pub seed: u64,
    /// Window lengths (readings) at which the model is also scored, besides whole series.
    #[arg(long, value_delimiter = ',', default_value = "100,250,500,1000,2000")]
    pub windows: Vec<usize>,
    /// Directory of the report files.
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// Reads the training data (no label column) and fits the reference.
pub fn fit(args: &DataArgs) -> Result<(Table, Reference)> {
    let table = data::load(&args.data, &args.columns(None))?;
    let all: Vec<&data::Series> = table.series.iter().collect();
    let reference = methods::fit_reference(&all, 2);
    Ok((table, reference))
}

/// Train the model.
pub fn train(args: &TrainArgs) -> Result<()> {
    let (table, reference) = fit(&args.data)?;
    eprintln!(
        "{}: {} rows, {} series; reference spreads {:?}, resolution floors {:?}",
        args.data.data.display(),
        table.rows,
        table.series.len(),
        reference.scales,
        reference.floors
    );
    output::write_weights(args, &table, &reference)?;
    output::write_manifest(args, &table, &reference)?;
    eprintln!(
        "wrote {} and {}",
        args.out_weights.display(),
        args.out_manifest.display()
    );
    Ok(())
}

/// Evaluate the model.
pub fn evaluate(args: &EvalArgs) -> Result<()> {
    let table = data::load(
        &args.data.data,
        &args.data.columns(Some(&args.label_column)),
    )?;
    ensure!(
        table.series.len() >= 2,
        "{}: the evaluation needs at least two series (it fits on one half of them and scores \
         the other); found {}",
        args.data.data.display(),
        table.series.len()
    );
    ensure!(
        table.positives() > 0,
        "{}: no reading is labelled 1 in column {:?}",
        args.data.data.display(),
        args.label_column
    );
    let report = output::run_protocol(args, &table);
    output::write_report(args, &table, &report)?;
    eprintln!(
        "wrote {}",
        args.report_dir.join("anomaly-detection.md").display()
    );
    Ok(())
}
