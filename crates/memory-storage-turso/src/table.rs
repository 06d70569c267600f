//! How each entity maps onto its table: the filterable columns, their values, and the SQL
//! shapes (built only from these constant names and `?` placeholders; caller data always
//! travels as parameters).

use libsql::Value;
use memory_core::{Entity, Episode, EpisodeId, Heuristic, HeuristicId, Pattern, PatternId};

/// An entity stored in a table of its own.
pub(crate) trait Table: Entity + memory_core::feed::Changed {
    /// The table's name.
    const TABLE: &'static str;
    /// Every column, the id first and `encoding, payload` last.
    const COLUMNS: &'static [&'static str];
    /// Side tables holding rows keyed by this item's id (`episode_id`), rewritten on store.
    const SIDE_TABLES: &'static [&'static str] = &[];
    /// `encoding, payload` of one item by id: the single get, the commonest read, written
    /// out so that it builds no SQL text per call (checked against the table in a test).
    const SELECT_ONE: &'static str;
    /// The table of this kind's embeddings, if it has them (`crate::vectors`).
    const VECTORS: Option<&'static str> = None;
    /// This kind's full-text index and its key table, if it has them (`crate::text_index`).
    const TEXT: Option<(&'static str, &'static str)> = None;
    /// The view searchable items are written through (with their words), if any.
    const WRITE_VIEW: Option<&'static str> = None;

    /// The 16 id bytes.
    fn id_bytes(id: Self::Id) -> [u8; 16];

    /// The id from stored bytes.
    fn id_from(bytes: [u8; 16]) -> Self::Id;

    /// The values of the columns between the id and the payload.
    fn index_values(&self) -> Vec<Value>;

    /// The words a full-text index holds for the item (`None`: the kind has no index).
    fn indexed_text(&self) -> Option<String>;

    /// The side-table rows (tags, metadata pairs) of an item, owned (they go into a
    /// write's rows); none but episodes have them.
    fn side_rows(&self) -> SideRows {
        SideRows::default()
    }
}

/// Tags and metadata pairs of one episode.
#[derive(Default)]
pub(crate) struct SideRows {
    pub(crate) tags: Vec<String>,
    pub(crate) metadata: Vec<(String, String)>,
}

impl Table for Episode {
    const TABLE: &'static str = "episodes";
    const SELECT_ONE: &'static str = "SELECT encoding, payload FROM episodes WHERE id = ?";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "start_time",
        "domain",
        "task_type",
        "outcome",
        "encoding",
        "payload",
    ];
    const SIDE_TABLES: &'static [&'static str] = &["episode_tags", "episode_metadata"];
    const VECTORS: Option<&'static str> = Some("episode_vectors");
    const TEXT: Option<(&'static str, &'static str)> = Some(("episode_text", "episode_text_keys"));
    const WRITE_VIEW: Option<&'static str> = Some("episodes_in");

    fn id_bytes(id: EpisodeId) -> [u8; 16] {
        *id.as_bytes()
    }

    fn id_from(bytes: [u8; 16]) -> EpisodeId {
        EpisodeId::from_bytes(bytes)
    }

    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::Integer(self.start_time.as_micros()),
            Value::Text(self.context.domain.clone()),
            Value::Text(self.task_type.as_str().to_string()),
            self.outcome_kind()
                .map_or(Value::Null, |o| Value::Text(o.as_str().to_string())),
        ]
    }

    fn indexed_text(&self) -> Option<String> {
        Some(memory_core::text::Searchable::indexed_text(self))
    }

    fn side_rows(&self) -> SideRows {
        SideRows {
            tags: self.tags.clone(),
            metadata: self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

impl Table for Pattern {
    const TABLE: &'static str = "patterns";
    const SELECT_ONE: &'static str = "SELECT encoding, payload FROM patterns WHERE id = ?";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "kind",
        "domain",
        "success_rate",
        "encoding",
        "payload",
    ];
    const VECTORS: Option<&'static str> = Some("pattern_vectors");
    const TEXT: Option<(&'static str, &'static str)> = Some(("pattern_text", "pattern_text_keys"));
    const WRITE_VIEW: Option<&'static str> = Some("patterns_in");

    fn id_bytes(id: PatternId) -> [u8; 16] {
        *id.as_bytes()
    }

    fn id_from(bytes: [u8; 16]) -> PatternId {
        PatternId::from_bytes(bytes)
    }

    fn indexed_text(&self) -> Option<String> {
        Some(memory_core::text::Searchable::indexed_text(self))
    }

    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::Text(self.kind().as_str().to_string()),
            Value::Text(self.domain.clone()),
            Value::Real(self.success_rate),
        ]
    }
}

impl Table for Heuristic {
    const TABLE: &'static str = "heuristics";
    const SELECT_ONE: &'static str = "SELECT encoding, payload FROM heuristics WHERE id = ?";
    const COLUMNS: &'static [&'static str] = &["id", "encoding", "payload"];

    fn id_bytes(id: HeuristicId) -> [u8; 16] {
        *id.as_bytes()
    }

    fn id_from(bytes: [u8; 16]) -> HeuristicId {
        HeuristicId::from_bytes(bytes)
    }

    fn index_values(&self) -> Vec<Value> {
        Vec::new()
    }

    fn indexed_text(&self) -> Option<String> {
        None
    }
}

