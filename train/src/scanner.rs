//! Reading a weekly retail scanner panel (one row per store × product × week, with every
//! product's shelf price, promotion flags and margin) — the data of the demand, price and
//! promotion models. The defaults name the columns of Dominick's orange-juice file
//! (`data/dominicks_oj_weekly.csv.gz`); every column is configurable so that a user's own panel
//! works.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Which columns of a scanner panel hold what: the flags shared by the trainers of the panel.
#[derive(Debug, Clone, clap::Args)]
pub struct Columns {
    /// Column holding the store identifier (an integer).
    #[arg(long = "store-column", default_value = "store")]
    pub store: String,
    /// Column holding the product (brand) number, 1..=N; product k's price is in the column
    /// `{price-prefix}{k}`.
    #[arg(long = "product-column", default_value = "brand")]
    pub product: String,
    /// Column holding the week number (an integer; consecutive weeks differ by 1).
    #[arg(long = "week-column", default_value = "week")]
    pub week: String,
    /// Column holding the units sold (see --units-are-log).
    #[arg(long = "units-column", default_value = "logmove")]
    pub units: String,
    /// Whether the units column holds the natural log of units (as Dominick's `logmove` does).
    #[arg(long = "units-are-log", default_value_t = true, action = clap::ArgAction::Set)]
    pub units_are_log: bool,
    /// Prefix of the price columns: product k's shelf price is in `{prefix}{k}`.
    #[arg(long = "price-prefix", default_value = "price")]
    pub price_prefix: String,
    /// Column holding the in-store deal flag of the row's product (0/1).
    #[arg(long = "deal-column", default_value = "deal")]
    pub deal: String,
    /// Column holding the feature-advertising share of the row's product (0..1).
    #[arg(long = "feature-column", default_value = "feat")]
    pub feature: String,
    /// Column holding the gross margin in percent of the shelf price (unit cost = price ×
    /// (1 − margin / 100)).
    #[arg(long = "margin-column", default_value = "profit")]
    pub margin: String,
}

/// One store × product × week.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Store identifier.
    pub store: u32,
    /// Product number, 1-based.
    pub product: u32,
    /// Week number.
    pub week: u32,
    /// Units sold.
    pub units: f64,
    /// Every product's shelf price in this store and week, product k at index k − 1.
    pub prices: Vec<f64>,
    /// In-store deal flag of this row's product.
    pub deal: f64,
    /// Feature-advertising share of this row's product.
    pub feature: f64,
    /// Gross margin of this row's product, percent of its shelf price.
    pub margin_pct: f64,
}

impl Row {
    /// This row's product's own shelf price.
    pub fn price(&self) -> f64 {
        self.prices[self.product as usize - 1]
    }

    /// Unit cost implied by the price and the margin.
    pub fn unit_cost(&self) -> f64 {
        self.price() * (1.0 - self.margin_pct / 100.0)
    }
}

/// A scanner panel read from a CSV.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The file read.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// The number of products (price columns).
    pub products: usize,
    /// Every row, sorted by store, product, week.
    pub rows: Vec<Row>,
}

impl Panel {
    /// The distinct weeks, ascending.
    pub fn weeks(&self) -> Vec<u32> {
        let mut w: Vec<u32> = self.rows.iter().map(|r| r.week).collect();
        w.sort_unstable();
        w.dedup();
        w
    }

    /// The rows of each store × product, in week order (the rows are stored sorted).
    pub fn series(&self) -> BTreeMap<(u32, u32), &[Row]> {
        let mut out = BTreeMap::new();
        let mut start = 0;
        for i in 1..=self.rows.len() {
            let same = i < self.rows.len()
                && self.rows[i].store == self.rows[start].store
                && self.rows[i].product == self.rows[start].product;
            if !same {
                let r = &self.rows[start];
                out.insert((r.store, r.product), &self.rows[start..i]);
                start = i;
            }
        }
        out
    }
}

