//! Histogram buckets: the range an operation can take, from a cache hit to a slow remote
//! call.

/// Operation latency bucket bounds in seconds: 250 ns doubling up to about 4.2 s (25
/// buckets), so a 150 ns cache hit, a 10 µs local read and a 500 ms remote call each land
/// in a bucket of their own order of magnitude.
pub fn latency_seconds() -> Vec<f64> {
    (0..25).map(|i| 250e-9 * f64::from(1u32 << i)).collect()
}

/// Batch size bucket bounds in items, up to the 10,000-item batch limit.
pub fn batch_items() -> Vec<f64> {
    vec![
        1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn latency_buckets_span_sub_microsecond_to_seconds() {
        let b = super::latency_seconds();
        assert!(b[0] < 1e-6);
        assert!(*b.last().unwrap_or(&0.0) > 4.0);
        assert!(b.windows(2).all(|w| w[0] < w[1]));
    }
}
