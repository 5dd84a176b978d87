//! A fixed, finite dataset: T rows drawn once from a sampler, visited full-batch or in
//! shuffled minibatches (the memorization experiments train on such a set).
//!
//! Which rows a step uses depends only on the step number: with batch size b, an epoch is
//! ⌈T / b⌉ steps; epoch e visits the rows in a permutation drawn from its own key (derived from
//! the instance's shuffle stream and e), b rows a step, the last step of an epoch taking what is
//! left. A full batch (b ≥ T) visits every row, in order, every step. So a resumed run needs no
//! saved position beyond the step count, and the rows themselves are drawn again from the seed.

use super::rng::SplitMix64;
use super::sampler::FeatureSampler;
use super::sparse_rows::SparseRows;

/// Rows of one instance's fixed dataset, feature-major (`x[i * rows + r]`).
#[derive(Clone, Debug)]
pub struct FixedDataset {
    x: Vec<f32>,
    features: usize,
    rows: usize,
    shuffle_key: u64,
    /// The row order of the current epoch, and which epoch it is.
    order: Vec<u32>,
    epoch: Option<u64>,
    /// Rows of the current batch: `order[batch_start..batch_start + batch_rows]`.
    batch_start: usize,
    batch_rows: usize,
    /// The rows as lists of non-zero features, once [`FixedDataset::enable_sparse`] ran.
    sparse: Option<SparseRows>,
}

impl FixedDataset {
    /// Draw `rows` rows from `sampler` (in chunks of its capacity).
    pub fn draw(sampler: &mut FeatureSampler, rows: usize, shuffle_key: u64) -> Self {
        let n = sampler.features();
        let chunk = sampler.max_rows();
        let mut x = vec![0.0f32; n * rows];
        let mut buf = vec![0.0f32; n * chunk];
        let mut start = 0;
        while start < rows {
            let c = chunk.min(rows - start);
            sampler.fill(&mut buf[..n * c], c);
            for i in 0..n {
                x[i * rows + start..i * rows + start + c].copy_from_slice(&buf[i * c..(i + 1) * c]);
            }
            start += c;
        }
        FixedDataset {
            x,
            features: n,
            rows,
            shuffle_key,
            order: (0..rows as u32).collect(),
            epoch: None,
            batch_start: 0,
            batch_rows: rows,
            sparse: None,
        }
    }

    /// Also keep the rows as lists of their non-zero features (for the sparse training pass).
    pub fn enable_sparse(&mut self) {
        if self.sparse.is_none() {
            self.sparse = Some(SparseRows::from_feature_major(
                &self.x,
                self.features,
                self.rows,
                self.rows,
            ));
        }
    }

    /// The current batch in sparse form: all rows, and the indices of the batch's rows in
    /// visiting order; `None` until [`FixedDataset::enable_sparse`].
    pub fn sparse_batch(&self) -> Option<(&SparseRows, &[u32])> {
        let rows = &self.order[self.batch_start..self.batch_start + self.batch_rows];
        self.sparse.as_ref().map(|s| (s, rows))
    }

    /// Number of rows T.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows, feature-major `[features][rows]`.
    pub fn x(&self) -> &[f32] {
        &self.x
    }

    /// Choose the rows of training step `step` (0-based) at batch size `batch_size`; returns
    /// how many rows the batch has.
    pub fn begin_batch(&mut self, step: u64, batch_size: usize) -> usize {
        let b = batch_size.clamp(1, self.rows);
        if b == self.rows {
            self.batch_start = 0;
            self.batch_rows = self.rows;
            return self.rows;
        }
        let per_epoch = self.rows.div_ceil(b) as u64;
        let (epoch, k) = (step / per_epoch, (step % per_epoch) as usize);
        if self.epoch != Some(epoch) {
            self.shuffle(epoch);
        }
        self.batch_start = k * b;
        self.batch_rows = b.min(self.rows - self.batch_start);
        self.batch_rows
    }