/// Reads a panel CSV (gzip-compressed when the name ends in `.gz`). Every value is checked: a
/// bad number, a product outside 1..=N, a non-positive price or units, or a repeated
/// store × product × week is an error naming the line and column.
pub fn load(path: &Path, columns: &Columns) -> Result<Panel> {
    let crate::files::Csv {
        sha256,
        mut reader,
        headers,
    } = crate::files::Csv::open(path)?;
    let index = |role: &str, name: &str| crate::files::column(path, &headers, role, name);
    let (si, pi, wi, ui, di, fi, mi) = (
        index("store", &columns.store)?,
        index("product", &columns.product)?,
        index("week", &columns.week)?,
        index("units", &columns.units)?,
        index("deal", &columns.deal)?,
        index("feature", &columns.feature)?,
        index("margin", &columns.margin)?,
    );
    // Price columns: {prefix}1, {prefix}2, … as long as they exist.
    let mut price_columns = Vec::new();
    while let Some(i) = headers
        .iter()
        .position(|h| h.trim() == format!("{}{}", columns.price_prefix, price_columns.len() + 1))
    {
        price_columns.push(i);
    }
    if price_columns.is_empty() {
        bail!(
            "{}: no price columns {:?}1, {:?}2, …; the columns are: {}",
            path.display(),
            columns.price_prefix,
            columns.price_prefix,
            headers.iter().collect::<Vec<_>>().join(", ")
        );
    }
    let products = price_columns.len();

    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("{}: line {line}", path.display()))?;
        let number = |idx: usize, name: &str| -> Result<f64> {
            let text = record.get(idx).unwrap_or("").trim();
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .with_context(|| {
                    format!(
                        "{}: line {line}: column {name:?} = {text:?} is not a finite number",
                        path.display()
                    )
                })
        };
        let integer = |idx: usize, name: &str| -> Result<u32> {
            let v = number(idx, name)?;
            if v < 0.0 || v.fract() != 0.0 || v > f64::from(u32::MAX) {
                bail!(
                    "{}: line {line}: column {name:?} = {v} is not a non-negative integer",
                    path.display()
                );
            }
            Ok(v as u32)
        };
        let product = integer(pi, &columns.product)?;
        if product == 0 || product as usize > products {
            bail!(
                "{}: line {line}: column {:?} = {product} is not a product 1..={products} \
                 (one per price column)",
                path.display(),
                columns.product
            );
        }
        let raw_units = number(ui, &columns.units)?;
        let units = if columns.units_are_log {
            raw_units.exp()
        } else {
            raw_units
        };
        if units <= 0.0 {
            bail!(
                "{}: line {line}: column {:?} = {raw_units} gives {units} units; units must be \
                 positive",
                path.display(),
                columns.units
            );
        }
        let mut prices = Vec::with_capacity(products);
        for (k, &idx) in price_columns.iter().enumerate() {
            let name = format!("{}{}", columns.price_prefix, k + 1);
            let p = number(idx, &name)?;
            if p <= 0.0 {
                bail!(
                    "{}: line {line}: column {name:?} = {p} is not a positive price",
                    path.display()
                );
            }
            prices.push(p);
        }
        rows.push(Row {
            store: integer(si, &columns.store)?,
            product,
            week: integer(wi, &columns.week)?,
            units,
            prices,
            deal: number(di, &columns.deal)?,
            feature: number(fi, &columns.feature)?,
            margin_pct: number(mi, &columns.margin)?,
        });
    }
    if rows.is_empty() {
        bail!("{}: no data rows", path.display());
    }
    rows.sort_by_key(|r| (r.store, r.product, r.week));
    if let Some(w) = rows
        .windows(2)
        .find(|w| (w[0].store, w[0].product, w[0].week) == (w[1].store, w[1].product, w[1].week))
    {
        bail!(
            "{}: store {} product {} week {} appears more than once",
            path.display(),
            w[0].store,
            w[0].product,
            w[0].week
        );
    }
    Ok(Panel {
        path: path.to_path_buf(),
        sha256,
        products,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        columns: Columns,
    }

    fn defaults() -> Columns {
        Cli::parse_from(["x"]).columns
    }

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("panel.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const HEADER: &str = "store,brand,week,logmove,price1,price2,deal,feat,profit\n";

    #[test]
    fn reads_rows_sorted_into_series() {
        let (_d, path) = write(&format!(
            "{HEADER}2,1,41,0.0,0.05,0.04,1,0.5,30\n2,1,40,1.0,0.06,0.04,0,0,25\n2,2,40,2.0,0.06,0.04,0,0,20\n"
        ));
        let panel = load(&path, &defaults()).unwrap();
        assert_eq!(panel.products, 2);
        assert_eq!(panel.weeks(), vec![40, 41]);
        let series = panel.series();
        let s = series[&(2, 1)];
        assert_eq!(s.iter().map(|r| r.week).collect::<Vec<_>>(), vec![40, 41]);
        assert!((s[0].units - 1f64.exp()).abs() < 1e-12);
        assert_eq!(s[1].price(), 0.05);
        assert!((s[1].unit_cost() - 0.035).abs() < 1e-12);
        assert_eq!(series[&(2, 2)][0].price(), 0.04);
    }

    #[test]
    fn names_the_line_and_column_of_a_bad_value() {
        let (_d, path) = write(&format!("{HEADER}2,1,40,1.0,abc,0.04,0,0,25\n"));
        let err = format!("{:#}", load(&path, &defaults()).unwrap_err());
        assert!(
            err.contains("line 2") && err.contains("\"price1\""),
            "{err}"
        );

        let (_d, path) = write(&format!("{HEADER}2,3,40,1.0,0.05,0.04,0,0,25\n"));
        let err = format!("{:#}", load(&path, &defaults()).unwrap_err());
        assert!(err.contains("not a product 1..=2"), "{err}");

        let (_d, path) = write(&format!(
            "{HEADER}2,1,40,1.0,0.05,0.04,0,0,25\n2,1,40,1.0,0.05,0.04,0,0,25\n"
        ));
        let err = format!("{:#}", load(&path, &defaults()).unwrap_err());
        assert!(err.contains("more than once"), "{err}");
    }

    #[test]
    fn names_a_missing_column() {
        let (_d, path) = write("store,brand,week,units\n");
        let err = format!("{:#}", load(&path, &defaults()).unwrap_err());
        assert!(
            err.contains("\"logmove\"") && err.contains("units column"),
            "{err}"
        );
    }

    #[test]
    fn reads_the_shipped_panel() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/dominicks_oj_weekly.csv.gz");
        let panel = load(&path, &defaults()).unwrap();
        assert_eq!(panel.rows.len(), 106_139);
        assert_eq!(panel.products, 11);
        assert_eq!(panel.series().len(), 83 * 11);
    }
}
