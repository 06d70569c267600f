//! Property tests: the codec round-trips every valid item and rejects damage without
//! panicking; in-memory query results equal a plain filter over everything stored.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use memory_core::testing::{checks, reference, strategies};
use memory_core::{Entity, Episode, EpisodeQuery, InMemoryStorage, StorageBackend, codec};
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn round_trips<E: Entity>(item: &E) -> Result<(), TestCaseError> {
    prop_assert_eq!(item.validate(), Ok(()));
    let bytes = codec::encode(item).unwrap();
    prop_assert_eq!(&codec::decode::<E>(&bytes).unwrap(), item);
    // JSON, the human-readable form, round-trips too.
    let json = serde_json::to_string(item).unwrap();
    prop_assert_eq!(&serde_json::from_str::<E>(&json).unwrap(), item);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn episodes_round_trip(e in strategies::episode()) {
        round_trips(&e)?;
    }

    #[test]
    fn patterns_round_trip(p in strategies::pattern()) {
        round_trips(&p)?;
    }

    #[test]
    fn heuristics_round_trip(h in strategies::heuristic()) {
        round_trips(&h)?;
    }

    #[test]
    fn damaged_payloads_never_panic(
        e in strategies::episode(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = codec::encode(&e).unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        // Whatever it yields, decoding a damaged payload returns; an error is Corrupt.
        if let Err(err) = codec::decode::<Episode>(&bytes) {
            prop_assert_eq!(err.kind(), memory_core::ErrorKind::Corrupt);
        }
        let cut = cut.index(bytes.len());
        if let Err(err) = codec::decode::<Episode>(&bytes[..cut]) {
            prop_assert_eq!(err.kind(), memory_core::ErrorKind::Corrupt);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::decode::<Episode>(&bytes);
        let mut versioned = bytes;
        versioned.insert(0, codec::FORMAT_VERSION);
        let _ = codec::decode::<Episode>(&versioned);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn in_memory_queries_equal_a_plain_filter(
        episodes in proptest::collection::vec(strategies::episode(), 0..60),
        queries in proptest::collection::vec(strategies::episode_query(), 1..8),
    ) {
        let store = InMemoryStorage::new();
        let rt = runtime();
        rt.block_on(store.store_episodes(&episodes)).unwrap();
        for q in &queries {
            let expected = reference::episode_ids(&episodes, q);
            let got = rt.block_on(checks::episodes::all_pages(&store, q)).unwrap();
            prop_assert_eq!(got, expected, "query {:?}", q);
            // One page of the whole limit agrees with the first page of the reference.
            let page = rt.block_on(store.query_episodes(q)).unwrap();
            let first: Vec<_> = page.items.iter().map(|e| e.id).collect();
            let want: Vec<_> = reference::episode_ids(&episodes, q).into_iter().take(q.limit).collect();
            prop_assert_eq!(first, want);
        }
        let all = rt.block_on(checks::episodes::all_pages(&store, &EpisodeQuery::new().limit(7))).unwrap();
        prop_assert_eq!(all.len(), episodes.len());
    }

    #[test]
    fn in_memory_pattern_queries_equal_a_plain_filter(
        patterns in proptest::collection::vec(strategies::pattern(), 0..40),
        queries in proptest::collection::vec(strategies::pattern_query(), 1..8),
    ) {
        let store = InMemoryStorage::new();
        let rt = runtime();
        rt.block_on(store.store_patterns(&patterns)).unwrap();
        for q in &queries {
            let got: Vec<_> = rt.block_on(store.query_patterns(q)).unwrap().iter().map(|p| p.id).collect();
            prop_assert_eq!(got, reference::pattern_ids(&patterns, q), "query {:?}", q);
        }
    }
}
