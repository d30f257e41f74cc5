//! Fitting the trees at a cut-off week, tuning them on an inner origin, the baselines, and the
//! rolling-origin evaluation.

use anyhow::{Context, Result, ensure};
use forust_ml::objective::ObjectiveType;
use forust_ml::sampler::SampleMethod;
use forust_ml::{GradientBooster, Matrix};
use serde::Serialize;
use trademl_model_demand_forecast::model::{Forecaster, HORIZON, Series, feature_names, features};

use super::panel::Grid;
use crate::trees::Forest;

/// The boosting settings searched and used.
#[derive(Debug, Clone, Serialize)]
pub struct Grid2 {
    /// Depths tried.
    pub depths: Vec<usize>,
    /// Most trees.
    pub max_trees: usize,
    /// Learning rate.
    pub learning_rate: f32,
    /// Origins used for training rows: every `origin_step`-th week.
    pub origin_step: usize,
    /// Observed weeks a history needs to give a training row.
    pub min_history: usize,
    /// Seed of the row and column sampling.
    pub seed: u64,
    /// Row weights tried: a training row weighs exp(level)^power (normalised to mean 1), so that
    /// power 1 weighs rows by their series' usual units, as WAPE does.
    pub weight_powers: Vec<f64>,
    /// Tree counts are compared on the validation weeks every this many trees.
    pub tree_step: usize,
    /// Inner origins (HORIZON weeks apart, ending HORIZON weeks before the first test origin)
    /// that the number of trees, the level correction and the interval are tuned on.
    pub inner_origins: usize,
    /// Share of the training rows each tree is grown on, sampled at random (1 = every row).
    pub subsample: f32,
    /// Boosted ensembles averaged, each with its own seed of the column sampling.
    pub bag: usize,
}

/// The chosen settings and the interval quantiles, from an inner validation origin.
#[derive(Debug, Clone, Serialize)]
pub struct Tuned {
    /// Tree depth.
    pub depth: usize,
    /// Row weight power.
    pub weight_power: f64,
    /// Number of trees.
    pub trees: usize,
    /// The latest inner origin's week number (validated on the HORIZON weeks after it): the
    /// baseline's smoothing constant is chosen there.
    pub inner_origin_week: u32,
    /// Every inner origin's week number, latest first: the depth, row-weight power, number of
    /// trees, level correction and interval are chosen on all of them.
    pub inner_origin_weeks: Vec<u32>,
    /// Store-level accuracy averaged over the inner origins' validation weeks of each (depth,
    /// weight power) tried, at its best number of trees.
    pub validation_accuracy: Vec<(usize, f64, usize, f64)>,
    /// Store accuracy of the chosen depth per number of trees, averaged over the inner origins.
    pub tree_accuracy: Vec<(usize, f64)>,
    /// Level correction (added to the log forecast) per horizon.
    pub log_shift: [f64; HORIZON],
    /// Store and chain accuracy on the inner origins' validation weeks at the chosen correction,
    /// per horizon.
    pub shift_accuracy: [(f64, f64); HORIZON],
    /// Tail probability of the interval per horizon (0.1 = the 10% and 90% quantiles): the one
    /// whose quantiles from all but one inner origin cover closest to 80% on the one left out.
    pub interval_tail: [f64; HORIZON],
    /// Lower quantile (`interval_tail`) of the corrected log residual per horizon on the inner
    /// validation weeks.
    pub lower_log: [f64; HORIZON],
    /// Upper quantile (1 − `interval_tail`).
    pub upper_log: [f64; HORIZON],
    /// Smoothing constant chosen for the exponential-smoothing baseline.
    pub smoothing_alpha: f64,
}

/// Training rows: features and the log units relative to the history level.
pub struct Rows {
    /// Feature values, column-major (as forust's `Matrix` stores them).
    pub x: Vec<f64>,
    /// Targets.
    pub y: Vec<f64>,
    /// Each row's history level.
    pub level: Vec<f64>,
    /// Rows.
    pub n: usize,
    /// Columns.
    pub cols: usize,
}

