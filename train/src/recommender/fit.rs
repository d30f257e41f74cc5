//! Product statistics, the logistic regression, the baselines and the metrics.

use anyhow::{Result, ensure};
use serde::Serialize;
use trademl_model_recommender::model::{
    self, History, N_FEATURES, Params, ProductStats, Recommender, TOP_K,
};

use super::data::User;

/// Pseudo-count of a product's reorder rate (shrinks it towards the global rate).
pub const REORDER_PRIOR_WEIGHT: f64 = 5.0;

/// Global product statistics computed from some orders of every customer (owned).
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Product ids, ascending.
    pub ids: Vec<i64>,
    /// Orders containing each product.
    pub orders: Vec<u32>,
    /// Smoothed reorder rate of each product.
    pub reorder_rate: Vec<f64>,
    /// The global reorder rate (share of lines that repeat an earlier order of the customer).
    pub default_reorder_rate: f64,
    /// The same share over the lines of every order but each customer's first.
    pub default_propensity: f64,
    /// The most popular products (most orders first, ties by id).
    pub popular: Vec<i64>,
    /// Orders counted.
    pub n_orders: usize,
}

impl Stats {
    /// Statistics of the first `used(user)` orders of every customer; `n_popular` popular products.
    pub fn compute(users: &[User], used: impl Fn(&User) -> usize, n_popular: usize) -> Stats {
        use std::collections::{BTreeMap, HashSet};
        // product -> (orders, repeats)
        let mut tally: BTreeMap<i64, (u32, u32)> = BTreeMap::new();
        let (mut repeats, mut lines, mut later_repeats, mut later_lines) = (0u64, 0u64, 0u64, 0u64);
        let mut n_orders = 0;
        for u in users {
            let mut seen: HashSet<i64> = HashSet::new();
            for (k, order) in u.orders[..used(u).min(u.orders.len())].iter().enumerate() {
                n_orders += 1;
                for &p in order {
                    let e = tally.entry(p).or_default();
                    e.0 += 1;
                    let repeat = seen.contains(&p);
                    lines += 1;
                    if k > 0 {
                        later_lines += 1;
                    }
                    if repeat {
                        e.1 += 1;
                        repeats += 1;
                        later_repeats += 1;
                    }
                }
                seen.extend(order.iter().copied());
            }
        }
        let global = repeats as f64 / lines.max(1) as f64;
        let propensity = later_repeats as f64 / later_lines.max(1) as f64;
        let mut by_popularity: Vec<(i64, u32)> = tally.iter().map(|(&p, e)| (p, e.0)).collect();
        by_popularity.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Stats {
            ids: tally.keys().copied().collect(),
            orders: tally.values().map(|e| e.0).collect(),
            reorder_rate: tally
                .values()
                .map(|e| {
                    (f64::from(e.1) + REORDER_PRIOR_WEIGHT * global)
                        / (f64::from(e.0) + REORDER_PRIOR_WEIGHT)
                })
                .collect(),
            default_reorder_rate: global,
            default_propensity: propensity,
            popular: by_popularity.iter().take(n_popular).map(|e| e.0).collect(),
            n_orders,
        }
    }

    /// The statistics as the model reads them.
    pub fn view(&self) -> ProductStats<'_> {
        ProductStats {
            ids: &self.ids,
            orders: &self.orders,
            reorder_rate: &self.reorder_rate,
            default_reorder_rate: self.default_reorder_rate,
            default_propensity: self.default_propensity,
            popular: &self.popular,
        }
    }
}

/// The history of a customer made of their first `used` orders (most recent first).
pub fn history(user: &User, used: usize) -> History {
    History {
        orders: user.orders[..used].iter().rev().cloned().collect(),
    }
}

/// One held-out case: a customer's history and the products of the order that followed it.
#[derive(Debug, Clone)]
pub struct Case {
    /// The history, most recent order first.
    pub history: History,
    /// The held-out order's products.
    pub target: Vec<i64>,
}

