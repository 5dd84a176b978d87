//! The sparse-feature batch sampler: independent features, correlated and anticorrelated sets.
//!
//! A batch is feature-major (`x[i * stride + r]`). The sampler walks the features in index
//! order; an independent feature takes one block of draws (one 32-bit uniform per row), a set
//! is drawn whole when its first member is reached. With no sets this is exactly the stream of
//! draws the sampler always used, so configs without sets keep their weights bit for bit.
//!
//! **Independent feature** (the paper's default): one draw `u` per row; the feature is present
//! when `u < T` with `T = p * 2^32`, and then its value is `u / T`. Conditioned on `u < T`, `u`
//! is uniform on `[0, T)`, so `u / T` is uniform on `[0, 1)`: one draw gives both the mask and
//! the value, exactly distributed (up to the 32-bit grid), with no branch.
//!
//! **Correlated set** of k members: one draw per row decides whether the whole set is active
//! (probability p, the set's `1 - S`); each member then takes one more draw for its value, so
//! active members get independent uniform values. Every member is non-zero with probability p,
//! and members are non-zero together: P(x_a ≠ 0 and x_b ≠ 0) = p.
//!
//! **Anticorrelated set** of k members: one draw `a` per row decides whether the set is active
//! (`a < T`) and, from the same draw, which single member is (`⌊k a / T⌋`, uniform over the
//! members); a second draw gives its value. Each member is non-zero with probability p / k, and
//! two members are never non-zero together.

use serde::{Deserialize, Serialize};

use super::rng::{LaneRng, LANES};

/// Range of a present feature's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueRange {
    /// Uniform on [0, 1] (the paper's default).
    Unit,
    /// Uniform on [-1, 1] (the |x| computation model).
    Symmetric,
}

impl ValueRange {
    /// `(scale, offset)` mapping a uniform [0, 1) value into the range.
    fn affine(self) -> (f32, f32) {
        match self {
            ValueRange::Unit => (1.0, 0.0),
            ValueRange::Symmetric => (2.0, -1.0),
        }
    }
}

/// How the features of a set are drawn together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SetKind {
    /// The whole set is zero or active together; active members get independent values.
    Correlated,
    /// When the set is active, exactly one uniformly chosen member is non-zero.
    Anticorrelated,
}

/// A set of features drawn together, with the probability that the set is active.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSet {
    /// Correlated or anticorrelated.
    pub kind: SetKind,
    /// Member feature indices (at least two, distinct).
    pub features: Vec<usize>,
    /// Probability that the set is active in a row (`1 - S` of the set).
    pub probability: f32,
}

impl FeatureSet {
    /// Probability that one member is non-zero: `p` (correlated) or `p / k` (anticorrelated).
    pub fn member_probability(&self) -> f32 {
        match self.kind {
            SetKind::Correlated => self.probability,
            SetKind::Anticorrelated => self.probability / self.features.len() as f32,
        }
    }
}

/// Presence threshold on a u32 draw for probability `p` (`p * 2^32`, saturating at 2^32).
fn threshold(p: f32) -> u64 {
    ((p as f64).clamp(0.0, 1.0) * 4_294_967_296.0).round() as u64
}

/// One unit of drawing, in the order the stream consumes draws.
#[derive(Clone, Debug)]
enum Group {
    Independent {
        feature: usize,
        threshold: u64,
        /// `1 / threshold`: maps a present draw to [0, 1).
        inv_threshold: f32,
    },
    Set {
        kind: SetKind,
        features: Vec<usize>,
        threshold: u64,
    },
}

/// Draws batches of sparse features for one instance, feature-major: `x[i * stride + r]`.
#[derive(Clone, Debug)]
pub struct FeatureSampler {
    groups: Vec<Group>,
    features: usize,
    range: ValueRange,
    normalize: bool,
    rng: LaneRng,
    /// Scratch: one block of draws per row (rounded up to whole lane blocks), twice.
    draws: Vec<u32>,
    values: Vec<u32>,
}

impl FeatureSampler {
    /// A sampler of independent features present with probabilities `feature_probability`
    /// (each in [0, 1]), for batches (or chunks) of up to `rows` rows.
    pub fn new(feature_probability: &[f32], range: ValueRange, key: u64, rows: usize) -> Self {
        Self::with_sets(feature_probability, &[], range, key, rows)
    }

