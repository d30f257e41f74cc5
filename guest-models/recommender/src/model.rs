//! The model's arithmetic and its interface, in plain Rust with no dependencies.
//!
//! Everything here builds natively and for `wasm32-wasip2`: the component calls it with the
//! weights compiled in ([`Recommender::builtin`]); the trainer calls it with freshly computed
//! statistics and coefficients, to evaluate the model and to compute the manifest's examples, so
//! that the evaluation, the manifest and the component's `metadata()` come from one source.
//!
//! The score of a product for a customer is a logistic regression on [`N_FEATURES`] features of
//! the (customer, product) pair, computed from the customer's recent baskets (given in the request)
//! and the product's global statistics (compiled in): how often and how recently the customer
//! bought it, a recency-decayed purchase share, the product's reorder rate and popularity, the
//! customer's own reorder propensity and where in the cart they put it. The score is an estimate
//! of the probability that the product is in the customer's next order.

use core::fmt;

use crate::weights;

/// The model's name, as used in URLs (`/v2/models/recommender`).
pub const NAME: &str = "recommender";
/// The model's version.
pub const VERSION: &str = "1.0.1";
/// The number of recommended products per request.
pub const TOP_K: usize = 10;
/// The number of features of a (customer, product) pair.
pub const N_FEATURES: usize = 14;
/// The largest number of basket lines a request may carry.
pub const MAX_LINES: usize = 20_000;
/// The largest number of orders (`basket_order_index` < this).
pub const MAX_ORDERS: usize = 1_000;
/// The largest number of candidate products a request may carry.
pub const MAX_CANDIDATES: usize = 10_000;
/// Pseudo-count of the customer's reorder propensity (shrinks it towards the global share).
pub const PROPENSITY_PRIOR_WEIGHT: f64 = 10.0;
/// Orders counted as "recent" by the recent-share feature.
pub const RECENT_ORDERS: usize = 5;

/// The names of the features, in order (documented in the report and the manifest).
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "bought_before (1 if the product is in the customer's history)",
    "ln(1 + orders containing it)",
    "share of the customer's orders containing it",
    "recency-decayed share: sum of decay^k over the orders k containing it / sum of decay^k",
    "bought_before * ln(1 + orders since last bought; 0 = most recent order)",
    "in the most recent order (0/1)",
    "share of the last 5 orders containing it",
    "product's global reorder rate (smoothed)",
    "ln(1 + orders containing the product, all customers)",
    "customer's reorder propensity (share of basket lines that repeat an earlier order, smoothed)",
    "propensity * share of orders",
    "bought_before * mean relative cart position (0 = first in cart, 1 = last)",
    "ln(1 + orders in the customer's history)",
    "share of orders * ln(1 + orders in history)",
];

/// One input or output of the model, independent of any binding's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    /// The tensor's name.
    pub name: &'static str,
    /// The Open Inference Protocol datatype: `FP64` or `INT64`.
    pub datatype: &'static str,
    /// The shape; `-1` is a dimension of any size.
    pub shape: Vec<i64>,
    /// Units and meaning.
    pub description: &'static str,
}

/// Description of `basket_product_ids`.
pub const BASKET_PRODUCT_IDS_DESCRIPTION: &str = "The products of one customer's recent orders, \
     flattened: one element per order line, the product id (an integer >= 1, the Instacart \
     product_id the model was trained on; unknown ids are accepted and get neutral product \
     statistics). Within an order, lines in cart order (first added first). Pass as many past \
     orders as you have (all of them is best; at most 1000 orders and 20000 lines). An empty \
     tensor (shape [0]) is a customer with no history: the recommendations are then the popular \
     products. A product repeated within one order counts once.";
/// Description of `basket_order_index`.
pub const BASKET_ORDER_INDEX_DESCRIPTION: &str = "Which order each element of \
     basket_product_ids belongs to: 0 = the customer's most recent order, 1 = the one before, and \
     so on; same length as basket_product_ids. The indexes used must be 0..n-1 with none missing \
     (every order has at least one line).";