/// A split: for each customer with enough orders, the order `offset` from the end held out
/// (1 = the last order) and the orders before it as history; statistics from those histories.
#[derive(Debug, Clone)]
pub struct Split {
    /// The held-out cases.
    pub cases: Vec<Case>,
    /// Product statistics from every customer's orders before the held-out one (customers
    /// without a case contribute all their orders up to the same offset).
    pub stats: Stats,
}

impl Split {
    /// Builds the split; customers with fewer than `offset + 1` orders have no case.
    pub fn new(users: &[User], offset: usize, n_popular: usize) -> Split {
        let used = |u: &User| u.orders.len().saturating_sub(offset);
        let stats = Stats::compute(users, used, n_popular);
        let cases = users
            .iter()
            .filter(|u| u.orders.len() > offset)
            .map(|u| Case {
                history: history(u, used(u)),
                target: u.orders[used(u)].clone(),
            })
            .collect();
        Split { cases, stats }
    }
}

/// Hit rate, recall and NDCG at 10 over customers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Share of customers with at least one held-out product in the top 10.
    pub hit_rate: f64,
    /// Share of each held-out order's products in the top 10, averaged over customers.
    pub recall: f64,
    /// NDCG@10 with binary relevance, averaged over customers.
    pub ndcg: f64,
    /// Customers.
    pub users: usize,
}

/// The three metrics of one ranked list against one held-out order.
pub fn score_list(ranked: &[i64], target: &[i64]) -> (f64, f64, f64) {
    let top = &ranked[..ranked.len().min(TOP_K)];
    let mut hits = 0usize;
    let mut dcg = 0.0;
    for (i, p) in top.iter().enumerate() {
        if target.contains(p) {
            hits += 1;
            dcg += 1.0 / ((i + 2) as f64).log2();
        }
    }
    let ideal: f64 = (0..target.len().min(TOP_K))
        .map(|i| 1.0 / ((i + 2) as f64).log2())
        .sum();
    let hit = if hits > 0 { 1.0 } else { 0.0 };
    let recall = if target.is_empty() {
        0.0
    } else {
        hits as f64 / target.len() as f64
    };
    let ndcg = if ideal > 0.0 { dcg / ideal } else { 0.0 };
    (hit, recall, ndcg)
}

/// Averages the metrics of a recommender (a function from a case to a ranked list) over cases.
pub fn measure(cases: &[Case], recommend: impl Fn(&Case) -> Vec<i64>) -> Metrics {
    let mut m = Metrics {
        users: cases.len(),
        ..Metrics::default()
    };
    for case in cases {
        let (h, r, n) = score_list(&recommend(case), &case.target);
        m.hit_rate += h;
        m.recall += r;
        m.ndcg += n;
    }
    let n = cases.len().max(1) as f64;
    m.hit_rate /= n;
    m.recall /= n;
    m.ndcg /= n;
    m
}

/// Buy-again baseline: the customer's most frequently bought products (ties: most recently
/// bought first, then product id), filled with the most popular products.
pub fn buy_again(history: &History, popular: &[i64]) -> Vec<i64> {
    let profile = model::Profile::new(history, 1.0, 0.0);
    let mut items: Vec<(i64, u32, usize)> = profile
        .products
        .iter()
        .map(|(p, t)| (*p, t.count, t.last))
        .collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
    let mut list: Vec<i64> = items.iter().map(|e| e.0).take(TOP_K).collect();
    for &p in popular {
        if list.len() >= TOP_K {
            break;
        }
        if !list.contains(&p) {
            list.push(p);
        }
    }
    list
}

/// Popularity baseline: the 10 products in the most orders, the same for everyone.
pub fn popularity(popular: &[i64]) -> Vec<i64> {
    popular.iter().copied().take(TOP_K).collect()
}

/// The model's top 10 for a case.
pub fn model_list(model: &Recommender, case: &Case) -> Vec<i64> {
    model
        .recommend(&case.history, TOP_K)
        .iter()
        .map(|s| s.product)
        .collect()
}

