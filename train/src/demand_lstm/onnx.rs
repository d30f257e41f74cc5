//! The trained network as an ONNX graph (opset 13), and that graph run with tract.
//!
//! The graph takes the request's tensors as a client sends them (FP64, the same names and
//! shapes as the tree model's inputs) and computes, with standard operators, the encoding of
//! [`super::net::Encoder::encode`], a standard `LSTM` node over the history (time-major, gates
//! in ONNX's order input, output, forget, cell), the dense head (`Gemm`, `Relu`) and the
//! outputs `forecast`, `lower_80` and `upper_80` (FP64, `[batch, 4]`): `exp(level + head +
//! constant)` with the per-horizon level correction and interval quantiles as constants.
//!
//! [`Runner`] runs the graph with tract-onnx 0.23.9, the version inside the component's ONNX
//! runner, so the evaluation's figures come from the arithmetic the component runs.

use anyhow::{Context, Result, anyhow, ensure};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::{
    Framework, InferenceModelExt, IntoRunnable, SymbolScope, TValue, Tensor, TypedRunnableModel,
    tvec,
};
use trademl_model_demand_forecast::model::{HISTORY, HORIZON};

use super::net::{EPS, Encoder, Inputs, PLAN_FEATURES, SEQ_FEATURES, Weights};

/// The per-horizon constants added to the log forecast: the level correction, and the
/// correction plus the lower and upper quantiles of the log residuals.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Offsets {
    /// Added for `forecast`.
    pub shift: [f64; HORIZON],
    /// Added for `lower_80`.
    pub lower: [f64; HORIZON],
    /// Added for `upper_80`.
    pub upper: [f64; HORIZON],
}

/// The ONNX operator set the graph declares.
pub const OPSET: i64 = 13;

/// The recurrent operators, whose `layout` attribute exists from operator set 14 on.
const RECURRENT: [&str; 3] = ["LSTM", "GRU", "RNN"];

/// Checks what tract lets pass and other runtimes refuse, so that the graph a user takes to
/// onnxruntime (or the ONNX checker) loads there too: a recurrent node's `layout` attribute
/// under an operator set older than 14, and a batch-first recurrent node (`layout` 1), which
/// onnxruntime 1.32 does not run on the CPU. Version 2.0.0 of the LSTM had both.
pub fn check_portable(onnx: &[u8]) -> Result<()> {
    let model = pb::ModelProto::decode(onnx).context("decoding the ONNX graph")?;
    let declared = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| anyhow!("the graph declares no ai.onnx operator set"))?;
    for node in model.graph.iter().flat_map(|g| &g.node) {
        if !RECURRENT.contains(&node.op_type.as_str()) {
            continue;
        }
        if let Some(layout) = node.attribute.iter().find(|a| a.name == "layout") {
            let op = &node.op_type;
            ensure!(
                declared >= 14,
                "node {:?}: {op}'s attribute \"layout\" needs operator set 14, the graph \
                 declares {declared}",
                node.name
            );
            ensure!(
                layout.i == 0,
                "node {:?}: {op} with layout {} (batch-first), which onnxruntime does not run; \
                 give it the sequence time-major (layout 0)",
                node.name,
                layout.i
            );
        }
    }
    Ok(())
}

const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;
const DOUBLE: i32 = pb::tensor_proto::DataType::Double as i32;
const INT64: i32 = pb::tensor_proto::DataType::Int64 as i32;

