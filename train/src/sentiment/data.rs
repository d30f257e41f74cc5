//! Reading labelled texts and the VADER lexicon files.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use trademl_model_sentiment::lexicon::Lexicon;
use trademl_model_sentiment::model::{self, Analysis};
use trademl_model_sentiment::vader;

/// Which columns hold the text and the label.
#[derive(Debug, Clone)]
pub struct Columns {
    /// The text column.
    pub text: String,
    /// The label column: 1/0, positive/negative, pos/neg or true/false.
    pub label: String,
}

/// One labelled data file.
#[derive(Debug, Clone)]
pub struct Domain {
    /// Where it was read from.
    pub path: PathBuf,
    /// The file name without `.csv` / `.csv.gz`, e.g. `sentences_amazon`.
    pub name: String,
    /// sha256 of the file's bytes.
    pub sha256: String,
    /// The texts.
    pub texts: Vec<String>,
    /// The labels, true = positive.
    pub labels: Vec<bool>,
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .read_to_end(&mut raw)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(raw)
}

/// The file's bytes, gunzipped if its name ends in `.gz`, and the sha256 of the file as stored.
pub fn read_maybe_gz(path: &Path) -> Result<(Vec<u8>, String)> {
    let raw = read_bytes(path)?;
    let sha = hex::encode(Sha256::digest(&raw));
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(BufReader::new(&raw[..]))
            .read_to_end(&mut out)
            .with_context(|| format!("gunzipping {}", path.display()))?;
        Ok((out, sha))
    } else {
        Ok((raw, sha))
    }
}

/// Reads a label: 1/0, positive/negative, pos/neg, true/false (any case).
pub fn parse_label(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "positive" | "pos" | "true" => Some(true),
        "0" | "negative" | "neg" | "false" => Some(false),
        _ => None,
    }
}

/// Reads one CSV of labelled texts.
pub fn load(path: &Path, columns: &Columns) -> Result<Domain> {
    let (bytes, sha256) = read_maybe_gz(path)?;
    let mut reader = csv::Reader::from_reader(&bytes[..]);
    let headers = reader
        .headers()
        .with_context(|| format!("{}: reading the header", path.display()))?
        .clone();
    let find = |name: &str, flag: &str| -> Result<usize> {
        headers.iter().position(|h| h == name).with_context(|| {
            format!(
                "{}: no column {name:?} (set it with {flag}); the columns are: {}",
                path.display(),
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let ti = find(&columns.text, "--text-column")?;
    let li = find(&columns.label, "--label-column")?;
    let (mut texts, mut labels) = (Vec::new(), Vec::new());
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: row {}", path.display(), i + 1))?;
        let label = record.get(li).unwrap_or("");
        let Some(y) = parse_label(label) else {
            bail!(
                "{}: row {}: label {label:?} in column {:?} is not 1/0, positive/negative, pos/neg or true/false",
                path.display(),
                i + 1,
                columns.label
            );
        };
        texts.push(record.get(ti).unwrap_or("").to_string());
        labels.push(y);
    }
    if labels.iter().all(|&y| y) || labels.iter().all(|&y| !y) {
        bail!(
            "{}: {} rows, but both labels are needed",
            path.display(),
            labels.len()
        );
    }
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name
        .trim_end_matches(".gz")
        .trim_end_matches(".csv")
        .to_string();
    Ok(Domain {
        path: path.to_path_buf(),
        name,
        sha256,
        texts,
        labels,
    })
}

/// The VADER lexicon as sorted `(key, valence)` entries, with the emoji entries derived from the
/// emoji lexicon (each single-character emoji gets the raw VADER valence of its description).
#[derive(Debug, Clone)]
pub struct LexiconFiles {
    /// Sorted entries.
    pub entries: Vec<(String, f32)>,
    /// How many came from the word lexicon.
    pub words: usize,
    /// How many emoji were added.
    pub emoji: usize,
    /// (path, sha256) of the word lexicon and the emoji lexicon.
    pub sources: [(PathBuf, String); 2],
}

impl LexiconFiles {
    /// Reads `vader_lexicon.txt(.gz)` and `emoji_utf8_lexicon.txt(.gz)`.
    pub fn load(words: &Path, emoji: &Path) -> Result<Self> {
        let (bytes, words_sha) = read_maybe_gz(words)?;
        let text = String::from_utf8(bytes)
            .with_context(|| format!("{} is not UTF-8", words.display()))?;
        let mut entries: Vec<(String, f32)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut parts = line.split('\t');
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                bail!("{}: line {} has no tab", words.display(), i + 1);
            };
            let value: f32 = value.trim().parse().with_context(|| {
                format!("{}: line {}: valence {value:?}", words.display(), i + 1)
            })?;
            entries.push((key.to_string(), value));
        }
        // A key listed twice keeps its last valence, as the Python's dict does ("lol" is).
        entries.reverse();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        let n_words = entries.len();
        let (bytes, emoji_sha) = read_maybe_gz(emoji)?;
        let text = String::from_utf8(bytes)
            .with_context(|| format!("{} is not UTF-8", emoji.display()))?;
        let mut added = Vec::new();
        {
            let refs: Vec<(&str, f32)> = entries.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let lexicon = Lexicon::new(&refs);
            for line in text.lines() {
                let mut parts = line.split('\t');
                let (Some(key), Some(description)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let mut chars = key.chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    continue;
                };
                if c.is_ascii() || c.is_alphanumeric() || lexicon.valence(key).is_some() {
                    continue;
                }
                let v = vader::score(description, &lexicon).sum;
                if v != 0.0 {
                    added.push((key.to_string(), v as f32));
                }
            }
        }
        let n_emoji = added.len();
        entries.extend(added);
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        Ok(LexiconFiles {
            entries,
            words: n_words,
            emoji: n_emoji,
            sources: [
                (words.to_path_buf(), words_sha),
                (emoji.to_path_buf(), emoji_sha),
            ],
        })
    }

    /// The entries as borrowed pairs, for [`Lexicon::new`].
    pub fn refs(&self) -> Vec<(&str, f32)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }
}

/// A labelled, analysed text.
#[derive(Debug, Clone)]
pub struct Example {
    /// What the model reads.
    pub analysis: Analysis,
    /// True = positive.
    pub label: bool,
    /// Index of the domain (file) it came from.
    pub domain: usize,
}

/// Analyses every text of every domain.
pub fn examples(domains: &[Domain], lexicon: &Lexicon<'_>) -> Vec<Example> {
    domains
        .iter()
        .enumerate()
        .flat_map(|(d, dom)| {
            dom.texts
                .iter()
                .zip(&dom.labels)
                .map(move |(t, &y)| Example {
                    analysis: model::analyse(t, lexicon),
                    label: y,
                    domain: d,
                })
        })
        .collect()
}
