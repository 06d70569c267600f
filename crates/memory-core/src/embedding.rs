//! [`Embedding`]: the caller's vector for an episode or a pattern, for similarity search.
//! This crate computes none; a store fixes one dimension for all of its items.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Problem, ValidationError};
use crate::heap::HeapSize;

/// The largest dimension an embedding may have.
pub const MAX_EMBEDDING_DIMENSION: usize = 4_096;

/// A vector of `f32`, at least one and at most [`MAX_EMBEDDING_DIMENSION`] values, every one
/// finite and not all zero (the cosine of a zero vector is undefined).
///
/// ```
/// use memory_core::Embedding;
///
/// let a = Embedding::new(vec![1.0, 0.0]).unwrap();
/// let b = Embedding::new(vec![1.0, 1.0]).unwrap();
/// assert_eq!(a.dimension(), 2);
/// assert!((a.cosine(&b) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6);
/// assert!(Embedding::new(vec![f32::NAN]).is_err());
/// assert!(Embedding::new(vec![0.0, 0.0]).is_err());
/// ```
///
/// One pointer wide (an `Option<Embedding>` adds 8 bytes to an item in memory), and clones
/// share the values.
#[derive(Clone, PartialEq)]
pub struct Embedding(Arc<Vec<f32>>);

/// Encoded as the sequence of its values.
impl Serialize for Embedding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.as_slice().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Embedding {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<f32>::deserialize(deserializer).map(|values| Embedding(Arc::new(values)))
    }
}

impl Embedding {
    /// Checks `values` and wraps them.
    pub fn new(values: Vec<f32>) -> Result<Self, ValidationError> {
        let embedding = Embedding(Arc::new(values));
        embedding.validate("embedding")?;
        Ok(embedding)
    }

    /// The values.
    pub fn values(&self) -> &[f32] {
        &self.0
    }

    /// How many values.
    pub fn dimension(&self) -> usize {
        self.0.len()
    }

    /// Checks the documented limits (a decoded or deserialized embedding was not checked);
    /// `field` names it in the error.
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if self.0.is_empty() {
            return Err(ValidationError::new(field, Problem::Empty));
        }
        if self.0.len() > MAX_EMBEDDING_DIMENSION {
            return Err(ValidationError::new(
                field,
                Problem::TooMany {
                    max: MAX_EMBEDDING_DIMENSION,
                    actual: self.0.len(),
                },
            ));
        }
        if let Some(bad) = self.0.iter().find(|v| !v.is_finite()) {
            return Err(ValidationError::new(
                field,
                Problem::NotFinite(f64::from(*bad)),
            ));
        }
        if self.0.iter().all(|v| *v == 0.0) {
            return Err(ValidationError::new(
                field,
                Problem::Invalid("is all zeros (its direction is undefined)".into()),
            ));
        }
        Ok(())
    }

    /// The cosine similarity with `other`, in `[-1, 1]`, computed in `f64`; 0 when the
    /// dimensions differ (a store never compares such vectors).
    pub fn cosine(&self, other: &Embedding) -> f64 {
        if self.0.len() != other.0.len() {
            return 0.0;
        }
        let (mut dot, mut a, mut b) = (0.0f64, 0.0f64, 0.0f64);
        for (x, y) in self.0.iter().zip(other.0.iter()) {
            let (x, y) = (f64::from(*x), f64::from(*y));
            dot += x * y;
            a += x * x;
            b += y * y;
        }
        let norm = a.sqrt() * b.sqrt();
        if norm == 0.0 {
            0.0
        } else {
            (dot / norm).clamp(-1.0, 1.0)
        }
    }
}

impl std::fmt::Debug for Embedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Embedding({} dimensions)", self.0.len())
    }
}

impl HeapSize for Embedding {
    /// The shared allocation (its counts and the vector) and the values.
    fn heap_size(&self) -> usize {
        std::mem::size_of::<[usize; 2]>()
            + std::mem::size_of::<Vec<f32>>()
            + self.0.capacity() * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_typed_errors() {
        assert!(Embedding::new(vec![]).is_err());
        assert!(Embedding::new(vec![1.0; MAX_EMBEDDING_DIMENSION]).is_ok());
        assert!(Embedding::new(vec![1.0; MAX_EMBEDDING_DIMENSION + 1]).is_err());
        assert!(Embedding::new(vec![1.0, f32::INFINITY]).is_err());
        let e = Embedding::new(vec![0.0; 3]).unwrap_err();
        assert!(e.to_string().contains("all zeros"), "{e}");
    }

    #[test]
    fn cosine_is_scale_free_and_bounded() {
        let a = Embedding::new(vec![1.0, 2.0, 3.0]).unwrap();
        let b = Embedding::new(vec![2.0, 4.0, 6.0]).unwrap();
        let c = Embedding::new(vec![-1.0, -2.0, -3.0]).unwrap();
        assert!((a.cosine(&b) - 1.0).abs() < 1e-12);
        assert!((a.cosine(&c) + 1.0).abs() < 1e-12);
        let short = Embedding::new(vec![1.0]).unwrap();
        assert_eq!(a.cosine(&short), 0.0);
    }
}
