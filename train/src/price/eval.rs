//! The held-out protocol: every store × week of the test weeks is one pricing problem, priced
//! with the week's planned deals and features and its unit costs; the recommended prices are
//! scored by the optimizer's own demand model and by the independent gradient-boosted simulator,
//! each against the same model's prediction at the historical prices.

use std::collections::BTreeMap;

use serde::Serialize;
use trademl_model_price_optimizer::model::{Demand, Item, Search};

use super::simulate::Simulator;
use crate::scanner::Row;

/// One store × week of the test weeks: its rows in product order.
pub struct Week<'a> {
    /// Store.
    pub store: u32,
    /// Week.
    pub week: u32,
    /// One row per product, product order.
    pub rows: Vec<&'a Row>,
}

/// The test store-weeks with a row for every product (others are counted and skipped).
pub fn weeks(test: &[Row], products: usize) -> (Vec<Week<'_>>, usize) {
    let mut map: BTreeMap<(u32, u32), Vec<&Row>> = BTreeMap::new();
    for r in test {
        map.entry((r.store, r.week)).or_default().push(r);
    }
    let mut out = Vec::new();
    let mut skipped = 0;
    for ((store, week), mut rows) in map {
        if rows.len() != products {
            skipped += 1;
            continue;
        }
        rows.sort_by_key(|r| r.product);
        out.push(Week { store, week, rows });
    }
    (out, skipped)
}

/// The business bounds of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    /// Largest change, fraction of today's price.
    pub max_change: f64,
    /// Smallest margin, percent of the price.
    pub min_margin_pct: f64,
}

/// A store-week's items: the historical prices, the week's costs, deals and features.
pub fn items(week: &Week<'_>, bounds: Bounds) -> Vec<Item> {
    week.rows
        .iter()
        .map(|r| Item {
            product: r.product as usize - 1,
            price: r.price(),
            cost: r.unit_cost(),
            deal: r.deal,
            feature: r.feature,
            max_change: bounds.max_change,
            min_margin_pct: bounds.min_margin_pct,
        })
        .collect()
}

/// Profit, units and revenue summed over the test store-weeks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Gross profit, Σ (price − cost) × units (price per ounce × units).
    pub profit: f64,
    /// Units.
    pub units: f64,
    /// Revenue, Σ price × units.
    pub revenue: f64,
}

impl Totals {
    fn add(&mut self, price: f64, cost: f64, units: f64) {
        self.profit += (price - cost) * units;
        self.units += units;
        self.revenue += price * units;
    }
}

/// Recommended against historical prices under one demand model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    /// At the historical prices.
    pub historical: Totals,
    /// At the recommended prices.
    pub recommended: Totals,
    /// Relative profit change.
    pub profit_change: f64,
    /// Relative units change.
    pub units_change: f64,
    /// Relative revenue change.
    pub revenue_change: f64,
}

impl Scored {
    fn new(historical: Totals, recommended: Totals) -> Scored {
        Scored {
            historical,
            recommended,
            profit_change: recommended.profit / historical.profit - 1.0,
            units_change: recommended.units / historical.units - 1.0,
            revenue_change: recommended.revenue / historical.revenue - 1.0,
        }
    }
}

/// One optimisation setting's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Short key.
    pub key: String,
    /// What it is.
    pub method: String,
    /// Volume weight.
    pub weight: f64,
    /// Under the model that chose the prices.
    pub own_model: Scored,
    /// Under the gradient-boosted simulator.
    pub simulator: Scored,
    /// Mean absolute relative price change.
    pub mean_abs_change: f64,
    /// Share of prices raised.
    pub share_raised: f64,
    /// Share of prices lowered.
    pub share_lowered: f64,
}

/// Optimises every store-week with `demand` and scores the result.
#[allow(clippy::too_many_arguments)]
pub fn run(
    key: &str,
    method: &str,
    demand: &Demand<'_>,
    search: &Search,
    bounds: Bounds,
    weight: f64,
    weeks: &[Week<'_>],
    sim: &Simulator,
    progress: &indicatif::ProgressBar,
) -> Outcome {
    let (mut own_h, mut own_r, mut sim_h, mut sim_r) = Default::default();
    let (mut abs_change, mut raised, mut lowered, mut n) = (0.0, 0usize, 0usize, 0usize);
    let mut units = vec![0.0; demand.products];
    for w in weeks {
        let items = items(w, bounds);
        let recs = demand.optimise(w.store, &items, weight, search);
        let today: Vec<f64> = w.rows[0].prices.clone();
        let mut new = today.clone();
        for (it, rec) in items.iter().zip(&recs) {
            new[it.product] = rec.price;
        }
        let s = demand.store_index(w.store);
        demand.units(s, &items, &today, &mut units);
        let (oh, or, sh, sr): (&mut Totals, &mut Totals, &mut Totals, &mut Totals) =
            (&mut own_h, &mut own_r, &mut sim_h, &mut sim_r);
        for ((it, rec), row) in items.iter().zip(&recs).zip(&w.rows) {
            oh.add(it.price, it.cost, units[it.product]);
            or.add(rec.price, it.cost, rec.units);
            sh.add(it.price, it.cost, sim.units(row, &row.prices));
            sr.add(rec.price, it.cost, sim.units(row, &new));
            let c = rec.price / it.price - 1.0;
            abs_change += c.abs();
            raised += usize::from(c > 1e-9);
            lowered += usize::from(c < -1e-9);
            n += 1;
        }
        progress.inc(1);
    }
    Outcome {
        key: key.to_string(),
        method: method.to_string(),
        weight,
        own_model: Scored::new(own_h, own_r),
        simulator: Scored::new(sim_h, sim_r),
        mean_abs_change: abs_change / n as f64,
        share_raised: raised as f64 / n as f64,
        share_lowered: lowered as f64 / n as f64,
    }
}

/// Historical profit, units and revenue with the actual units sold.
pub fn actual(weeks: &[Week<'_>]) -> Totals {
    let mut t = Totals::default();
    for w in weeks {
        for r in &w.rows {
            t.add(r.price(), r.unit_cost(), r.units);
        }
    }
    t
}
