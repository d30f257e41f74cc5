//! The recommender trainer on small synthetic order-lines files.

use std::fmt::Write as _;
use std::path::Path;

use trademl_model_recommender::model::{History, Recommender, TOP_K};
use trademl_train::recommender::data::{self, Columns};
use trademl_train::recommender::fit::{self, Split, Stats, score_list};
use trademl_train::recommender::{DataArgs, TrainArgs, train};

/// 40 customers with 8 orders each. Customer u always buys its "staple" 1000 + u, buys its
/// "habit" 2000 + u in the odd orders and, in the last three orders, a "new favourite"
/// 3000 + u; every order also has two of the shared products 1..=6 (bought by everyone) and
/// a one-off product never seen again. Header names are `header`.
fn write_csv(path: &Path, header: [&str; 5]) {
    let mut text = header.join(",") + "\n";
    let mut one_off = 100_000;
    for u in 0..40_i64 {
        for n in 1..=8_i64 {
            let mut products = vec![1000 + u, 1 + (u + n) % 6, 1 + (u + n + 3) % 6];
            if n % 2 == 1 {
                products.push(2000 + u);
            }
            if n >= 6 {
                products.push(3000 + u);
            }
            products.push(one_off);
            one_off += 1;
            for (cart, p) in products.iter().enumerate() {
                // Columns: order id, user, order number, product, cart position.
                writeln!(text, "{},u{u},{n},{p},{}", u * 100 + n, cart + 1).unwrap();
            }
        }
    }
    std::fs::write(path, text).unwrap();
}

const HEADER: [&str; 5] = ["oid", "customer", "seq", "item", "cart"];

fn data_args(path: &Path) -> DataArgs {
    DataArgs {
        data: path.to_path_buf(),
        user_column: "customer".into(),
        order_number_column: "seq".into(),
        product_column: "item".into(),
        cart_position_column: "cart".into(),
        decays: vec![0.6, 0.9],
        l2: 1.0,
        popular: 12,
    }
}

#[test]
fn trains_beats_the_baselines_and_writes_weights_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("lines.csv");
    write_csv(&csv, HEADER);
    let args = data_args(&csv);
    let table = args.load().unwrap();
    assert_eq!((table.users.len(), table.orders()), (40, 320));
    // Orders are sequenced and lines kept in cart order.
    assert_eq!(table.users[0].orders[0][0], 1000);

    let (params, evaluation) =
        fit::evaluate(&table.users, &args.decays, args.l2, args.popular).unwrap();
    assert!(args.decays.contains(&params.decay));
    assert_eq!(evaluation.test_users, 40);
    // The staple and the new favourite are in every last order: the model finds both.
    assert!(evaluation.model.hit_rate > 0.99, "{evaluation:?}");
    assert!(
        evaluation.model.recall > evaluation.popularity.recall,
        "{evaluation:?}"
    );
    assert!(
        evaluation.model.ndcg >= evaluation.buy_again.ndcg,
        "{evaluation:?}"
    );

    let train_args = TrainArgs {
        data: args.clone(),
        out_weights: dir.path().join("weights.rs"),
        out_manifest: dir.path().join("manifest.json"),
        report_dir: dir.path().join("docs"),
    };
    train(&train_args).unwrap();
    let weights = std::fs::read_to_string(&train_args.out_weights).unwrap();
    assert!(
        weights.contains("pub const N_PRODUCTS: usize = "),
        "{weights}"
    );
    assert!(weights.contains("pub const COEF: [f64; 14]"));
    let manifest = trademl_sdk::manifest::Manifest::from_json(
        &std::fs::read(&train_args.out_manifest).unwrap(),
    )
    .unwrap();
    manifest.validate().unwrap();
    assert_eq!(manifest.name, "recommender");
    assert_eq!(manifest.examples.len(), 3);
}

#[test]
fn the_last_orders_are_never_in_the_statistics_of_the_test_split() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("lines.csv");
    write_csv(&csv, HEADER);
    let table = data_args(&csv).load().unwrap();
    let test = Split::new(&table.users, 1, 12);
    let inner = Split::new(&table.users, 2, 12);
    let last_one_offs: Vec<i64> = table
        .users
        .iter()
        .map(|u| *u.orders[7].last().unwrap())
        .collect();
    for p in &last_one_offs {
        assert!(test.stats.ids.binary_search(p).is_err(), "{p}");
        assert!(inner.stats.ids.binary_search(p).is_err(), "{p}");
    }
    let second_last = *table.users[0].orders[6].last().unwrap();
    assert!(inner.stats.ids.binary_search(&second_last).is_err());
    assert!(test.stats.ids.binary_search(&second_last).is_ok());
    assert_eq!(test.cases[0].target, table.users[0].orders[7]);
    assert_eq!(test.cases[0].history.orders.len(), 7);
    assert_eq!(test.cases[0].history.orders[0], table.users[0].orders[6]);
    // All orders: every product.
    let all = Stats::compute(&table.users, |u| u.orders.len(), 12);
    assert!(all.ids.binary_search(&last_one_offs[0]).is_ok());
    assert_eq!(all.n_orders, 320);
}

