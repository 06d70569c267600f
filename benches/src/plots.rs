//! SVG plots of a run: hit ratio against cache size per policy, and the latency
//! distribution of reads by id without the cache, through it, and with raw libsql.

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::curves::{CurvePoint, POLICIES};
use crate::run::QuantilePoint;

/// Which side of a [`QuantilePoint`] a line shows.
type Side = fn(&QuantilePoint) -> f64;

const SIZE: (u32, u32) = (900, 560);
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// A chart's frame: the caption and room for the axis labels.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56);
    builder
}

/// The legend, in the lower right corner.
fn legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e:?}")
}

/// Hit ratio (percent) against the budget (percent of the data set's bytes), one line per
/// policy; `measured` marks what the live store hit at its configured budget.
///
/// ```
/// use memory_bench::curves::CurvePoint;
///
/// let points: Vec<CurvePoint> = ["this cache", "LRU", "moka", "optimum"]
///     .iter()
///     .flat_map(|p| [0.1, 0.3].map(|share| CurvePoint {
///         policy: p.to_string(),
///         budget_bytes: (share * 1e6) as u64,
///         budget_share: share,
///         hit_ratio: share * 2.0,
///         hit_ratio_without_read_backs: share * 1.5,
///     }))
///     .collect();
/// let svg = memory_bench::plots::hit_ratio_svg(&points, Some((0.3, 0.55)))?;
/// assert!(svg.starts_with("<svg") && svg.contains("moka"));
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn hit_ratio_svg(
    points: &[CurvePoint],
    measured: Option<(f64, f64)>,
) -> anyhow::Result<String> {
    let max_share = points
        .iter()
        .map(|p| p.budget_share * 100.0)
        .fold(1.0, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = frame(
            &root,
            "Episode-cache hit ratio by cache size (agent-session workload)",
        )
        .build_cartesian_2d(0.0..max_share * 1.05, 0.0..100.0)
        .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("cache budget, % of the data set's bytes")
            .y_desc("read hit ratio, %")
            .draw()
            .map_err(plot_error)?;
        for (policy, colour) in POLICIES.iter().zip(COLOURS) {
            let line: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.policy == *policy)
                .map(|p| (p.budget_share * 100.0, p.hit_ratio * 100.0))
                .collect();
            chart
                .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
                .map_err(plot_error)?
                .label(*policy)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(line.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                .map_err(plot_error)?;
        }
        if let Some((share, ratio)) = measured {
            chart
                .draw_series(std::iter::once(Cross::new(
                    (share * 100.0, ratio * 100.0),
                    8,
                    BLACK.stroke_width(2),
                )))
                .map_err(plot_error)?
                .label("this run's live store")
                .legend(|(x, y)| Cross::new((x + 10, y), 6, BLACK.stroke_width(2)));
        }
        legend(&mut chart)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// The share of reads by id (y) that took at most a given time (x, log scale), for raw
/// libsql, the store without its cache and the cached store.
///
/// ```
/// use memory_bench::run::QuantilePoint;
///
/// let points: Vec<QuantilePoint> = [0.1, 0.5, 0.9]
///     .iter()
///     .map(|&q| QuantilePoint { quantile: q, raw_us: 30.0 + q, store_us: 31.0 + q, cached_us: 0.8 + q })
///     .collect();
/// let svg = memory_bench::plots::latency_svg(&points)?;
/// assert!(svg.contains("cached"));
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn latency_svg(points: &[QuantilePoint]) -> anyhow::Result<String> {
    let all = points
        .iter()
        .flat_map(|p| [p.raw_us, p.store_us, p.cached_us]);
    let low = all.clone().fold(f64::INFINITY, f64::min).max(0.01) / 1.5;
    let high = all.fold(0.0, f64::max).max(low * 10.0) * 1.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = frame(
            &root,
            "Read by id: latency distribution, cached vs uncached",
        )
        .build_cartesian_2d((low..high).log_scale(), 0.0..100.0)
        .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("latency, µs (log scale)")
            .y_desc("reads at most this fast, %")
            .draw()
            .map_err(plot_error)?;
        let series: [(&str, Side); 3] = [
            ("cached store", |p| p.cached_us),
            ("store without cache", |p| p.store_us),
            ("raw libsql", |p| p.raw_us),
        ];
        for ((name, value), colour) in series.into_iter().zip(COLOURS) {
            let line: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (value(p), p.quantile * 100.0))
                .collect();
            chart
                .draw_series(LineSeries::new(line, colour.stroke_width(2)))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        legend(&mut chart)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
