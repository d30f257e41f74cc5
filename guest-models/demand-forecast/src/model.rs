//! The model's arithmetic and its interface, in plain Rust with no dependencies.
//!
//! Everything here builds natively and for `wasm32-wasip2`: the component calls it with the
//! weights compiled in ([`Forecaster::builtin`]); the trainer calls it with freshly fitted trees,
//! to build its training rows, to evaluate, and to compute the manifest's examples, so that the
//! features, the forecasts and the interface come from one source.
//!
//! One request row is one store × brand at a forecast origin (the last week with known sales):
//! its recent weekly history and the planned prices, deals and feature ads of the next
//! [`HORIZON`] weeks. The forecast of week `origin + h` is direct (no forecast is fed back): a
//! gradient-boosted tree ensemble predicts the log of units relative to the row's history level
//! (the mean log units of its observed history weeks) from [`feature_names`]; the forecast is
//! `exp(level + trees + shift)`, where the per-horizon level correction `shift` and the 80%
//! interval's 10% and 90% quantiles of log residuals are measured on validation weeks the trees
//! were not fitted on (the correction lifts the median-like exp of a log forecast towards the
//! sums that weekly and chain totals need).

use core::fmt;

use trademl_sdk::trees::Ensemble;

use crate::weights;

/// The model's name, as used in URLs (`/v2/models/demand-forecast`).
pub const NAME: &str = "demand-forecast";
/// The model's version.
pub const VERSION: &str = "2.0.1";
/// Weeks forecast per row.
pub const HORIZON: usize = 4;
/// Weeks of history per row, oldest first; the last is the origin week.
pub const HISTORY: usize = 26;

/// One input or output of the model, independent of any binding's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    /// The tensor's name.
    pub name: &'static str,
    /// The Open Inference Protocol datatype.
    pub datatype: &'static str,
    /// The shape; `-1` is the batch dimension.
    pub shape: Vec<i64>,
    /// Units and meaning.
    pub description: String,
}

/// The inputs the model accepts for a panel of `products` brands.
pub fn input_specs(products: usize) -> Vec<IoSpec> {
    let h = HISTORY as i64;
    let f = HORIZON as i64;
    let io = |name, shape: Vec<i64>, description: String| IoSpec {
        name,
        datatype: "FP64",
        shape,
        description,
    };
    vec![
        io(
            "store",
            vec![-1],
            "Store number (as in the training data; a store the model has not seen is forecast \
             from its history with the other features)."
                .into(),
        ),
        io(
            "brand",
            vec![-1],
            format!(
                "Brand (product) number, 1..={products}: the product whose units are forecast."
            ),
        ),
        io(
            "history_units",
            vec![-1, h],
            format!(
                "Units sold in each of the {HISTORY} weeks up to and including the origin week, \
                 oldest first (the last column is the origin week, the most recent week with known \
                 sales). A negative value (e.g. -1) marks a week with no record; at least one \
                 week must have units > 0."
            ),
        ),
        io(
            "history_price",
            vec![-1, h],
            format!(
                "The brand's own shelf price in each of those {HISTORY} weeks (in the unit of the training data: USD per ounce for Dominick's), \
                 oldest first; ignored in weeks with no record (send any number, e.g. 0)."
            ),
        ),
        io(
            "history_deal",
            vec![-1, h],
            format!(
                "In-store deal flag (0 or 1) of the brand in each of those {HISTORY} weeks; \
                 ignored in weeks with no record."
            ),
        ),
        io(
            "history_feature",
            vec![-1, h],
            format!(
                "Feature-advertising share (0..1) of the brand in each of those {HISTORY} weeks; \
                 ignored in weeks with no record."
            ),
        ),
        io(
            "planned_prices",
            vec![-1, f * products as i64],
            format!(
                "Planned shelf prices (> 0, in the unit of history_price) of all {products} brands in the store in \
                 each of the next {HORIZON} weeks, week-major: columns 0..{products} are week 1's \
                 prices of brands 1..={products}, the next {products} week 2's, and so on."
            ),
        ),
        io(
            "planned_deals",
            vec![-1, f * products as i64],
            format!(
                "Planned in-store deal flags (0 or 1) of all {products} brands in the store in \
                 each of the next {HORIZON} weeks, week-major as planned_prices: the forecast \
                 brand's own deals and its competitors' (a competitor's deal draws units away)."
            ),
        ),
        io(
            "planned_features",
            vec![-1, f * products as i64],
            format!(
                "Planned feature-advertising shares (0..1) of all {products} brands in the store \
                 in each of the next {HORIZON} weeks, week-major as planned_prices."
            ),
        ),
    ]
}

