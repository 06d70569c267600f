//! The export format: JSON Lines, one item per line with its kind and this format's
//! version (`{"kind":"episode","format":1,"item":{...}}`), and the streaming export and
//! batched import over it.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use memory_core::{Entity, Episode, EpisodeQuery, Heuristic, Pattern, StorageBackend};
use serde::{Deserialize, Serialize};

/// The version every exported line carries; import refuses others.
pub const FORMAT: u32 = 1;

/// Items read per page by export, migrate and `memory stats`. What they hold in memory is
/// a page or two, so it is kept small: 200 typical episodes decode to about 5 MiB (a page
/// of the query limit, 10,000, made export's heap peak grow with the store up to 240 MiB).
pub const PAGE: usize = 200;

/// One exported line, read back.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// An episode.
    Episode {
        /// The line's format version.
        format: u32,
        /// The item.
        item: Box<Episode>,
    },
    /// A pattern.
    Pattern {
        /// The line's format version.
        format: u32,
        /// The item.
        item: Box<Pattern>,
    },
    /// A heuristic.
    Heuristic {
        /// The line's format version.
        format: u32,
        /// The item.
        item: Box<Heuristic>,
    },
}

/// One line being written (borrowing its item).
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line<'a> {
    Episode { format: u32, item: &'a Episode },
    Pattern { format: u32, item: &'a Pattern },
    Heuristic { format: u32, item: &'a Heuristic },
}

/// Which kinds an export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds {
    /// Episodes (those the export's episode filter matches).
    pub episodes: bool,
    /// Patterns.
    pub patterns: bool,
    /// Heuristics.
    pub heuristics: bool,
}

impl Kinds {
    /// Every kind.
    pub const ALL: Kinds = Kinds {
        episodes: true,
        patterns: true,
        heuristics: true,
    };
}

/// Items written or read, per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Episodes.
    pub episodes: u64,
    /// Patterns.
    pub patterns: u64,
    /// Heuristics.
    pub heuristics: u64,
}

impl Counts {
    /// All items.
    pub fn total(&self) -> u64 {
        self.episodes + self.patterns + self.heuristics
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Counts) {
        self.episodes += other.episodes;
        self.patterns += other.patterns;
        self.heuristics += other.heuristics;
    }
}

/// Hands `each` every page `list` returns (each listed after the last id of the one
/// before, pages of [`PAGE`]) until an empty page: `list_patterns` or
/// `list_heuristics` walked to the end.
pub(crate) async fn each_listed<T, L, Fut>(
    list: L,
    mut each: impl AsyncFnMut(&[std::sync::Arc<T>]) -> anyhow::Result<()>,
) -> anyhow::Result<()>
where
    T: Entity,
    L: Fn(Option<T::Id>, usize) -> Fut,
    Fut: Future<Output = memory_core::Result<Vec<std::sync::Arc<T>>>>,
{
    let mut after = None;
    loop {
        let page = list(after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.id());
        each(&page).await?;
    }
}

