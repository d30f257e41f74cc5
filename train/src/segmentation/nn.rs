//! The measurement behind "no neural network": a small MLP trained to assign customers to the
//! k-means segments, scored on held-out customers against the exact nearest-centroid rule.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

/// Hidden units of the MLP (one tanh layer).
pub const HIDDEN: usize = 16;
/// Training epochs (plain minibatch SGD with momentum, batch 32).
pub const EPOCHS: usize = 40;

/// What the MLP achieved at one k.
#[derive(Debug, Clone, Serialize)]
pub struct MlpResult {
    /// Segments.
    pub k: usize,
    /// Share of fitting customers the MLP assigns as nearest-centroid does.
    pub train_agreement: f64,
    /// Share of held-out customers the MLP assigns as nearest-centroid does.
    pub held_out_agreement: f64,
}

struct Mlp {
    k: usize,
    w1: Vec<f64>, // HIDDEN x 4
    b1: Vec<f64>,
    w2: Vec<f64>, // k x HIDDEN
    b2: Vec<f64>,
}

impl Mlp {
    fn new(k: usize, rng: &mut Xoshiro256PlusPlus) -> Self {
        let mut init = |n: usize, fan_in: usize, fan_out: usize| {
            let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
            (0..n).map(|_| rng.gen_range(-a..a)).collect::<Vec<f64>>()
        };
        Mlp {
            k,
            w1: init(HIDDEN * 4, 4, HIDDEN),
            b1: vec![0.0; HIDDEN],
            w2: init(k * HIDDEN, HIDDEN, k),
            b2: vec![0.0; k],
        }
    }

    fn forward(&self, x: &[f64; 4]) -> (Vec<f64>, Vec<f64>) {
        let h: Vec<f64> = (0..HIDDEN)
            .map(|i| (self.b1[i] + (0..4).map(|j| self.w1[i * 4 + j] * x[j]).sum::<f64>()).tanh())
            .collect();
        let logits: Vec<f64> = (0..self.k)
            .map(|c| {
                self.b2[c]
                    + (0..HIDDEN)
                        .map(|i| self.w2[c * HIDDEN + i] * h[i])
                        .sum::<f64>()
            })
            .collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        (h, exp.into_iter().map(|e| e / sum).collect())
    }

    fn predict(&self, x: &[f64; 4]) -> usize {
        let (_, p) = self.forward(x);
        (0..self.k)
            .max_by(|&a, &b| p[a].total_cmp(&p[b]))
            .unwrap_or(0)
    }
}

/// Trains the MLP on `(scaled features, segment)` pairs and scores it on both sets.
pub fn measure(
    k: usize,
    train: &[([f64; 4], usize)],
    held_out: &[([f64; 4], usize)],
    seed: u64,
) -> MlpResult {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut net = Mlp::new(k, &mut rng);
    let (lr, momentum, batch) = (0.05, 0.9, 32);
    let mut v = [
        vec![0.0; net.w1.len()],
        vec![0.0; net.b1.len()],
        vec![0.0; net.w2.len()],
        vec![0.0; net.b2.len()],
    ];
    let mut order: Vec<usize> = (0..train.len()).collect();
    for _ in 0..EPOCHS {
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch) {
            let mut g = [
                vec![0.0; net.w1.len()],
                vec![0.0; net.b1.len()],
                vec![0.0; net.w2.len()],
                vec![0.0; net.b2.len()],
            ];
            for &n in chunk {
                let (x, y) = &train[n];
                let (h, p) = net.forward(x);
                let mut dh = [0.0; HIDDEN];
                for c in 0..k {
                    let d = p[c] - if c == *y { 1.0 } else { 0.0 };
                    g[3][c] += d;
                    for i in 0..HIDDEN {
                        g[2][c * HIDDEN + i] += d * h[i];
                        dh[i] += d * net.w2[c * HIDDEN + i];
                    }
                }
                for i in 0..HIDDEN {
                    let dz = dh[i] * (1.0 - h[i] * h[i]);
                    g[1][i] += dz;
                    for j in 0..4 {
                        g[0][i * 4 + j] += dz * x[j];
                    }
                }
            }
            let scale = lr / chunk.len() as f64;
            let params = [&mut net.w1, &mut net.b1, &mut net.w2, &mut net.b2];
            for ((param, vel), grad) in params.into_iter().zip(v.iter_mut()).zip(&g) {
                for ((w, m), d) in param.iter_mut().zip(vel.iter_mut()).zip(grad) {
                    *m = momentum * *m - scale * d;
                    *w += *m;
                }
            }
        }
    }
    let agreement = |set: &[([f64; 4], usize)]| {
        set.iter().filter(|(x, y)| net.predict(x) == *y).count() as f64 / set.len().max(1) as f64
    };
    MlpResult {
        k,
        train_agreement: agreement(train),
        held_out_agreement: agreement(held_out),
    }
}
