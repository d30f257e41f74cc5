//! The model's arithmetic and its interface, in plain Rust with no dependencies.
//!
//! Everything here builds natively and for `wasm32-wasip2`: the component calls it with the
//! weights compiled in ([`Promo::builtin`]); the trainer calls it with freshly fitted weights to
//! evaluate and to compute the manifest's examples, so that held-out figures, the manifest and the
//! component come from one arithmetic.
//!
//! Definitions (the same in training, evaluation and the component):
//!
//! - A promotion event is a store × brand × week with an in-store deal (`deal = 1`) or a feature
//!   ad (`feature > 0`).
//! - The baseline units of a store-brand are what it sells without promotion: the platform sends
//!   them (the trainer uses the median units of the store-brand's weeks without deal or feature
//!   in the training weeks); the regular price is likewise the median shelf price of those weeks.
//! - lift = units / baseline units; incremental units = units − baseline units.
//! - incremental gross profit = units × (price − unit cost) − baseline units × (regular price −
//!   unit cost): the promotion week's gross profit minus what the baseline would have made at the
//!   regular price with the same unit cost.
//! - promotion cost = baseline units × max(regular price − price, 0) (the discount given away on
//!   units that would have sold anyway) + `fixed_cost` (per event: tags, handling) +
//!   `feature_cost` × feature share (the feature ad); see [`CostParams`].
//! - ROI = incremental gross profit / promotion cost.
//!
//! The models predict ln(lift) from [`N_BASE_FEATURES`] + 3 × products features of the event;
//! units = baseline × exp(prediction).

use trademl_sdk::trees::Ensemble;

use crate::weights;

/// The model's name, as used in URLs (`/v2/models/promo-effectiveness`).
pub const NAME: &str = "promo-effectiveness";
/// The model's version.
pub const VERSION: &str = "1.0.2";
/// Default fixed cost of one promotion event (tags, handling), in the prices' currency.
pub const DEFAULT_FIXED_COST: f64 = 5.0;
/// Default cost of a feature ad covering the whole store-week (scaled by the feature share).
pub const DEFAULT_FEATURE_COST: f64 = 25.0;
/// The network's standardised inputs are clamped to ± this.
pub const MLP_CLAMP: f64 = 3.0;
/// Features that do not depend on the number of products.
pub const N_BASE_FEATURES: usize = 12;

/// The names of the first [`N_BASE_FEATURES`] features; then come `rel_price_k` (ln of brand k's
/// price over the promoted price), `other_deal_k` and `other_feature_k` for every brand k (the
/// promoted brand's own entries are 0).
pub const BASE_FEATURE_NAMES: [&str; N_BASE_FEATURES] = [
    "store",
    "brand",
    "deal",
    "feature",
    "ln_baseline_units",
    "discount_depth",
    "regular_price",
    "price",
    "margin_share",
    "past_ln_lift",
    "other_brands_on_deal",
    "other_brands_feature_share",
];

/// Which model predicts the lift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Gradient-boosted trees on ln(lift): the default, the most accurate on held-out weeks.
    Gbm,
    /// The specified random forest + neural network: a weighted mean of a random forest's and a
    /// small multilayer perceptron's ln(lift).
    RfNn,
}

impl Method {
    /// Parses the `method` input: `gbm` or `rf+nn`.
    pub fn parse(text: &str) -> Option<Method> {
        match text.trim() {
            "gbm" | "" => Some(Method::Gbm),
            "rf+nn" | "rf_nn" => Some(Method::RfNn),
            _ => None,
        }
    }
}

/// The cost assumption's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostParams {
    /// Fixed cost of one event.
    pub fixed_cost: f64,
    /// Cost of a feature ad over the whole store-week; the event pays it × its feature share.
    pub feature_cost: f64,
}

impl Default for CostParams {
    fn default() -> Self {
        CostParams {
            fixed_cost: DEFAULT_FIXED_COST,
            feature_cost: DEFAULT_FEATURE_COST,
        }
    }
}

