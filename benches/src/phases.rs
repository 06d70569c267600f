//! The per-phase latency breakdown of the soak: the stores time their phases as trace spans
//! of target `memory::phase` (checkout, statement, transaction, decode, change-check wait);
//! this layer records each span's life, creation to close, into a histogram per phase.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The target the stores' phase spans carry.
pub const TARGET: &str = "memory::phase";

/// Histograms of phase durations in nanoseconds, by phase name.
pub type Recorded = BTreeMap<&'static str, Histogram<u64>>;

#[derive(Clone, Default)]
struct PhaseLayer {
    recorded: Arc<Mutex<Recorded>>,
}

struct Opened(Instant);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for PhaseLayer {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.target() == TARGET {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target() == TARGET
    }

    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Opened(Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(opened) = span.extensions().get::<Opened>().map(|o| o.0) else {
            return;
        };
        let nanos = u64::try_from(opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut recorded = self.recorded.lock();
        let name = span.metadata().name();
        if !recorded.contains_key(name) {
            // Fails only for bounds or a precision out of range; these are fixed.
            let Ok(histogram) = crate::soak::latency_histogram() else {
                return;
            };
            recorded.insert(name, histogram);
        }
        if let Some(histogram) = recorded.get_mut(name) {
            histogram.saturating_record(nanos.max(1));
        }
    }
}

static INSTALLED: OnceLock<Option<PhaseLayer>> = OnceLock::new();

/// Starts recording phases (installing the recorder as this process's global subscriber the
/// first time) and forgets what was recorded before. `false` if another global subscriber
/// was installed first: there is then no breakdown.
pub fn start() -> bool {
    let layer = INSTALLED.get_or_init(|| {
        let layer = PhaseLayer::default();
        tracing_subscriber::registry()
            .with(layer.clone())
            .try_init()
            .ok()
            .map(|()| layer)
    });
    match layer {
        Some(layer) => {
            layer.recorded.lock().clear();
            true
        }
        None => false,
    }
}

/// What was recorded since [`start`] (empty without a recorder).
pub fn take() -> Recorded {
    match INSTALLED.get() {
        Some(Some(layer)) => std::mem::take(&mut *layer.recorded.lock()),
        _ => Recorded::new(),
    }
}
