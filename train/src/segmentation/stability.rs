//! The stability ("cluster purity") protocol: how many held-out customers keep their segment
//! when the segmentation is refitted on a bootstrap sample of the fitting customers.
//!
//! 1. The customers are split once, at random (fixed seed), into a fitting set and a held-out
//!    set (`holdout_share`, 20% by default). Held-out customers are never used in fitting.
//! 2. The method is fitted on the fitting set: the reference segmentation.
//! 3. For each of `bootstraps` samples drawn with replacement from the fitting set (same size),
//!    the method is refitted from scratch (scaling included) with a different seed.
//! 4. The refitted segments are matched one-to-one to the reference segments by the assignment
//!    that maximises their overlap on the fitting set (an exact Hungarian-style search over
//!    permutations; k <= 8).
//! 5. The bootstrap's stability is the share of held-out customers whose matched refitted segment
//!    equals their reference segment. The report gives the mean and the minimum over bootstraps.

use anyhow::{Result, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;
use trademl_model_customer_segmentation::model::Customer;

use super::fit::{KMeansConfig, Scaling, fit_kmeans};

/// A segmentation method under evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// linfa k-means on the scaled features.
    KMeans(KMeansConfig),
    /// Equal-count bins of an RFM score (`z(F) + z(M) - z(R)` of the scaled features), the
    /// classic quantile segmentation, refitted by recomputing the bin edges.
    QuantileScore,
}

impl Method {
    /// A short label for reports.
    pub fn label(&self) -> String {
        match self {
            Method::KMeans(c) if c.plus_plus => {
                format!("k-means (k-means++, {} restarts)", c.n_runs)
            }
            Method::KMeans(c) => format!("k-means (random init, {} restart(s))", c.n_runs),
            Method::QuantileScore => "quantile bins of an RFM score".to_string(),
        }
    }
}

/// A fitted labeller: segment of each customer.
type Labeller = Box<dyn Fn(&[Customer]) -> Vec<usize> + Send + Sync>;

fn fit_method(method: Method, customers: &[Customer], k: usize, seed: u64) -> Result<Labeller> {
    match method {
        Method::KMeans(config) => {
            let fitted = fit_kmeans(customers, k, seed, config)?;
            Ok(Box::new(move |c: &[Customer]| fitted.labels(c)))
        }
        Method::QuantileScore => {
            let scaling = Scaling::fit(customers);
            let score = move |c: &[Customer]| -> Vec<f64> {
                let x = scaling.transform(c);
                x.rows().into_iter().map(|r| r[1] + r[2] - r[0]).collect()
            };
            let mut scores = score(customers);
            scores.sort_by(f64::total_cmp);
            let edges: Vec<f64> = (1..k)
                .map(|q| scores[(q * scores.len() / k).min(scores.len() - 1)])
                .collect();
            Ok(Box::new(move |c: &[Customer]| {
                score(c)
                    .into_iter()
                    .map(|s| edges.iter().filter(|&&e| s >= e).count())
                    .collect()
            }))
        }
    }
}

/// The protocol's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Protocol {
    /// Share of customers held out (never fitted on).
    pub holdout_share: f64,
    /// Bootstrap refits.
    pub bootstraps: usize,
    /// Seed of the split, the samples and the fits.
    pub seed: u64,
}

/// The fitting and held-out customers.
#[derive(Debug, Clone)]
pub struct Split {
    /// Customers the methods are fitted on.
    pub fit: Vec<Customer>,
    /// Customers only ever assigned.
    pub held_out: Vec<Customer>,
}

/// Splits `customers` at random (seeded) into fitting and held-out sets.
pub fn split(customers: &[Customer], holdout_share: f64, seed: u64) -> Split {
    let mut order: Vec<usize> = (0..customers.len()).collect();
    order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(seed));
    let n_held = ((customers.len() as f64) * holdout_share).round() as usize;
    let (held, fit) = order.split_at(n_held);
    Split {
        fit: fit.iter().map(|&i| customers[i]).collect(),
        held_out: held.iter().map(|&i| customers[i]).collect(),
    }
}

