//! Collectors that read the other crates' counters at scrape time, only through their stats
//! traits, and export what those counters really measured.

use std::sync::Arc;

use memory_core::stats::{CacheStatsSnapshot, EvictionReason};
use memory_core::stats::{
    CachedStats, PoolStats, PoolStatsSnapshot, StatementCacheStats, WAIT_BUCKETS,
};
use prometheus::core::{Collector, Desc, Describer};
use prometheus::proto::{Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{CounterVec, GaugeVec, Opts};

/// Whether a family only grows (a total) or goes up and down.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric family a collector exports.
struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    kind: Kind,
}

/// The families of one collector, with the `store` label every sample carries, and their
/// descriptors built once.
struct Families {
    list: &'static [Family],
    store: String,
    descs: Vec<Desc>,
}

impl Families {
    fn new(list: &'static [Family], store: &str) -> prometheus::Result<Self> {
        let mut descs = Vec::with_capacity(list.len());
        for family in list {
            descs.push(family_opts(family, store).describe()?);
        }
        Ok(Families {
            list,
            store: store.to_string(),
            descs,
        })
    }

    /// Builds the families from `samples`: (family index, label values, value).
    fn collect(&self, samples: &[(usize, Vec<&str>, f64)]) -> Vec<MetricFamily> {
        let mut out = Vec::with_capacity(self.list.len());
        for (i, family) in self.list.iter().enumerate() {
            let opts = family_opts(family, &self.store);
            let mine = samples.iter().filter(|(f, _, _)| *f == i);
            match family.kind {
                Kind::Counter => {
                    let Ok(vec) = CounterVec::new(opts, family.labels) else {
                        continue;
                    };
                    for (_, labels, value) in mine {
                        if let Ok(counter) = vec.get_metric_with_label_values(labels) {
                            counter.inc_by(*value);
                        }
                    }
                    out.extend(vec.collect());
                }
                Kind::Gauge => {
                    let Ok(vec) = GaugeVec::new(opts, family.labels) else {
                        continue;
                    };
                    for (_, labels, value) in mine {
                        if let Ok(gauge) = vec.get_metric_with_label_values(labels) {
                            gauge.set(*value);
                        }
                    }
                    out.extend(vec.collect());
                }
            }
        }
        out
    }
}

fn family_opts(family: &Family, store: &str) -> Opts {
    Opts::new(family.name, family.help).const_label("store", store)
}

const CACHE_FAMILIES: &[Family] = &[
    Family {
        name: "memory_cache_hits_total",
        help: "Lookups answered from the cache (remembered \"does not exist\" answers included).",
        labels: &["cache"],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_cache_negative_hits_total",
        help: "Of the hits, those answered with a remembered \"does not exist\".",
        labels: &["cache"],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_cache_misses_total",
        help: "Lookups that had to read the store.",
        labels: &["cache"],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_cache_evictions_total",
        help: "Entries that left the cache, by reason (capacity, idle, age, invalidated).",
        labels: &["cache", "reason"],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_cache_admissions_rejected_total",
        help: "New entries the admission policy turned away in favour of more frequent ones.",
        labels: &["cache"],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_cache_entries",
        help: "Entries held now.",
        labels: &["cache"],
        kind: Kind::Gauge,
    },
    Family {
        name: "memory_cache_bytes",
        help: "Bytes held now (encoded item sizes plus per-entry overhead).",
        labels: &["cache"],
        kind: Kind::Gauge,
    },
    Family {
        name: "memory_cache_hit_ratio",
        help: "hits / (hits + misses) since the cache was created (absent before its first lookup).",
        labels: &["cache"],
        kind: Kind::Gauge,
    },
    Family {
        name: "memory_cache_foreign_flushes_total",
        help: "Times every cache was dropped for other writers, by reason (no_feed: the store \
               keeps no change feed; feed_behind: the feed no longer reached back; failed: \
               the change signal could not be read).",
        labels: &["reason"],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_cache_foreign_writes_total",
        help: "Other writers' writes the change checks read from the store's change feed.",
        labels: &[],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_cache_foreign_invalidations_total",
        help: "Items other writers changed, each dropped from the caches on its own.",
        labels: &[],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_cache_feed_lag",
        help: "Store positions the last change check had to catch up on.",
        labels: &[],
        kind: Kind::Gauge,
    },
];

