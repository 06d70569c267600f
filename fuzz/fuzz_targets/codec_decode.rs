//! Any bytes given to the codec decode to an item or a typed error, never a panic; an item
//! that decodes encodes back to bytes that decode to the same item.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memory_core::{Episode, Heuristic, Pattern, codec};

fuzz_target!(|data: &[u8]| {
    if let Ok(episode) = codec::decode::<Episode>(data) {
        let again = codec::encode(&episode).expect("a decoded episode encodes");
        assert_eq!(
            codec::decode::<Episode>(&again).expect("and decodes"),
            episode
        );
    }
    let _ = codec::decode::<Pattern>(data);
    let _ = codec::decode::<Heuristic>(data);
});
