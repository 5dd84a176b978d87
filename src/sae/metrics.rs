//! Metrics that score a sparse autoencoder against known ground-truth features.
//!
//! Two kinds of metric live here:
//!
//! * dictionary metrics, from the decoder alone: the cosine matrix between the true feature
//!   directions and the decoder rows, and what is read off it — mean max cosine similarity
//!   (MMCS), the share of features recovered above a threshold, the one-to-one Hungarian
//!   matching and its mean correlation coefficient (MCC), and uniqueness;
//! * activation metrics, from a batch of data: how well latents fire with their features
//!   (precision, recall, F1, accuracy), sparsity and dead latents, and reconstruction quality
//!   (MSE, variance explained, shrinkage).
//!
//! Where SAELens defines the same quantity, the definition here follows SAELens's synthetic-data
//! evaluation (`sae_lens/synthetic/evals.py` in `decoderesearch/SAELens`, formerly
//! `jbloomAus/SAELens`); each function's documentation says which definition it follows.
//! One consequence worth knowing: SAELens scores matchings by the *absolute* cosine (a decoder
//! row pointing opposite to a feature counts as a match), so [`hungarian_match`],
//! [`uniqueness`] and [`best_feature_per_latent`] use |cos|, while [`mmcs`], [`best_cosines`]
//! and [`recovered_fraction`] (not in SAELens) use the signed cosine.
//!
//! Conventions: matrices are row-major `&[f32]` slices with explicit sizes; the ground truth is
//! `g` directions of `dim` dimensions ([g, dim]); the dictionary is the decoder `W_dec`
//! ([latents, dim]); a cosine matrix is [g, latents] with true features as rows. Sums are
//! accumulated in f64. Callers validate shapes: a slice whose length does not match the sizes
//! given is a programming error and panics (see each function's `# Panics`).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use rayon::prelude::*;

/// Rows of the cosine matrix computed per parallel task.
const COSINE_BLOCK_ROWS: usize = 32;

/// Scale from a cosine in [0, 1] to the integer weights of the Hungarian solver: 1e-9
/// resolution, and a total of at most 1e9 · min(g, latents), far from i64 overflow.
const HUNGARIAN_SCALE: f64 = 1e9;

/// Input rows with a norm at or below this are left out of [`Reconstruction::shrinkage`]
/// (SAELens's `ShrinkageCalculator` default): their ratio is undefined or unstable.
const MIN_SHRINKAGE_INPUT_NORM: f64 = 1e-6;

/// Below this total variance per row the data are treated as constant in
/// [`Reconstruction::variance_explained`] (SAELens's `ExplainedVarianceCalculator` threshold).
const MIN_TOTAL_VARIANCE: f64 = 1e-10;

// ---------------------------------------------------------------------------------------------
// Dictionary metrics

/// Rows of `matrix` ([rows, dim]) scaled to unit L2 norm, in f64; a zero row stays zero, so
/// its cosine with everything is 0.
fn unit_rows_f64(matrix: &[f32], rows: usize, dim: usize) -> Vec<f64> {
    let mut unit = vec![0.0f64; rows * dim];
    if dim == 0 {
        return unit;
    }
    for (out_row, in_row) in unit.chunks_exact_mut(dim).zip(matrix.chunks_exact(dim)) {
        let norm = in_row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            for (out, &v) in out_row.iter_mut().zip(in_row) {
                *out = f64::from(v) / norm;
            }
        }
    }
    unit
}

/// Cosine similarities between every true feature and every dictionary row: a [g, latents]
/// row-major matrix whose entry (f, l) is cos(truth_f, dict_l).
///
/// Both sets of rows are scaled to unit norm first (the truth is usually unit norm already, the
/// decoder need not be); a zero row has cosine 0 with everything. The product runs in f64
/// through `faer`, in blocks of true features spread over the rayon pool, and is rounded to
/// f32 at the end. The same function compares two dictionaries (pass the smaller one as
/// `truth`).
///
/// # Panics
///
/// If `truth.len() != g * dim` or `dict.len() != latents * dim`.
pub fn cosine_matrix(
    truth: &[f32],
    g: usize,
    dict: &[f32],
    latents: usize,
    dim: usize,
) -> Vec<f32> {
    assert_eq!(truth.len(), g * dim, "truth must be [g, dim]");
    assert_eq!(dict.len(), latents * dim, "dict must be [latents, dim]");
    let mut cos = vec![0.0f32; g * latents];
    if g == 0 || latents == 0 || dim == 0 {
        return cos;
    }
    let unit_truth = unit_rows_f64(truth, g, dim);
    let unit_dict = unit_rows_f64(dict, latents, dim);
    let dict_view = MatRef::from_row_major_slice(&unit_dict, latents, dim);

    cos.par_chunks_mut(COSINE_BLOCK_ROWS * latents)
        .zip(unit_truth.par_chunks(COSINE_BLOCK_ROWS * dim))
        .for_each(|(cos_block, truth_block)| {
            let block_rows = truth_block.len() / dim;
            let truth_view = MatRef::from_row_major_slice(truth_block, block_rows, dim);
            let mut product = vec![0.0f64; block_rows * latents];
            let product_view = MatMut::from_row_major_slice_mut(&mut product, block_rows, latents);
            matmul(
                product_view,
                Accum::Replace,
                truth_view,
                dict_view.transpose(),
                1.0f64,
                Par::Seq,
            );
            for (out, &value) in cos_block.iter_mut().zip(&product) {
                *out = value as f32;
            }
        });
    cos
}

