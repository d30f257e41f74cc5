//! The model's arithmetic and its interface, in plain Rust with no dependencies.
//!
//! Everything here builds natively and for `wasm32-wasip2`: the component calls it with the
//! weights compiled in ([`Churn::builtin`]); the trainer calls it with freshly fitted weights, to
//! evaluate, to compute the manifest's examples and the description it writes, so that the
//! manifest and the component's `metadata()` come from one source.
//!
//! The score is a small gradient-boosted ensemble of regression trees on the log-odds of churn,
//! over [`N_FEATURES`] features derived from the four inputs (among them the BG/NBD probability
//! that the customer is still active). Expected purchases come from the BG/NBD model alone.

use core::fmt::{self, Write as _};

use crate::weights;

/// The model's name, as used in URLs (`/v2/models/churn`).
pub const NAME: &str = "churn";
/// The model's version.
pub const VERSION: &str = "1.0.4";
/// The number of inputs per customer.
pub const N_INPUTS: usize = 4;
/// The number of features the trees split on.
pub const N_FEATURES: usize = 8;
/// How many drivers `top_drivers` lists per customer.
pub const TOP_DRIVERS: usize = 3;
/// Days per week: BG/NBD is fitted with time in weeks.
pub const DAYS_PER_WEEK: f64 = 7.0;

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

/// The input tensors, in order; each is FP64, shape `[-1]`, one element per customer, all
/// measured at the analysis date (the end of the customer's observed history).
pub const INPUTS: [(&str, &str); N_INPUTS] = [
    (
        "recency_days",
        "Days from the customer's last purchase to the analysis date (0 = bought on that day); \
         a number >= 0 and <= tenure_days.",
    ),
    (
        "frequency",
        "Repeat purchase days up to the analysis date: the number of distinct calendar days with \
         at least one purchase, minus one for the first (0 = bought on one day only); a whole \
         number >= 0 and <= tenure_days - recency_days.",
    ),
    (
        "monetary_value",
        "Average spend per purchase day in US dollars over all purchase days up to the analysis \
         date (the first included): total spend divided by (frequency + 1); a number >= 0.",
    ),
    (
        "tenure_days",
        "Days from the customer's first purchase to the analysis date; a number >= recency_days.",
    ),
];

/// The features the trees split on, in order; all are computed from the inputs.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "recency_days",
    "frequency",
    "monetary_value",
    "tenure_days",
    "active_span_days",
    "recency_share",
    "purchase_rate",
    "bgnbd_p_alive",
];

/// Description of the `churn_probability` output.
pub const CHURN_PROBABILITY_DESCRIPTION: &str = "Probability that the customer makes no purchase \
     in the next 273 days (39 weeks) after the analysis date, 0..1, from the gradient-boosted \
     trees.";
/// Description of the `expected_purchases` output.
pub const EXPECTED_PURCHASES_DESCRIPTION: &str = "Expected number of purchase days in the next 273 \
     days (39 weeks) after the analysis date: the BG/NBD conditional expectation given recency, \
     frequency and tenure (monetary value is not used).";
/// Description of the `p_alive` output.
pub const P_ALIVE_DESCRIPTION: &str = "BG/NBD probability that the customer is still active \
     (has not dropped out) at the analysis date, 0..1.";
/// Description of the `top_drivers` output.
pub const TOP_DRIVERS_DESCRIPTION: &str = "The three features that moved this customer's churn \
     score most, as UTF-8 \"name:+0.84;name:-0.31;name:+0.05\", largest magnitude first: each \
     figure is the feature's contribution to the log-odds of churn (positive = towards churn) \
     relative to the average training customer, summed over the trees' split paths. Features: \
     recency_days, frequency, monetary_value, tenure_days, active_span_days (tenure - recency), \
     recency_share (recency / tenure), purchase_rate (repeat purchase days per 30 days of tenure), \
     bgnbd_p_alive.";

/// The inputs the model accepts.
pub fn input_specs() -> Vec<IoSpec> {
    INPUTS
        .iter()
        .map(|&(name, description)| IoSpec {
            name,
            datatype: "FP64",
            shape: vec![-1],
            description,
        })
        .collect()
}

/// The outputs the model returns.
pub fn output_specs() -> Vec<IoSpec> {
    let fp64 = |name, description| IoSpec {
        name,
        datatype: "FP64",
        shape: vec![-1],
        description,
    };
    vec![
        fp64("churn_probability", CHURN_PROBABILITY_DESCRIPTION),
        fp64("expected_purchases", EXPECTED_PURCHASES_DESCRIPTION),
        fp64("p_alive", P_ALIVE_DESCRIPTION),
        IoSpec {
            name: "top_drivers",
            datatype: "BYTES",
            shape: vec![-1],
            description: TOP_DRIVERS_DESCRIPTION,
        },
    ]
}

