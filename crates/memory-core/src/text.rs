//! Full-text search: how text is cut into words, what a text query means, and the exact
//! BM25 reference.
//!
//! **Words.** Text is cut at every character that is not alphanumeric (Unicode's
//! `Alphabetic` or `Numeric`), and each piece is lower-cased: `"Fix the HTTP-client's
//! timeout!"` holds the words `fix`, `the`, `http`, `client`, `s`, `timeout`. Stores index
//! exactly these words (libSQL gives its FTS5 table the words joined by spaces, with
//! FTS5's `ascii` tokenizer, so both sides cut the same way).
//!
//! **Queries.** A text query is words, cut the same way; an item matches when it holds
//! every word of the query (in any order, anywhere in its text). There are no operators:
//! quotes, `AND`, `OR`, `NOT`, `NEAR`, `*`, `^`, `:` and parentheses are ordinary text, and
//! a query is never able to change how it is read (`"NOT" AND x` looks for the words
//! `not`, `and` and `x`). At most [`MAX_QUERY_WORDS`] words.
//!
//! **Ranking.** Matches are ranked by BM25 (`k1` = 1.2, `b` = 0.75) over the item's words,
//! best first, ties by id. Scores are higher for better matches and comparable only
//! within one answer (each backend computes its own statistics).
//!
//! **What is searched.** An episode's description, its steps' actions and their outputs
//! or error messages, its outcome (verdict, artifacts, what was and was not completed,
//! failure reason and details) and its reflection; a pattern's text fields (tools,
//! condition and action, error type and recovery steps, features and approach).
//!
//! ```
//! use memory_core::text;
//!
//! assert_eq!(text::words("Fix the HTTP-client's timeout!"),
//!            ["fix", "the", "http", "client", "s", "timeout"]);
//! assert_eq!(text::query_words("\"NOT\" AND x").unwrap(), ["not", "and", "x"]);
//! assert!(text::query_words("  ** ").is_err(), "no words");
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use crate::entity::Entity;
use crate::episode::{Episode, ExecutionResult, TaskOutcome};
use crate::error::{Problem, ValidationError};
use crate::limits::MAX_TEXT_BYTES;
use crate::pattern::{Pattern, PatternData};
use crate::search::Scored;

/// The most words one text query holds.
pub const MAX_QUERY_WORDS: usize = 32;

/// BM25's term-frequency saturation.
const K1: f64 = 1.2;
/// BM25's length normalisation.
const B: f64 = 0.75;

/// The words of `text`, in order.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// [`words`] joined by single spaces, lower-cased in place where a word is ASCII (a word
/// with other letters is lower-cased as `str::to_lowercase` does, which a final sigma
/// needs).
///
/// Every write of a searchable item runs this over all its text, so ASCII is read byte by
/// byte and only other characters are decoded (3x faster than splitting by `char` on
/// typical episodes).
pub fn joined_words(text: &str) -> String {
    // (ASCII bytes are always UTF-8: the conversion cannot fail.)
    if text.is_ascii()
        && let Ok(joined) = String::from_utf8(joined_ascii_words(text))
    {
        return joined;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        // Separators, then a word: ASCII bytes are classified as they are, other
        // characters decoded (`at` only ever moves by whole characters).
        let (start, mut ascii) = loop {
            match class(text, at) {
                None => break (at, true),
                Some((true, ascii, _)) => break (at, ascii),
                Some((false, _, len)) => at += len,
            }
        };
        while let Some((true, is_ascii, len)) = class(text, at) {
            ascii &= is_ascii;
            at += len;
        }
        if at > start {
            push_word(&mut out, text.get(start..at).unwrap_or_default(), ascii);
        }
    }
    out
}

/// [`joined_words`] of an ASCII `text`, as bytes: words are runs of alphanumeric bytes,
/// copied whole and lower-cased in place (most text is ASCII; measured on typical
/// episodes' JSON, 2.8 ns per byte against 4.6 for the character-aware path).
fn joined_ascii_words(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for word in text
        .as_bytes()
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(b' ');
        }
        let start = out.len();
        out.extend_from_slice(word);
        if let Some(pushed) = out.get_mut(start..) {
            pushed.make_ascii_lowercase();
        }
    }
    out
}

/// Whether the character at byte `at` of `text` is alphanumeric, whether it is ASCII, and
/// its length; `None` at the end.
#[inline]
fn class(text: &str, at: usize) -> Option<(bool, bool, usize)> {
    let byte = *text.as_bytes().get(at)?;
    if byte.is_ascii() {
        return Some((byte.is_ascii_alphanumeric(), true, 1));
    }
    let c = text.get(at..)?.chars().next()?;
    Some((c.is_alphanumeric(), false, c.len_utf8()))
}

