//! The model's arithmetic and its interface, in plain Rust with no dependencies.
//!
//! Everything here builds natively and for `wasm32-wasip2`: the component calls it with the
//! weights compiled in ([`Demand::builtin`]); the trainer calls it with freshly fitted tables to
//! evaluate and to compute the manifest's examples, so that the manifest, the report and the
//! component's `metadata()` come from one source.
//!
//! # Demand
//! For product `b` in store `s` (prices per ounce, natural logs):
//!
//! `ln units = a[s,b] + own[b]·ln p_b + Σ_g cross[b,g]·ln P_g(−b) + deal[b]·deal_b + feature[b]·feature_b`
//!
//! where `P_g(−b)` is the geometric mean price of competitor group `g` (its products other than
//! `b`; a group with no other product contributes nothing). Expected units are
//! `exp(ln units) × smear[b]` (the mean of the exponentiated training residuals, so that units are
//! unbiased on the training weeks). A store the model never saw uses the product's average
//! store intercept.
//!
//! # Optimisation
//! Per store, every product's price is chosen jointly (coordinate ascent over products on a grid of
//! candidate prices) to maximise
//!
//! `J = (1 − w)·Π / Π₀ + w·Q / Q₀`
//!
//! where `Π` and `Q` are the store's predicted gross profit `Σ (p − cost)·units` and units over
//! all its products at the candidate prices, `Π₀` and `Q₀` the same at today's prices (`Π₀` is
//! replaced by today's revenue when it is not positive), and `w` in 0..1 the weight of volume
//! (0 = profit only). Each price stays within its bounds: at most `max_change` (a fraction) from
//! today's price, at least `cost / (1 − min_margin_pct/100)`, and — when the model was trained
//! with observed ranges — within the range of prices the store charged for the product in the
//! training weeks (ignored when it does not meet the other bounds).

use core::fmt;

use crate::weights;

/// The model's name, as used in URLs (`/v2/models/price-optimizer`).
pub const NAME: &str = "price-optimizer";
/// The model's version.
pub const VERSION: &str = "1.0.2";
/// Default largest price change, a fraction of today's price (sent as a negative `max_change`).
pub const DEFAULT_MAX_CHANGE: f64 = 0.2;
/// Default minimum margin, percent of the shelf price (sent as a negative `min_margin_pct`).
pub const DEFAULT_MIN_MARGIN_PCT: f64 = 0.0;
/// Default weight of volume (sent as a negative `weight`): profit only.
pub const DEFAULT_WEIGHT: f64 = 0.0;
/// Most products a model can price (the trainer refuses more).
pub const MAX_PRODUCTS: usize = 64;
/// Most competitor groups (the trainer refuses more).
pub const MAX_GROUPS: usize = 13;
/// Candidate prices per product and sweep, geometric between the bounds.
pub const GRID: usize = 25;
/// Most coordinate-ascent sweeps over a store's products.
pub const SWEEPS: usize = 4;

/// One input or output of the model, independent of any binding's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    /// The tensor's name.
    pub name: &'static str,
    /// The Open Inference Protocol datatype: `FP64`, `INT64` or `BYTES`.
    pub datatype: &'static str,
    /// The shape; `-1` is the batch dimension.
    pub shape: Vec<i64>,
    /// Units and meaning.
    pub description: &'static str,
}

/// The input tensors, in order: name, datatype, description. One element per store × product;
/// the rows of one store form one joint pricing problem and must name each product once.
pub const INPUTS: [(&str, &str, &str); 10] = [
    (
        "store",
        "INT64",
        "Store identifier. The rows of one store are priced jointly; several stores may be sent \
         in one request. A store the model was not trained on uses the product's average store \
         effect and the chain-wide observed price range.",
    ),
    (
        "product",
        "INT64",
        "Product (brand) number 1..=N as in training (Dominick's orange juice: 1 Tropicana Premium \
         64oz, 2 Tropicana Premium 96oz, 3 Florida's Natural 64oz, 4 Tropicana 64oz, 5 Minute \
         Maid 64oz, 6 Minute Maid 96oz, 7 Citrus Hill 64oz, 8 Tree Fresh 64oz, 9 Florida Gold \
         64oz, 10 Dominick's 64oz, 11 Dominick's 128oz). Every store lists each of the N products \
         exactly once: competitors' prices enter each product's demand.",
    ),
    (
        "price",
        "FP64",
        "Today's shelf price, per ounce in the training data's currency (> 0).",
    ),
    (
        "unit_cost",
        "FP64",
        "Unit cost per ounce (> 0); send 0 or a negative number to derive it from margin_pct \
         instead.",
    ),
    (
        "margin_pct",
        "FP64",
        "Today's gross margin, percent of today's price (cost = price × (1 − margin_pct/100)); \
         used only when unit_cost is not positive; must then be below 100.",
    ),
    (
        "deal",
        "FP64",
        "Planned in-store deal for the week, 0 or 1 (held fixed; only prices are optimised).",
    ),
    (
        "feature",
        "FP64",
        "Planned feature advertising, share of the week 0..1 (held fixed).",
    ),
    (
        "max_change",
        "FP64",
        "Largest allowed price change, a fraction of today's price (0.2 = ±20%; 0 holds the \
         price); negative = the default 0.2.",
    ),
    (
        "min_margin_pct",
        "FP64",
        "Smallest allowed margin at the recommended price, percent of that price (0..100): the \
         price stays >= cost / (1 − min_margin_pct/100); negative = the default 0 (never below \
         cost). When the margin floor is above today's price × (1 + max_change), the price is \
         raised by max_change only.",
    ),
    (
        "weight",
        "FP64",
        "Weight w of volume in 0..1 against profit, per store (equal on a store's rows): the \
         optimiser maximises (1 − w)·profit/profit_today + w·units/units_today over the store's \
         products; 0 = profit only; negative = the default 0.",
    ),
];

