//! `memory`: look inside an episodic-memory store, export and import it, forget by policy.
//! Exit status: 0 done; 1 the store or a file failed; 2 bad input (a usage error, a
//! malformed import line, an invalid policy).

use std::io::{BufReader, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use memory_cli::jsonl::{self, BadLine, Kinds};
use memory_cli::location::{Location, Opened};
use memory_core::retention::{self, PruneOptions, RetentionPolicy};
use memory_core::search::{Search, SearchBy};
use memory_core::{
    Embedding, EpisodeId, EpisodeQuery, HeuristicId, OutcomeKind, PatternId, PatternQuery,
    StorageBackend, StorageError, Timestamp,
};
use memory_storage_turso::CacheSettings;

#[derive(Parser)]
#[command(
    name = "memory",
    version,
    about = "Inspect, search, export, import and prune an episodic-memory store"
)]
struct Cli {
    /// The store: a path (`.redb` for redb, else a libSQL file), `redb:PATH`, `file:PATH`,
    /// or a `libsql://`/`http(s)://` URL (token from TURSO_AUTH_TOKEN). Default:
    /// TURSO_DATABASE_URL.
    #[arg(long, global = true, env = "MEMORY_STORE")]
    store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Counts per kind and per domain, the backend and the file's size.
    Stats(JsonFlag),
    /// One item by id.
    Get {
        /// The item's id.
        id: String,
        /// Which kind the id is.
        #[arg(long, value_enum, default_value = "episode")]
        kind: Kind,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Episodes matching filters, newest first.
    Query {
        #[command(flatten)]
        filter: Filter,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// The items most similar to a vector, best matching some text, or both (fused by
    /// reciprocal rank), best first with their scores.
    Search {
        /// Words to look for (every word must occur; BM25 ranks).
        #[arg(long)]
        text: Option<String>,
        /// A query embedding as a JSON array of numbers, of the store's dimension.
        #[arg(long, conflicts_with = "vector_file")]
        vector: Option<String>,
        /// A file holding the query embedding as a JSON array.
        #[arg(long)]
        vector_file: Option<std::path::PathBuf>,
        /// Episodes or patterns.
        #[arg(long, value_enum, default_value = "episode")]
        kind: Kind,
        /// How many results at most.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Only results whose cosine similarity is at least this (vector and hybrid).
        #[arg(long)]
        min_score: Option<f64>,
        #[command(flatten)]
        filter: Filter,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Everything (or the kinds given) as JSON Lines on stdout, one item per line.
    Export {
        /// Only these kinds (repeatable); default all.
        #[arg(long, value_enum)]
        kind: Vec<Kind>,
        #[command(flatten)]
        filter: Filter,
    },
    /// Stores the items of an export file (upserts, in all-or-nothing batches).
    Import {
        /// The JSON Lines file.
        file: std::path::PathBuf,
        /// Start at this line (to continue after a failure the error names).
        #[arg(long, default_value_t = 1)]
        from_line: usize,
        /// Lines per batch.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Copies every item of one store into another, empty one, then checks that both
    /// export the same (counts and a checksum).
    Migrate {
        /// The store to copy.
        #[arg(long)]
        from: String,
        /// The empty store to copy into.
        #[arg(long)]
        to: String,
    },
    /// Reads every stored item and reports those that do not decode (exit status 1 if any).
    Check(JsonFlag),
    /// Serves the store's metrics (contents, and for libSQL its pool and statement caches)
    /// in the Prometheus text format at GET /metrics, until interrupted (Ctrl-C or
    /// SIGTERM). Prints the address it listens on.
    ServeMetrics {
        /// Where to listen (loopback by default: the endpoint shows counts, never data).
        #[arg(long, default_value_t = memory_metrics::DEFAULT_ADDR)]
        addr: std::net::SocketAddr,
        /// Seconds between two reads of the store's contents.
        #[arg(long, default_value_t = 15)]
        interval_secs: u64,
    },
    /// Deletes the episodes a retention policy selects (an episode goes when it breaks
    /// every rule given).
    Prune {
        /// Episodes older than this many days.
        #[arg(long)]
        older_than_days: Option<u64>,
        /// Keep the newest N of each domain.
        #[arg(long)]
        keep_newest: Option<usize>,
        /// Episodes whose total reward is below this (unscored ones never are).
        #[arg(long)]
        below_reward: Option<f64>,
        /// Count what would go; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// The most episodes one delete transaction holds.
        #[arg(long, default_value_t = 1_000)]
        chunk: usize,
        /// How long one delete transaction should take, in milliseconds (chunks are sized
        /// to it: this bounds how long the prune holds the store's write lock at a time).
        #[arg(long, default_value_t = 20)]
        chunk_ms: u64,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Args)]
struct JsonFlag {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct Filter {
    /// Only this domain.
    #[arg(long)]
    domain: Option<String>,
    /// Only episodes that started at or after this (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only episodes that started before this (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Only this outcome (success, partial_success, failure).
    #[arg(long)]
    outcome: Option<String>,
    /// Only episodes with this tag (repeatable).
    #[arg(long)]
    tag: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    Episode,
    Pattern,
    Heuristic,
}

/// An error that is the caller's input: exit status 2.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage(message.into()).into()
}

fn time(text: &str, flag: &str) -> anyhow::Result<Timestamp> {
    text.parse()
        .map_err(|e| usage(format!("--{flag}: not an RFC 3339 time ({e}): {text}")))
}

impl Filter {
    fn query(&self) -> anyhow::Result<EpisodeQuery> {
        let mut q = EpisodeQuery::new();
        if let Some(d) = &self.domain {
            q = q.domain(d.clone());
        }
        if let Some(t) = &self.since {
            q = q.since(time(t, "since")?);
        }
        if let Some(t) = &self.until {
            q = q.until(time(t, "until")?);
        }
        if let Some(o) = &self.outcome {
            let kind: OutcomeKind = o.parse().map_err(|_| {
                usage(format!(
                    "--outcome: {o} is not success, partial_success or failure"
                ))
            })?;
            q = q.outcome(kind);
        }
        for tag in &self.tag {
            q = q.tag(tag.clone());
        }
        Ok(q)
    }
}

/// Progress on a terminal, nothing when stderr is piped: a bar with a rate and the time
/// left when the total is known, else a spinner with the count and the rate.
fn progress(what: &'static str, total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} {msg} {pos} ({per_sec})",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Every item of `store`, for a progress bar's total (none if the store cannot say).
async fn total_items(store: &dyn StorageBackend) -> Option<u64> {
    let episodes = store.count_episodes().await.ok()?;
    let patterns = store.count_patterns().await.ok()?;
    let heuristics = store.count_heuristics().await.ok()?;
    Some(episodes + patterns + heuristics)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

async fn stats(
    store: &dyn StorageBackend,
    opened: &Opened,
    location: &Location,
    json: bool,
) -> anyhow::Result<()> {
    let mut domains: std::collections::BTreeMap<String, u64> = Default::default();
    let mut query = EpisodeQuery::new().limit(jsonl::PAGE);
    loop {
        let page = store.query_episodes(&query).await?;
        for e in &page.items {
            *domains.entry(e.context.domain.clone()).or_default() += 1;
        }
        match page.next_cursor {
            Some(c) => query = query.after(c),
            None => break,
        }
    }
    let bytes = location
        .file()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    let (layout, layout_name) = match opened {
        Opened::Redb(_) => (opened.layout_version().await?, "format_version"),
        Opened::Libsql(_) => (opened.layout_version().await?, "schema_version"),
    };
    // What a cached handle on this store opens with (this command reads the store itself).
    let cache = CacheSettings::default();
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    let report = serde_json::json!({
        "backend": store.backend_name(),
        layout_name: layout,
        "episodes": store.count_episodes().await?,
        "patterns": store.count_patterns().await?,
        "heuristics": store.count_heuristics().await?,
        "episodes_by_domain": domains,
        "file_bytes": bytes,
        "cache_defaults": {
            "enabled": cache.enabled,
            "budget_bytes": cache.budget_bytes,
            "change_check_interval_secs": cache.change_check_interval.as_secs_f64(),
            "max_age_secs": secs(cache.max_age),
            "negative_ttl_secs": secs(cache.negative_ttl),
            "write_through": cache.write_through,
        },
    });
    if json {
        return print_json(&report);
    }
    println!("backend     {}", store.backend_name());
    println!("{:<11} {layout}", layout_name.replace('_', " "));
    println!("episodes    {}", report["episodes"]);
    for (domain, n) in &domains {
        println!("  {domain:<20} {n}");
    }
    println!("patterns    {}", report["patterns"]);
    println!("heuristics  {}", report["heuristics"]);
    if let Some(b) = bytes {
        println!("file        {b} bytes");
    }
    println!(
        "cache       a cached handle's defaults: {} MiB, other writers checked every {} ms{} \
         (this command reads the store itself)",
        cache.budget_bytes >> 20,
        cache.change_check_interval.as_millis(),
        if cache.enabled { "" } else { ", off" }
    );
    Ok(())
}

/// Items that do not decode: the store is damaged (exit status 1).
#[derive(Debug)]
struct Damaged(u64);

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} stored items do not decode", self.0)
    }
}

impl std::error::Error for Damaged {}

async fn check(store: &dyn StorageBackend, json: bool) -> anyhow::Result<()> {
    let bar = progress("checked", total_items(store).await);
    let report = memory_cli::check::check(store, |n| bar.set_position(n)).await;
    bar.finish_and_clear();
    let report = report?;
    if json {
        print_json(&report)?;
    } else {
        for p in &report.problems {
            println!("{} {}: {}", p.kind, p.id, p.error);
        }
        println!(
            "checked {} episodes, {} patterns, {} heuristics: {} do not decode",
            report.checked.episodes,
            report.checked.patterns,
            report.checked.heuristics,
            report.problems.len()
        );
    }
    match report.problems.len() as u64 {
        0 => Ok(()),
        n => Err(Damaged(n).into()),
    }
}

async fn get(store: &dyn StorageBackend, id: &str, kind: Kind, json: bool) -> anyhow::Result<()> {
    let bad = |_| usage(format!("{id} is not an id"));
    let found: Option<serde_json::Value> = match kind {
        Kind::Episode => {
            let id: EpisodeId = id.parse().map_err(bad)?;
            store
                .get_episode(id)
                .await?
                .map(|e| serde_json::to_value(&*e))
                .transpose()?
        }
        Kind::Pattern => {
            let id: PatternId = id.parse().map_err(bad)?;
            store
                .get_pattern(id)
                .await?
                .map(|p| serde_json::to_value(&*p))
                .transpose()?
        }
        Kind::Heuristic => {
            let id: HeuristicId = id.parse().map_err(bad)?;
            store
                .get_heuristic(id)
                .await?
                .map(|h| serde_json::to_value(&*h))
                .transpose()?
        }
    };
    match found {
        Some(value) if json => print_json(&value),
        Some(value) => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        None => Err(StorageError::not_found(
            match kind {
                Kind::Episode => memory_core::EntityKind::Episode,
                Kind::Pattern => memory_core::EntityKind::Pattern,
                Kind::Heuristic => memory_core::EntityKind::Heuristic,
            },
            id,
        )
        .into()),
    }
}

/// What `memory search` looks for.
struct Wanted {
    text: Option<String>,
    vector: Option<String>,
    vector_file: Option<std::path::PathBuf>,
    k: usize,
    min_score: Option<f64>,
}

impl Wanted {
    fn by(&self) -> anyhow::Result<SearchBy> {
        let vector = match (&self.vector, &self.vector_file) {
            (Some(text), _) => Some(embedding(text, "--vector")?),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Some(embedding(&text, "--vector-file")?)
            }
            (None, None) => None,
        };
        match (vector, self.text.clone()) {
            (Some(vector), Some(text)) => Ok(SearchBy::Hybrid { vector, text }),
            (Some(vector), None) => Ok(SearchBy::Vector(vector)),
            (None, Some(text)) => Ok(SearchBy::Text(text)),
            (None, None) => Err(usage(
                "search needs --text, --vector or --vector-file (or text and a vector)",
            )),
        }
    }

    fn search<F>(&self, filter: F) -> anyhow::Result<Search<F>> {
        Ok(Search {
            by: self.by()?,
            k: self.k,
            min_score: self.min_score,
            filter,
        })
    }
}

fn embedding(text: &str, flag: &str) -> anyhow::Result<Embedding> {
    let values: Vec<f32> = serde_json::from_str(text)
        .map_err(|e| usage(format!("{flag}: not a JSON array of numbers ({e})")))?;
    Embedding::new(values).map_err(|e| usage(format!("{flag}: {e}")))
}

async fn search(
    store: &dyn StorageBackend,
    wanted: &Wanted,
    kind: Kind,
    filter: &Filter,
    json: bool,
) -> anyhow::Result<()> {
    let rows: Vec<(f64, serde_json::Value, String)> = match kind {
        Kind::Episode => {
            let search = wanted.search(filter.query()?)?;
            search.validate().map_err(|e| usage(e.to_string()))?;
            store
                .search_episodes(&search)
                .await?
                .into_iter()
                .map(|hit| {
                    let e = &hit.item;
                    let line = format!(
                        "{}  {}  {:<12} {}",
                        e.id, e.start_time, e.context.domain, e.description
                    );
                    Ok((hit.score, serde_json::to_value(&*hit.item)?, line))
                })
                .collect::<anyhow::Result<_>>()?
        }
        Kind::Pattern => {
            if filter.since.is_some()
                || filter.until.is_some()
                || filter.outcome.is_some()
                || !filter.tag.is_empty()
            {
                return Err(usage(
                    "patterns are filtered by --domain only (--since, --until, --outcome and \
                     --tag are episode filters)",
                ));
            }
            let mut query = PatternQuery::new();
            if let Some(d) = &filter.domain {
                query = query.domain(d.clone());
            }
            let search = wanted.search(query)?;
            search.validate().map_err(|e| usage(e.to_string()))?;
            store
                .search_patterns(&search)
                .await?
                .into_iter()
                .map(|hit| {
                    let p = &hit.item;
                    let line = format!(
                        "{}  {:<12} {:<16} success {:.2}",
                        p.id,
                        p.domain,
                        p.kind().as_str(),
                        p.success_rate
                    );
                    Ok((hit.score, serde_json::to_value(&*hit.item)?, line))
                })
                .collect::<anyhow::Result<_>>()?
        }
        Kind::Heuristic => return Err(usage("heuristics are not searchable")),
    };
    if json {
        let hits: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|(score, item, _)| serde_json::json!({ "score": score, "item": item }))
            .collect();
        return print_json(&hits);
    }
    for (score, _, line) in &rows {
        println!("{score:>8.4}  {line}");
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Migrate { from, to } = &cli.command {
        let (from, to) = (Location::parse(from), Location::parse(to));
        if from == to {
            return Err(usage("--from and --to are the same store"));
        }
        let (source, target) = (from.open().await?, to.open().await?);
        let bar = progress("copied", total_items(source.as_ref()).await);
        let done =
            memory_cli::migrate::migrate(source.as_ref(), target.as_ref(), |n| bar.set_position(n))
                .await;
        bar.finish_and_clear();
        let done = done?;
        println!(
            "copied {} episodes, {} patterns, {} heuristics; verified: both export {} bytes, \
             checksum {:016x}",
            done.copied.episodes,
            done.copied.patterns,
            done.copied.heuristics,
            done.bytes,
            done.checksum
        );
        return Ok(());
    }
    let location =
        Location::given_or_env(cli.store.as_deref()).map_err(|e| usage(e.to_string()))?;
    if let Command::ServeMetrics {
        addr,
        interval_secs,
    } = &cli.command
    {
        if *interval_secs == 0 {
            return Err(usage("--interval-secs must be at least 1"));
        }
        return memory_cli::serve::serve(
            &location,
            *addr,
            Duration::from_secs(*interval_secs),
            |bound| {
                println!("serving metrics at http://{bound}/metrics");
                let _ = std::io::stdout().flush();
            },
            stopped(),
        )
        .await;
    }
    let opened = location.open_store().await?;
    let store = opened.backend();
    let store = store.as_ref();
    match cli.command {
        Command::Stats(json) => stats(store, &opened, &location, json.json).await,
        Command::Check(json) => check(store, json.json).await,
        Command::Get { id, kind, json } => get(store, &id, kind, json.json).await,
        Command::Query {
            filter,
            limit,
            json,
        } => {
            let query = filter.query()?.limit(limit);
            query.validate().map_err(|e| usage(e.to_string()))?;
            let page = store.query_episodes(&query).await?;
            if json.json {
                let items: Vec<&memory_core::Episode> = page.items.iter().map(|e| &**e).collect();
                return print_json(&items);
            }
            for e in &page.items {
                println!(
                    "{}  {}  {:<12} {}",
                    e.id, e.start_time, e.context.domain, e.description
                );
            }
            Ok(())
        }
        Command::Search {
            text,
            vector,
            vector_file,
            kind,
            k,
            min_score,
            filter,
            json,
        } => {
            let wanted = Wanted {
                text,
                vector,
                vector_file,
                k,
                min_score,
            };
            search(store, &wanted, kind, &filter, json.json).await
        }
        Command::Export { kind, filter } => {
            let kinds = if kind.is_empty() {
                Kinds::ALL
            } else {
                Kinds {
                    episodes: kind.contains(&Kind::Episode),
                    patterns: kind.contains(&Kind::Pattern),
                    heuristics: kind.contains(&Kind::Heuristic),
                }
            };
            // The total is known only for an unfiltered export of every kind.
            let unfiltered = filter.query()? == EpisodeQuery::new() && kinds == Kinds::ALL;
            let total = if unfiltered {
                total_items(store).await
            } else {
                None
            };
            let bar = progress("exported", total);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let counts = jsonl::export(store, kinds, &filter.query()?, &mut out, |n| {
                bar.set_position(n)
            })
            .await?;
            bar.finish_and_clear();
            eprintln!(
                "exported {} episodes, {} patterns, {} heuristics",
                counts.episodes, counts.patterns, counts.heuristics
            );
            Ok(())
        }
        Command::Import {
            file,
            from_line,
            batch,
        } => {
            if batch == 0 {
                return Err(usage("--batch must be at least 1"));
            }
            let input = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let bar = progress("lines", None);
            let done = jsonl::import(store, BufReader::new(input), from_line, batch, |line| {
                bar.set_position(line as u64)
            })
            .await;
            bar.finish_and_clear();
            let done = done?;
            eprintln!(
                "imported {} episodes, {} patterns, {} heuristics ({} lines)",
                done.counts.episodes, done.counts.patterns, done.counts.heuristics, done.last_line
            );
            Ok(())
        }
        Command::Migrate { .. } => Err(usage("migrate takes --from and --to, not --store")),
        Command::ServeMetrics { .. } => Err(usage("serve-metrics is run before the store opens")),
        Command::Prune {
            older_than_days,
            keep_newest,
            below_reward,
            dry_run,
            chunk,
            chunk_ms,
            json,
        } => {
            let mut policy = RetentionPolicy::new();
            policy.older_than =
                older_than_days.map(|d| Duration::from_secs(d.saturating_mul(86_400)));
            policy.keep_newest_per_domain = keep_newest;
            policy.below_reward = below_reward;
            policy.validate().map_err(|e| usage(e.to_string()))?;
            let options = PruneOptions {
                dry_run,
                chunk,
                chunk_time: Duration::from_millis(chunk_ms),
            };
            let bar = progress("episodes read", store.count_episodes().await.ok());
            let report =
                retention::prune_observed(store, &policy, Timestamp::now(), options, |r| {
                    bar.set_position(r.examined)
                })
                .await;
            bar.finish_and_clear();
            let report = report?;
            let summary = serde_json::json!({
                "dry_run": dry_run,
                "examined": report.examined,
                "selected": report.selected,
                "removed": report.removed,
                "chunks": report.chunks,
                "longest_chunk_ms": report.longest_chunk.as_secs_f64() * 1e3,
                "largest_chunk": report.largest_chunk,
            });
            if json.json {
                return print_json(&summary);
            }
            if dry_run {
                println!(
                    "would remove {} of {} episodes read",
                    report.selected, report.examined
                );
            } else {
                println!(
                    "removed {} of {} episodes read ({} chunks of at most {}, longest {:.1} ms)",
                    report.removed,
                    report.examined,
                    report.chunks,
                    report.largest_chunk,
                    report.longest_chunk.as_secs_f64() * 1e3
                );
            }
            Ok(())
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn stopped() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => interrupt.await,
        }
    }
    #[cfg(not(unix))]
    interrupt.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory: {e:#}");
            let input = e.downcast_ref::<Usage>().is_some()
                || e.downcast_ref::<BadLine>().is_some()
                || matches!(
                    e.downcast_ref::<memory_cli::migrate::MigrateError>(),
                    Some(memory_cli::migrate::MigrateError::TargetNotEmpty(_))
                )
                || e.downcast_ref::<StorageError>()
                    .is_some_and(|s| s.kind() == memory_core::ErrorKind::InvalidInput);
            ExitCode::from(if input { 2 } else { 1 })
        }
    }
}