/// Description of `candidate_product_ids`.
pub const CANDIDATE_PRODUCT_IDS_DESCRIPTION: &str = "Products to rank for this customer, e.g. the \
     products on promotion: integers >= 1, no repeats, at most 10000. Required by the host like \
     every input: send an empty tensor (shape [0]) when there are none.";

/// Description of `product_ids`.
pub const PRODUCT_IDS_DESCRIPTION: &str = "The 10 recommended products for the customer's next \
     order, best first: the highest-scoring among the products of the customer's history and the \
     most popular products overall.";
/// Description of `scores`.
pub const SCORES_DESCRIPTION: &str = "The score of each recommended product, same order: the \
     model's estimate of the probability (0..1) that the product is in the customer's next order.";
/// Description of `candidate_ranking`.
pub const CANDIDATE_RANKING_DESCRIPTION: &str = "candidate_product_ids ranked for the customer, \
     best first (ties by product id); same length as candidate_product_ids.";
/// Description of `candidate_scores`.
pub const CANDIDATE_SCORES_DESCRIPTION: &str = "The score of each product of candidate_ranking, \
     same order: the estimated probability (0..1) that it is in the customer's next order.";

/// The inputs the model accepts (all INT64, shape `[-1]`, one customer per request).
pub fn input_specs() -> Vec<IoSpec> {
    [
        ("basket_product_ids", BASKET_PRODUCT_IDS_DESCRIPTION),
        ("basket_order_index", BASKET_ORDER_INDEX_DESCRIPTION),
        ("candidate_product_ids", CANDIDATE_PRODUCT_IDS_DESCRIPTION),
    ]
    .into_iter()
    .map(|(name, description)| IoSpec {
        name,
        datatype: "INT64",
        shape: vec![-1],
        description,
    })
    .collect()
}

/// The outputs the model returns.
pub fn output_specs() -> Vec<IoSpec> {
    vec![
        IoSpec {
            name: "product_ids",
            datatype: "INT64",
            shape: vec![TOP_K as i64],
            description: PRODUCT_IDS_DESCRIPTION,
        },
        IoSpec {
            name: "scores",
            datatype: "FP64",
            shape: vec![TOP_K as i64],
            description: SCORES_DESCRIPTION,
        },
        IoSpec {
            name: "candidate_ranking",
            datatype: "INT64",
            shape: vec![-1],
            description: CANDIDATE_RANKING_DESCRIPTION,
        },
        IoSpec {
            name: "candidate_scores",
            datatype: "FP64",
            shape: vec![-1],
            description: CANDIDATE_SCORES_DESCRIPTION,
        },
    ]
}

/// The model description; `trained_on` names the data, `metrics` the held-out figures.
pub fn description(trained_on: &str, metrics: &str) -> String {
    format!(
        "Recommends the {TOP_K} products a customer is most likely to buy in their next order, \
         and ranks a given list of candidate (e.g. promoted) products for them, from the \
         customer's recent baskets. Each product of the customer's history, and each of the most \
         popular products, is scored by a logistic regression on how often and how recently the \
         customer bought it (recency-decayed purchase share), the product's reorder rate and \
         popularity, the customer's reorder propensity and cart position; the score estimates the \
         probability that the product is in the next order. Trained on {trained_on}. Held out \
         (each customer's last order): {metrics}. One customer per request."
    )
}