/// Logistic-regression training rows: every candidate the model would score (history products
/// and popular products) for every case, labelled by the held-out order.
pub fn training_rows(split: &Split, decay: f64) -> (Vec<[f64; N_FEATURES]>, Vec<f64>) {
    let stats = split.stats.view();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for case in &split.cases {
        let profile = model::Profile::new(&case.history, decay, stats.default_propensity);
        let mut candidates: Vec<i64> = profile.products.iter().map(|e| e.0).collect();
        candidates.extend(stats.popular.iter().copied());
        candidates.sort_unstable();
        candidates.dedup();
        for p in candidates {
            x.push(model::features(&profile, &stats, p));
            y.push(if case.target.contains(&p) { 1.0 } else { 0.0 });
        }
    }
    (x, y)
}

/// Solves `a x = b` (symmetric positive definite, small) by Gaussian elimination with pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let d = a[col][col];
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for (offset, row) in lower.iter_mut().enumerate() {
            let f = row[col] / d;
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[col + 1 + offset] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x
}

/// Fits an L2-regularised logistic regression by Newton's method on standardised features and
/// returns (intercept, coefficients) on the raw features. `l2` is the penalty on the
/// standardised coefficients (the intercept is not penalised).
pub fn fit_logistic(
    x: &[[f64; N_FEATURES]],
    y: &[f64],
    l2: f64,
) -> Result<(f64, [f64; N_FEATURES])> {
    ensure!(
        !x.is_empty(),
        "no training rows for the logistic regression"
    );
    ensure!(
        y.iter().any(|&v| v > 0.5) && y.iter().any(|&v| v < 0.5),
        "the logistic regression needs positive and negative rows"
    );
    let n = x.len() as f64;
    let mut mean = [0.0; N_FEATURES];
    let mut std = [0.0; N_FEATURES];
    for row in x {
        for j in 0..N_FEATURES {
            mean[j] += row[j] / n;
        }
    }
    for row in x {
        for j in 0..N_FEATURES {
            std[j] += (row[j] - mean[j]).powi(2) / n;
        }
    }
    for s in &mut std {
        *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
    }
    let d = N_FEATURES + 1;
    let z = |row: &[f64; N_FEATURES], j: usize| -> f64 {
        if j == 0 {
            1.0
        } else {
            (row[j - 1] - mean[j - 1]) / std[j - 1]
        }
    };
    let mut w = vec![0.0; d];
    for _ in 0..50 {
        let mut grad = vec![0.0; d];
        let mut hess = vec![vec![0.0; d]; d];
        for (row, &label) in x.iter().zip(y) {
            let zs: Vec<f64> = (0..d).map(|j| z(row, j)).collect();
            let t: f64 = zs.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-t).exp());
            let g = p - label;
            let h = (p * (1.0 - p)).max(1e-12);
            for i in 0..d {
                grad[i] += g * zs[i];
                for j in i..d {
                    hess[i][j] += h * zs[i] * zs[j];
                }
            }
        }
        for i in 0..d {
            let (above, rest) = hess.split_at_mut(i);
            for (j, upper) in above.iter().enumerate() {
                rest[0][j] = upper[i];
            }
            if i > 0 {
                grad[i] += l2 * w[i];
                hess[i][i] += l2;
            }
        }
        let step = solve(hess, grad);
        let mut change: f64 = 0.0;
        for i in 0..d {
            w[i] -= step[i];
            change = change.max(step[i].abs());
        }
        if change < 1e-9 {
            break;
        }
    }
    ensure!(
        w.iter().all(|v| v.is_finite()),
        "the logistic regression diverged"
    );
    let mut coef = [0.0; N_FEATURES];
    let mut intercept = w[0];
    for j in 0..N_FEATURES {
        coef[j] = w[j + 1] / std[j];
        intercept -= w[j + 1] * mean[j] / std[j];
    }
    Ok((intercept, coef))
}

/// The result of tuning on the inner split.
#[derive(Debug, Clone, Serialize)]
pub struct TuneRow {
    /// The decay tried.
    pub decay: f64,
    /// The inner-split metrics of the model fitted with it.
    pub inner: Metrics,
}

