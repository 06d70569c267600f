//! [`AdaptiveCache`]: the sharded, weight-bounded, frequency-admitted entity cache.

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock, nanos};
use crate::config::{CacheConfig, ConfigError, Weigher};
use crate::flights::{Flight, FlightMap};
use crate::generations::{Generations, Mark};
use crate::shard::{Ctx, Expiry, Found, Index, Limits, Shard, Slot, read};
use crate::sketch::FrequencySketch;
use crate::stats::{CacheStatsSnapshot, Counters, EvictionReason, Stripes};

/// The answer of [`AdaptiveCache::lookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<V> {
    /// The cached value.
    Hit(V),
    /// A remembered "not found" (negative caching).
    NotFound,
    /// Nothing usable is cached.
    Miss,
}

/// One shard. Readers touch only the sketch; the mutexes, which writers and loaders take,
/// sit on lines of their own so that taking them does not evict the sketch from readers'
/// caches.
struct ShardSlot<K> {
    shard: CachePadded<Mutex<Shard<K>>>,
    sketch: FrequencySketch,
    flights: CachePadded<Mutex<FlightMap<K>>>,
}

struct Inner<K, V> {
    index: Index<K, V>,
    shards: Box<[CachePadded<ShardSlot<K>>]>,
    hasher: foldhash::fast::FixedState,
    shift: u32,
    clock: Arc<dyn Clock>,
    expiry: Expiry,
    weigher: Option<Weigher<K, V>>,
    entry_overhead: u64,
    generations: Generations,
    /// Loads between their first generation mark and their store attempt. Writers bump a
    /// key's generation only while this is non-zero: a load that starts later reads the
    /// source after the write, so there is nothing to fence off (and the bump is an atomic
    /// on a line the other cores share).
    loads_in_flight: CachePadded<AtomicUsize>,
    stats: Stripes,
}

