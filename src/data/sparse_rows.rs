//! Rows in compressed sparse row form: each row's non-zero features, in increasing order, and
//! their values. The sparse training pass reads batches this way (a row of the paper's sparse
//! data has about n(1 − S) non-zero features).

/// Rows as (feature, value) lists. Buffers are kept between fills, so refilling a batch of the
/// same size allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct SparseRows {
    /// Row `r`'s entries are `start[r]..start[r + 1]`.
    start: Vec<u32>,
    features: Vec<u32>,
    values: Vec<f32>,
    /// Per-row write position while filling.
    cursor: Vec<u32>,
}

impl SparseRows {
    /// No rows.
    pub fn new() -> Self {
        Self::default()
    }

    /// The non-zero entries of `rows` rows held feature-major (`x[i * stride + r]`).
    pub fn from_feature_major(x: &[f32], features: usize, rows: usize, stride: usize) -> Self {
        let mut s = Self::new();
        s.fill_from_feature_major(x, features, rows, stride);
        s
    }

    /// Replace the rows by the non-zero entries of `rows` rows held feature-major. Two passes
    /// over `x` in memory order: count per row, then place.
    pub fn fill_from_feature_major(
        &mut self,
        x: &[f32],
        features: usize,
        rows: usize,
        stride: usize,
    ) {
        assert!(
            rows <= stride && x.len() >= features * stride,
            "batch buffer too small"
        );
        self.start.clear();
        self.start.resize(rows + 1, 0);
        for i in 0..features {
            for (r, &v) in x[i * stride..i * stride + rows].iter().enumerate() {
                self.start[r + 1] += (v != 0.0) as u32;
            }
        }
        for r in 0..rows {
            self.start[r + 1] += self.start[r];
        }
        let nnz = self.start[rows] as usize;
        self.features.resize(nnz, 0);
        self.values.resize(nnz, 0.0);
        self.cursor.clear();
        self.cursor.extend_from_slice(&self.start[..rows]);
        for i in 0..features {
            for (r, &v) in x[i * stride..i * stride + rows].iter().enumerate() {
                if v != 0.0 {
                    let p = self.cursor[r] as usize;
                    self.features[p] = i as u32;
                    self.values[p] = v;
                    self.cursor[r] += 1;
                }
            }
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    /// Total non-zero entries.
    pub fn nonzeros(&self) -> usize {
        self.features.len()
    }

    /// Row `r`: its non-zero features (increasing) and their values.
    #[inline(always)]
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.start[r] as usize, self.start[r + 1] as usize);
        (&self.features[a..b], &self.values[a..b])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_hold_exactly_the_nonzero_entries() {
        // Three features, four rows, stride 5 (the padding column must be ignored).
        let x = [
            0.0, 1.0, 0.0, 2.0, 9.0, //
            3.0, 0.0, 0.0, 4.0, 9.0, //
            0.0, 5.0, 0.0, 6.0, 9.0,
        ];
        let s = SparseRows::from_feature_major(&x, 3, 4, 5);
        assert_eq!(s.rows(), 4);
        assert_eq!(s.nonzeros(), 6);
        assert_eq!(s.row(0), (&[1u32][..], &[3.0f32][..]));
        assert_eq!(s.row(1), (&[0u32, 2][..], &[1.0f32, 5.0][..]));
        assert_eq!(s.row(2), (&[][..], &[][..]));
        assert_eq!(s.row(3), (&[0u32, 1, 2][..], &[2.0f32, 4.0, 6.0][..]));
    }

    #[test]
    fn refilling_replaces_the_rows() {
        let mut s = SparseRows::from_feature_major(&[1.0, 1.0, 1.0, 1.0], 2, 2, 2);
        assert_eq!(s.nonzeros(), 4);
        s.fill_from_feature_major(&[0.0, 7.0], 1, 2, 2);
        assert_eq!(s.rows(), 2);
        assert_eq!(s.row(0).0.len(), 0);
        assert_eq!(s.row(1), (&[0u32][..], &[7.0f32][..]));
    }
}
