//! What cached query results depend on, and what each write invalidates.
//!
//! A page of episodes depends on its filter's reach (the domain it names, or "any episode"
//! without one) and on every episode in it. A write of an episode bumps the guard first (so
//! a query read in flight is not stored), then its domain, "any episode" and the episode
//! itself: a result that could now contain it, or that holds its old version (in whatever
//! domain it used to be), stops being served. Deletes bump the guard and the episode only:
//! a result that does not hold the deleted episode is still right. Patterns follow the same
//! rules.

use std::hash::BuildHasher;

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

/// What a page of `query` depends on.
pub(crate) fn episode_page(query: &EpisodeQuery, page: &EpisodePage) -> Vec<Dep> {
    let reach = match &query.domain {
        Some(domain) => Dep::EpisodeDomain(domain_key(domain)),
        None => Dep::AnyEpisode,
    };
    std::iter::once(reach)
        .chain(page.items.iter().map(|e| Dep::Episode(e.id)))
        .collect()
}

/// What the result of a pattern `query` depends on.
pub(crate) fn pattern_result(query: &PatternQuery, items: &[std::sync::Arc<Pattern>]) -> Vec<Dep> {
    let reach = match &query.domain {
        Some(domain) => Dep::PatternDomain(domain_key(domain)),
        None => Dep::AnyPattern,
    };
    std::iter::once(reach)
        .chain(items.iter().map(|p| Dep::Pattern(p.id)))
        .collect()
}

/// The dependencies a batch of stored episodes (id, domain) invalidates, after the guard,
/// each once.
pub(crate) fn stored_episodes<'a>(items: impl Iterator<Item = (EpisodeId, &'a str)>) -> Vec<Dep> {
    let mut deps = vec![Dep::AnyEpisode];
    for (id, domain) in items {
        deps.push(Dep::Episode(id));
        deps.push(Dep::EpisodeDomain(domain_key(domain)));
    }
    dedup(deps)
}

/// The dependencies a batch of stored patterns (id, domain) invalidates, after the guard.
pub(crate) fn stored_patterns<'a>(items: impl Iterator<Item = (PatternId, &'a str)>) -> Vec<Dep> {
    let mut deps = vec![Dep::AnyPattern];
    for (id, domain) in items {
        deps.push(Dep::Pattern(id));
        deps.push(Dep::PatternDomain(domain_key(domain)));
    }
    dedup(deps)
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