/// `?, ?, ?` with `n` placeholders.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(?, ?), (?, ?)`: `rows` groups of `width` placeholders.
pub(crate) fn row_groups(rows: usize, width: usize) -> String {
    vec![format!("({})", placeholders(width)); rows].join(", ")
}

/// A multi-row insert-or-replace of `rows` items of `E`: for a kind with a full-text index,
/// `through_view`, into its view (`episodes_in`), whose trigger upserts each row and
/// indexes its words (the last value of each row); else into the table alone.
pub(crate) fn upsert_sql<E: Table>(rows: usize, through_view: bool) -> String {
    if let Some(view) = E::WRITE_VIEW.filter(|_| through_view) {
        let mut columns = E::COLUMNS.to_vec();
        columns.push("body");
        return format!(
            "INSERT INTO {view} ({}) VALUES {}",
            columns.join(", "),
            row_groups(rows, columns.len())
        );
    }
    let columns = E::COLUMNS;
    let updates: Vec<String> = columns[1..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT (id) DO UPDATE SET {}",
        E::TABLE,
        columns.join(", "),
        row_groups(rows, columns.len()),
        updates.join(", ")
    )
}

/// Reads `rows` items of `E` by id.
pub(crate) fn select_by_ids_sql<E: Table>(rows: usize) -> String {
    format!(
        "SELECT id, encoding, payload FROM {} WHERE id IN ({})",
        E::TABLE,
        placeholders(rows)
    )
}

/// Finds which of `rows` ids exist.
pub(crate) fn existing_ids_sql<E: Table>(rows: usize) -> String {
    format!(
        "SELECT id FROM {} WHERE id IN ({})",
        E::TABLE,
        placeholders(rows)
    )
}

/// Deletes `rows` items of `E` by id (side rows follow by cascade).
pub(crate) fn delete_sql<E: Table>(rows: usize) -> String {
    format!(
        "DELETE FROM {} WHERE id IN ({})",
        E::TABLE,
        placeholders(rows)
    )
}

/// Counts the items of `E`.
pub(crate) fn count_sql<E: Table>() -> String {
    format!("SELECT COUNT(*) FROM {}", E::TABLE)
}

/// Removes the side rows of `rows` episodes before they are rewritten.
pub(crate) fn delete_side_sql(table: &str, rows: usize) -> String {
    format!(
        "DELETE FROM {table} WHERE episode_id IN ({})",
        placeholders(rows)
    )
}

/// Inserts `rows` tag rows `(tag, episode_id)`.
pub(crate) fn insert_tags_sql(rows: usize) -> String {
    format!(
        "INSERT INTO episode_tags (tag, episode_id) VALUES {}",
        row_groups(rows, 2)
    )
}

/// Inserts `rows` metadata rows `(key, value, episode_id)`.
pub(crate) fn insert_metadata_sql(rows: usize) -> String {
    format!(
        "INSERT INTO episode_metadata (key, value, episode_id) VALUES {}",
        row_groups(rows, 3)
    )
}

/// Splits `total` items into statement-sized chunks: full chunks of `max`, then the rest in
/// powers of two, so that a handful of statement shapes serve every batch size (and stay in
/// the statement cache).
pub(crate) fn chunks(total: usize, max: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while total - start >= max {
        out.push(start..start + max);
        start += max;
    }
    let mut size = max.next_power_of_two();
    while start < total {
        while size > total - start {
            size /= 2;
        }
        out.push(start..start + size);
        start += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_everything_with_few_shapes() {
        for total in [0, 1, 2, 3, 63, 64, 65, 100, 1_000, 10_000] {
            let parts = chunks(total, 64);
            assert_eq!(parts.iter().map(|r| r.len()).sum::<usize>(), total);
            let mut next = 0;
            for part in &parts {
                assert_eq!(part.start, next);
                assert!(part.len() <= 64 && part.len().is_power_of_two() || part.len() == 64);
                next = part.end;
            }
        }
        assert_eq!(chunks(100, 64).len(), 3, "64 + 32 + 4");
    }

    #[test]
    fn single_selects_name_their_own_table() {
        fn check<E: Table>() {
            assert_eq!(
                E::SELECT_ONE,
                format!("SELECT encoding, payload FROM {} WHERE id = ?", E::TABLE)
            );
        }
        check::<Episode>();
        check::<Pattern>();
        check::<Heuristic>();
    }

    #[test]
    fn sql_shapes() {
        assert_eq!(
            upsert_sql::<Heuristic>(2, true),
            "INSERT INTO heuristics (id, encoding, payload) VALUES (?, ?, ?), (?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET encoding = excluded.encoding, payload = excluded.payload"
        );
        assert_eq!(
            delete_sql::<Pattern>(3),
            "DELETE FROM patterns WHERE id IN (?, ?, ?)"
        );
    }
}