fn write_line(out: &mut impl Write, line: &Line<'_>) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The export lines of `episodes`, in their order.
fn episode_lines(episodes: &[std::sync::Arc<Episode>]) -> std::io::Result<Vec<u8>> {
    let mut lines = Vec::with_capacity(episodes.len() * 16 * 1024);
    for e in episodes {
        serde_json::to_writer(
            &mut lines,
            &Line::Episode {
                format: FORMAT,
                item: e,
            },
        )?;
        lines.push(b'\n');
    }
    Ok(lines)
}

/// Writes `kinds` of `store` to `out`: episodes matching `filter` newest first, then
/// patterns and heuristics by id, read one page of [`PAGE`] items at a time. An episode
/// page's lines are made on a blocking thread while the next page is read, so at most two
/// pages are held (what it holds does not grow with the store: `tests/export_heap.rs`).
/// `tick` is called with the running total after each page is written.
pub async fn export(
    store: &dyn StorageBackend,
    kinds: Kinds,
    filter: &EpisodeQuery,
    out: &mut impl Write,
    mut tick: impl FnMut(u64),
) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    if kinds.episodes {
        let mut query = filter.clone().limit(PAGE);
        query.cursor = None;
        // One page's lines are written (and its episodes dropped) on a blocking thread
        // while the next page is read and decoded here: the two take about the same CPU,
        // so an export uses two cores instead of one. At most two pages are held.
        let mut writing: Option<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>> = None;
        loop {
            let page = store.query_episodes(&query).await?;
            if let Some(job) = writing.take() {
                out.write_all(&job.await??)?;
                tick(counts.total());
            }
            counts.episodes += page.items.len() as u64;
            let items = page.items;
            writing = Some(tokio::task::spawn_blocking(move || episode_lines(&items)));
            match page.next_cursor {
                Some(cursor) => query = query.after(cursor),
                None => break,
            }
        }
        if let Some(job) = writing.take() {
            out.write_all(&job.await??)?;
            tick(counts.total());
        }
    }
    if kinds.patterns {
        let list = |after, limit| store.list_patterns(after, limit);
        each_listed(list, async |page: &[std::sync::Arc<Pattern>]| {
            for p in page {
                write_line(
                    out,
                    &Line::Pattern {
                        format: FORMAT,
                        item: p,
                    },
                )?;
            }
            counts.patterns += page.len() as u64;
            tick(counts.total());
            Ok(())
        })
        .await?;
    }
    if kinds.heuristics {
        let list = |after, limit| store.list_heuristics(after, limit);
        each_listed(list, async |page: &[std::sync::Arc<Heuristic>]| {
            for h in page {
                write_line(
                    out,
                    &Line::Heuristic {
                        format: FORMAT,
                        item: h,
                    },
                )?;
            }
            counts.heuristics += page.len() as u64;
            tick(counts.total());
            Ok(())
        })
        .await?;
    }
    out.flush()?;
    Ok(counts)
}

/// A line import refused: nothing of its batch was written.
#[derive(Debug)]
pub struct BadLine {
    /// The line's number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
    /// The first line of the batch it was in (everything before was written).
    pub batch_start: usize,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: {}; nothing from line {} on was written (rerun with --from-line {} once \
             it is fixed)",
            self.line, self.reason, self.batch_start, self.batch_start
        )
    }
}

impl std::error::Error for BadLine {}

/// The items of one batch, the last line of an id winning (an import is a sequence of
/// upserts).
#[derive(Default)]
struct Batch {
    episodes: Keyed<Episode>,
    patterns: Keyed<Pattern>,
    heuristics: Keyed<Heuristic>,
}

struct Keyed<T: Entity> {
    items: Vec<T>,
    at: HashMap<T::Id, usize>,
}

impl<T: Entity> Default for Keyed<T> {
    fn default() -> Self {
        Keyed {
            items: Vec::new(),
            at: HashMap::new(),
        }
    }
}

impl<T: Entity> Keyed<T> {
    fn put(&mut self, item: T) {
        match self.at.get(&item.id()) {
            Some(&i) => self.items[i] = item,
            None => {
                self.at.insert(item.id(), self.items.len());
                self.items.push(item);
            }
        }
    }
}

impl Batch {
    fn len(&self) -> usize {
        self.episodes.items.len() + self.patterns.items.len() + self.heuristics.items.len()
    }
}

/// A line as read: its item is parsed once its kind is known. (Reading lines as
/// [`Record`], an internally tagged enum, made serde buffer every item in a generic tree
/// first, since the tag may come after the item: a fifth of the import's parsing.)
#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    format: u32,
    #[serde(borrow)]
    item: &'a serde_json::value::RawValue,
}

