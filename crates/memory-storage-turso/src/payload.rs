//! Stored payloads: the core's versioned codec bytes, zstd-compressed (as binary, never
//! base64) when they reach the configured threshold. The `encoding` column says which.

use std::cell::RefCell;

use memory_core::{Entity, StorageError, codec};

/// Plain codec bytes.
pub const PLAIN: i64 = 0;
/// zstd frame of the codec bytes.
pub const ZSTD: i64 = 1;

/// How payloads are written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PayloadCodec {
    pub(crate) threshold: usize,
    pub(crate) level: i32,
}

impl PayloadCodec {
    /// `(encoding, bytes)` for `item`.
    pub(crate) fn encode<E: Entity>(&self, item: &E) -> Result<(i64, Vec<u8>), StorageError> {
        let bytes = codec::encode(item)?;
        if bytes.len() < self.threshold {
            return Ok((PLAIN, bytes));
        }
        let compressed = compress(&bytes, self.level).map_err(|e| {
            StorageError::with_source(memory_core::ErrorKind::Internal, "compressing a payload", e)
        })?;
        // Incompressible data is kept plain rather than grown.
        if compressed.len() < bytes.len() {
            Ok((ZSTD, compressed))
        } else {
            Ok((PLAIN, bytes))
        }
    }
}

thread_local! {
    // A zstd context costs about as much to create as a typical payload to (de)compress
    // (measured: creating them was 5 % of the soak's CPU, with the allocator's work on
    // their buffers much of another 10 %), so each thread keeps one of each.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn compress(bytes: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(std::io::Error::other)?;
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match slot.as_mut() {
            Some((_, compressor)) => compressor.compress(bytes),
            None => zstd::bulk::compress(bytes, level),
        }
    })
}

fn decompress(bytes: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(std::io::Error::other)?;
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(decompressor) => decompressor.decompress(bytes, capacity),
            None => zstd::bulk::decompress(bytes, capacity),
        }
    })
}

/// The item stored as `bytes` with `encoding`; `Corrupt` naming `what` if it cannot be read
/// (`what` is only formatted on failure: reads decode every row).
pub fn decode<E: Entity>(
    encoding: i64,
    bytes: &[u8],
    what: std::fmt::Arguments<'_>,
) -> Result<E, StorageError> {
    let _phase = tracing::trace_span!(target: "memory::phase", "decode").entered();
    let corrupt = |detail: String| StorageError::corrupt(format!("{what}: {detail}"));
    match encoding {
        PLAIN => codec::decode(bytes).map_err(|e| corrupt(e.to_string())),
        ZSTD => {
            // Sized from the frame header (every frame we write records it), so a read does
            // not reserve the whole limit; bounded, so no stored frame can claim more.
            let limit = memory_core::limits::MAX_PAYLOAD_BYTES * 2;
            let capacity = match zstd::zstd_safe::get_frame_content_size(bytes) {
                Ok(Some(size)) if size <= limit as u64 => size as usize,
                Ok(Some(size)) => {
                    return Err(corrupt(format!(
                        "compressed payload claims {size} bytes, over the {limit}-byte limit"
                    )));
                }
                Ok(None) => limit,
                Err(_) => return Err(corrupt("not a zstd frame".into())),
            };
            let plain = decompress(bytes, capacity)
                .map_err(|e| corrupt(format!("undecompressable payload: {e}")))?;
            codec::decode(&plain).map_err(|e| corrupt(e.to_string()))
        }
        other => Err(corrupt(format!("unknown payload encoding {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory_core::testing::samples;
    use memory_core::{Episode, ErrorKind};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// Whatever a row holds, reading it is the item or `Corrupt`, never a panic; that
        /// includes zstd frames cut short or bit-flipped and frames claiming huge sizes.
        #[test]
        fn any_stored_bytes_read_as_an_item_or_corrupt(
            encoding in prop_oneof![Just(PLAIN), Just(ZSTD), any::<i64>()],
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<(usize, u8)>(),
            cut in any::<usize>(),
        ) {
            let codec = PayloadCodec { threshold: 0, level: 3 };
            let (zstd, compressed) = codec.encode(&samples::episode(7)).unwrap();
            let mut damaged = compressed.clone();
            let at = flip.0 % damaged.len();
            damaged[at] ^= flip.1 | 1;
            let cut = cut % compressed.len();
            for (encoding, bytes) in [
                (encoding, &bytes[..]),
                (zstd, &damaged[..]),
                (zstd, &compressed[..cut]),
            ] {
                if let Err(e) = decode::<Episode>(encoding, bytes, format_args!("episode x")) {
                    prop_assert_eq!(e.kind(), ErrorKind::Corrupt);
                }
            }
        }
    }

    #[test]
    fn large_payloads_compress_and_round_trip() {
        let episode = samples::golden_episode();
        let plain = PayloadCodec {
            threshold: usize::MAX,
            level: 3,
        };
        let small = PayloadCodec {
            threshold: 0,
            level: 3,
        };
        let (encoding, bytes) = plain.encode(&episode).unwrap();
        assert_eq!(encoding, PLAIN);
        assert_eq!(
            decode::<memory_core::Episode>(encoding, &bytes, format_args!("e")).unwrap(),
            episode
        );
        let (encoding, compressed) = small.encode(&episode).unwrap();
        if encoding == ZSTD {
            assert!(compressed.len() < bytes.len());
        }
        assert_eq!(
            decode::<memory_core::Episode>(encoding, &compressed, format_args!("e")).unwrap(),
            episode
        );
    }

    #[test]
    fn a_frame_claiming_more_than_the_limit_is_corrupt() {
        let huge = vec![0u8; memory_core::limits::MAX_PAYLOAD_BYTES * 2 + 1];
        let frame = zstd::bulk::compress(&huge, 1).unwrap();
        let err =
            decode::<memory_core::Episode>(ZSTD, &frame, format_args!("episode y")).unwrap_err();
        assert_eq!(err.kind(), memory_core::ErrorKind::Corrupt);
        assert!(err.to_string().contains("over the"), "{err}");
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for (encoding, bytes) in [(PLAIN, &b"\x01garbage"[..]), (ZSTD, b"not zstd"), (7, b"")] {
            let err = decode::<memory_core::Episode>(encoding, bytes, format_args!("episode x"))
                .unwrap_err();
            assert_eq!(err.kind(), memory_core::ErrorKind::Corrupt);
            assert!(err.to_string().contains("episode x"), "{err}");
        }
    }
}
