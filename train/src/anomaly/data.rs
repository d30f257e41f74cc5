//! Reading a readings CSV into one [`Series`] per sensor, in time order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Which columns of the CSV hold what.
#[derive(Debug, Clone)]
pub struct Columns {
    /// The sensor (series) identifier.
    pub series: String,
    /// The reading's position in time within its series (a number; sorted ascending).
    pub order: String,
    /// The variables, in the model's input order (humidity, temperature).
    pub variables: Vec<String>,
    /// The 0/1 label column, read only by the evaluation; `None` in training.
    pub label: Option<String>,
}

/// One sensor's readings in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series identifier.
    pub id: String,
    /// `values[j]` holds variable `j`'s readings.
    pub values: Vec<Vec<f64>>,
    /// 1 for a reading labelled anomalous; empty when no label column was read.
    pub labels: Vec<u8>,
}

impl Series {
    /// The number of readings.
    pub fn len(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// Whether the series has no readings.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Variable columns as slices.
    pub fn columns(&self) -> Vec<&[f64]> {
        self.values.iter().map(Vec::as_slice).collect()
    }

    /// The readings `range` of this series, as a new series.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Series {
        Series {
            id: self.id.clone(),
            values: self
                .values
                .iter()
                .map(|v| v[range.clone()].to_vec())
                .collect(),
            labels: if self.labels.is_empty() {
                Vec::new()
            } else {
                self.labels[range].to_vec()
            },
        }
    }
}

/// The series of a readings file.
#[derive(Debug, Clone)]
pub struct Table {
    /// The file read.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// Data rows in the file.
    pub rows: usize,
    /// The series, sorted by identifier (numerically when every identifier is a number).
    pub series: Vec<Series>,
}

impl Table {
    /// Labelled anomalous readings over all series.
    pub fn positives(&self) -> usize {
        self.series
            .iter()
            .map(|s| s.labels.iter().filter(|&&l| l == 1).count())
            .sum()
    }
}

/// Reads a CSV (gzip-compressed when the name ends in `.gz`) of one reading per row.
pub fn load(path: &Path, columns: &Columns) -> Result<Table> {
    let crate::files::Csv {
        sha256,
        mut reader,
        headers,
    } = crate::files::Csv::open(path)?;
    let index = |role: &str, name: &str| crate::files::column(path, &headers, role, name);
    let si = index("series", &columns.series)?;
    let oi = index("order", &columns.order)?;
    let vi: Vec<usize> = columns
        .variables
        .iter()
        .map(|v| index("variable", v))
        .collect::<Result<_>>()?;
    let li = columns
        .label
        .as_deref()
        .map(|l| index("label", l))
        .transpose()?;

    // Per series: (order, values, label).
    type Row = (f64, Vec<f64>, u8);
    let mut by_series: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut rows = 0;
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("{}: line {line}", path.display()))?;
        let number = |col: usize, name: &str| -> Result<f64> {
            let raw = record.get(col).unwrap_or("").trim();
            match raw.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => bail!(
                    "{}: line {line}: column {name:?} = {raw:?} is not a finite number",
                    path.display()
                ),
            }
        };
        let order = number(oi, &columns.order)?;
        let values = vi
            .iter()
            .zip(&columns.variables)
            .map(|(&c, name)| number(c, name))
            .collect::<Result<Vec<_>>>()?;
        let label = match (li, &columns.label) {
            (Some(c), Some(name)) => match number(c, name)? {
                0.0 => 0,
                1.0 => 1,
                v => bail!(
                    "{}: line {line}: column {name:?} = {v} is not a label 0 or 1",
                    path.display()
                ),
            },
            _ => 0,
        };
        let id = record.get(si).unwrap_or("").trim().to_string();
        by_series
            .entry(id)
            .or_default()
            .push((order, values, label));
        rows += 1;
    }
    if rows == 0 {
        bail!("{}: no data rows", path.display());
    }
    let mut series: Vec<Series> = by_series
        .into_iter()
        .map(|(id, mut rs)| {
            rs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let values = (0..vi.len())
                .map(|j| rs.iter().map(|r| r.1[j]).collect())
                .collect();
            let labels = if li.is_some() {
                rs.iter().map(|r| r.2).collect()
            } else {
                Vec::new()
            };
            Series { id, values, labels }
        })
        .collect();
    if series.iter().all(|s| s.id.parse::<f64>().is_ok()) {
        series.sort_by(|a, b| {
            let (x, y): (f64, f64) = (a.id.parse().unwrap(), b.id.parse().unwrap());
            x.total_cmp(&y)
        });
    }
    Ok(Table {
        path: path.to_path_buf(),
        sha256,
        rows,
        series,
    })
}