fn push_word(out: &mut String, word: &str, ascii: bool) {
    if !out.is_empty() {
        out.push(' ');
    }
    if ascii {
        let start = out.len();
        out.push_str(word);
        if let Some(pushed) = out.get_mut(start..) {
            pushed.make_ascii_lowercase();
        }
    } else {
        out.push_str(&word.to_lowercase());
    }
}

/// The words of a text query; `InvalidInput` (as a [`ValidationError`] on `text`) if it
/// has none, more than [`MAX_QUERY_WORDS`], or more than [`MAX_TEXT_BYTES`] bytes.
pub fn query_words(query: &str) -> Result<Vec<String>, ValidationError> {
    if query.len() > MAX_TEXT_BYTES {
        return Err(ValidationError::new(
            "text",
            Problem::TooLong {
                max: MAX_TEXT_BYTES,
                actual: query.len(),
            },
        ));
    }
    let words = words(query);
    if words.is_empty() {
        return Err(ValidationError::new(
            "text",
            Problem::Invalid("holds no words (letters or digits) to search for".into()),
        ));
    }
    if words.len() > MAX_QUERY_WORDS {
        return Err(ValidationError::new(
            "text",
            Problem::TooMany {
                max: MAX_QUERY_WORDS,
                actual: words.len(),
            },
        ));
    }
    Ok(words)
}

/// Items whose text can be searched.
pub trait Searchable {
    /// Appends each searchable text field of the item to `out`, separated by newlines.
    fn write_text(&self, out: &mut String);

    /// The item's words, in order.
    fn words(&self) -> Vec<String> {
        let mut text = String::new();
        self.write_text(&mut text);
        words(&text)
    }

    /// The item's words joined by single spaces: what a full-text index stores (the same
    /// as `words().join(" ")`, without a string per word).
    fn indexed_text(&self) -> String {
        let mut text = String::new();
        self.write_text(&mut text);
        joined_words(&text)
    }
}

fn push(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}

impl Searchable for Episode {
    fn write_text(&self, out: &mut String) {
        push(out, &self.description);
        for step in &self.steps {
            push(out, &step.action);
            match &step.result {
                Some(ExecutionResult::Success { output }) => push(out, output),
                Some(ExecutionResult::Error { message }) => push(out, message),
                None => {}
            }
        }
        match &self.outcome {
            Some(TaskOutcome::Success { verdict, artifacts }) => {
                push(out, verdict);
                artifacts.iter().for_each(|a| push(out, a));
            }
            Some(TaskOutcome::PartialSuccess {
                verdict,
                completed,
                failed,
            }) => {
                push(out, verdict);
                completed.iter().chain(failed).for_each(|a| push(out, a));
            }
            Some(TaskOutcome::Failure {
                reason,
                error_details,
            }) => {
                push(out, reason);
                if let Some(details) = error_details {
                    push(out, details);
                }
            }
            None => {}
        }
        if let Some(r) = &self.reflection {
            r.successes
                .iter()
                .chain(&r.improvements)
                .chain(&r.insights)
                .for_each(|line| push(out, line));
        }
    }
}

impl Searchable for Pattern {
    fn write_text(&self, out: &mut String) {
        match &self.data {
            PatternData::ToolSequence { tools, .. } => tools.iter().for_each(|t| push(out, t)),
            PatternData::DecisionPoint {
                condition, action, ..
            } => {
                push(out, condition);
                push(out, action);
            }
            PatternData::ErrorRecovery {
                error_type,
                recovery_steps,
            } => {
                push(out, error_type);
                recovery_steps.iter().for_each(|s| push(out, s));
            }
            PatternData::ContextPattern {
                features,
                recommended_approach,
            } => {
                features.iter().for_each(|f| push(out, f));
                push(out, recommended_approach);
            }
        }
    }
}

/// The FTS5 `MATCH` expression of a text query: each word as a string (`"word"`), which
/// FTS5 reads as "all of these" and never as an operator. Words hold only letters and
/// digits, so none holds a quote.
pub fn fts5_match(query: &str) -> Result<String, ValidationError> {
    Ok(query_words(query)?
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(" "))
}