/// A concurrent cache bounded by entry count and bytes, with TinyLFU admission (one scan of
/// cold keys cannot flush the hot set), adaptive idle expiry under a hard maximum age,
/// optional negative caching and coalesced loads. Cloning gives another handle to the same
/// cache.
///
/// Reads take no lock (a lock-free index; a hit writes nothing shared unless an entry's
/// access record changes); writes take one shard's mutex; nothing takes a global lock. No
/// tokio runtime or background task is needed.
///
/// ```
/// use std::sync::Arc;
/// use memory_cache_adaptive::{AdaptiveCache, CacheConfig, CacheStats};
///
/// let cache: AdaptiveCache<u64, Arc<String>> = AdaptiveCache::builder(
///     CacheConfig::new(10_000).max_weight(64 * 1024 * 1024),
/// )
/// .weigher(|_key, value: &Arc<String>| value.len() as u64)
/// .build()
/// .unwrap();
/// cache.insert(7, Arc::new("seven".to_string()));
/// assert_eq!(cache.get(&7).as_deref().map(String::as_str), Some("seven"));
/// assert_eq!(cache.get(&8), None);
/// assert_eq!(cache.snapshot().hits, 1);
/// ```
pub struct AdaptiveCache<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for AdaptiveCache<K, V> {
    fn clone(&self) -> Self {
        AdaptiveCache {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Builds an [`AdaptiveCache`] with an optional weigher and clock.
pub struct CacheBuilder<K, V> {
    config: CacheConfig,
    weigher: Option<Weigher<K, V>>,
    clock: Arc<dyn Clock>,
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Sizes values in bytes for the weight bound.
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Uses `clock` for expiry (tests use [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the config and builds the cache.
    pub fn build(self) -> Result<AdaptiveCache<K, V>, ConfigError> {
        let config = self.config;
        config.validate()?;
        let shards = config.shard_count();
        if shards > config.max_entries {
            return Err(ConfigError {
                field: "shards",
                reason: "must not exceed max_entries".into(),
            });
        }
        let max_weight = config.max_weight.unwrap_or(u64::MAX);
        let slots = (0..shards)
            .map(|i| {
                let max_entries = share(config.max_entries as u64, shards, i) as usize;
                let max_weight = if max_weight == u64::MAX {
                    u64::MAX / 2
                } else {
                    share(max_weight, shards, i)
                };
                let limits = Limits {
                    max_entries,
                    max_weight,
                    window_share: f64::from(config.window_percent) / 100.0,
                    shards,
                };
                CachePadded::new(ShardSlot {
                    shard: CachePadded::new(Mutex::new(Shard::new(limits))),
                    sketch: FrequencySketch::new(max_entries),
                    flights: CachePadded::new(Mutex::new(FlightMap::with_hasher(
                        foldhash::fast::FixedState::default(),
                    ))),
                })
            })
            .collect();
        let expiry = Expiry {
            idle_min: config.idle.map(|i| nanos(i.min)),
            hits_cap: config.idle.map_or(0, |i| {
                let (min, max) = (nanos(i.min).max(1), nanos(i.max));
                (0..40)
                    .find(|h| min.saturating_mul(1 << h) >= max)
                    .unwrap_or(40)
            }),
            idle_max: config.idle.map_or(u64::MAX, |i| nanos(i.max)),
            max_age: config.max_age.map(nanos),
            negative_ttl: config.negative_ttl.map(nanos),
        };
        Ok(AdaptiveCache {
            inner: Arc::new(Inner {
                index: papaya::HashMap::builder()
                    .capacity(config.max_entries.min(1 << 16))
                    .hasher(foldhash::fast::FixedState::default())
                    // Each reclamation batch costs a process-wide memory barrier (an
                    // interrupt on every core); what waits in a batch is memory the
                    // weights no longer count: the config weighs one against the other.
                    .collector(seize::Collector::new().batch_size(config.retire_batch))
                    .build(),
                shards: slots,
                hasher: foldhash::fast::FixedState::default(),
                shift: 64 - shards.trailing_zeros(),
                clock: self.clock,
                expiry,
                entry_overhead: if config.max_weight.is_some() {
                    config.entry_overhead
                } else {
                    0
                },
                weigher: self.weigher,
                generations: Generations::new(),
                loads_in_flight: CachePadded::new(AtomicUsize::new(0)),
                stats: Stripes::new(),
            }),
        })
    }
}

/// Shard `i`'s part of `total` split `parts` ways, the remainder going to the first shards.
fn share(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((i as u64) < total % parts)
}

impl<K, V> AdaptiveCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache with `config`, no weigher (the weight bound then counts only per-entry
    /// overhead) and the system clock.
    pub fn new(config: CacheConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// Starts building a cache with `config`.
    pub fn builder(config: CacheConfig) -> CacheBuilder<K, V> {
        CacheBuilder {
            config,
            weigher: None,
            clock: Arc::new(SystemClock::new()),
        }
    }

    pub(crate) fn hash(&self, key: &K) -> u64 {
        self.inner.hasher.hash_one(key)
    }

    /// Hashes any value with the cache's hasher (the query cache hashes dependencies).
    pub(crate) fn hash_of<T: Hash + ?Sized>(&self, value: &T) -> u64 {
        self.inner.hasher.hash_one(value)
    }

    /// The generation table: keys' stripes, and for the query cache dependencies' stripes.
    pub(crate) fn generations(&self) -> &Generations {
        &self.inner.generations
    }

    fn slot(&self, hash: u64) -> &ShardSlot<K> {
        let index = if self.inner.shift == 64 {
            0
        } else {
            (hash >> self.inner.shift) as usize
        };
        &self.inner.shards[index]
    }

    fn now(&self) -> u64 {
        // Without any time-based expiry nothing reads the time: skip the clock.
        if self.inner.expiry.uses_time() {
            self.inner.clock.now_nanos()
        } else {
            0
        }
    }

    /// The cached value of `key`; `None` on a miss or a remembered "not found".
    pub fn get(&self, key: &K) -> Option<V> {
        match self.lookup(key) {
            Lookup::Hit(v) => Some(v),
            Lookup::NotFound | Lookup::Miss => None,
        }
    }

    /// The cached state of `key`, telling a remembered "not found" from a miss.
    pub fn lookup(&self, key: &K) -> Lookup<V> {
        self.lookup_hashed(key, self.hash(key))
    }

    fn lookup_hashed(&self, key: &K, hash: u64) -> Lookup<V> {
        let slot = self.slot(hash);
        slot.sketch.increment(hash);
        let now = self.now();
        let stats = self.inner.stats.local();
        let found = read(&self.inner.index.pin(), key, now, &self.inner.expiry);
        match found {
            Found::Hit(Slot::Present(v)) => {
                Counters::bump(&stats.hits);
                Lookup::Hit(v)
            }
            Found::Hit(Slot::Absent) => {
                Counters::bump(&stats.hits);
                Counters::bump(&stats.negative_hits);
                Lookup::NotFound
            }
            Found::Expired => {
                self.with_shard(hash, |shard, ctx| shard.remove_if_expired(key, ctx));
                Counters::bump(&stats.misses);
                Lookup::Miss
            }
            Found::Missing => {
                Counters::bump(&stats.misses);
                Lookup::Miss
            }
        }
    }

    /// Runs `f` on the shard of `hash` under its mutex, with the index pinned.
    fn with_shard<T>(
        &self,
        hash: u64,
        f: impl FnOnce(&mut Shard<K>, &Ctx<'_, '_, K, V>) -> T,
    ) -> T {
        let slot = self.slot(hash);
        let index = self.inner.index.pin();
        let mut shard = slot.shard.lock();
        let ctx = Ctx {
            index: &index,
            hasher: &self.inner.hasher,
            sketch: &slot.sketch,
            counters: self.inner.stats.local(),
            stats: &self.inner.stats,
            expiry: &self.inner.expiry,
            now: self.now(),
        };
        f(&mut shard, &ctx)
    }

    /// Like [`get`](Self::get), but a value that fails `valid` is removed (counted as
    /// invalidated) and reported as a miss.
    pub(crate) fn get_valid(&self, key: &K, valid: impl Fn(&V) -> bool) -> Option<V> {
        let hash = self.hash(key);
        match self.lookup_hashed(key, hash) {
            Lookup::Hit(v) if valid(&v) => Some(v),
            Lookup::Hit(_) => {
                self.with_shard(hash, |shard, ctx| shard.remove_unless(key, &valid, ctx));
                // The lookup counted a hit on this thread's stripe; it was not one.
                let stats = self.inner.stats.local();
                stats.hits.fetch_sub(1, Ordering::Relaxed);
                Counters::bump(&stats.misses);
                None
            }
            Lookup::NotFound | Lookup::Miss => None,
        }
    }

    fn weigh(&self, key: &K, slot: &Slot<V>) -> u64 {
        let value = match (slot, &self.inner.weigher) {
            (Slot::Present(v), Some(weigher)) => weigher(key, v),
            _ => 0,
        };
        value.saturating_add(self.inner.entry_overhead).max(1)
    }

    pub(crate) fn store(&self, key: K, hash: u64, slot: Slot<V>, only_if: &[Mark]) -> bool {
        let weight = self.weigh(&key, &slot);
        self.with_shard(hash, |shard, ctx| {
            // Checked under the shard mutex: an invalidation bumps first and removes under
            // this mutex, so either it sees our entry or we see its bump.
            if !only_if
                .iter()
                .all(|m| self.inner.generations.is_current(*m))
            {
                return false;
            }
            shard.insert(key, slot, weight, ctx)
        })
    }

    /// Makes loads of `hash`'s stripe that are in flight skip storing their result.
    ///
    /// Why skipping the bump is safe when no load is in flight: a load increments the
    /// in-flight count before it takes its mark and reads the source; if this load of the
    /// count (sequentially consistent with that increment) sees zero, the load began after
    /// this write's caller updated the source, so what it reads is at least this new.
    fn fence_loads(&self, hash: u64) {
        if self.inner.loads_in_flight.load(Ordering::SeqCst) > 0 {
            self.inner.generations.bump(hash);
        }
    }

    /// Stores `value` under `key`, replacing any entry. Loads of `key` in flight are not
    /// stored when they land (they may predate this value). Returns false if the value alone
    /// is heavier than a shard may hold (then nothing is cached for `key`).
    pub fn insert(&self, key: K, value: V) -> bool {
        let hash = self.hash(&key);
        self.fence_loads(hash);
        self.store(key, hash, Slot::Present(value), &[])
    }

    /// Remembers that `key` does not exist, for the negative TTL. Returns false (and stores
    /// nothing) when negative caching is not configured.
    pub fn insert_not_found(&self, key: K) -> bool {
        if self.inner.expiry.negative_ttl.is_none() {
            return false;
        }
        let hash = self.hash(&key);
        self.fence_loads(hash);
        self.store(key, hash, Slot::Absent, &[])
    }

    /// Removes `key` and makes loads of it that are in flight skip storing their result.
    pub fn invalidate(&self, key: &K) {
        let hash = self.hash(key);
        self.fence_loads(hash);
        self.with_shard(hash, |shard, ctx| {
            shard.remove(key, EvictionReason::Invalidated, ctx);
        });
    }

    /// Removes every entry; no load in flight stores its result.
    pub fn invalidate_all(&self) {
        self.inner.generations.bump_all();
        for i in 0..self.inner.shards.len() {
            self.with_shard_index(i, |shard, ctx| shard.clear(ctx));
        }
    }

    fn with_shard_index<T>(
        &self,
        i: usize,
        f: impl FnOnce(&mut Shard<K>, &Ctx<'_, '_, K, V>) -> T,
    ) -> T {
        let hash = if self.inner.shift == 64 {
            0
        } else {
            (i as u64) << self.inner.shift
        };
        self.with_shard(hash, f)
    }

    /// Removes every expired entry now (expiry is otherwise lazy plus a small sweep on each
    /// write); returns how many were removed.
    pub fn sweep_expired(&self) -> usize {
        (0..self.inner.shards.len())
            .map(|i| self.with_shard_index(i, |shard, ctx| shard.sweep_all(ctx)))
            .sum()
    }

    /// Whether an entry for `key` is held, expired or not, without counting a lookup.
    pub fn contains_key(&self, key: &K) -> bool {
        self.inner.index.pin().contains_key(key)
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.shard.lock().len()).sum()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn stats_snapshot(&self) -> CacheStatsSnapshot {
        let mut snapshot = self.inner.stats.sum();
        for slot in self.inner.shards.iter() {
            let shard = slot.shard.lock();
            snapshot.entries += shard.len() as u64;
            snapshot.weight += shard.weight();
        }
        snapshot
    }

    /// Bytes held now (weights plus per-entry overhead).
    pub fn weight(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|s| s.shard.lock().weight())
            .sum()
    }

    /// Starts a read of `key` from the source that the caller runs itself (for example one
    /// batch read for many keys). Call it before reading the source and hand the answer to
    /// [`complete_load`](Self::complete_load): a write to `key` in between makes that store
    /// nothing. For single keys prefer [`get_or_load`](Self::get_or_load), which also
    /// coalesces concurrent misses.
    ///
    /// ```
    /// use memory_cache_adaptive::{AdaptiveCache, CacheConfig};
    ///
    /// let cache: AdaptiveCache<u32, String> = AdaptiveCache::new(CacheConfig::new(100)).unwrap();
    /// let ticket = cache.begin_load(&1);
    /// // ... read key 1 from the source: "one" ...
    /// assert!(cache.complete_load(1, ticket, Some("one".to_string())));
    ///
    /// let ticket = cache.begin_load(&2);
    /// // ... read key 2 ("two"), while someone writes key 2 and tells the cache:
    /// cache.insert(2, "TWO".to_string());
    /// assert!(!cache.complete_load(2, ticket, Some("two".to_string())));
    /// assert_eq!(cache.get(&2).as_deref(), Some("TWO"));
    /// ```
    pub fn begin_load(&self, key: &K) -> LoadTicket<'_> {
        let hash = self.hash(key);
        // Counted before the mark is taken, so that writers from now on bump the key.
        let in_flight = InFlight::enter(&self.inner.loads_in_flight);
        Counters::bump(&self.inner.stats.local().loads);
        LoadTicket {
            hash,
            mark: self.inner.generations.mark(hash),
            _in_flight: in_flight,
        }
    }

    /// Stores what the source answered for `key` (`None`: it does not exist, remembered
    /// only with negative caching on) unless `key` was written or invalidated since
    /// `ticket` was taken; returns whether anything was stored. A ticket of another key
    /// stores nothing.
    pub fn complete_load(&self, key: K, ticket: LoadTicket<'_>, value: Option<V>) -> bool {
        let hash = self.hash(&key);
        if hash != ticket.hash {
            return false;
        }
        let slot = match value {
            Some(v) => Slot::Present(v),
            None if self.inner.expiry.negative_ttl.is_some() => Slot::Absent,
            None => return false,
        };
        let stored = self.store(key, hash, slot, &[ticket.mark]);
        if !stored {
            Counters::bump(&self.inner.stats.local().loads_discarded);
        }
        stored
    }

    /// After the caller wrote `value` for `key` to the source (write-through): caches it,
    /// unless `key` was written or invalidated since `ticket` was taken, before the write
    /// began; then it removes `key` instead, since the other write may be the newer one.
    /// Either way loads of `key` in flight are not stored when they land. Returns whether
    /// `value` was cached.
    ///
    /// ```
    /// use memory_cache_adaptive::{AdaptiveCache, CacheConfig};
    ///
    /// let cache: AdaptiveCache<u32, String> = AdaptiveCache::new(CacheConfig::new(100)).unwrap();
    /// let ticket = cache.begin_load(&1);
    /// // ... write "one" to the source ...
    /// assert!(cache.complete_write(1, ticket, "one".to_string()));
    /// assert_eq!(cache.get(&1).as_deref(), Some("one"));
    ///
    /// let ticket = cache.begin_load(&1);
    /// // ... write "uno" while another writer's update of key 1 lands in the cache:
    /// cache.invalidate(&1);
    /// assert!(!cache.complete_write(1, ticket, "uno".to_string()));
    /// assert_eq!(cache.get(&1), None); // either may be newer: the next read loads
    /// ```
    pub fn complete_write(&self, key: K, ticket: LoadTicket<'_>, value: V) -> bool {
        let hash = self.hash(&key);
        // A write is an access of its own (unlike the insert after a read-through miss,
        // whose read was counted already): written items compete for admission as read ones.
        let slot = Slot::Present(value);
        let weight = self.weigh(&key, &slot);
        let stored = hash == ticket.hash
            && self.with_shard(hash, |shard, ctx| {
                // Checked and bumped under the shard mutex, which every store of this key
                // takes: a load that began before this write either stored before us (and
                // is replaced) or finds the bump and stores nothing. An invalidation bumps
                // without the mutex, then removes under it: after us, removing our value.
                if !self.inner.generations.is_current(ticket.mark) {
                    return false;
                }
                self.inner.generations.bump(hash);
                shard.insert(key.clone(), slot, weight, ctx)
            });
        if !stored {
            self.invalidate(&key);
        }
        stored
    }

    /// [`complete_write`](Self::complete_write) for every key of one write (a batch), each
    /// with the ticket taken before the write began. Keys of one batch can share a fence
    /// stripe, and completing one bumps it: one by one, a later key of the batch would look
    /// written by someone else and be removed instead of cached. Here only bumps from
    /// outside the batch count: a key is cached unless another write or invalidation touched
    /// its stripe since its ticket. Returns how many values were cached.
    ///
    /// ```
    /// use memory_cache_adaptive::{AdaptiveCache, CacheConfig};
    ///
    /// let cache: AdaptiveCache<u32, u32> = AdaptiveCache::new(CacheConfig::new(10_000)).unwrap();
    /// let tickets: Vec<_> = (0..5_000).map(|k| (k, cache.begin_load(&k))).collect();
    /// // ... write the 5,000 keys to the source in one transaction ...
    /// let cached = cache.complete_writes(tickets.into_iter().map(|(k, t)| (k, t, k * 10)));
    /// assert_eq!(cached, 5_000); // some share stripes: all are cached anyway
    /// ```
    pub fn complete_writes<'t>(
        &self,
        writes: impl IntoIterator<Item = (K, LoadTicket<'t>, V)>,
    ) -> usize {
        // This batch's own bumps, by stripe.
        let mut own: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
        let mut cached = 0;
        for (key, ticket, value) in writes {
            let hash = self.hash(&key);
            let stripe = Generations::stripe_of(ticket.mark);
            let slot = Slot::Present(value);
            let weight = self.weigh(&key, &slot);
            let bumps = own.get(&stripe).copied().unwrap_or(0);
            let mut bumped = false;
            let stored = hash == ticket.hash
                && self.with_shard(hash, |shard, ctx| {
                    // As in `complete_write`, checked and bumped under the shard mutex.
                    if !self.inner.generations.is_current_after(ticket.mark, bumps) {
                        return false;
                    }
                    self.inner.generations.bump(hash);
                    bumped = true;
                    shard.insert(key.clone(), slot, weight, ctx)
                });
            let mut added = u64::from(bumped);
            if stored {
                cached += 1;
            } else {
                // Removed with a bump that always happens, so that it can be counted.
                self.inner.generations.bump(hash);
                self.with_shard(hash, |shard, ctx| {
                    shard.remove(&key, EvictionReason::Invalidated, ctx);
                });
                if hash == ticket.hash {
                    added += 1;
                }
            }
            if added > 0 {
                *own.entry(stripe).or_default() += added;
            }
        }
        cached
    }

    /// The cached value of `key`, or the loader's answer. Concurrent callers missing the
    /// same key share one loader run and its result, error included; an error is never
    /// cached. `Ok(None)` ("does not exist") is remembered if negative caching is on. A load
    /// that overlapped a write to `key` is returned but not cached.
    ///
    /// The loader runs on the caller's task; no runtime is required beyond the caller's.
    ///
    /// ```
    /// use memory_cache_adaptive::{AdaptiveCache, CacheConfig};
    ///
    /// # futures::executor::block_on(async {
    /// let cache: AdaptiveCache<u32, String> = AdaptiveCache::new(CacheConfig::new(100)).unwrap();
    /// let v = cache
    ///     .get_or_load(1, || async { Ok::<_, std::io::ErrorKind>(Some("one".to_string())) })
    ///     .await;
    /// assert_eq!(v, Ok(Some("one".to_string())));
    /// assert_eq!(cache.get(&1).as_deref(), Some("one"));
    /// # });
    /// ```
    pub async fn get_or_load<E, F, Fut>(&self, key: K, loader: F) -> Result<Option<V>, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let hash = self.hash(&key);
        match self.lookup_hashed(&key, hash) {
            Lookup::Hit(v) => return Ok(Some(v)),
            Lookup::NotFound => return Ok(None),
            Lookup::Miss => {}
        }
        let marks = || -> Box<[Mark]> { Box::new([self.inner.generations.mark(hash)]) };
        self.load(
            key,
            hash,
            marks,
            loader,
            |cache, key, hash, value, marks| {
                let slot = match value {
                    Some(v) => Slot::Present(v.clone()),
                    None if cache.inner.expiry.negative_ttl.is_some() => Slot::Absent,
                    None => return true,
                };
                cache.store(key, hash, slot, marks)
            },
        )
        .await
    }

    /// The flight machinery shared by both caches: join or start the flight for `key`, run
    /// the loader at most once, and let the settling caller `keep` the result (false from
    /// `keep` counts the load as discarded).
    pub(crate) async fn load<T, E, F, Fut>(
        &self,
        key: K,
        hash: u64,
        marks: impl FnOnce() -> Box<[Mark]>,
        loader: F,
        keep: impl FnOnce(&Self, K, u64, &T, &[Mark]) -> bool,
    ) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let slot = self.slot(hash);
        let _in_flight = InFlight::enter(&self.inner.loads_in_flight);
        let flight = Flight::<T, E>::join_or_start(
            &mut slot.flights.lock(),
            &key,
            &self.inner.generations,
            marks,
        );
        let result = flight
            .cell
            .get_or_init(|| async {
                Counters::bump(&self.inner.stats.local().loads);
                loader().await
            })
            .await;
        if flight.settle() {
            flight.unregister(&mut slot.flights.lock(), &key);
            if let Ok(value) = result
                && !keep(self, key, hash, value, &flight.marks)
            {
                Counters::bump(&self.inner.stats.local().loads_discarded);
            }
        }
        result.clone()
    }
}

/// A read of one key begun with [`AdaptiveCache::begin_load`]; while it lives, writes to
/// the key are fenced off from it.
pub struct LoadTicket<'a> {
    hash: u64,
    mark: Mark,
    _in_flight: InFlight<'a>,
}

impl std::fmt::Debug for LoadTicket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadTicket").finish_non_exhaustive()
    }
}

/// Counts one load as in flight for as long as it lives (also when the caller's future is
/// dropped mid-load).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
