//! The network: an LSTM over a row's weekly history, then a dense head over its last hidden
//! state, the planned prices and promotions of the next weeks, the history level, and the
//! brand's and store's one-hot codes, predicting the log units of each of the next
//! [`HORIZON`] weeks relative to the history level (direct, no forecast fed back).
//!
//! [`Inputs`] holds the request's tensors exactly as a client sends them to the component
//! (`history_units` with -1 for a week with no record, and so on); [`Encoder::encode`] turns
//! them into the network's inputs with the same arithmetic, in f32, as the ONNX graph that
//! [`super::onnx`] exports does, so that the network candle trains is the one the component
//! runs.

use anyhow::{Context, Result};
use candle_core::{D, DType, Device, IndexOp, Tensor, Var};
use candle_nn::Optimizer;
use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_xoshiro::Xoshiro256PlusPlus;
use trademl_model_demand_forecast::model::{HISTORY, HORIZON, Series};

/// Per-week inputs of the recurrent layer: the week's log units relative to the history
/// level, whether the week has a record, the log own price relative to its history mean, the
/// deal flag and the feature share (all 0 in a week with no record).
pub const SEQ_FEATURES: usize = 5;
/// Per planned week: log planned own price relative to its history mean, log planned own
/// price relative to the mean log price of all brands that week, own deal, own feature, and
/// the other brands' mean deal flag and mean feature share that week.
pub const PLAN_FEATURES: usize = 6;
/// Guards the logarithms of units and prices (a week with no record has units -1).
pub const EPS: f32 = 1e-6;

/// The request's tensors, row-major, as the component receives them.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Rows.
    pub n: usize,
    /// Brands (price columns).
    pub products: usize,
    /// `store`.
    pub store: Vec<f64>,
    /// `brand`, 1-based.
    pub brand: Vec<f64>,
    /// `history_units`, HISTORY per row; -1 = no record.
    pub history_units: Vec<f64>,
    /// `history_price`, HISTORY per row; 0 in a week with no record.
    pub history_price: Vec<f64>,
    /// `history_deal`, HISTORY per row.
    pub history_deal: Vec<f64>,
    /// `history_feature`, HISTORY per row.
    pub history_feature: Vec<f64>,
    /// `planned_prices`, HORIZON × products per row, week-major.
    pub planned_prices: Vec<f64>,
    /// `planned_deals`, HORIZON × products per row, week-major.
    pub planned_deals: Vec<f64>,
    /// `planned_features`, HORIZON × products per row, week-major.
    pub planned_features: Vec<f64>,
}

impl Inputs {
    /// No rows yet, for a panel of `products` brands.
    pub fn new(products: usize) -> Inputs {
        Inputs {
            products,
            ..Inputs::default()
        }
    }

    /// Appends a row (a week with no record becomes units -1 and price 0).
    pub fn push(&mut self, s: &Series) {
        self.n += 1;
        self.store.push(s.store);
        self.brand.push(s.brand as f64);
        for w in 0..HISTORY {
            let observed = !s.units[w].is_nan();
            self.history_units
                .push(if observed { s.units[w] } else { -1.0 });
            self.history_price
                .push(if observed { s.price[w] } else { 0.0 });
            self.history_deal.push(s.deal[w]);
            self.history_feature.push(s.feature[w]);
        }
        for h in 0..HORIZON {
            self.planned_prices.extend(&s.planned_prices[h]);
            self.planned_deals.extend(&s.planned_deals[h]);
            self.planned_features.extend(&s.planned_features[h]);
        }
    }

    /// The rows of `series`.
    pub fn of(series: &[&Series], products: usize) -> Inputs {
        let mut inputs = Inputs::new(products);
        for s in series {
            inputs.push(s);
        }
        inputs
    }

    /// The rows `rows` (indices) only.
    pub fn select(&self, rows: &[usize]) -> Inputs {
        let pick = |v: &[f64], k: usize| -> Vec<f64> {
            rows.iter()
                .flat_map(|&r| v[r * k..(r + 1) * k].iter().copied())
                .collect()
        };
        Inputs {
            n: rows.len(),
            products: self.products,
            store: pick(&self.store, 1),
            brand: pick(&self.brand, 1),
            history_units: pick(&self.history_units, HISTORY),
            history_price: pick(&self.history_price, HISTORY),
            history_deal: pick(&self.history_deal, HISTORY),
            history_feature: pick(&self.history_feature, HISTORY),
            planned_prices: pick(&self.planned_prices, HORIZON * self.products),
            planned_deals: pick(&self.planned_deals, HORIZON * self.products),
            planned_features: pick(&self.planned_features, HORIZON * self.products),
        }
    }
}

