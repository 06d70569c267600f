//! Serde adapter for JSON values inside binary payloads.
//!
//! `serde_json::Value` deserializes through `deserialize_any`, which a non-self-describing
//! format such as postcard cannot offer, so binary formats carry the value as JSON text.
//! Human-readable formats carry the value itself.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Problem, ValidationError};

/// Deepest nesting accepted in a JSON value (serde_json's parser refuses more than 128).
pub const MAX_JSON_DEPTH: usize = 64;

pub(crate) fn serialize<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        value.serialize(serializer)
    } else {
        serializer.collect_str(value)
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    if deserializer.is_human_readable() {
        Value::deserialize(deserializer)
    } else {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// Checks nesting depth and the length of the JSON text.
pub(crate) fn validate(
    field: &str,
    value: &Value,
    max_bytes: usize,
) -> Result<(), ValidationError> {
    if exceeds_depth(value, MAX_JSON_DEPTH) {
        return Err(ValidationError::new(
            field,
            Problem::Invalid(format!("JSON nesting deeper than {MAX_JSON_DEPTH}")),
        ));
    }
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, value)
        .map_err(|e| ValidationError::new(field, Problem::Invalid(e.to_string())))?;
    if counter.0 > max_bytes {
        return Err(ValidationError::new(
            field,
            Problem::TooLong {
                max: max_bytes,
                actual: counter.0,
            },
        ));
    }
    Ok(())
}

/// Recursion stops at `max + 1` levels, so a hostile value cannot exhaust the stack here.
fn exceeds_depth(value: &Value, remaining: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return false,
    };
    if remaining == 0 {
        return true;
    }
    children
        .into_iter()
        .any(|child| exceeds_depth(child, remaining - 1))
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_limit() {
        let mut deep = json!(1);
        for _ in 0..MAX_JSON_DEPTH {
            deep = json!([deep]);
        }
        assert!(validate("p", &deep, 1 << 20).is_ok());
        let deeper = json!([deep]);
        assert!(validate("p", &deeper, 1 << 20).is_err());
    }

    #[test]
    fn size_limit_counts_json_text() {
        let v = json!({"k": "0123456789"});
        let len = v.to_string().len();
        assert!(validate("p", &v, len).is_ok());
        assert!(matches!(
            validate("p", &v, len - 1).unwrap_err().problem(),
            Problem::TooLong { .. }
        ));
    }
}