/// The output tensors: name and description; each FP64, shape `[-1]`, one element per input row.
pub const OUTPUTS: [(&str, &str); 8] = [
    (
        "recommended_price",
        "Recommended shelf price per ounce, within the row's bounds.",
    ),
    (
        "units_recommended",
        "Expected units of the product at every product's recommended price (the store's joint \
         recommendation).",
    ),
    (
        "revenue_recommended",
        "Expected revenue at the recommended prices: recommended_price × units_recommended \
         (price per ounce × units, the data's units).",
    ),
    (
        "profit_recommended",
        "Expected gross profit at the recommended prices: (recommended_price − unit cost) × \
         units_recommended.",
    ),
    (
        "units_today",
        "Expected units at every product's price of today.",
    ),
    ("revenue_today", "Expected revenue at today's prices."),
    ("profit_today", "Expected gross profit at today's prices."),
    (
        "own_elasticity",
        "The product's own-price elasticity used (d ln units / d ln own price, store-independent).",
    ),
];

/// The inputs the model accepts.
pub fn input_specs() -> Vec<IoSpec> {
    INPUTS
        .iter()
        .map(|&(name, datatype, description)| IoSpec {
            name,
            datatype,
            shape: vec![-1],
            description,
        })
        .collect()
}

/// The outputs the model returns.
pub fn output_specs() -> Vec<IoSpec> {
    OUTPUTS
        .iter()
        .map(|&(name, description)| IoSpec {
            name,
            datatype: "FP64",
            shape: vec![-1],
            description,
        })
        .collect()
}

/// The model description: what it does, from what (`trained_on`) and how well (`figures`).
pub fn description(trained_on: &str, figures: &str) -> String {
    format!(
        "Recommends every product's shelf price in a store jointly, within a largest change from \
         today's price, a minimum margin and the prices the store has charged, maximising gross \
         profit, or (1 − w)·profit/profit_today + w·units/units_today for a volume weight w. \
         Demand: per-product log-log regressions of units on own price, competitor group price \
         indices, deal and feature, with store effects, partially pooled across products, \
         trained on {trained_on}. Returns expected units, revenue and profit at the recommended \
         and at today's prices, and the own-price elasticity. {figures}"
    )
}

/// The description of the built-in model.
pub fn builtin_description() -> String {
    description(weights::TRAINED_ON, weights::FIGURES)
}

/// A bad request row or store, with the row (0-based) it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fitted demand model, borrowed tables.
#[derive(Debug, Clone, Copy)]
pub struct Demand<'a> {
    /// Number of products N.
    pub products: usize,
    /// Number of competitor groups G.
    pub groups: usize,
    /// Each product's group, 0..G.
    pub group_of: &'a [usize],
    /// Per product (row-major, N × (G + 3)): own elasticity, one cross elasticity per group,
    /// deal, feature.
    pub coefficients: &'a [f64],
    /// Known stores, ascending.
    pub stores: &'a [u32],
    /// Store × product intercepts (row-major, stores × N); NaN where the store never sold it.
    pub intercepts: &'a [f64],
    /// Each product's average store intercept (for unknown stores).
    pub product_intercepts: &'a [f64],
    /// Each product's smearing factor (mean exp residual on training rows).
    pub smear: &'a [f64],
    /// Store × product lowest and highest training price (row-major, per ounce); NaN if unseen.
    /// Empty when the model does not constrain to observed ranges.
    pub low: &'a [f64],
    /// See `low`.
    pub high: &'a [f64],
    /// Each product's lowest and highest training price over all stores.
    pub product_low: &'a [f64],
    /// See `product_low`.
    pub product_high: &'a [f64],
}

/// The regressors of product `b` (after its store intercept), written into `out` (G + 3
/// values): ln own price, each group's competitor log price index (the mean log price of the
/// group's other products; 0 for a group with no other product), deal, feature. `log_prices`
/// holds every product's log price; `group_of` each product's group 0..`groups`.
pub fn regressors(
    group_of: &[usize],
    groups: usize,
    b: usize,
    log_prices: &[f64],
    deal: f64,
    feature: f64,
    out: &mut [f64],
) {
    out[0] = log_prices[b];
    for g in 0..groups {
        let (mut sum, mut n) = (0.0, 0usize);
        for (k, &lp) in log_prices.iter().enumerate() {
            if k != b && group_of[k] == g {
                sum += lp;
                n += 1;
            }
        }
        out[1 + g] = if n > 0 { sum / n as f64 } else { 0.0 };
    }
    out[1 + groups] = deal;
    out[2 + groups] = feature;
}

/// One product of a store's pricing problem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item {
    /// Product index, 0-based.
    pub product: usize,
    /// Today's price.
    pub price: f64,
    /// Unit cost.
    pub cost: f64,
    /// Planned deal flag.
    pub deal: f64,
    /// Planned feature share.
    pub feature: f64,
    /// Largest change, fraction of today's price.
    pub max_change: f64,
    /// Smallest margin, percent of the price.
    pub min_margin_pct: f64,
}

/// The outcome for one product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recommendation {
    /// Recommended price.
    pub price: f64,
    /// Expected units at the recommended prices.
    pub units: f64,
    /// Expected units at today's prices.
    pub units_today: f64,
    /// Unit cost.
    pub cost: f64,
    /// Today's price.
    pub price_today: f64,
    /// Own-price elasticity.
    pub own_elasticity: f64,
}

