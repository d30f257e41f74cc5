//! The local tokenizer and the hashed features of the trained model.
//!
//! A text is lowercased (Unicode) with U+2018/U+2019 read as `'`; a word is a run of alphanumeric
//! characters and apostrophes (apostrophes trimmed from its ends); every other character that is
//! neither whitespace nor ASCII punctuation (emoji, symbols) is a token of its own, and so are `!`
//! and `?`. Four groups of features are hashed (FNV-1a 64, then a splitmix64 finaliser) into
//! [`N_BUCKETS`] buckets: word unigrams; word bigrams with start and end markers; character 2- to
//! 5-grams inside each word padded by a space on each side (like scikit-learn's `char_wb`); and
//! the words within three tokens after a negation ("not", "never", "...n't", up to `,.;:!?`),
//! marked as negated. Each feature is present or absent; each group is scaled to unit length, so
//! that a text's vector has four unit-length parts however long the text is.

use crate::vader::is_negation;

/// log2 of the number of hash buckets.
pub const HASH_BITS: u32 = 18;
/// The number of hash buckets.
pub const N_BUCKETS: usize = 1 << HASH_BITS;

/// A token of the trained model's tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A lowercased word.
    Word(String),
    /// A symbol, emoji, `!` or `?`.
    Symbol(char),
    /// A clause break (ASCII punctuation other than `!`, `?` and `'`), ending a negation's scope.
    Break,
}

/// Tokenizes a text (the caller caps its length).
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        let w = word.trim_matches('\'');
        if !w.is_empty() {
            out.push(Token::Word(w.to_string()));
        }
        word.clear();
    };
    for c in text.chars() {
        let c = match c {
            '\u{2018}' | '\u{2019}' => '\'',
            c => c,
        };
        if c.is_alphanumeric() || c == '\'' {
            word.extend(c.to_lowercase());
            continue;
        }
        flush(&mut word, &mut out);
        if c.is_whitespace() {
            continue;
        }
        if c == '!' || c == '?' || !c.is_ascii_punctuation() {
            out.push(Token::Symbol(c));
        }
        if c.is_ascii_punctuation() && c != '\'' && out.last() != Some(&Token::Break) {
            out.push(Token::Break);
        }
    }
    flush(&mut word, &mut out);
    out
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn bucket(h: u64) -> u32 {
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z & (N_BUCKETS as u64 - 1)) as u32
}

fn start(group: u8) -> u64 {
    fnv(FNV_OFFSET, &[group, 0x1f])
}

/// The hashed features of a text: `(bucket, value)` sorted by bucket, each bucket once.
pub fn hashed(text: &str) -> Vec<(u32, f32)> {
    let tokens = tokenize(text);
    let mut groups: [Vec<u32>; 4] = Default::default();
    let mut buf = [0u8; 4];
    let piece = |t: &Token, buf: &mut [u8; 4]| -> Option<String> {
        match t {
            Token::Word(w) => Some(w.clone()),
            Token::Symbol(c) => Some(c.encode_utf8(buf).to_string()),
            Token::Break => None,
        }
    };
    let mut prev = String::from("<s>");
    let mut negated_left = 0usize;
    for t in &tokens {
        let Some(p) = piece(t, &mut buf) else {
            negated_left = 0;
            continue;
        };
        groups[0].push(bucket(fnv(start(0), p.as_bytes())));
        let h = fnv(fnv(start(1), prev.as_bytes()), &[0x1f]);
        groups[1].push(bucket(fnv(h, p.as_bytes())));
        if let Token::Word(w) = t {
            let padded: Vec<char> = core::iter::once(' ')
                .chain(w.chars())
                .chain(core::iter::once(' '))
                .collect();
            for i in 0..padded.len() {
                let mut h = start(2);
                for (k, c) in padded[i..].iter().take(5).enumerate() {
                    h = fnv(h, c.encode_utf8(&mut buf).as_bytes());
                    if k >= 1 {
                        groups[2].push(bucket(h));
                    }
                }
            }
            if negated_left > 0 {
                groups[3].push(bucket(fnv(start(3), p.as_bytes())));
                negated_left -= 1;
            }
            if is_negation(w) || w == "no" {
                negated_left = 3;
            }
        }
        prev = p;
    }
    if tokens.iter().any(|t| *t != Token::Break) {
        let h = fnv(fnv(start(1), prev.as_bytes()), &[0x1f]);
        groups[1].push(bucket(fnv(h, b"</s>")));
    }
    let mut out: Vec<(u32, f32)> = Vec::new();
    for g in groups.iter_mut() {
        g.sort_unstable();
        g.dedup();
        if g.is_empty() {
            continue;
        }
        let v = 1.0 / (g.len() as f32).sqrt();
        out.extend(g.iter().map(|&b| (b, v)));
    }
    out.sort_unstable_by_key(|&(b, _)| b);
    let mut merged: Vec<(u32, f32)> = Vec::with_capacity(out.len());
    for (b, v) in out {
        match merged.last_mut() {
            Some(last) if last.0 == b => last.1 += v,
            _ => merged.push((b, v)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_lowercases_keeps_apostrophes_and_emoji() {
        let t = tokenize("Don\u{2019}t LOVE it!! \u{1F600} caf\u{E9}, 'quoted'");
        assert_eq!(
            t,
            vec![
                Token::Word("don't".into()),
                Token::Word("love".into()),
                Token::Word("it".into()),
                Token::Symbol('!'),
                Token::Break,
                Token::Symbol('!'),
                Token::Break,
                Token::Symbol('\u{1F600}'),
                Token::Word("caf\u{e9}".into()),
                Token::Break,
                Token::Word("quoted".into()),
            ]
        );
    }

    #[test]
    fn features_are_sorted_unique_and_unit_length_per_group() {
        let f = hashed("not good, not good at all");
        assert!(f.windows(2).all(|w| w[0].0 < w[1].0));
        let norm2: f32 = f.iter().map(|(_, v)| v * v).sum();
        // Four groups of unit length; colliding buckets make it differ a little.
        assert!((norm2 - 4.0).abs() < 0.2, "{norm2}");
        assert!(hashed("").is_empty());
        assert!(hashed("   ...").is_empty());
    }
}
