//! Where tract spends its time on an ONNX graph: the time of each node of the optimised plan,
//! natively, on a request of `--rows` rows tiled from the first of the graph's examples (the
//! `examples.json` that `trademl pack --onnx` takes).
//!
//! Run from the workspace root:
//! `cargo run --release -p trademl-train --example onnx_profile -- onnx-models/demand-forecast-lstm`
//!
//! This is how the LSTM's exported graph was found to spend most of a 100-row request splitting
//! its input projection (docs/bench/onnx.md); the ONNX runner inside the component runs the same
//! plan with the same version of tract.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{SimpleState, eval};

#[derive(Parser)]
struct Args {
    /// A folder holding model.onnx and examples.json.
    dir: PathBuf,
    /// Rows of the request: the example's rows repeated.
    #[arg(long, default_value_t = 100)]
    rows: usize,
    /// Runs timed (after as many untimed).
    #[arg(long, default_value_t = 100)]
    runs: usize,
    /// Nodes listed, slowest first.
    #[arg(long, default_value_t = 15)]
    top: usize,
    /// Another folder (another export of the same model): both graphs are also run plainly (no
    /// per-node timing), one run of each in turn, and their medians compared. Taking turns keeps
    /// a shared machine's changing load out of the ratio.
    #[arg(long)]
    against: Option<PathBuf>,
    /// Also run the same graph optimised without being told that the batch is at least one row
    /// (as the ONNX runner optimised graphs before demand-forecast-lstm 2.0.3), in turn with the
    /// graph as the runner optimises it, and compare their medians.
    #[arg(long, conflicts_with = "against")]
    against_open_batch: bool,
}

type Plan = Arc<TypedSimplePlan>;

/// The optimised plan of `dir`'s model.onnx, and its request of `rows` rows. `at_least_one_row`:
/// optimised as the ONNX runner optimises it, told that the batch is at least one row.
fn load(dir: &Path, rows: usize, at_least_one_row: bool) -> Result<(PathBuf, Plan, TVec<TValue>)> {
    let onnx = dir.join("model.onnx");
    let examples: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("examples.json")).context("reading examples.json")?,
    )
    .context("examples.json is not JSON")?;
    let model = tract_onnx::onnx()
        .model_for_path(&onnx)
        .map_err(|e| anyhow!("{e:?}"))
        .with_context(|| format!("reading {}", onnx.display()))?;
    if at_least_one_row {
        trademl_train::demand_lstm::onnx::at_least_one_row(&model.symbols)?;
    }
    let plan = model
        .into_optimized()
        .map_err(|e| anyhow!("{e:?}"))?
        .into_runnable()
        .map_err(|e| anyhow!("{e:?}"))?;
    let inputs = request(&examples, rows)?;
    Ok((onnx, plan, inputs))
}

/// Times plain runs of `a` and `b`, one of each in turn after as many untimed, and prints the
/// medians (ms) and their ratio.
fn interleaved(
    a: &(PathBuf, Plan, TVec<TValue>),
    b: &(PathBuf, Plan, TVec<TValue>),
    runs: usize,
) -> Result<()> {
    let mut states = [
        SimpleState::new(&a.1).map_err(|e| anyhow!("{e:?}"))?,
        SimpleState::new(&b.1).map_err(|e| anyhow!("{e:?}"))?,
    ];
    let inputs = [&a.2, &b.2];
    let mut times = [Vec::with_capacity(runs), Vec::with_capacity(runs)];
    for run in 0..2 * runs {
        for k in 0..2 {
            let started = Instant::now();
            states[k]
                .run(inputs[k].clone())
                .map_err(|e| anyhow!("{e:?}"))?;
            if run >= runs {
                times[k].push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let [ta, tb] = &mut times;
    let (ma, mb) = (median(ta), median(tb));
    println!(
        "plain runs, taking turns ({runs} each): median {ma:.3} ms {}",
        a.0.display()
    );
    println!(
        "plain runs, taking turns ({runs} each): median {mb:.3} ms {}",
        b.0.display()
    );
    println!("ratio of medians (first / second): {:.3}", ma / mb);
    Ok(())
}

/// The first example's inputs, each tiled along its first axis to `rows` rows.
fn request(examples: &serde_json::Value, rows: usize) -> Result<TVec<TValue>> {
    let inputs = examples[0]["inputs"]
        .as_array()
        .context("examples.json: the first example has no \"inputs\" list")?;
    let mut values = tvec![];
    for t in inputs {
        let name = t["name"].as_str().unwrap_or("?");
        let shape: Vec<usize> = serde_json::from_value(t["shape"].clone())
            .with_context(|| format!("input \"{name}\": shape"))?;
        let data: Vec<f64> = serde_json::from_value(t["data"].clone())
            .with_context(|| format!("input \"{name}\": data (numbers)"))?;
        if t["datatype"] != "FP64" {
            bail!("input \"{name}\": only FP64 inputs are supported here");
        }
        let Some(&example_rows) = shape.first().filter(|&&r| r > 0) else {
            bail!("input \"{name}\": no rows");
        };
        let per_row = data.len() / example_rows;
        let tiled: Vec<f64> = (0..rows)
            .flat_map(|r| &data[(r % example_rows) * per_row..][..per_row])
            .copied()
            .collect();
        let mut tiled_shape = shape.clone();
        tiled_shape[0] = rows;
        values.push(TValue::from(
            Tensor::from_shape(&tiled_shape, &tiled).map_err(|e| anyhow!("{e:?}"))?,
        ));
    }
    Ok(values)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let loaded = load(&args.dir, args.rows, true)?;
    let (onnx, plan, inputs) = &loaded;
    let mut state = SimpleState::new(plan).map_err(|e| anyhow!("{e:?}"))?;
    let mut per_node: HashMap<String, f64> = HashMap::new();
    let mut total = 0.0;
    for run in 0..2 * args.runs {
        let timed = run >= args.runs;
        let started = Instant::now();
        state
            .run_plan_with_eval(inputs.clone(), |ctx, op_state, node, input| {
                let started = Instant::now();
                let out = eval(ctx, op_state, node, input);
                if timed {
                    *per_node
                        .entry(format!("{} ({})", node.name, node.op().name()))
                        .or_default() += started.elapsed().as_secs_f64();
                }
                out
            })
            .map_err(|e| anyhow!("{e:?}"))?;
        if timed {
            total += started.elapsed().as_secs_f64();
        }
    }
    let ms = |s: f64| s * 1e3 / args.runs as f64;
    println!(
        "{}: {} rows, mean of {} runs: {:.3} ms a run, {} nodes",
        onnx.display(),
        args.rows,
        args.runs,
        ms(total),
        per_node.len()
    );
    let mut nodes: Vec<_> = per_node.into_iter().collect();
    nodes.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (node, seconds) in nodes.iter().take(args.top) {
        println!(
            "{:9.3} ms {:5.1}%  {node}",
            ms(*seconds),
            100.0 * seconds / total
        );
    }
    if let Some(other) = &args.against {
        interleaved(&loaded, &load(other, args.rows, true)?, args.runs)?;
    }
    if args.against_open_batch {
        let (onnx, plan, inputs) = load(&args.dir, args.rows, false)?;
        let label = PathBuf::from(format!("{} (batch left open)", onnx.display()));
        interleaved(&loaded, &(label, plan, inputs), args.runs)?;
    }
    Ok(())
}
