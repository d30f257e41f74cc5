//! `ai.onnx.ml` `TreeEnsembleRegressor`, which scikit-learn's random forest,
//! extra-trees and gradient-boosting regressors export to (skl2onnx), and
//! which this version of tract parses only for classifiers. The trees are
//! evaluated by tract's own ensemble evaluator (`tract_onnx_opl::ml::tree`),
//! as for the classifier; what is here reads the regressor's attributes
//! (`target_*` instead of `class_*`, `n_targets`, `aggregate_function`) and
//! adds `base_values`.
//!
//! `parse_ensemble` follows tract-onnx 0.23.9's `parse_nodes_data`
//! (src/ops/ml/tree_ensemble_classifier.rs, MIT OR Apache-2.0), which is
//! private to that crate.

use std::iter;

use tract_hir::internal::*;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::pb_helpers::*;
use tract_onnx::tract_hir;
use tract_onnx_opl::ml::tree::{Cmp, TreeEnsemble, TreeEnsembleData};
use tract_onnx_opl::ml::tree_ensemble_classifier::{TreeEnsembleClassifier, parse_aggregate};

/// Adds `TreeEnsembleRegressor` to the operators the parser knows.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleRegressor", tree_regressor);
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
    let ensemble = parse_ensemble(node)?;
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

fn parse_ensemble(node: &NodeProto) -> TractResult<TreeEnsemble> {
    let n_targets: usize = node.get_attr("n_targets")?;
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

    let n_leaves = node.get_attr_slice::<i64>("target_ids")?.len();
    node.expect_attr("target_ids", n_leaves != 0, "at least one leaf")?;
    let leaf_node_ids = vec_attr::<usize>(node, "target_nodeids", n_leaves)?;
    let leaf_tree_ids = vec_attr::<usize>(node, "target_treeids", n_leaves)?;
    let leaf_target_ids = vec_attr::<usize>(node, "target_ids", n_leaves)?;
    let leaf_weights = vec_attr::<f32>(node, "target_weights", n_leaves)?;

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
        n_targets,
        aggregate_fn,
    )
}