/// The model description: what it predicts, from what (`trained_on`) and how well (`figures`).
pub fn description(trained_on: &str, figures: &str) -> String {
    format!(
        "Predicts whether a customer will buy nothing in the next 39 weeks, from recency, repeat \
         purchase days, average spend and tenure at the analysis date: gradient-boosted trees on \
         those figures and the BG/NBD probability of being active, trained on {trained_on}; also \
         returns the BG/NBD expected purchase days in those 39 weeks and the features that drove \
         the score. {figures}"
    )
}

/// The description of the built-in model.
pub fn builtin_description() -> String {
    description(weights::TRAINED_ON, weights::FIGURES)
}

/// One customer's summary at the analysis date, in the units of [`INPUTS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Customer {
    /// Days since the last purchase.
    pub recency_days: f64,
    /// Repeat purchase days (distinct purchase days - 1).
    pub frequency: f64,
    /// Average spend per purchase day, USD.
    pub monetary_value: f64,
    /// Days since the first purchase.
    pub tenure_days: f64,
}

impl Customer {
    /// The inputs in order.
    pub fn inputs(&self) -> [f64; N_INPUTS] {
        [
            self.recency_days,
            self.frequency,
            self.monetary_value,
            self.tenure_days,
        ]
    }

    /// Days from the first to the last purchase.
    pub fn active_span_days(&self) -> f64 {
        self.tenure_days - self.recency_days
    }

    /// Checks that the figures describe a possible customer; `row` is named in the error.
    pub fn validate(&self, row: usize) -> Result<(), InputError> {
        let fail = |field: &'static str, value: f64, rule: &'static str| {
            Err(InputError {
                row,
                field,
                value,
                rule,
            })
        };
        for (&(field, _), value) in INPUTS.iter().zip(self.inputs()) {
            if !value.is_finite() {
                return fail(field, value, "must be a finite number");
            }
            if value < 0.0 {
                return fail(field, value, "must be >= 0");
            }
        }
        if self.frequency.fract() != 0.0 {
            return fail(
                "frequency",
                self.frequency,
                "must be a whole number of repeat purchase days",
            );
        }
        if self.recency_days > self.tenure_days {
            return fail(
                "recency_days",
                self.recency_days,
                "must be <= tenure_days (the last purchase cannot precede the first)",
            );
        }
        if self.frequency > self.active_span_days() {
            return fail(
                "frequency",
                self.frequency,
                "must be <= tenure_days - recency_days (at most one repeat purchase day per day \
                 between the first and the last purchase)",
            );
        }
        Ok(())
    }
}

/// Why a row was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The row, counted from 0.
    pub row: usize,
    /// The input tensor's name.
    pub field: &'static str,
    /// The refused value.
    pub value: f64,
    /// The rule it breaks.
    pub rule: &'static str,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "row {}: {} = {} {}",
            self.row, self.field, self.value, self.rule
        )
    }
}

impl std::error::Error for InputError {}

/// BG/NBD (Fader, Hardie & Lee 2005) parameters, time in weeks: purchase rates are
/// Gamma(r, alpha) across customers, drop-out probabilities after each purchase Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    /// Shape of the purchase-rate gamma.
    pub r: f64,
    /// Rate (scale, in weeks) of the purchase-rate gamma.
    pub alpha: f64,
    /// First shape of the drop-out beta.
    pub a: f64,
    /// Second shape of the drop-out beta.
    pub b: f64,
}

/// Gauss's hypergeometric function 2F1(a, b; c; z) for 0 <= z < 1, by its power series.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let (mut term, mut sum) = (1.0, 1.0);
    for n in 0..100_000 {
        let n = n as f64;
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if term.abs() <= 1e-15 * sum.abs() {
            break;
        }
    }
    sum
}

impl BgNbd {
    /// `(x, t_x, T)` in BG/NBD's notation, time in weeks.
    fn xtt(c: &Customer) -> (f64, f64, f64) {
        (
            c.frequency,
            c.active_span_days() / DAYS_PER_WEEK,
            c.tenure_days / DAYS_PER_WEEK,
        )
    }

    /// The odds term `a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)` (0 when x = 0).
    fn dropout_odds(&self, c: &Customer) -> f64 {
        let (x, tx, t) = Self::xtt(c);
        if x == 0.0 {
            return 0.0;
        }
        let ln = (self.a / (self.b + x - 1.0)).ln()
            + (self.r + x) * ((self.alpha + t) / (self.alpha + tx)).ln();
        ln.exp()
    }

    /// Probability that the customer is still active at the analysis date.
    pub fn p_alive(&self, c: &Customer) -> f64 {
        1.0 / (1.0 + self.dropout_odds(c))
    }

    /// Probability of no purchase in the `days` after the analysis date: dropped out, or active
    /// with no purchase (`((alpha + T) / (alpha + T + tau))^(r + x)` under the posterior rate).
    pub fn p_no_purchase(&self, c: &Customer, days: f64) -> f64 {
        let (x, _, t) = Self::xtt(c);
        let tau = days / DAYS_PER_WEEK;
        let alive = self.p_alive(c);
        let silent = ((self.alpha + t) / (self.alpha + t + tau)).powf(self.r + x);
        (1.0 - alive) + alive * silent
    }

