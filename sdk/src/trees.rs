//! Decision-tree ensembles (gradient-boosted trees, random forests) evaluated inside a component.
//!
//! A trainer writes the fitted trees as static tables of [`Node`]s into the model crate's
//! `weights.rs`; the component evaluates them with plain comparisons, no allocation and no
//! dependency, so the same arithmetic runs natively in the trainer's evaluation and in the sandbox.
//!
//! Layout: every tree's nodes are stored root first in one slice; [`Ensemble::tree_starts`] says
//! where each tree starts, and child indices are relative to that start. A split sends
//! `x[feature] < threshold` to `left`, a missing value (NaN) to `missing`, and the rest to
//! `right`. Every node carries a `value` (at inner nodes too: the prediction had the tree stopped
//! there), which gives per-feature contributions along the path taken.
//!
//! ```
//! use trademl_sdk::trees::{Ensemble, Node};
//!
//! // One stump: x0 < 2.5 → 1.0, otherwise 3.0 (missing goes right).
//! static NODES: [Node; 3] = [Node::split(0, 2.5, 1, 2, 2, 2.0), Node::leaf(1.0), Node::leaf(3.0)];
//! let forest = Ensemble { base: 0.5, scale: 1.0, nodes: &NODES, tree_starts: &[0] };
//! assert_eq!(forest.predict(&[1.0]), 1.5);
//! assert_eq!(forest.predict(&[f64::NAN]), 3.5);
//! ```

/// The `feature` of a leaf.
pub const LEAF: u32 = u32::MAX;

/// One node of a decision tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    /// The feature index the node splits on, or [`LEAF`].
    pub feature: u32,
    /// Values below the threshold go left.
    pub threshold: f64,
    /// The left child, relative to the tree's start.
    pub left: u32,
    /// The right child.
    pub right: u32,
    /// The child a missing value (NaN) goes to.
    pub missing: u32,
    /// The node's prediction.
    pub value: f64,
}

impl Node {
    /// A leaf predicting `value`.
    pub const fn leaf(value: f64) -> Node {
        Node {
            feature: LEAF,
            threshold: 0.0,
            left: 0,
            right: 0,
            missing: 0,
            value,
        }
    }

    /// A split on `feature` at `threshold`.
    pub const fn split(
        feature: u32,
        threshold: f64,
        left: u32,
        right: u32,
        missing: u32,
        value: f64,
    ) -> Node {
        Node {
            feature,
            threshold,
            left,
            right,
            missing,
            value,
        }
    }

    /// Whether the node is a leaf.
    pub const fn is_leaf(&self) -> bool {
        self.feature == LEAF
    }

    /// The child `x` goes to.
    #[inline]
    pub fn child(&self, x: &[f64]) -> u32 {
        let v = x[self.feature as usize];
        if v.is_nan() {
            self.missing
        } else if v < self.threshold {
            self.left
        } else {
            self.right
        }
    }
}

/// A fitted ensemble: `base + scale × Σ trees`. Boosted trees use `scale = 1`; a random forest
/// of `n` trees uses `scale = 1 / n`.
#[derive(Debug, Clone, Copy)]
pub struct Ensemble<'a> {
    /// What every prediction starts from.
    pub base: f64,
    /// The factor applied to the trees' sum.
    pub scale: f64,
    /// Every tree's nodes, each root first.
    pub nodes: &'a [Node],
    /// Where each tree starts in `nodes`.
    pub tree_starts: &'a [u32],
}