/// Fits the logistic regression for each decay on `inner` and keeps the one with the best
/// NDCG@10 on `inner` (ties: the first). Returns the chosen parameters and every row.
pub fn tune(inner: &Split, decays: &[f64], l2: f64) -> Result<(Params, Vec<TuneRow>)> {
    ensure!(!decays.is_empty(), "no decay to try");
    ensure!(
        !inner.cases.is_empty(),
        "no customer has enough orders for the inner split (3 or more needed)"
    );
    let mut rows = Vec::new();
    let mut best: Option<(f64, Params)> = None;
    for &decay in decays {
        ensure!(
            decay > 0.0 && decay <= 1.0,
            "decay {decay} must be in (0, 1]"
        );
        let (x, y) = training_rows(inner, decay);
        let (intercept, coef) = fit_logistic(&x, &y, l2)?;
        let params = Params {
            decay,
            intercept,
            coef,
        };
        let model = Recommender {
            stats: inner.stats.view(),
            params,
        };
        let metrics = measure(&inner.cases, |c| model_list(&model, c));
        if best.as_ref().is_none_or(|(b, _)| metrics.ndcg > *b) {
            best = Some((metrics.ndcg, params));
        }
        rows.push(TuneRow {
            decay,
            inner: metrics,
        });
    }
    Ok((best.expect("decays is not empty").1, rows))
}

/// Everything the protocol measures.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The parameters chosen on the inner split.
    pub params: ParamsJson,
    /// Tuning rows (inner split).
    pub tuning: Vec<TuneRow>,
    /// Test: the model.
    pub model: Metrics,
    /// Test: buy-again baseline.
    pub buy_again: Metrics,
    /// Test: popularity baseline.
    pub popularity: Metrics,
    /// Inner split: buy-again (for comparison with the tuning rows).
    pub inner_buy_again: Metrics,
    /// Customers with a test case.
    pub test_users: usize,
    /// Customers with an inner case.
    pub inner_users: usize,
    /// Mean size of the held-out (last) orders.
    pub mean_test_order_size: f64,
}

/// Parameters, serialisable.
#[derive(Debug, Clone, Serialize)]
pub struct ParamsJson {
    /// Decay.
    pub decay: f64,
    /// Intercept.
    pub intercept: f64,
    /// Coefficients by feature name.
    pub coefficients: Vec<(String, f64)>,
}

impl From<&Params> for ParamsJson {
    fn from(p: &Params) -> Self {
        ParamsJson {
            decay: p.decay,
            intercept: p.intercept,
            coefficients: model::FEATURE_NAMES
                .iter()
                .zip(p.coef)
                .map(|(n, c)| (n.to_string(), c))
                .collect(),
        }
    }
}

/// The protocol: tune on the inner split (each customer's second-to-last order held out), then
/// measure on the test split (each customer's last order held out), beside the baselines.
pub fn evaluate(
    users: &[User],
    decays: &[f64],
    l2: f64,
    n_popular: usize,
) -> Result<(Params, Evaluation)> {
    let inner = Split::new(users, 2, n_popular);
    let (params, tuning) = tune(&inner, decays, l2)?;
    let test = Split::new(users, 1, n_popular);
    let model = Recommender {
        stats: test.stats.view(),
        params,
    };
    let popular = &test.stats.popular;
    let evaluation = Evaluation {
        params: (&params).into(),
        tuning,
        model: measure(&test.cases, |c| model_list(&model, c)),
        buy_again: measure(&test.cases, |c| buy_again(&c.history, popular)),
        popularity: measure(&test.cases, |_| popularity(popular)),
        inner_buy_again: measure(&inner.cases, |c| {
            buy_again(&c.history, &inner.stats.popular)
        }),
        test_users: test.cases.len(),
        inner_users: inner.cases.len(),
        mean_test_order_size: test.cases.iter().map(|c| c.target.len()).sum::<usize>() as f64
            / test.cases.len().max(1) as f64,
    };
    Ok((params, evaluation))
}