/// The description of the built-in model.
pub fn builtin_description() -> String {
    description(weights::TRAINED_ON, weights::METRICS)
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The input tensor's name.
    pub field: &'static str,
    /// The element, counted from 0, when one element is at fault.
    pub row: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row {
            Some(row) => write!(f, "{}[{row}]: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for InputError {}

fn fail<T>(field: &'static str, row: Option<usize>, message: String) -> Result<T, InputError> {
    Err(InputError {
        field,
        row,
        message,
    })
}

/// One customer's history: `orders[k]` is the k-th most recent order (0 = most recent), its
/// distinct products in cart order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Orders, most recent first.
    pub orders: Vec<Vec<i64>>,
}

impl History {
    /// Builds a history from the two basket inputs, validating them.
    pub fn from_columns(product_ids: &[i64], order_index: &[i64]) -> Result<History, InputError> {
        if product_ids.len() != order_index.len() {
            return fail(
                "basket_order_index",
                None,
                format!(
                    "has {} elements but basket_product_ids has {}: one order index per line",
                    order_index.len(),
                    product_ids.len()
                ),
            );
        }
        if product_ids.len() > MAX_LINES {
            return fail(
                "basket_product_ids",
                None,
                format!(
                    "has {} lines; at most {MAX_LINES} are accepted (send the most recent orders)",
                    product_ids.len()
                ),
            );
        }
        let mut n = 0usize;
        for (row, (&p, &k)) in product_ids.iter().zip(order_index).enumerate() {
            if p < 1 {
                return fail(
                    "basket_product_ids",
                    Some(row),
                    format!("= {p}: a product id must be >= 1"),
                );
            }
            if k < 0 || k >= MAX_ORDERS as i64 {
                return fail(
                    "basket_order_index",
                    Some(row),
                    format!("= {k}: an order index must be 0..{}", MAX_ORDERS - 1),
                );
            }
            n = n.max(k as usize + 1);
        }
        let mut orders: Vec<Vec<i64>> = vec![Vec::new(); n];
        for (&p, &k) in product_ids.iter().zip(order_index) {
            let order = &mut orders[k as usize];
            if !order.contains(&p) {
                order.push(p);
            }
        }
        if let Some(k) = orders.iter().position(Vec::is_empty) {
            return fail(
                "basket_order_index",
                None,
                format!(
                    "no line has order index {k} but some have {}: the indexes must be 0..n-1 \
                     with none missing (0 = most recent order)",
                    n - 1
                ),
            );
        }
        Ok(History { orders })
    }

    /// The history as the two basket inputs (product ids, order indexes).
    pub fn to_columns(&self) -> (Vec<i64>, Vec<i64>) {
        let mut ids = Vec::new();
        let mut index = Vec::new();
        for (k, order) in self.orders.iter().enumerate() {
            for &p in order {
                ids.push(p);
                index.push(k as i64);
            }
        }
        (ids, index)
    }
}

/// Checks the candidate products: ids >= 1, no repeats, not too many.
pub fn validate_candidates(candidates: &[i64]) -> Result<(), InputError> {
    const FIELD: &str = "candidate_product_ids";
    if candidates.len() > MAX_CANDIDATES {
        return fail(
            FIELD,
            None,
            format!(
                "has {} products; at most {MAX_CANDIDATES} are accepted",
                candidates.len()
            ),
        );
    }
    let mut sorted: Vec<(i64, usize)> = candidates.iter().copied().zip(0..).collect();
    sorted.sort_unstable();
    for (row, &p) in candidates.iter().enumerate() {
        if p < 1 {
            return fail(
                FIELD,
                Some(row),
                format!("= {p}: a product id must be >= 1"),
            );
        }
    }
    for w in sorted.windows(2) {
        if w[0].0 == w[1].0 {
            let (first, row) = (w[0].1.min(w[1].1), w[0].1.max(w[1].1));
            return fail(
                FIELD,
                Some(row),
                format!("= {} repeats element {first}: no repeats", w[0].0),
            );
        }
    }
    Ok(())
}

/// Global statistics of the products, sorted by id.
#[derive(Debug, Clone, Copy)]
pub struct ProductStats<'a> {
    /// Product ids, ascending.
    pub ids: &'a [i64],
    /// Orders containing each product (all customers).
    pub orders: &'a [u32],
    /// Each product's smoothed reorder rate.
    pub reorder_rate: &'a [f64],
    /// The reorder rate of a product not in the table (the global rate).
    pub default_reorder_rate: f64,
    /// The global share of basket lines that repeat an earlier order of the same customer.
    pub default_propensity: f64,
    /// The most popular products, most popular first: candidates for every customer.
    pub popular: &'a [i64],
}

impl ProductStats<'_> {
    /// (orders containing it, reorder rate) of a product; (0, default) when unknown.
    pub fn lookup(&self, product: i64) -> (u32, f64) {
        match self.ids.binary_search(&product) {
            Ok(i) => (self.orders[i], self.reorder_rate[i]),
            Err(_) => (0, self.default_reorder_rate),
        }
    }
}

