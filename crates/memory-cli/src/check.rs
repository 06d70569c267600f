//! `memory check`: every stored item read and decoded, page by page, through
//! [`StorageBackend::check_items`]; those that do not decode are reported, not fatal.

use memory_core::{EntityKind, StorageBackend};
use serde::Serialize;

use crate::jsonl::PAGE;

/// Items checked, per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Episodes.
    pub episodes: u64,
    /// Patterns.
    pub patterns: u64,
    /// Heuristics.
    pub heuristics: u64,
}

/// One item that does not decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `episode`, `pattern` or `heuristic`.
    pub kind: &'static str,
    /// Its id.
    pub id: String,
    /// What reading it gave.
    pub error: String,
}

/// What [`check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Items read.
    pub checked: Checked,
    /// Those that do not decode, in kind then id order.
    pub problems: Vec<Problem>,
}

/// Reads every item of `store`; `tick` gets the running count.
pub async fn check(
    store: &dyn StorageBackend,
    mut tick: impl FnMut(u64),
) -> anyhow::Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut total = 0;
    for (kind, name) in [
        (EntityKind::Episode, "episode"),
        (EntityKind::Pattern, "pattern"),
        (EntityKind::Heuristic, "heuristic"),
    ] {
        let mut after = None;
        loop {
            let page = store.check_items(kind, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let n = page.len() as u64;
            for item in page {
                if let Some(error) = item.problem {
                    report.problems.push(Problem {
                        kind: name,
                        id: item.id.to_string(),
                        error: error.to_string(),
                    });
                }
            }
            match kind {
                EntityKind::Episode => report.checked.episodes += n,
                EntityKind::Pattern => report.checked.patterns += n,
                EntityKind::Heuristic => report.checked.heuristics += n,
            }
            total += n;
            tick(total);
        }
    }
    Ok(report)
}
