//! [`Entity`]: what episodes, patterns and heuristics have in common, so that codecs, caches
//! and backends can handle all three with one piece of code.

use std::fmt::{Debug, Display};
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{EntityKind, ValidationError};

/// A stored item: it has a typed id, validates itself and is encoded by [`crate::codec`].
pub trait Entity:
    Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync + 'static
{
    /// The item's typed id.
    type Id: Copy
        + Eq
        + Ord
        + Hash
        + Debug
        + Display
        + From<uuid::Uuid>
        + Into<uuid::Uuid>
        + Send
        + Sync
        + 'static;

    /// Which kind of item this is.
    const KIND: EntityKind;

    /// The item's id.
    fn id(&self) -> Self::Id;

    /// Checks every documented limit ([`crate::limits`]), including the encoded size.
    fn validate(&self) -> Result<(), ValidationError>;

    /// The item's embedding, if it has one (heuristics never do).
    fn embedding(&self) -> Option<&crate::Embedding>;

    /// Decodes the postcard body of a format-1 payload (see [`crate::codec`]): the item and
    /// the bytes after it.
    #[doc(hidden)]
    fn decode_format_1(body: &[u8]) -> Result<(Self, &[u8]), postcard::Error>;
}
