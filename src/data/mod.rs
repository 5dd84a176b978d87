//! Data: random streams, the sparse-feature sampler, feature sets and fixed datasets.
//!
//! * [`rng`]: per-instance random streams (SplitMix64 keys, eight-lane xoshiro128++);
//! * [`sampler`]: batches of sparse features, independent or in correlated / anticorrelated
//!   sets, values uniform on [0, 1] or [-1, 1];
//! * [`ground_truth`]: known unit directions and sparse rows built from them (inputs of
//!   sparse autoencoders);
//! * [`dataset`]: a fixed dataset of T rows, visited full-batch or in shuffled minibatches;
//! * [`sparse_rows`]: rows as lists of their non-zero features (for the sparse training pass);
//! * [`source`]: the seam the trainer uses: a [`DataSpec`] (resolved from the config's
//!   `[data]`) and a [`DataSource`] that fills each training chunk.
//!
//! Every source is deterministic per `(seed, instance)`.

pub mod dataset;
pub mod ground_truth;
pub mod rng;
pub mod sampler;
pub mod source;
pub mod sparse_rows;

pub use dataset::FixedDataset;
pub use rng::{stream_key, LaneRng, SplitMix64, StreamKind, LANES};
pub use sampler::{normalize_rows, FeatureSampler, FeatureSet, SetKind, ValueRange};
pub use source::{DataSource, DataSpec, DatasetSpec};
pub use sparse_rows::SparseRows;