impl Recommendation {
    /// Revenue at the recommended prices.
    pub fn revenue(&self) -> f64 {
        self.price * self.units
    }
    /// Gross profit at the recommended prices.
    pub fn profit(&self) -> f64 {
        (self.price - self.cost) * self.units
    }
    /// Revenue at today's prices.
    pub fn revenue_today(&self) -> f64 {
        self.price_today * self.units_today
    }
    /// Gross profit at today's prices.
    pub fn profit_today(&self) -> f64 {
        (self.price_today - self.cost) * self.units_today
    }
}

/// How the optimiser searches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    /// Candidate prices per product and sweep.
    pub grid: usize,
    /// Most sweeps.
    pub sweeps: usize,
    /// Price all products jointly (true) or each with the others at today's prices (false).
    pub joint: bool,
    /// Keep prices within the store's observed training range (when the model has ranges).
    pub observed_range: bool,
}

impl Default for Search {
    fn default() -> Self {
        Search {
            grid: GRID,
            sweeps: SWEEPS,
            joint: true,
            observed_range: true,
        }
    }
}

impl Demand<'static> {
    /// The demand model compiled into the component.
    pub fn builtin() -> Demand<'static> {
        Demand {
            products: weights::PRODUCTS,
            groups: weights::GROUPS,
            group_of: &weights::GROUP_OF,
            coefficients: &weights::COEFFICIENTS,
            stores: &weights::STORES,
            intercepts: &weights::INTERCEPTS,
            product_intercepts: &weights::PRODUCT_INTERCEPTS,
            smear: &weights::SMEAR,
            low: &weights::LOW,
            high: &weights::HIGH,
            product_low: &weights::PRODUCT_LOW,
            product_high: &weights::PRODUCT_HIGH,
        }
    }
}