/// Exports the caches of anything that reports [`CachedStats`] (a
/// `memory_storage_cached::CachedStorage`): per cache (`episodes`,
/// `patterns`, `heuristics`, `episode_queries`, `pattern_queries`) hits, negative hits,
/// misses, evictions by reason, rejected admissions, entries, bytes and hit ratio; and what
/// the change checks did about other writers (full flushes by reason, foreign writes read
/// from the change feed, items invalidated one by one, the last check's lag).
///
/// ```
/// use std::sync::Arc;
/// use memory_core::InMemoryStorage;
/// use memory_metrics::CacheCollector;
/// use memory_storage_cached::{CacheSettings, CachedStorage};
///
/// let store = Arc::new(CachedStorage::new(InMemoryStorage::new(), &CacheSettings::default())?);
/// let registry = prometheus::Registry::new();
/// registry.register(Box::new(CacheCollector::new(store.clone(), "main")?))?;
/// let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather())?;
/// assert!(text.contains(r#"memory_cache_entries{cache="episodes",store="main"} 0"#));
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct CacheCollector<T> {
    source: Arc<T>,
    families: Families,
}

impl<T: CachedStats + Send + Sync> CacheCollector<T> {
    /// Reads `source` at every scrape; samples carry `store="<store>"`.
    pub fn new(source: Arc<T>, store: &str) -> prometheus::Result<Self> {
        Ok(CacheCollector {
            source,
            families: Families::new(CACHE_FAMILIES, store)?,
        })
    }
}

impl<T: CachedStats + Send + Sync> Collector for CacheCollector<T> {
    fn desc(&self) -> Vec<&Desc> {
        self.families.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = self.source.cached_stats();
        let caches: [(&str, &CacheStatsSnapshot); 5] = [
            ("episodes", &stats.episodes),
            ("patterns", &stats.patterns),
            ("heuristics", &stats.heuristics),
            ("episode_queries", &stats.episode_queries),
            ("pattern_queries", &stats.pattern_queries),
        ];
        let reasons = [
            ("capacity", EvictionReason::Capacity),
            ("idle", EvictionReason::Idle),
            ("age", EvictionReason::Age),
            ("invalidated", EvictionReason::Invalidated),
        ];
        let mut samples = Vec::new();
        for (cache, s) in caches {
            samples.push((0, vec![cache], s.hits as f64));
            samples.push((1, vec![cache], s.negative_hits as f64));
            samples.push((2, vec![cache], s.misses as f64));
            for (name, reason) in reasons {
                samples.push((3, vec![cache, name], s.evictions(reason) as f64));
            }
            samples.push((4, vec![cache], s.admissions_rejected as f64));
            samples.push((5, vec![cache], s.entries as f64));
            samples.push((6, vec![cache], s.weight as f64));
            // Undefined before the first lookup: not exported rather than shown as 0.
            if s.hits + s.misses > 0 {
                samples.push((7, vec![cache], s.hit_ratio()));
            }
        }
        let foreign = &stats.foreign;
        samples.push((8, vec!["no_feed"], foreign.flushes_no_feed as f64));
        samples.push((8, vec!["feed_behind"], foreign.flushes_feed_behind as f64));
        samples.push((8, vec!["failed"], foreign.flushes_failed as f64));
        samples.push((9, vec![], foreign.writes as f64));
        samples.push((10, vec![], foreign.invalidated as f64));
        samples.push((11, vec![], foreign.feed_lag as f64));
        self.families.collect(&samples)
    }
}

const POOL_FAMILIES: &[Family] = &[
    Family {
        name: "memory_pool_connections",
        help: "Connections now, by state (open = in_use + idle).",
        labels: &["state"],
        kind: Kind::Gauge,
    },
    Family {
        name: "memory_pool_max_connections",
        help: "The most connections the pool opens.",
        labels: &[],
        kind: Kind::Gauge,
    },
    Family {
        name: "memory_pool_timeouts_total",
        help: "Checkouts that gave up after the checkout timeout.",
        labels: &[],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_pool_connections_created_total",
        help: "Connections opened.",
        labels: &[],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_pool_connections_discarded_total",
        help: "Connections thrown away (failed a health check or broke in use).",
        labels: &[],
        kind: Kind::Counter,
    },
];

const WAIT_NAME: &str = "memory_pool_wait_seconds";
const WAIT_HELP: &str = "How long checkouts that found no free connection waited (count: such \
                         checkouts; sum: their total wait).";