/// The outputs the model returns.
pub fn output_specs() -> Vec<IoSpec> {
    let f = HORIZON as i64;
    let io = |name, description: String| IoSpec {
        name,
        datatype: "FP64",
        shape: vec![-1, f],
        description,
    };
    vec![
        io(
            "forecast",
            format!(
                "Forecast units of the brand in the store in each of the next {HORIZON} weeks \
                 (column h-1 is week origin + h)."
            ),
        ),
        io(
            "lower_80",
            format!(
                "Lower bound of the 80% forecast interval for each of the next {HORIZON} weeks \
                 (the 10% quantile)."
            ),
        ),
        io(
            "upper_80",
            format!(
                "Upper bound of the 80% forecast interval for each of the next {HORIZON} weeks \
                 (the 90% quantile)."
            ),
        ),
    ]
}

/// The model description: what it predicts, from what (`trained_on`) and how well (`figures`).
pub fn description(trained_on: &str, figures: &str) -> String {
    format!(
        "Forecasts a store's weekly units of a brand for the next {HORIZON} weeks at the planned \
         prices, deals and feature ads, with an 80% interval, from the last {HISTORY} weeks of \
         units, price and promotions: gradient-boosted trees on log units relative to the \
         history's level (lags, own price against its usual level and against competitors, own \
         and competitors' promotions of the target week), trained on {trained_on}. {figures}"
    )
}

/// The description of the built-in model.
pub fn builtin_description() -> String {
    description(weights::TRAINED_ON, weights::FIGURES)
}

/// One request row: a store × brand at a forecast origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Store number.
    pub store: f64,
    /// Brand number, 1-based.
    pub brand: usize,
    /// Units of the [`HISTORY`] weeks up to the origin, oldest first; NaN = no record.
    pub units: [f64; HISTORY],
    /// Own shelf price of those weeks (NaN = no record).
    pub price: [f64; HISTORY],
    /// Deal flag of those weeks.
    pub deal: [f64; HISTORY],
    /// Feature share of those weeks.
    pub feature: [f64; HISTORY],
    /// Planned prices of every brand, `[week][brand - 1]`.
    pub planned_prices: [Vec<f64>; HORIZON],
    /// Planned deal flags of every brand, `[week][brand - 1]`.
    pub planned_deals: [Vec<f64>; HORIZON],
    /// Planned feature shares of every brand, `[week][brand - 1]`.
    pub planned_features: [Vec<f64>; HORIZON],
}

/// Why a row was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The row, counted from 0.
    pub row: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}: {}", self.row, self.message)
    }
}

impl std::error::Error for InputError {}

impl Series {
    /// The brand's own planned deal flag in planned week index `h` (its column of
    /// `planned_deals`).
    pub fn planned_deal(&self, h: usize) -> f64 {
        self.planned_deals[h][self.brand - 1]
    }

    /// The brand's own planned feature share in planned week index `h`.
    pub fn planned_feature(&self, h: usize) -> f64 {
        self.planned_features[h][self.brand - 1]
    }

