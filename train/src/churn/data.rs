//! Reading a transactions CSV into calibration summaries and holdout labels.
//!
//! The reading itself is the segmentation trainer's ([`crate::segmentation::data::load`]): it is
//! run once at the calibration end (the summaries) and once at the holdout end; a customer
//! churned when their number of distinct purchase days did not grow between the two.

use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use chrono::NaiveDate;
use trademl_model_churn::model::Customer;

use crate::segmentation::data::{self as seg_data, Columns};

/// The customers of a transactions file, summarised at the calibration end and labelled by the
/// holdout.
#[derive(Debug, Clone)]
pub struct ChurnTable {
    /// The file read.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// Data rows in the file.
    pub rows: usize,
    /// Rows dated on or before the calibration end.
    pub rows_calibration: usize,
    /// Rows dated after the calibration end and on or before the holdout end.
    pub rows_holdout: usize,
    /// Customer ids (with a purchase in the calibration period), sorted.
    pub ids: Vec<String>,
    /// Each customer's summary at the calibration end.
    pub customers: Vec<Customer>,
    /// Whether the customer bought nothing in the holdout period.
    pub churned: Vec<bool>,
}

impl ChurnTable {
    /// The share of customers who churned.
    pub fn churn_rate(&self) -> f64 {
        self.churned.iter().filter(|&&c| c).count() as f64 / self.churned.len() as f64
    }
}

/// Reads `path` and summarises every customer with a purchase on or before `calibration_end`;
/// a customer churned when they have no purchase day in `(calibration_end, holdout_end]`.
pub fn load(
    path: &Path,
    columns: &Columns,
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
) -> Result<ChurnTable> {
    ensure!(
        holdout_end > calibration_end,
        "the holdout end {holdout_end} must come after the calibration end {calibration_end}"
    );
    let cal = seg_data::load(path, columns, calibration_end)?;
    let all = seg_data::load(path, columns, holdout_end)?;
    let mut customers = Vec::with_capacity(cal.ids.len());
    let mut churned = Vec::with_capacity(cal.ids.len());
    // Both id lists are sorted, and every calibration customer is in the longer table.
    let mut j = 0;
    for (id, c) in cal.ids.iter().zip(&cal.customers) {
        while all.ids[j] != *id {
            j += 1;
        }
        customers.push(Customer {
            recency_days: c.recency_days,
            frequency: c.frequency - 1.0,
            monetary_value: c.monetary_value,
            tenure_days: c.tenure_days,
        });
        churned.push(all.customers[j].frequency == c.frequency);
    }
    Ok(ChurnTable {
        path: path.to_path_buf(),
        sha256: cal.sha256,
        rows: cal.rows,
        rows_calibration: cal.rows_used,
        rows_holdout: all.rows_used - cal.rows_used,
        ids: cal.ids,
        customers,
        churned,
    })
}