/// Asserts that `cos` is a [g, latents] matrix.
fn check_cosine_shape(cos: &[f32], g: usize, latents: usize) {
    assert_eq!(cos.len(), g * latents, "cos must be [g, latents]");
}

/// For each true feature, its largest (signed) cosine over all latents: a vector of length `g`.
/// With no latents at all, every entry is 0.
///
/// # Panics
///
/// If `cos.len() != g * latents`.
pub fn best_cosines(cos: &[f32], g: usize, latents: usize) -> Vec<f32> {
    check_cosine_shape(cos, g, latents);
    if latents == 0 {
        return vec![0.0; g];
    }
    cos.chunks_exact(latents)
        .map(|row| row.iter().copied().fold(f32::NEG_INFINITY, f32::max))
        .collect()
}

/// Mean max cosine similarity: the mean over true features of each one's best (signed) cosine
/// with any latent, as in Sharkey, Braun & Millidge (2022), "Taking features out of
/// superposition with sparse autoencoders". SAELens has no such metric.
///
/// Not symmetric: every true feature counts once, however many latents share it, and latents
/// matching no feature cost nothing. Between two dictionaries (the "MMCS to the next-larger
/// dictionary" check) pass the smaller one as the truth. Returns 0 when `g == 0`.
///
/// # Panics
///
/// If `cos.len() != g * latents`.
pub fn mmcs(cos: &[f32], g: usize, latents: usize) -> f64 {
    let best = best_cosines(cos, g, latents);
    mean(best.iter().map(|&c| f64::from(c)), g)
}

/// Share of true features whose best (signed) cosine with any latent is strictly above
/// `threshold` (callers use 0.9). SAELens has no such metric. Returns 0 when `g == 0`.
///
/// # Panics
///
/// If `cos.len() != g * latents`.
pub fn recovered_fraction(cos: &[f32], g: usize, latents: usize, threshold: f32) -> f64 {
    let best = best_cosines(cos, g, latents);
    let recovered = best.iter().filter(|&&c| c > threshold).count();
    if g == 0 {
        0.0
    } else {
        recovered as f64 / g as f64
    }
}

/// A one-to-one matching between true features and latents, from [`hungarian_match`].
#[derive(Clone, Debug, PartialEq)]
pub struct Matching {
    /// The matched pairs `(feature, latent)`, sorted by feature; there are `min(g, latents)` of
    /// them, each feature and each latent in at most one pair.
    pub pairs: Vec<(usize, usize)>,
    /// Mean correlation coefficient: the mean absolute cosine over the matched pairs (so over
    /// `min(g, latents)` pairs, not over `g`); 0 when there are no pairs.
    pub mcc: f64,
}

/// The one-to-one assignment of true features to latents that maximises the total absolute
/// cosine, and its mean correlation coefficient (MCC).
///
/// Follows SAELens's `mean_correlation_coefficient` (`sae_lens/synthetic/evals.py`): the
/// weights are |cos|, the optimal assignment is found with the Hungarian algorithm on the
/// rectangular matrix, so `min(g, latents)` pairs are matched, and MCC is the mean |cos| over
/// those pairs. When there are fewer latents than features, the unmatched features therefore
/// do not lower the MCC; read it together with [`mmcs`] or [`recovered_fraction`].
///
/// The solver is `pathfinding::kuhn_munkres`, which needs integer weights and no more rows than
/// columns: |cos| is scaled by 1e9 and rounded (ties closer than 1e-9 may resolve either way),
/// and the matrix is transposed when `g > latents`. It runs in O(min² · max) time at worst
/// (0.1 s for 512 random features against 16384 latents, 0.6 s transposed, on two cores).
/// Non-finite cosines are treated as 0.
///
/// # Panics
///
/// If `cos.len() != g * latents`.
pub fn hungarian_match(cos: &[f32], g: usize, latents: usize) -> Matching {
    check_cosine_shape(cos, g, latents);
    if g == 0 || latents == 0 {
        return Matching {
            pairs: Vec::new(),
            mcc: 0.0,
        };
    }
    // `as` saturates and maps NaN to 0, so any f32 gives a valid weight.
    let weight = |feature: usize, latent: usize| -> i64 {
        (f64::from(cos[feature * latents + latent].abs()) * HUNGARIAN_SCALE).round() as i64
    };

    let mut pairs: Vec<(usize, usize)> = if g <= latents {
        let mut weights = Matrix::new(g, latents, 0i64);
        for feature in 0..g {
            for latent in 0..latents {
                weights[(feature, latent)] = weight(feature, latent);
            }
        }
        let (_, latent_of_feature) = kuhn_munkres(&weights);
        latent_of_feature.into_iter().enumerate().collect()
    } else {
        // More features than latents: the solver wants rows ≤ columns, so latents are rows.
        let mut weights = Matrix::new(latents, g, 0i64);
        for latent in 0..latents {
            for feature in 0..g {
                weights[(latent, feature)] = weight(feature, latent);
            }
        }
        let (_, feature_of_latent) = kuhn_munkres(&weights);
        feature_of_latent
            .into_iter()
            .enumerate()
            .map(|(latent, feature)| (feature, latent))
            .collect()
    };
    pairs.sort_unstable();

    let mcc = mean(
        pairs
            .iter()
            .map(|&(feature, latent)| f64::from(cos[feature * latents + latent].abs())),
        pairs.len(),
    );
    Matching { pairs, mcc }
}

