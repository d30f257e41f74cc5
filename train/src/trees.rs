//! Fitted tree ensembles as the component evaluates them ([`trademl_sdk::trees`]): conversion from
//! the `forust-ml` gradient-boosting library, and the Rust source a trainer writes into a model
//! crate's `weights.rs`.
//!
//! A trainer fits with a library, converts with [`Forest::from_forust`], evaluates held-out
//! data with [`Forest::view`] (so the figures it reports come from exactly the arithmetic the
//! component runs), and writes the tables with [`Forest::to_rust`].

use anyhow::{Result, bail};
use forust_ml::GradientBooster;
use trademl_sdk::trees::{Ensemble, LEAF, Node};

/// An owned ensemble: `base + scale × Σ trees`, each tree's nodes root first.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    /// What every prediction starts from.
    pub base: f64,
    /// The factor applied to the trees' sum (1 for boosting, 1/n for a forest of n trees).
    pub scale: f64,
    /// Each tree's nodes, root first, child indices relative to the tree.
    pub trees: Vec<Vec<Node>>,
    /// The flattened nodes and tree starts, kept in step with `trees` by the constructors.
    nodes: Vec<Node>,
    starts: Vec<u32>,
}

impl Forest {
    /// An ensemble of the given trees.
    pub fn new(base: f64, scale: f64, trees: Vec<Vec<Node>>) -> Forest {
        let mut nodes = Vec::new();
        let mut starts = Vec::with_capacity(trees.len());
        for tree in &trees {
            starts.push(u32::try_from(nodes.len()).expect("fewer than 2^32 nodes"));
            nodes.extend_from_slice(tree);
        }
        Forest {
            base,
            scale,
            trees,
            nodes,
            starts,
        }
    }