/// One planned promotion, as the platform describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// Store identifier (as in the training data; another store is treated as an unseen value).
    pub store: f64,
    /// Brand number, 1..=products.
    pub brand: usize,
    /// The brand's regular shelf price in the store.
    pub regular_price: f64,
    /// The promoted shelf price.
    pub price: f64,
    /// In-store deal flag, 0 or 1.
    pub deal: f64,
    /// Feature-ad share, 0..=1.
    pub feature: f64,
    /// Every brand's shelf price in the store that week (the promoted brand's own entry is
    /// ignored: `price` is used).
    pub brand_prices: Vec<f64>,
    /// Every brand's deal flag that week (own entry ignored).
    pub competitor_deals: Vec<f64>,
    /// Every brand's feature share that week (own entry ignored).
    pub competitor_features: Vec<f64>,
    /// The store-brand's baseline units per week (without promotion).
    pub baseline_units: f64,
    /// Unit cost of the promoted brand.
    pub unit_cost: f64,
    /// The store-brand's typical lift in its past promotions (geometric mean of units / baseline);
    /// NaN when unknown.
    pub past_lift: f64,
    /// The cost assumption.
    pub costs: CostParams,
}

/// A bad input value: which row, which input, what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(pub String);

impl core::fmt::Display for InputError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Promotion {
    /// Checks every value; the error names the row and the input.
    pub fn validate(&self, row: usize, products: usize) -> Result<(), InputError> {
        let bad = |what: &str, v: f64, need: &str| {
            Err(InputError(format!("row {row}: {what} = {v} {need}")))
        };
        if !self.store.is_finite() {
            return bad("store", self.store, "is not a number");
        }
        if self.brand == 0 || self.brand > products {
            return bad(
                "brand",
                self.brand as f64,
                &format!("is not a brand 1..={products}"),
            );
        }
        for (what, v) in [
            ("regular_price", self.regular_price),
            ("price", self.price),
            ("baseline_units", self.baseline_units),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(what, v, "must be a positive number");
            }
        }
        if !(self.unit_cost.is_finite() && self.unit_cost >= 0.0) {
            return bad("unit_cost", self.unit_cost, "must be a number >= 0");
        }
        if self.deal != 0.0 && self.deal != 1.0 {
            return bad("deal", self.deal, "must be 0 or 1");
        }
        if !(0.0..=1.0).contains(&self.feature) {
            return bad("feature", self.feature, "must be a share in 0..=1");
        }
        if self.deal == 0.0 && self.feature == 0.0 {
            return Err(InputError(format!(
                "row {row}: neither a deal nor a feature ad: a promotion has deal = 1 or feature > 0"
            )));
        }
        for (what, v) in [
            ("brand_prices", &self.brand_prices),
            ("competitor_deals", &self.competitor_deals),
            ("competitor_features", &self.competitor_features),
        ] {
            if v.len() != products {
                return Err(InputError(format!(
                    "row {row}: {what} has {} values, expected one per brand ({products})",
                    v.len()
                )));
            }
        }
        for (k, &p) in self.brand_prices.iter().enumerate() {
            if k + 1 != self.brand && !(p.is_finite() && p > 0.0) {
                return bad(&format!("brand_prices[{k}]"), p, "must be a positive price");
            }
        }
        for (what, v) in [
            ("competitor_deals", &self.competitor_deals),
            ("competitor_features", &self.competitor_features),
        ] {
            if let Some((k, &x)) = v
                .iter()
                .enumerate()
                .find(|(_, x)| !(0.0..=1.0).contains(*x))
            {
                return bad(&format!("{what}[{k}]"), x, "must be in 0..=1");
            }
        }
        if !(self.past_lift.is_nan() || self.past_lift.is_finite() && self.past_lift > 0.0) {
            return bad(
                "past_lift",
                self.past_lift,
                "must be positive (or 0 when unknown)",
            );
        }
        for (what, v) in [
            ("fixed_cost", self.costs.fixed_cost),
            ("feature_cost", self.costs.feature_cost),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(what, v, "must be a number >= 0");
            }
        }
        Ok(())
    }

    /// The features the models use, in the order of [`feature_names`].
    pub fn features(&self) -> Vec<f64> {
        let own = self.brand - 1;
        let products = self.brand_prices.len();
        let mut x = Vec::with_capacity(N_BASE_FEATURES + 3 * products);
        let others = |v: &[f64]| -> f64 {
            v.iter()
                .enumerate()
                .filter(|&(k, _)| k != own)
                .map(|(_, &d)| d)
                .sum()
        };
        x.extend_from_slice(&[
            self.store,
            self.brand as f64,
            self.deal,
            self.feature,
            self.baseline_units.ln(),
            1.0 - self.price / self.regular_price,
            self.regular_price,
            self.price,
            1.0 - self.unit_cost / self.price,
            self.past_lift.ln(),
            others(&self.competitor_deals),
            others(&self.competitor_features),
        ]);
        x.extend(
            self.brand_prices
                .iter()
                .enumerate()
                .map(|(k, &p)| if k == own { 0.0 } else { (p / self.price).ln() }),
        );
        for v in [&self.competitor_deals, &self.competitor_features] {
            x.extend(
                v.iter()
                    .enumerate()
                    .map(|(k, &d)| if k == own { 0.0 } else { d }),
            );
        }
        x
    }

    /// What the promotion returns if it sells `units`: the outputs' arithmetic, applied alike to
    /// predicted and to actual units.
    pub fn outcome(&self, units: f64) -> Prediction {
        let incremental_gross_profit = units * (self.price - self.unit_cost)
            - self.baseline_units * (self.regular_price - self.unit_cost);
        let promotion_cost = self.baseline_units * (self.regular_price - self.price).max(0.0)
            + self.costs.fixed_cost
            + self.costs.feature_cost * self.feature;
        let roi = if promotion_cost > 0.0 {
            incremental_gross_profit / promotion_cost
        } else {
            f64::NAN
        };
        Prediction {
            units,
            lift: units / self.baseline_units,
            incremental_units: units - self.baseline_units,
            incremental_gross_profit,
            promotion_cost,
            roi,
        }
    }
}