/// For each latent, the true feature with the largest absolute cosine (the first one on ties):
/// a vector of length `latents`, or empty when `g == 0`.
///
/// This is SAELens's per-latent best match (`cos_sim.argmax(dim=1)` on |cos| in
/// `feature_uniqueness` and `ClassificationMetricsCalculator`, `sae_lens/synthetic/evals.py`).
/// A zero decoder row has cosine 0 with every feature and so maps to feature 0.
///
/// # Panics
///
/// If `cos.len() != g * latents`.
pub fn best_feature_per_latent(cos: &[f32], g: usize, latents: usize) -> Vec<usize> {
    check_cosine_shape(cos, g, latents);
    if g == 0 || latents == 0 {
        return Vec::new();
    }
    // Sweep the matrix row by row (cache-friendly), keeping each latent's best so far; a
    // strictly larger value is needed to replace it, so ties keep the first feature.
    let mut best_feature = vec![0usize; latents];
    let mut best_abs: Vec<f32> = cos[..latents].iter().map(|c| c.abs()).collect();
    for (feature, row) in cos.chunks_exact(latents).enumerate().skip(1) {
        for ((best, best_value), &c) in best_feature.iter_mut().zip(&mut best_abs).zip(row) {
            if c.abs() > *best_value {
                *best_value = c.abs();
                *best = feature;
            }
        }
    }
    best_feature
}

/// The pairs `(best feature, latent)` for every latent, from [`best_feature_per_latent`]:
/// the pairs SAELens scores in its classification metrics. Pass them to
/// [`firing_classification`] to reproduce SAELens's numbers, or pass [`Matching::pairs`] to
/// score the one-to-one matching instead.
///
/// # Panics
///
/// If `cos.len() != g * latents`.
pub fn best_match_pairs(cos: &[f32], g: usize, latents: usize) -> Vec<(usize, usize)> {
    best_feature_per_latent(cos, g, latents)
        .into_iter()
        .enumerate()
        .map(|(latent, feature)| (feature, latent))
        .collect()
}

/// Uniqueness: the number of distinct true features that are some latent's best match (by
/// absolute cosine), divided by the number of latents.
///
/// Follows SAELens's `feature_uniqueness` (`sae_lens/synthetic/evals.py`). 1 means every
/// latent tracks a different feature; it falls as latents pile onto the same features, and is
/// at most `g / latents` when there are more latents than features. Zero decoder rows all map
/// to feature 0 (see [`best_feature_per_latent`]). Returns 0 when `latents == 0` (as SAELens)
/// or `g == 0`.
///
/// # Panics
///
/// If `cos.len() != g * latents`.
pub fn uniqueness(cos: &[f32], g: usize, latents: usize) -> f64 {
    let best = best_feature_per_latent(cos, g, latents);
    if best.is_empty() {
        return 0.0;
    }
    let mut is_someones_best = vec![false; g];
    for &feature in &best {
        is_someones_best[feature] = true;
    }
    let distinct = is_someones_best.iter().filter(|&&hit| hit).count();
    distinct as f64 / latents as f64
}

// ---------------------------------------------------------------------------------------------
// Activation metrics

/// How well latents act as detectors of their paired true features, from
/// [`firing_classification`]. Each score is a mean over the pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct FiringClassification {
    /// Mean over pairs of P(feature active | latent fires) = TP / (TP + FP); a latent that never
    /// fires scores 0.
    pub precision: f64,
    /// Mean over pairs of P(latent fires | feature active) = TP / (TP + FN); a feature that is
    /// never active scores 0.
    pub recall: f64,
    /// Mean over pairs of the harmonic mean of that pair's precision and recall; 0 when both
    /// are 0.
    pub f1: f64,
    /// Mean over pairs of the share of rows where the latent fires exactly when the feature is
    /// active, (TP + TN) / rows.
    pub accuracy: f64,
}

