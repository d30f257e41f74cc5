//! `ai.onnx.ml` tree ensembles, evaluated by tract's own ensemble evaluator
//! (`tract_onnx_opl::ml::tree`):
//!
//! - `TreeEnsembleRegressor`, which scikit-learn's forest and boosting
//!   regressors export to (skl2onnx) and which tract 0.23.9 does not parse;
//! - `TreeEnsembleClassifier`, in place of tract 0.23.9's, whose labels are
//!   wrong for a binary classifier whose leaves score one class only (what
//!   skl2onnx exports for a binary forest or boosting model): tract takes the
//!   argmax of the one-column scores before completing them to two columns,
//!   so every label is the first class. Here the labels are the argmax of the
//!   completed scores, as onnxruntime computes them.
//!
//! `parse_ensemble` follows tract-onnx 0.23.9's `parse_nodes_data`, and the
//! classifier's wiring its `TreeEnsembleClassifier::wire`
//! (src/ops/ml/tree_ensemble_classifier.rs, MIT OR Apache-2.0), both private
//! to that crate.

use std::iter;

use tract_hir::internal::*;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::pb_helpers::*;
use tract_onnx::tract_hir;
use tract_onnx_opl::ml::tree::{Cmp, TreeEnsemble, TreeEnsembleData};
use tract_onnx_opl::ml::tree_ensemble_classifier::{TreeEnsembleClassifier, parse_aggregate};

/// Adds `TreeEnsembleRegressor`, and replaces `TreeEnsembleClassifier`.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleRegressor", tree_regressor);
    reg.insert("TreeEnsembleClassifier", tree_classifier);
}

#[derive(Debug, Clone)]
struct TreeEnsembleRegressor {
    ensemble: TreeEnsemble,
    base_values: Option<Vec<f32>>,
}

fn tree_regressor(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let post_transform: String = node
        .get_attr_opt("post_transform")?
        .unwrap_or_else(|| "NONE".into());
    if post_transform != "NONE" {
        bail!(
            "TreeEnsembleRegressor with post_transform {post_transform} is not supported (only NONE)"
        );
    }
    let n_targets: usize = node.get_attr("n_targets")?;
    let ensemble = parse_ensemble(node, "target", n_targets)?;
    let base_values = node.get_attr_opt_vec::<f32>("base_values")?;
    if let Some(b) = &base_values {
        node.expect_attr(
            "base_values",
            b.len() == ensemble.n_classes(),
            "one value per target",
        )?;
    }
    Ok((
        expand(TreeEnsembleRegressor {
            ensemble,
            base_values,
        }),
        vec![],
    ))
}

impl Expansion for TreeEnsembleRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.ensemble.n_classes().to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let scores = model.wire_node(
            format!("{prefix}.trees"),
            TreeEnsembleClassifier {
                ensemble: self.ensemble.clone(),
            },
            inputs,
        )?;
        let Some(base) = &self.base_values else {
            return Ok(scores);
        };
        let base = tensor1(base).broadcast_into_rank(2)?.into_arc_tensor();
        let base = model.add_const(format!("{prefix}.base"), base)?;
        model.wire_node(
            format!("{prefix}.base_values"),
            tract_core::ops::math::add(),
            &[scores[0], base],
        )
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(1)
    }
}

fn parse_node_mode(s: &str) -> TractResult<Option<Cmp>> {
    match s {
        "BRANCH_LEQ" => Ok(Some(Cmp::LessEqual)),
        "BRANCH_LT" => Ok(Some(Cmp::Less)),
        "BRANCH_GTE" => Ok(Some(Cmp::GreaterEqual)),
        "BRANCH_GT" => Ok(Some(Cmp::Greater)),
        "BRANCH_EQ" => Ok(Some(Cmp::Equal)),
        "BRANCH_NEQ" => Ok(Some(Cmp::NotEqual)),
        "LEAF" => Ok(None),
        _ => bail!("Unsupported mode node: {}", s),
    }
}

fn vec_attr<'a, T: AttrTVecType<'a>>(
    node: &'a NodeProto,
    attr: &str,
    n: usize,
) -> TractResult<Vec<T>> {
    let vec = node.get_attr_vec(attr)?;
    node.expect_attr(attr, vec.len() == n, || {
        format!("length {n}, got {}", vec.len())
    })?;
    Ok(vec)
}

