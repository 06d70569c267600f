//! Any bytes given to the codec decode to an item or a typed error, never a panic; what
//! decodes encodes to bytes that decode and encode to the same bytes again (compared as
//! bytes: a decoded item may hold NaN, which is not equal to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memory_core::{Entity, Episode, Heuristic, Pattern, codec};

fn stable<E: Entity>(data: &[u8]) {
    if let Ok(item) = codec::decode::<E>(data) {
        let bytes = codec::encode(&item).expect("a decoded item encodes");
        let again = codec::decode::<E>(&bytes).expect("its encoding decodes");
        assert_eq!(codec::encode(&again).expect("and encodes"), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    stable::<Episode>(data);
    stable::<Pattern>(data);
    stable::<Heuristic>(data);
});