/// Precision, recall, F1 and accuracy of each latent as a binary detector of its paired true
/// feature, averaged over `pairs` (`(feature, latent)`).
///
/// A latent fires in a row when its code is > 0; `true_active` says which features are active
/// in each row. Follows SAELens's `ClassificationMetricsCalculator`
/// (`sae_lens/synthetic/evals.py`): counts per pair, a precision or recall whose denominator
/// is 0 (a latent that never fires, a feature never active) counts as 0 rather than being
/// skipped, and the scores are plain means over the pairs. SAELens pairs every latent with its
/// best feature ([`best_match_pairs`]); [`Matching::pairs`] also works. All scores are 0 when
/// `pairs` is empty; accuracy is 0 when `rows == 0`.
///
/// # Panics
///
/// If `true_active.len() != rows * g`, `codes.len() != rows * latents`, or a pair holds a
/// feature ≥ `g` or a latent ≥ `latents`.
pub fn firing_classification(
    true_active: &[bool],
    codes: &[f32],
    rows: usize,
    g: usize,
    latents: usize,
    pairs: &[(usize, usize)],
) -> FiringClassification {
    assert_eq!(true_active.len(), rows * g, "true_active must be [rows, g]");
    assert_eq!(codes.len(), rows * latents, "codes must be [rows, latents]");
    for &(feature, latent) in pairs {
        assert!(
            feature < g && latent < latents,
            "pair ({feature}, {latent}) out of range"
        );
    }

    let mut precision_sum = 0.0f64;
    let mut recall_sum = 0.0f64;
    let mut f1_sum = 0.0f64;
    let mut accuracy_sum = 0.0f64;
    for &(feature, latent) in pairs {
        let (mut tp, mut fp, mut false_neg, mut tn) = (0u64, 0u64, 0u64, 0u64);
        for row in 0..rows {
            let fires = codes[row * latents + latent] > 0.0;
            let active = true_active[row * g + feature];
            match (fires, active) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => false_neg += 1,
                (false, false) => tn += 1,
            }
        }
        let precision = ratio_or_zero(tp, tp + fp);
        let recall = ratio_or_zero(tp, tp + false_neg);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        precision_sum += precision;
        recall_sum += recall;
        f1_sum += f1;
        accuracy_sum += ratio_or_zero(tp + tn, rows as u64);
    }

    let count = pairs.len();
    let mean_of = |sum: f64| if count == 0 { 0.0 } else { sum / count as f64 };
    FiringClassification {
        precision: mean_of(precision_sum),
        recall: mean_of(recall_sum),
        f1: mean_of(f1_sum),
        accuracy: mean_of(accuracy_sum),
    }
}

/// Sparsity and liveness of the latents over a batch, from [`code_stats`].
#[derive(Clone, Debug, PartialEq)]
pub struct CodeStats {
    /// Mean number of latents firing (code > 0) per row; 0 when there are no rows.
    pub l0: f64,
    /// Number of latents that never fire over the rows (all of them when there are no rows).
    pub dead_latents: usize,
    /// `dead_latents / latents`; 0 when there are no latents.
    pub dead_fraction: f64,
    /// For each latent, the number of rows in which it fires.
    pub fire_counts: Vec<u64>,
}

/// L0, dead latents and per-latent firing counts of the codes `codes` ([rows, latents]).
///
/// A latent fires when its code is > 0, as SAELens's `L0Calculator` and
/// `DeadLatentsCalculator` (`sae_lens/synthetic/evals.py`); the same definition, applied to
/// the true feature activations, gives the true L0.
///
/// # Panics
///
/// If `codes.len() != rows * latents`.
pub fn code_stats(codes: &[f32], rows: usize, latents: usize) -> CodeStats {
    assert_eq!(codes.len(), rows * latents, "codes must be [rows, latents]");
    let mut fire_counts = vec![0u64; latents];
    if latents > 0 {
        for row in codes.chunks_exact(latents) {
            for (count, &code) in fire_counts.iter_mut().zip(row) {
                if code > 0.0 {
                    *count += 1;
                }
            }
        }
    }
    let total_fires: u64 = fire_counts.iter().sum();
    let dead_latents = fire_counts.iter().filter(|&&count| count == 0).count();
    CodeStats {
        l0: ratio_or_zero(total_fires, rows as u64),
        dead_latents,
        dead_fraction: ratio_or_zero(dead_latents as u64, latents as u64),
        fire_counts,
    }
}

