//! Metrics of paper-spec §2, on one instance's `W` (`[n][m]`).

use serde::Serialize;

/// A feature counts as represented when its norm ‖W_i‖ exceeds this.
pub const REPRESENTED_NORM: f64 = 0.5;

/// The per-feature metrics of one instance.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FeatureMetrics {
    /// ‖W_i‖ per feature: near 1 represented, near 0 not.
    pub feature_norms: Vec<f64>,
    /// Σ_{j≠i} (Ŵ_i · W_j)² per feature: 0 when W_i is orthogonal to every other feature.
    pub interference: Vec<f64>,
    /// D* = m / ‖W‖_F²: hidden dimensions per (embedded) feature.
    pub dimensions_per_feature: f64,
    /// D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)² per feature (1 = own dimension, 0 = not represented).
    pub fractional_dimensionality: Vec<f64>,
}

impl FeatureMetrics {
    /// Compute every metric from `w` (`n * m` values, row-major `[n][m]`).
    pub fn compute(w: &[f32], n: usize, m: usize) -> Self {
        assert_eq!(w.len(), n * m, "W must have n*m entries");
        let row = |i: usize| &w[i * m..(i + 1) * m];
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
        };
        let norms: Vec<f64> = (0..n).map(|i| dot(row(i), row(i)).sqrt()).collect();
        let mut interference = vec![0.0; n];
        let mut dims = vec![0.0; n];
        for i in 0..n {
            // Ŵ_i with the notebook's guard against zero norms.
            let inv = 1.0 / norms[i].max(1e-6);
            let mut others = 0.0;
            let mut all = 0.0;
            for j in 0..n {
                let proj = dot(row(i), row(j)) * inv;
                all += proj * proj;
                if j != i {
                    others += proj * proj;
                }
            }
            interference[i] = others;
            let sq = norms[i] * norms[i];
            dims[i] = if all > 0.0 { sq / all } else { 0.0 };
        }
        let frob: f64 = norms.iter().map(|x| x * x).sum();
        FeatureMetrics {
            feature_norms: norms,
            interference,
            dimensions_per_feature: if frob > 0.0 {
                m as f64 / frob
            } else {
                f64::INFINITY
            },
            fractional_dimensionality: dims,
        }
    }

    /// Number of features with ‖W_i‖ > [`REPRESENTED_NORM`].
    pub fn represented(&self) -> usize {
        self.feature_norms
            .iter()
            .filter(|&&x| x > REPRESENTED_NORM)
            .count()
    }
}

/// Hidden vectors h_r = W x_r (`[rows][m]`) of `rows` inputs held feature-major
/// (`x[i * rows + r]`, as a fixed dataset keeps them), for `w` (`[n][m]`).
pub fn hidden_vectors(w: &[f32], x: &[f32], n: usize, m: usize, rows: usize) -> Vec<f32> {
    assert_eq!(w.len(), n * m, "W must have n*m entries");
    assert_eq!(x.len(), n * rows, "x must have n*rows entries");
    let mut h = vec![0.0f64; rows * m];
    for i in 0..n {
        let wi = &w[i * m..(i + 1) * m];
        for (r, &v) in x[i * rows..(i + 1) * rows].iter().enumerate() {
            if v != 0.0 {
                for (hk, &wk) in h[r * m..(r + 1) * m].iter_mut().zip(wi) {
                    *hk += v as f64 * wk as f64;
                }
            }
        }
    }
    h.into_iter().map(|v| v as f32).collect()
}

/// Data-point dimensionality (Henighan et al. 2023) of hidden vectors `h` (`[rows][m]`):
/// D_r = ‖h_r‖² / Σ_s (ĥ_r·h_s)², the feature dimensionality with data points in place of
/// features. A regular T-gon in m = 2 gives m/T for every point; 0 for h_r = 0.
pub fn data_dimensionality(h: &[f32], rows: usize, m: usize) -> Vec<f64> {
    FeatureMetrics::compute(h, rows, m).fractional_dimensionality
}

