//! Raw libsql, written the way a careful user would write it by hand (one reused prepared
//! statement per shape, one transaction per batch): the baseline every libSQL figure is
//! compared with in the same run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use libsql::{Connection, Database, Statement, Value};
use memory_core::text::Searchable;
use memory_core::{Episode, EpisodeId};
use memory_storage_turso::TursoConfig;
use memory_storage_turso::testing::{decode_payload, encode_payload};

/// The prepared statements of [`Raw::query_with`].
pub struct QueryStatements {
    newest: Statement,
    since: Statement,
}

/// Raw libsql on one connection, no pool and no statement cache of ours.
pub struct Raw {
    _db: Database,
    /// The one connection, for baselines that need statements of their own.
    pub conn: Connection,
    config: TursoConfig,
}

impl Raw {
    /// A connection to the local file at `path` (whose schema a store created), configured
    /// as the store configures its connections by default (pragmas and page cache).
    pub async fn local(path: &Path) -> anyhow::Result<Raw> {
        let db = libsql::Builder::new_local(path).build().await?;
        let conn = db.connect()?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute("PRAGMA foreign_keys = ON", ()).await?;
        conn.execute("PRAGMA synchronous = NORMAL", ()).await?;
        let config = TursoConfig::local(path);
        conn.execute(
            &format!("PRAGMA cache_size = -{}", config.page_cache_kib),
            (),
        )
        .await?;
        // Answers with the size it set: a query, not an execute.
        let mmap = u64::from(config.mmap_mib) * 1024 * 1024;
        conn.query(&format!("PRAGMA mmap_size = {mmap}"), ())
            .await?;
        Ok(Raw {
            _db: db,
            conn,
            config,
        })
    }

    /// A connection to the sqld at `url`.
    pub async fn remote(url: &str) -> anyhow::Result<Raw> {
        let db = libsql::Builder::new_remote(url.to_string(), String::new())
            .build()
            .await?;
        let conn = db.connect()?;
        Ok(Raw {
            _db: db,
            conn,
            config: TursoConfig::remote(url, None),
        })
    }