/// The names of all features for `products` brands.
pub fn feature_names(products: usize) -> Vec<String> {
    let mut names: Vec<String> = BASE_FEATURE_NAMES.iter().map(|s| s.to_string()).collect();
    for prefix in ["rel_price_", "other_deal_", "other_feature_"] {
        names.extend((1..=products).map(|k| format!("{prefix}{k}")));
    }
    names
}

/// What the model predicts for one promotion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Units sold in the promotion week.
    pub units: f64,
    /// units / baseline units.
    pub lift: f64,
    /// units − baseline units.
    pub incremental_units: f64,
    /// units × (price − cost) − baseline × (regular price − cost).
    pub incremental_gross_profit: f64,
    /// baseline × discount + fixed cost + feature cost × feature share.
    pub promotion_cost: f64,
    /// incremental gross profit / promotion cost (NaN when the promotion costs nothing).
    pub roi: f64,
}

/// A multilayer perceptron with one hidden ReLU layer, on standardised inputs clamped to
/// ±[`MLP_CLAMP`] (a NaN input becomes 0, the training mean) followed by a one-hot of the brand.
/// The clamp keeps the network from extrapolating linearly when a week's prices fall outside the
/// training range.
#[derive(Debug, Clone, Copy)]
pub struct Mlp<'a> {
    /// Mean of each feature in training.
    pub mean: &'a [f64],
    /// Standard deviation of each feature in training (1 where it was 0).
    pub scale: &'a [f64],
    /// Hidden weights, row-major `[hidden][inputs]` where inputs = features + products.
    pub w1: &'a [f64],
    /// Hidden biases.
    pub b1: &'a [f64],
    /// Output weights.
    pub w2: &'a [f64],
    /// Output bias.
    pub b2: f64,
}

