//! The data seam: what an instance's data is ([`DataSpec`], resolved from `[data]`) and where
//! its training batches come from ([`DataSource`]: a fresh stream, or a fixed dataset).

use super::dataset::FixedDataset;
use super::rng::{stream_key, StreamKind, LANES};
use super::sampler::{FeatureSampler, FeatureSet, ValueRange};

/// The data of one instance, beyond its per-feature probabilities: value range, feature sets,
/// and whether training uses a fixed dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSpec {
    /// Range of a present feature's value.
    pub values: ValueRange,
    /// Features drawn together (disjoint); every other feature is independent.
    pub sets: Vec<FeatureSet>,
    /// Train on a fixed dataset instead of fresh batches.
    pub dataset: Option<DatasetSpec>,
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec {
            values: ValueRange::Unit,
            sets: Vec::new(),
            dataset: None,
        }
    }
}

/// A fixed dataset of `rows` rows per instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Number of rows T.
    pub rows: usize,
    /// Each row scaled to unit L2 norm (the test stream too).
    pub normalize: bool,
}

impl DataSpec {
    /// A sampler of this distribution (rows normalised when the dataset asks for it).
    pub fn sampler(&self, feature_probability: &[f32], key: u64, rows: usize) -> FeatureSampler {
        FeatureSampler::with_sets(feature_probability, &self.sets, self.values, key, rows)
            .normalized(self.dataset.is_some_and(|d| d.normalize))
    }
}

/// Rows drawn per fill while a dataset is built (any fixed number gives a fixed dataset).
const DRAW_ROWS: usize = 1024;

/// Where one instance's training batches come from.
#[derive(Clone, Debug)]
pub enum DataSource {
    /// A fresh batch every step.
    Stream(FeatureSampler),
    /// A fixed dataset, drawn once.
    Dataset(FixedDataset),
}

impl DataSource {
    /// The training data of instance `index` under `seed`, in chunks of up to `chunk_rows`.
    pub fn training(
        spec: &DataSpec,
        feature_probability: &[f32],
        seed: u64,
        index: usize,
        chunk_rows: usize,
    ) -> Self {
        let key = stream_key(seed, index as u64, StreamKind::Data);
        match spec.dataset {
            None => DataSource::Stream(spec.sampler(feature_probability, key, chunk_rows)),
            Some(d) => {
                let mut sampler = spec.sampler(feature_probability, key, DRAW_ROWS);
                let shuffle = stream_key(seed, index as u64, StreamKind::Shuffle);
                DataSource::Dataset(FixedDataset::draw(&mut sampler, d.rows, shuffle))
            }
        }
    }

    /// Fresh evaluation batches of instance `index` (for a dataset: its test stream, from the
    /// same distribution, never seen in training).
    pub fn evaluation(
        spec: &DataSpec,
        feature_probability: &[f32],
        seed: u64,
        index: usize,
        chunk_rows: usize,
    ) -> FeatureSampler {
        let key = stream_key(seed, index as u64, StreamKind::Eval);
        spec.sampler(feature_probability, key, chunk_rows)
    }

    /// Start the batch of training step `step`; returns its number of rows (`batch_size` for a
    /// stream; for a dataset, the minibatch or all T rows).
    #[inline(always)]
    pub fn begin_batch(&mut self, step: u64, batch_size: usize) -> usize {
        match self {
            DataSource::Stream(_) => batch_size,
            DataSource::Dataset(d) => d.begin_batch(step, batch_size),
        }
    }

    /// Fill `x` (`features * stride`) with rows `start..start + c` of the current batch.
    #[inline(always)]
    pub fn fill_chunk(&mut self, x: &mut [f32], start: usize, c: usize, stride: usize) {
        match self {
            DataSource::Stream(s) => s.fill_padded(x, c, stride),
            DataSource::Dataset(d) => d.fill_chunk(x, start, c, stride),
        }
    }

    /// Chunk `start..start + c` of the current batch into columns `0..c` of a feature-major
    /// block with lines of `pitch` floats (`x[i * pitch + r]`; pass the block from the chunk's
    /// first column). The same rows, from the same random draws, as [`DataSource::fill_chunk`].
    #[inline(always)]
    pub fn fill_columns(&mut self, x: &mut [f32], pitch: usize, start: usize, c: usize) {
        match self {
            DataSource::Stream(s) => s.fill_pitched(x, c, c, pitch),
            DataSource::Dataset(d) => d.fill_pitched(x, start, c, c, pitch),
        }
    }

    /// The stream's position, for checkpoints. A dataset has none: its rows come from the seed
    /// and its batch from the step count, so it saves zeros.
    pub fn stream_state(&self) -> [u32; 4 * LANES] {
        match self {
            DataSource::Stream(s) => s.rng_state(),
            DataSource::Dataset(_) => [0; 4 * LANES],
        }
    }

    /// Continue from a saved [`DataSource::stream_state`].
    pub fn set_stream_state(&mut self, state: &[u32; 4 * LANES]) {
        if let DataSource::Stream(s) = self {
            s.set_rng_state(state);
        }
    }

    /// Keep a fixed dataset's rows also as lists of their non-zero features (for the sparse
    /// training pass; a stream's chunks are converted as they are drawn).
    pub fn enable_sparse(&mut self) {
        if let DataSource::Dataset(d) = self {
            d.enable_sparse();
        }
    }

    /// The fixed dataset, when training uses one.
    pub fn dataset(&self) -> Option<&FixedDataset> {
        match self {
            DataSource::Dataset(d) => Some(d),
            DataSource::Stream(_) => None,
        }
    }
}
