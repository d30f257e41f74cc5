//! Reading a transactions CSV into one [`Customer`] per customer at a cutoff date.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use trademl_model_customer_segmentation::model::Customer;

/// Which columns of a transactions CSV hold what, and how dates are written: the flags shared
/// by every trainer of the transactions file (customer-segmentation, churn).
#[derive(Debug, Clone, clap::Args)]
pub struct Columns {
    /// Column holding the customer identifier.
    #[arg(long = "customer-column", default_value = "customer_id")]
    pub customer: String,
    /// Column holding the purchase date.
    #[arg(long = "date-column", default_value = "date")]
    pub date: String,
    /// chrono format of the purchase dates.
    #[arg(long = "date-format", default_value = "%Y%m%d")]
    pub date_format: String,
    /// Column holding the purchase amount in US dollars.
    #[arg(long = "amount-column", default_value = "amount")]
    pub amount: String,
}

/// The customers of a transactions file, as seen at a cutoff date.
#[derive(Debug, Clone)]
pub struct CustomerTable {
    /// The file read.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// Data rows in the file.
    pub rows: usize,
    /// Rows dated on or before the cutoff (the ones used).
    pub rows_used: usize,
    /// Customer ids, sorted, parallel to `customers`.
    pub ids: Vec<String>,
    /// Each customer's figures at the cutoff.
    pub customers: Vec<Customer>,
}

/// Reads a CSV (gzip-compressed when the name ends in `.gz`) of one purchase per row and
/// describes every customer with a purchase on or before `cutoff`:
/// recency and tenure in days to the cutoff, frequency as distinct purchase days, monetary value
/// as total spend divided by frequency. Purchases after the cutoff are ignored.
pub fn load(path: &Path, columns: &Columns, cutoff: NaiveDate) -> Result<CustomerTable> {
    let crate::files::Csv {
        sha256,
        mut reader,
        headers,
    } = crate::files::Csv::open(path)?;
    let index = |role: &str, name: &str| crate::files::column(path, &headers, role, name);
    let (ci, di, ai) = (
        index("customer", &columns.customer)?,
        index("date", &columns.date)?,
        index("amount", &columns.amount)?,
    );

    // Per customer: (day, amount) of every purchase up to the cutoff.
    let mut purchases: BTreeMap<String, Vec<(NaiveDate, f64)>> = BTreeMap::new();
    let (mut rows, mut rows_used) = (0, 0);
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("{}: line {line}", path.display()))?;
        rows += 1;
        let field = |idx: usize| record.get(idx).unwrap_or("").trim();
        let date =
            NaiveDate::parse_from_str(field(di), &columns.date_format).with_context(|| {
                format!(
                    "{}: line {line}: column {:?} = {:?} is not a date in the format {:?}",
                    path.display(),
                    columns.date,
                    field(di),
                    columns.date_format
                )
            })?;
        let amount: f64 = field(ai)
            .parse()
            .ok()
            .filter(|a: &f64| a.is_finite())
            .with_context(|| {
                format!(
                    "{}: line {line}: column {:?} = {:?} is not a number",
                    path.display(),
                    columns.amount,
                    field(ai)
                )
            })?;
        if amount < 0.0 {
            bail!(
                "{}: line {line}: column {:?} = {amount} is negative (returns are not supported)",
                path.display(),
                columns.amount
            );
        }
        if date > cutoff {
            continue;
        }
        rows_used += 1;
        purchases
            .entry(field(ci).to_string())
            .or_default()
            .push((date, amount));
    }
    if purchases.is_empty() {
        bail!(
            "{}: no purchase on or before the cutoff {cutoff} ({rows} rows read)",
            path.display()
        );
    }

    let mut ids = Vec::with_capacity(purchases.len());
    let mut customers = Vec::with_capacity(purchases.len());
    for (id, mut list) in purchases {
        list.sort_by_key(|&(d, _)| d);
        let first = list[0].0;
        let last = list[list.len() - 1].0;
        let mut days = list.iter().map(|&(d, _)| d).collect::<Vec<_>>();
        days.dedup();
        let total: f64 = list.iter().map(|&(_, a)| a).sum();
        let frequency = days.len() as f64;
        ids.push(id);
        customers.push(Customer {
            recency_days: (cutoff - last).num_days() as f64,
            frequency,
            monetary_value: total / frequency,
            tenure_days: (cutoff - first).num_days() as f64,
        });
    }
    Ok(CustomerTable {
        path: path.to_path_buf(),
        sha256,
        rows,
        rows_used,
        ids,
        customers,
    })
}