/// The trees of a node; `leaf` is `class` or `target`, the prefix of the
/// leaf attributes, of which there are `n_outputs` columns.
fn parse_ensemble(node: &NodeProto, leaf: &str, n_outputs: usize) -> TractResult<TreeEnsemble> {
    let n_nodes = node.get_attr_slice::<i64>("nodes_featureids")?.len();
    node.expect_attr("nodes_featureids", n_nodes != 0, "at least one node")?;
    let node_ids = vec_attr::<usize>(node, "nodes_nodeids", n_nodes)?;
    let tree_ids = vec_attr::<usize>(node, "nodes_treeids", n_nodes)?;
    let feature_ids = vec_attr::<usize>(node, "nodes_featureids", n_nodes)?;
    let true_ids = vec_attr::<usize>(node, "nodes_truenodeids", n_nodes)?;
    let false_ids = vec_attr::<usize>(node, "nodes_falsenodeids", n_nodes)?;
    let node_values = vec_attr::<f32>(node, "nodes_values", n_nodes)?;
    let nan_is_true = match node.get_attr_opt_vec::<bool>("nodes_missing_value_tracks_true")? {
        Some(v) => {
            node.expect_attr(
                "nodes_missing_value_tracks_true",
                v.len() == n_nodes,
                "one per node",
            )?;
            v
        }
        None => iter::repeat_n(false, n_nodes).collect(),
    };
    let node_modes: Vec<Option<Cmp>> = vec_attr::<&str>(node, "nodes_modes", n_nodes)?
        .iter()
        .map(|s| parse_node_mode(s))
        .collect::<TractResult<_>>()?;
    let max_used_features = feature_ids.iter().max().copied().unwrap_or(0);
    let aggregate_fn = parse_aggregate(node.get_attr_opt("aggregate_function")?.unwrap_or("SUM"))?;

    let attr = |name: &str| format!("{leaf}_{name}");
    let n_leaves = node.get_attr_slice::<i64>(&attr("ids"))?.len();
    node.expect_attr(&attr("ids"), n_leaves != 0, "at least one leaf")?;
    let leaf_node_ids = vec_attr::<usize>(node, &attr("nodeids"), n_leaves)?;
    let leaf_tree_ids = vec_attr::<usize>(node, &attr("treeids"), n_leaves)?;
    let leaf_target_ids = vec_attr::<usize>(node, &attr("ids"), n_leaves)?;
    let leaf_weights = vec_attr::<f32>(node, &attr("weights"), n_leaves)?;

    let inc_by_1 = |x: &[usize]| {
        x.iter()
            .zip(x.iter().skip(1))
            .all(|(&x, &y)| y == x || y == x + 1)
    };
    node.expect_attr(
        "nodes_treeids",
        inc_by_1(&tree_ids),
        "tree ids to increase by 1",
    )?;
    node.expect_attr(
        "target_treeids",
        inc_by_1(&leaf_tree_ids),
        "leaf tree ids to increase by 1",
    )?;
    node.expect_attr(
        "nodes_treeids",
        tree_ids[0] == 0,
        "tree ids to start from 0",
    )?;
    node.expect_attr(
        "target_treeids",
        leaf_tree_ids[0] == 0,
        "leaf tree ids to start from 0",
    )?;
    let n_trees = *tree_ids.last().unwrap() + 1;
    node.expect(
        leaf_tree_ids.last() == Some(&(n_trees - 1)),
        "mismatching # of trees (nodes/leaves)",
    )?;

    let mut node_order: Vec<usize> = (0..n_nodes).collect();
    node_order.sort_by_key(|&ix| (tree_ids[ix], node_ids[ix]));
    let mut leaf_order: Vec<usize> = (0..n_leaves).collect();
    leaf_order.sort_by_key(|&ix| (leaf_tree_ids[ix], leaf_node_ids[ix]));

    // The layout tract's evaluator reads: per node 5 u32 (feature, true
    // child, false child, threshold bits, NaN flag | mode), or for a leaf
    // the range of its (target, weight bits) pairs in `leaves`.
    let mut trees = vec![];
    let mut nodes: Vec<u32> = vec![];
    let mut leaves: Vec<u32> = vec![];
    let mut current_tree_id = None;
    let mut in_leaf_ix = 0;
    for n in node_order {
        let (node_id, tree_id) = (node_ids[n], tree_ids[n]);
        if Some(tree_id) != current_tree_id {
            current_tree_id = Some(tree_id);
            trees.push(nodes.len() as u32 / 5);
        }
        let tree_start = *trees.last().unwrap();
        let mut row = [0u32; 5];
        if let Some(mode) = node_modes[n] {
            row[0] = feature_ids[n] as u32;
            row[1] = true_ids[n] as u32 + tree_start;
            row[2] = false_ids[n] as u32 + tree_start;
            row[3] = node_values[n].to_bits();
            row[4] = (0x0100u32 * nan_is_true[n] as u32) | mode as u32;
        } else {
            row[0] = leaves.len() as u32 / 2;
            while in_leaf_ix < n_leaves
                && leaf_tree_ids[leaf_order[in_leaf_ix]] == tree_id
                && leaf_node_ids[leaf_order[in_leaf_ix]] == node_id
            {
                let leaf_ix = leaf_order[in_leaf_ix];
                leaves.push(leaf_target_ids[leaf_ix] as u32);
                leaves.push(leaf_weights[leaf_ix].to_bits());
                in_leaf_ix += 1;
            }
            row[1] = leaves.len() as u32 / 2;
        }
        nodes.extend(row);
    }
    let trees = rctensor1(&trees);
    let nodes = tensor1(&nodes)
        .into_shape(&[nodes.len() / 5, 5])?
        .into_arc_tensor();
    let leaves = tensor1(&leaves)
        .into_shape(&[leaves.len() / 2, 2])?
        .into_arc_tensor();
    TreeEnsemble::build(
        TreeEnsembleData {
            trees,
            nodes,
            leaves,
        },
        max_used_features,
        n_outputs,
        aggregate_fn,
    )
}