impl Mlp<'_> {
    /// The network's input vector for the features of a promotion of `brand` (1-based) among
    /// `products` brands.
    pub fn input(&self, x: &[f64], brand: usize, products: usize) -> Vec<f64> {
        let mut z: Vec<f64> = x
            .iter()
            .zip(self.mean.iter().zip(self.scale))
            .map(|(&v, (&m, &s))| {
                if v.is_nan() {
                    0.0
                } else {
                    ((v - m) / s).clamp(-MLP_CLAMP, MLP_CLAMP)
                }
            })
            .collect();
        z.extend((1..=products).map(|k| if k == brand { 1.0 } else { 0.0 }));
        z
    }

    /// The output for an input vector made by [`Mlp::input`].
    pub fn forward(&self, z: &[f64]) -> f64 {
        let n_in = z.len();
        let mut out = self.b2;
        for (h, (&b, &w)) in self.b1.iter().zip(self.w2).enumerate() {
            let row = &self.w1[h * n_in..(h + 1) * n_in];
            let a = b + row.iter().zip(z).map(|(w, v)| w * v).sum::<f64>();
            if a > 0.0 {
                out += w * a;
            }
        }
        out
    }
}

/// The fitted models.
#[derive(Debug, Clone, Copy)]
pub struct Promo<'a> {
    /// The number of brands (width of the per-brand inputs).
    pub products: usize,
    /// Gradient-boosted trees on ln(lift).
    pub gbm: Ensemble<'a>,
    /// Random forest on ln(lift).
    pub forest: Ensemble<'a>,
    /// Neural network on ln(lift).
    pub mlp: Mlp<'a>,
    /// Weight of the forest in the RF + NN blend (the network gets 1 − it).
    pub forest_weight: f64,
}

impl Promo<'static> {
    /// The model with the weights compiled in.
    pub fn builtin() -> Self {
        Promo {
            products: weights::PRODUCTS,
            gbm: weights::GBM,
            forest: weights::FOREST,
            mlp: Mlp {
                mean: &weights::MLP_MEAN,
                scale: &weights::MLP_SCALE,
                w1: &weights::MLP_W1,
                b1: &weights::MLP_B1,
                w2: &weights::MLP_W2,
                b2: weights::MLP_B2,
            },
            forest_weight: weights::FOREST_WEIGHT,
        }
    }
}

impl Promo<'_> {
    /// ln(lift) predicted from the features of a promotion of `brand`.
    pub fn ln_lift(&self, x: &[f64], brand: usize, method: Method) -> f64 {
        match method {
            Method::Gbm => self.gbm.predict(x),
            Method::RfNn => {
                let nn = self.mlp.forward(&self.mlp.input(x, brand, self.products));
                self.forest_weight * self.forest.predict(x) + (1.0 - self.forest_weight) * nn
            }
        }
    }

    /// The prediction for one (validated) promotion.
    pub fn predict(&self, p: &Promotion, method: Method) -> Prediction {
        let lift = self.ln_lift(&p.features(), p.brand, method).exp();
        p.outcome(p.baseline_units * lift)
    }
}

/// One input or output of the model, independent of any binding's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    /// The tensor's name.
    pub name: &'static str,
    /// The Open Inference Protocol datatype.
    pub datatype: &'static str,
    /// The shape; `-1` is the batch dimension, `-2` stands for the number of brands.
    pub shape: Vec<i64>,
    /// Units and meaning.
    pub description: &'static str,
}

/// Column inputs (FP64, shape `[-1]`), required.
pub const COLUMN_INPUTS: [(&str, &str); 8] = [
    (
        "store",
        "Store identifier, as in the training data (Dominick's store number).",
    ),
    (
        "brand",
        "Brand number, 1..=number of brands (Dominick's orange-juice brand 1-11).",
    ),
    (
        "regular_price",
        "The brand's regular (non-promoted) shelf price in the store, per unit; > 0.",
    ),
    ("price", "The promoted shelf price per unit; > 0."),
    ("deal", "In-store deal: 1 or 0."),
    (
        "feature",
        "Feature-ad share of the week, 0..=1 (a promotion has deal = 1 or feature > 0).",
    ),
    (
        "baseline_units",
        "The store-brand's baseline units per week without promotion (the trainer used the median units of its weeks with no deal and no feature ad); > 0.",
    ),
    (
        "unit_cost",
        "The promoted brand's unit cost (wholesale), same currency as the prices; >= 0.",
    ),
];

