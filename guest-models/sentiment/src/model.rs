//! The model's arithmetic and its interface, in plain Rust with no dependencies.
//!
//! The component calls it with the weights and lexicon compiled in ([`Scorer::builtin`]); the
//! trainer calls it with fitted weights, so that the evaluation, the manifest's examples and the
//! component compute exactly the same thing.

use crate::features::{self, N_BUCKETS};
use crate::lexicon::Lexicon;
use crate::vader;
use crate::weights;

/// The model's name, as used in URLs (`/v2/models/sentiment`).
pub const NAME: &str = "sentiment";
/// The model's version.
pub const VERSION: &str = "1.0.1";
/// Only the first this many characters (Unicode scalar values) of a text are read.
pub const MAX_CHARS: usize = 20_000;
/// Dense features after the hash buckets: the VADER compound score (times the blend weight).
pub const N_DENSE: usize = 1;
/// The length of the weight vector: buckets, dense features, bias.
pub const N_WEIGHTS: usize = N_BUCKETS + N_DENSE + 1;
/// Index of the VADER compound feature.
pub const COMPOUND_INDEX: usize = N_BUCKETS;
/// Index of the bias (its feature is always 1).
pub const BIAS_INDEX: usize = N_BUCKETS + N_DENSE;

/// One input or output of the model, independent of any binding's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    /// The tensor's name.
    pub name: &'static str,
    /// The Open Inference Protocol datatype.
    pub datatype: &'static str,
    /// The shape; `-1` is the batch dimension.
    pub shape: Vec<i64>,
    /// Meaning.
    pub description: &'static str,
}

/// The inputs the model accepts.
pub fn input_specs() -> Vec<IoSpec> {
    vec![IoSpec {
        name: "text",
        datatype: "BYTES",
        shape: vec![-1],
        description: "One text per element, UTF-8 (an element that is not valid UTF-8 is refused \
             with an error naming it). Any length: only the first 20000 characters are read. An \
             empty text, or one with no letter, digit, emoticon or emoji, is answered neutral.",
    }]
}

/// The outputs the model returns.
pub fn output_specs() -> Vec<IoSpec> {
    vec![
        IoSpec {
            name: "label",
            datatype: "BYTES",
            shape: vec![-1],
            description: "\"positive\" or \"negative\"; \"neutral\" only for a text with no \
                 evidence at all (empty, or no letter, digit, emoticon or emoji).",
        },
        IoSpec {
            name: "score",
            datatype: "FP64",
            shape: vec![-1],
            description: "Sentiment in [-1, 1]: 2p - 1, p the calibrated probability that the \
                 text is positive; 0 for neutral. Positive label iff score >= 0.",
        },
        IoSpec {
            name: "confidence",
            datatype: "FP64",
            shape: vec![-1],
            description: "In [0, 1]: the calibrated probability that the label is right, \
                 max(p, 1 - p) (0.5 to 1); 0 for neutral.",
        },
    ]
}

/// Which scorer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// VADER's lexicon and rules alone; the margin is the compound score.
    Lexicon,
    /// The linear model on hashed word and character n-grams.
    Trained,
    /// The linear model with the VADER compound score as one more feature.
    Blend,
}

impl Method {
    /// The method's name, as in `weights::METHOD` and on the trainer's command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Lexicon => "lexicon",
            Method::Trained => "trained",
            Method::Blend => "blend",
        }
    }

    /// The method of a name.
    pub fn from_name(name: &str) -> Option<Method> {
        [Method::Lexicon, Method::Trained, Method::Blend]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// The model description.
pub fn description(method: Method, trained_on: &str) -> String {
    let how = match method {
        Method::Lexicon => "VADER's lexicon and rules (vaderSentiment 3.3.2, ported to Rust)",
        Method::Trained => {
            "a linear SVM on hashed word uni- and bigrams, character 2- to 5-grams and negation-scoped \
             words"
        }
        Method::Blend => {
            "a linear SVM on hashed word uni- and bigrams, character 2- to 5-grams, negation-scoped \
             words and the VADER lexicon-and-rules score (vaderSentiment 3.3.2, ported to Rust)"
        }
    };
    format!(
        "Sentiment of English review-style texts: positive or negative with a score in [-1, 1] and \
         a confidence, by {how}, with a local tokenizer and a Platt-calibrated probability; trained \
         on {trained_on}. Empty or evidence-free texts are neutral."
    )
}

/// The description of the built-in model.
pub fn builtin_description() -> String {
    description(builtin_method(), weights::TRAINED_ON)
}

fn builtin_method() -> Method {
    Method::from_name(weights::METHOD).unwrap_or(Method::Blend)
}

/// The first [`MAX_CHARS`] characters of a text.
pub fn truncate(text: &str) -> &str {
    match text.char_indices().nth(MAX_CHARS) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// A linear model's weights: `f32` values, or their little-endian bytes as compiled in.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    /// Values.
    Floats(&'a [f32]),
    /// Little-endian `f32` bytes.
    Bytes(&'a [u8]),
}

impl Weights<'_> {
    /// The `i`-th weight.
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Weights::Floats(w) => f64::from(w[i]),
            Weights::Bytes(b) => {
                let s = &b[4 * i..4 * i + 4];
                f64::from(f32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            }
        }
    }
}

/// One text's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// `"positive"`, `"negative"` or `"neutral"`.
    pub label: &'static str,
    /// In [-1, 1].
    pub score: f64,
    /// In [0, 1].
    pub confidence: f64,
}

