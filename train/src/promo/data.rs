//! Promotion events of a scanner panel, with the store-brand baselines computed from the
//! training weeks only.

use std::collections::HashMap;

use trademl_model_promo_effectiveness::model::{CostParams, Promotion};

use crate::scanner::{Panel, Row};

/// One promotion event and what it sold.
#[derive(Debug, Clone)]
pub struct Event {
    /// The promotion as the component receives it.
    pub promotion: Promotion,
    /// Units actually sold.
    pub units: f64,
    /// The week.
    pub week: u32,
}

impl Event {
    /// ln(units / baseline): the models' target.
    pub fn ln_lift(&self) -> f64 {
        (self.units / self.promotion.baseline_units).ln()
    }
}

/// The events before a cut week (fitting) and from it on (evaluation).
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// Events in weeks before the cut.
    pub fit: Vec<Event>,
    /// Events in weeks from the cut to the end (exclusive).
    pub eval: Vec<Event>,
    /// Events left out because their store-brand had no week without promotion before the cut.
    pub skipped: usize,
}

/// Whether a row is a promotion event: a deal or a feature ad.
pub fn is_promotion(r: &Row) -> bool {
    r.deal == 1.0 || r.feature > 0.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Splits the panel's events at `cut` (fitting weeks < cut, evaluation weeks cut..end). Baseline
/// units and regular price of a store-brand are the medians of its unpromoted weeks before the
/// cut; its past lift is the geometric mean lift of its events before the cut (for a fitting event
/// leaving the event itself out, NaN with no other event).
pub fn split(panel: &Panel, cut: u32, end: u32, costs: CostParams) -> Split {
    let products = panel.products;
    // Every brand's deal and feature in each store-week.
    let mut promos: HashMap<(u32, u32), (Vec<f64>, Vec<f64>)> = HashMap::new();
    for r in &panel.rows {
        let e = promos
            .entry((r.store, r.week))
            .or_insert_with(|| (vec![0.0; products], vec![0.0; products]));
        e.0[r.product as usize - 1] = r.deal;
        e.1[r.product as usize - 1] = r.feature;
    }
    let mut out = Split::default();
    for rows in panel.series().values() {
        let quiet: Vec<&Row> = rows
            .iter()
            .filter(|r| r.week < cut && !is_promotion(r))
            .collect();
        let events: Vec<&Row> = rows
            .iter()
            .filter(|r| is_promotion(r) && r.week < end)
            .collect();
        if quiet.is_empty() {
            out.skipped += events.len();
            continue;
        }
        let baseline = median(quiet.iter().map(|r| r.units).collect());
        let regular = median(quiet.iter().map(|r| r.price()).collect());
        let fitted: Vec<f64> = events
            .iter()
            .filter(|r| r.week < cut)
            .map(|r| (r.units / baseline).ln())
            .collect();
        let (sum, count) = (fitted.iter().sum::<f64>(), fitted.len() as f64);
        for r in events {
            let (deals, features) = &promos[&(r.store, r.week)];
            let before = r.week < cut;
            let past = if before {
                if count > 1.0 {
                    ((sum - (r.units / baseline).ln()) / (count - 1.0)).exp()
                } else {
                    f64::NAN
                }
            } else if count > 0.0 {
                (sum / count).exp()
            } else {
                f64::NAN
            };
            let event = Event {
                promotion: Promotion {
                    store: f64::from(r.store),
                    brand: r.product as usize,
                    regular_price: regular,
                    price: r.price(),
                    deal: r.deal,
                    feature: r.feature,
                    brand_prices: r.prices.clone(),
                    competitor_deals: deals.clone(),
                    competitor_features: features.clone(),
                    baseline_units: baseline,
                    unit_cost: r.unit_cost(),
                    past_lift: past,
                    costs,
                },
                units: r.units,
                week: r.week,
            };
            if before {
                out.fit.push(event);
            } else if r.week >= cut {
                out.eval.push(event);
            }
        }
    }
    out
}
