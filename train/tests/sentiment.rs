//! The sentiment trainer and evaluation on small synthetic data, and the checked-in model.

use std::fs;
use std::path::{Path, PathBuf};

use trademl_train::sentiment::data::{Columns, LexiconFiles, load, parse_label};
use trademl_train::sentiment::fit::{fit_platt, scores};
use trademl_train::sentiment::{DataArgs, EvalArgs, TrainArgs, evaluate, train};

const POSITIVE: [&str; 6] = [
    "great phone",
    "love the food",
    "excellent value",
    "nice and friendly staff",
    "great service",
    "wonderful taste",
];
const NEGATIVE: [&str; 6] = [
    "awful battery",
    "hate the wait",
    "terrible value",
    "rude and slow staff",
    "broken on arrival",
    "bad taste",
];

/// Writes a CSV of 24 labelled texts with the given header (text column, label column).
fn write_csv(path: &Path, header: [&str; 2], suffix: &str) {
    let mut s = format!("{},{}\n", header[0], header[1]);
    for round in 0..2 {
        for (p, n) in POSITIVE.iter().zip(NEGATIVE) {
            s.push_str(&format!(
                "\"{p} {suffix}{round}\",positive\n\"{n} {suffix}{round}\",0\n"
            ));
        }
    }
    fs::write(path, s).unwrap();
}

/// A tiny lexicon in VADER's format, and an emoji lexicon.
fn write_lexicon(dir: &Path) -> (PathBuf, PathBuf) {
    let words = dir.join("lexicon.txt");
    fs::write(
        &words,
        "great\t3.1\t0.1\t[]\nlove\t3.2\t0.1\t[]\nawful\t-2.0\t0.1\t[]\nhate\t-2.7\t0.1\t[]\n\
         good\t1.0\t0.1\t[]\ngood\t1.9\t0.1\t[]\nangry\t-2.3\t0.1\t[]\n",
    )
    .unwrap();
    let emoji = dir.join("emoji.txt");
    fs::write(
        &emoji,
        "\u{1F620}\tangry face\n\u{1F600}\tgrinning face\nab\tnot one character\n",
    )
    .unwrap();
    (words, emoji)
}

fn data_args(files: Vec<PathBuf>, text: &str, label: &str, lex: (PathBuf, PathBuf)) -> DataArgs {
    DataArgs {
        data: files,
        text_column: text.to_string(),
        label_column: label.to_string(),
        lexicon: lex.0,
        emoji_lexicon: lex.1,
        seed: 7,
        c_grid: vec![1.0],
        blend_grid: vec![1.0],
        inner_folds: 2,
    }
}

#[test]
fn trains_on_configurable_columns_and_writes_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("reviews.csv");
    write_csv(&csv, ["review", "sentiment"], "x");
    let lex = write_lexicon(dir.path());
    let out = dir.path().join("guest");
    let args = TrainArgs {
        data: data_args(vec![csv], "review", "sentiment", lex),
        method: Some("blend".to_string()),
        out_dir: out.clone(),
        report_dir: dir.path().join("docs"),
    };
    train(&args).unwrap();
    let weights = fs::read(out.join("src/weights.bin")).unwrap();
    assert_eq!(weights.len(), 4 * trademl_model_sentiment::model::N_WEIGHTS);
    let lexicon = fs::read_to_string(out.join("src/lexicon_data.rs")).unwrap();
    // "good" is listed twice: the last valence wins; the emoji gets its description's valence.
    assert!(lexicon.contains("(\"good\", 1.9)"), "{lexicon}");
    assert!(lexicon.contains("(\"\u{1F620}\", -2.3)"), "{lexicon}");
    // Six words, one emoji ("grinning face" carries no valence in this lexicon).
    assert!(lexicon.contains("ENTRIES: [(&str, f32); 7]"), "{lexicon}");
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["name"], "sentiment");
    assert_eq!(
        manifest["provenance"]["parameters"]["columns"]["text"],
        "review"
    );
    // The first example holds a positive and a negative training text: both answered right.
    let labels = &manifest["examples"][0]["outputs"][0]["data"];
    assert_eq!(labels, &serde_json::json!(["positive", "negative"]));
    // The second holds the edge cases: the empty text is neutral.
    assert_eq!(manifest["examples"][1]["outputs"][0]["data"][0], "neutral");
}