/// Gram matrix WᵀW (`n x n`, row-major) of `w` (`[n][m]`).
pub fn gram(w: &[f32], n: usize, m: usize) -> Vec<f64> {
    let mut g = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            g[i * n + j] = (0..m)
                .map(|k| w[i * m + k] as f64 * w[j * m + k] as f64)
                .sum();
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn polygon(k: usize, radius: f64) -> Vec<f32> {
        (0..k)
            .flat_map(|i| {
                let a = 2.0 * std::f64::consts::PI * i as f64 / k as f64;
                [(radius * a.cos()) as f32, (radius * a.sin()) as f32]
            })
            .collect()
    }

    #[test]
    fn a_regular_polygon_of_points_has_data_dimensionality_m_over_t() {
        for t in [3, 5, 8] {
            // W = identity on two features; the points are the polygon's vertices.
            let w = [1.0, 0.0, 0.0, 1.0];
            let p = polygon(t, 0.7);
            let mut x = vec![0.0f32; 2 * t];
            for r in 0..t {
                x[r] = p[2 * r];
                x[t + r] = p[2 * r + 1];
            }
            let h = hidden_vectors(&w, &x, 2, 2, t);
            for (a, b) in h.iter().zip(&p) {
                assert!((a - b).abs() < 1e-6);
            }
            for d in data_dimensionality(&h, t, 2) {
                assert!((d - 2.0 / t as f64).abs() < 1e-6, "T={t}: {d}");
            }
        }
        // Points that share one direction split one dimension.
        let h = [1.0, 0.0, 2.0, 0.0, 0.0, 0.0];
        let d = data_dimensionality(&h, 3, 2);
        assert!((d[0] - 0.2).abs() < 1e-9 && (d[1] - 0.8).abs() < 1e-9 && d[2] == 0.0);
    }

    #[test]
    fn orthogonal_unit_features_have_dimension_one() {
        let w = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let m = FeatureMetrics::compute(&w, 3, 2);
        assert_eq!(m.feature_norms, vec![1.0, 1.0, 0.0]);
        assert_eq!(m.interference, vec![0.0, 0.0, 0.0]);
        assert_eq!(m.fractional_dimensionality, vec![1.0, 1.0, 0.0]);
        assert_eq!(m.dimensions_per_feature, 1.0);
        assert_eq!(m.represented(), 2);
    }

    #[test]
    fn antipodal_pair_pentagon_and_tetrahedron() {
        let digon = FeatureMetrics::compute(&polygon(2, 1.0), 2, 2);
        assert!(digon
            .fractional_dimensionality
            .iter()
            .all(|d| (d - 0.5).abs() < 1e-6));
        assert!(digon.interference.iter().all(|d| (d - 1.0).abs() < 1e-6));
        let pentagon = FeatureMetrics::compute(&polygon(5, 1.2), 5, 2);
        assert!(pentagon
            .fractional_dimensionality
            .iter()
            .all(|d| (d - 0.4).abs() < 1e-6));
        assert!((pentagon.dimensions_per_feature - 2.0 / (5.0 * 1.44)).abs() < 1e-6);
        let s = 1.0 / 3f32.sqrt();
        let tetra = [s, s, s, s, -s, -s, -s, s, -s, -s, -s, s];
        let t = FeatureMetrics::compute(&tetra, 4, 3);
        assert!(t
            .fractional_dimensionality
            .iter()
            .all(|d| (d - 0.75).abs() < 1e-6));
    }

    #[test]
    fn gram_of_an_antipodal_pair() {
        let g = gram(&[1.0, 0.0, -1.0, 0.0], 2, 2);
        assert_eq!(g, vec![1.0, -1.0, -1.0, 1.0]);
    }

    proptest! {
        /// D_i lies in [0, 1], and Σ_i D_i ≤ m (equality for tight frames).
        #[test]
        fn fractional_dimensionality_is_bounded(
            n in 1usize..12, m in 1usize..5,
            seed in proptest::collection::vec(-2.0f32..2.0, 60)
        ) {
            let w: Vec<f32> = seed.iter().cycle().take(n * m).cloned().collect();
            let metrics = FeatureMetrics::compute(&w, n, m);
            for d in &metrics.fractional_dimensionality {
                prop_assert!(*d >= 0.0 && *d <= 1.0 + 1e-9);
            }
            let total: f64 = metrics.fractional_dimensionality.iter().sum();
            prop_assert!(total <= m as f64 + 1e-6);
        }
    }
}