    /// Fisher–Yates over the row indices with a generator keyed by (shuffle key, epoch).
    fn shuffle(&mut self, epoch: u64) {
        let mut rng = SplitMix64(self.shuffle_key ^ epoch.wrapping_mul(0x9FB2_1C65_1E98_DF25));
        for (k, v) in self.order.iter_mut().enumerate() {
            *v = k as u32;
        }
        for k in (1..self.rows).rev() {
            let j = (rng.next_u64() % (k as u64 + 1)) as usize;
            self.order.swap(k, j);
        }
        self.epoch = Some(epoch);
    }

    /// Copy rows `start..start + c` of the current batch into `x` (`features * stride`,
    /// feature-major), zero-padded to `stride`.
    #[inline(always)]
    pub fn fill_chunk(&self, x: &mut [f32], start: usize, c: usize, stride: usize) {
        self.fill_pitched(x, start, c, stride, stride);
    }

    /// [`FixedDataset::fill_chunk`] into a wider buffer: feature `i`'s values and padding go
    /// to `x[i * pitch..i * pitch + stride]`, the rest of each line is left alone.
    pub fn fill_pitched(&self, x: &mut [f32], start: usize, c: usize, stride: usize, pitch: usize) {
        assert!(
            start + c <= self.batch_rows && c <= stride && stride <= pitch,
            "chunk outside the batch"
        );
        let rows = &self.order[self.batch_start + start..self.batch_start + start + c];
        for i in 0..self.features {
            let from = &self.x[i * self.rows..(i + 1) * self.rows];
            let (to, padding) = x[i * pitch..i * pitch + stride].split_at_mut(c);
            for (v, &r) in to.iter_mut().zip(rows) {
                *v = from[r as usize];
            }
            padding.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ValueRange;

    fn dataset(rows: usize) -> FixedDataset {
        let mut s = FeatureSampler::new(&[0.5; 3], ValueRange::Unit, 2, 64);
        FixedDataset::draw(&mut s, rows, 77)
    }

    /// Row `r` of the dataset as a tuple of its features.
    fn row(d: &FixedDataset, r: usize) -> Vec<f32> {
        (0..3).map(|i| d.x()[i * d.rows() + r]).collect()
    }

    #[test]
    fn every_epoch_visits_every_row_once() {
        let mut d = dataset(10);
        let mut seen_epochs = Vec::new();
        for epoch in 0..3u64 {
            let mut seen = Vec::new();
            for k in 0..3 {
                let rows = d.begin_batch(epoch * 3 + k, 4);
                assert_eq!(rows, if k == 2 { 2 } else { 4 });
                let mut x = vec![0.0; 3 * 16];
                d.fill_chunk(&mut x, 0, rows, 16);
                for r in 0..rows {
                    seen.push((0..3).map(|i| x[i * 16 + r]).collect::<Vec<_>>());
                }
                assert!(x[rows..16].iter().all(|&v| v == 0.0), "padding is zero");
            }
            let mut all: Vec<Vec<f32>> = (0..10).map(|r| row(&d, r)).collect();
            let key = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            all.sort_by_key(key);
            let mut sorted = seen.clone();
            sorted.sort_by_key(key);
            assert_eq!(sorted, all, "epoch {epoch} visits each row once");
            seen_epochs.push(seen);
        }
        assert_ne!(seen_epochs[0], seen_epochs[1], "epochs are shuffled anew");
        // The order depends only on the step: a fresh copy agrees at any step.
        let mut again = dataset(10);
        again.begin_batch(5, 4);
        d.begin_batch(5, 4);
        let (mut a, mut b) = (vec![0.0; 3 * 16], vec![0.0; 3 * 16]);
        d.fill_chunk(&mut a, 0, 2, 16);
        again.fill_chunk(&mut b, 0, 2, 16);
        assert_eq!(a, b);
    }

    #[test]
    fn a_full_batch_is_every_row_in_order() {
        let mut d = dataset(50);
        assert_eq!(d.begin_batch(7, 1024), 50);
        let mut x = vec![0.0; 3 * 64];
        d.fill_chunk(&mut x, 10, 20, 32);
        for r in 0..20 {
            assert_eq!(
                (0..3).map(|i| x[i * 32 + r]).collect::<Vec<_>>(),
                row(&d, 10 + r)
            );
        }
    }
}