impl Demand<'_> {
    /// Coefficients per product: own, one per group, deal, feature.
    pub fn width(&self) -> usize {
        self.groups + 3
    }

    /// Product `b`'s coefficients.
    pub fn coef(&self, b: usize) -> &[f64] {
        let w = self.width();
        &self.coefficients[b * w..(b + 1) * w]
    }

    /// Product `b`'s own-price elasticity.
    pub fn own_elasticity(&self, b: usize) -> f64 {
        self.coef(b)[0]
    }

    /// The store's row in the store tables, if known.
    pub fn store_index(&self, store: u32) -> Option<usize> {
        self.stores.binary_search(&store).ok()
    }

    /// The store × product intercept, or the product's average for an unknown store.
    pub fn intercept(&self, store: Option<usize>, b: usize) -> f64 {
        store
            .map(|s| self.intercepts[s * self.products + b])
            .filter(|a| a.is_finite())
            .unwrap_or(self.product_intercepts[b])
    }

    /// The regressors of product `b`: see [`regressors`].
    pub fn regressors(
        &self,
        b: usize,
        log_prices: &[f64],
        deal: f64,
        feature: f64,
        out: &mut [f64],
    ) {
        regressors(
            self.group_of,
            self.groups,
            b,
            log_prices,
            deal,
            feature,
            out,
        );
    }

    /// Expected ln units (without the smearing factor).
    pub fn log_units(
        &self,
        store: Option<usize>,
        b: usize,
        log_prices: &[f64],
        deal: f64,
        feature: f64,
    ) -> f64 {
        let mut x = [0.0; MAX_GROUPS + 3];
        let w = self.width();
        let x = &mut x[..w];
        self.regressors(b, log_prices, deal, feature, x);
        self.intercept(store, b)
            + self
                .coef(b)
                .iter()
                .zip(x.iter())
                .map(|(c, v)| c * v)
                .sum::<f64>()
    }

    /// Expected units of every product of a store (indexed by product) at the given prices.
    pub fn units(&self, store: Option<usize>, items: &[Item], prices: &[f64], out: &mut [f64]) {
        let mut lp = [0.0; MAX_PRODUCTS];
        let lp = &mut lp[..self.products];
        for (k, p) in prices.iter().enumerate() {
            lp[k] = p.ln();
        }
        for it in items {
            let b = it.product;
            out[b] = self.log_units(store, b, lp, it.deal, it.feature).exp() * self.smear[b];
        }
    }

    /// The price bounds of one product: change, margin floor, and observed range.
    pub fn bounds(&self, store: Option<usize>, it: &Item, observed_range: bool) -> (f64, f64) {
        let hi_change = it.price * (1.0 + it.max_change);
        let lo_change = it.price * (1.0 - it.max_change).max(0.0);
        let floor = it.cost / (1.0 - it.min_margin_pct / 100.0);
        let mut lo = lo_change.max(floor);
        let mut hi = hi_change;
        if lo > hi {
            // The margin floor is out of reach: raise by the largest change allowed.
            lo = hi;
        }
        if observed_range && !self.low.is_empty() {
            let b = it.product;
            let (rlo, rhi) = match store {
                Some(s)
                    if self.low[s * self.products + b].is_finite()
                        && self.high[s * self.products + b].is_finite() =>
                {
                    (
                        self.low[s * self.products + b],
                        self.high[s * self.products + b],
                    )
                }
                _ => (self.product_low[b], self.product_high[b]),
            };
            let (a, z) = (lo.max(rlo), hi.min(rhi));
            if a <= z {
                lo = a;
                hi = z;
            }
        }
        (lo, hi)
    }

    /// Recommends the prices of one store's products. `items` lists each product once
    /// (checked by [`problems_from_rows`]); `weight` is the volume weight in 0..1.
    pub fn optimise(
        &self,
        store: u32,
        items: &[Item],
        weight: f64,
        search: &Search,
    ) -> Vec<Recommendation> {
        let n = self.products;
        let s = self.store_index(store);
        let mut today = vec![0.0; n];
        for it in items {
            today[it.product] = it.price;
        }
        let mut units0 = vec![0.0; n];
        self.units(s, items, &today, &mut units0);
        let profit = |prices: &[f64], units: &[f64]| -> (f64, f64, f64) {
            let (mut pi, mut q, mut r) = (0.0, 0.0, 0.0);
            for it in items {
                let b = it.product;
                pi += (prices[b] - it.cost) * units[b];
                q += units[b];
                r += prices[b] * units[b];
            }
            (pi, q, r)
        };
        let (pi0, q0, r0) = profit(&today, &units0);
        let pi_scale = if pi0 > 0.0 {
            pi0
        } else {
            r0.max(f64::MIN_POSITIVE)
        };
        let q_scale = q0.max(f64::MIN_POSITIVE);
        let bounds: Vec<(f64, f64)> = items
            .iter()
            .map(|it| self.bounds(s, it, search.observed_range))
            .collect();
        // Each product's candidate prices with their logs: the grid, then today's price when it
        // is within the bounds.
        let candidates: Vec<Vec<(f64, f64)>> = items
            .iter()
            .zip(&bounds)
            .map(|(it, &(lo, hi))| {
                let mut c: Vec<f64> = (0..search.grid.max(1))
                    .map(|i| {
                        if search.grid <= 1 || hi <= lo {
                            lo
                        } else {
                            lo * (hi / lo).powf(i as f64 / (search.grid - 1) as f64)
                        }
                    })
                    .collect();
                if it.price >= lo && it.price <= hi {
                    c.push(it.price);
                }
                // A candidate met earlier scores what it scored then, which cannot beat the
                // best so far: only the first of equal candidates is tried.
                let mut out: Vec<(f64, f64)> = Vec::with_capacity(c.len());
                for p in c {
                    if !out.iter().any(|o| o.0 == p) {
                        out.push((p, p.ln()));
                    }
                }
                out
            })
            .collect();
        // Start from today's prices, moved into the bounds.
        let mut current = today.clone();
        for (it, &(lo, hi)) in items.iter().zip(&bounds) {
            current[it.product] = it.price.clamp(lo, hi);
        }
        if items.is_empty() {
            return Vec::new();
        }
        let mut state = SearchState::new(self, s, items, &current);
        let scale = (pi_scale, q_scale);
        let b0 = items[0].product;
        // The objective at the prices searched from (`current`), and which products' scans
        // could find a move: a product's scan is a function of the other products' prices, and
        // a scan started from its own result moves nothing, so it is skipped until another
        // product moves.
        let mut value = state.objective(
            self,
            items,
            &current,
            (b0, current[b0], state.lp[b0]),
            weight,
            scale,
        );
        let mut stale = vec![true; items.len()];
        let mut chosen = current.clone();
        for _ in 0..search.sweeps.max(1) {
            let mut moved = false;
            for (i, (it, cands)) in items.iter().zip(&candidates).enumerate() {
                if !stale[i] {
                    continue;
                }
                let b = it.product;
                let (start_p, start_lp) = (current[b], state.lp[b]);
                let mut best_p = start_p;
                let mut best_lp = start_lp;
                let mut best = value;
                for &(p, lp) in cands {
                    // The start price scores the best it started from.
                    if p == start_p {
                        continue;
                    }
                    let v = state.objective(self, items, &current, (b, p, lp), weight, scale);
                    if v > best + 1e-12 * best.abs() {
                        best = v;
                        best_p = p;
                        best_lp = lp;
                    }
                }
                state.lp[b] = start_lp;
                if search.joint {
                    stale[i] = false;
                    if best_p != current[b] {
                        moved = true;
                        for (k, st) in stale.iter_mut().enumerate() {
                            *st |= k != i;
                        }
                        current[b] = best_p;
                        state.lp[b] = best_lp;
                        state.refresh(self, items);
                        value = best;
                    }
                } else {
                    chosen[b] = best_p;
                }
            }
            if !search.joint {
                current = chosen.clone();
                break;
            }
            if !moved {
                break;
            }
        }
        let mut units = vec![0.0; n];
        self.units(s, items, &current, &mut units);
        items
            .iter()
            .map(|it| Recommendation {
                price: current[it.product],
                units: units[it.product],
                units_today: units0[it.product],
                cost: it.cost,
                price_today: it.price,
                own_elasticity: self.own_elasticity(it.product),
            })
            .collect()
    }
}

/// One store's search in progress: every product's log price and regressors at the prices
/// searched from, so that a trial price of one product recomputes only the regressors it
/// changes. Every value is computed with the operations of [`Demand::units`] in the same order,
/// so a trial's objective is bit for bit the one the full computation gives for its prices.
struct SearchState {
    /// Log price per product: of the prices searched from, or of the trial.
    lp: Vec<f64>,
    /// Regressors per product (`width` each) at the prices searched from.
    x: Vec<f64>,
    /// Intercept per product.
    intercept: Vec<f64>,
    /// Each group's products, ascending.
    members: Vec<Vec<usize>>,
}

impl SearchState {
    fn new(d: &Demand<'_>, store: Option<usize>, items: &[Item], prices: &[f64]) -> Self {
        let mut members = vec![Vec::new(); d.groups];
        for k in 0..d.products {
            members[d.group_of[k]].push(k);
        }
        let mut state = SearchState {
            lp: prices.iter().map(|p| p.ln()).collect(),
            x: vec![0.0; d.products * d.width()],
            intercept: (0..d.products).map(|k| d.intercept(store, k)).collect(),
            members,
        };
        state.refresh(d, items);
        state
    }

    /// Recomputes every item's regressors from the log prices.
    fn refresh(&mut self, d: &Demand<'_>, items: &[Item]) {
        let w = d.width();
        for it in items {
            let b = it.product;
            d.regressors(
                b,
                &self.lp,
                it.deal,
                it.feature,
                &mut self.x[b * w..(b + 1) * w],
            );
        }
    }