    /// Checks the row for a panel of `products` brands; `row` is named in the error.
    pub fn validate(&self, row: usize, products: usize) -> Result<(), InputError> {
        let fail = |message: String| Err(InputError { row, message });
        if !self.store.is_finite() {
            return fail(format!("store = {} is not a finite number", self.store));
        }
        if self.brand == 0 || self.brand > products {
            return fail(format!(
                "brand = {} is not a brand 1..={products}",
                self.brand
            ));
        }
        if !self.units.iter().any(|&u| u > 0.0) {
            return fail(
                "history_units has no week with units > 0: at least one observed week is needed"
                    .into(),
            );
        }
        for w in 0..HISTORY {
            if self.units[w].is_nan() {
                continue;
            }
            if !(self.price[w].is_finite() && self.price[w] > 0.0) {
                return fail(format!(
                    "history_price[{w}] = {} is not a positive price (week {w} has units {})",
                    self.price[w], self.units[w]
                ));
            }
            for (name, v) in [
                ("history_deal", self.deal[w]),
                ("history_feature", self.feature[w]),
            ] {
                if !v.is_finite() {
                    return fail(format!("{name}[{w}] = {v} is not a finite number"));
                }
            }
        }
        for h in 0..HORIZON {
            if self.planned_prices[h].len() != products {
                return fail(format!(
                    "planned prices of week {} give {} brands, expected {products}",
                    h + 1,
                    self.planned_prices[h].len()
                ));
            }
            if let Some((k, p)) = self.planned_prices[h]
                .iter()
                .enumerate()
                .find(|(_, p)| !(p.is_finite() && **p > 0.0))
            {
                return fail(format!(
                    "planned_prices: week {} brand {} = {p} is not a positive price",
                    h + 1,
                    k + 1
                ));
            }
            for (name, v) in [
                ("planned_deals", &self.planned_deals[h]),
                ("planned_features", &self.planned_features[h]),
            ] {
                if v.len() != products {
                    return fail(format!(
                        "{name} of week {} give {} brands, expected {products}",
                        h + 1,
                        v.len()
                    ));
                }
                if let Some((k, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                    return fail(format!(
                        "{name}: week {} brand {} = {x} is not a finite number",
                        h + 1,
                        k + 1
                    ));
                }
            }
        }
        Ok(())
    }

    /// The history level: mean log units over the observed weeks.
    pub fn level(&self) -> f64 {
        let (s, n) = self
            .units
            .iter()
            .filter(|u| **u > 0.0)
            .fold((0.0, 0.0), |(s, n), u| (s + u.ln(), n + 1.0));
        s / n
    }
}

/// The names of the features the trees split on, for a panel of `products` brands.
pub fn feature_names(products: usize) -> Vec<String> {
    let mut names: Vec<String> = [
        "store",
        "brand",
        "horizon",
        "level",
        "lag0",
        "lag1",
        "lag2",
        "lag3",
        "mean_last4",
        "mean_last13",
        "sd_history",
        "base_level",
        "deal_share_history",
        "log_price",
        "price_vs_usual",
        "price_vs_competitors",
        "deal",
        "feature",
        "deal_previous_week",
        "feature_previous_week",
        "deal_origin",
        "feature_origin",
        "price_vs_usual_origin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend((1..=products).map(|k| format!("price{k}_vs_own")));
    names.push("competitors_deal_share".into());
    names.push("competitors_feature_share".into());
    names.extend((1..=products).map(|k| format!("deal{k}")));
    names.extend((1..=products).map(|k| format!("feature{k}")));
    names
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = values.fold((0.0, 0.0), |(s, n), v| (s + v, n + 1.0));
    if n > 0.0 { s / n } else { f64::NAN }
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// The features of `series` for week `origin + h` (`h` in 1..=[`HORIZON`]), in the order of
/// [`feature_names`]; NaN marks a value the history does not give (the trees route it).
/// Log units are relative to [`Series::level`]. The row must be valid.
pub fn features(s: &Series, h: usize) -> Vec<f64> {
    let products = s.planned_prices[0].len();
    let level = s.level();
    let log_units: Vec<f64> = s
        .units
        .iter()
        .map(|&u| if u > 0.0 { u.ln() - level } else { f64::NAN })
        .collect();
    let observed = |from: usize| log_units[from..].iter().copied().filter(|v| !v.is_nan());
    let lag = |l: usize| log_units[HISTORY - 1 - l];
    let sd = {
        let v: Vec<f64> = observed(0).collect();
        let m = mean(v.iter().copied());
        mean(v.iter().map(|x| (x - m) * (x - m))).sqrt()
    };
    let base = mean(
        (0..HISTORY)
            .filter(|&w| !log_units[w].is_nan() && s.deal[w] == 0.0 && s.feature[w] == 0.0)
            .map(|w| log_units[w]),
    );
    let seen: Vec<usize> = (0..HISTORY).filter(|&w| !log_units[w].is_nan()).collect();
    let deal_share = mean(seen.iter().map(|&w| s.deal[w]));
    let usual = median(seen.iter().map(|&w| s.price[w]).collect());
    let origin = HISTORY - 1;
    let origin_seen = !log_units[origin].is_nan();
    let at_origin = |v: f64| if origin_seen { v } else { f64::NAN };

    let prices = &s.planned_prices[h - 1];
    let own = prices[s.brand - 1];
    let competitors = mean(
        prices
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != s.brand - 1)
            .map(|(_, p)| *p),
    );
    let (deal_prev, feature_prev) = if h == 1 {
        (at_origin(s.deal[origin]), at_origin(s.feature[origin]))
    } else {
        (s.planned_deal(h - 2), s.planned_feature(h - 2))
    };
    let mut x = vec![
        s.store,
        s.brand as f64,
        h as f64,
        level,
        lag(0),
        lag(1),
        lag(2),
        lag(3),
        mean(observed(HISTORY - 4)),
        mean(observed(HISTORY - 13)),
        sd,
        base,
        deal_share,
        own.ln(),
        (own / usual).ln(),
        (own / competitors).ln(),
        s.planned_deal(h - 1),
        s.planned_feature(h - 1),
        deal_prev,
        feature_prev,
        at_origin(s.deal[origin]),
        at_origin(s.feature[origin]),
        at_origin((s.price[origin] / usual).ln()),
    ];
    x.extend(prices.iter().map(|p| (p / own).ln()));
    let competitors_mean = |v: &[f64]| {
        mean(
            v.iter()
                .enumerate()
                .filter(|(k, _)| *k != s.brand - 1)
                .map(|(_, d)| *d),
        )
    };
    x.push(competitors_mean(&s.planned_deals[h - 1]));
    x.push(competitors_mean(&s.planned_features[h - 1]));
    x.extend(s.planned_deals[h - 1].iter().copied());
    x.extend(s.planned_features[h - 1].iter().copied());
    debug_assert_eq!(x.len(), feature_names(products).len());
    x
}

/// One row's forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Forecast units of weeks origin + 1..=HORIZON.
    pub units: [f64; HORIZON],
    /// Lower 80% bounds.
    pub lower: [f64; HORIZON],
    /// Upper 80% bounds.
    pub upper: [f64; HORIZON],
}

/// A fitted forecaster: the trees (on log units relative to the level) and the interval's
/// log-residual quantiles per horizon.
#[derive(Debug, Clone, Copy)]
pub struct Forecaster<'a> {
    /// The number of brands (price columns) of the panel it was trained on.
    pub products: usize,
    /// The trees.
    pub trees: Ensemble<'a>,
    /// The level correction added to the log forecast at each horizon.
    pub log_shift: [f64; HORIZON],
    /// The 10% quantile of log(actual / forecast) at each horizon.
    pub lower_log: [f64; HORIZON],
    /// The 90% quantile of log(actual / forecast) at each horizon.
    pub upper_log: [f64; HORIZON],
}