/// The graph's inputs: name, columns per row (0 = a vector), and what it means.
pub fn input_names(products: usize) -> [(&'static str, usize); 9] {
    [
        ("store", 0),
        ("brand", 0),
        ("history_units", HISTORY),
        ("history_price", HISTORY),
        ("history_deal", HISTORY),
        ("history_feature", HISTORY),
        ("planned_prices", HORIZON * products),
        ("planned_deals", HORIZON * products),
        ("planned_features", HORIZON * products),
    ]
}

/// The graph's outputs, `[batch, HORIZON]` FP64 each.
pub const OUTPUTS: [&str; 3] = ["forecast", "lower_80", "upper_80"];

/// Builds the graph's nodes and initializers.
struct Graph {
    nodes: Vec<pb::NodeProto>,
    init: Vec<pb::TensorProto>,
    count: usize,
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(n) => Value::DimValue(*n),
                                None => Value::DimParam("batch".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Graph {
    /// Adds a node with one output; returns the output's name.
    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<pb::AttributeProto>) -> String {
        self.count += 1;
        let out = format!("{}_{}", op.to_lowercase(), self.count);
        self.node(op, inputs, &[&out], attrs);
        out
    }

    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<pb::AttributeProto>,
    ) {
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: format!("n{}", self.nodes.len()),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
    }

    fn floats(&mut self, name: &str, dims: &[i64], v: Vec<f32>) -> String {
        self.init.push(pb::TensorProto {
            dims: dims.to_vec(),
            data_type: FLOAT,
            float_data: v,
            name: name.into(),
            ..Default::default()
        });
        name.into()
    }

    fn ints(&mut self, name: &str, v: &[i64]) -> String {
        self.init.push(pb::TensorProto {
            dims: vec![v.len() as i64],
            data_type: INT64,
            int64_data: v.to_vec(),
            name: name.into(),
            ..Default::default()
        });
        name.into()
    }

    fn ints_scalar(&mut self, name: &str, v: i64) -> String {
        self.init.push(pb::TensorProto {
            dims: vec![],
            data_type: INT64,
            int64_data: vec![v],
            name: name.into(),
            ..Default::default()
        });
        name.into()
    }

    fn cast_to_float(&mut self, x: &str) -> String {
        self.op("Cast", &[x], vec![attr_int("to", FLOAT as i64)])
    }

    fn unsqueeze(&mut self, x: &str, axis: &str) -> String {
        self.op("Unsqueeze", &[x, axis], vec![])
    }

    fn sum(&mut self, x: &str, axis: &str, keep: bool) -> String {
        self.op(
            "ReduceSum",
            &[x, axis],
            vec![attr_int("keepdims", keep as i64)],
        )
    }

    fn concat(&mut self, xs: &[&str], axis: i64) -> String {
        self.op("Concat", xs, vec![attr_int("axis", axis)])
    }
}

/// The ONNX file of `weights` with `encoder`'s encoding and `offsets`' constants.
pub fn export(weights: &Weights, encoder: &Encoder, offsets: &Offsets, doc: &str) -> Vec<u8> {
    let p = encoder.products;
    let (h, d) = (weights.hidden as i64, weights.dense as i64);
    let width = encoder.static_width() as i64;
    let mut g = Graph {
        nodes: vec![],
        init: vec![],
        count: 0,
    };
    let ax0 = g.ints("axis0", &[0]);
    let ax1 = g.ints("axis1", &[1]);
    let ax2 = g.ints("axis2", &[2]);
    let zero = g.floats("zero", &[], vec![0.0]);
    let one = g.floats("one", &[], vec![1.0]);
    let eps = g.floats("eps", &[], vec![EPS]);
    let names = input_names(p);
    let [st, br, u, pr, dl, ft, pp, pd, pf] = names.map(|(name, _)| g.cast_to_float(name));

    // History: mask, log units and price relative to their means over the observed weeks.
    let gt = g.op("Greater", &[&u, &zero], vec![]);
    let m = g.cast_to_float(&gt);
    let count = g.sum(&m, &ax1, true);
    let count = g.op("Max", &[&count, &one], vec![]);
    let masked_log = |g: &mut Graph, x: &str| {
        let x = g.op("Max", &[x, &eps], vec![]);
        let x = g.op("Log", &[&x], vec![]);
        g.op("Mul", &[&x, &m], vec![])
    };
    let lu = masked_log(&mut g, &u);
    let s = g.sum(&lu, &ax1, true);
    let level = g.op("Div", &[&s, &count], vec![]);
    let lp = masked_log(&mut g, &pr);
    let s = g.sum(&lp, &ax1, true);
    let pl = g.op("Div", &[&s, &count], vec![]);
    let rel = |g: &mut Graph, x: &str, mean: &str| {
        let x = g.op("Sub", &[x, mean], vec![]);
        g.op("Mul", &[&x, &m], vec![])
    };
    let x1 = rel(&mut g, &lu, &level);
    let x3 = rel(&mut g, &lp, &pl);
    let x4 = g.op("Mul", &[&dl, &m], vec![]);
    let x5 = g.op("Mul", &[&ft, &m], vec![]);
    // The sequence, time-major ([time, batch, feature]: the LSTM's default layout, as
    // onnxruntime runs no batch-first recurrent node), built from the five [batch, time] columns
    // as [feature * time, batch] -> [feature, time, batch] -> transposed. tract folds the
    // transposes into the LSTM's input projection, so the layout built here is the one its matrix
    // product reads:
    // - [batch, time, 1] columns concatenated on the feature axis: tract splits the projection
    //   at the concat into one rank-1 product per feature, each moved and summed (100 rows 12.9
    //   ms natively, demand-forecast-lstm 1.0.0);
    // - [batch, feature * time] -> [batch, feature, time]: the feature axis (the product's inner
    //   dimension) lies between batch and time, and tract moves the whole [time, batch,
    //   4 * hidden] product back after it (1.0.1 to 2.0.1);
    // - [feature, time, batch], this layout: time and batch stay adjacent, one product and no
    //   move. Natively, 100 rows take 0.92 to 0.95 of the time they took with the layout before
    //   (docs/bench/lstm-profile.txt).
    let columns: Vec<String> = [&x1, &m, &x3, &x4, &x5]
        .into_iter()
        .map(|x| g.op("Transpose", &[x], vec![attr_ints("perm", &[1, 0])]))
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let seq = g.concat(&columns, 0);
    let shape = g.ints("seq_shape", &[SEQ_FEATURES as i64, HISTORY as i64, -1]);
    let seq = g.op("Reshape", &[&seq, &shape], vec![]);
    let seq = g.op("Transpose", &[&seq], vec![attr_ints("perm", &[1, 2, 0])]);
    // The LSTM reads the last `steps` weeks.
    let starts = g.ints("steps_start", &[(HISTORY - weights.steps) as i64]);
    let ends = g.ints("steps_end", &[HISTORY as i64]);
    let seq = g.op("Slice", &[&seq, &starts, &ends, &ax0], vec![]);

    // The LSTM; only its last hidden state is used.
    let w = g.floats(
        "lstm_W",
        &[1, 4 * h, SEQ_FEATURES as i64],
        weights.w.clone(),
    );
    let r = g.floats("lstm_R", &[1, 4 * h, h], weights.r.clone());
    let mut bias = weights.b.clone();
    bias.extend(std::iter::repeat_n(0.0, 4 * h as usize));
    let b = g.floats("lstm_B", &[1, 8 * h], bias);
    // Zero initial states of the batch's size (tract builds its own only for a fixed batch).
    // As torch.onnx.export writes them: ConstantOfShape([1, batch, hidden]) (one direction).
    let shape = g.op("Shape", &[&u], vec![]);
    let index0 = g.ints("index0", &[0]);
    let batch = g.op("Gather", &[&shape, &index0], vec![attr_int("axis", 0)]);
    let one_i = g.ints("one_i", &[1]);
    let hidden_i = g.ints("hidden_i", &[h]);
    let h_shape = g.concat(&[&one_i, &batch, &hidden_i], 0);
    let h0 = g.op(
        "ConstantOfShape",
        &[&h_shape],
        vec![pb::AttributeProto {
            name: "value".into(),
            r#type: pb::attribute_proto::AttributeType::Tensor as i32,
            t: Some(pb::TensorProto {
                dims: vec![1],
                data_type: FLOAT,
                float_data: vec![0.0],
                ..Default::default()
            }),
            ..Default::default()
        }],
    );
    g.node(
        "LSTM",
        &[&seq, &w, &r, &b, "", &h0, &h0],
        &["lstm_y", "lstm_h", "lstm_c"],
        vec![attr_int("hidden_size", h)],
    );
    // The last step of Y ([time, 1, batch, hidden]); tract 0.23.9's declutter mis-shapes the
    // cell state when only Y_h is read.
    let last = g.ints_scalar("last_step", weights.steps as i64 - 1);
    let y_last = g.op("Gather", &["lstm_y", &last], vec![attr_int("axis", 0)]);
    let hidden = g.op("Squeeze", &[&y_last, &ax0], vec![]);

    // One-hot brand and store.
    let one_hot = |g: &mut Graph, x: &str, name: &str, ids: Vec<f32>| {
        let n = ids.len() as i64;
        let ids = g.floats(name, &[1, n], ids);
        let x = g.unsqueeze(x, &ax1);
        let eq = g.op("Equal", &[&x, &ids], vec![]);
        g.cast_to_float(&eq)
    };
    let brand_oh = one_hot(
        &mut g,
        &br,
        "brand_ids",
        (1..=p).map(|b| b as f32).collect(),
    );
    let store_oh = one_hot(
        &mut g,
        &st,
        "store_ids",
        encoder.stores.iter().map(|s| *s as f32).collect(),
    );

    // The planned weeks.
    let shape = g.ints("plan_shape", &[-1, HORIZON as i64, p as i64]);
    let pp3 = g.op("Reshape", &[&pp, &shape], vec![]);
    let lpp = g.op("Max", &[&pp3, &eps], vec![]);
    let lpp = g.op("Log", &[&lpp], vec![]);
    let boh3 = g.unsqueeze(&brand_oh, &ax1);
    let own = g.op("Mul", &[&lpp, &boh3], vec![]);
    let own = g.sum(&own, &ax2, false);
    let all = g.sum(&lpp, &ax2, false);
    let products = g.floats("products", &[], vec![p as f32]);
    let comp = g.op("Div", &[&all, &products], vec![]);
    let a = g.op("Sub", &[&own, &pl], vec![]);
    let bb = g.op("Sub", &[&own, &comp], vec![]);
    // Every brand's planned deals and features: the own column through the one-hot code, and
    // the other brands' mean, (all - own) / (brands - 1), 0 for a one-brand panel.
    let others = g.floats("other_products", &[], vec![(p - 1).max(1) as f32]);
    let own_and_others = |g: &mut Graph, x: &str| {
        let x3 = g.op("Reshape", &[x, &shape], vec![]);
        let own = g.op("Mul", &[&x3, &boh3], vec![]);
        let own = g.sum(&own, &ax2, false);
        let all = g.sum(&x3, &ax2, false);
        let rest = g.op("Sub", &[&all, &own], vec![]);
        let mean = g.op("Div", &[&rest, &others], vec![]);
        (own, mean)
    };
    let (deal, others_deal) = own_and_others(&mut g, &pd);
    let (feature, others_feature) = own_and_others(&mut g, &pf);
    let cols: Vec<String> = [&a, &bb, &deal, &feature, &others_deal, &others_feature]
        .iter()
        .map(|x| g.unsqueeze(x, &ax2))
        .collect();
    let plan = g.concat(&cols.iter().map(String::as_str).collect::<Vec<_>>(), 2);
    let shape = g.ints("plan_flat", &[-1, (HORIZON * PLAN_FEATURES) as i64]);
    let plan = g.op("Reshape", &[&plan, &shape], vec![]);
    let mean = g.floats("level_mean", &[], vec![encoder.level_mean]);
    let sd = g.floats("level_sd", &[], vec![encoder.level_sd]);
    let lz = g.op("Sub", &[&level, &mean], vec![]);
    let lz = g.op("Div", &[&lz, &sd], vec![]);

    // The head.
    let z = g.concat(&[&hidden, &plan, &lz, &brand_oh, &store_oh], 1);
    let w1 = g.floats("head_W1", &[d, h + width], weights.w1.clone());
    let b1 = g.floats("head_b1", &[d], weights.b1.clone());
    let w2 = g.floats("head_W2", &[HORIZON as i64, d], weights.w2.clone());
    let b2 = g.floats("head_b2", &[HORIZON as i64], weights.b2.clone());
    let d1 = g.op("Gemm", &[&z, &w1, &b1], vec![attr_int("transB", 1)]);
    let d1 = g.op("Relu", &[&d1], vec![]);
    let head = g.op("Gemm", &[&d1, &w2, &b2], vec![attr_int("transB", 1)]);
    let log_forecast = g.op("Add", &[&head, &level], vec![]);
    let consts = [
        ("shift", offsets.shift),
        ("lower", offsets.lower),
        ("upper", offsets.upper),
    ];
    for (out, (name, c)) in OUTPUTS.iter().zip(consts) {
        let c = g.floats(name, &[1, HORIZON as i64], c.map(|v| v as f32).to_vec());
        let x = g.op("Add", &[&log_forecast, &c], vec![]);
        let x = g.op("Exp", &[&x], vec![]);
        g.node("Cast", &[&x], &[out], vec![attr_int("to", DOUBLE as i64)]);
    }

    let inputs = names
        .iter()
        .map(|(name, cols)| {
            let dims: Vec<Option<i64>> = if *cols == 0 {
                vec![None]
            } else {
                vec![None, Some(*cols as i64)]
            };
            value_info(name, DOUBLE, &dims)
        })
        .collect();
    let outputs = OUTPUTS
        .iter()
        .map(|name| value_info(name, DOUBLE, &[None, Some(HORIZON as i64)]))
        .collect();
    let model = pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "trademl-train".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: doc.into(),
        graph: Some(pb::GraphProto {
            node: g.nodes,
            name: "demand_forecast_lstm".into(),
            initializer: g.init,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    };
    model.encode_to_vec()
}

/// An ONNX graph of this module loaded into tract.
pub struct Runner {
    plan: std::sync::Arc<TypedRunnableModel>,
    products: usize,
}

/// A batch's forecasts: units and the interval per row and horizon.
#[derive(Debug, Clone, Default)]
pub struct Forecasts {
    /// `forecast`.
    pub units: Vec<[f64; HORIZON]>,
    /// `lower_80`.
    pub lower: Vec<[f64; HORIZON]>,
    /// `upper_80`.
    pub upper: Vec<[f64; HORIZON]>,
}

/// Tells tract that every symbol of `symbols` (a graph's open dimensions: the batch) is at least
/// 1, as the ONNX runner does before it optimises a graph: tract then proves a batch large enough
/// for its vectorised element-wise kernels (see `runners/onnx/src/lib.rs`).
pub fn at_least_one_row(symbols: &SymbolScope) -> Result<()> {
    for sym in symbols.all_symbols() {
        symbols
            .add_assertion(format!("{sym}>=1"))
            .map_err(|e| anyhow!("{e:?}"))
            .with_context(|| format!("asserting {sym} >= 1"))?;
    }
    Ok(())
}

impl Runner {
    /// Parses, types and optimises the graph, told as the ONNX runner tells it
    /// (`runners/onnx`) that its open dimension, the batch, is at least 1.
    pub fn new(onnx: &[u8], products: usize) -> Result<Runner> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .map_err(|e| anyhow!("{e:?}"))
            .context("reading the exported ONNX graph with tract")?;
        at_least_one_row(&model.symbols)?;
        let plan = model
            .into_optimized()
            .map_err(|e| anyhow!("{e:?}"))
            .context("optimising the exported ONNX graph")?
            .into_runnable()
            .map_err(|e| anyhow!("{e:?}"))?;
        Ok(Runner { plan, products })
    }

    /// Runs the graph on `inputs`.
    pub fn run(&self, inputs: &Inputs) -> Result<Forecasts> {
        ensure!(
            inputs.products == self.products,
            "the rows have {} brands, the graph {}",
            inputs.products,
            self.products
        );
        if inputs.n == 0 {
            return Ok(Forecasts::default());
        }
        let columns = [
            &inputs.store,
            &inputs.brand,
            &inputs.history_units,
            &inputs.history_price,
            &inputs.history_deal,
            &inputs.history_feature,
            &inputs.planned_prices,
            &inputs.planned_deals,
            &inputs.planned_features,
        ];
        let mut values = tvec![];
        for ((_, cols), data) in input_names(self.products).iter().zip(columns) {
            let shape: Vec<usize> = if *cols == 0 {
                vec![inputs.n]
            } else {
                vec![inputs.n, *cols]
            };
            values.push(TValue::from(
                Tensor::from_shape(&shape, data.as_slice()).map_err(|e| anyhow!("{e:?}"))?,
            ));
        }
        let out = self.plan.run(values).map_err(|e| anyhow!("{e:?}"))?;
        let rows = |k: usize| -> Result<Vec<[f64; HORIZON]>> {
            let view = out[k].try_as_plain_ram().map_err(|e| anyhow!("{e:?}"))?;
            let v = view.as_slice::<f64>().map_err(|e| anyhow!("{e:?}"))?;
            ensure!(
                v.len() == inputs.n * HORIZON,
                "output {} has {} values",
                OUTPUTS[k],
                v.len()
            );
            Ok(v.chunks(HORIZON)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect())
        };
        Ok(Forecasts {
            units: rows(0)?,
            lower: rows(1)?,
            upper: rows(2)?,
        })
    }
}