    /// The objective `(1 − weight)·Π/scale.0 + weight·Q/scale.1` at `prices` with product `b`
    /// at `p` (log `lp`) instead; leaves `self.lp[b] = lp`.
    ///
    /// Bit for bit the objective `Demand::units` gives at the trial's prices: product k's
    /// regressors are its row of `x` with the two the trial changes replaced (k's own log price
    /// when k is `b`; else the index of `b`'s group), with the same sums in the same order.
    #[allow(clippy::too_many_arguments)]
    fn objective(
        &mut self,
        d: &Demand<'_>,
        items: &[Item],
        prices: &[f64],
        (b, p, lp): (usize, f64, f64),
        weight: f64,
        scale: (f64, f64),
    ) -> f64 {
        self.lp[b] = lp;
        let w = d.width();
        let gb = d.group_of[b];
        // Group gb's competitor index of product k, as `regressors` sums it: the mean log price of
        // the group's other members. For a product outside the group that is every member, the same
        // value for all of them, summed once here.
        let group = self.members.get(gb).map(|m| m.as_slice());
        let outside = group.map(|m| competitor_index(&self.lp, m, usize::MAX));
        let (mut pi, mut q) = (0.0, 0.0);
        for it in items {
            let k = it.product;
            let row = &self.x[k * w..(k + 1) * w];
            // The regressors the trial changes: b's own log price, and the others' index of b's
            // group.
            let own = if k == b { lp } else { row[0] };
            let index = match (group, outside) {
                (Some(m), Some(all)) if k != b => {
                    if d.group_of[k] == gb {
                        competitor_index(&self.lp, m, k)
                    } else {
                        all
                    }
                }
                _ => row[1 + gb],
            };
            let log_units = self.intercept[k]
                + d.coef(k)
                    .iter()
                    .zip(row)
                    .enumerate()
                    .map(|(i, (c, v))| {
                        c * if i == 0 {
                            own
                        } else if i == 1 + gb {
                            index
                        } else {
                            *v
                        }
                    })
                    .sum::<f64>();
            let units = log_units.exp() * d.smear[k];
            let price = if k == b { p } else { prices[k] };
            pi += (price - it.cost) * units;
            q += units;
        }
        (1.0 - weight) * pi / scale.0 + weight * q / scale.1
    }
}

/// The mean of `lp` over `members` other than `k`, summed in the members' order (as
/// [`regressors`] sums it); 0 when there is none.
fn competitor_index(lp: &[f64], members: &[usize], k: usize) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for &j in members {
        if j != k {
            sum += lp[j];
            n += 1;
        }
    }
    if n > 0 { sum / n as f64 } else { 0.0 }
}

/// One store's problem assembled from request rows: the store, its items and the rows they came
/// from, and its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Store identifier.
    pub store: u32,
    /// The products, in the order of the request rows.
    pub items: Vec<Item>,
    /// The request row of each item.
    pub rows: Vec<usize>,
    /// Volume weight.
    pub weight: f64,
}

/// The request's columns, one element per row, in the order of [`INPUTS`].
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    /// `store`.
    pub store: &'a [f64],
    /// `product`.
    pub product: &'a [f64],
    /// `price`.
    pub price: &'a [f64],
    /// `unit_cost`.
    pub unit_cost: &'a [f64],
    /// `margin_pct`.
    pub margin_pct: &'a [f64],
    /// `deal`.
    pub deal: &'a [f64],
    /// `feature`.
    pub feature: &'a [f64],
    /// `max_change`.
    pub max_change: &'a [f64],
    /// `min_margin_pct`.
    pub min_margin_pct: &'a [f64],
    /// `weight`.
    pub weight: &'a [f64],
}

