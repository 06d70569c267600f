//! Validation helpers shared by the domain types, the queries and every backend's batch calls.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

use serde::Serialize;

use crate::entity::Entity;
use crate::error::{Problem, StorageError, ValidationError};
use crate::limits::{
    MAX_BATCH_ITEMS, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES,
    MAX_PAYLOAD_BYTES, MAX_TAG_BYTES, MAX_TAGS,
};

pub(crate) type Checked = Result<(), ValidationError>;

/// A required short text: non-empty and at most `max` bytes.
pub(crate) fn required(field: &str, value: &str, max: usize) -> Checked {
    if value.is_empty() {
        return Err(ValidationError::new(field, Problem::Empty));
    }
    max_bytes(field, value, max)
}

/// A text of at most `max` bytes (may be empty).
pub(crate) fn max_bytes(field: &str, value: &str, max: usize) -> Checked {
    if value.len() > max {
        return Err(ValidationError::new(
            field,
            Problem::TooLong {
                max,
                actual: value.len(),
            },
        ));
    }
    Ok(())
}

/// A list of at most `max` entries.
pub(crate) fn max_items(field: &str, count: usize, max: usize) -> Checked {
    if count > max {
        return Err(ValidationError::new(
            field,
            Problem::TooMany { max, actual: count },
        ));
    }
    Ok(())
}

/// A list of texts, each at most `max` bytes, at most `max_count` of them.
pub(crate) fn texts(field: &str, values: &[String], max_count: usize, max: usize) -> Checked {
    max_items(field, values.len(), max_count)?;
    for (i, v) in values.iter().enumerate() {
        max_bytes(&format!("{field}[{i}]"), v, max)?;
    }
    Ok(())
}

/// A finite number.
pub(crate) fn finite(field: &str, value: f64) -> Checked {
    if !value.is_finite() {
        return Err(ValidationError::new(field, Problem::NotFinite(value)));
    }
    Ok(())
}

/// A finite number in `[0, 1]`.
pub(crate) fn unit_interval(field: &str, value: f64) -> Checked {
    finite(field, value)?;
    if !(0.0..=1.0).contains(&value) {
        return Err(ValidationError::new(
            field,
            Problem::OutOfRange {
                min: 0.0,
                max: 1.0,
                actual: value,
            },
        ));
    }
    Ok(())
}

/// Tags: at most [`MAX_TAGS`], each non-empty, at most [`MAX_TAG_BYTES`], no repeats.
pub(crate) fn tags(field: &str, values: &[String]) -> Checked {
    max_items(field, values.len(), MAX_TAGS)?;
    let mut seen = HashSet::with_capacity(values.len());
    for (i, tag) in values.iter().enumerate() {
        required(&format!("{field}[{i}]"), tag, MAX_TAG_BYTES)?;
        if !seen.insert(tag.as_str()) {
            return Err(ValidationError::new(field, Problem::Duplicate(tag.clone())));
        }
    }
    Ok(())
}

/// A metadata map within the entry, key and value limits; keys must not be empty.
pub(crate) fn metadata(field: &str, map: &BTreeMap<String, String>) -> Checked {
    metadata_pairs(field, map.iter())
}

pub(crate) fn metadata_pairs<'a>(
    field: &str,
    pairs: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Checked {
    max_items(field, pairs.len(), MAX_METADATA_ENTRIES)?;
    for (key, value) in pairs {
        required(&format!("{field}.key"), key, MAX_METADATA_KEY_BYTES)?;
        max_bytes(&format!("{field}[{key}]"), value, MAX_METADATA_VALUE_BYTES)?;
    }
    Ok(())
}

/// The encoded item (version byte plus postcard body) fits in [`MAX_PAYLOAD_BYTES`].
pub(crate) fn payload<T: Serialize>(value: &T) -> Checked {
    let size = postcard::experimental::serialized_size(value)
        .map_err(|e| ValidationError::new("payload", Problem::Invalid(e.to_string())))?
        + 1;
    if size > MAX_PAYLOAD_BYTES {
        return Err(ValidationError::new(
            "payload",
            Problem::TooLong {
                max: MAX_PAYLOAD_BYTES,
                actual: size,
            },
        ));
    }
    Ok(())
}

/// Checks a batch to be stored: at most [`MAX_BATCH_ITEMS`], every item valid, no id twice.
/// A backend calls this before writing anything, so an invalid batch stores nothing.
///
/// ```
/// use memory_core::{validate_batch, Episode, ErrorKind, TaskContext, TaskType};
///
/// let ep = Episode::new(TaskType::Testing, "run tests", TaskContext::new("cli"));
/// assert!(validate_batch(&[ep.clone()]).is_ok());
/// let err = validate_batch(&[ep.clone(), ep]).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// ```
pub fn validate_batch<E: Entity>(items: &[E]) -> Result<(), StorageError> {
    max_items("batch", items.len(), MAX_BATCH_ITEMS)?;
    let mut seen = HashSet::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        item.validate().map_err(|e| e.at(&format!("batch[{i}]")))?;
        if !seen.insert(item.id()) {
            return Err(
                ValidationError::new("batch", Problem::Duplicate(item.id().to_string())).into(),
            );
        }
    }
    Ok(())
}

/// Checks the `limit` of a listing (`list_patterns`, `list_heuristics`): 1 to
/// [`MAX_QUERY_LIMIT`](crate::limits::MAX_QUERY_LIMIT).
///
/// ```
/// assert!(memory_core::validate_list_limit(100).is_ok());
/// assert!(memory_core::validate_list_limit(0).is_err());
/// ```
pub fn validate_list_limit(limit: usize) -> Result<(), StorageError> {
    let max = crate::limits::MAX_QUERY_LIMIT;
    if limit == 0 || limit > max {
        return Err(ValidationError::new(
            "limit",
            Problem::OutOfRange {
                min: 1.0,
                max: max as f64,
                actual: limit as f64,
            },
        )
        .into());
    }
    Ok(())
}

/// Checks the ids of a batch read or delete: at most [`MAX_BATCH_ITEMS`]; with `unique`, no id
/// twice (a delete naming an id twice is a caller bug, not a request).
pub fn validate_ids<I: Hash + Eq + ToString>(ids: &[I], unique: bool) -> Result<(), StorageError> {
    max_items("ids", ids.len(), MAX_BATCH_ITEMS)?;
    if unique {
        let mut seen = HashSet::with_capacity(ids.len());
        for id in ids {
            if !seen.insert(id) {
                return Err(ValidationError::new("ids", Problem::Duplicate(id.to_string())).into());
            }
        }
    }
    Ok(())
}