    /// The trees of a fitted `forust-ml` booster (up to its `prediction_iteration` when early
    /// stopping set one), on its raw scale: the log-odds for `LogLoss`, the target's own scale for
    /// `SquaredLoss`. Only NaN may mark a missing value, as in the component.
    pub fn from_forust(booster: &GradientBooster) -> Result<Forest> {
        if !booster.missing.is_nan() {
            bail!(
                "the booster treats {} as missing; trademl trees treat only NaN as missing",
                booster.missing
            );
        }
        let used = booster.prediction_iteration.unwrap_or(booster.trees.len());
        let mut trees = Vec::with_capacity(used);
        for (t, tree) in booster.trees.iter().take(used).enumerate() {
            // Nodes are numbered by their position; renumber them breadth-first from the root.
            let mut order = vec![0usize];
            let mut index = vec![u32::MAX; tree.nodes.len()];
            if tree.nodes.is_empty() {
                bail!("tree {t} has no nodes");
            }
            index[0] = 0;
            let mut i = 0;
            while i < order.len() {
                let node = &tree.nodes[order[i]];
                if node.num != order[i] {
                    bail!("tree {t}: node at {} is numbered {}", order[i], node.num);
                }
                if !node.is_leaf {
                    for child in [node.left_child, node.right_child, node.missing_node] {
                        match index.get(child) {
                            None => {
                                bail!("tree {t}: child {child} of node {} is missing", node.num)
                            }
                            Some(&u32::MAX) => {
                                index[child] = u32::try_from(order.len())?;
                                order.push(child);
                            }
                            Some(_) => {}
                        }
                    }
                }
                i += 1;
            }
            let nodes = order
                .iter()
                .map(|&num| {
                    let n = &tree.nodes[num];
                    let value = f64::from(n.weight_value);
                    if n.is_leaf {
                        Ok(Node::leaf(value))
                    } else {
                        Ok(Node::split(
                            u32::try_from(n.split_feature)?,
                            n.split_value,
                            index[n.left_child],
                            index[n.right_child],
                            index[n.missing_node],
                            value,
                        ))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            trees.push(nodes);
        }
        Ok(Forest::new(booster.base_score, 1.0, trees))
    }

    /// The ensemble as the component evaluates it.
    pub fn view(&self) -> Ensemble<'_> {
        Ensemble {
            base: self.base,
            scale: self.scale,
            nodes: &self.nodes,
            tree_starts: &self.starts,
        }
    }

    /// The number of nodes in all trees.
    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Rust source defining `pub static {NAME}: Ensemble<'static>` and its tables
    /// (`{NAME}_NODES`, `{NAME}_STARTS`), for a generated `weights.rs` that has
    /// `use trademl_sdk::trees::{Ensemble, Node, LEAF};` in scope.
    pub fn to_rust(&self, name: &str) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "pub static {name}_NODES: [Node; {}] = [\n",
            self.nodes.len()
        ));
        for n in &self.nodes {
            if n.feature == LEAF {
                s.push_str(&format!("    Node::leaf({:?}),\n", n.value));
            } else {
                s.push_str(&format!(
                    "    Node::split({}, {:?}, {}, {}, {}, {:?}),\n",
                    n.feature, n.threshold, n.left, n.right, n.missing, n.value
                ));
            }
        }
        s.push_str("];\n");
        s.push_str(&format!(
            "pub static {name}_STARTS: [u32; {}] = {:?};\n",
            self.starts.len(),
            self.starts
        ));
        s.push_str(&format!(
            "pub static {name}: Ensemble<'static> = Ensemble {{\n    base: {:?},\n    scale: {:?},\n    \
             nodes: &{name}_NODES,\n    tree_starts: &{name}_STARTS,\n}};\n",
            self.base, self.scale
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forust_ml::objective::ObjectiveType;
    use forust_ml::{GradientBooster, Matrix};

    /// A small regression problem with a missing value in the data.
    fn data() -> (Vec<f64>, Vec<f64>, usize) {
        let rows = 400;
        let mut x0 = Vec::with_capacity(rows);
        let mut x1 = Vec::with_capacity(rows);
        let mut y = Vec::with_capacity(rows);
        for i in 0..rows {
            let a = (i as f64 * 0.37).sin() * 3.0;
            let b = (i % 7) as f64;
            x0.push(if i % 50 == 0 { f64::NAN } else { a });
            x1.push(b);
            y.push(if a > 0.5 { 2.0 } else { -1.0 } + 0.3 * b);
        }
        // Column-major, as `forust_ml::Matrix` stores it.
        x0.extend(x1);
        (x0, y, rows)
    }

    #[test]
    fn a_converted_booster_predicts_what_the_booster_predicts() {
        let (x, y, rows) = data();
        let matrix = Matrix::new(&x, rows, 2);
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::SquaredLoss)
            .set_iterations(30)
            .set_learning_rate(0.3)
            .set_max_depth(3)
            .set_parallel(false);
        booster.fit_unweighted(&matrix, &y, None).unwrap();
        let expected = booster.predict(&matrix, false);

        let forest = Forest::from_forust(&booster).unwrap();
        assert!(forest.trees.len() > 1, "the booster grew several trees");
        let view = forest.view();
        for (r, want) in expected.iter().enumerate() {
            let row = [x[r], x[rows + r]];
            let got = view.predict(&row);
            assert!((got - want).abs() < 1e-9, "row {r}: {got} vs {want}");
        }
    }

    #[test]
    fn writes_tables_that_name_every_node() {
        let forest = Forest::new(
            0.5,
            1.0,
            vec![vec![
                Node::split(0, 1.5, 1, 2, 2, 0.0),
                Node::leaf(-1.0),
                Node::leaf(1.0),
            ]],
        );
        let src = forest.to_rust("DEMAND");
        assert!(src.contains("pub static DEMAND_NODES: [Node; 3]"), "{src}");
        assert!(src.contains("Node::split(0, 1.5, 1, 2, 2, 0.0)"), "{src}");
        assert!(
            src.contains("pub static DEMAND_STARTS: [u32; 1] = [0];"),
            "{src}"
        );
        assert!(src.contains("base: 0.5"), "{src}");
    }
}
