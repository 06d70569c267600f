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
    let Sql {
        text: filter,
        mut params,
    } = episode_filter(query);
    let mut text =
        format!("SELECT e.id, e.encoding, e.payload FROM episodes e WHERE 1 = 1{filter}");
    if let Some(cursor) = query.cursor {
        text.push_str(" AND (e.start_time, e.id) < (?, ?)");
        params.push(Value::Integer(cursor.start_time().as_micros()));
        params.push(Value::Blob(cursor.id().as_bytes().to_vec()));
    }
    text.push_str(" ORDER BY e.start_time DESC, e.id DESC LIMIT ?");
    params.push(Value::Integer(query.limit as i64 + 1));
    Sql { text, params }
}

/// The `AND ...` terms of `query`'s filters (not its cursor or limit) on `episodes e`.
pub(crate) fn episode_filter(query: &EpisodeQuery) -> Sql {
    let mut text = String::new();
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
    Sql { text, params }
}

/// The patterns `query` asks for, best success rate first.
pub(crate) fn patterns(query: &PatternQuery) -> Sql {
    let Sql {
        text: filter,
        mut params,
    } = pattern_filter(query);
    let text = format!(
        "SELECT e.id, e.encoding, e.payload FROM patterns e WHERE 1 = 1{filter} \
         ORDER BY e.success_rate DESC, e.id ASC LIMIT ?"
    );
    params.push(Value::Integer(query.limit as i64));
    Sql { text, params }
}

/// The `AND ...` terms of `query`'s filters (not its limit) on `patterns e`.
pub(crate) fn pattern_filter(query: &PatternQuery) -> Sql {
    let mut text = String::new();
    let mut params = Vec::new();
    if let Some(kind) = query.kind {
        text.push_str(" AND e.kind = ?");
        params.push(Value::Text(kind.as_str().to_string()));
    }
    if let Some(domain) = &query.domain {
        text.push_str(" AND e.domain = ?");
        params.push(Value::Text(domain.clone()));
    }
    if let Some(rate) = query.min_success_rate {
        text.push_str(" AND e.success_rate >= ?");
        params.push(Value::Real(rate));
    }
    Sql { text, params }
}

/// One statement answering both `first` and `second`, complete `SELECT`s whose placeholders
/// are numbered (`?N`), `second`'s after `first`'s: the rows of each, one after the other,
/// each led by the number of its part (0 or 1). A hybrid search asks for its two lists
/// this way, in one round trip to a server.
pub(crate) fn both(first: Sql, second: Sql) -> Sql {
    let text = format!(
        "SELECT 0, * FROM ({}) UNION ALL SELECT 1, * FROM ({})",
        first.text, second.text
    );
    let mut params = first.params;
    params.extend(second.params);
    Sql { text, params }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory_core::{OutcomeKind, PatternKind, TaskType, Timestamp};

    /// Every table access in `sql`'s plan goes through an index (no bare `SCAN table`).
    async fn assert_indexed(conn: &libsql::Connection, sql: &Sql) {
        let mut rows = conn
            .query(
                &format!("EXPLAIN QUERY PLAN {}", sql.text),
                sql.params.clone(),
            )
            .await
            .unwrap();
        let mut plan = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            plan.push(row.get::<String>(3).unwrap());
        }
        assert!(!plan.is_empty(), "no plan for `{}`", sql.text);
        for line in &plan {
            let scan = line.starts_with("SCAN ") && !line.contains("USING");
            assert!(!scan, "full scan in plan {plan:?} of `{}`", sql.text);
        }
    }

    #[tokio::test]
    async fn every_query_uses_an_index() {
        let db = libsql::Builder::new_local(":memory:")
            .build()
            .await
            .unwrap();
        let conn = db.connect().unwrap();
        crate::schema::migrate(&conn).await.unwrap();
        let t = Timestamp::from_micros(1_000);
        let cursor = memory_core::EpisodeCursor::new(t, memory_core::EpisodeId::new());
        let episode_queries = [
            EpisodeQuery::new(),
            EpisodeQuery::new().since(t),
            EpisodeQuery::new().since(t).until(t),
            EpisodeQuery::new().domain("web"),
            EpisodeQuery::new().domain("web").since(t).until(t),
            EpisodeQuery::new().task_type(TaskType::Testing),
            EpisodeQuery::new().outcome(OutcomeKind::Success),
            EpisodeQuery::new().tag("a").tag("b"),
            EpisodeQuery::new().metadata("k", "v"),
            EpisodeQuery::new()
                .domain("web")
                .tag("a")
                .metadata("k", "v")
                .after(cursor),
            EpisodeQuery::new().after(cursor),
        ];
        for query in &episode_queries {
            assert_indexed(&conn, &episodes(query)).await;
        }
        for query in [
            PatternQuery::new(),
            PatternQuery::new().kind(PatternKind::ToolSequence),
            PatternQuery::new().domain("web"),
            PatternQuery::new().min_success_rate(0.5),
            PatternQuery::new()
                .kind(PatternKind::ErrorRecovery)
                .domain("web")
                .min_success_rate(0.5),
        ] {
            assert_indexed(&conn, &patterns(&query)).await;
        }
        // The id lookups, deletes, counts and side-table rewrites.
        let id = || Value::Blob(vec![0; 16]);
        for (text, params) in [
            (
                crate::table::select_by_ids_sql::<memory_core::Episode>(2),
                vec![id(), id()],
            ),
            (
                crate::table::existing_ids_sql::<memory_core::Pattern>(1),
                vec![id()],
            ),
            (
                crate::table::delete_sql::<memory_core::Heuristic>(1),
                vec![id()],
            ),
            (crate::table::delete_side_sql("episode_tags", 1), vec![id()]),
            (
                crate::table::delete_side_sql("episode_metadata", 1),
                vec![id()],
            ),
            (crate::table::count_sql::<memory_core::Episode>(), vec![]),
        ] {
            assert_indexed(&conn, &Sql { text, params }).await;
        }
    }

    #[test]
    fn both_parts_rows_come_from_one_statement() {
        let first = Sql {
            text: "SELECT a FROM t WHERE a = ?1".into(),
            params: vec![Value::Integer(1)],
        };
        let second = Sql {
            text: "SELECT a FROM u WHERE a = ?2".into(),
            params: vec![Value::Integer(2)],
        };
        let sql = both(first, second);
        assert_eq!(
            sql.text,
            "SELECT 0, * FROM (SELECT a FROM t WHERE a = ?1) UNION ALL \
             SELECT 1, * FROM (SELECT a FROM u WHERE a = ?2)"
        );
        assert_eq!(sql.params.len(), 2);
    }
}