/// Per-brand matrix inputs (FP64, shape `[-1, brands]`).
pub const MATRIX_INPUTS: [(&str, &str); 3] = [
    (
        "brand_prices",
        "Required. Every brand's shelf price in the store that week, brand k in column k-1; the promoted brand's own entry is ignored (price is used).",
    ),
    (
        "competitor_deals",
        "Optional (default all 0). Every brand's in-store deal flag that week; own entry ignored.",
    ),
    (
        "competitor_features",
        "Optional (default all 0). Every brand's feature-ad share that week; own entry ignored.",
    ),
];

/// Optional column inputs (FP64, shape `[-1]` or `[1]` for every row).
pub const OPTIONAL_INPUTS: [(&str, &str); 3] = [
    (
        "past_lift",
        "Optional (default unknown). The store-brand's typical lift in its past promotions: the geometric mean of units / baseline over its promoted weeks; 0 = unknown.",
    ),
    (
        "fixed_cost",
        "Optional (default 5). Fixed cost of one promotion event (tags, handling), in the prices' currency.",
    ),
    (
        "feature_cost",
        "Optional (default 25). Cost of a feature ad over the whole store-week; the event pays it times its feature share.",
    ),
];

/// The `method` input's description.
pub const METHOD_DESCRIPTION: &str = "Optional, shape [1]: \"gbm\" (default: gradient-boosted trees) or \"rf+nn\" (the random forest + neural network blend).";

/// The outputs (FP64, shape `[-1]`).
pub const OUTPUTS: [(&str, &str); 6] = [
    ("units", "Predicted units sold in the promotion week."),
    ("lift", "Predicted units / baseline_units."),
    ("incremental_units", "Predicted units - baseline_units."),
    (
        "incremental_gross_profit",
        "units x (price - unit_cost) - baseline_units x (regular_price - unit_cost).",
    ),
    (
        "promotion_cost",
        "baseline_units x max(regular_price - price, 0) + fixed_cost + feature_cost x feature.",
    ),
    (
        "roi",
        "incremental_gross_profit / promotion_cost (> 0: the promotion pays back its cost).",
    ),
];

/// The inputs' specifications (the per-brand width filled in).
pub fn input_specs(products: usize) -> Vec<IoSpec> {
    let mut v: Vec<IoSpec> = COLUMN_INPUTS
        .iter()
        .chain(&OPTIONAL_INPUTS)
        .map(|&(name, description)| IoSpec {
            name,
            datatype: "FP64",
            shape: vec![-1],
            description,
        })
        .collect();
    v.extend(MATRIX_INPUTS.iter().map(|&(name, description)| IoSpec {
        name,
        datatype: "FP64",
        shape: vec![-1, products as i64],
        description,
    }));
    v.push(IoSpec {
        name: "method",
        datatype: "BYTES",
        shape: vec![1],
        description: METHOD_DESCRIPTION,
    });
    v
}

/// The outputs' specifications.
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

/// The model description: what it predicts, from what (`trained_on`) and how well (`figures`).
pub fn description(trained_on: &str, figures: &str) -> String {
    format!(
        "Promotion effectiveness: for a planned deal or feature ad of one brand in one store-week, \
         predicted units, lift over the store-brand's baseline, incremental units and gross \
         profit, promotion cost and ROI (incremental gross profit / promotion cost; cost = \
         discount on baseline units + fixed cost per event + feature-ad cost x feature share). \
         Gradient-boosted trees on ln(lift) by default; the random forest + neural network blend \
         with method = \"rf+nn\". Trained on {trained_on}. {figures}"
    )
}

