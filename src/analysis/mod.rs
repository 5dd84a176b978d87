//! Analysis of trained weights: per-feature metrics and the geometry of feature directions.
//!
//! Everything here takes `W` in the notebook layout (`[n][m]`, row `i` = `W_i`) and works in
//! f64, so it applies equally to weights trained here and weights loaded from a file.

pub mod adversarial;
pub mod geometry;
pub mod metrics;
pub mod motif;
pub mod neurons;

pub use geometry::{describe_geometry, PlaneGeometry};
pub use metrics::{FeatureMetrics, REPRESENTED_NORM};
pub mod theory;
pub mod verdict;

pub use verdict::{Check, Verdict};
