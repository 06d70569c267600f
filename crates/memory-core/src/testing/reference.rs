//! The reference answers: plain filters over every stored item, written independently of
//! the backends' (and [`EpisodeQuery::matches`]'s) code so that they check it.

use crate::{Episode, EpisodeId, EpisodeQuery, Pattern, PatternId, PatternQuery};

/// Every episode in `all` that `query` selects, in the documented order (newest start first,
/// ties by descending id), ignoring `limit` and `cursor`.
pub fn episode_ids(all: &[Episode], query: &EpisodeQuery) -> Vec<EpisodeId> {
    let mut hits: Vec<&Episode> = Vec::new();
    for e in all {
        if let Some(since) = query.since
            && e.start_time < since
        {
            continue;
        }
        if let Some(until) = query.until
            && e.start_time >= until
        {
            continue;
        }
        if let Some(domain) = &query.domain
            && e.context.domain != *domain
        {
            continue;
        }
        if let Some(task_type) = query.task_type
            && e.task_type != task_type
        {
            continue;
        }
        if let Some(kind) = query.outcome {
            match &e.outcome {
                Some(outcome) if outcome.kind() == kind => {}
                _ => continue,
            }
        }
        if !query.tags.iter().all(|tag| e.tags.iter().any(|t| t == tag)) {
            continue;
        }
        if !query
            .metadata
            .iter()
            .all(|(k, v)| e.metadata.iter().any(|(ek, ev)| ek == k && ev == v))
        {
            continue;
        }
        hits.push(e);
    }
    hits.sort_by(|a, b| {
        b.start_time
            .cmp(&a.start_time)
            .then_with(|| b.id.as_bytes().cmp(a.id.as_bytes()))
    });
    hits.into_iter().map(|e| e.id).collect()
}

/// Every pattern in `all` that `query` selects, in the documented order (highest success
/// rate first, ties by ascending id), cut to `limit`.
pub fn pattern_ids(all: &[Pattern], query: &PatternQuery) -> Vec<PatternId> {
    let mut hits: Vec<&Pattern> = all
        .iter()
        .filter(|p| query.kind.is_none_or(|k| p.data.kind() == k))
        .filter(|p| query.min_success_rate.is_none_or(|r| p.success_rate >= r))
        .filter(|p| query.domain.as_ref().is_none_or(|d| p.domain == *d))
        .collect();
    hits.sort_by(|a, b| {
        b.success_rate
            .partial_cmp(&a.success_rate)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.id.as_bytes().cmp(b.id.as_bytes()))
    });
    hits.into_iter().take(query.limit).map(|p| p.id).collect()
}
