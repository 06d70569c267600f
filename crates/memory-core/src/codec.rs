//! The stored payload format: one format-version byte, then the postcard encoding.
//!
//! Every backend stores items through [`encode`] and reads them through [`decode`], so one
//! version byte covers every storage. Golden files under `tests/golden/` pin the bytes of
//! every version: a change to a stored type fails those tests until the version is bumped
//! and the old version is still decoded.
//!
//! - Format 1: the items before embeddings.
//! - Format 2 (written now): episodes and patterns end with an optional
//!   [`Embedding`](crate::Embedding); heuristics are unchanged.

use crate::entity::Entity;
use crate::error::{ErrorKind, Result, StorageError};

/// The format version written by this build.
pub const FORMAT_VERSION: u8 = 2;

/// Encodes an item for storage. Call [`Entity::validate`] first: encoding does not check
/// limits.
///
/// ```
/// use memory_core::{codec, Heuristic};
///
/// let h = Heuristic::new("build is slow", "enable sccache", 0.7);
/// let bytes = codec::encode(&h).unwrap();
/// assert_eq!(bytes[0], codec::FORMAT_VERSION);
/// assert_eq!(codec::decode::<Heuristic>(&bytes).unwrap(), h);
/// ```
pub fn encode<E: Entity>(item: &E) -> Result<Vec<u8>> {
    postcard::to_extend(item, vec![FORMAT_VERSION]).map_err(|e| {
        StorageError::with_source(
            ErrorKind::Internal,
            format!("encoding {} {}", E::KIND, item.id()),
            e,
        )
    })
}

/// The length of `item`'s encoding (version byte included) without building it: caches use
/// it as the item's size. An item that cannot be encoded counts as `usize::MAX`.
///
/// ```
/// use memory_core::{codec, Heuristic};
///
/// let h = Heuristic::new("build is slow", "enable sccache", 0.7);
/// assert_eq!(codec::encoded_len(&h), codec::encode(&h).unwrap().len());
/// ```
pub fn encoded_len<E: Entity>(item: &E) -> usize {
    postcard::serialize_with_flavor(item, postcard::ser_flavors::Size::default())
        .map_or(usize::MAX, |len: usize| len + 1)
}

/// Decodes a stored item. Empty input, an unknown version, malformed bytes and trailing
/// bytes are all [`ErrorKind::Corrupt`] errors; no input makes it panic.
///
/// ```
/// use memory_core::{codec, Episode, ErrorKind};
///
/// let err = codec::decode::<Episode>(&[99, 1, 2, 3]).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Corrupt);
/// ```
pub fn decode<E: Entity>(bytes: &[u8]) -> Result<E> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(StorageError::corrupt(format!(
            "{} payload is empty",
            E::KIND
        )));
    };
    let decoded = match version {
        FORMAT_VERSION => postcard::take_from_bytes::<E>(body),
        1 => E::decode_format_1(body),
        _ => {
            return Err(StorageError::corrupt(format!(
                "{} payload has format version {version}; this build reads versions 1 to \
                 {FORMAT_VERSION}",
                E::KIND
            )));
        }
    };
    let (item, rest) = decoded.map_err(|e| {
        StorageError::with_source(
            ErrorKind::Corrupt,
            format!(
                "{} payload (format version {version}) does not decode",
                E::KIND
            ),
            e,
        )
    })?;
    if !rest.is_empty() {
        return Err(StorageError::corrupt(format!(
            "{} payload has {} trailing bytes",
            E::KIND,
            rest.len()
        )));
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Episode, Pattern, TaskContext, TaskType};

    #[test]
    fn damaged_payloads_are_corrupt_errors() {
        let episode = Episode::new(TaskType::Analysis, "read logs", TaskContext::new("ops"));
        let bytes = encode(&episode).unwrap();
        assert_eq!(decode::<Episode>(&bytes).unwrap(), episode);

        let mut trailing = bytes.clone();
        trailing.push(0);
        let err = decode::<Episode>(&trailing).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.to_string().contains("trailing"), "{err}");

        for cut in 0..bytes.len() {
            let err = decode::<Episode>(&bytes[..cut]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt, "cut at {cut}");
        }
        assert!(
            decode::<Episode>(&[])
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let err = decode::<Pattern>(&[3, 0]).unwrap_err();
        assert!(err.to_string().contains("format version 3"), "{err}");
    }
}
