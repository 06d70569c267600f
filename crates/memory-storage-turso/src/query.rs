//! SQL for the trait's queries: fixed clause fragments chosen by which filters are set,
//! values always as parameters. Each filter combination is its own statement shape (and
//! statement-cache entry), so SQLite can pick the index that fits it.

use libsql::Value;
use memory_core::{EpisodeQuery, PatternQuery};

/// A statement and its parameters.
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) params: Vec<Value>,
}

/// The page `query` asks for, fetching one row more than the limit to know whether another
/// page follows.
pub(crate) fn episodes(query: &EpisodeQuery) -> Sql {
    let mut text = String::from("SELECT e.id, e.encoding, e.payload FROM episodes e WHERE 1 = 1");
    let mut params = Vec::new();
    if let Some(since) = query.since {
        text.push_str(" AND e.start_time >= ?");
        params.push(Value::Integer(since.as_micros()));
    }
    if let Some(until) = query.until {
        text.push_str(" AND e.start_time < ?");
        params.push(Value::Integer(until.as_micros()));
    }
    if let Some(domain) = &query.domain {
        text.push_str(" AND e.domain = ?");
        params.push(Value::Text(domain.clone()));
    }
    if let Some(task_type) = query.task_type {
        text.push_str(" AND e.task_type = ?");
        params.push(Value::Text(task_type.as_str().to_string()));
    }
    if let Some(outcome) = query.outcome {
        text.push_str(" AND e.outcome = ?");
        params.push(Value::Text(outcome.as_str().to_string()));
    }
    for tag in &query.tags {
        text.push_str(" AND e.id IN (SELECT episode_id FROM episode_tags WHERE tag = ?)");
        params.push(Value::Text(tag.clone()));
    }
    for (key, value) in &query.metadata {
        text.push_str(
            " AND e.id IN (SELECT episode_id FROM episode_metadata WHERE key = ? AND value = ?)",
        );
        params.push(Value::Text(key.clone()));
        params.push(Value::Text(value.clone()));
    }
    if let Some(cursor) = query.cursor {
        text.push_str(" AND (e.start_time, e.id) < (?, ?)");
        params.push(Value::Integer(cursor.start_time().as_micros()));
        params.push(Value::Blob(cursor.id().as_bytes().to_vec()));
    }
    text.push_str(" ORDER BY e.start_time DESC, e.id DESC LIMIT ?");
    params.push(Value::Integer(query.limit as i64 + 1));
    Sql { text, params }
}

/// The patterns `query` asks for, best success rate first.
pub(crate) fn patterns(query: &PatternQuery) -> Sql {
    let mut text = String::from("SELECT id, encoding, payload FROM patterns WHERE 1 = 1");
    let mut params = Vec::new();
    if let Some(kind) = query.kind {
        text.push_str(" AND kind = ?");
        params.push(Value::Text(kind.as_str().to_string()));
    }
    if let Some(domain) = &query.domain {
        text.push_str(" AND domain = ?");
        params.push(Value::Text(domain.clone()));
    }
    if let Some(rate) = query.min_success_rate {
        text.push_str(" AND success_rate >= ?");
        params.push(Value::Real(rate));
    }
    text.push_str(" ORDER BY success_rate DESC, id ASC LIMIT ?");
    params.push(Value::Integer(query.limit as i64));
    Sql { text, params }
}