/// Exports a connection pool's counters from anything that reports [`PoolStats`] (the
/// libSQL store), with its wait times as the histogram `memory_pool_wait_seconds`.
pub struct PoolCollector<T> {
    source: Arc<T>,
    families: Families,
    wait_desc: Desc,
}

impl<T: PoolStats + Send + Sync> PoolCollector<T> {
    /// Reads `source` at every scrape; samples carry `store="<store>"`.
    pub fn new(source: Arc<T>, store: &str) -> prometheus::Result<Self> {
        Ok(PoolCollector {
            source,
            families: Families::new(POOL_FAMILIES, store)?,
            wait_desc: Opts::new(WAIT_NAME, WAIT_HELP)
                .const_label("store", store)
                .describe()?,
        })
    }

    /// The pool's own wait-time buckets as a Prometheus histogram (cumulative counts).
    fn wait_histogram(&self, s: &PoolStatsSnapshot) -> MetricFamily {
        let mut cumulative = 0;
        let buckets = WAIT_BUCKETS
            .iter()
            .zip(s.wait_histogram)
            .map(|(bound, count)| {
                cumulative += count;
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(bound.as_secs_f64());
                bucket.set_cumulative_count(cumulative);
                bucket
            })
            .collect();
        let mut histogram = Histogram::default();
        histogram.set_sample_count(s.wait_histogram.iter().sum());
        histogram.set_sample_sum(s.wait_time.as_secs_f64());
        histogram.set_bucket(buckets);
        let mut label = LabelPair::default();
        label.set_name("store".into());
        label.set_value(self.families.store.clone());
        let mut metric = Metric::default();
        metric.set_label(vec![label]);
        metric.set_histogram(histogram);
        let mut family = MetricFamily::default();
        family.set_name(WAIT_NAME.into());
        family.set_help(WAIT_HELP.into());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(vec![metric]);
        family
    }
}

impl<T: PoolStats + Send + Sync> Collector for PoolCollector<T> {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs: Vec<&Desc> = self.families.descs.iter().collect();
        descs.push(&self.wait_desc);
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = self.source.pool_stats();
        let mut families = self.families.collect(&[
            (0, vec!["open"], s.open as f64),
            (0, vec!["in_use"], s.in_use as f64),
            (0, vec!["idle"], s.idle as f64),
            (1, vec![], s.max_size as f64),
            (2, vec![], s.timeouts as f64),
            (3, vec![], s.created as f64),
            (4, vec![], s.discarded as f64),
        ]);
        families.push(self.wait_histogram(&s));
        families
    }
}

const STATEMENT_FAMILIES: &[Family] = &[
    Family {
        name: "memory_statement_cache_hits_total",
        help: "Statements found already prepared on their connection.",
        labels: &[],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_statement_cache_misses_total",
        help: "Statements that had to be prepared.",
        labels: &[],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_statement_cache_evictions_total",
        help: "Prepared statements dropped to make room.",
        labels: &[],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_statement_prepare_seconds_total",
        help: "Time spent preparing statements, in all.",
        labels: &[],
        kind: Kind::Counter,
    },
    Family {
        name: "memory_statement_cache_hit_ratio",
        help: "hits / (hits + misses) since the store was opened (absent before the first use).",
        labels: &[],
        kind: Kind::Gauge,
    },
];

/// Exports the prepared-statement caches' counters from anything that reports
/// [`StatementCacheStats`] (the libSQL store, summed over its connections).
pub struct StatementCollector<T> {
    source: Arc<T>,
    families: Families,
}

impl<T: StatementCacheStats + Send + Sync> StatementCollector<T> {
    /// Reads `source` at every scrape; samples carry `store="<store>"`.
    pub fn new(source: Arc<T>, store: &str) -> prometheus::Result<Self> {
        Ok(StatementCollector {
            source,
            families: Families::new(STATEMENT_FAMILIES, store)?,
        })
    }
}

impl<T: StatementCacheStats + Send + Sync> Collector for StatementCollector<T> {
    fn desc(&self) -> Vec<&Desc> {
        self.families.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = self.source.statement_stats();
        let mut samples = vec![
            (0, vec![], s.hits as f64),
            (1, vec![], s.misses as f64),
            (2, vec![], s.evictions as f64),
            (3, vec![], s.prepare_time.as_secs_f64()),
        ];
        if s.hits + s.misses > 0 {
            samples.push((4, vec![], s.hit_ratio()));
        }
        self.families.collect(&samples)
    }
}