#[derive(Debug, Clone, Copy)]
enum PostTransform {
    Softmax,
    Logistic,
}

#[derive(Debug, Clone)]
struct TreeEnsembleClassifier2 {
    ensemble: TreeEnsemble,
    class_labels: Vec<i64>,
    base_values: Option<Vec<f32>>,
    post_transform: Option<PostTransform>,
    /// The leaves score only the first of two classes: the scores are that
    /// one column, completed to two (`1 - s`, `s`).
    binary: bool,
}

fn tree_classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let Some(class_labels) = node.get_attr_opt_vec::<i64>("classlabels_int64s")? else {
        bail!(
            "TreeEnsembleClassifier with string class labels: trademl tensors carry numbers; \
             train with integer labels"
        );
    };
    let ensemble = parse_ensemble(node, "class", class_labels.len())?;
    let class_ids = node.get_attr_slice::<i64>("class_ids")?;
    let binary = class_labels.len() == 2 && class_ids.iter().all(|&c| c == 0);
    let mut base_values = node.get_attr_opt_vec::<f32>("base_values")?;
    if let Some(b) = &mut base_values {
        // A binary export whose leaves score the first column only may carry
        // one base value, for that column (scikit-learn's binary
        // GradientBoostingClassifier, through skl2onnx): the second column
        // is replaced by the complement below, so its base value is unused.
        if binary && b.len() == 1 {
            b.push(0.0);
        }
        node.expect_attr("base_values", b.len() == class_labels.len(), || {
            format!(
                "one value per class ({}), or one for a binary classifier; got {}",
                class_labels.len(),
                b.len()
            )
        })?;
    }
    let post_transform = match node
        .get_attr_opt::<&str>("post_transform")?
        .unwrap_or("NONE")
    {
        "NONE" => None,
        "SOFTMAX" => Some(PostTransform::Softmax),
        "LOGISTIC" => Some(PostTransform::Logistic),
        other => bail!("TreeEnsembleClassifier with post_transform {other} is not supported"),
    };
    Ok((
        expand(TreeEnsembleClassifier2 {
            ensemble,
            class_labels,
            base_values,
            post_transform,
            binary,
        }),
        vec![],
    ))
}

impl Expansion for TreeEnsembleClassifier2 {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&outputs[0].datum_type, DatumType::I64)?;
        s.equals(&outputs[1].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.class_labels.len().to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        use tract_core::ops::array::{Slice, TypedConcat};
        use tract_core::ops::nn::{Reduce, Reducer};
        let mut scores = model.wire_node(
            format!("{prefix}.trees"),
            TreeEnsembleClassifier {
                ensemble: self.ensemble.clone(),
            },
            inputs,
        )?;
        if let Some(base) = &self.base_values {
            let base = tensor1(base).broadcast_into_rank(2)?.into_arc_tensor();
            let base = model.add_const(format!("{prefix}.base"), base)?;
            scores = model.wire_node(
                format!("{prefix}.base_values"),
                tract_core::ops::math::add(),
                &[scores[0], base],
            )?;
        }
        match self.post_transform {
            None => (),
            Some(PostTransform::Softmax) => {
                scores = tract_hir::ops::nn::LayerSoftmax::new(1, false).wire(
                    &format!("{prefix}.softmax"),
                    model,
                    &scores,
                )?;
            }
            Some(PostTransform::Logistic) => {
                scores = model.wire_node(
                    format!("{prefix}.logistic"),
                    tract_core::ops::nn::sigmoid(),
                    &scores,
                )?;
            }
        }
        if self.binary {
            let first = model.wire_node(
                format!("{prefix}.binary_slice"),
                Slice::new(1, 0, 1),
                &scores,
            )?;
            let one = model.add_const(format!("{prefix}.one"), rctensor2(&[[1f32]]))?;
            let complement = model.wire_node(
                format!("{prefix}.binary_complement"),
                tract_core::ops::math::sub(),
                &[one, first[0]],
            )?;
            scores = model.wire_node(
                format!("{prefix}.binary_scores"),
                TypedConcat::new(1),
                &[complement[0], first[0]],
            )?;
        }
        // The labels from the scores as returned, completed or not.
        let winners = model.wire_node(
            format!("{prefix}.argmax"),
            Reduce::new(tvec!(1), Reducer::ArgMax(false)),
            &scores,
        )?;
        let winners = model.wire_node(
            format!("{prefix}.rm_axis"),
            tract_core::ops::change_axes::AxisOp::Rm(1),
            &winners,
        )?;
        let winners = model.wire_node(
            format!("{prefix}.to_i32"),
            tract_core::ops::cast::cast(i32::datum_type()),
            &winners,
        )?;
        let labels = model.wire_node(
            format!("{prefix}.labels"),
            tract_onnx_opl::ml::DirectLookup::new(rctensor1(&self.class_labels), rctensor0(0i64))?,
            &winners,
        )?[0];
        Ok(tvec!(labels, scores[0]))
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }
}