#[test]
fn metrics_of_known_lists() {
    let (hit, recall, ndcg) = score_list(&[9, 1, 8, 2], &[1, 2, 3, 4]);
    assert_eq!((hit, recall), (1.0, 0.5));
    let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
    let ideal = 1.0 + 1.0 / 3f64.log2() + 0.5 + 1.0 / 5f64.log2();
    assert!((ndcg - dcg / ideal).abs() < 1e-12);
    assert_eq!(score_list(&[5, 6], &[1]), (0.0, 0.0, 0.0));
    assert_eq!(score_list(&[1], &[1]), (1.0, 1.0, 1.0));
    // Only the first 10 count.
    let list: Vec<i64> = (0..20).collect();
    assert_eq!(score_list(&list, &[15]).0, 0.0);
}

#[test]
fn buy_again_ranks_by_frequency_then_recency() {
    // Most recent first: 7 twice, 8 twice (less recently), 9 once.
    let history = History {
        orders: vec![vec![7, 9], vec![8, 7], vec![8]],
    };
    let list = fit::buy_again(&history, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert_eq!(&list[..5], &[7, 8, 9, 1, 2]);
    assert_eq!(list.len(), TOP_K);
}

#[test]
fn the_logistic_regression_recovers_the_direction_of_a_signal() {
    // y = 1 exactly when the third feature exceeds 0.5, with label noise on a few rows.
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..400 {
        let mut row = [0.0; 14];
        row[2] = (i % 20) as f64 / 20.0;
        row[5] = (i % 7) as f64;
        x.push(row);
        let label = row[2] > 0.5;
        y.push(if label != (i % 37 == 0) { 1.0 } else { 0.0 });
    }
    let (intercept, coef) = fit::fit_logistic(&x, &y, 1.0).unwrap();
    assert!(coef[2] > 5.0, "{coef:?}");
    assert!(coef[5].abs() < 0.5, "{coef:?}");
    // Constant features get no weight.
    assert_eq!(coef[0], 0.0);
    let logit = |v: f64| intercept + coef[2] * v + coef[5] * 3.0;
    assert!(logit(0.9) > 0.0 && logit(0.1) < 0.0);
}

#[test]
fn column_names_are_configurable_and_a_wrong_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("lines.csv");
    write_csv(
        &csv,
        [
            "order_id",
            "user_id",
            "order_number",
            "product_id",
            "add_to_cart_order",
        ],
    );
    let columns = Columns {
        user: "user_id".into(),
        order_number: "order_number".into(),
        product: "product_id".into(),
        cart_position: "add_to_cart_order".into(),
    };
    assert_eq!(data::load(&csv, &columns).unwrap().users.len(), 40);
    let mut args = data_args(&csv);
    args.user_column = "user_id".into();
    let err = format!("{:#}", args.load().unwrap_err());
    assert!(
        err.contains("no column \"seq\" (the order number column)"),
        "{err}"
    );
    assert!(err.contains("add_to_cart_order"), "{err}");
}

#[test]
fn a_bad_value_names_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("lines.csv");
    std::fs::write(&csv, "oid,customer,seq,item,cart\n1,a,1,5,1\n1,a,1,x7,2\n").unwrap();
    let err = format!("{:#}", data_args(&csv).load().unwrap_err());
    assert!(
        err.contains("line 3: column \"item\" = \"x7\" is not a number"),
        "{err}"
    );
}

/// The checked-in manifest is a valid trademl manifest, describes the compiled-in weights, and
/// its examples are what the compiled-in model computes (weights.rs and manifest.json agree).
#[test]
fn checked_in_manifest_matches_the_compiled_weights() {
    use trademl_model_recommender::model;
    use trademl_sdk::manifest::Manifest;
    use trademl_sdk::protocol::TensorData;

    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-models/recommender/manifest.json");
    let manifest = Manifest::from_json(&std::fs::read(&path).unwrap()).unwrap();
    manifest.validate().unwrap();
    assert_eq!(manifest.name, model::NAME);
    assert_eq!(manifest.version, model::VERSION);
    assert_eq!(manifest.description, model::builtin_description());
    let recommender = Recommender::builtin();
    assert!(!manifest.examples.is_empty());
    for example in &manifest.examples {
        let ints = |tensors: &[trademl_sdk::protocol::Tensor], name: &str| match &tensors
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .data
        {
            TensorData::Int64(v) => v.clone(),
            other => panic!("{name}: {other:?}"),
        };
        let history = History::from_columns(
            &ints(&example.inputs, "basket_product_ids"),
            &ints(&example.inputs, "basket_order_index"),
        )
        .unwrap();
        let top: Vec<i64> = recommender
            .recommend(&history, TOP_K)
            .iter()
            .map(|s| s.product)
            .collect();
        assert_eq!(top, ints(&example.outputs, "product_ids"));
        let ranked: Vec<i64> = recommender
            .rank_candidates(&history, &ints(&example.inputs, "candidate_product_ids"))
            .iter()
            .map(|s| s.product)
            .collect();
        assert_eq!(ranked, ints(&example.outputs, "candidate_ranking"));
    }
}
