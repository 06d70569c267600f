//! The regression gate's decisions, kept apart from measuring so that they can be tested on
//! synthetic inputs.
//!
//! Two kinds of figure:
//!
//! - **deterministic** ones (hit ratios on the seeded workload, statement-cache hit ratio,
//!   statements per operation) are the same on every run of the same build, so they are
//!   compared with a tight absolute tolerance;
//! - **timing** ones are noisy on a shared machine, so each is a ratio to a reference
//!   measured in the same run (the store's time over raw libsql's), repeated; the gate
//!   compares the medians and allows a change only as large as the measured noise makes
//!   plausible, never more than [`MAX_THRESHOLD`], so that a 10 % slowdown always fails.

/// The smallest relative change a timing figure is allowed before it counts (changes below
/// it are never reported, whatever the noise).
pub const MIN_THRESHOLD: f64 = 0.03;
/// The largest allowed relative change: above it a run is too noisy to decide, and the
/// gate fails asking for more repetitions rather than let a 10 % slowdown through.
pub const MAX_THRESHOLD: f64 = 0.08;

/// What the gate concluded about one figure.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Within the allowed change (or better).
    Pass,
    /// Worse than allowed.
    Regressed {
        /// The relative change towards worse (0.12 = 12 % worse).
        change: f64,
        /// The change that was allowed.
        allowed: f64,
    },
    /// Too noisy to tell a 10 % slowdown from noise: rerun with more repetitions.
    Inconclusive {
        /// The change that noise alone would explain.
        needed: f64,
    },
}

impl Verdict {
    /// Whether the gate lets this figure through.
    pub fn passes(&self) -> bool {
        matches!(self, Verdict::Pass)
    }
}

/// A deterministic figure: fails if `now` is worse than `base` by more than `tolerance`
/// (absolute).
///
/// ```
/// use memory_bench::gate::{Verdict, deterministic};
///
/// assert_eq!(deterministic(0.857, 0.857, 0.001, true), Verdict::Pass);
/// assert!(!deterministic(0.857, 0.840, 0.001, true).passes()); // a hit ratio dropped
/// ```
pub fn deterministic(base: f64, now: f64, tolerance: f64, higher_is_better: bool) -> Verdict {
    let worse_by = if higher_is_better {
        base - now
    } else {
        now - base
    };
    if worse_by > tolerance {
        Verdict::Regressed {
            change: if base == 0.0 {
                f64::INFINITY
            } else {
                worse_by / base.abs()
            },
            allowed: tolerance / base.abs().max(f64::MIN_POSITIVE),
        }
    } else {
        Verdict::Pass
    }
}

/// The median of the finite values in `samples`, if any.
pub(crate) fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// The standard error of the median of `samples`, relative to the median: the median
/// absolute deviation scaled to a standard deviation (×1.4826), times 1.253/√n.
fn relative_error_of_median(samples: &[f64]) -> Option<f64> {
    let m = median(samples)?;
    if m <= 0.0 {
        return None;
    }
    let deviations: Vec<f64> = samples.iter().map(|x| (x - m).abs()).collect();
    let sigma = 1.4826 * median(&deviations)?;
    Some(1.253 * sigma / (samples.len() as f64).sqrt() / m)
}

/// A timing figure given as repeated same-run ratios (lower is better, for example the
/// store's time over raw libsql's): compares the medians; the allowed change is three
/// standard errors of their difference, at least [`MIN_THRESHOLD`]; if that exceeds
/// [`MAX_THRESHOLD`] the verdict is [`Verdict::Inconclusive`].
///
/// ```
/// use memory_bench::gate::timing;
///
/// let base = [1.10, 1.12, 1.09, 1.11, 1.10, 1.13, 1.08, 1.11];
/// let same = [1.11, 1.09, 1.12, 1.10, 1.10, 1.12, 1.09, 1.11];
/// let slower: Vec<f64> = same.iter().map(|x| x * 1.10).collect();
/// assert!(timing(&base, &same).passes());
/// assert!(!timing(&base, &slower).passes());
/// ```
pub fn timing(base: &[f64], now: &[f64]) -> Verdict {
    let (Some(mb), Some(mn), Some(eb), Some(en)) = (
        median(base),
        median(now),
        relative_error_of_median(base),
        relative_error_of_median(now),
    ) else {
        return Verdict::Inconclusive {
            needed: f64::INFINITY,
        };
    };
    let needed = (3.0 * (eb * eb + en * en).sqrt()).max(MIN_THRESHOLD);
    if needed > MAX_THRESHOLD {
        return Verdict::Inconclusive { needed };
    }
    let change = mn / mb - 1.0;
    if change > needed {
        Verdict::Regressed {
            change,
            allowed: needed,
        }
    } else {
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` samples around `center` with relative spread `spread`, deterministic.
    fn samples(center: f64, spread: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let unit = (x >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
                center * (1.0 + spread * (2.0 * unit - 1.0))
            })
            .collect()
    }

    #[test]
    fn an_unchanged_build_passes_on_many_noisy_runs() {
        for seed in 0..200 {
            let base = samples(1.10, 0.04, 12, seed);
            let now = samples(1.10, 0.04, 12, seed + 1_000);
            assert!(
                timing(&base, &now).passes(),
                "seed {seed}: {:?}",
                timing(&base, &now)
            );
        }
    }

    #[test]
    fn a_ten_percent_slowdown_always_fails() {
        for seed in 0..200 {
            let base = samples(1.10, 0.04, 12, seed);
            let now = samples(1.10 * 1.10, 0.04, 12, seed + 1_000);
            assert!(!timing(&base, &now).passes(), "seed {seed}");
        }
    }

    #[test]
    fn an_improvement_passes() {
        let base = samples(1.10, 0.04, 12, 1);
        let now = samples(0.90, 0.04, 12, 2);
        assert_eq!(timing(&base, &now), Verdict::Pass);
    }

    #[test]
    fn too_much_noise_is_inconclusive_not_a_pass() {
        let base = samples(1.10, 0.6, 6, 3);
        let now = samples(1.10, 0.6, 6, 4);
        assert!(matches!(timing(&base, &now), Verdict::Inconclusive { .. }));
        assert!(matches!(timing(&[], &now), Verdict::Inconclusive { .. }));
    }

    #[test]
    fn deterministic_figures_allow_only_their_tolerance() {
        assert!(deterministic(0.8573, 0.8573, 0.0005, true).passes());
        assert!(deterministic(0.8573, 0.8570, 0.0005, true).passes());
        assert!(!deterministic(0.8573, 0.8560, 0.0005, true).passes());
        assert!(
            deterministic(0.8573, 0.90, 0.0005, true).passes(),
            "better is fine"
        );
        // Lower is better (statements prepared per operation).
        assert!(!deterministic(0.01, 0.5, 0.001, false).passes());
        assert!(deterministic(0.01, 0.0, 0.001, false).passes());
    }
}