/// What a scorer reads of a text: the hashed features and the VADER score.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Hashed features, see [`features::hashed`].
    pub hashed: Vec<(u32, f32)>,
    /// VADER's compound score.
    pub compound: f64,
    /// Whether the text carries any evidence (a letter or digit, or a lexicon hit).
    pub evidence: bool,
}

/// Reads a text (its first [`MAX_CHARS`] characters) with a lexicon.
pub fn analyse(text: &str, lexicon: &Lexicon<'_>) -> Analysis {
    let text = truncate(text);
    let v = vader::score(text, lexicon);
    Analysis {
        hashed: features::hashed(text),
        compound: v.compound,
        evidence: v.hits > 0 || text.chars().any(char::is_alphanumeric),
    }
}

/// A fitted scorer.
#[derive(Debug, Clone, Copy)]
pub struct Scorer<'a> {
    /// Which scorer decides.
    pub method: Method,
    /// The lexicon.
    pub lexicon: Lexicon<'a>,
    /// The linear model's [`N_WEIGHTS`] weights (unused by [`Method::Lexicon`]).
    pub weights: Weights<'a>,
    /// The value of the compound feature is `blend_weight * compound` ([`Method::Blend`]).
    pub blend_weight: f64,
    /// Platt scaling: p = 1 / (1 + exp(-(a * margin + b))).
    pub platt: [f64; 2],
}

/// The linear margin of hashed features and a compound feature value.
pub fn linear_margin(weights: &Weights<'_>, hashed: &[(u32, f32)], compound_feature: f64) -> f64 {
    let mut m = weights.get(BIAS_INDEX) + weights.get(COMPOUND_INDEX) * compound_feature;
    for &(b, v) in hashed {
        m += weights.get(b as usize) * f64::from(v);
    }
    m
}

impl Scorer<'_> {
    /// The compiled-in model.
    pub fn builtin() -> Scorer<'static> {
        Scorer {
            method: builtin_method(),
            lexicon: Lexicon::builtin(),
            weights: Weights::Bytes(weights::WEIGHTS),
            blend_weight: weights::BLEND_WEIGHT,
            platt: weights::PLATT,
        }
    }

    /// The uncalibrated margin of an analysed text (> 0 leans positive).
    pub fn margin(&self, a: &Analysis) -> f64 {
        match self.method {
            Method::Lexicon => a.compound,
            Method::Trained => linear_margin(&self.weights, &a.hashed, 0.0),
            Method::Blend => {
                linear_margin(&self.weights, &a.hashed, self.blend_weight * a.compound)
            }
        }
    }

    /// The answer for an analysed text.
    pub fn decide(&self, a: &Analysis) -> Prediction {
        if !a.evidence {
            return Prediction {
                label: "neutral",
                score: 0.0,
                confidence: 0.0,
            };
        }
        let z = self.platt[0] * self.margin(a) + self.platt[1];
        let p = 1.0 / (1.0 + (-z).exp());
        let score = (2.0 * p - 1.0).clamp(-1.0, 1.0);
        let (label, confidence) = if score >= 0.0 {
            ("positive", p)
        } else {
            ("negative", 1.0 - p)
        };
        Prediction {
            label,
            score,
            confidence,
        }
    }

    /// The answer for a text.
    pub fn predict(&self, text: &str) -> Prediction {
        self.decide(&analyse(text, &self.lexicon))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_punctuation_only_texts_are_neutral() {
        let s = Scorer::builtin();
        for text in ["", "   ", "...!!", "\n\t"] {
            let p = s.predict(text);
            assert_eq!(
                (p.label, p.score, p.confidence),
                ("neutral", 0.0, 0.0),
                "{text:?}"
            );
        }
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        let text = "\u{E9}".repeat(MAX_CHARS + 10);
        assert_eq!(truncate(&text).chars().count(), MAX_CHARS);
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn answers_stay_in_range_for_odd_texts() {
        let s = Scorer::builtin();
        let megabyte = "This is great but the battery died. \u{1F600} ".repeat(25_000);
        assert!(megabyte.len() > 1_000_000);
        for (text, neutral) in [
            ("\u{1F600}", false),
            ("\u{1F621}\u{1F621}", true),
            ("\u{0}\u{7f}\u{FFFD}", true),
            ("日本語のテキスト", false),
            ("ALL CAPS!!!", false),
            (megabyte.as_str(), false),
        ] {
            let p = s.predict(text);
            assert!((-1.0..=1.0).contains(&p.score), "{text:.20}: {p:?}");
            assert!((0.0..=1.0).contains(&p.confidence), "{text:.20}: {p:?}");
            assert_eq!(p.label == "neutral", neutral, "{text:.20}");
        }
        // Only the first MAX_CHARS characters count: what follows them changes nothing.
        let head = "Great value. ".repeat(MAX_CHARS / 13 + 1);
        let tail = "Awful, broken, terrible. ".repeat(1000);
        assert_eq!(s.predict(&(head.clone() + &tail)), s.predict(&head));
    }

    #[test]
    fn known_sentences_get_the_expected_label() {
        let s = Scorer::builtin();
        assert_eq!(
            s.predict("Great phone, I love it. Excellent value.").label,
            "positive"
        );
        assert_eq!(
            s.predict("Terrible food and the service was awful.").label,
            "negative"
        );
        assert_eq!(s.predict("\u{1F600}").label, "positive");
        assert_eq!(s.predict("\u{1F620}").label, "negative");
    }
}