/// Reads one line as a checked item.
fn parse(text: &str, line: usize, batch_start: usize, batch: &mut Batch) -> Result<(), BadLine> {
    let bad = |reason: String| BadLine {
        line,
        reason,
        batch_start,
    };
    let raw: RawLine<'_> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if raw.format != FORMAT {
        return Err(bad(format!(
            "format {}: this build reads format {FORMAT}",
            raw.format
        )));
    }
    let item = raw.item.get();
    let invalid = |e: memory_core::ValidationError| bad(e.to_string());
    let unreadable = |e: serde_json::Error| bad(format!("{} item: {e}", raw.kind));
    match raw.kind.as_ref() {
        "episode" => {
            let item: Episode = serde_json::from_str(item).map_err(unreadable)?;
            item.validate().map_err(invalid)?;
            batch.episodes.put(item);
        }
        "pattern" => {
            let item: Pattern = serde_json::from_str(item).map_err(unreadable)?;
            item.validate().map_err(invalid)?;
            batch.patterns.put(item);
        }
        "heuristic" => {
            let item: Heuristic = serde_json::from_str(item).map_err(unreadable)?;
            item.validate().map_err(invalid)?;
            batch.heuristics.put(item);
        }
        other => {
            return Err(bad(format!(
                "unknown kind `{other}`: expected `episode`, `pattern` or `heuristic`"
            )));
        }
    }
    Ok(())
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Items written (an id on several lines counts once per batch it is in).
    pub counts: Counts,
    /// The last line read.
    pub last_line: usize,
}

/// Reads `input` from line `from_line` (1 for all) and stores its items in batches of
/// `batch_lines` lines: every line of a batch is read and checked before any of it is
/// written, and each kind of a batch is one all-or-nothing batch write. Items are upserts,
/// so importing a file twice changes nothing, and an interrupted import is finished by
/// running it again (from the start, or from the line the error names). Blank lines are
/// skipped.
pub async fn import(
    store: &dyn StorageBackend,
    input: impl BufRead,
    from_line: usize,
    batch_lines: usize,
    mut tick: impl FnMut(usize),
) -> anyhow::Result<Imported> {
    let mut done = Imported::default();
    let mut batch = Batch::default();
    let mut batch_start = from_line.max(1);
    let mut in_batch = 0;
    // The batch being written while the next one is read: a store that hands writes to a
    // thread of its own (a local libSQL file) writes one batch while the next is parsed.
    // Batches still land in order: a batch is started only once the one before it is done.
    let mut writing: Option<Writing<'_>> = None;
    for (index, text) in input.lines().enumerate() {
        let line = index + 1;
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                finish(&mut writing, &mut done).await?;
                return Err(BadLine {
                    line,
                    reason: format!("cannot be read: {e}"),
                    batch_start,
                }
                .into());
            }
        };
        done.last_line = line;
        if line < from_line {
            continue;
        }
        if in_batch == 0 {
            batch_start = line;
        }
        if !text.trim().is_empty()
            && let Err(bad) = parse(&text, line, batch_start, &mut batch)
        {
            finish(&mut writing, &mut done).await?;
            return Err(bad.into());
        }
        in_batch += 1;
        if in_batch >= batch_lines {
            finish(&mut writing, &mut done).await?;
            let mut next = Box::pin(write(store, std::mem::take(&mut batch), batch_start, line));
            // Polled once so that the store takes the batch now, not when it is awaited.
            match futures::poll!(next.as_mut()) {
                std::task::Poll::Ready(written) => done.counts.add(written?),
                std::task::Poll::Pending => writing = Some(next),
            }
            in_batch = 0;
            tick(line);
        }
    }
    finish(&mut writing, &mut done).await?;
    if batch.len() > 0 {
        let written = write(store, batch, batch_start, done.last_line).await?;
        done.counts.add(written);
    }
    tick(done.last_line);
    Ok(done)
}

/// A batch write in progress: what it wrote, per kind.
type Writing<'a> = std::pin::Pin<Box<dyn Future<Output = anyhow::Result<Counts>> + Send + 'a>>;

/// Waits for the batch in progress, if any, and counts what it wrote.
async fn finish(writing: &mut Option<Writing<'_>>, done: &mut Imported) -> anyhow::Result<()> {
    if let Some(batch) = writing.take() {
        done.counts.add(batch.await?);
    }
    Ok(())
}