    /// Expected purchase days in the `days` after the analysis date (the conditional
    /// expectation of Fader, Hardie & Lee 2005, eq. 10); `a` must not be exactly 1.
    pub fn expected_purchases(&self, c: &Customer, days: f64) -> f64 {
        let (x, _, t) = Self::xtt(c);
        let tau = days / DAYS_PER_WEEK;
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let z = tau / (alpha + t + tau);
        let f = hyp2f1(r + x, b + x, a + b + x - 1.0, z);
        let head = (a + b + x - 1.0) / (a - 1.0);
        let tail = 1.0 - ((alpha + t) / (alpha + t + tau)).powf(r + x) * f;
        head * tail / (1.0 + self.dropout_odds(c))
    }
}

/// The features the trees split on, in the order of [`FEATURE_NAMES`].
pub fn features(c: &Customer, bgnbd: &BgNbd) -> [f64; N_FEATURES] {
    let share = if c.tenure_days > 0.0 {
        c.recency_days / c.tenure_days
    } else {
        0.0
    };
    [
        c.recency_days,
        c.frequency,
        c.monetary_value,
        c.tenure_days,
        c.active_span_days(),
        share,
        30.0 * c.frequency / (c.tenure_days + 1.0),
        bgnbd.p_alive(c),
    ]
}

/// One node of a regression tree. A split sends `x[feature] <= threshold` to `left`, the rest
/// to `right`; a leaf has `feature == LEAF`. `value` is the node's prediction (log-odds, scaled by
/// the learning rate) — at inner nodes too, for the per-feature contributions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    /// The feature index, or [`LEAF`].
    pub feature: u32,
    /// The split threshold.
    pub threshold: f64,
    /// Index of the left child in the tree's node slice.
    pub left: u32,
    /// Index of the right child.
    pub right: u32,
    /// The node's prediction.
    pub value: f64,
}

/// The `feature` of a leaf.
pub const LEAF: u32 = u32::MAX;

/// A fitted model: the BG/NBD parameters and the boosted trees.
#[derive(Debug, Clone, Copy)]
pub struct Churn<'a> {
    /// BG/NBD parameters (time in weeks).
    pub bgnbd: BgNbd,
    /// The log-odds every tree adds to.
    pub base_score: f64,
    /// The trees, laid out for evaluation: built at compile time from `weights.rs`'s nodes for
    /// [`Churn::builtin`], by [`CompleteTreesBuf`] for trees fitted at run time.
    pub complete: CompleteTrees<'a>,
    /// The horizon, days after the analysis date.
    pub horizon_days: f64,
}

/// The trees of an ensemble laid out for evaluation: each completed to the depth of the deepest
/// and stored in heap order (position `i`'s children at `2i + 1` and `2i + 2`), with the split
/// features and thresholds of the inner positions and the values of all positions in three flat
/// arrays. A leaf above the full depth becomes a split whose two children repeat its value: the
/// path through it adds exactly 0.0 to the score and to a contribution, which leaves both as they
/// were (neither is ever -0.0: a sum from +0.0 that cancels is +0.0). So the walk does the
/// arithmetic of a walk over the nodes, in the same order, with no branch on a tree's shape and
/// no node copied: inside the sandbox that walk kept more values than Cranelift had registers for
/// (docs/benchmarks.md, "The fifteenth round").
#[derive(Debug, Clone, Copy)]
pub struct CompleteTrees<'a> {
    /// The depth every tree is completed to (0: every tree is a single leaf).
    pub depth: usize,
    /// `2^depth - 1` split features per tree.
    pub features: &'a [u8],
    /// `2^depth - 1` split thresholds per tree (`+inf` where a leaf was completed).
    pub thresholds: &'a [f64],
    /// `2^(depth + 1) - 1` node values per tree.
    pub values: &'a [f64],
}

/// The depth of the deepest tree (0 when every tree is a leaf).
pub const fn max_depth(nodes: &[Node], tree_starts: &[u32]) -> usize {
    let mut deepest = 0;
    let mut t = 0;
    while t < tree_starts.len() {
        let depth = depth_below(nodes, tree_starts[t] as usize, 0);
        if depth > deepest {
            deepest = depth;
        }
        t += 1;
    }
    deepest
}

const fn depth_below(nodes: &[Node], start: usize, at: usize) -> usize {
    let node = &nodes[start + at];
    if node.feature == LEAF {
        return 0;
    }
    let left = depth_below(nodes, start, node.left as usize);
    let right = depth_below(nodes, start, node.right as usize);
    1 + if left > right { left } else { right }
}

/// The node at heap position `position` of the completed tree that starts at `start`: the
/// binary digits of `position + 1` after its leading 1 spell the path (0 left, 1 right), and a
/// path that reaches a leaf stays on it.
pub const fn node_at(nodes: &[Node], start: usize, position: usize) -> &Node {
    let key = position + 1;
    let mut level = usize::BITS - 1 - key.leading_zeros();
    let mut at = 0;
    while level > 0 {
        level -= 1;
        let node = &nodes[start + at];
        if node.feature != LEAF {
            at = if (key >> level) & 1 == 0 {
                node.left
            } else {
                node.right
            } as usize;
        }
    }
    &nodes[start + at]
}