#[test]
fn a_wrong_column_name_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("reviews.csv");
    write_csv(&csv, ["review", "sentiment"], "x");
    let columns = Columns {
        text: "text".to_string(),
        label: "sentiment".to_string(),
    };
    let err = load(&csv, &columns).unwrap_err().to_string();
    assert!(err.contains("no column \"text\""), "{err}");
    assert!(
        err.contains("--text-column") && err.contains("review, sentiment"),
        "{err}"
    );
    let columns = Columns {
        text: "review".to_string(),
        label: "stars".to_string(),
    };
    let err = load(&csv, &columns).unwrap_err().to_string();
    assert!(
        err.contains("\"stars\"") && err.contains("--label-column"),
        "{err}"
    );
}

#[test]
fn a_bad_label_names_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    fs::write(&csv, "text,label\ngood,1\nbad,maybe\n").unwrap();
    let columns = Columns {
        text: "text".into(),
        label: "label".into(),
    };
    let err = load(&csv, &columns).unwrap_err().to_string();
    assert!(err.contains("row 2") && err.contains("\"maybe\""), "{err}");
    assert_eq!(parse_label(" Positive "), Some(true));
    assert_eq!(parse_label("0"), Some(false));
}

#[test]
fn evaluation_runs_both_protocols_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("shop.csv"), dir.path().join("diner.csv"));
    write_csv(&a, ["text", "label"], "s");
    write_csv(&b, ["text", "label"], "d");
    let lex = write_lexicon(dir.path());
    let args = EvalArgs {
        data: data_args(vec![a, b], "text", "label", lex),
        folds: 3,
        report_dir: dir.path().join("docs"),
    };
    evaluate(&args).unwrap();
    let md = fs::read_to_string(dir.path().join("docs/sentiment.md")).unwrap();
    assert!(md.contains("trained on shop, tested on diner"), "{md}");
    assert!(md.contains("trained on diner, tested on shop"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("docs/sentiment.json")).unwrap())
            .unwrap();
    let protocols = json["protocols"].as_array().unwrap();
    assert_eq!(protocols.len(), 3);
    // The in-domain protocol predicts every text once.
    assert_eq!(protocols[0]["methods"][0]["scores"]["n"], 48);
    assert_eq!(protocols[0]["methods"][0]["scores"]["accuracy"], 0.5);
    // Separable data with a vocabulary shared across files: the SVM learns it.
    let blend = &protocols[0]["methods"][3];
    assert_eq!(blend["method"], "blend");
    assert!(
        blend["scores"]["accuracy"].as_f64().unwrap() > 0.9,
        "{blend}"
    );
}

#[test]
fn scores_and_platt_scaling() {
    let s = scores(&[true, true, false, false], &[true, false, false, false]);
    assert_eq!(s.accuracy, 0.75);
    // F1 positive = 2/3, negative = 0.8.
    assert!((s.macro_f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
    let margins = [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0];
    let labels = [false, false, true, false, true, true];
    let [a, b] = fit_platt(&margins, &labels);
    assert!(a > 0.0 && b.abs() < 1e-6, "{a} {b}");
}

#[test]
fn lexicon_files_keep_emoji_with_a_valence_of_one_character() {
    let dir = tempfile::tempdir().unwrap();
    let (w, e) = write_lexicon(dir.path());
    let lex = LexiconFiles::load(&w, &e).unwrap();
    // "grinning face" has no valence here and "ab" is not one character: one emoji.
    assert_eq!((lex.words, lex.emoji), (6, 1));
}

/// The checked-in manifest is a valid trademl manifest whose examples are what the compiled-in
/// model computes.
#[test]
fn checked_in_manifest_matches_the_compiled_model() {
    use trademl_model_sentiment::model::{self, Scorer};
    use trademl_sdk::manifest::Manifest;
    use trademl_sdk::protocol::TensorData;

    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-models/sentiment/manifest.json");
    let manifest = Manifest::from_json(&fs::read(&path).unwrap()).unwrap();
    manifest.validate().unwrap();
    assert_eq!(manifest.name, model::NAME);
    assert_eq!(manifest.version, model::VERSION);
    assert_eq!(manifest.description, model::builtin_description());
    assert!(!manifest.examples.is_empty());
    let scorer = Scorer::builtin();
    for example in &manifest.examples {
        let TensorData::Bytes(texts) = &example.inputs[0].data else {
            panic!("text is not BYTES")
        };
        let TensorData::Fp64(want) = &example.outputs[1].data else {
            panic!("score is not FP64")
        };
        for (text, want) in texts.iter().zip(want) {
            let got = scorer.predict(std::str::from_utf8(text).unwrap()).score;
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }
}