/// The logistic regression and its feature parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Per-order decay of the recency-decayed share (0 < decay <= 1).
    pub decay: f64,
    /// Intercept.
    pub intercept: f64,
    /// One coefficient per feature.
    pub coef: [f64; N_FEATURES],
}

/// What one customer's history says about each of its products.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Orders in the history.
    pub n_orders: usize,
    /// The customer's smoothed reorder propensity.
    pub propensity: f64,
    /// Sum of decay^k over the history's orders.
    pub decay_total: f64,
    /// Per product of the history, sorted by id: (id, per-product tally).
    pub products: Vec<(i64, Tally)>,
}

/// One product's tally in one customer's history.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Orders containing it.
    pub count: u32,
    /// Sum of decay^k over the orders k containing it.
    pub decayed: f64,
    /// The most recent order containing it (0 = most recent).
    pub last: usize,
    /// The oldest order containing it.
    pub oldest: usize,
    /// Orders among the last [`RECENT_ORDERS`] containing it.
    pub recent: u32,
    /// Sum of relative cart positions (0 first .. 1 last) over the orders containing it.
    pub position_sum: f64,
}

impl Profile {
    /// Tallies a history with the given decay.
    pub fn new(history: &History, decay: f64, default_propensity: f64) -> Profile {
        let mut tallies: Vec<(i64, Tally)> = Vec::new();
        let mut weight = 1.0;
        let mut decay_total = 0.0;
        for (k, order) in history.orders.iter().enumerate() {
            let len = order.len();
            for (pos, &p) in order.iter().enumerate() {
                let t = match tallies.binary_search_by_key(&p, |e| e.0) {
                    Ok(i) => &mut tallies[i].1,
                    Err(i) => {
                        tallies.insert(
                            i,
                            (
                                p,
                                Tally {
                                    last: k,
                                    ..Tally::default()
                                },
                            ),
                        );
                        &mut tallies[i].1
                    }
                };
                t.count += 1;
                t.oldest = k;
                t.decayed += weight;
                if k < RECENT_ORDERS {
                    t.recent += 1;
                }
                t.position_sum += if len > 1 {
                    pos as f64 / (len - 1) as f64
                } else {
                    0.5
                };
            }
            decay_total += weight;
            weight *= decay;
        }
        // Lines that repeat a product of an older order of the history (the oldest order has
        // nothing older to repeat, so its lines are not counted).
        let (mut repeats, mut lines) = (0usize, 0usize);
        for (k, order) in history.orders.iter().enumerate() {
            if k + 1 == history.orders.len() {
                break;
            }
            for p in order {
                lines += 1;
                if let Ok(i) = tallies.binary_search_by_key(p, |e| e.0)
                    && tallies[i].1.oldest > k
                {
                    repeats += 1;
                }
            }
        }
        let propensity = (repeats as f64 + PROPENSITY_PRIOR_WEIGHT * default_propensity)
            / (lines as f64 + PROPENSITY_PRIOR_WEIGHT);
        Profile {
            n_orders: history.orders.len(),
            propensity,
            decay_total,
            products: tallies,
        }
    }

    /// This customer's tally of a product, if they bought it.
    pub fn tally(&self, product: i64) -> Option<Tally> {
        self.products
            .binary_search_by_key(&product, |e| e.0)
            .ok()
            .map(|i| self.products[i].1)
    }
}

