//! VADER 3.3.2's lexicon-and-rules scorer (Hutto & Gilbert, ICWSM 2014), ported to plain Rust.
//!
//! The rules are those of `vaderSentiment/vaderSentiment.py` 3.3.2 (MIT, C.J. Hutto): lexicon
//! valences, boosters and dampeners up to three words back, ALL-CAPS emphasis when only some words
//! are in capitals, negation up to three words back (`N_SCALAR = -0.74`), "no", "least", "never
//! so", "without doubt", the special-case idioms, the contrastive "but" (before x 0.5, after
//! x 1.5), and `!` / `?` emphasis; `compound = s / sqrt(s^2 + 15)`. On the 2,000 review sentences
//! of data/ the compound scores equal the Python's to 1e-4 (its 4-decimal rounding). Differences
//! from the Python: an emoji is one token whose valence was precomputed from its VADER description
//! (the Python splices the description's words into the text); the "but" rule scales by position
//! (the Python's `list.index` lookup can misplace equal valences); U+2018/U+2019 apostrophes count
//! as `'`.

use crate::lexicon::Lexicon;

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
/// The negation factor.
pub const N_SCALAR: f64 = -0.74;

const NEGATE: [&str; 59] = [
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// Whether a lowercased word negates (a NEGATE word or one containing "n't").
pub fn is_negation(word: &str) -> bool {
    NEGATE.contains(&word) || word.contains("n't")
}

fn booster(word: &str) -> Option<f64> {
    const INCR: [&str; 60] = [
        "absolutely",
        "amazingly",
        "awfully",
        "completely",
        "considerable",
        "considerably",
        "decidedly",
        "deeply",
        "effing",
        "enormous",
        "enormously",
        "entirely",
        "especially",
        "exceptional",
        "exceptionally",
        "extreme",
        "extremely",
        "fabulously",
        "flipping",
        "flippin",
        "frackin",
        "fracking",
        "fricking",
        "frickin",
        "frigging",
        "friggin",
        "fully",
        "fuckin",
        "fucking",
        "fuggin",
        "fugging",
        "greatly",
        "hella",
        "highly",
        "hugely",
        "incredible",
        "incredibly",
        "intensely",
        "major",
        "majorly",
        "more",
        "most",
        "particularly",
        "purely",
        "quite",
        "really",
        "remarkably",
        "so",
        "substantially",
        "thoroughly",
        "total",
        "totally",
        "tremendous",
        "tremendously",
        "uber",
        "unbelievably",
        "unusually",
        "utter",
        "utterly",
        "very",
    ];
    const DECR: [&str; 24] = [
        "almost",
        "barely",
        "hardly",
        "just enough",
        "kind of",
        "kinda",
        "kindof",
        "kind-of",
        "less",
        "little",
        "marginal",
        "marginally",
        "occasional",
        "occasionally",
        "partly",
        "scarce",
        "scarcely",
        "slight",
        "slightly",
        "somewhat",
        "sort of",
        "sorta",
        "sortof",
        "sort-of",
    ];
    if INCR.contains(&word) {
        Some(B_INCR)
    } else if DECR.contains(&word) {
        Some(B_DECR)
    } else {
        None
    }
}

fn special_case(phrase: &str) -> Option<f64> {
    const CASES: [(&str, f64); 9] = [
        ("the shit", 3.0),
        ("the bomb", 3.0),
        ("bad ass", 1.5),
        ("badass", 1.5),
        ("bus stop", 0.0),
        ("yeah right", -2.0),
        ("kiss of death", -1.5),
        ("to die for", 3.0),
        ("beating heart", 3.5),
    ];
    CASES.iter().find(|(p, _)| *p == phrase).map(|&(_, v)| v)
}

/// Python's `str.isupper()`: some cased character and no lowercase one.
fn is_upper(token: &str) -> bool {
    token.chars().any(char::is_uppercase) && !token.chars().any(char::is_lowercase)
}

/// Whether a character is looked up as an emoji (a lexicon entry of its own).
fn is_emoji(c: char) -> bool {
    !c.is_ascii() && !c.is_alphanumeric() && !c.is_whitespace()
}

/// The text's VADER tokens: whitespace-separated, ASCII punctuation stripped from both ends unless
/// that leaves two characters or fewer (so emoticons such as `:)` survive); every emoji in the
/// lexicon is a token of its own. Returns `(original, lowercased)` pairs.
pub fn tokens(text: &str, lexicon: &Lexicon<'_>) -> Vec<(String, String)> {
    let mut spaced = String::with_capacity(text.len() + 8);
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let c = match c {
            '\u{2018}' | '\u{2019}' => '\'',
            c => c,
        };
        if is_emoji(c) && lexicon.valence(c.encode_utf8(&mut buf)).is_some() {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    spaced
        .split_whitespace()
        .map(|t| {
            let stripped = t.trim_matches(|c: char| c.is_ascii_punctuation());
            let kept = if stripped.chars().count() <= 2 {
                t
            } else {
                stripped
            };
            (kept.to_string(), kept.to_lowercase())
        })
        .collect()
}

/// A text's VADER score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VaderScore {
    /// The compound score in [-1, 1].
    pub compound: f64,
    /// The sum of the tokens' valences after the rules, before punctuation emphasis.
    pub sum: f64,
    /// How many tokens carried a non-zero valence.
    pub hits: usize,
}

/// Scores a text with a lexicon (the caller caps the text's length).
pub fn score(text: &str, lexicon: &Lexicon<'_>) -> VaderScore {
    let toks = tokens(text, lexicon);
    let lower: Vec<&str> = toks.iter().map(|(_, l)| l.as_str()).collect();
    let n = toks.len();
    let caps = toks.iter().filter(|(t, _)| is_upper(t)).count();
    let cap_diff = caps > 0 && caps < n;
    let in_lex = |w: &str| lexicon.valence(w).is_some();
    let mut sentiments = Vec::with_capacity(n);
    for i in 0..n {
        let lw = lower[i];
        if booster(lw).is_some() || (i + 1 < n && lw == "kind" && lower[i + 1] == "of") {
            sentiments.push(0.0);
            continue;
        }
        let Some(v0) = lexicon.valence(lw) else {
            sentiments.push(0.0);
            continue;
        };
        let v0 = f64::from(v0);
        let mut v = v0;
        if lw == "no" && i + 1 < n && in_lex(lower[i + 1]) {
            v = 0.0;
        }
        if (i > 0 && lower[i - 1] == "no")
            || (i > 1 && lower[i - 2] == "no")
            || (i > 2 && lower[i - 3] == "no" && matches!(lower[i - 1], "or" | "nor"))
        {
            v = v0 * N_SCALAR;
        }
        if is_upper(&toks[i].0) && cap_diff {
            v += if v > 0.0 { C_INCR } else { -C_INCR };
        }
        for start in 0..3 {
            if i > start && !in_lex(lower[i - start - 1]) {
                let prev = i - start - 1;
                let mut s = scalar_inc_dec(&toks[prev].0, lower[prev], v, cap_diff);
                if start == 1 {
                    s *= 0.95;
                } else if start == 2 {
                    s *= 0.9;
                }
                v += s;
                v = negation_check(v, &lower, start, i);
                if start == 2 {
                    v = special_idioms(v, &lower, i);
                }
            }
        }
        v = least_check(v, &lower, i, &in_lex);
        sentiments.push(v);
    }
    if let Some(bi) = lower.iter().position(|&w| w == "but") {
        for (i, s) in sentiments.iter_mut().enumerate() {
            if i < bi {
                *s *= 0.5;
            } else if i > bi {
                *s *= 1.5;
            }
        }
    }
    let hits = sentiments.iter().filter(|&&s| s != 0.0).count();
    if sentiments.is_empty() {
        return VaderScore {
            compound: 0.0,
            sum: 0.0,
            hits,
        };
    }
    let raw: f64 = sentiments.iter().sum();
    let mut sum = raw;
    let ep = text.chars().filter(|&c| c == '!').take(5).count().min(4) as f64 * 0.292;
    let qm_count = text.chars().filter(|&c| c == '?').take(5).count();
    let qm = match qm_count {
        0 | 1 => 0.0,
        2 | 3 => qm_count as f64 * 0.18,
        _ => 0.96,
    };
    if sum > 0.0 {
        sum += ep + qm;
    } else if sum < 0.0 {
        sum -= ep + qm;
    }
    VaderScore {
        compound: (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0),
        sum: raw,
        hits,
    }
}

fn scalar_inc_dec(word: &str, lower: &str, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = booster(lower) else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar = -scalar;
    }
    if is_upper(word) && cap_diff {
        scalar += if valence > 0.0 { C_INCR } else { -C_INCR };
    }
    scalar
}