impl<'a> Columns<'a> {
    /// The columns from one vector per input, in the order of [`INPUTS`].
    pub fn from_ordered(cols: &'a [Vec<f64>]) -> Columns<'a> {
        Columns {
            store: &cols[0],
            product: &cols[1],
            price: &cols[2],
            unit_cost: &cols[3],
            margin_pct: &cols[4],
            deal: &cols[5],
            feature: &cols[6],
            max_change: &cols[7],
            min_margin_pct: &cols[8],
            weight: &cols[9],
        }
    }
}

/// The output columns of the recommendations, in the order of [`OUTPUTS`].
pub fn output_columns(recs: &[Recommendation]) -> [Vec<f64>; 8] {
    let col = |f: fn(&Recommendation) -> f64| recs.iter().map(f).collect::<Vec<_>>();
    [
        col(|r| r.price),
        col(|r| r.units),
        col(Recommendation::revenue),
        col(Recommendation::profit),
        col(|r| r.units_today),
        col(Recommendation::revenue_today),
        col(Recommendation::profit_today),
        col(|r| r.own_elasticity),
    ]
}

/// Checks the rows and groups them by store (stores in order of first appearance). Errors name
/// the row and the input.
pub fn problems_from_rows(c: &Columns<'_>, products: usize) -> Result<Vec<Problem>, InputError> {
    let n = c.store.len();
    let all = [
        ("product", c.product),
        ("price", c.price),
        ("unit_cost", c.unit_cost),
        ("margin_pct", c.margin_pct),
        ("deal", c.deal),
        ("feature", c.feature),
        ("max_change", c.max_change),
        ("min_margin_pct", c.min_margin_pct),
        ("weight", c.weight),
    ];
    for (name, col) in all {
        if col.len() != n {
            return Err(InputError(format!(
                "input \"{name}\" has {} elements but \"store\" has {n}; every input has one \
                 element per row",
                col.len()
            )));
        }
    }
    let mut problems: Vec<Problem> = Vec::new();
    for i in 0..n {
        let bad =
            |name: &str, v: f64, why: &str| Err(InputError(format!("row {i}: {name} = {v} {why}")));
        for (name, col) in [("store", c.store)].into_iter().chain(all) {
            if !col[i].is_finite() {
                return bad(name, col[i], "is not a finite number");
            }
        }
        let store = c.store[i];
        if store < 0.0 || store.fract() != 0.0 || store > f64::from(u32::MAX) {
            return bad("store", store, "is not a non-negative integer");
        }
        let product = c.product[i];
        if product < 1.0 || product.fract() != 0.0 || product > products as f64 {
            return bad(
                "product",
                product,
                &format!("is not a product number 1..={products}"),
            );
        }
        let price = c.price[i];
        if price <= 0.0 {
            return bad("price", price, "is not a positive price");
        }
        let cost = if c.unit_cost[i] > 0.0 {
            c.unit_cost[i]
        } else {
            let m = c.margin_pct[i];
            if m >= 100.0 {
                return bad(
                    "margin_pct",
                    m,
                    "must be below 100 (unit_cost is not positive, so the cost comes from it)",
                );
            }
            price * (1.0 - m / 100.0)
        };
        if !(0.0..=1.0).contains(&c.deal[i]) {
            return bad("deal", c.deal[i], "is not in 0..1");
        }
        if !(0.0..=1.0).contains(&c.feature[i]) {
            return bad("feature", c.feature[i], "is not a share 0..1");
        }
        let max_change = if c.max_change[i] < 0.0 {
            DEFAULT_MAX_CHANGE
        } else {
            c.max_change[i]
        };
        if max_change >= 1.0 {
            return bad(
                "max_change",
                max_change,
                "must be below 1 (a fraction of today's price)",
            );
        }
        let min_margin_pct = if c.min_margin_pct[i] < 0.0 {
            DEFAULT_MIN_MARGIN_PCT
        } else {
            c.min_margin_pct[i]
        };
        if min_margin_pct >= 100.0 {
            return bad("min_margin_pct", min_margin_pct, "must be below 100");
        }
        let weight = if c.weight[i] < 0.0 {
            DEFAULT_WEIGHT
        } else {
            c.weight[i]
        };
        if weight > 1.0 {
            return bad("weight", weight, "is not in 0..1");
        }
        let item = Item {
            product: product as usize - 1,
            price,
            cost,
            deal: c.deal[i],
            feature: c.feature[i],
            max_change,
            min_margin_pct,
        };
        let store = store as u32;
        match problems.iter_mut().find(|p| p.store == store) {
            Some(p) => {
                if let Some(j) = p.items.iter().position(|it| it.product == item.product) {
                    return Err(InputError(format!(
                        "row {i}: store {store} lists product {product} again (first at row {})",
                        p.rows[j]
                    )));
                }
                if p.weight != weight {
                    return Err(InputError(format!(
                        "row {i}: weight = {weight} differs from store {store}'s weight {} at \
                         row {}; a store's products are priced under one weight",
                        p.weight, p.rows[0]
                    )));
                }
                p.items.push(item);
                p.rows.push(i);
            }
            None => problems.push(Problem {
                store,
                items: vec![item],
                rows: vec![i],
                weight,
            }),
        }
    }
    for p in &problems {
        if p.items.len() != products {
            let missing: Vec<String> = (0..products)
                .filter(|b| !p.items.iter().any(|it| it.product == *b))
                .map(|b| (b + 1).to_string())
                .collect();
            return Err(InputError(format!(
                "store {} (first at row {}) lacks products {}: each store lists all {products} \
                 products, since competitors' prices enter every product's demand (send \
                 max_change = 0 to hold a price)",
                p.store,
                p.rows[0],
                missing.join(", ")
            )));
        }
    }
    Ok(problems)
}

/// Answers a whole request: each row's recommendation, in row order.
pub fn recommend_rows(
    demand: &Demand<'_>,
    columns: &Columns<'_>,
) -> Result<Vec<Recommendation>, InputError> {
    let problems = problems_from_rows(columns, demand.products)?;
    let mut out = vec![None; columns.store.len()];
    for p in &problems {
        let recs = demand.optimise(p.store, &p.items, p.weight, &Search::default());
        for (row, rec) in p.rows.iter().zip(recs) {
            out[*row] = Some(rec);
        }
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every row belongs to a store"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two products in two groups: own elasticity −3 and −2, cross +1 and +0.5.
    fn demand() -> Demand<'static> {
        Demand {
            products: 2,
            groups: 2,
            group_of: &[0, 1],
            coefficients: &[-3.0, 0.0, 1.0, 0.5, 0.2, -2.0, 0.5, 0.0, 0.3, 0.1],
            stores: &[5],
            intercepts: &[1.0, 2.0],
            product_intercepts: &[0.5, 1.5],
            smear: &[1.0, 1.0],
            low: &[0.8, 0.8],
            high: &[1.1, 1.3],
            product_low: &[0.5, 0.5],
            product_high: &[2.0, 2.0],
        }
    }

    fn item(product: usize, price: f64, cost: f64) -> Item {
        Item {
            product,
            price,
            cost,
            deal: 0.0,
            feature: 0.0,
            max_change: 0.2,
            min_margin_pct: 0.0,
        }
    }

    #[test]
    fn demand_follows_the_log_log_formula() {
        let d = demand();
        let lp = [1.2f64.ln(), 0.9f64.ln()];
        let want = 1.0 - 3.0 * lp[0] + 1.0 * lp[1] + 0.5;
        assert!((d.log_units(Some(0), 0, &lp, 1.0, 0.0) - want).abs() < 1e-12);
        // Unknown store: the product's average intercept.
        let want = 0.5 - 3.0 * lp[0] + 1.0 * lp[1];
        assert!((d.log_units(None, 0, &lp, 0.0, 0.0) - want).abs() < 1e-12);
    }

    #[test]
    fn recommendations_respect_every_bound_and_do_not_lose_predicted_profit() {
        let d = demand();
        let items = [item(0, 1.0, 0.6), item(1, 1.0, 0.3)];
        let recs = d.optimise(5, &items, 0.0, &Search::default());
        let (mut pi, mut pi0) = (0.0, 0.0);
        for (r, it) in recs.iter().zip(&items) {
            let (lo, hi) = d.bounds(Some(0), it, true);
            assert!(r.price >= lo - 1e-12 && r.price <= hi + 1e-12, "{r:?}");
            assert!(r.price >= 0.8 - 1e-12 && r.price <= 1.2 + 1e-12);
            pi += r.profit();
            pi0 += r.profit_today();
        }
        assert!(pi >= pi0, "{pi} < {pi0}");
        // The grid search finds the optimum of a brute-force search over the feasible box
        // (product 0: 0.8..1.1, its observed range; product 1: 0.8..1.2, its change bound).
        let mut best = (f64::MIN, 0.0, 0.0);
        for i in 0..=300 {
            for j in 0..=500 {
                let p = [0.8 + 0.3 * i as f64 / 300.0, 0.8 + 0.4 * j as f64 / 500.0];
                let mut u = [0.0; 2];
                d.units(Some(0), &items, &p, &mut u);
                let v = (p[0] - 0.6) * u[0] + (p[1] - 0.3) * u[1];
                if v > best.0 {
                    best = (v, p[0], p[1]);
                }
            }
        }
        assert!(pi >= best.0 * 0.999, "{pi} vs brute force {}", best.0);
    }

    #[test]
    fn the_volume_weight_lowers_prices_and_raises_units() {
        let d = demand();
        let items = [item(0, 1.0, 0.5), item(1, 1.0, 0.5)];
        let s = Search::default();
        let profit_only = d.optimise(5, &items, 0.0, &s);
        let volume = d.optimise(5, &items, 1.0, &s);
        let q = |r: &[Recommendation]| r.iter().map(|x| x.units).sum::<f64>();
        assert!(q(&volume) > q(&profit_only));
        assert!(
            volume
                .iter()
                .zip(&profit_only)
                .all(|(v, p)| v.price <= p.price)
        );
    }

    #[test]
    fn an_unreachable_margin_floor_raises_the_price_by_the_largest_change() {
        let d = demand();
        let mut it = item(0, 1.0, 1.5);
        it.min_margin_pct = 10.0;
        let (lo, hi) = d.bounds(Some(0), &it, true);
        assert!(
            (lo - 1.2).abs() < 1e-12 && (hi - 1.2).abs() < 1e-12,
            "{lo} {hi}"
        );
        it.max_change = 0.0;
        assert_eq!(d.bounds(None, &it, true), (1.0, 1.0));
    }

    /// The search as first written, every trial re-evaluating the store's demand from its
    /// prices: [`Demand::optimise`] must recommend bit for bit what it does.
    #[allow(clippy::float_cmp)]
    fn reference(
        d: &Demand<'_>,
        store: u32,
        items: &[Item],
        weight: f64,
        search: &Search,
    ) -> Vec<Recommendation> {
        let n = d.products;
        let s = d.store_index(store);
        let mut today = vec![0.0; n];
        for it in items {
            today[it.product] = it.price;
        }
        let mut units0 = vec![0.0; n];
        d.units(s, items, &today, &mut units0);
        let profit = |prices: &[f64], units: &[f64]| -> (f64, f64, f64) {
            let (mut pi, mut q, mut r) = (0.0, 0.0, 0.0);
            for it in items {
                let b = it.product;
                pi += (prices[b] - it.cost) * units[b];
                q += units[b];
                r += prices[b] * units[b];
            }
            (pi, q, r)
        };
        let (pi0, q0, r0) = profit(&today, &units0);
        let pi_scale = if pi0 > 0.0 {
            pi0
        } else {
            r0.max(f64::MIN_POSITIVE)
        };
        let q_scale = q0.max(f64::MIN_POSITIVE);
        let objective = |prices: &[f64], units: &mut [f64]| -> f64 {
            d.units(s, items, prices, units);
            let (pi, q, _) = profit(prices, units);
            (1.0 - weight) * pi / pi_scale + weight * q / q_scale
        };

        let bounds: Vec<(f64, f64)> = items
            .iter()
            .map(|it| d.bounds(s, it, search.observed_range))
            .collect();
        let candidates: Vec<Vec<f64>> = items
            .iter()
            .zip(&bounds)
            .map(|(it, &(lo, hi))| {
                let mut c: Vec<f64> = (0..search.grid.max(1))
                    .map(|i| {
                        if search.grid <= 1 || hi <= lo {
                            lo
                        } else {
                            lo * (hi / lo).powf(i as f64 / (search.grid - 1) as f64)
                        }
                    })
                    .collect();
                if it.price >= lo && it.price <= hi {
                    c.push(it.price);
                }
                c
            })
            .collect();
        // Start from today's prices, moved into the bounds.
        let mut current = today.clone();
        for (it, &(lo, hi)) in items.iter().zip(&bounds) {
            current[it.product] = it.price.clamp(lo, hi);
        }
        let start = current.clone();
        let mut scratch = vec![0.0; n];
        let mut chosen = current.clone();
        for _ in 0..search.sweeps.max(1) {
            let mut moved = false;
            for (it, cands) in items.iter().zip(&candidates) {
                let b = it.product;
                let mut trial = if search.joint {
                    current.clone()
                } else {
                    start.clone()
                };
                trial[b] = current[b];
                let mut best_p = trial[b];
                let mut best = objective(&trial, &mut scratch);
                for &p in cands {
                    trial[b] = p;
                    let v = objective(&trial, &mut scratch);
                    if v > best + 1e-12 * best.abs() {
                        best = v;
                        best_p = p;
                    }
                }
                if search.joint {
                    if best_p != current[b] {
                        moved = true;
                    }
                    current[b] = best_p;
                } else {
                    chosen[b] = best_p;
                }
            }
            if !search.joint {
                current = chosen.clone();
                break;
            }
            if !moved {
                break;
            }
        }
        let mut units = vec![0.0; n];
        d.units(s, items, &current, &mut units);
        items
            .iter()
            .map(|it| Recommendation {
                price: current[it.product],
                units: units[it.product],
                units_today: units0[it.product],
                cost: it.cost,
                price_today: it.price,
                own_elasticity: d.own_elasticity(it.product),
            })
            .collect()
    }

    #[test]
    fn the_incremental_search_recommends_exactly_what_the_full_search_does() {
        // A small deterministic generator (no dependency): xorshift64*.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        };
        let builtin = Demand::builtin();
        let small = demand();
        let mut tried = 0;
        for case in 0..400 {
            let d = if case % 4 == 0 { &small } else { &builtin };
            let store = if uniform() < 0.9 && !d.stores.is_empty() {
                d.stores[(uniform() * d.stores.len() as f64) as usize % d.stores.len()]
            } else {
                999_999
            };
            let items: Vec<Item> = (0..d.products)
                .map(|b| {
                    let (lo, hi) = (d.product_low[b], d.product_high[b]);
                    let price = lo + (hi - lo) * uniform();
                    Item {
                        product: b,
                        price,
                        cost: price * (0.4 + 0.7 * uniform()),
                        deal: f64::from(uniform() < 0.3),
                        feature: if uniform() < 0.2 { uniform() } else { 0.0 },
                        max_change: [0.0, 0.05, 0.2, 0.5][(uniform() * 4.0) as usize % 4],
                        min_margin_pct: if uniform() < 0.3 {
                            30.0 * uniform()
                        } else {
                            0.0
                        },
                    }
                })
                .collect();
            let weight = [0.0, 0.0, 0.3, 1.0][(uniform() * 4.0) as usize % 4];
            let search = Search {
                grid: [1, 2, 7, GRID][(uniform() * 4.0) as usize % 4],
                sweeps: [1, SWEEPS, 10][(uniform() * 3.0) as usize % 3],
                joint: uniform() < 0.8,
                observed_range: uniform() < 0.7,
            };
            let got = d.optimise(store, &items, weight, &search);
            let want = reference(d, store, &items, weight, &search);
            assert_eq!(got, want, "case {case}: {search:?}, weight {weight}");
            tried += 1;
        }
        assert_eq!(tried, 400);
    }

    fn columns(v: &[Vec<f64>; 10]) -> Columns<'_> {
        Columns::from_ordered(v)
    }