/// The description of the built-in model.
pub fn builtin_description() -> String {
    description(weights::TRAINED_ON, weights::FIGURES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promotion() -> Promotion {
        Promotion {
            store: 2.0,
            brand: 2,
            regular_price: 0.05,
            price: 0.04,
            deal: 1.0,
            feature: 0.5,
            brand_prices: vec![0.03, 999.0, 0.06],
            competitor_deals: vec![1.0, 1.0, 0.0],
            competitor_features: vec![0.0, 1.0, 0.2],
            baseline_units: 1000.0,
            unit_cost: 0.03,
            past_lift: f64::NAN,
            costs: CostParams::default(),
        }
    }

    #[test]
    fn outcome_follows_the_documented_definitions() {
        let p = promotion();
        let o = p.outcome(3000.0);
        assert!((o.lift - 3.0).abs() < 1e-12);
        assert!((o.incremental_units - 2000.0).abs() < 1e-9);
        // 3000 × 0.01 − 1000 × 0.02 = 10.
        assert!((o.incremental_gross_profit - 10.0).abs() < 1e-9);
        // 1000 × 0.01 + 5 + 25 × 0.5 = 27.5.
        assert!((o.promotion_cost - 27.5).abs() < 1e-9);
        assert!((o.roi - 10.0 / 27.5).abs() < 1e-12);
        // Selling only the baseline at a discount loses money.
        assert!(p.outcome(1000.0).roi < 0.0);
    }

    #[test]
    fn features_ignore_the_promoted_brands_own_entries() {
        let x = promotion().features();
        let names = feature_names(3);
        assert_eq!(x.len(), names.len());
        let at = |n: &str| x[names.iter().position(|m| m == n).unwrap()];
        assert_eq!(at("rel_price_2"), 0.0);
        assert!((at("rel_price_1") - (0.03f64 / 0.04).ln()).abs() < 1e-12);
        assert_eq!(at("other_deal_2"), 0.0);
        assert_eq!(at("other_brands_on_deal"), 1.0);
        assert!((at("other_brands_feature_share") - 0.2).abs() < 1e-12);
        assert!((at("discount_depth") - 0.2).abs() < 1e-12);
        assert!(at("past_ln_lift").is_nan());
    }

    #[test]
    fn validation_names_the_row_and_input() {
        let mut p = promotion();
        assert!(p.validate(0, 3).is_ok());
        p.feature = 1.5;
        assert!(
            p.validate(4, 3)
                .unwrap_err()
                .0
                .starts_with("row 4: feature = 1.5")
        );
        let mut p = promotion();
        p.deal = 0.0;
        p.feature = 0.0;
        assert!(
            p.validate(0, 3)
                .unwrap_err()
                .0
                .contains("neither a deal nor a feature")
        );
        let mut p = promotion();
        p.brand = 4;
        assert!(p.validate(0, 3).unwrap_err().0.contains("brand = 4"));
        let mut p = promotion();
        p.brand_prices[0] = -1.0;
        assert!(p.validate(1, 3).unwrap_err().0.contains("brand_prices[0]"));
        assert!(
            promotion()
                .validate(0, 4)
                .unwrap_err()
                .0
                .contains("expected one per brand (4)")
        );
    }

    #[test]
    fn the_blend_weights_forest_and_network() {
        use trademl_sdk::trees::Node;
        static TREE: [Node; 1] = [Node::leaf(0.5)];
        let mean = vec![0.0; N_BASE_FEATURES + 9];
        let scale = vec![1.0; N_BASE_FEATURES + 9];
        let n_in = mean.len() + 3;
        let w1 = vec![0.0; n_in];
        let promo = Promo {
            products: 3,
            gbm: Ensemble {
                base: 0.1,
                scale: 1.0,
                nodes: &TREE,
                tree_starts: &[0],
            },
            forest: Ensemble {
                base: 0.0,
                scale: 1.0,
                nodes: &TREE,
                tree_starts: &[0],
            },
            mlp: Mlp {
                mean: &mean,
                scale: &scale,
                w1: &w1,
                b1: &[1.0],
                w2: &[2.0],
                b2: 0.25,
            },
            forest_weight: 0.25,
        };
        let p = promotion();
        let x = p.features();
        assert!((promo.ln_lift(&x, 2, Method::Gbm) - 0.6).abs() < 1e-12);
        // forest 0.5, network 0.25 + 2 × relu(1) = 2.25; 0.25 × 0.5 + 0.75 × 2.25.
        assert!((promo.ln_lift(&x, 2, Method::RfNn) - (0.125 + 1.6875)).abs() < 1e-12);
        let pred = promo.predict(&p, Method::Gbm);
        assert!((pred.units - 1000.0 * 0.6f64.exp()).abs() < 1e-9);
    }
}