/// What the encoding needs besides a row: the stores and brands coded one-hot, and the
/// standardisation of the history level.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Encoder {
    /// Store numbers with a one-hot column (a store not in the list gets none).
    pub stores: Vec<f64>,
    /// Brands 1..=products.
    pub products: usize,
    /// Mean history level of the training rows.
    pub level_mean: f32,
    /// Its standard deviation.
    pub level_sd: f32,
}

/// A batch of encoded rows.
pub struct Encoded {
    /// Rows.
    pub n: usize,
    /// `[n, HISTORY, SEQ_FEATURES]`.
    pub seq: Vec<f32>,
    /// `[n, Encoder::static_width()]`: the planned weeks' features, the standardised level,
    /// the brand's and the store's one-hot codes.
    pub stat: Vec<f32>,
    /// Each row's history level (mean log units of its observed weeks).
    pub level: Vec<f32>,
}

fn mask_and_logs(values: &[f64], mask: &[f32]) -> Vec<f32> {
    values
        .iter()
        .zip(mask)
        .map(|(v, m)| (*v as f32).max(EPS).ln() * m)
        .collect()
}

impl Encoder {
    /// Width of the static (non-recurrent) part of the head's input.
    pub fn static_width(&self) -> usize {
        HORIZON * PLAN_FEATURES + 1 + self.products + self.stores.len()
    }

    /// History levels of the rows (for the standardisation).
    pub fn levels(inputs: &Inputs) -> Vec<f32> {
        (0..inputs.n)
            .map(|r| {
                let u = &inputs.history_units[r * HISTORY..(r + 1) * HISTORY];
                let m: Vec<f32> = u.iter().map(|v| f32::from(u8::from(*v > 0.0))).collect();
                let lu = mask_and_logs(u, &m);
                lu.iter().sum::<f32>() / m.iter().sum::<f32>().max(1.0)
            })
            .collect()
    }

    /// Encodes the rows as the ONNX graph does.
    pub fn encode<'a>(&self, inputs: &'a Inputs) -> Encoded {
        let p = self.products;
        let width = self.static_width();
        let mut seq = Vec::with_capacity(inputs.n * HISTORY * SEQ_FEATURES);
        let mut stat = Vec::with_capacity(inputs.n * width);
        let mut levels = Vec::with_capacity(inputs.n);
        for r in 0..inputs.n {
            let hist = |v: &'a [f64]| -> &'a [f64] { &v[r * HISTORY..(r + 1) * HISTORY] };
            let u = hist(&inputs.history_units);
            let m: Vec<f32> = u.iter().map(|v| f32::from(u8::from(*v > 0.0))).collect();
            let n = m.iter().sum::<f32>().max(1.0);
            let lu = mask_and_logs(u, &m);
            let level = lu.iter().sum::<f32>() / n;
            let lp = mask_and_logs(hist(&inputs.history_price), &m);
            let pl = lp.iter().sum::<f32>() / n;
            let deal = hist(&inputs.history_deal);
            let feature = hist(&inputs.history_feature);
            for w in 0..HISTORY {
                seq.extend([
                    (lu[w] - level) * m[w],
                    m[w],
                    (lp[w] - pl) * m[w],
                    deal[w] as f32 * m[w],
                    feature[w] as f32 * m[w],
                ]);
            }
            let brand = inputs.brand[r] as f32;
            let brand_oh: Vec<f32> = (1..=p)
                .map(|b| f32::from(u8::from(b as f32 == brand)))
                .collect();
            let store = inputs.store[r] as f32;
            let store_oh: Vec<f32> = self
                .stores
                .iter()
                .map(|s| f32::from(u8::from(*s as f32 == store)))
                .collect();
            for h in 0..HORIZON {
                let week = (r * HORIZON + h) * p..(r * HORIZON + h + 1) * p;
                let lpp: Vec<f32> = inputs.planned_prices[week.clone()]
                    .iter()
                    .map(|v| (*v as f32).max(EPS).ln())
                    .collect();
                let own = |v: &[f32]| -> f32 { v.iter().zip(&brand_oh).map(|(a, b)| a * b).sum() };
                let own_price = own(&lpp);
                let comp = lpp.iter().sum::<f32>() / p as f32;
                // The own column and the other brands' mean, as the graph computes them: the
                // own column through the one-hot code, the others' mean as (all - own) /
                // (brands - 1), 0 for a one-brand panel.
                let own_and_others = |v: &[f64]| -> [f32; 2] {
                    let v: Vec<f32> = v.iter().map(|x| *x as f32).collect();
                    let own = own(&v);
                    [own, (v.iter().sum::<f32>() - own) / (p - 1).max(1) as f32]
                };
                let [deal, others_deal] = own_and_others(&inputs.planned_deals[week.clone()]);
                let [feature, others_feature] = own_and_others(&inputs.planned_features[week]);
                stat.extend([
                    own_price - pl,
                    own_price - comp,
                    deal,
                    feature,
                    others_deal,
                    others_feature,
                ]);
            }
            stat.push((level - self.level_mean) / self.level_sd);
            stat.extend(brand_oh);
            stat.extend(store_oh);
            levels.push(level);
        }
        Encoded {
            n: inputs.n,
            seq,
            stat,
            level: levels,
        }
    }
}