/// Stores one batch, each kind one all-or-nothing batch write.
async fn write(
    store: &dyn StorageBackend,
    batch: Batch,
    first: usize,
    last: usize,
) -> anyhow::Result<Counts> {
    let context = || {
        format!(
            "writing lines {first}-{last} (everything before line {first} was written: rerun \
             with --from-line {first})"
        )
    };
    use anyhow::Context;
    let mut written = Counts::default();
    if !batch.episodes.items.is_empty() {
        store
            .store_episodes(&batch.episodes.items)
            .await
            .with_context(context)?;
        written.episodes = batch.episodes.items.len() as u64;
    }
    if !batch.patterns.items.is_empty() {
        store
            .store_patterns(&batch.patterns.items)
            .await
            .with_context(context)?;
        written.patterns = batch.patterns.items.len() as u64;
    }
    if !batch.heuristics.items.is_empty() {
        store
            .store_heuristics(&batch.heuristics.items)
            .await
            .with_context(context)?;
        written.heuristics = batch.heuristics.items.len() as u64;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use memory_core::testing::{Hooked, samples};
    use memory_core::{InMemoryStorage, StorageBackend};

    use super::*;

    fn line(episode: &Episode) -> String {
        serde_json::to_string(&Line::Episode {
            format: FORMAT,
            item: episode,
        })
        .unwrap()
    }

    /// A store whose first `store_episodes` takes 200 ms longer than the others.
    fn first_batch_slow() -> Hooked<InMemoryStorage> {
        let calls = AtomicUsize::new(0);
        Hooked::new(InMemoryStorage::new(), move |method| {
            if method == "store_episodes" && calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Box::pin(tokio::time::sleep(Duration::from_millis(200)));
            }
            Box::pin(async {})
        })
    }

    /// A line is read whatever the order of its keys and however its kind is spelled in
    /// JSON (an escape included); an unknown kind and an unreadable item name the line.
    #[test]
    fn a_line_reads_in_any_key_order_and_names_what_is_wrong() {
        let episode = samples::episode(3);
        let item = serde_json::to_string(&episode).unwrap();
        let mut batch = Batch::default();
        let reordered = format!(r#"{{"item":{item},"format":1,"kind":"episod\u0065"}}"#);
        parse(&reordered, 4, 1, &mut batch).unwrap();
        assert_eq!(batch.episodes.items, [episode]);

        let unknown = format!(r#"{{"kind":"memo","format":1,"item":{item}}}"#);
        let bad = parse(&unknown, 5, 1, &mut batch).unwrap_err();
        assert_eq!(bad.line, 5);
        assert!(bad.reason.contains("unknown kind `memo`"), "{}", bad.reason);

        let unreadable = r#"{"kind":"pattern","format":1,"item":{"id":7}}"#;
        let bad = parse(unreadable, 6, 1, &mut batch).unwrap_err();
        assert!(bad.reason.starts_with("pattern item: "), "{}", bad.reason);
        assert_eq!(batch.len(), 1, "nothing of a bad line is kept");
    }

    /// An item on lines of two batches ends as the later line says, even when the first
    /// batch's write is slow: the next batch is written only once it is done. (An import
    /// that wrote two batches at once let the slow first batch overwrite the later line.)
    #[tokio::test]
    async fn an_item_in_two_batches_ends_as_its_later_line() {
        let store = first_batch_slow();
        let first = samples::episode(1);
        let mut later = first.clone();
        later.description = "the later line".into();
        let file = [
            line(&first),
            line(&samples::episode(2)),
            line(&later),
            line(&samples::episode(3)),
        ]
        .join("\n");
        let done = import(&store, file.as_bytes(), 1, 2, |_| {}).await.unwrap();
        assert_eq!(done.counts.episodes, 4);
        let stored = store.inner().get_episode(first.id).await.unwrap().unwrap();
        assert_eq!(*stored, later);
    }
}