/// One scored forecast: series index, target week index, horizon, actual and forecast units.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    /// Index into `grid.tracks`.
    pub track: usize,
    /// Target week index.
    pub week: usize,
    /// Horizon 1..=HORIZON.
    pub h: usize,
    /// Actual units.
    pub actual: f64,
    /// Forecast units.
    pub forecast: f64,
}

/// The rows with target weeks `<= last` from origins `origin_step` apart ending at `last − 1`.
pub fn training_rows(grid: &Grid, last: usize, g: &Grid2) -> Rows {
    let cols = feature_names(grid.products).len();
    let mut feats: Vec<Vec<f64>> = Vec::new();
    let mut y = Vec::new();
    let mut levels = Vec::new();
    let mut origin = last as isize - 1;
    while origin >= g.min_history as isize - 1 {
        let o = origin as usize;
        for t in &grid.tracks {
            let Some(s) = grid.series(t, o) else { continue };
            if s.units.iter().filter(|u| **u > 0.0).count() < g.min_history {
                continue;
            }
            let level = s.level();
            for h in 1..=HORIZON {
                let target = o + h;
                if target > last || t.units[target].is_nan() {
                    continue;
                }
                feats.push(features(&s, h));
                y.push(t.units[target].ln() - level);
                levels.push(level);
            }
        }
        origin -= g.origin_step as isize;
    }
    let n = y.len();
    let mut x = vec![0.0; n * cols];
    for (r, f) in feats.iter().enumerate() {
        for (c, v) in f.iter().enumerate() {
            x[c * n + r] = *v;
        }
    }
    Rows {
        x,
        y,
        level: levels,
        n,
        cols,
    }
}

/// Row weights exp(level)^power, normalised to mean 1.
fn row_weights(rows: &Rows, power: f64) -> Vec<f64> {
    let w: Vec<f64> = rows.level.iter().map(|l| (power * l).exp()).collect();
    let mean = w.iter().sum::<f64>() / w.len() as f64;
    w.into_iter().map(|v| v / mean).collect()
}

/// Fits `g.bag` ensembles of `trees` boosted trees of `depth` with row weights of `power`, each
/// with its own seed of the column sampling, and averages them: the result's trees interleave
/// the members' (the first of each member, then the second of each, …) under a scale of
/// 1 / `g.bag`, so that its first `k · g.bag` trees are the average of every member's first `k`.
pub fn fit(rows: &Rows, depth: usize, trees: usize, power: f64, g: &Grid2) -> Result<Forest> {
    let matrix = Matrix::new(&rows.x, rows.n, rows.cols);
    let weights = row_weights(rows, power);
    let mut members = Vec::with_capacity(g.bag);
    for member in 0..g.bag as u64 {
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::SquaredLoss)
            .set_iterations(trees)
            .set_learning_rate(g.learning_rate)
            .set_max_depth(depth)
            .set_max_leaves(usize::MAX)
            .set_min_leaf_weight(20.0)
            .set_l2(1.0)
            .set_colsample_bytree(COLSAMPLE)
            .set_seed(member_seed(g.seed, member))
            .set_parallel(true);
        if g.subsample < 1.0 {
            // forust samples rows only with the Random method; its default
            // method ignores `subsample`.
            booster = booster
                .set_sample_method(SampleMethod::Random)
                .set_subsample(g.subsample);
        }
        booster
            .fit(&matrix, &rows.y, &weights, None)
            .context("fitting the boosted trees")?;
        members.push(Forest::from_forust(&booster)?);
    }
    if members.len() == 1 {
        return Ok(members.pop().expect("one member"));
    }
    let n = members[0].trees.len();
    ensure!(
        members.iter().all(|m| m.trees.len() == n),
        "the bag's ensembles grew different numbers of trees"
    );
    let base = members.iter().map(|m| m.base).sum::<f64>() / members.len() as f64;
    let interleaved = (0..n)
        .flat_map(|t| members.iter().map(move |m| m.trees[t].clone()))
        .collect();
    Ok(Forest::new(base, 1.0 / members.len() as f64, interleaved))
}

