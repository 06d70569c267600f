//! Golden files pin the stored bytes of every format version: the current one is encoded
//! and decoded, older ones must still decode.
//!
//! If one of these fails, a change altered how an item is encoded: rows written by earlier
//! builds would no longer decode. Keep the old layout readable (bump
//! `codec::FORMAT_VERSION` and decode the old version), never rewrite the files to make the
//! test pass. New files (for a new type or version) are written with `UPDATE_GOLDEN=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use memory_core::testing::samples;
use memory_core::{Entity, codec};

fn golden_path(name: &str) -> PathBuf {
    golden_path_of(name, codec::FORMAT_VERSION)
}

fn golden_path_of(name: &str, version: u8) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}_v{version}.bin"))
}

/// A format-1 file still decodes, to the sample as format 1 held it (no embedding).
fn check_format_1<E: Entity>(name: &str, value: &E) {
    let path = golden_path_of(name, 1);
    let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(golden[0], 1);
    let decoded: E = codec::decode(&golden).unwrap_or_else(|e| panic!("{name} v1: {e}"));
    assert_eq!(
        &decoded, value,
        "{name}: the format-1 bytes no longer decode"
    );
}

fn check<E: Entity>(name: &str, value: &E) {
    let path = golden_path(name);
    let encoded = codec::encode(value).unwrap();
    if !path.exists() && std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &encoded).unwrap();
    }
    let golden = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (create it with UPDATE_GOLDEN=1)", path.display()));
    let decoded: E = codec::decode(&golden).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        &decoded, value,
        "{name}: the golden bytes no longer decode to the sample"
    );
    assert_eq!(
        encoded, golden,
        "{name}: the encoding of the sample changed"
    );
}

#[test]
fn episode_current_format() {
    let episode = samples::golden_episode();
    assert!(episode.embedding.is_some());
    check("episode", &episode);
}

#[test]
fn patterns_current_format_every_kind() {
    for pattern in samples::golden_patterns() {
        check(&format!("pattern_{}", pattern.kind()), &pattern);
    }
}

#[test]
fn heuristic_current_format() {
    check("heuristic", &samples::golden_heuristic());
}

#[test]
fn format_1_files_still_decode() {
    let mut episode = samples::golden_episode();
    episode.embedding = None;
    check_format_1("episode", &episode);
    for mut pattern in samples::golden_patterns() {
        pattern.embedding = None;
        check_format_1(&format!("pattern_{}", pattern.kind()), &pattern);
    }
    check_format_1("heuristic", &samples::golden_heuristic());
}

#[test]
fn golden_samples_are_valid_items() {
    assert_eq!(samples::golden_episode().validate(), Ok(()));
    for p in samples::golden_patterns() {
        assert_eq!(p.validate(), Ok(()));
    }
    assert_eq!(samples::golden_heuristic().validate(), Ok(()));
}