    /// A sampler where the features of `sets` are drawn together and every other feature
    /// independently with its `feature_probability`. Sets must be disjoint (the config checks).
    pub fn with_sets(
        feature_probability: &[f32],
        sets: &[FeatureSet],
        range: ValueRange,
        key: u64,
        rows: usize,
    ) -> Self {
        let n = feature_probability.len();
        let mut set_of = vec![None; n];
        for (s, set) in sets.iter().enumerate() {
            for &f in &set.features {
                set_of[f] = Some(s);
            }
        }
        let mut groups = Vec::with_capacity(n);
        for (i, &p) in feature_probability.iter().enumerate() {
            match set_of[i] {
                None => {
                    let t = threshold(p);
                    groups.push(Group::Independent {
                        feature: i,
                        threshold: t,
                        inv_threshold: if t == 0 { 0.0 } else { (1.0 / t as f64) as f32 },
                    });
                }
                // A set is drawn when its first member comes up.
                Some(s) if sets[s].features.iter().min() == Some(&i) => groups.push(Group::Set {
                    kind: sets[s].kind,
                    features: sets[s].features.clone(),
                    threshold: threshold(sets[s].probability),
                }),
                Some(_) => {}
            }
        }
        let buffer = rows.div_ceil(LANES) * LANES;
        FeatureSampler {
            groups,
            features: n,
            range,
            normalize: false,
            rng: LaneRng::new(key),
            draws: vec![0; buffer],
            values: if sets.is_empty() {
                Vec::new()
            } else {
                vec![0; buffer]
            },
        }
    }