impl Forecaster<'static> {
    /// The model compiled into the component.
    pub fn builtin() -> Forecaster<'static> {
        Forecaster {
            products: weights::PRODUCTS,
            trees: weights::TREES,
            log_shift: weights::LOG_SHIFT,
            lower_log: weights::LOWER_LOG,
            upper_log: weights::UPPER_LOG,
        }
    }
}

impl Forecaster<'_> {
    /// The log forecast of week origin + h (h in 1..=HORIZON) of a valid row, level correction
    /// included.
    pub fn log_forecast(&self, s: &Series, h: usize) -> f64 {
        s.level() + self.trees.predict(&features(s, h)) + self.log_shift[h - 1]
    }

    /// The forecast of a valid row.
    pub fn forecast(&self, s: &Series) -> Forecast {
        let mut f = Forecast {
            units: [0.0; HORIZON],
            lower: [0.0; HORIZON],
            upper: [0.0; HORIZON],
        };
        for h in 1..=HORIZON {
            let z = self.log_forecast(s, h);
            f.units[h - 1] = z.exp();
            f.lower[h - 1] = (z + self.lower_log[h - 1]).exp();
            f.upper[h - 1] = (z + self.upper_log[h - 1]).exp();
        }
        f
    }

    /// Validates every row, then forecasts them all.
    pub fn forecast_all(&self, rows: &[Series]) -> Result<Vec<Forecast>, InputError> {
        for (i, s) in rows.iter().enumerate() {
            s.validate(i, self.products)?;
        }
        Ok(rows.iter().map(|s| self.forecast(s)).collect())
    }
}

