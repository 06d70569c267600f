//! [`Timestamp`]: the one time type stored and queried by every backend.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A point in time with microsecond precision, stored as microseconds since the Unix epoch.
///
/// Backends store and compare the integer, so ordering and range filters behave the same
/// everywhere and a value round-trips exactly (a `DateTime` with nanoseconds would not).
/// Binary formats encode it as an `i64`; human-readable formats (JSON) as RFC 3339.
///
/// ```
/// use memory_core::Timestamp;
///
/// let t = Timestamp::from_micros(1_700_000_000_000_000);
/// assert_eq!(t.to_string(), "2023-11-14T22:13:20.000000Z");
/// assert!(Timestamp::now() > t);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The current wall-clock time, truncated to microseconds.
    pub fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(i64::try_from(after.as_micros()).unwrap_or(i64::MAX)),
            Err(before) => {
                Timestamp(i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m))
            }
        }
    }

    /// A timestamp from microseconds since the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Converts from a `chrono` UTC time, dropping sub-microsecond precision.
    pub fn from_datetime(time: DateTime<Utc>) -> Self {
        Timestamp(time.timestamp_micros())
    }

    /// Converts to a `chrono` UTC time. Every `i64` microsecond count is inside chrono's
    /// range except the extreme ~30,000 years at each end, which saturate.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or(if self.0 < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    }

    /// This timestamp moved by `micros` (saturating).
    pub const fn plus_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(time: DateTime<Utc>) -> Self {
        Timestamp::from_datetime(time)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        )
    }
}

/// Reads an RFC 3339 time (`2023-11-14T22:13:20Z`, any offset), as JSON does.
///
/// ```
/// use memory_core::Timestamp;
///
/// let t: Timestamp = "2023-11-14T22:13:20Z".parse().unwrap();
/// assert_eq!(t, Timestamp::from_micros(1_700_000_000_000_000));
/// assert!("yesterday".parse::<Timestamp>().is_err());
/// ```
impl std::str::FromStr for Timestamp {
    type Err = chrono::ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s).map(|t| Timestamp::from_datetime(t.with_timezone(&Utc)))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Rfc3339;
        impl Visitor<'_> for Rfc3339 {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or microseconds since the Unix epoch")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp).map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Rfc3339)
        } else {
            i64::deserialize(deserializer).map(Timestamp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_rfc3339_and_round_trips() {
        let t = Timestamp::from_micros(1_700_000_000_123_456);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20.123456Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert_eq!(
            serde_json::from_str::<Timestamp>("1700000000123456").unwrap(),
            t
        );
    }

    #[test]
    fn datetime_conversion_truncates_to_micros() {
        let dt = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let t = Timestamp::from(dt);
        assert_eq!(t.as_micros(), 1_700_000_000_123_456);
        assert_eq!(t.to_datetime().timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn extremes_saturate_instead_of_panicking() {
        assert_eq!(
            Timestamp::from_micros(i64::MAX).to_datetime(),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            Timestamp::from_micros(i64::MIN).to_datetime(),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(
            Timestamp::from_micros(i64::MAX).plus_micros(1).as_micros(),
            i64::MAX
        );
    }
}
