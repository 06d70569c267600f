//! Golden files pin the stored bytes of format version 1.
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
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}_v{}.bin", codec::FORMAT_VERSION))
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
fn episode_v1() {
    check("episode", &samples::golden_episode());
}

#[test]
fn patterns_v1_every_kind() {
    for pattern in samples::golden_patterns() {
        check(&format!("pattern_{}", pattern.kind()), &pattern);
    }
}

#[test]
fn heuristic_v1() {
    check("heuristic", &samples::golden_heuristic());
}

#[test]
fn golden_samples_are_valid_items() {
    assert_eq!(samples::golden_episode().validate(), Ok(()));
    for p in samples::golden_patterns() {
        assert_eq!(p.validate(), Ok(()));
    }
    assert_eq!(samples::golden_heuristic().validate(), Ok(()));
}