/// The features of (customer, product).
pub fn features(profile: &Profile, stats: &ProductStats, product: i64) -> [f64; N_FEATURES] {
    let n = profile.n_orders as f64;
    let (global_orders, reorder_rate) = stats.lookup(product);
    let t = profile.tally(product);
    let bought = if t.is_some() { 1.0 } else { 0.0 };
    let t = t.unwrap_or_default();
    let count = f64::from(t.count);
    let share = if n > 0.0 { count / n } else { 0.0 };
    let decayed = if profile.decay_total > 0.0 {
        t.decayed / profile.decay_total
    } else {
        0.0
    };
    let recent_n = profile.n_orders.min(RECENT_ORDERS) as f64;
    let recent = if recent_n > 0.0 {
        f64::from(t.recent) / recent_n
    } else {
        0.0
    };
    let since_last = bought * (t.last as f64).ln_1p();
    let in_last = if bought > 0.0 && t.last == 0 {
        1.0
    } else {
        0.0
    };
    let position = if t.count > 0 {
        t.position_sum / count
    } else {
        0.0
    };
    let ln_n = n.ln_1p();
    [
        bought,
        count.ln_1p(),
        share,
        decayed,
        since_last,
        in_last,
        recent,
        reorder_rate,
        f64::from(global_orders).ln_1p(),
        profile.propensity,
        profile.propensity * share,
        position,
        ln_n,
        share * ln_n,
    ]
}

/// A scored product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The product id.
    pub product: i64,
    /// The linear score (log-odds); ranks the products.
    pub logit: f64,
    /// The estimated probability that it is in the next order.
    pub score: f64,
}

/// The fitted model: product statistics and the logistic regression.
#[derive(Debug, Clone, Copy)]
pub struct Recommender<'a> {
    /// Global product statistics.
    pub stats: ProductStats<'a>,
    /// Coefficients and decay.
    pub params: Params,
}

impl Recommender<'static> {
    /// The model compiled into this crate (`weights.rs`).
    pub fn builtin() -> Self {
        Recommender {
            stats: ProductStats {
                ids: &weights::PRODUCT_IDS,
                orders: &weights::PRODUCT_ORDERS,
                reorder_rate: &weights::PRODUCT_REORDER_RATE,
                default_reorder_rate: weights::DEFAULT_REORDER_RATE,
                default_propensity: weights::DEFAULT_PROPENSITY,
                popular: &weights::POPULAR,
            },
            params: Params {
                decay: weights::DECAY,
                intercept: weights::INTERCEPT,
                coef: weights::COEF,
            },
        }
    }
}

/// Sorts best first: by logit descending, ties by product id ascending.
fn rank(scored: &mut [Scored]) {
    scored.sort_by(|a, b| b.logit.total_cmp(&a.logit).then(a.product.cmp(&b.product)));
}