/// The stability of one method at one k.
#[derive(Debug, Clone, Serialize)]
pub struct Stability {
    /// Segments.
    pub k: usize,
    /// The method, in words.
    pub method: String,
    /// Mean share of held-out customers keeping their segment.
    pub mean: f64,
    /// Lowest share over the bootstraps.
    pub min: f64,
    /// The share of each bootstrap.
    pub per_bootstrap: Vec<f64>,
}

/// The permutation `p` (reference segment `a` -> refitted segment `p[a]`) maximising the
/// overlap `sum_a table[a][p[a]]`; exact search over permutations, fine for k <= 8.
pub fn best_matching(table: &[Vec<usize>]) -> Vec<usize> {
    fn search(
        a: usize,
        table: &[Vec<usize>],
        used: &mut [bool],
        current: &mut Vec<usize>,
        score: usize,
        best: &mut (usize, Vec<usize>),
    ) {
        let k = table.len();
        if a == k {
            if score > best.0 || best.1.is_empty() {
                *best = (score, current.clone());
            }
            return;
        }
        // Bound: the remaining rows can add at most their row maxima.
        let bound: usize = table[a..]
            .iter()
            .map(|r| r.iter().max().copied().unwrap_or(0))
            .sum();
        if !best.1.is_empty() && score + bound <= best.0 {
            return;
        }
        for b in 0..k {
            if !used[b] {
                used[b] = true;
                current.push(b);
                search(a + 1, table, used, current, score + table[a][b], best);
                current.pop();
                used[b] = false;
            }
        }
    }
    let mut best = (0, Vec::new());
    search(
        0,
        table,
        &mut vec![false; table.len()],
        &mut Vec::new(),
        0,
        &mut best,
    );
    best.1
}

/// Runs the protocol for `method` with `k` segments on a prepared split.
pub fn stability(
    split: &Split,
    method: Method,
    k: usize,
    protocol: &Protocol,
    progress: &ProgressBar,
) -> Result<Stability> {
    ensure!(
        split.fit.len() >= k,
        "{} fitting customers cannot make {k} segments",
        split.fit.len()
    );
    let reference = fit_method(method, &split.fit, k, protocol.seed)?;
    let ref_fit = reference(&split.fit);
    let ref_held = reference(&split.held_out);

    let run = |b: usize| -> Result<f64> {
        let mut rng =
            Xoshiro256PlusPlus::seed_from_u64(protocol.seed.wrapping_add(1_000 + b as u64));
        let n = split.fit.len();
        let sample: Vec<Customer> = (0..n).map(|_| split.fit[rng.gen_range(0..n)]).collect();
        let refit = fit_method(method, &sample, k, protocol.seed.wrapping_add(1 + b as u64))?;
        let new_fit = refit(&split.fit);
        let mut table = vec![vec![0usize; k]; k];
        for (&a, &b) in ref_fit.iter().zip(&new_fit) {
            table[a][b] += 1;
        }
        let p = best_matching(&table);
        let new_held = refit(&split.held_out);
        let same = ref_held
            .iter()
            .zip(&new_held)
            .filter(|&(&a, &b)| p[a] == b)
            .count();
        progress.inc(1);
        Ok(same as f64 / split.held_out.len().max(1) as f64)
    };

    // Two workers: the development machines have two cores.
    let shares: Vec<f64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let run = &run;
                s.spawn(move || {
                    (0..protocol.bootstraps)
                        .filter(|b| b % 2 == w)
                        .map(|b| run(b).map(|share| (b, share)))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.join().expect("a stability worker panicked")?);
        }
        all.sort_by_key(|&(b, _)| b);
        Ok::<_, anyhow::Error>(all.into_iter().map(|(_, s)| s).collect())
    })?;
    let mean = shares.iter().sum::<f64>() / shares.len().max(1) as f64;
    let min = shares.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(Stability {
        k,
        method: method.label(),
        mean,
        min,
        per_bootstrap: shares,
    })
}

/// A progress bar for `n` refits (hidden when stderr is not a terminal).
pub fn progress_bar(n: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(n);
    bar.set_style(
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len} refits, {elapsed}")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}