    /// Scale every row of every batch to unit L2 norm (all-zero rows stay zero).
    pub fn normalized(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// The random stream's position (for checkpoints).
    pub fn rng_state(&self) -> [u32; 4 * LANES] {
        self.rng.state()
    }

    /// Continue the random stream from a saved position.
    pub fn set_rng_state(&mut self, state: &[u32; 4 * LANES]) {
        self.rng = LaneRng::from_state(state);
    }

    /// Number of features.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Most rows one fill can draw.
    pub fn max_rows(&self) -> usize {
        self.draws.len()
    }

    /// Fill `x` (`features * rows`, feature-major) with a fresh batch.
    #[inline(always)]
    pub fn fill(&mut self, x: &mut [f32], rows: usize) {
        self.fill_padded(x, rows, rows);
    }

    /// Fill `x` (`features * stride`, feature-major) with a fresh batch of `rows` rows, each
    /// feature's row followed by `stride - rows` zeros. The random stream does not depend on
    /// `stride`.
    #[inline(always)]
    pub fn fill_padded(&mut self, x: &mut [f32], rows: usize, stride: usize) {
        assert_eq!(x.len(), self.features * stride, "batch buffer size");
        self.fill_pitched(x, rows, stride, stride);
    }

    /// [`FeatureSampler::fill_padded`] into a wider feature-major buffer: feature `f`'s `rows`
    /// values and `stride - rows` zeros go to `x[f * pitch..f * pitch + stride]`, and the rest
    /// of each line is left alone (the block pass fills a block of rows chunk by chunk, each
    /// chunk a range of columns). Same random stream as `fill_padded`.
    #[inline(always)]
    pub fn fill_pitched(&mut self, x: &mut [f32], rows: usize, stride: usize, pitch: usize) {
        assert!(
            stride <= pitch
                && (self.features == 0 || x.len() >= (self.features - 1) * pitch + stride),
            "batch buffer size"
        );
        assert!(
            rows <= self.draws.len() && rows <= stride,
            "batch larger than the sampler"
        );
        let (scale, offset) = self.range.affine();
        let blocks = rows.div_ceil(LANES) * LANES;
        for group in &self.groups {
            match group {
                Group::Independent {
                    feature,
                    threshold,
                    inv_threshold,
                } => {
                    let draws = &mut self.draws[..blocks];
                    self.rng.fill_u32(draws);
                    let row = &mut x[feature * pitch..feature * pitch + stride];
                    independent_row(row, draws, rows, *threshold, *inv_threshold * scale, offset);
                }
                Group::Set {
                    kind,
                    features,
                    threshold,
                } => {
                    let draws = &mut self.draws[..blocks];
                    let values = &mut self.values[..blocks];
                    self.rng.fill_u32(draws);
                    match kind {
                        SetKind::Correlated => {
                            for &f in features {
                                self.rng.fill_u32(values);
                                let row = &mut x[f * pitch..f * pitch + stride];
                                correlated_row(row, draws, values, rows, *threshold, scale, offset);
                            }
                        }
                        SetKind::Anticorrelated => {
                            self.rng.fill_u32(values);
                            let k = features.len() as u64;
                            // Which member is active in each row; `k` for none.
                            for a in draws.iter_mut() {
                                *a = if (*a as u64) < *threshold {
                                    ((*a as u64 * k) / *threshold) as u32
                                } else {
                                    k as u32
                                };
                            }
                            for (j, &f) in features.iter().enumerate() {
                                let row = &mut x[f * pitch..f * pitch + stride];
                                one_member_row(row, draws, values, rows, j as u32, scale, offset);
                            }
                        }
                    }
                }
            }
        }
        if self.normalize {
            normalize_rows(x, self.features, rows, pitch);
        }
    }
}

/// 2^-32: maps a u32 draw to [0, 1).
const TO_UNIT: f32 = 1.0 / 4_294_967_296.0;

#[inline(always)]
fn independent_row(row: &mut [f32], draws: &[u32], rows: usize, t: u64, inv: f32, offset: f32) {
    let (row, padding) = row.split_at_mut(rows);
    padding.fill(0.0);
    if t == 0 {
        row.fill(0.0);
    } else if t > u32::MAX as u64 {
        // p = 1: every feature present, value = u / 2^32.
        for (v, &u) in row.iter_mut().zip(draws) {
            *v = u as f32 * inv + offset;
        }
    } else {
        let t = t as u32;
        for (v, &u) in row.iter_mut().zip(draws) {
            let value = u as f32 * inv + offset;
            *v = if u < t { value } else { 0.0 };
        }
    }
}

#[inline(always)]
fn correlated_row(
    row: &mut [f32],
    active: &[u32],
    values: &[u32],
    rows: usize,
    t: u64,
    scale: f32,
    offset: f32,
) {
    let (row, padding) = row.split_at_mut(rows);
    padding.fill(0.0);
    let scale = scale * TO_UNIT;
    if t > u32::MAX as u64 {
        for (v, &u) in row.iter_mut().zip(values) {
            *v = u as f32 * scale + offset;
        }
    } else {
        let t = t as u32;
        for ((v, &a), &u) in row.iter_mut().zip(active).zip(values) {
            let value = u as f32 * scale + offset;
            *v = if a < t { value } else { 0.0 };
        }
    }
}

#[inline(always)]
fn one_member_row(
    row: &mut [f32],
    member: &[u32],
    values: &[u32],
    rows: usize,
    j: u32,
    scale: f32,
    offset: f32,
) {
    let (row, padding) = row.split_at_mut(rows);
    padding.fill(0.0);
    let scale = scale * TO_UNIT;
    for ((v, &m), &u) in row.iter_mut().zip(member).zip(values) {
        let value = u as f32 * scale + offset;
        *v = if m == j { value } else { 0.0 };
    }
}

/// Scale each of the `rows` rows of a feature-major batch to unit L2 norm (zero rows stay zero).
pub fn normalize_rows(x: &mut [f32], features: usize, rows: usize, stride: usize) {
    // Row norms accumulate feature by feature, in a fixed order, in chunks of rows so the
    // partial sums stay on the stack (no allocation).
    const CHUNK: usize = 64;
    for r0 in (0..rows).step_by(CHUNK) {
        let c = CHUNK.min(rows - r0);
        let mut sq = [0.0f32; CHUNK];
        for i in 0..features {
            let v = &x[i * stride + r0..i * stride + r0 + c];
            for (s, &v) in sq.iter_mut().zip(v) {
                *s += v * v;
            }
        }
        let inv = sq.map(|s| if s > 0.0 { 1.0 / s.sqrt() } else { 0.0 });
        for i in 0..features {
            let v = &mut x[i * stride + r0..i * stride + r0 + c];
            for (v, &f) in v.iter_mut().zip(&inv) {
                *v *= f;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moments from paper-catalog §1.1: P(x != 0) = p, E[x] = p/2, E[x^2] = p/3.
    #[test]
    fn sampler_matches_the_moments_of_the_distribution() {
        let probs = [1.0f32, 0.5, 0.1, 0.01, 0.0];
        let rows = 1000;
        let mut s = FeatureSampler::new(&probs, ValueRange::Unit, 3, rows);
        let mut x = vec![0.0f32; probs.len() * rows];
        let batches = 200;
        let mut present = [0usize; 5];
        let mut sum = [0f64; 5];
        let mut sum2 = [0f64; 5];
        for _ in 0..batches {
            s.fill(&mut x, rows);
            for (i, row) in x.chunks_exact(rows).enumerate() {
                for &v in row {
                    assert!((0.0..=1.0).contains(&v));
                    if v != 0.0 {
                        present[i] += 1;
                    }
                    sum[i] += v as f64;
                    sum2[i] += (v * v) as f64;
                }
            }
        }
        let total = (rows * batches) as f64;
        for (i, &p) in probs.iter().enumerate() {
            let p = p as f64;
            // Five standard errors: presence is Bernoulli(p); x and x^2 have variance below p.
            let tol_present = 5.0 * (p * (1.0 - p) / total).sqrt() + 1e-9;
            let tol_moment = 5.0 * (p / total).sqrt() + 1e-9;
            assert!(
                (present[i] as f64 / total - p).abs() <= tol_present,
                "feature {i}"
            );
            assert!(
                (sum[i] / total - p / 2.0).abs() <= tol_moment,
                "mean of feature {i}"
            );
            assert!(
                (sum2[i] / total - p / 3.0).abs() <= tol_moment,
                "second moment of feature {i}"
            );
        }
    }

    proptest::proptest! {
        /// For any p: values lie in range and the fraction present is p (within 5 s.e.).
        #[test]
        fn fraction_present_matches_p(p in 0.0f32..=1.0, seed in 0u64..1000, symmetric: bool) {
            let rows = 4000;
            let range = if symmetric { ValueRange::Symmetric } else { ValueRange::Unit };
            let mut s = FeatureSampler::new(&[p], range, seed, rows);
            let mut x = vec![0.0f32; rows];
            s.fill(&mut x, rows);
            let lo = if symmetric { -1.0 } else { 0.0 };
            proptest::prop_assert!(x.iter().all(|v| (lo..=1.0).contains(v)));
            let present = x.iter().filter(|&&v| v != 0.0).count() as f64 / rows as f64;
            let p = p as f64;
            let tol = 5.0 * (p * (1.0 - p) / rows as f64).sqrt() + 1e-3;
            proptest::prop_assert!((present - p).abs() <= tol, "present {} vs p {}", present, p);
        }
    }

    #[test]
    fn symmetric_values_cover_minus_one_to_one() {
        let rows = 4096;
        let mut s = FeatureSampler::new(&[1.0], ValueRange::Symmetric, 9, rows);
        let mut x = vec![0.0f32; rows];
        s.fill(&mut x, rows);
        assert!(x.iter().all(|v| (-1.0..=1.0).contains(v)));
        let neg = x.iter().filter(|&&v| v < 0.0).count() as f64 / rows as f64;
        assert!((neg - 0.5).abs() < 0.05);
        let mean: f64 = x.iter().map(|&v| v as f64).sum::<f64>() / rows as f64;
        assert!(mean.abs() < 0.05);
    }

    /// Empirical moments of a large sample: per-feature P(x != 0) and E[x], pairwise
    /// P(both != 0).
    struct Moments {
        present: Vec<f64>,
        mean: Vec<f64>,
        both: Vec<Vec<f64>>,
        total: f64,
    }

    fn moments(sampler: &mut FeatureSampler, batches: usize) -> Moments {
        let n = sampler.features();
        let rows = sampler.max_rows();
        let mut x = vec![0.0f32; n * rows];
        let mut m = Moments {
            present: vec![0.0; n],
            mean: vec![0.0; n],
            both: vec![vec![0.0; n]; n],
            total: (rows * batches) as f64,
        };
        for _ in 0..batches {
            sampler.fill(&mut x, rows);
            for r in 0..rows {
                for a in 0..n {
                    let va = x[a * rows + r];
                    m.mean[a] += va as f64;
                    if va != 0.0 {
                        m.present[a] += 1.0;
                        for b in 0..n {
                            if x[b * rows + r] != 0.0 {
                                m.both[a][b] += 1.0;
                            }
                        }
                    }
                }
            }
        }
        for a in 0..n {
            m.present[a] /= m.total;
            m.mean[a] /= m.total;
            for b in 0..n {
                m.both[a][b] /= m.total;
            }
        }
        m
    }

    /// Within five standard errors of a Bernoulli(p) proportion.
    fn close(measured: f64, p: f64, total: f64) -> bool {
        (measured - p).abs() <= 5.0 * (p * (1.0 - p) / total).sqrt() + 1e-9
    }

    /// Two correlated pairs, one anticorrelated triple and an independent feature: the marginal
    /// densities and means, the within-set co-activation (1 for correlated, 0 for
    /// anticorrelated) and the independence across sets match the closed forms.
    #[test]
    fn sets_match_their_closed_form_moments() {
        let sets = vec![
            FeatureSet {
                kind: SetKind::Correlated,
                features: vec![0, 1],
                probability: 0.3,
            },
            FeatureSet {
                kind: SetKind::Anticorrelated,
                features: vec![2, 5, 4],
                probability: 0.6,
            },
            FeatureSet {
                kind: SetKind::Correlated,
                features: vec![6, 7],
                probability: 1.0,
            },
        ];
        let probs = [0.3, 0.3, 0.2, 0.5, 0.2, 0.2, 1.0, 1.0];
        let mut s = FeatureSampler::with_sets(&probs, &sets, ValueRange::Unit, 21, 1000);
        let m = moments(&mut s, 300);
        let t = m.total;
        // Marginals: p (correlated), p/k (anticorrelated), p (independent); E[x] = density / 2.
        let density = [0.3, 0.3, 0.2, 0.5, 0.2, 0.2, 1.0, 1.0];
        for (i, &d) in density.iter().enumerate() {
            assert!(
                close(m.present[i], d, t),
                "P(x_{i} != 0) = {}",
                m.present[i]
            );
            let tol = 5.0 * (d / t).sqrt();
            assert!(
                (m.mean[i] - d / 2.0).abs() <= tol,
                "E[x_{i}] = {}",
                m.mean[i]
            );
        }
        // Correlated: P(both | one) = 1.
        assert_eq!(m.both[0][1], m.present[0]);
        assert_eq!(m.both[6][7], 1.0);
        // Anticorrelated: never two members together.
        for (a, b) in [(2, 5), (2, 4), (4, 5)] {
            assert_eq!(m.both[a][b], 0.0, "features {a} and {b}");
        }
        // Independent across sets and from the independent feature: P(a, b) = P(a) P(b).
        for (a, b) in [(0, 2), (1, 4), (0, 3), (3, 5), (2, 3)] {
            let expect = density[a] * density[b];
            assert!(
                close(m.both[a][b], expect, t),
                "P({a}, {b}) = {}",
                m.both[a][b]
            );
        }
    }

    /// The same key gives the same batches; sets do not change the independent features'
    /// stream when they come after them.
    #[test]
    fn sets_after_the_independent_features_leave_them_unchanged() {
        let probs = [0.5, 0.2, 0.7, 0.7];
        let rows = 300;
        let mut plain = FeatureSampler::new(&probs, ValueRange::Unit, 4, rows);
        let sets = [FeatureSet {
            kind: SetKind::Correlated,
            features: vec![2, 3],
            probability: 0.7,
        }];
        let mut with = FeatureSampler::with_sets(&probs, &sets, ValueRange::Unit, 4, rows);
        let (mut a, mut b) = (vec![0.0; 4 * rows], vec![0.0; 4 * rows]);
        plain.fill(&mut a, rows);
        with.fill(&mut b, rows);
        assert_eq!(a[..2 * rows], b[..2 * rows]);
        assert_ne!(a[2 * rows..], b[2 * rows..]);
    }

    #[test]
    fn normalized_rows_have_unit_norm() {
        let rows = 500;
        let probs = [0.3; 6];
        let mut s = FeatureSampler::new(&probs, ValueRange::Symmetric, 8, rows).normalized(true);
        let mut x = vec![0.0f32; 6 * rows];
        s.fill(&mut x, rows);
        let mut zero_rows = 0;
        for r in 0..rows {
            let norm: f32 = (0..6).map(|i| x[i * rows + r].powi(2)).sum();
            if norm == 0.0 {
                zero_rows += 1;
            } else {
                assert!((norm - 1.0).abs() < 1e-5, "row {r}: {norm}");
            }
        }
        // P(all six zero) = 0.7^6 ≈ 0.118.
        assert!((20..100).contains(&zero_rows), "{zero_rows}");
    }
}