fn negation_check(v: f64, l: &[&str], start: usize, i: usize) -> f64 {
    let so_this = |w: &str| w == "so" || w == "this";
    match start {
        0 => {
            if is_negation(l[i - 1]) {
                return v * N_SCALAR;
            }
        }
        1 => {
            if l[i - 2] == "never" && so_this(l[i - 1]) {
                return v * 1.25;
            } else if l[i - 2] == "without" && l[i - 1] == "doubt" {
                return v;
            } else if is_negation(l[i - 2]) {
                return v * N_SCALAR;
            }
        }
        _ => {
            if (l[i - 3] == "never" && so_this(l[i - 2])) || so_this(l[i - 1]) {
                return v * 1.25;
            } else if l[i - 3] == "without" && (l[i - 2] == "doubt" || l[i - 1] == "doubt") {
                return v;
            } else if is_negation(l[i - 3]) {
                return v * N_SCALAR;
            }
        }
    }
    v
}

fn special_idioms(mut v: f64, l: &[&str], i: usize) -> f64 {
    let onezero = format!("{} {}", l[i - 1], l[i]);
    let twoonezero = format!("{} {} {}", l[i - 2], l[i - 1], l[i]);
    let twoone = format!("{} {}", l[i - 2], l[i - 1]);
    let threetwoone = format!("{} {} {}", l[i - 3], l[i - 2], l[i - 1]);
    let threetwo = format!("{} {}", l[i - 3], l[i - 2]);
    for seq in [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo] {
        if let Some(s) = special_case(seq) {
            v = s;
            break;
        }
    }
    if l.len() - 1 > i
        && let Some(s) = special_case(&format!("{} {}", l[i], l[i + 1]))
    {
        v = s;
    }
    if l.len() - 1 > i + 1
        && let Some(s) = special_case(&format!("{} {} {}", l[i], l[i + 1], l[i + 2]))
    {
        v = s;
    }
    for gram in [&threetwoone, &threetwo, &twoone] {
        if let Some(b) = booster(gram) {
            v += b;
        }
    }
    v
}