/// The request's columns, as the component receives them (row-major matrices).
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    /// `store`, one per row.
    pub store: &'a [f64],
    /// `brand`, one per row.
    pub brand: &'a [f64],
    /// `history_units`, HISTORY per row.
    pub history_units: &'a [f64],
    /// `history_price`, HISTORY per row.
    pub history_price: &'a [f64],
    /// `history_deal`, HISTORY per row.
    pub history_deal: &'a [f64],
    /// `history_feature`, HISTORY per row.
    pub history_feature: &'a [f64],
    /// `planned_prices`, HORIZON × products per row.
    pub planned_prices: &'a [f64],
    /// `planned_deals`, HORIZON × products per row.
    pub planned_deals: &'a [f64],
    /// `planned_features`, HORIZON × products per row.
    pub planned_features: &'a [f64],
}

/// Builds the rows from the request's columns (whose lengths must already agree with the row
/// count); a negative history unit becomes "no record".
pub fn series_from_columns(c: &Columns<'_>, products: usize) -> Result<Vec<Series>, InputError> {
    let n = c.store.len();
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let hist = |v: &[f64]| -> [f64; HISTORY] { core::array::from_fn(|w| v[i * HISTORY + w]) };
        let brand = c.brand[i];
        if !(brand.fract() == 0.0 && brand >= 1.0 && brand <= products as f64) {
            return Err(InputError {
                row: i,
                message: format!("brand = {brand} is not a brand 1..={products}"),
            });
        }
        let mut units = hist(c.history_units);
        if let Some(w) = units.iter().position(|u| !u.is_finite()) {
            return Err(InputError {
                row: i,
                message: format!("history_units[{w}] = {} is not a finite number", units[w]),
            });
        }
        for u in &mut units {
            if *u < 0.0 {
                *u = f64::NAN;
            }
        }
        let mut price = hist(c.history_price);
        for (p, u) in price.iter_mut().zip(&units) {
            if u.is_nan() {
                *p = f64::NAN;
            }
        }
        let per_week = HORIZON * products;
        let week = |v: &[f64], h: usize| -> Vec<f64> {
            v[i * per_week + h * products..i * per_week + (h + 1) * products].to_vec()
        };
        let planned_deals: [Vec<f64>; HORIZON] = core::array::from_fn(|h| week(c.planned_deals, h));
        let planned_features: [Vec<f64>; HORIZON] =
            core::array::from_fn(|h| week(c.planned_features, h));
        let row = Series {
            store: c.store[i],
            brand: brand as usize,
            units,
            price,
            deal: hist(c.history_deal),
            feature: hist(c.history_feature),
            planned_prices: core::array::from_fn(|h| week(c.planned_prices, h)),
            planned_deals,
            planned_features,
        };
        rows.push(row);
    }
    Ok(rows)
}