impl Ensemble<'_> {
    /// The number of trees.
    pub fn n_trees(&self) -> usize {
        self.tree_starts.len()
    }

    /// Walks the tree starting at `start` from its root to the leaf `x` reaches, calling
    /// `step(from, to)` for every edge taken; returns the leaf.
    ///
    /// Four steps per loop iteration: inside the sandbox every loop iteration also checks the
    /// call's CPU deadline (wasmtime's epoch check), which costs as much as a step
    /// (docs/benchmarks.md, "The fourth round").
    #[inline]
    fn walk<'n>(&'n self, start: u32, x: &[f64], mut step: impl FnMut(&Node, &Node)) -> &'n Node {
        let tree = &self.nodes[start as usize..];
        let mut node = &tree[0];
        loop {
            for _ in 0..4 {
                if node.is_leaf() {
                    return node;
                }
                let next = &tree[node.child(x) as usize];
                step(node, next);
                node = next;
            }
        }
    }

    /// The prediction for the feature vector `x`.
    ///
    /// # Panics
    /// If `x` is shorter than a feature index the trees use; check the row length first (see
    /// [`Ensemble::n_features`]).
    pub fn predict(&self, x: &[f64]) -> f64 {
        let sum: f64 = self
            .tree_starts
            .iter()
            .map(|&s| self.walk(s, x, |_, _| ()).value)
            .sum();
        self.base + self.scale * sum
    }

    /// The prediction for `x`, adding each feature's contribution into `contributions` (which
    /// must have one slot per feature): along each tree's path, the change of node value at a
    /// split is credited to that split's feature, so `prediction = base + scale × Σ roots +
    /// Σ contributions`.
    pub fn predict_with_contributions(&self, x: &[f64], contributions: &mut [f64]) -> f64 {
        let mut z = self.base;
        for &start in self.tree_starts {
            z += self.scale * self.nodes[start as usize].value;
            self.walk(start, x, |node, next| {
                let delta = self.scale * (next.value - node.value);
                contributions[node.feature as usize] += delta;
                z += delta;
            });
        }
        z
    }

    /// One more than the largest feature index any split uses: the shortest row [`predict`]
    /// accepts.
    ///
    /// [`predict`]: Ensemble::predict
    pub fn n_features(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !n.is_leaf())
            .map(|n| n.feature as usize + 1)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tree 1: x0 < 1 → (x1 < 5 → 1, else 2), else 3; missing x0 goes left.
    // Tree 2: a single leaf 10.
    static NODES: [Node; 6] = [
        Node::split(0, 1.0, 1, 2, 1, 2.0),
        Node::split(1, 5.0, 3, 4, 4, 1.5),
        Node::leaf(3.0),
        Node::leaf(1.0),
        Node::leaf(2.0),
        Node::leaf(10.0),
    ];
    static STARTS: [u32; 2] = [0, 5];

    fn ensemble(scale: f64) -> Ensemble<'static> {
        Ensemble {
            base: 0.25,
            scale,
            nodes: &NODES,
            tree_starts: &STARTS,
        }
    }

    #[test]
    fn follows_the_path_each_value_takes() {
        let e = ensemble(1.0);
        assert_eq!(e.predict(&[0.0, 4.0]), 0.25 + 1.0 + 10.0);
        assert_eq!(
            e.predict(&[0.0, 5.0]),
            0.25 + 2.0 + 10.0,
            "equal goes right"
        );
        assert_eq!(e.predict(&[1.0, 0.0]), 0.25 + 3.0 + 10.0);
        assert_eq!(e.predict(&[f64::NAN, 0.0]), 0.25 + 1.0 + 10.0);
        assert_eq!(e.predict(&[f64::NAN, f64::NAN]), 0.25 + 2.0 + 10.0);
    }

    #[test]
    fn a_forest_averages() {
        assert_eq!(ensemble(0.5).predict(&[0.0, 4.0]), 0.25 + 0.5 * 11.0);
    }

    #[test]
    fn contributions_add_up_to_the_prediction() {
        let e = ensemble(0.5);
        for x in [[0.0, 4.0], [0.0, 9.0], [2.0, 4.0], [f64::NAN, 1.0]] {
            let mut c = [0.0; 2];
            let z = e.predict_with_contributions(&x, &mut c);
            assert_eq!(z, e.predict(&x));
            let roots = 0.5 * (2.0 + 10.0);
            assert!(
                (0.25 + roots + c[0] + c[1] - z).abs() < 1e-12,
                "{x:?}: {c:?}"
            );
        }
        let mut c = [0.0; 2];
        e.predict_with_contributions(&[2.0, 4.0], &mut c);
        assert_eq!(c, [0.5 * (3.0 - 2.0), 0.0], "x1 was never looked at");
    }

    #[test]
    fn knows_the_row_length_it_needs() {
        assert_eq!(ensemble(1.0).n_features(), 2);
        assert_eq!(ensemble(1.0).n_trees(), 2);
    }
}