/// Reconstruction quality over a batch, from [`reconstruction_stats`].
#[derive(Clone, Debug, PartialEq)]
pub struct Reconstruction {
    /// Mean over rows of the squared error summed over dimensions, ‖x̂ − x‖²; 0 when there are
    /// no rows.
    pub mse: f64,
    /// Variance explained (R²): 1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖², the mean taken over rows.
    /// For constant data (total variance per row below 1e-10) it is 1 if the reconstruction is
    /// exact (Σ‖x − x̂‖² < 1e-10) and 0 otherwise; 0 when there are no rows.
    pub variance_explained: f64,
    /// Mean over rows of ‖x̂‖ / ‖x‖, leaving out rows with ‖x‖ ≤ 1e-6; 1 means no shrinkage,
    /// below 1 the SAE shrinks its outputs. 0 when no row is left.
    pub shrinkage: f64,
}

/// MSE, variance explained and shrinkage of the reconstruction `x_hat` of `x` (both
/// [rows, dim]).
///
/// Follows SAELens's `ExplainedVarianceCalculator` and `ShrinkageCalculator`
/// (`sae_lens/synthetic/evals.py`), including their thresholds and empty-input values. SAELens
/// computes the total variance as E‖x‖² − ‖E x‖² in one pass; here it is Σ‖x − mean‖² in two
/// passes, the same number with less cancellation.
///
/// # Panics
///
/// If `x.len() != rows * dim` or `x_hat.len() != rows * dim`.
pub fn reconstruction_stats(x: &[f32], x_hat: &[f32], rows: usize, dim: usize) -> Reconstruction {
    assert_eq!(x.len(), rows * dim, "x must be [rows, dim]");
    assert_eq!(x_hat.len(), rows * dim, "x_hat must be [rows, dim]");
    if rows == 0 {
        return Reconstruction {
            mse: 0.0,
            variance_explained: 0.0,
            shrinkage: 0.0,
        };
    }

    let mut mean_x = vec![0.0f64; dim];
    let mut squared_residual_sum = 0.0f64;
    let mut shrinkage_sum = 0.0f64;
    let mut shrinkage_rows = 0usize;
    for row in 0..rows {
        let x_row = &x[row * dim..(row + 1) * dim];
        let x_hat_row = &x_hat[row * dim..(row + 1) * dim];
        let mut x_norm_sq = 0.0f64;
        let mut x_hat_norm_sq = 0.0f64;
        for ((mean, &xv), &hv) in mean_x.iter_mut().zip(x_row).zip(x_hat_row) {
            let (xv, hv) = (f64::from(xv), f64::from(hv));
            *mean += xv;
            squared_residual_sum += (hv - xv) * (hv - xv);
            x_norm_sq += xv * xv;
            x_hat_norm_sq += hv * hv;
        }
        let x_norm = x_norm_sq.sqrt();
        if x_norm > MIN_SHRINKAGE_INPUT_NORM {
            shrinkage_sum += x_hat_norm_sq.sqrt() / x_norm;
            shrinkage_rows += 1;
        }
    }
    for mean in &mut mean_x {
        *mean /= rows as f64;
    }

    let mut total_variance_sum = 0.0f64;
    for (index, &xv) in x.iter().enumerate() {
        let centred = f64::from(xv) - mean_x[index % dim];
        total_variance_sum += centred * centred;
    }

    let variance_explained = if total_variance_sum / (rows as f64) < MIN_TOTAL_VARIANCE {
        if squared_residual_sum < MIN_TOTAL_VARIANCE {
            1.0
        } else {
            0.0
        }
    } else {
        1.0 - squared_residual_sum / total_variance_sum
    };

    Reconstruction {
        mse: squared_residual_sum / rows as f64,
        variance_explained,
        shrinkage: ratio_or_zero_f64(shrinkage_sum, shrinkage_rows),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Sum of `values` divided by `count`; 0 when `count == 0`.
fn mean(values: impl Iterator<Item = f64>, count: usize) -> f64 {
    ratio_or_zero_f64(values.sum(), count)
}

/// `numerator / denominator`, or 0 when the denominator is 0.
fn ratio_or_zero(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// `sum / count`, or 0 when the count is 0.
fn ratio_or_zero_f64(sum: f64, count: usize) -> f64 {
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator for test data: SplitMix64 with Box–Muller normals.
    struct TestRng(u64);

    impl TestRng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1].
        fn next_open_unit(&mut self) -> f64 {
            ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
        }

        fn next_normal(&mut self) -> f64 {
            let radius = (-2.0 * self.next_open_unit().ln()).sqrt();
            let angle = 2.0 * std::f64::consts::PI * self.next_open_unit();
            radius * angle.cos()
        }

        fn gaussian_matrix(&mut self, rows: usize, cols: usize) -> Vec<f32> {
            (0..rows * cols)
                .map(|_| self.next_normal() as f32)
                .collect()
        }
    }

    fn assert_close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn cosine_matrix_normalises_rows_and_zero_rows_give_zero() {
        // Truth rows (1, 0) and (1, 1)/√2 given unnormalised; dictionary rows (0, 3), (2, 0),
        // and a zero row.
        let truth = [1.0, 0.0, 5.0, 5.0];
        let dict = [0.0, 3.0, 2.0, 0.0, 0.0, 0.0];
        let cos = cosine_matrix(&truth, 2, &dict, 3, 2);
        let half_root_two = std::f32::consts::FRAC_1_SQRT_2;
        let expected = [0.0, 1.0, 0.0, half_root_two, half_root_two, 0.0];
        for (got, want) in cos.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{cos:?}");
        }
    }

    #[test]
    fn cosine_matrix_matches_plain_loops_across_blocks() {
        // More truth rows than one parallel block, to cover the blocking.
        let (g, latents, dim) = (70, 9, 5);
        let mut rng = TestRng(7);
        let truth = rng.gaussian_matrix(g, dim);
        let dict = rng.gaussian_matrix(latents, dim);
        let cos = cosine_matrix(&truth, g, &dict, latents, dim);
        let norm = |v: &[f32]| v.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>().sqrt();
        for f in 0..g {
            for l in 0..latents {
                let a = &truth[f * dim..(f + 1) * dim];
                let b = &dict[l * dim..(l + 1) * dim];
                let dot: f64 = a.iter().zip(b).map(|(&p, &q)| f64::from(p * q)).sum();
                let expected = dot / (norm(a) * norm(b));
                assert_close(f64::from(cos[f * latents + l]), expected, 1e-5);
            }
        }
    }

    #[test]
    fn identical_dictionaries_score_one() {
        let (g, dim) = (20, 16);
        let features = TestRng(1).gaussian_matrix(g, dim);
        let cos = cosine_matrix(&features, g, &features, g, dim);
        assert_close(mmcs(&cos, g, g), 1.0, 1e-6);
        assert_close(recovered_fraction(&cos, g, g, 0.9), 1.0, 0.0);
        assert_close(uniqueness(&cos, g, g), 1.0, 0.0);
        let matching = hungarian_match(&cos, g, g);
        assert_close(matching.mcc, 1.0, 1e-6);
        let identity: Vec<(usize, usize)> = (0..g).map(|f| (f, f)).collect();
        assert_eq!(matching.pairs, identity);
    }

    #[test]
    fn permuted_rescaled_copy_is_recovered() {
        let (g, dim) = (12, 10);
        let features = TestRng(2).gaussian_matrix(g, dim);
        // Latent l holds feature permutation[l], scaled by a positive factor.
        let permutation = [5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6];
        let mut dict = Vec::with_capacity(g * dim);
        for (l, &f) in permutation.iter().enumerate() {
            let scale = 0.5 + l as f32;
            dict.extend(features[f * dim..(f + 1) * dim].iter().map(|&v| v * scale));
        }
        let cos = cosine_matrix(&features, g, &dict, g, dim);
        assert_close(mmcs(&cos, g, g), 1.0, 1e-6);
        assert_close(uniqueness(&cos, g, g), 1.0, 0.0);
        let matching = hungarian_match(&cos, g, g);
        assert_close(matching.mcc, 1.0, 1e-6);
        for &(feature, latent) in &matching.pairs {
            assert_eq!(permutation[latent], feature);
        }
        assert_eq!(matching.pairs.len(), g);
    }

    #[test]
    fn sign_flip_counts_for_mcc_but_not_for_mmcs() {
        // SAELens matches on |cos|; MMCS keeps the sign. The truth is the standard basis of
        // four dimensions and the dictionary its negation: every latent has cosine −1 with
        // its own feature and 0 with the others.
        let dim = 4;
        let mut basis = vec![0.0f32; dim * dim];
        for i in 0..dim {
            basis[i * dim + i] = 1.0;
        }
        let flipped: Vec<f32> = basis.iter().map(|&v| -v).collect();
        let cos = cosine_matrix(&basis, dim, &flipped, dim, dim);
        let matching = hungarian_match(&cos, dim, dim);
        assert_close(matching.mcc, 1.0, 1e-6);
        assert_eq!(matching.pairs, (0..dim).map(|i| (i, i)).collect::<Vec<_>>());
        assert_close(uniqueness(&cos, dim, dim), 1.0, 0.0);
        assert_close(mmcs(&cos, dim, dim), 0.0, 1e-6);
        assert_close(recovered_fraction(&cos, dim, dim, 0.9), 0.0, 0.0);
        // One feature against its own negation alone: MMCS −1.
        let single = cosine_matrix(&basis[..dim], 1, &flipped[..dim], 1, dim);
        assert_close(mmcs(&single, 1, 1), -1.0, 1e-6);
        assert_close(hungarian_match(&single, 1, 1).mcc, 1.0, 1e-6);
    }

    #[test]
    fn hungarian_beats_greedy_on_a_hand_made_case() {
        // Features A, B (rows) against latents x, y, z (columns). Both features prefer x;
        // greedy A→x then B→z gives 0.9 + 0.2 = 1.1, the optimum A→y, B→x gives 0.8 + 0.85.
        let cos = [
            0.9, 0.8, 0.3, //
            0.85, 0.1, 0.2,
        ];
        let matching = hungarian_match(&cos, 2, 3);
        assert_eq!(matching.pairs, vec![(0, 1), (1, 0)]);
        assert_close(matching.mcc, (0.8 + 0.85) / 2.0, 1e-6);
        assert_close(mmcs(&cos, 2, 3), (0.9 + 0.85) / 2.0, 1e-6);
        assert_close(recovered_fraction(&cos, 2, 3, 0.86), 0.5, 0.0);
        // Every latent's best feature is A: one distinct feature over three latents.
        assert_eq!(best_feature_per_latent(&cos, 2, 3), vec![0, 0, 0]);
        assert_close(uniqueness(&cos, 2, 3), 1.0 / 3.0, 1e-12);
    }

    #[test]
    fn more_features_than_latents_transposes() {
        // Three features, two latents: only two pairs, MCC over those two.
        let cos = [
            0.1, 0.9, //
            0.8, 0.7, //
            0.2, 0.3,
        ];
        let matching = hungarian_match(&cos, 3, 2);
        assert_eq!(matching.pairs, vec![(0, 1), (1, 0)]);
        assert_close(matching.mcc, (0.9 + 0.8) / 2.0, 1e-6);
        assert_close(uniqueness(&cos, 3, 2), 1.0, 0.0);
        assert_eq!(best_match_pairs(&cos, 3, 2), vec![(1, 0), (0, 1)]);
    }

    #[test]
    fn hungarian_agrees_with_brute_force() {
        // All injections of rows into columns, for small random matrices of both shapes.
        fn best_total(cos: &[f32], rows: usize, cols: usize) -> f64 {
            fn search(cos: &[f32], cols: usize, row: usize, rows: usize, used: &mut [bool]) -> f64 {
                if row == rows {
                    return 0.0;
                }
                let mut best = f64::NEG_INFINITY;
                for col in 0..cols {
                    if !used[col] {
                        used[col] = true;
                        let value = f64::from(cos[row * cols + col].abs())
                            + search(cos, cols, row + 1, rows, used);
                        best = best.max(value);
                        used[col] = false;
                    }
                }
                best
            }
            search(cos, cols, 0, rows, &mut vec![false; cols])
        }
        let mut rng = TestRng(4);
        for (g, latents) in [(3, 5), (4, 4), (5, 3), (6, 6)] {
            for _ in 0..20 {
                let cos: Vec<f32> = (0..g * latents)
                    .map(|_| (rng.next_open_unit() * 2.0 - 1.0) as f32)
                    .collect();
                let matching = hungarian_match(&cos, g, latents);
                let small = g.min(latents);
                let expected = if g <= latents {
                    best_total(&cos, g, latents)
                } else {
                    let transposed: Vec<f32> = (0..latents * g)
                        .map(|i| cos[(i % g) * latents + i / g])
                        .collect();
                    best_total(&transposed, latents, g)
                };
                assert_eq!(matching.pairs.len(), small);
                assert_close(matching.mcc * small as f64, expected, 1e-6);
            }
        }
    }

    #[test]
    fn random_dictionary_has_mmcs_near_point_19() {
        // 512 random directions against 512 random features in 256 dimensions: each cosine is
        // about N(0, 1/256), and the max of 512 of them about 3σ = 0.19.
        let (g, latents, dim) = (512, 512, 256);
        let mut rng = TestRng(5);
        let truth = rng.gaussian_matrix(g, dim);
        let dict = rng.gaussian_matrix(latents, dim);
        let cos = cosine_matrix(&truth, g, &dict, latents, dim);
        let score = mmcs(&cos, g, latents);
        assert!((0.17..0.22).contains(&score), "MMCS {score}");
        assert_close(recovered_fraction(&cos, g, latents, 0.9), 0.0, 0.0);
        // MCC uses |cos| (twice the candidates) but one latent per feature: also about 0.19.
        let matching = hungarian_match(&cos, g, latents);
        assert!((0.15..0.25).contains(&matching.mcc), "MCC {}", matching.mcc);
    }

    #[test]
    fn zero_dictionary_rows_score_zero() {
        // Latent 0 is the zero vector, latent 1 is feature 1.
        let truth = [1.0, 0.0, 0.0, 1.0];
        let dict = [0.0, 0.0, 0.0, 2.0];
        let cos = cosine_matrix(&truth, 2, &dict, 2, 2);
        assert_eq!(cos, vec![0.0, 0.0, 0.0, 1.0]);
        assert_close(mmcs(&cos, 2, 2), 0.5, 1e-6);
        let matching = hungarian_match(&cos, 2, 2);
        assert_eq!(matching.pairs, vec![(0, 0), (1, 1)]);
        assert_close(matching.mcc, 0.5, 1e-6);
        // The zero latent's best feature is feature 0 (ties go to the first), as in SAELens.
        assert_eq!(best_feature_per_latent(&cos, 2, 2), vec![0, 1]);
    }

    #[test]
    fn empty_inputs_give_zero_without_panicking() {
        let cos = cosine_matrix(&[], 0, &[1.0, 0.0], 1, 2);
        assert!(cos.is_empty());
        assert_eq!(mmcs(&cos, 0, 1), 0.0);
        assert_eq!(hungarian_match(&cos, 0, 1).pairs, vec![]);
        assert_eq!(uniqueness(&cos, 0, 1), 0.0);
        let no_latents = cosine_matrix(&[1.0, 0.0], 1, &[], 0, 2);
        assert_eq!(best_cosines(&no_latents, 1, 0), vec![0.0]);
        assert_eq!(hungarian_match(&no_latents, 1, 0).mcc, 0.0);
        assert_eq!(uniqueness(&no_latents, 1, 0), 0.0);
        let stats = code_stats(&[], 0, 3);
        assert_eq!((stats.l0, stats.dead_latents), (0.0, 3));
        assert_eq!(reconstruction_stats(&[], &[], 0, 4).variance_explained, 0.0);
        let none = firing_classification(&[], &[], 0, 1, 1, &[]);
        assert_eq!(none.precision, 0.0);
    }

    #[test]
    fn code_stats_on_a_hand_made_batch() {
        // 3 rows, 4 latents; latent 3 never fires, negative codes do not count.
        let codes = [
            1.0, 0.0, 2.0, 0.0, //
            0.5, -1.0, 0.0, 0.0, //
            3.0, 0.2, 0.0, 0.0,
        ];
        let stats = code_stats(&codes, 3, 4);
        assert_eq!(stats.fire_counts, vec![3, 1, 1, 0]);
        assert_close(stats.l0, 5.0 / 3.0, 1e-12);
        assert_eq!(stats.dead_latents, 1);
        assert_close(stats.dead_fraction, 0.25, 0.0);
    }

    #[test]
    fn reconstruction_stats_on_a_hand_made_batch() {
        // x rows (1, 0), (3, 0), (0, 0); x̂ rows (1, 0), (2, 0), (0, 1).
        let x = [1.0, 0.0, 3.0, 0.0, 0.0, 0.0];
        let x_hat = [1.0, 0.0, 2.0, 0.0, 0.0, 1.0];
        let stats = reconstruction_stats(&x, &x_hat, 3, 2);
        // Squared errors 0, 1, 1.
        assert_close(stats.mse, 2.0 / 3.0, 1e-12);
        // mean(x) = (4/3, 0); Σ‖x − mean‖² = 1/9 + 25/9 + 16/9 = 42/9.
        assert_close(stats.variance_explained, 1.0 - 2.0 / (42.0 / 9.0), 1e-12);
        // The zero row is left out: (1/1 + 2/3) / 2.
        assert_close(stats.shrinkage, (1.0 + 2.0 / 3.0) / 2.0, 1e-12);
    }

    #[test]
    fn reconstruction_of_constant_data() {
        let x = [2.0, 1.0, 2.0, 1.0];
        let exact = reconstruction_stats(&x, &x, 2, 2);
        assert_eq!(exact.variance_explained, 1.0);
        assert_eq!(exact.mse, 0.0);
        assert_close(exact.shrinkage, 1.0, 1e-12);
        let off = reconstruction_stats(&x, &[2.0, 0.0, 2.0, 0.0], 2, 2);
        assert_eq!(off.variance_explained, 0.0);
        assert_close(off.mse, 1.0, 1e-12);
    }

    #[test]
    fn firing_classification_on_a_hand_made_case() {
        // 4 rows, 2 features, 2 latents. Pair (0, 1): latent 1 fires in rows 0, 1, 2 and
        // feature 0 is active in rows 0, 1, 3 → TP 2, FP 1, FN 1, TN 0. Pair (1, 0): latent 0
        // never fires → precision 0 (SAELens convention), recall 0, accuracy 2/4.
        let true_active = [
            true, false, //
            true, true, //
            false, false, //
            true, true,
        ];
        let codes = [
            0.0, 1.0, //
            0.0, 0.5, //
            -0.3, 2.0, //
            0.0, 0.0,
        ];
        let scores = firing_classification(&true_active, &codes, 4, 2, 2, &[(0, 1), (1, 0)]);
        let precision_a = 2.0 / 3.0;
        let recall_a = 2.0 / 3.0;
        let f1_a = 2.0 * precision_a * recall_a / (precision_a + recall_a);
        assert_close(scores.precision, precision_a / 2.0, 1e-12);
        assert_close(scores.recall, recall_a / 2.0, 1e-12);
        assert_close(scores.f1, f1_a / 2.0, 1e-12);
        assert_close(scores.accuracy, (0.5 + 0.5) / 2.0, 1e-12);
    }
}