/// The split feature of inner position `i` of [`CompleteTrees::features`] (`i` counts over all
/// trees): 0 where a leaf was completed.
pub const fn complete_feature(nodes: &[Node], tree_starts: &[u32], depth: usize, i: usize) -> u8 {
    let inner = (1 << depth) - 1;
    let node = node_at(nodes, tree_starts[i / inner] as usize, i % inner);
    if node.feature == LEAF {
        0
    } else if node.feature < N_FEATURES as u32 {
        node.feature as u8
    } else {
        panic!("a split on a feature the model does not have")
    }
}

/// The split threshold of inner position `i` (over all trees): `+inf` where a leaf was completed.
pub const fn complete_threshold(
    nodes: &[Node],
    tree_starts: &[u32],
    depth: usize,
    i: usize,
) -> f64 {
    let inner = (1 << depth) - 1;
    let node = node_at(nodes, tree_starts[i / inner] as usize, i % inner);
    if node.feature == LEAF {
        f64::INFINITY
    } else {
        node.threshold
    }
}

/// The value of position `i` (over all trees) of [`CompleteTrees::values`].
pub const fn complete_value(nodes: &[Node], tree_starts: &[u32], depth: usize, i: usize) -> f64 {
    let all = (1 << (depth + 1)) - 1;
    node_at(nodes, tree_starts[i / all] as usize, i % all).value
}

/// Owned [`CompleteTrees`], for an ensemble fitted at run time (the trainer's).
#[derive(Debug, Clone, PartialEq)]
pub struct CompleteTreesBuf {
    depth: usize,
    features: Vec<u8>,
    thresholds: Vec<f64>,
    values: Vec<f64>,
}

impl CompleteTreesBuf {
    /// Lays out the trees of `nodes` that start at `tree_starts`.
    pub fn new(nodes: &[Node], tree_starts: &[u32]) -> Self {
        let depth = max_depth(nodes, tree_starts);
        let n = tree_starts.len();
        let inner = 0..n * ((1 << depth) - 1);
        CompleteTreesBuf {
            depth,
            features: inner
                .clone()
                .map(|i| complete_feature(nodes, tree_starts, depth, i))
                .collect(),
            thresholds: inner
                .map(|i| complete_threshold(nodes, tree_starts, depth, i))
                .collect(),
            values: (0..n * ((1 << (depth + 1)) - 1))
                .map(|i| complete_value(nodes, tree_starts, depth, i))
                .collect(),
        }
    }

    /// The borrowed form a [`Churn`] holds.
    pub fn trees(&self) -> CompleteTrees<'_> {
        CompleteTrees {
            depth: self.depth,
            features: &self.features,
            thresholds: &self.thresholds,
            values: &self.values,
        }
    }
}

/// The built-in trees ([`weights`]), completed at compile time.
mod builtin {
    use super::*;
    use crate::weights::{NODES, TREE_STARTS};

    pub const DEPTH: usize = max_depth(&NODES, &TREE_STARTS);
    const INNER: usize = TREE_STARTS.len() * ((1 << DEPTH) - 1);
    const ALL: usize = TREE_STARTS.len() * ((1 << (DEPTH + 1)) - 1);

    /// `[element(&NODES, &TREE_STARTS, DEPTH, i) for i in 0..len]`, at compile time.
    macro_rules! complete {
        ($element:ident, $len:expr, $zero:expr) => {{
            let mut out = [$zero; $len];
            let mut i = 0;
            while i < $len {
                out[i] = $element(&NODES, &TREE_STARTS, DEPTH, i);
                i += 1;
            }
            out
        }};
    }

    pub static FEATURES: [u8; INNER] = complete!(complete_feature, INNER, 0);
    pub static THRESHOLDS: [f64; INNER] = complete!(complete_threshold, INNER, 0.0);
    pub static VALUES: [f64; ALL] = complete!(complete_value, ALL, 0.0);
}

/// One customer's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Probability of no purchase over the horizon.
    pub churn_probability: f64,
    /// BG/NBD expected purchase days over the horizon.
    pub expected_purchases: f64,
    /// BG/NBD probability of being active.
    pub p_alive: f64,
    /// Each feature's contribution to the log-odds of churn, in [`FEATURE_NAMES`] order.
    pub contributions: [f64; N_FEATURES],
}

