//! # trademl-train
//!
//! Native trainers and evaluations of trademl's first-party models, used by the `trademl` CLI
//! (`trademl train …`, `trademl eval …`). Each trainer reads real data, fits the model with the
//! model crate's own arithmetic, and writes the weights that are compiled into the component,
//! the manifest that is signed with it, and an evaluation report under `docs/models/`.
//!
//! - [`segmentation`]: customer segmentation by k-means (linfa) on recency, frequency, monetary
//!   value and tenure.

pub mod segmentation;
