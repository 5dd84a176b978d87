//! Synthetic ground truth for sparse autoencoders: G known unit directions in d dimensions and
//! rows that are sparse non-negative combinations of them (Sharkey et al.'s toy data, the
//! setting of SAELens's `synthetic` module).
//!
//! A row is x = Σ_g c_g F_g with feature g active with probability p_g and then c_g ~ U[0, 1).
//! The probabilities decay with g (0.99^g as in the original replication, Zipf 1/(g+1)^s, or
//! constant) and are scaled so that `mean_active` features fire per row on average. The
//! correlated variant fires features through a Gaussian copula with a low-rank covariance: a
//! feature fires when its correlated normal z_g falls below Φ⁻¹(p_g), which keeps every
//! marginal probability at p_g (up to f32 normals: features rarer than about 1e-8 never fire)
//! while features sharing loadings fire together. Rows with
//! no active feature stay zero (unlike the replication, which forces one feature on).

use serde::{Deserialize, Serialize};

use super::rng::{stream_key, LaneRng, StreamKind};

/// How the activation probabilities fall with the feature index.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decay {
    /// p_g ∝ decay^g (the replication's 0.99^g).
    Exponential,
    /// p_g ∝ 1/(g + 1)^decay (Zipf's law with exponent `decay`).
    Zipf,
    /// The same probability for every feature.
    Constant,
}

/// The settings of a synthetic ground truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroundTruthSettings {
    /// Number of true features G.
    pub features: usize,
    /// Dimension d of the rows.
    pub dim: usize,
    /// Mean number of active features per row (Σ_g p_g).
    pub mean_active: f64,
    /// Shape of the activation probabilities.
    pub probabilities: Decay,
    /// The base of the exponential decay, or the Zipf exponent.
    pub decay: f64,
    /// Rank of the copula's correlation (0: features fire independently).
    pub correlation_rank: usize,
    /// Share of each feature's copula variance that is shared through the low-rank factors
    /// (0..1; only with `correlation_rank` > 0).
    pub correlation_strength: f64,
}

impl Default for GroundTruthSettings {
    fn default() -> Self {
        GroundTruthSettings {
            features: 512,
            dim: 256,
            mean_active: 5.0,
            probabilities: Decay::Exponential,
            decay: 0.99,
            correlation_rank: 0,
            correlation_strength: 0.5,
        }
    }
}

impl GroundTruthSettings {
    /// Every problem with the settings, as sentences (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.features == 0 || self.features > 1 << 20 {
            out.push(format!(
                "features must be 1..=1048576, got {}",
                self.features
            ));
        }
        if self.dim == 0 || self.dim > 1 << 16 {
            out.push(format!("dim must be 1..=65536, got {}", self.dim));
        }
        if !(self.mean_active > 0.0 && self.mean_active <= self.features as f64) {
            out.push(format!(
                "mean_active must be in (0, features = {}], got {}",
                self.features, self.mean_active
            ));
        }
        let decay_ok = match self.probabilities {
            Decay::Exponential => self.decay > 0.0 && self.decay <= 1.0,
            Decay::Zipf => self.decay >= 0.0 && self.decay <= 10.0,
            Decay::Constant => true,
        };
        if !decay_ok || !self.decay.is_finite() {
            out.push(format!(
                "decay must be in (0, 1] for exponential and [0, 10] for zipf probabilities, got {}",
                self.decay
            ));
        }
        if self.correlation_rank > self.features {
            out.push(format!(
                "correlation_rank must be at most features = {}, got {}",
                self.features, self.correlation_rank
            ));
        }
        if !(0.0..1.0).contains(&self.correlation_strength) {
            out.push(format!(
                "correlation_strength must be in [0, 1), got {}",
                self.correlation_strength
            ));
        }
        if out.is_empty() {
            // A steep decay can leave too little probability mass in the tail to reach the
            // mean (the weights underflow): say so instead of drawing fewer features.
            let total: f64 = activation_probabilities(self).iter().sum();
            if (total - self.mean_active).abs() > 1e-6 * self.mean_active {
                out.push(format!(
                    "mean_active = {} cannot be reached with this decay (at most {total:.3} features per row)",
                    self.mean_active
                ));
            }
        }
        out
    }
}

/// A drawn ground truth: its directions, probabilities and (optional) copula.
#[derive(Clone, Debug)]
pub struct GroundTruth {
    /// Number of features G.
    pub features: usize,
    /// Dimension d.
    pub dim: usize,
    /// Unit directions, row-major [G, d].
    pub directions: Vec<f32>,
    /// Activation probability of each feature.
    pub probabilities: Vec<f64>,
    /// Copula loadings [G, rank] (each row's squared norm is the correlation strength) and
    /// the thresholds Φ⁻¹(p_g); empty when features fire independently.
    loadings: Vec<f32>,
    rank: usize,
    thresholds: Vec<f32>,
    /// p_g · 2³², for the independent case's integer comparison.
    cutoffs: Vec<u64>,
}

