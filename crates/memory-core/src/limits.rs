//! Documented input limits. Every backend enforces the same ones (through
//! [`Entity::validate`](crate::Entity::validate) and the query validators), so an item that
//! one backend accepts, every backend accepts.

/// Longest episode description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;
/// Longest short text (domain, language, framework, tool, action, pattern condition), in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest free text (step output, error message, verdict, reflection item), in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest tag, in bytes. Tags must not be empty.
pub const MAX_TAG_BYTES: usize = 64;
/// Most tags on one item (and in one query).
pub const MAX_TAGS: usize = 64;
/// Most execution steps in one episode.
pub const MAX_STEPS_PER_EPISODE: usize = 1_000;
/// Most entries in one metadata map (and metadata filters in one query).
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY_BYTES: usize = 128;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE_BYTES: usize = 4 * 1024;
/// Longest JSON text of one step's parameters, in bytes.
pub const MAX_PARAMETERS_BYTES: usize = 64 * 1024;
/// Most entries in any other list (linked ids, reflection items, pattern steps, evidence).
pub const MAX_LIST_ITEMS: usize = 1_000;
/// Largest encoded item (the stored payload), in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;
/// Most items or ids in one batch call.
pub const MAX_BATCH_ITEMS: usize = 10_000;
/// Largest `limit` of one query.
pub const MAX_QUERY_LIMIT: usize = 10_000;
/// The `limit` a query has unless one is set.
pub const DEFAULT_QUERY_LIMIT: usize = 100;