fn least_check(v: f64, l: &[&str], i: usize, in_lex: &dyn Fn(&str) -> bool) -> f64 {
    if i > 0 && l[i - 1] == "least" && !in_lex(l[i - 1]) {
        if i > 1 {
            if l[i - 2] != "at" && l[i - 2] != "very" {
                return v * N_SCALAR;
            }
        } else {
            return v * N_SCALAR;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compound(text: &str) -> f64 {
        (score(text, &Lexicon::builtin()).compound * 10_000.0).round() / 10_000.0
    }

    /// Compound scores of vaderSentiment 3.3.2 (Python) on sentences of its own demo.
    #[test]
    fn matches_the_reference_implementation_on_its_demo_sentences() {
        assert_eq!(compound("VADER is smart, handsome, and funny."), 0.8316);
        assert_eq!(compound("VADER is smart, handsome, and funny!"), 0.8439);
        assert_eq!(
            compound("VADER is very smart, handsome, and funny."),
            0.8545
        );
        assert_eq!(
            compound("VADER is VERY SMART, handsome, and FUNNY."),
            0.9227
        );
        assert_eq!(
            compound("VADER is not smart, handsome, nor funny."),
            -0.7424
        );
        assert_eq!(compound("The book was good."), 0.4404);
        assert_eq!(compound("At least it isn't a horrible book."), 0.431);
        assert_eq!(compound("Today SUX!"), -0.5461);
        assert_eq!(compound("Not bad at all"), 0.431);
        assert_eq!(
            compound(
                "The plot was good, but the characters are uncompelling and the dialog is not great."
            ),
            -0.7042
        );
        assert_eq!(
            compound("Today only kinda sux! But I will get by, lol"),
            0.5249
        );
        assert_eq!(
            compound("Sentiment analysis has never been this good!"),
            0.5672
        );
        assert_eq!(compound("Without a doubt, excellent idea."), 0.7013);
        assert_eq!(
            compound("Roger Dodger is one of the least compelling variations on this theme."),
            -0.1695
        );
    }

    #[test]
    fn emoticons_and_emoji_count() {
        let lex = Lexicon::builtin();
        assert!(score("Make sure you :) today", &lex).compound > 0.0);
        assert!(score("\u{1F600}", &lex).compound > 0.0);
        assert!(score("angry \u{1F620}", &lex).compound < score("angry", &lex).compound);
        assert!(score("\u{1F620}", &lex).compound < 0.0);
        assert_eq!(score("", &lex).hits, 0);
    }
}