    /// Deletes every episode (their tags and metadata follow by cascade).
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.conn.execute("DELETE FROM episodes", ()).await?;
        Ok(())
    }

    /// Inserts `episodes` as a hand-written loader would: one transaction, one prepared
    /// single-row insert per table, reused for every row, and the episodes' words in the
    /// full-text index (what the store writes too).
    pub async fn insert_episodes(&self, episodes: &[Episode]) -> anyhow::Result<()> {
        self.insert_episodes_with(episodes, true).await
    }

    /// [`insert_episodes`](Self::insert_episodes) leaving the full-text index out when
    /// `text` is false: what the index costs, measured beside it.
    pub async fn insert_episodes_with(
        &self,
        episodes: &[Episode],
        text: bool,
    ) -> anyhow::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(libsql::TransactionBehavior::Immediate)
            .await?;
        let insert = tx
            .prepare(
                "INSERT INTO episodes (id, start_time, domain, task_type, outcome, encoding, payload) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .await?;
        let tag = tx
            .prepare("INSERT INTO episode_tags (tag, episode_id) VALUES (?, ?)")
            .await?;
        let meta = tx
            .prepare("INSERT INTO episode_metadata (key, value, episode_id) VALUES (?, ?, ?)")
            .await?;
        // The same full-text index the store keeps: a key per item, its words in FTS5.
        let text_key = tx
            .prepare(
                "INSERT INTO episode_text_keys (item_id) VALUES (?) \
                 ON CONFLICT (item_id) DO NOTHING",
            )
            .await?;
        let words = tx
            .prepare(
                "INSERT OR REPLACE INTO episode_text (rowid, body) \
                 SELECT key, ? FROM episode_text_keys WHERE item_id = ?",
            )
            .await?;
        for episode in episodes {
            let (encoding, payload) = encode_payload(episode, &self.config)?;
            let id = Value::Blob(episode.id.as_bytes().to_vec());
            insert
                .execute(vec![
                    id.clone(),
                    Value::Integer(episode.start_time.as_micros()),
                    Value::Text(episode.context.domain.clone()),
                    Value::Text(episode.task_type.as_str().to_string()),
                    episode
                        .outcome_kind()
                        .map_or(Value::Null, |o| Value::Text(o.as_str().to_string())),
                    Value::Integer(encoding),
                    Value::Blob(payload),
                ])
                .await?;
            insert.reset();
            if text {
                text_key.execute(vec![id.clone()]).await?;
                text_key.reset();
                words
                    .execute(vec![Value::Text(episode.indexed_text()), id.clone()])
                    .await?;
                words.reset();
            }
            for t in &episode.tags {
                tag.execute(vec![Value::Text(t.clone()), id.clone()])
                    .await?;
                tag.reset();
            }
            for (k, v) in &episode.metadata {
                meta.execute(vec![
                    Value::Text(k.clone()),
                    Value::Text(v.clone()),
                    id.clone(),
                ])
                .await?;
                meta.reset();
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The statement a raw lookup by id uses.
    pub async fn lookup_statement(&self) -> anyhow::Result<Statement> {
        Ok(self
            .conn
            .prepare("SELECT encoding, payload FROM episodes WHERE id = ?")
            .await?)
    }

    /// Looks `id` up with `stmt` (from [`lookup_statement`](Self::lookup_statement)),
    /// decoding the payload as the store does.
    pub async fn get_with(&self, stmt: &Statement, id: EpisodeId) -> anyhow::Result<Arc<Episode>> {
        let result = async {
            let mut rows = stmt.query([id.as_bytes().to_vec()]).await?;
            let row = rows.next().await?.context("no such episode")?;
            let encoding: i64 = row.get(0)?;
            let bytes: Vec<u8> = row.get(1)?;
            let episode: Episode = decode_payload(encoding, &bytes, format_args!("episode"))?;
            Ok(Arc::new(episode))
        }
        .await;
        stmt.reset();
        result
    }

    /// The two statements a raw domain query uses: the store's own SQL for the newest of a
    /// domain, and for the newest of a domain since a time (so both sides run one plan).
    pub async fn query_statements(&self) -> anyhow::Result<QueryStatements> {
        const SELECT: &str = "SELECT e.id, e.encoding, e.payload FROM episodes e WHERE 1 = 1";
        const ORDER: &str = " ORDER BY e.start_time DESC, e.id DESC LIMIT ?";
        Ok(QueryStatements {
            newest: self
                .conn
                .prepare(&format!("{SELECT} AND e.domain = ?{ORDER}"))
                .await?,
            since: self
                .conn
                .prepare(&format!(
                    "{SELECT} AND e.start_time >= ? AND e.domain = ?{ORDER}"
                ))
                .await?,
        })
    }

    /// Runs `query` (a domain, optionally a start time, and a limit: the agent workload's
    /// shapes) with `stmts`, asking one row more than the limit as the store does and
    /// decoding every row.
    pub async fn query_with(
        &self,
        stmts: &QueryStatements,
        query: &memory_core::EpisodeQuery,
    ) -> anyhow::Result<Vec<Arc<Episode>>> {
        let domain = query.domain.clone().context("a raw query needs a domain")?;
        let limit = query.limit as i64 + 1;
        let (stmt, params): (&Statement, Vec<Value>) = match query.since {
            None => (
                &stmts.newest,
                vec![Value::Text(domain), Value::Integer(limit)],
            ),
            Some(since) => (
                &stmts.since,
                vec![
                    Value::Integer(since.as_micros()),
                    Value::Text(domain),
                    Value::Integer(limit),
                ],
            ),
        };
        let result = async {
            let mut rows = stmt.query(params).await?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().await? {
                let encoding: i64 = row.get(1)?;
                let bytes: Vec<u8> = row.get(2)?;
                let episode: Episode = decode_payload(encoding, &bytes, format_args!("episode"))?;
                out.push(Arc::new(episode));
            }
            anyhow::Ok(out)
        }
        .await;
        stmt.reset();
        result
    }

    /// Looks `id` up preparing the statement first, as code without a statement cache does.
    pub async fn get_preparing(&self, id: EpisodeId) -> anyhow::Result<Arc<Episode>> {
        let stmt = self.lookup_statement().await?;
        self.get_with(&stmt, id).await
    }
}
