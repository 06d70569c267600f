//! What cached query results depend on, and what each write invalidates.
//!
//! A page of episodes depends on its filter's reach (the domain it names, or "any episode"
//! without one), on every episode in it, and on the match just beyond its limit, which
//! decides whether it has a cursor (deleting that one, or moving it to another domain, may
//! leave no further match). A write of an episode bumps the guard first (so
//! a query read in flight is not stored), then its domain, "any episode" and the episode
//! itself: a result that could now contain it, or that holds its old version (in whatever
//! domain it used to be), stops being served. Deletes bump the guard and the episode only:
//! a result that does not hold the deleted episode is still right. Patterns follow the same
//! rules.

use std::hash::BuildHasher;

use memory_core::limits::MAX_QUERY_LIMIT;
use memory_core::{EpisodeId, EpisodePage, EpisodeQuery, Pattern, PatternId, PatternQuery};

/// One thing a cached query result depends on.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Dep {
    /// Any episode write; only guards reads in flight.
    EpisodeWrites,
    /// Results of episode queries without a domain filter.
    AnyEpisode,
    /// Results of episode queries of one domain (hashed name: a collision only costs a
    /// spurious miss).
    EpisodeDomain(u64),
    /// Results holding this episode.
    Episode(EpisodeId),
    /// Any pattern write; only guards reads in flight.
    PatternWrites,
    /// Results of pattern queries without a domain filter.
    AnyPattern,
    /// Results of pattern queries of one domain.
    PatternDomain(u64),
    /// Results holding this pattern.
    Pattern(PatternId),
}

pub(crate) fn domain_key(domain: &str) -> u64 {
    foldhash::fast::FixedState::default().hash_one(domain)
}

/// What a result depends on: its reach (`domain`'s dep, or `any` without a domain filter)
/// and each item in it.
fn result_deps(
    domain: Option<&str>,
    by_domain: fn(u64) -> Dep,
    any: Dep,
    items: impl Iterator<Item = Dep>,
) -> Vec<Dep> {
    let reach = domain.map_or(any, |d| by_domain(domain_key(d)));
    std::iter::once(reach).chain(items).collect()
}

/// A cached page of episodes and the match beyond it (if the store was asked for it).
#[derive(Clone)]
pub(crate) struct CachedPage {
    pub(crate) page: EpisodePage,
    /// The first match after the page; `None` when there is none or it was not read.
    pub(crate) next: Option<EpisodeId>,
}

/// `query` with room for one match more, to learn which episode decides the cursor;
/// `None` at the largest limit (such a page then depends on every episode write).
pub(crate) fn probe(query: &EpisodeQuery) -> Option<EpisodeQuery> {
    (query.limit < MAX_QUERY_LIMIT).then(|| query.clone().limit(query.limit + 1))
}

/// What a page of `query` depends on.
pub(crate) fn episode_page(query: &EpisodeQuery, cached: &CachedPage) -> Vec<Dep> {
    let items = cached.page.items.iter().map(|e| Dep::Episode(e.id));
    let beyond = match cached.next {
        Some(next) => Some(Dep::Episode(next)),
        // A cursor whose next match is unknown: any episode write may remove it.
        None if cached.page.next_cursor.is_some() => Some(Dep::EpisodeWrites),
        None => None,
    };
    result_deps(
        query.domain.as_deref(),
        Dep::EpisodeDomain,
        Dep::AnyEpisode,
        items.chain(beyond),
    )
}

/// What the result of a pattern `query` depends on.
pub(crate) fn pattern_result(query: &PatternQuery, items: &[std::sync::Arc<Pattern>]) -> Vec<Dep> {
    let items = items.iter().map(|p| Dep::Pattern(p.id));
    result_deps(
        query.domain.as_deref(),
        Dep::PatternDomain,
        Dep::AnyPattern,
        items,
    )
}

/// What a search's answer depends on. By vector, as a page: its reach and each item in it
/// (an item's cosine is its own, so a write elsewhere matters only if it may enter the
/// reach). By text, or both: every write of the kind (`writes`), because BM25 weighs each
/// word by how many items hold it and how long they are.
pub(crate) fn search_result<T>(
    search: &memory_core::search::Search<impl SearchFilter>,
    found: &[memory_core::search::Scored<T>],
    (writes, any, by_domain): (Dep, Dep, fn(u64) -> Dep),
    item: impl Fn(&T) -> Dep,
) -> Vec<Dep> {
    if search.by.text().is_some() {
        return vec![writes];
    }
    let items = found.iter().map(|s| item(s.item.as_ref()));
    result_deps(search.filter.domain(), by_domain, any, items)
}

/// The domain a search's filter names.
pub(crate) trait SearchFilter {
    fn domain(&self) -> Option<&str>;
}

impl SearchFilter for EpisodeQuery {
    fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }
}

impl SearchFilter for PatternQuery {
    fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }
}

/// What stored items (their own dep, their domain) invalidate after the guard, each once:
/// `any`, every item and every domain.
fn stored<'a>(
    any: Dep,
    by_domain: fn(u64) -> Dep,
    items: impl Iterator<Item = (Dep, &'a str)>,
) -> Vec<Dep> {
    let mut deps = vec![any];
    for (item, domain) in items {
        deps.push(item);
        deps.push(by_domain(domain_key(domain)));
    }
    dedup(deps)
}

/// What a batch of stored episodes (id, domain) invalidates, after the guard.
pub(crate) fn stored_episodes<'a>(items: impl Iterator<Item = (EpisodeId, &'a str)>) -> Vec<Dep> {
    let items = items.map(|(id, domain)| (Dep::Episode(id), domain));
    stored(Dep::AnyEpisode, Dep::EpisodeDomain, items)
}

/// What a batch of stored patterns (id, domain) invalidates, after the guard.
pub(crate) fn stored_patterns<'a>(items: impl Iterator<Item = (PatternId, &'a str)>) -> Vec<Dep> {
    let items = items.map(|(id, domain)| (Dep::Pattern(id), domain));
    stored(Dep::AnyPattern, Dep::PatternDomain, items)
}

fn dedup(mut deps: Vec<Dep>) -> Vec<Dep> {
    let mut seen = std::collections::HashSet::with_capacity(deps.len());
    deps.retain(|d| seen.insert(*d));
    deps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_names_each_dependency_once() {
        let (a, b) = (EpisodeId::new(), EpisodeId::new());
        let deps = stored_episodes([(a, "web"), (b, "web"), (a, "web")].into_iter());
        assert_eq!(
            deps,
            vec![
                Dep::AnyEpisode,
                Dep::Episode(a),
                Dep::EpisodeDomain(domain_key("web")),
                Dep::Episode(b),
            ]
        );
    }
}
