//! Seeded vectors for search checks and benchmarks: the same on every backend and run.
//!
//! ```
//! use memory_core::testing::vectors::Structured;
//!
//! let mut a = Structured::new(7, 32, 12);
//! let mut b = Structured::new(7, 32, 12);
//! assert_eq!(a.next(), b.next());
//! assert_eq!(a.next().dimension(), 32);
//! ```

use crate::Embedding;

/// A seeded SplitMix64.
pub struct Seeded(u64);

impl Seeded {
    /// The sequence of `seed`.
    pub fn seed_from_u64(seed: u64) -> Self {
        Seeded(seed)
    }

    /// Uniform in `[-1, 1)`.
    pub fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// A vector of `dimension` uniform values (not all zero).
    pub fn uniform(&mut self, dimension: usize) -> Embedding {
        loop {
            let values: Vec<f32> = (0..dimension).map(|_| self.unit()).collect();
            if let Ok(e) = Embedding::new(values) {
                return e;
            }
        }
    }
}

/// Vectors with the structure of real embeddings: a point in a `latent`-dimensional
/// subspace (a seeded random basis) plus noise in every dimension, so that nearest
/// neighbours are well defined (uniform noise in many dimensions has none: every point is
/// about as far from every other).
pub struct Structured {
    basis: Vec<Vec<f32>>,
    rng: Seeded,
}

impl Structured {
    /// Vectors of `dimension` values around a `latent`-dimensional subspace.
    pub fn new(seed: u64, dimension: usize, latent: usize) -> Self {
        let mut rng = Seeded::seed_from_u64(seed);
        let basis = (0..latent)
            .map(|_| (0..dimension).map(|_| rng.unit()).collect())
            .collect();
        Structured { basis, rng }
    }

    /// The next vector.
    #[allow(clippy::should_implement_trait)] // endless and infallible: not an iterator
    pub fn next(&mut self) -> Embedding {
        let dimension = self.basis.first().map_or(0, Vec::len);
        loop {
            let weights: Vec<f32> = (0..self.basis.len()).map(|_| self.rng.unit()).collect();
            let values: Vec<f32> = (0..dimension)
                .map(|j| {
                    let signal: f32 = weights.iter().zip(&self.basis).map(|(w, b)| w * b[j]).sum();
                    signal + 0.25 * self.rng.unit()
                })
                .collect();
            if let Ok(e) = Embedding::new(values) {
                return e;
            }
        }
    }
}