impl Prediction {
    /// The [`TOP_DRIVERS`] largest contributions by magnitude, as `name:+0.84;…` (ties go to
    /// the earlier feature). Each figure is what `format!("{:+.2}")` writes, written by
    /// [`push_signed_hundredths`]: a request of many rows builds one of these per row, and
    /// Rust's float formatting, with its 128-bit products and its allocations, was half of the
    /// component's time (docs/benchmarks.md, "The fifteenth round").
    pub fn top_drivers(&self) -> String {
        let mut order: [usize; N_FEATURES] = core::array::from_fn(|i| i);
        order.sort_unstable_by(|&i, &j| {
            self.contributions[j]
                .abs()
                .total_cmp(&self.contributions[i].abs())
                .then(i.cmp(&j))
        });
        let mut text = String::with_capacity(TOP_DRIVERS * 24);
        for (n, &i) in order.iter().take(TOP_DRIVERS).enumerate() {
            if n > 0 {
                text.push(';');
            }
            text.push_str(FEATURE_NAMES[i]);
            text.push(':');
            push_signed_hundredths(&mut text, self.contributions[i]);
        }
        text
    }
}

/// Appends `x` as `format!("{x:+.2}")` does: a sign (`-` for every negative number, -0.0
/// included), the integer part, and two decimals, rounded from `x`'s exact binary value, ties to
/// even. A finite `|x|` below 2^52 is done in integers: `x = m · 2^e` exactly, so
/// `100 · |x| = 100 · m · 2^e` with `100 · m < 2^60`, which a 64-bit shift rounds exactly; anything else goes to
/// `format!`.
pub fn push_signed_hundredths(text: &mut String, x: f64) {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if !x.is_finite() || biased >= 1023 + 52 {
        text.push_str(&format!("{x:+.2}"));
        return;
    }
    let fraction = bits & ((1 << 52) - 1);
    // |x| = m · 2^-shift, with m < 2^53 and shift >= 1.
    let (m, shift) = if biased == 0 {
        (fraction, 1074)
    } else {
        (fraction | (1 << 52), (1075 - biased) as u32)
    };
    let scaled = m * 100;
    let hundredths = if shift >= 64 {
        // 100 · m < 2^60 is below half of 2^64.
        0
    } else {
        let (whole, rest, half) = (
            scaled >> shift,
            scaled & ((1 << shift) - 1),
            1 << (shift - 1),
        );
        if rest > half || (rest == half && whole & 1 == 1) {
            whole + 1
        } else {
            whole
        }
    };
    text.push(if x.is_sign_negative() { '-' } else { '+' });
    let whole = hundredths / 100;
    if whole < 10 {
        text.push(char::from(b'0' + whole as u8));
    } else {
        // Writing to a String cannot fail.
        let _ = write!(text, "{whole}");
    }
    let cents = (hundredths % 100) as u8;
    text.push('.');
    text.push(char::from(b'0' + cents / 10));
    text.push(char::from(b'0' + cents % 10));
}
/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Churn<'static> {
    /// The model compiled into this crate (`weights.rs`).
    pub fn builtin() -> Self {
        Churn {
            bgnbd: weights::BGNBD,
            base_score: weights::BASE_SCORE,
            complete: CompleteTrees {
                depth: builtin::DEPTH,
                features: &builtin::FEATURES,
                thresholds: &builtin::THRESHOLDS,
                values: &builtin::VALUES,
            },
            horizon_days: weights::HORIZON_DAYS,
        }
    }
}

impl Churn<'_> {
    /// The log-odds of churn for a feature vector, and each feature's contribution to it
    /// (the change of node value along the path, credited to the split's feature).
    pub fn log_odds(&self, x: &[f64; N_FEATURES]) -> (f64, [f64; N_FEATURES]) {
        let mut z = self.base_score;
        let mut contributions = [0.0; N_FEATURES];
        // Each depth its own copy of the walk, its steps unrolled: one loop iteration per tree
        // (inside the sandbox each loop iteration also checks the call's CPU deadline). Each copy
        // is a function of its own, so that it gets the registers to itself.
        let (z_, c_) = (&mut z, &mut contributions);
        match self.complete.depth {
            0 => self.walk::<0>(0, x, z_, c_),
            1 => self.walk::<1>(1, x, z_, c_),
            2 => self.walk::<2>(2, x, z_, c_),
            3 => self.walk::<3>(3, x, z_, c_),
            4 => self.walk::<4>(4, x, z_, c_),
            5 => self.walk::<5>(5, x, z_, c_),
            6 => self.walk::<6>(6, x, z_, c_),
            7 => self.walk::<7>(7, x, z_, c_),
            8 => self.walk::<8>(8, x, z_, c_),
            depth => self.walk::<9>(depth, x, z_, c_),
        }
        (z, contributions)
    }

    /// The walk over trees completed to `depth`; `COPY` only names the copy (`depth` for the
    /// depths the trainer fits, 9 for any other).
    #[inline(never)]
    fn walk<const COPY: usize>(
        &self,
        depth: usize,
        x: &[f64; N_FEATURES],
        z: &mut f64,
        contributions: &mut [f64; N_FEATURES],
    ) {
        // A constant in each copy but the last, so that its steps are unrolled.
        let depth = if COPY <= 8 { COPY } else { depth };
        let trees = &self.complete;
        if depth == 0 {
            for &value in trees.values {
                *z += value;
            }
            return;
        }
        let inner = (1 << depth) - 1;
        let splits = trees
            .features
            .chunks_exact(inner)
            .zip(trees.thresholds.chunks_exact(inner));
        for ((features, thresholds), values) in splits.zip(trees.values.chunks_exact(2 * inner + 1))
        {
            let mut at = 0;
            let mut value = values[0];
            // The root's value is the tree's share of the average; paths move away from it.
            *z += value;
            for _ in 0..depth {
                let f = features[at] as usize;
                // Left when at or below the threshold; right otherwise, NaN included.
                let right = if x[f] <= thresholds[at] { 0 } else { 1 };
                at = 2 * at + 1 + right;
                let next = values[at];
                contributions[f] += next - value;
                *z += next - value;
                value = next;
            }
        }
    }

    /// The prediction for one valid customer.
    pub fn predict(&self, c: &Customer) -> Prediction {
        let x = features(c, &self.bgnbd);
        let (z, contributions) = self.log_odds(&x);
        Prediction {
            churn_probability: sigmoid(z),
            expected_purchases: self.bgnbd.expected_purchases(c, self.horizon_days),
            p_alive: x[7],
            contributions,
        }
    }

    /// Validates then predicts every customer; the first invalid row fails the batch.
    pub fn predict_all(&self, customers: &[Customer]) -> Result<Vec<Prediction>, InputError> {
        customers
            .iter()
            .enumerate()
            .map(|(row, c)| c.validate(row).map(|()| self.predict(c)))
            .collect()
    }
}