/// The seed of bag member `member`: the first member keeps `--seed`, so that a bag of one is the
/// plain boosted ensemble; the others are far from the seeds `--seed-spread` runs with.
fn member_seed(seed: u64, member: u64) -> u64 {
    seed.wrapping_add(member.wrapping_mul(1_000_003))
}

/// 1 − WAPE.
pub fn accuracy(pairs: impl Iterator<Item = (f64, f64)>) -> f64 {
    let (err, total) = pairs.fold((0.0, 0.0), |(e, t), (a, f)| (e + (a - f).abs(), t + a));
    1.0 - err / total
}

/// Store × brand × week and chain × brand × week accuracy of scored forecasts.
pub fn accuracies(grid: &Grid, scored: &[Scored]) -> (f64, f64) {
    let store = accuracy(scored.iter().map(|s| (s.actual, s.forecast)));
    let mut chain: std::collections::BTreeMap<(u32, usize), (f64, f64)> = Default::default();
    for s in scored {
        let e = chain
            .entry((grid.tracks[s.track].brand, s.week))
            .or_default();
        e.0 += s.actual;
        e.1 += s.forecast;
    }
    (store, accuracy(chain.values().copied()))
}

/// The request rows of every series at `origin` that has at least one target observed.
pub fn origin_rows(grid: &Grid, origin: usize) -> Vec<(usize, Series)> {
    grid.tracks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let s = grid.series(t, origin)?;
            (1..=HORIZON)
                .any(|h| !t.units[origin + h].is_nan())
                .then_some((i, s))
        })
        .collect()
}

/// Scores `forecast(series, h)` at `origin` on the observed target weeks.
pub fn score(
    grid: &Grid,
    origin: usize,
    rows: &[(usize, Series)],
    mut forecast: impl FnMut(usize, &Series, usize) -> f64,
) -> Vec<Scored> {
    let mut out = Vec::new();
    for (i, s) in rows {
        for h in 1..=HORIZON {
            let actual = grid.tracks[*i].units[origin + h];
            if actual.is_nan() {
                continue;
            }
            out.push(Scored {
                track: *i,
                week: origin + h,
                h,
                actual,
                forecast: forecast(*i, s, h),
            });
        }
    }
    out
}

/// The baselines' forecasts from a row's history.
pub mod baselines {
    use super::*;

    /// The last observed week's units.
    pub fn last_value(s: &Series) -> f64 {
        *s.units.iter().rev().find(|u| **u > 0.0).expect("validated")
    }