    #[test]
    fn rows_are_grouped_by_store_with_defaults_and_margins() {
        let v = [
            vec![5.0, 7.0, 5.0, 7.0],
            vec![2.0, 1.0, 1.0, 2.0],
            vec![1.0, 1.0, 2.0, 1.0],
            vec![0.5, -1.0, 0.0, 0.4],
            vec![0.0, 25.0, 40.0, 0.0],
            vec![0.0; 4],
            vec![0.0; 4],
            vec![-1.0, 0.1, -1.0, 0.1],
            vec![-1.0; 4],
            vec![-1.0, 0.5, -1.0, 0.5],
        ];
        let p = problems_from_rows(&columns(&v), 2).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].store, p[0].rows.clone(), p[0].weight),
            (5, vec![0, 2], 0.0)
        );
        assert_eq!(p[0].items[1].product, 0);
        assert!((p[0].items[1].cost - 1.2).abs() < 1e-12);
        assert_eq!(p[0].items[0].max_change, DEFAULT_MAX_CHANGE);
        assert!((p[1].items[0].cost - 0.75).abs() < 1e-12);
        assert_eq!(p[1].weight, 0.5);
        let recs = recommend_rows(&demand(), &columns(&v)).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[2].price_today, 2.0);
    }

    #[test]
    fn bad_rows_are_named() {
        let good = [
            vec![5.0, 5.0],
            vec![1.0, 2.0],
            vec![1.0, 1.0],
            vec![0.5, 0.5],
            vec![0.0, 0.0],
            vec![0.0; 2],
            vec![0.0; 2],
            vec![-1.0; 2],
            vec![-1.0; 2],
            vec![0.0; 2],
        ];
        let err = |f: &dyn Fn(&mut [Vec<f64>; 10])| {
            let mut v = good.clone();
            f(&mut v);
            problems_from_rows(&columns(&v), 2).unwrap_err().0
        };
        assert!(err(&|v| v[1][1] = 3.0).starts_with("row 1: product = 3 is not a product"));
        assert!(err(&|v| v[2][0] = 0.0).starts_with("row 0: price = 0"));
        assert!(err(&|v| v[1][1] = 1.0).contains("lists product 1 again (first at row 0)"));
        assert!(err(&|v| v[9][1] = 0.5).contains("weight = 0.5 differs"));
        assert!(err(&|v| v[0][1] = 6.0).contains("lacks products 2"));
        assert!(
            err(&|v| {
                v[3][0] = -1.0;
                v[4][0] = 100.0;
            })
            .starts_with("row 0: margin_pct = 100")
        );
        assert!(err(&|v| v[9][0] = f64::NAN).contains("weight = NaN is not a finite number"));
    }
}