/// The network's sizes and training settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    /// LSTM hidden units.
    pub hidden: usize,
    /// The history's last this many weeks are the LSTM's steps (the level and the other static
    /// inputs still come from the whole history).
    pub steps: usize,
    /// Units of the head's hidden layer.
    pub dense: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Rows per minibatch.
    pub batch: usize,
    /// Seed of the initialisation and of the minibatch order.
    pub seed: u64,
}

/// The trained weights, in the layout of the ONNX `LSTM` operator (gates in the order input,
/// output, forget, cell) and of `Gemm` with `transB = 1`.
#[derive(Debug, Clone)]
pub struct Weights {
    /// LSTM hidden units.
    pub hidden: usize,
    /// Weeks of history the LSTM steps through (the last ones).
    pub steps: usize,
    /// Head hidden units.
    pub dense: usize,
    /// `[4·hidden, SEQ_FEATURES]`.
    pub w: Vec<f32>,
    /// `[4·hidden, hidden]`.
    pub r: Vec<f32>,
    /// `[4·hidden]` (the input bias; ONNX's recurrent bias is zero).
    pub b: Vec<f32>,
    /// `[dense, hidden + static width]`.
    pub w1: Vec<f32>,
    /// `[dense]`.
    pub b1: Vec<f32>,
    /// `[HORIZON, dense]`.
    pub w2: Vec<f32>,
    /// `[HORIZON]`.
    pub b2: Vec<f32>,
}

/// The network's variables in candle.
pub struct Net {
    hidden: usize,
    steps: usize,
    dense: usize,
    w: Var,
    r: Var,
    b: Var,
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
}

fn uniform(rng: &mut Xoshiro256PlusPlus, shape: (usize, usize), bound: f32) -> Result<Var> {
    let v: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| rng.gen_range(-bound..bound))
        .collect();
    Ok(Var::from_tensor(&Tensor::from_vec(
        v,
        shape,
        &Device::Cpu,
    )?)?)
}

fn to_vec(v: &Var) -> Result<Vec<f32>> {
    Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?)
}

impl Net {
    /// A freshly initialised network (uniform ±1/√fan-in, as PyTorch's defaults).
    pub fn new(settings: &Settings, static_width: usize) -> Result<Net> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(settings.seed);
        let (h, d) = (settings.hidden, settings.dense);
        let kh = 1.0 / (h as f32).sqrt();
        let k1 = 1.0 / ((h + static_width) as f32).sqrt();
        let k2 = 1.0 / (d as f32).sqrt();
        Ok(Net {
            hidden: h,
            steps: settings.steps,
            dense: d,
            w: uniform(&mut rng, (4 * h, SEQ_FEATURES), kh)?,
            r: uniform(&mut rng, (4 * h, h), kh)?,
            b: uniform(&mut rng, (1, 4 * h), kh)?,
            w1: uniform(&mut rng, (d, h + static_width), k1)?,
            b1: uniform(&mut rng, (1, d), k1)?,
            w2: uniform(&mut rng, (HORIZON, d), k2)?,
            b2: uniform(&mut rng, (1, HORIZON), k2)?,
        })
    }

    fn vars(&self) -> Vec<Var> {
        vec![
            self.w.clone(),
            self.r.clone(),
            self.b.clone(),
            self.w1.clone(),
            self.b1.clone(),
            self.w2.clone(),
            self.b2.clone(),
        ]
    }

    /// The log units relative to the level, `[n, HORIZON]`.
    pub fn forward(&self, seq: &Tensor, stat: &Tensor) -> Result<Tensor> {
        let (_, weeks, _) = seq.dims3()?;
        let seq = seq.narrow(1, weeks - self.steps, self.steps)?;
        let (n, t, f) = seq.dims3()?;
        let h = self.hidden;
        let xw = seq
            .reshape((n * t, f))?
            .matmul(&self.w.as_tensor().t()?)?
            .broadcast_add(self.b.as_tensor())?
            .reshape((n, t, 4 * h))?;
        let rt = self.r.as_tensor().t()?;
        let mut hs = Tensor::zeros((n, h), DType::F32, &Device::Cpu)?;
        let mut cs = hs.clone();
        for step in 0..t {
            let g = (xw.i((.., step, ..))? + hs.matmul(&rt)?)?;
            let gates = g.chunk(4, D::Minus1)?;
            let i = candle_nn::ops::sigmoid(&gates[0])?;
            let o = candle_nn::ops::sigmoid(&gates[1])?;
            let fg = candle_nn::ops::sigmoid(&gates[2])?;
            let c = gates[3].tanh()?;
            cs = ((fg * &cs)? + (i * c)?)?;
            hs = (o * cs.tanh()?)?;
        }
        let z = Tensor::cat(&[&hs, stat], 1)?;
        let d1 = z
            .matmul(&self.w1.as_tensor().t()?)?
            .broadcast_add(self.b1.as_tensor())?
            .relu()?;
        Ok(d1
            .matmul(&self.w2.as_tensor().t()?)?
            .broadcast_add(self.b2.as_tensor())?)
    }

    /// Forward pass of encoded rows, in chunks: `[n][HORIZON]`.
    pub fn predict(&self, e: &Encoded) -> Result<Vec<[f32; HORIZON]>> {
        let width = e.stat.len() / e.n.max(1);
        let mut out = Vec::with_capacity(e.n);
        for start in (0..e.n).step_by(4096) {
            let end = (start + 4096).min(e.n);
            let (seq, stat) = batch_tensors(e, width, start..end)?;
            let y = self.forward(&seq, &stat)?.to_vec2::<f32>()?;
            out.extend(y.into_iter().map(|r| [r[0], r[1], r[2], r[3]]));
        }
        Ok(out)
    }

    /// The weights, for export.
    pub fn weights(&self) -> Result<Weights> {
        Ok(Weights {
            hidden: self.hidden,
            steps: self.steps,
            dense: self.dense,
            w: to_vec(&self.w)?,
            r: to_vec(&self.r)?,
            b: to_vec(&self.b)?,
            w1: to_vec(&self.w1)?,
            b1: to_vec(&self.b1)?,
            w2: to_vec(&self.w2)?,
            b2: to_vec(&self.b2)?,
        })
    }
}