impl Recommender<'_> {
    /// The profile of a history under this model's decay.
    pub fn profile(&self, history: &History) -> Profile {
        Profile::new(history, self.params.decay, self.stats.default_propensity)
    }

    /// Scores one product for a profiled customer.
    pub fn score(&self, profile: &Profile, product: i64) -> Scored {
        let x = features(profile, &self.stats, product);
        let logit = self.params.intercept
            + x.iter()
                .zip(&self.params.coef)
                .map(|(a, b)| a * b)
                .sum::<f64>();
        Scored {
            product,
            logit,
            score: 1.0 / (1.0 + (-logit).exp()),
        }
    }

    /// The `k` best products among the history's products and the popular ones, best first.
    pub fn recommend(&self, history: &History, k: usize) -> Vec<Scored> {
        let profile = self.profile(history);
        let mut candidates: Vec<i64> = profile.products.iter().map(|e| e.0).collect();
        candidates.extend(self.stats.popular.iter().copied());
        candidates.sort_unstable();
        candidates.dedup();
        let mut scored: Vec<Scored> = candidates
            .into_iter()
            .map(|p| self.score(&profile, p))
            .collect();
        rank(&mut scored);
        scored.truncate(k);
        scored
    }

    /// The given candidates ranked for the customer, best first.
    pub fn rank_candidates(&self, history: &History, candidates: &[i64]) -> Vec<Scored> {
        let profile = self.profile(history);
        let mut scored: Vec<Scored> = candidates
            .iter()
            .map(|&p| self.score(&profile, p))
            .collect();
        rank(&mut scored);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [i64; 4] = [1, 2, 3, 50];
    const ORDERS: [u32; 4] = [100, 50, 10, 400];
    const RATES: [f64; 4] = [0.8, 0.5, 0.2, 0.6];
    const POPULAR: [i64; 3] = [50, 1, 2];

    fn stats() -> ProductStats<'static> {
        ProductStats {
            ids: &IDS,
            orders: &ORDERS,
            reorder_rate: &RATES,
            default_reorder_rate: 0.4,
            default_propensity: 0.5,
            popular: &POPULAR,
        }
    }

    /// A model whose logit is `2 * share of orders - 1 + 0.5 * bought_before`.
    fn toy() -> Recommender<'static> {
        let mut coef = [0.0; N_FEATURES];
        coef[0] = 0.5;
        coef[2] = 2.0;
        Recommender {
            stats: stats(),
            params: Params {
                decay: 0.5,
                intercept: -1.0,
                coef,
            },
        }
    }

    fn h(orders: &[&[i64]]) -> History {
        History {
            orders: orders.iter().map(|o| o.to_vec()).collect(),
        }
    }

    #[test]
    fn features_of_a_known_history() {
        // Most recent first: order 0 = [3, 1], order 1 = [1], order 2 = [2, 1].
        let history = h(&[&[3, 1], &[1], &[2, 1]]);
        let p = Profile::new(&history, 0.5, 0.5);
        assert_eq!(p.n_orders, 3);
        assert_eq!(p.decay_total, 1.75);
        // Lines of orders 0 and 1 that repeat an older order: 1 (order 0), 1 (order 1) of 3.
        assert!((p.propensity - (2.0 + 5.0) / (3.0 + 10.0)).abs() < 1e-12);
        let x = features(&p, &stats(), 1);
        assert_eq!(x[0], 1.0);
        assert!((x[1] - 4f64.ln()).abs() < 1e-12);
        assert_eq!(x[2], 1.0);
        assert_eq!(x[3], 1.0);
        assert_eq!(x[4], 0.0);
        assert_eq!(x[5], 1.0);
        assert_eq!(x[6], 1.0);
        assert_eq!(x[7], 0.8);
        assert!((x[8] - 101f64.ln()).abs() < 1e-12);
        // Cart positions: last of 2, only of 1 (0.5), last of 2 -> mean (1 + 0.5 + 1) / 3.
        assert!((x[11] - 2.5 / 3.0).abs() < 1e-12);
        assert!((x[12] - 4f64.ln()).abs() < 1e-12);
        let x2 = features(&p, &stats(), 2);
        assert!((x2[2] - 1.0 / 3.0).abs() < 1e-12);
        assert!((x2[3] - 0.25 / 1.75).abs() < 1e-12);
        assert!((x2[4] - 3f64.ln()).abs() < 1e-12);
        assert_eq!((x2[5], x2[11]), (0.0, 0.0));
        // Never bought, unknown product: neutral statistics.
        let x9 = features(&p, &stats(), 9);
        assert_eq!(
            (x9[0], x9[1], x9[2], x9[3], x9[4]),
            (0.0, 0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!((x9[7], x9[8]), (0.4, 0.0));
    }

    #[test]
    fn known_rows_give_known_rankings() {
        let model = toy();
        let history = h(&[&[3, 1], &[1], &[2, 1]]);
        let top = model.recommend(&history, 10);
        // 1: share 1 -> logit 1.5; 2 and 3: share 1/3 -> -0.1667; 50: popular, never bought -> -1.
        let ids: Vec<i64> = top.iter().map(|s| s.product).collect();
        assert_eq!(ids, [1, 2, 3, 50]);
        assert!((top[0].logit - 1.5).abs() < 1e-12);
        assert!((top[0].score - 1.0 / (1.0 + (-1.5f64).exp())).abs() < 1e-12);
        assert!((top[3].score - 1.0 / (1.0 + 1f64.exp())).abs() < 1e-12);
        assert_eq!(model.recommend(&history, 2).len(), 2);
        let ranked = model.rank_candidates(&history, &[50, 77, 3, 1]);
        let ids: Vec<i64> = ranked.iter().map(|s| s.product).collect();
        // 50 and 77 tie (never bought): the lower id first.
        assert_eq!(ids, [1, 3, 50, 77]);
        // No history: the popular products, tied, by id.
        let cold: Vec<i64> = model
            .recommend(&History::default(), 10)
            .iter()
            .map(|s| s.product)
            .collect();
        assert_eq!(cold, [1, 2, 50]);
    }

    #[test]
    fn history_from_columns_groups_and_validates() {
        let history = History::from_columns(&[5, 6, 5, 7, 5], &[1, 1, 0, 0, 1]).unwrap();
        assert_eq!(history.orders, vec![vec![5, 7], vec![5, 6]]);
        assert_eq!(history.to_columns(), (vec![5, 7, 5, 6], vec![0, 0, 1, 1]));
        assert_eq!(History::from_columns(&[], &[]).unwrap(), History::default());
        let cases: [(&[i64], &[i64], &str, &str); 5] = [
            (&[1, 2], &[0], "basket_order_index: ", "has 1 elements"),
            (
                &[1, 0],
                &[0, 0],
                "basket_product_ids[1]: ",
                "= 0: a product id must be >= 1",
            ),
            (&[1, 2], &[0, -1], "basket_order_index[1]: ", "= -1"),
            (&[1, 2], &[0, 1000], "basket_order_index[1]: ", "0..999"),
            (
                &[1, 2],
                &[0, 2],
                "basket_order_index: ",
                "no line has order index 1",
            ),
        ];
        for (ids, index, prefix, rule) in cases {
            let err = History::from_columns(ids, index).unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{err}");
            assert!(err.contains(rule), "{err}");
        }
    }

    #[test]
    fn candidates_are_validated() {
        validate_candidates(&[]).unwrap();
        validate_candidates(&[3, 1, 2]).unwrap();
        let err = validate_candidates(&[3, 1, 3]).unwrap_err();
        assert_eq!((err.field, err.row), ("candidate_product_ids", Some(2)));
        assert!(err.to_string().contains("= 3 repeats element 0"), "{err}");
        let err = validate_candidates(&[3, -4]).unwrap_err().to_string();
        assert!(err.starts_with("candidate_product_ids[1]: = -4"), "{err}");
    }

    #[test]
    fn the_builtin_model_prefers_a_customers_regular_products() {
        let model = Recommender::builtin();
        assert_eq!(model.stats.ids.len(), weights::N_PRODUCTS);
        assert!(model.stats.ids.windows(2).all(|w| w[0] < w[1]));
        assert!(model.stats.popular.len() >= TOP_K);
        // Product 196 in every one of 8 orders, 10 and 11 once each long ago.
        let mut orders: Vec<Vec<i64>> = (0..8).map(|_| vec![196]).collect();
        orders[7].extend([10, 11]);
        let history = History { orders };
        let top = model.recommend(&history, TOP_K);
        assert_eq!(top.len(), TOP_K);
        assert_eq!(top[0].product, 196);
        assert!(top[0].score > 0.5, "{:?}", top[0]);
        assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
        let ranked = model.rank_candidates(&history, &[10, 196, 999_999]);
        assert_eq!(ranked[0].product, 196);
        // Cold start: the most popular products.
        let cold = model.recommend(&History::default(), TOP_K);
        assert!(
            cold.iter()
                .all(|s| model.stats.popular.contains(&s.product))
        );
        assert!(builtin_description().contains("hit rate@10"));
    }
}