/// The exact answer: among `corpus` (every stored item of the kind: the statistics are the
/// whole store's), those that `matches` and hold every word of `query`, ranked by BM25,
/// the first `k`. A query without words matches nothing.
pub fn exact<T: Entity + Searchable>(
    corpus: impl IntoIterator<Item = Arc<T>>,
    query: &str,
    k: usize,
    matches: impl Fn(&T) -> bool,
) -> Vec<Scored<T>> {
    let wanted = match query_words(query) {
        Ok(mut w) => {
            w.sort();
            w.dedup();
            w
        }
        Err(_) => return Vec::new(),
    };
    let docs: Vec<(Arc<T>, Vec<String>)> = corpus
        .into_iter()
        .map(|item| {
            let words = Searchable::words(item.as_ref());
            (item, words)
        })
        .collect();
    let n = docs.len() as f64;
    let average = docs.iter().map(|(_, w)| w.len()).sum::<usize>() as f64 / n.max(1.0);
    let mut holding: HashMap<&str, usize> = HashMap::new();
    for (_, words) in &docs {
        let mut seen: Vec<&str> = words.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for w in seen {
            if let Ok(i) = wanted.binary_search_by(|q| q.as_str().cmp(w)) {
                *holding.entry(wanted[i].as_str()).or_default() += 1;
            }
        }
    }
    let mut scored: Vec<Scored<T>> = docs
        .iter()
        .filter(|(item, _)| matches(item))
        .filter_map(|(item, words)| {
            let length = words.len() as f64;
            let mut score = 0.0;
            for q in &wanted {
                let tf = words.iter().filter(|w| *w == q).count() as f64;
                if tf == 0.0 {
                    return None;
                }
                let df = holding.get(q.as_str()).copied().unwrap_or(0) as f64;
                let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                score += idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length / average));
            }
            Some(Scored {
                item: item.clone(),
                score,
            })
        })
        .collect();
    crate::search::rank(&mut scored, k);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExecutionStep, TaskContext, TaskType};

    fn episode(description: &str) -> Arc<Episode> {
        Arc::new(Episode::new(
            TaskType::Testing,
            description,
            TaskContext::new("web"),
        ))
    }

    proptest::proptest! {
        #[test]
        fn joined_words_are_the_words_joined(text in "(?s).{0,80}") {
            proptest::prop_assert_eq!(joined_words(&text), words(&text).join(" "));
        }

        #[test]
        fn joined_ascii_words_are_the_words_joined(text in "[\\x00-\\x7f]{0,200}") {
            proptest::prop_assert_eq!(joined_words(&text), words(&text).join(" "));
        }
    }

    #[test]
    fn joined_words_lower_case_as_words_do() {
        for text in [
            "ΟΔΟΣ Σ",
            "Straße HTTP-Client's",
            "ǅ İstanbul",
            "",
            "  ",
            "a1 B2",
        ] {
            assert_eq!(joined_words(text), words(text).join(" "), "{text:?}");
        }
    }

    #[test]
    fn every_word_must_match_and_more_occurrences_rank_higher() {
        let a = episode("timeout in the http client");
        let b = episode("http timeout, then another timeout");
        let c = episode("http only");
        let all = vec![a.clone(), b.clone(), c.clone()];
        let got = exact(all.clone(), "Timeout HTTP", 10, |_| true);
        let ids: Vec<_> = got.iter().map(|s| s.item.id).collect();
        assert_eq!(ids, vec![b.id, a.id]);
        assert!(got[0].score > got[1].score);
        assert!(exact(all.clone(), "timeout", 10, |e| e.id == a.id).len() == 1);
        assert!(exact(all, "  ", 10, |_| true).is_empty());
    }

    #[test]
    fn operators_are_words() {
        assert_eq!(
            fts5_match("a OR b* NEAR(\"c\") -d ^e col:f").unwrap(),
            "\"a\" \"or\" \"b\" \"near\" \"c\" \"d\" \"e\" \"col\" \"f\""
        );
        assert!(query_words(&"w ".repeat(MAX_QUERY_WORDS + 1)).is_err());
    }

    #[test]
    fn steps_outcome_and_reflection_are_searched() {
        let mut e = Episode::new(TaskType::Debugging, "d", TaskContext::new("web"));
        let mut step = ExecutionStep::new(1, "tool", "ran cargo");
        step.result = Some(ExecutionResult::Error {
            message: "linker failed".into(),
        });
        e.steps.push(step);
        e.complete(TaskOutcome::Failure {
            reason: "broken build".into(),
            error_details: Some("ld exited 1".into()),
        });
        let text = e.indexed_text();
        for w in ["ran", "cargo", "linker", "broken", "ld", "exited"] {
            assert!(text.split(' ').any(|t| t == w), "{w} in {text}");
        }
    }
}
