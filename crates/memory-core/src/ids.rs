//! Typed identifiers: an [`EpisodeId`] can never be passed where a [`PatternId`] is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUID v7), so ids created later sort later.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The id built from 16 raw bytes (as stored by binary backends).
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 raw bytes; their byte order is the id's sort order.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// Identifies an [`Episode`](crate::Episode).
    ///
    /// ```
    /// use memory_core::EpisodeId;
    /// let a = EpisodeId::new();
    /// let b: EpisodeId = a.to_string().parse().unwrap();
    /// assert_eq!(a, b);
    /// ```
    EpisodeId
);
typed_id!(
    /// Identifies a [`Pattern`](crate::Pattern).
    PatternId
);
typed_id!(
    /// Identifies a [`Heuristic`](crate::Heuristic).
    HeuristicId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_time_ordered_and_unique() {
        let a = EpisodeId::new();
        let b = EpisodeId::new();
        assert!(a < b);
        assert_eq!(format!("{a:?}"), format!("EpisodeId({a})"));
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!("not-a-uuid".parse::<PatternId>().is_err());
    }
}
