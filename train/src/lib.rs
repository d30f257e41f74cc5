//! # trademl-train
//!
//! Native trainers and evaluations of trademl's first-party models, used by the `trademl` CLI
//! (`trademl train …`, `trademl eval …`). Each trainer reads real data, fits the model with the
//! model crate's own arithmetic, and writes the weights that are compiled into the component,
//! the manifest that is signed with it, and an evaluation report under `docs/models/`.
//!
//! - [`segmentation`]: customer segmentation by k-means (linfa) on recency, frequency, monetary
//!   value and tenure.
//! - [`churn`]: churn probability from recency, repeat purchase days, spend and tenure (gradient-boosted
//!   trees with the BG/NBD probability of being active), BG/NBD expected purchases, and the drivers.
//! - [`recommender`]: product and promotion recommendations, a logistic-regression repurchase
//!   score on each customer's recent baskets (Instacart order lines).
//! - [`anomaly`]: anomaly detection on sensor readings, window modified z-scores (median / MAD)
//!   per variable with no label used in fitting, beside a rolling z-score and an isolation forest.
//! - [`price`]: price optimization, per-store joint price recommendations within business bounds
//!   from own- and cross-price elasticities with promotion and store effects (Dominick's orange juice).
//! - [`demand`]: weekly demand forecast of a store's brand for the next four weeks at the planned
//!   prices and promotions (gradient-boosted trees on log units), with an 80% interval.
//! - [`promo`]: promotion effectiveness (units, lift, incremental profit, ROI of a deal or feature
//!   ad), gradient-boosted trees on ln(lift) beside a random forest + neural network blend.
//! - [`scanner`]: reading a weekly store × product scanner panel (Dominick's orange juice by default).
//! - [`trees`]: fitted tree ensembles converted to the tables components evaluate.
//! - [`sentiment`]: sentiment of texts, VADER's lexicon and rules (ported) blended into a linear
//!   SVM on hashed word and character n-grams (Amazon and Yelp review sentences).

pub mod anomaly;
pub mod churn;
pub mod demand;
pub mod demand_lstm;
mod files;
pub mod price;
pub mod promo;
pub mod recommender;
pub mod scanner;
pub mod segmentation;
pub mod sentiment;
pub mod trees;