fn batch_tensors(
    e: &Encoded,
    width: usize,
    rows: impl Iterator<Item = usize> + Clone,
) -> Result<(Tensor, Tensor)> {
    let seq: Vec<f32> = rows
        .clone()
        .flat_map(|r| e.seq[r * HISTORY * SEQ_FEATURES..(r + 1) * HISTORY * SEQ_FEATURES].iter())
        .copied()
        .collect();
    let stat: Vec<f32> = rows
        .flat_map(|r| e.stat[r * width..(r + 1) * width].iter())
        .copied()
        .collect();
    let n = stat.len() / width;
    Ok((
        Tensor::from_vec(seq, (n, HISTORY, SEQ_FEATURES), &Device::Cpu)?,
        Tensor::from_vec(stat, (n, width), &Device::Cpu)?,
    ))
}

/// Training rows: encoded inputs and the targets (log units relative to the level; NaN
/// where the target week has no record).
pub struct TrainSet {
    /// Encoded inputs.
    pub x: Encoded,
    /// `[n, HORIZON]`.
    pub y: Vec<f32>,
}

/// Trains for `epochs` epochs, calling `after_epoch(epoch, &net)` after each one (the caller
/// scores its validation weeks there). Masked mean squared error on the log scale; AdamW.
pub fn train(
    set: &TrainSet,
    width: usize,
    settings: &Settings,
    epochs: usize,
    mut after_epoch: impl FnMut(usize, &Net) -> Result<()>,
) -> Result<Net> {
    let net = Net::new(settings, width)?;
    let mut opt = candle_nn::AdamW::new(
        net.vars(),
        candle_nn::ParamsAdamW {
            lr: settings.learning_rate,
            weight_decay: settings.weight_decay,
            ..Default::default()
        },
    )?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(settings.seed ^ 0x5eed);
    let mut order: Vec<usize> = (0..set.x.n).collect();
    for epoch in 1..=epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(settings.batch) {
            let (seq, stat) = batch_tensors(&set.x, width, chunk.iter().copied())?;
            let (y, mask): (Vec<f32>, Vec<f32>) = chunk
                .iter()
                .flat_map(|&r| set.y[r * HORIZON..(r + 1) * HORIZON].iter())
                .map(|v| if v.is_nan() { (0.0, 0.0) } else { (*v, 1.0) })
                .unzip();
            let n = chunk.len();
            let y = Tensor::from_vec(y, (n, HORIZON), &Device::Cpu)?;
            let mask = Tensor::from_vec(mask, (n, HORIZON), &Device::Cpu)?;
            let pred = net.forward(&seq, &stat)?;
            let err = ((pred - y)? * &mask)?;
            let loss =
                (err.sqr()?.sum_all()? / mask.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64)?;
            opt.backward_step(&loss)
                .with_context(|| format!("training epoch {epoch}"))?;
        }
        after_epoch(epoch, &net)?;
    }
    Ok(net)
}