/// Builds customers from the four input columns; they must have equal lengths.
pub fn customers_from_columns(
    recency_days: &[f64],
    frequency: &[f64],
    monetary_value: &[f64],
    tenure_days: &[f64],
) -> Result<Vec<Customer>, String> {
    let n = recency_days.len();
    for (&(name, _), len) in INPUTS.iter().zip([
        recency_days.len(),
        frequency.len(),
        monetary_value.len(),
        tenure_days.len(),
    ]) {
        if len != n {
            return Err(format!(
                "input {name} has {len} elements but recency_days has {n}: every input needs one \
                 element per customer"
            ));
        }
    }
    Ok((0..n)
        .map(|i| Customer {
            recency_days: recency_days[i],
            frequency: frequency[i],
            monetary_value: monetary_value[i],
            tenure_days: tenure_days[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(
        recency_days: f64,
        frequency: f64,
        monetary_value: f64,
        tenure_days: f64,
    ) -> Customer {
        Customer {
            recency_days,
            frequency,
            monetary_value,
            tenure_days,
        }
    }

    #[test]
    fn hyp2f1_known_values() {
        // 2F1(1, 1; 2; z) = -ln(1 - z) / z.
        for z in [0.1_f64, 0.5, 0.8] {
            let expected = -(1.0 - z).ln() / z;
            assert!(
                (hyp2f1(1.0, 1.0, 2.0, z) - expected).abs() < 1e-12,
                "z = {z}"
            );
        }
        assert_eq!(hyp2f1(3.0, 4.0, 5.0, 0.0), 1.0);
    }

    #[test]
    fn bgnbd_formulas() {
        let bg = BgNbd {
            r: 0.25,
            alpha: 4.4,
            a: 0.8,
            b: 2.4,
        };
        // One-time buyers cannot have dropped out.
        assert_eq!(bg.p_alive(&customer(100.0, 0.0, 10.0, 200.0)), 1.0);
        // A repeat buyer silent for longer is less likely active.
        let recent = customer(10.0, 3.0, 10.0, 200.0);
        let lapsed = customer(150.0, 3.0, 10.0, 200.0);
        assert!(bg.p_alive(&recent) > bg.p_alive(&lapsed));
        assert!(bg.expected_purchases(&recent, 273.0) > bg.expected_purchases(&lapsed, 273.0));
        // Hand-computed P(alive): 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)).
        let (t, tx): (f64, f64) = (200.0 / 7.0, 50.0 / 7.0);
        let odds = 0.8 / (2.4 + 2.0) * ((4.4 + t) / (4.4 + tx)).powf(3.25);
        assert!((bg.p_alive(&customer(150.0, 3.0, 1.0, 200.0)) - 1.0 / (1.0 + odds)).abs() < 1e-12);
        for c in [recent, lapsed, customer(0.0, 0.0, 5.0, 0.0)] {
            let p = bg.p_no_purchase(&c, 273.0);
            assert!((0.0..=1.0).contains(&p));
            assert!((bg.p_no_purchase(&c, 0.0) - 1.0).abs() < 1e-12);
            assert!(bg.expected_purchases(&c, 273.0) > 0.0);
            assert!(bg.expected_purchases(&c, 1e-9) < 1e-6);
        }
    }

    /// `push_signed_hundredths` writes what `format!("{:+.2}")` writes, for every kind of
    /// double: exact ties at the last decimal, both zeros, subnormals, the largest values done in
    /// integers and those past them, and random bit patterns spread over all exponents.
    #[test]
    fn signed_hundredths_match_rust_formatting() {
        let check = |x: f64| {
            let mut text = String::new();
            push_signed_hundredths(&mut text, x);
            assert_eq!(text, format!("{x:+.2}"), "bits {:#018x}", x.to_bits());
        };
        for k in -4000..=4000 {
            // Multiples of 1/8 include every exact tie at the second decimal (x.xx5).
            check(k as f64 / 8.0);
            check(k as f64 / 100.0);
            check(k as f64 / 1000.0);
            check(k as f64 * 0.005);
        }
        for x in [
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::from_bits(1),
            -f64::from_bits(1),
            0.004999999999999999,
            0.005,
            0.015,
            1.005,
            2.675,
            9.995,
            99.995,
            (1u64 << 52) as f64 - 0.5,
            (1u64 << 53) as f64 - 1.0,
            (1u64 << 53) as f64,
            1e300,
            -1e300,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            check(x);
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            check(f64::from_bits(state));
            // And values of the size contributions have: |x| up to about 16.
            let small = f64::from_bits(state >> 12 | 0x3ff0_0000_0000_0000) - 1.0;
            check(small * 16.0 - 8.0);
        }
    }

    #[test]
    fn known_customers_are_ranked_sensibly() {
        let model = Churn::builtin();
        let regular = model.predict(&customer(5.0, 8.0, 30.0, 250.0));
        let one_timer = model.predict(&customer(250.0, 0.0, 15.0, 250.0));
        assert!(regular.churn_probability < 0.5, "{regular:?}");
        assert!(one_timer.churn_probability > 0.7, "{one_timer:?}");
        assert!(regular.expected_purchases > one_timer.expected_purchases);
        // The one-timer's recency pushes towards churn.
        let drivers = one_timer.top_drivers();
        assert!(drivers.contains(":+"), "{drivers}");
    }

    /// The walk over the trees of `nodes` starting at `tree_starts`, as the component did it
    /// before [`CompleteTrees`]: what the complete walk must reproduce bit for bit.
    fn node_walk(
        model: &Churn<'_>,
        nodes: &[Node],
        tree_starts: &[u32],
        x: &[f64; N_FEATURES],
    ) -> (f64, [f64; N_FEATURES]) {
        let mut z = model.base_score;
        let mut contributions = [0.0; N_FEATURES];
        for &start in tree_starts {
            let tree = &nodes[start as usize..];
            let mut node = tree[0];
            z += node.value;
            while node.feature != LEAF {
                let f = node.feature as usize;
                let next = if x[f] <= node.threshold {
                    tree[node.left as usize]
                } else {
                    tree[node.right as usize]
                };
                contributions[f] += next.value - node.value;
                z += next.value - node.value;
                node = next;
            }
        }
        (z, contributions)
    }

    fn bits(p: (f64, [f64; N_FEATURES])) -> Vec<u64> {
        std::iter::once(p.0).chain(p.1).map(f64::to_bits).collect()
    }

    /// The built-in trees walked completed give the node walk's score and contributions, bit for
    /// bit, over a grid of customers and of raw feature vectors (NaN and infinities included).
    #[test]
    fn the_complete_walk_is_the_node_walk() {
        let model = Churn::builtin();
        let (nodes, starts) = (&weights::NODES[..], &weights::TREE_STARTS[..]);
        assert_eq!(model.complete.depth, max_depth(nodes, starts));
        let buf = CompleteTreesBuf::new(nodes, starts);
        assert_eq!(buf.trees().features, model.complete.features);
        assert_eq!(
            buf.trees()
                .thresholds
                .iter()
                .map(|t| t.to_bits())
                .collect::<Vec<_>>(),
            model
                .complete
                .thresholds
                .iter()
                .map(|t| t.to_bits())
                .collect::<Vec<_>>()
        );
        assert_eq!(buf.trees().values, model.complete.values);
        for recency in [0.0, 3.0, 30.0, 90.0, 200.0] {
            for frequency in [0.0, 1.0, 4.0, 20.0] {
                for monetary in [0.0, 12.5, 80.0] {
                    let c = customer(recency, frequency, monetary, 250.0);
                    let x = features(&c, &model.bgnbd);
                    assert_eq!(
                        bits(model.log_odds(&x)),
                        bits(node_walk(&model, nodes, starts, &x)),
                        "{c:?}"
                    );
                }
            }
        }
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e-300];
        for (i, &special) in specials.iter().enumerate() {
            for f in 0..N_FEATURES {
                let mut x: [f64; N_FEATURES] = core::array::from_fn(|j| (i * 7 + j) as f64 * 0.37);
                x[f] = special;
                assert_eq!(
                    bits(model.log_odds(&x)),
                    bits(node_walk(&model, nodes, starts, &x)),
                    "{x:?}"
                );
            }
        }
    }

    /// Trees of different depths, leaves above the full depth on either side, and a single-leaf
    /// tree: completed, they are walked as their nodes are.
    #[test]
    fn uneven_trees_are_completed_exactly() {
        let split = |feature, threshold, left, right, value| Node {
            feature,
            threshold,
            left,
            right,
            value,
        };
        let leaf = |value| split(LEAF, 0.0, 0, 0, value);
        let nodes = [
            // A stump.
            split(2, 1.5, 1, 2, 0.1),
            leaf(-0.2),
            leaf(0.3),
            // Depth 3 on the left, a leaf on the right.
            split(0, 10.0, 1, 6, 0.05),
            split(1, 2.0, 2, 3, -0.1),
            leaf(-0.4),
            split(7, 0.5, 4, 5, 0.2),
            leaf(0.25),
            leaf(0.7),
            leaf(0.6),
            // A single leaf.
            leaf(-0.125),
        ];
        let starts = [0, 3, 10];
        let buf = CompleteTreesBuf::new(&nodes, &starts);
        assert_eq!(buf.trees().depth, 3);
        let model = Churn {
            complete: buf.trees(),
            ..Churn::builtin()
        };
        for a in [0.0, 1.5, 2.0, 10.0, 11.0, f64::NAN] {
            for b in [1.0, 2.0, 3.0, f64::NAN] {
                for c in [0.0, 0.5, 1.0, f64::NAN] {
                    let mut x = [0.0; N_FEATURES];
                    (x[0], x[1], x[2], x[7]) = (a, b, c, c);
                    assert_eq!(
                        bits(model.log_odds(&x)),
                        bits(node_walk(&model, &nodes, &starts, &x)),
                        "{x:?}"
                    );
                }
            }
        }
        let leaves = CompleteTreesBuf::new(&nodes[10..], &[0]);
        assert_eq!(leaves.trees().depth, 0);
        let only_leaf = Churn {
            complete: leaves.trees(),
            ..Churn::builtin()
        };
        let x = [1.0; N_FEATURES];
        assert_eq!(
            bits(only_leaf.log_odds(&x)),
            bits(node_walk(&only_leaf, &nodes[10..], &[0], &x))
        );
    }

    #[test]
    fn contributions_add_up_to_the_score() {
        let model = Churn::builtin();
        let roots: f64 = weights::TREE_STARTS
            .iter()
            .map(|&s| weights::NODES[s as usize].value)
            .sum();
        for c in [
            customer(5.0, 8.0, 30.0, 250.0),
            customer(120.0, 2.0, 60.0, 240.0),
            customer(250.0, 0.0, 15.0, 250.0),
        ] {
            let p = model.predict(&c);
            let z = model.base_score + roots + p.contributions.iter().sum::<f64>();
            assert!((sigmoid(z) - p.churn_probability).abs() < 1e-12);
            let drivers = p.top_drivers();
            let parts: Vec<&str> = drivers.split(';').collect();
            assert_eq!(parts.len(), TOP_DRIVERS, "{drivers}");
            let mut last = f64::INFINITY;
            for part in parts {
                let (name, value) = part.split_once(':').unwrap();
                assert!(FEATURE_NAMES.contains(&name), "{part}");
                let v: f64 = value.parse().unwrap();
                assert!(v.abs() <= last + 0.005, "{drivers}");
                last = v.abs();
            }
        }
    }

    #[test]
    fn invalid_rows_are_refused_with_row_and_field() {
        let model = Churn::builtin();
        let good = customer(10.0, 2.0, 20.0, 100.0);
        let cases = [
            (
                customer(-1.0, 2.0, 20.0, 100.0),
                "recency_days",
                "must be >= 0",
            ),
            (
                customer(10.0, -1.0, 20.0, 100.0),
                "frequency",
                "must be >= 0",
            ),
            (
                customer(10.0, 2.5, 20.0, 100.0),
                "frequency",
                "whole number",
            ),
            (
                customer(10.0, 2.0, f64::NAN, 100.0),
                "monetary_value",
                "finite",
            ),
            (
                customer(10.0, 2.0, 20.0, f64::INFINITY),
                "tenure_days",
                "finite",
            ),
            (
                customer(150.0, 2.0, 20.0, 100.0),
                "recency_days",
                "<= tenure_days",
            ),
            (
                customer(95.0, 6.0, 20.0, 100.0),
                "frequency",
                "tenure_days - recency_days",
            ),
        ];
        for (bad, field, rule) in cases {
            let err = model.predict_all(&[good, good, bad]).unwrap_err();
            assert_eq!((err.row, err.field), (2, field), "{err}");
            let text = err.to_string();
            assert!(text.starts_with(&format!("row 2: {field} = ")), "{text}");
            assert!(text.contains(rule), "{text}");
        }
        assert_eq!(model.predict_all(&[good]).unwrap().len(), 1);
        assert!(model.predict_all(&[]).unwrap().is_empty());
    }

    #[test]
    fn columns_must_have_equal_lengths() {
        let err =
            customers_from_columns(&[1.0, 2.0], &[1.0, 1.0], &[3.0], &[5.0, 5.0]).unwrap_err();
        assert!(
            err.contains("monetary_value has 1 elements but recency_days has 2"),
            "{err}"
        );
    }
}