    /// The mean of the observed weeks among the last 4 (the last value when none is observed).
    pub fn mean_last4(s: &Series) -> f64 {
        let v: Vec<f64> = s.units[s.units.len() - 4..]
            .iter()
            .copied()
            .filter(|u| *u > 0.0)
            .collect();
        if v.is_empty() {
            last_value(s)
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    }

    /// Simple exponential smoothing of the observed weeks' units (missing weeks skipped),
    /// started at the first observed week.
    pub fn smoothing(s: &Series, alpha: f64) -> f64 {
        let mut level = f64::NAN;
        for &u in s.units.iter().filter(|u| **u > 0.0) {
            level = if level.is_nan() {
                u
            } else {
                alpha * u + (1.0 - alpha) * level
            };
        }
        level
    }
}

/// Share of the features each tree is grown on, sampled at random with the `--seed`.
pub const COLSAMPLE: f64 = 0.8;

/// The candidate smoothing constants of the exponential-smoothing baseline.
pub const ALPHAS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

pub fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Store-level accuracy on `origin`'s validation weeks of the first `k` trees of `full`, for
/// every `k` a multiple of `step` (and all of them): `(k, accuracy)`.
fn accuracy_by_trees(
    grid: &Grid,
    origin: usize,
    full: &Forest,
    step: usize,
    bag: usize,
) -> Vec<(usize, f64)> {
    // `full` interleaves `bag` members: count trees per member.
    let step = step * bag;
    let rows = origin_rows(grid, origin);
    let feats: Vec<Vec<Vec<f64>>> = rows
        .iter()
        .map(|(_, s)| (1..=HORIZON).map(|h| features(s, h)).collect())
        .collect();
    let index: std::collections::HashMap<usize, usize> =
        rows.iter().enumerate().map(|(r, (i, _))| (*i, r)).collect();
    let mut out = Vec::new();
    let mut k = step.min(full.trees.len());
    loop {
        let forest = Forest::new(full.base, full.scale, full.trees[..k].to_vec());
        let view = forest.view();
        let scored = score(grid, origin, &rows, |i, s, h| {
            (s.level() + view.predict(&feats[index[&i]][h - 1])).exp()
        });
        out.push((k / bag, accuracies(grid, &scored).0));
        if k == full.trees.len() {
            break;
        }
        k = (k + step).min(full.trees.len());
    }
    out
}

/// The candidate tail probabilities of the 80% interval.
pub const TAILS: [f64; 8] = [0.1, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03];

/// The candidate level corrections (log scale) of a horizon.
pub fn shift_candidates() -> impl Iterator<Item = f64> {
    (-20..=60).map(|i| i as f64 * 0.01)
}
/// The per-horizon calibration of log forecasts, tuned on the inner origins' validation weeks.
pub struct Calibration {
    /// Constant added to the log forecast per horizon.
    pub log_shift: [f64; HORIZON],
    /// Store and chain accuracy of the shifted forecasts on the inner validation weeks.
    pub shift_accuracy: [(f64, f64); HORIZON],
    /// Tail probability of the 80% interval per horizon.
    pub interval_tail: [f64; HORIZON],
    /// Lower and upper quantiles of the corrected log residuals per horizon.
    pub lower_log: [f64; HORIZON],
    pub upper_log: [f64; HORIZON],
}

/// Calibrate log forecasts on the inner origins' validation weeks: `valid` holds each scored
/// validation point with its log forecast. Per horizon, the level shift maximising store plus
/// chain accuracy, and the 80% interval's residual quantiles at the tail probability whose
/// quantiles, taken from the other inner origins, cover closest to 80% on each left-out one.
pub fn calibrate(grid: &Grid, inners: &[usize], valid: &[(Scored, f64)]) -> Calibration {
    let mut log_shift = [0.0; HORIZON];
    let mut shift_accuracy = [(0.0, 0.0); HORIZON];
    let mut interval_tail = [0.1; HORIZON];
    let mut lower_log = [0.0; HORIZON];
    let mut upper_log = [0.0; HORIZON];
    for h in 1..=HORIZON {
        let at_h: Vec<&(Scored, f64)> = valid.iter().filter(|v| v.0.h == h).collect();
        let mut best: Option<(f64, f64, (f64, f64))> = None;
        for c in shift_candidates() {
            let scored: Vec<Scored> = at_h
                .iter()
                .map(|(s, z)| Scored {
                    forecast: (z + c).exp(),
                    ..*s
                })
                .collect();
            let (st, ch) = accuracies(grid, &scored);
            if best.is_none_or(|b| st + ch > b.0) {
                best = Some((st + ch, c, (st, ch)));
            }
        }
        let (_, c, accs) = best.expect("candidates");
        log_shift[h - 1] = c;
        shift_accuracy[h - 1] = accs;
        // Residuals by inner origin; the tail probability is the one whose quantiles, taken from
        // the other inner origins, cover closest to 80% on each left-out inner origin.
        let by_origin: Vec<Vec<f64>> = inners
            .iter()
            .map(|&o| {
                at_h.iter()
                    .filter(|(s, _)| s.week - h == o)
                    .map(|(s, z)| s.actual.ln() - z - c)
                    .collect()
            })
            .collect();
        let tail = if inners.len() < 2 {
            0.1
        } else {
            TAILS
                .iter()
                .copied()
                .map(|q| {
                    let cover: f64 = (0..inners.len())
                        .map(|out| {
                            let rest: Vec<f64> = (0..inners.len())
                                .filter(|&k| k != out)
                                .flat_map(|k| by_origin[k].iter().copied())
                                .collect();
                            let (lo, hi) = (quantile(rest.clone(), q), quantile(rest, 1.0 - q));
                            let held = &by_origin[out];
                            held.iter().filter(|r| lo <= **r && **r <= hi).count() as f64
                                / held.len() as f64
                        })
                        .sum::<f64>()
                        / inners.len() as f64;
                    (q, (cover - 0.8).abs())
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("tails")
                .0
        };
        interval_tail[h - 1] = tail;
        let resid: Vec<f64> = by_origin.concat();
        lower_log[h - 1] = quantile(resid.clone(), tail);
        upper_log[h - 1] = quantile(resid, 1.0 - tail);
    }
    Calibration {
        log_shift,
        shift_accuracy,
        interval_tail,
        lower_log,
        upper_log,
    }
}

/// The best (depth, weight power) so far: its store accuracy averaged over the inner origins (at
/// its best number of trees), the depth, the weight power, its fit with every tree at each inner
/// origin, and its averaged accuracy by number of trees.
type Best = (f64, usize, f64, Vec<Forest>, Vec<(usize, f64)>);

/// Tunes on `g.inner_origins` inner origins `last − HORIZON`, `last − 2·HORIZON`, … (each
/// fitted on targets up to it and validated on the HORIZON weeks after it):
///
/// - the depth, row-weight power and number of trees together, by the store accuracy averaged
///   over every inner origin (one origin alone is four weeks: which depth wins there changes
///   with the trees' random feature sampling);
/// - per horizon, the level correction maximising the mean of store and chain accuracy over the
///   inner origins' validation weeks pooled;
/// - per horizon, the interval's quantiles of the corrected log residuals, pooled, at the tail
///   probability whose quantiles from all but one inner origin cover closest to 80% on the one
///   left out;
/// - the smoothing constant of the baseline on the latest inner origin.
///
/// Nothing after `last` is read.
pub fn tune(grid: &Grid, last: usize, g: &Grid2, mut progress: impl FnMut(&str)) -> Result<Tuned> {
    ensure!(
        g.inner_origins >= 1 && last >= g.inner_origins * HORIZON + g.min_history,
        "too few weeks before week {} to tune on {} inner origins",
        grid.week(last),
        g.inner_origins
    );
    let inners: Vec<usize> = (1..=g.inner_origins).map(|k| last - k * HORIZON).collect();
    let inner = inners[0];
    let trains: Vec<Rows> = inners.iter().map(|&o| training_rows(grid, o, g)).collect();
    for (&o, rows) in inners.iter().zip(&trains) {
        ensure!(
            rows.n > 0 && !origin_rows(grid, o).is_empty(),
            "too few weeks before week {} to tune on",
            grid.week(o)
        );
    }
    let mut best: Option<Best> = None;
    let mut tried = Vec::new();
    for &depth in &g.depths {
        for &power in &g.weight_powers {
            let mut fulls = Vec::with_capacity(inners.len());
            let mut sums: Vec<(usize, f64)> = Vec::new();
            for (&o, rows) in inners.iter().zip(&trains) {
                progress(&format!(
                    "depth {depth}, weight power {power} at week {}",
                    grid.week(o)
                ));
                let full = fit(rows, depth, g.max_trees, power, g)?;
                let by_trees = accuracy_by_trees(grid, o, &full, g.tree_step, g.bag);
                if sums.is_empty() {
                    sums = by_trees;
                } else {
                    for (sum, (k, acc)) in sums.iter_mut().zip(by_trees) {
                        ensure!(sum.0 == k, "tree counts differ between inner origins");
                        sum.1 += acc;
                    }
                }
                fulls.push(full);
            }
            let mean: Vec<(usize, f64)> = sums
                .iter()
                .map(|(k, a)| (*k, a / inners.len() as f64))
                .collect();
            let &(k, acc) = mean
                .iter()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("at least one tree count");
            tried.push((depth, power, k, acc));
            if best.as_ref().is_none_or(|b| acc > b.0) {
                best = Some((acc, depth, power, fulls, mean));
            }
        }
    }
    let (_, depth, weight_power, fulls, tree_accuracy) = best.expect("at least one depth");
    let trees = tree_accuracy
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("tree counts")
        .0;
    // Log forecasts (without correction) of every inner origin's validation weeks.
    let mut valid: Vec<(Scored, f64)> = Vec::new();
    for (&o, full) in inners.iter().zip(&fulls) {
        let forest = Forest::new(full.base, full.scale, full.trees[..trees * g.bag].to_vec());
        let view = forest.view();
        let rows = origin_rows(grid, o);
        for (i, s) in &rows {
            for h in 1..=HORIZON {
                let actual = grid.tracks[*i].units[o + h];
                if actual.is_nan() {
                    continue;
                }
                let z = s.level() + view.predict(&features(s, h));
                let sc = Scored {
                    track: *i,
                    week: o + h,
                    h,
                    actual,
                    forecast: z.exp(),
                };
                valid.push((sc, z));
            }
        }
    }
    let Calibration {
        log_shift,
        shift_accuracy,
        interval_tail,
        lower_log,
        upper_log,
    } = calibrate(grid, &inners, &valid);
    let valid_rows = origin_rows(grid, inner);
    let alpha = ALPHAS
        .iter()
        .copied()
        .map(|a| {
            let scored = score(grid, inner, &valid_rows, |_, s, _| {
                baselines::smoothing(s, a)
            });
            (a, accuracies(grid, &scored).0)
        })
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .expect("alphas")
        .0;
    Ok(Tuned {
        depth,
        weight_power,
        trees,
        inner_origin_week: grid.week(inner),
        inner_origin_weeks: inners.iter().map(|&o| grid.week(o)).collect(),
        validation_accuracy: tried,
        tree_accuracy,
        log_shift,
        shift_accuracy,
        interval_tail,
        lower_log,
        upper_log,
        smoothing_alpha: alpha,
    })
}

/// A fitted forecaster over `forest` with the tuned interval.
pub fn forecaster<'a>(forest: &'a Forest, products: usize, t: &Tuned) -> Forecaster<'a> {
    Forecaster {
        products,
        trees: forest.view(),
        log_shift: t.log_shift,
        lower_log: t.lower_log,
        upper_log: t.upper_log,
    }
}

/// One seed's run of a whole evaluation, as a report's seed-sensitivity table shows it.
#[derive(Debug, Clone)]
pub struct SeedRow {
    /// `--seed`.
    pub seed: u64,
    /// What the tuning chose with it, as the table prints it.
    pub chosen: String,
    /// Store accuracy on the inner validation weeks at the chosen settings.
    pub inner_store: f64,
    /// Test accuracy, store.
    pub store: f64,
    /// Test accuracy, chain.
    pub chain: f64,
}

/// The "Seed sensitivity" section of a report: `random` says what the seed draws, `chosen` heads
/// the column of what the tuning chose; `rows` start with the reported (default) seed. Empty
/// when no other seed ran.
pub fn seed_section(random: &str, chosen: &str, rows: &[SeedRow]) -> String {
    let [reported, others @ ..] = rows else {
        return String::new();
    };
    if others.is_empty() {
        return String::new();
    }
    let stats = |f: fn(&SeedRow) -> f64| {
        let v: Vec<f64> = rows.iter().map(f).collect();
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, v.iter().sum::<f64>() / v.len() as f64, max)
    };
    let (s_min, s_mean, s_max) = stats(|r| r.store);
    let (c_min, c_mean, c_max) = stats(|r| r.chain);
    let rank = 1 + others.iter().filter(|r| r.store > reported.store).count();
    let mut m = format!(
        "## Seed sensitivity\n\n{random}, so the figures above are one draw. The whole protocol, \
         tuning included, run with {} other seeds (`--seed-spread {}`): test store accuracy \
         {s_min:.4} to {s_max:.4} (mean {s_mean:.4}), chain {c_min:.4} to {c_max:.4} (mean \
         {c_mean:.4}); the reported seed {} ranks {rank} of {} by store accuracy; it is the \
         trainer's default `--seed`.\n\n\
         | seed | {chosen} | inner store (tuning) | test store | test chain |\n\
         |---|---|---|---|---|\n",
        others.len(),
        others.len(),
        reported.seed,
        rows.len()
    );
    for r in rows {
        m.push_str(&format!(
            "| {} | {} | {:.4} | {:.4} | {:.4} |\n",
            r.seed, r.chosen, r.inner_store, r.store, r.chain
        ));
    }
    m.push('\n');
    m
}