impl GroundTruth {
    /// Draw the directions (Gaussian rows normalised to unit length) and, when correlated,
    /// the copula loadings, from `seed`. The settings must be valid.
    pub fn new(settings: &GroundTruthSettings, seed: u64) -> Self {
        let (g, d) = (settings.features, settings.dim);
        let mut rng = LaneRng::new(stream_key(seed, 0, StreamKind::GroundTruth));
        let mut directions = vec![0f32; g * d];
        for row in directions.chunks_exact_mut(d) {
            row.iter_mut().for_each(|v| *v = rng.next_normal() as f32);
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        let probabilities = activation_probabilities(settings);
        let rank = settings.correlation_rank;
        let mut loadings = vec![0f32; g * rank];
        for row in loadings.chunks_exact_mut(rank.max(1)).take(g) {
            row.iter_mut().for_each(|v| *v = rng.next_normal() as f32);
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            let scale = settings.correlation_strength.sqrt() as f32 / norm;
            row.iter_mut().for_each(|v| *v *= scale);
        }
        let thresholds = if rank > 0 {
            probabilities
                .iter()
                .map(|&p| normal_quantile(p) as f32)
                .collect()
        } else {
            Vec::new()
        };
        let cutoffs = probabilities
            .iter()
            .map(|&p| (p * 4_294_967_296.0).round() as u64)
            .collect();
        GroundTruth {
            features: g,
            dim: d,
            directions,
            probabilities,
            loadings: if rank > 0 { loadings } else { Vec::new() },
            rank,
            thresholds,
            cutoffs,
        }
    }

    /// A ground truth with given directions [G, d] (e.g. a toy model's feature directions) and
    /// independent firing with `probabilities`.
    pub fn from_directions(directions: Vec<f32>, dim: usize, probabilities: Vec<f64>) -> Self {
        let features = probabilities.len();
        assert_eq!(
            directions.len(),
            features * dim,
            "directions must be [G, d]"
        );
        let cutoffs = probabilities
            .iter()
            .map(|&p| (p.clamp(0.0, 1.0) * 4_294_967_296.0).round() as u64)
            .collect();
        GroundTruth {
            features,
            dim,
            directions,
            probabilities,
            loadings: Vec::new(),
            rank: 0,
            thresholds: Vec::new(),
            cutoffs,
        }
    }

    /// The random stream of the rows (one per seed; `stream` separates training from
    /// evaluation).
    pub fn stream(seed: u64, stream: StreamKind) -> LaneRng {
        LaneRng::new(stream_key(seed, 0, stream))
    }

    /// Fill `x` ([rows, d], row-major) with fresh rows, and `active` ([rows, G]) with which
    /// features fired in each row when given. `scratch` is reused between calls.
    pub fn sample(
        &self,
        rng: &mut LaneRng,
        x: &mut [f32],
        mut active: Option<&mut [bool]>,
        scratch: &mut SampleScratch,
    ) {
        let (g, d) = (self.features, self.dim);
        let rows = x.len() / d;
        debug_assert_eq!(x.len(), rows * d);
        scratch.fire.resize(g, 0);
        scratch.fired.resize(g, 0);
        scratch.value.resize(g, 0);
        scratch
            .normals
            .resize(if self.rank > 0 { g + self.rank } else { 0 }, 0.0);
        for r in 0..rows {
            // Which features fire: a uniform u32 under the feature's cutoff, or (correlated)
            // its Gaussian copula variable under its threshold.
            let mut fired = 0;
            if self.rank > 0 {
                fill_normals(rng, &mut scratch.fire, &mut scratch.normals);
                let shared = &scratch.normals[g..];
                for f in 0..g {
                    let load = &self.loadings[f * self.rank..(f + 1) * self.rank];
                    let common: f32 = load.iter().zip(shared).map(|(a, b)| a * b).sum();
                    let own = (1.0 - load.iter().map(|a| a * a).sum::<f32>())
                        .max(0.0)
                        .sqrt();
                    scratch.fired[fired] = f as u32;
                    fired += (common + own * scratch.normals[f] < self.thresholds[f]) as usize;
                }
            } else {
                rng.fill_u32(&mut scratch.fire);
                // Branch-free: write every index, advance past the ones that fire.
                for (f, (&u, &cutoff)) in scratch.fire.iter().zip(&self.cutoffs).enumerate() {
                    scratch.fired[fired] = f as u32;
                    fired += ((u as u64) < cutoff) as usize;
                }
            }
            let fired = &scratch.fired[..fired];
            if let Some(a) = active.as_deref_mut() {
                let a = &mut a[r * g..(r + 1) * g];
                a.iter_mut().for_each(|v| *v = false);
                fired.iter().for_each(|&f| a[f as usize] = true);
            }
            // Their coefficients, U[0, 1), drawn for the firing features only.
            let values = &mut scratch.value[..fired.len()];
            rng.fill_u32(values);
            let row = &mut x[r * d..(r + 1) * d];
            row.iter_mut().for_each(|v| *v = 0.0);
            for (&f, &u) in fired.iter().zip(values.iter()) {
                let c = (u >> 8) as f32 * (1.0 / 16_777_216.0);
                let dir = &self.directions[f as usize * d..(f as usize + 1) * d];
                row.iter_mut().zip(dir).for_each(|(v, &w)| *v += c * w);
            }
        }
    }
}

/// Buffers [`GroundTruth::sample`] reuses.
#[derive(Clone, Debug, Default)]
pub struct SampleScratch {
    fire: Vec<u32>,
    fired: Vec<u32>,
    value: Vec<u32>,
    normals: Vec<f32>,
}

/// Standard normals into `out` by Box–Muller, drawing uniforms through `buf` (which is
/// overwritten).
fn fill_normals(rng: &mut LaneRng, buf: &mut Vec<u32>, out: &mut [f32]) {
    let pairs = out.len().div_ceil(2);
    buf.resize(buf.len().max(2 * pairs), 0);
    rng.fill_u32(&mut buf[..2 * pairs]);
    for (i, pair) in out.chunks_mut(2).enumerate() {
        let u1 = ((buf[2 * i] >> 8) as f32 + 1.0) * (1.0 / 16_777_216.0); // (0, 1]
        let u2 = (buf[2 * i + 1] >> 8) as f32 * (1.0 / 16_777_216.0);
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f32::consts::TAU * u2;
        pair[0] = radius * angle.cos();
        if pair.len() > 1 {
            pair[1] = radius * angle.sin();
        }
    }
}

/// Activation probabilities: the decay's weights scaled by one factor so that they sum to
/// `mean_active`, each capped at 1 (the factor is found by bisection when caps bind).
pub fn activation_probabilities(settings: &GroundTruthSettings) -> Vec<f64> {
    let weights: Vec<f64> = (0..settings.features)
        .map(|g| match settings.probabilities {
            Decay::Exponential => settings.decay.powi(g as i32),
            Decay::Zipf => 1.0 / ((g + 1) as f64).powf(settings.decay),
            Decay::Constant => 1.0,
        })
        .collect();
    let total = |c: f64| weights.iter().map(|w| (c * w).min(1.0)).sum::<f64>();
    let (mut lo, mut hi) = (0.0, 1.0);
    while total(hi) < settings.mean_active && hi < 1e300 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if total(mid) < settings.mean_active {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    weights.iter().map(|w| (hi * w).min(1.0)).collect()
}

/// Φ(z), the standard normal CDF, from [`erfc`].
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The complementary error function, in Numerical Recipes' `erfcc` form (relative error below
/// 1.2e-7 everywhere; also used by the packing bounds of `orthogonal`).
pub(crate) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Φ⁻¹(p) by bisection on [`normal_cdf`] (called once per feature).
fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let (mut lo, mut hi) = (-40.0, 40.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(rank: usize) -> GroundTruthSettings {
        GroundTruthSettings {
            features: 64,
            dim: 16,
            mean_active: 4.0,
            correlation_rank: rank,
            ..GroundTruthSettings::default()
        }
    }

    #[test]
    fn probabilities_sum_to_the_mean_and_follow_the_decay() {
        for kind in [Decay::Exponential, Decay::Zipf, Decay::Constant] {
            let s = GroundTruthSettings {
                probabilities: kind,
                decay: if kind == Decay::Zipf { 1.0 } else { 0.99 },
                ..GroundTruthSettings::default()
            };
            let p = activation_probabilities(&s);
            assert!((p.iter().sum::<f64>() - 5.0).abs() < 1e-9, "{kind:?}");
            assert!(p.windows(2).all(|w| w[0] >= w[1] - 1e-15));
        }
        // Caps at 1 bind when the mean asks for nearly every feature.
        let s = GroundTruthSettings {
            features: 4,
            mean_active: 2.5,
            decay: 0.5,
            ..GroundTruthSettings::default()
        };
        let p = activation_probabilities(&s);
        assert!(
            (p.iter().sum::<f64>() - 2.5).abs() < 1e-9 && p[0] == 1.0,
            "{p:?}"
        );
        assert!((p[1] / p[3] - 4.0).abs() < 1e-9);
    }

    #[test]
    fn normal_quantile_inverts_the_cdf() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        for p in [1e-4, 0.01, 0.3, 0.9] {
            assert!((normal_cdf(normal_quantile(p)) - p).abs() < 1e-7 * p.max(1e-3) * 10.0);
        }
    }

    /// Directions are unit, firing rates match the probabilities (independent and copula),
    /// and the rows are the sums the active mask says.
    #[test]
    fn rows_follow_the_ground_truth() {
        for rank in [0, 3] {
            let s = small(rank);
            let truth = GroundTruth::new(&s, 7);
            for row in truth.directions.chunks_exact(s.dim) {
                let n: f32 = row.iter().map(|v| v * v).sum();
                assert!((n - 1.0).abs() < 1e-5);
            }
            let rows = 20_000;
            let mut x = vec![0f32; rows * s.dim];
            let mut active = vec![false; rows * s.features];
            let mut rng = GroundTruth::stream(7, StreamKind::Data);
            let mut scratch = SampleScratch::default();
            truth.sample(&mut rng, &mut x, Some(&mut active), &mut scratch);
            for g in [0, 10, 63] {
                let fired = (0..rows).filter(|&r| active[r * s.features + g]).count();
                let p = truth.probabilities[g];
                let sd = (p * (1.0 - p) / rows as f64).sqrt();
                let rate = fired as f64 / rows as f64;
                assert!(
                    (rate - p).abs() < 5.0 * sd,
                    "rank {rank} g {g}: {rate} vs {p}"
                );
            }
            // A row without active features is zero; a row's projection on an active
            // feature is not.
            for r in 0..200 {
                let any = (0..s.features).any(|g| active[r * s.features + g]);
                let norm: f32 = x[r * s.dim..(r + 1) * s.dim].iter().map(|v| v * v).sum();
                assert_eq!(any, norm > 0.0, "row {r}");
            }
        }
    }

    /// The copula correlates firing: features with aligned loadings fire together more
    /// often than independence predicts.
    #[test]
    fn the_copula_correlates_firing() {
        let s = GroundTruthSettings {
            features: 8,
            dim: 4,
            mean_active: 2.0,
            probabilities: Decay::Constant,
            correlation_rank: 1,
            correlation_strength: 0.8,
            ..GroundTruthSettings::default()
        };
        let truth = GroundTruth::new(&s, 3);
        let rows = 40_000;
        let mut x = vec![0f32; rows * s.dim];
        let mut active = vec![false; rows * s.features];
        let mut rng = GroundTruth::stream(3, StreamKind::Data);
        truth.sample(
            &mut rng,
            &mut x,
            Some(&mut active),
            &mut SampleScratch::default(),
        );
        // With rank 1 every pair's loadings are ±√0.8 · ±√0.8: same-sign pairs fire together
        // more often than p², opposite-sign pairs less.
        let same_sign = (1..8)
            .find(|&j| truth.loadings[j].signum() == truth.loadings[0].signum())
            .expect("some feature shares feature 0's sign among 8");
        let both = (0..rows)
            .filter(|&r| active[r * 8] && active[r * 8 + same_sign])
            .count() as f64
            / rows as f64;
        assert!(both > 1.5 * 0.25 * 0.25, "joint rate {both}");
    }

    #[test]
    fn the_same_seed_gives_the_same_rows() {
        let s = small(2);
        let a = GroundTruth::new(&s, 1);
        let b = GroundTruth::new(&s, 1);
        assert_eq!(a.directions, b.directions);
        let mut xa = vec![0f32; 50 * s.dim];
        let mut xb = xa.clone();
        a.sample(
            &mut GroundTruth::stream(1, StreamKind::Data),
            &mut xa,
            None,
            &mut SampleScratch::default(),
        );
        b.sample(
            &mut GroundTruth::stream(1, StreamKind::Data),
            &mut xb,
            None,
            &mut SampleScratch::default(),
        );
        assert_eq!(xa, xb);
        assert_ne!(a.directions, GroundTruth::new(&s, 2).directions);
    }

    #[test]
    fn bad_settings_are_named() {
        let s = GroundTruthSettings {
            features: 0,
            decay: 1.5,
            correlation_strength: 1.0,
            ..GroundTruthSettings::default()
        };
        let p = s.problems().join("; ");
        let steep = GroundTruthSettings {
            features: 1000,
            decay: 0.1,
            mean_active: 900.0,
            ..GroundTruthSettings::default()
        };
        assert!(steep.problems().join("").contains("cannot be reached"));
        assert!(
            p.contains("features") && p.contains("decay") && p.contains("correlation_strength"),
            "{p}"
        );
        assert!(GroundTruthSettings::default().problems().is_empty());
    }
}
