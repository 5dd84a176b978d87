//! Data: random streams and the sparse-feature batch sampler.
//!
//! Every instance owns its random streams, derived from `(seed, instance index)` alone, so an
//! instance trains to the same weights whatever the thread count and whichever other instances
//! are trained beside it.
//!
//! The sampler draws **one** 32-bit uniform `u` per (row, feature): the feature is present when
//! `u < T` with `T = p * 2^32`, and then its value is `u / T`. Conditioned on `u < T`, `u` is
//! uniform on `[0, T)`, so `u / T` is uniform on `[0, 1)`: one draw gives both the mask and the
//! value, exactly distributed (up to the 32-bit grid), with no branch.

/// SplitMix64: a tiny, well-mixed generator used only to derive seeds for other streams.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// What a derived stream is used for; keeps the streams of one instance independent.
#[derive(Clone, Copy, Debug)]
pub enum StreamKind {
    /// Weight initialisation.
    Init = 1,
    /// Training batches.
    Data = 2,
    /// Evaluation batches (after training).
    Eval = 3,
}

/// Derive the 64-bit key of one stream of one instance.
pub fn stream_key(seed: u64, instance: u64, kind: StreamKind) -> u64 {
    let mut sm = SplitMix64(seed);
    let a = sm.next_u64();
    let mut sm = SplitMix64(a ^ instance.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let b = sm.next_u64();
    let mut sm = SplitMix64(b ^ (kind as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    sm.next_u64()
}

/// Number of independent xoshiro128++ lanes stepped together (one AVX2 register of u32).
pub const LANES: usize = 8;

/// Eight xoshiro128++ generators stored lane-wise, so filling a buffer is a loop the compiler
/// turns into SIMD code. Output `j` of a fill comes from lane `j % 8`.
#[derive(Clone, Debug)]
pub struct LaneRng {
    s: [[u32; LANES]; 4],
}

impl LaneRng {
    /// Seed all lanes from one 64-bit key (via SplitMix64, never an all-zero state).
    pub fn new(key: u64) -> Self {
        let mut sm = SplitMix64(key);
        let mut s = [[0u32; LANES]; 4];
        for lane in 0..LANES {
            for word in s.iter_mut() {
                word[lane] = sm.next_u64() as u32;
            }
            if s.iter().all(|w| w[lane] == 0) {
                s[0][lane] = 1;
            }
        }
        LaneRng { s }
    }

    /// The full generator state (for checkpoints).
    pub fn state(&self) -> [u32; 4 * LANES] {
        let mut out = [0u32; 4 * LANES];
        for (w, word) in self.s.iter().enumerate() {
            out[w * LANES..(w + 1) * LANES].copy_from_slice(word);
        }
        out
    }

    /// A generator continuing exactly from a saved [`LaneRng::state`].
    pub fn from_state(state: &[u32; 4 * LANES]) -> Self {
        let mut s = [[0u32; LANES]; 4];
        for (w, word) in s.iter_mut().enumerate() {
            word.copy_from_slice(&state[w * LANES..(w + 1) * LANES]);
        }
        LaneRng { s }
    }

    /// Advance every lane once and return the eight outputs.
    #[inline(always)]
    pub fn next_block(&mut self) -> [u32; LANES] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0u32; LANES];
        for l in 0..LANES {
            out[l] = s0[l].wrapping_add(s3[l]).rotate_left(7).wrapping_add(s0[l]);
            let t = s1[l] << 9;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= t;
            s3[l] = s3[l].rotate_left(11);
        }
        out
    }

    /// Fill `out` with uniform u32s. A partial last block still consumes a whole block, so the
    /// stream position depends only on how many blocks were asked for.
    #[inline(always)]
    pub fn fill_u32(&mut self, out: &mut [u32]) {
        let mut chunks = out.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_block());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let block = self.next_block();
            rest.copy_from_slice(&block[..rest.len()]);
        }
    }

    /// One uniform f64 in [0, 1) (53 bits from two draws); for initialisation, not the hot path.
    pub fn next_f64(&mut self) -> f64 {
        let b = self.next_block();
        let bits = ((b[0] as u64) << 21) ^ ((b[1] as u64) >> 11);
        (bits & ((1u64 << 53) - 1)) as f64 / (1u64 << 53) as f64
    }

    /// One standard normal draw (Box–Muller); for initialisation, not the hot path.
    pub fn next_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // in (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Range of a present feature's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRange {
    /// Uniform on [0, 1] (the paper's default).
    Unit,
    /// Uniform on [-1, 1] (the |x| computation model).
    Symmetric,
}

/// Draws batches of sparse features for one instance, feature-major: `x[i * rows + r]`.
#[derive(Clone, Debug)]
pub struct FeatureSampler {
    /// Per feature: presence threshold on the u32 draw (`p * 2^32`, saturating).
    threshold: Vec<u64>,
    /// Per feature: `1 / threshold`, maps a present draw to [0, 1).
    inv_threshold: Vec<f32>,
    range: ValueRange,
    rng: LaneRng,
    draws: Vec<u32>,
}

impl FeatureSampler {
    /// A sampler for features present with probabilities `feature_probability` (each in [0, 1]).
    pub fn new(feature_probability: &[f32], range: ValueRange, key: u64, rows: usize) -> Self {
        let threshold: Vec<u64> = feature_probability
            .iter()
            .map(|&p| ((p as f64).clamp(0.0, 1.0) * 4_294_967_296.0).round() as u64)
            .collect();
        let inv_threshold = threshold
            .iter()
            .map(|&t| if t == 0 { 0.0 } else { (1.0 / t as f64) as f32 })
            .collect();
        FeatureSampler {
            threshold,
            inv_threshold,
            range,
            rng: LaneRng::new(key),
            draws: vec![0; rows.div_ceil(LANES) * LANES],
        }
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
        self.threshold.len()
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
        debug_assert_eq!(x.len(), self.features() * stride);
        debug_assert!(self.draws.len() >= rows && stride >= rows);
        let (scale, offset) = match self.range {
            ValueRange::Unit => (1.0f32, 0.0f32),
            ValueRange::Symmetric => (2.0f32, -1.0f32),
        };
        let draws = &mut self.draws[..rows.div_ceil(LANES) * LANES];
        for (i, padded) in x.chunks_exact_mut(stride).enumerate() {
            let (row, padding) = padded.split_at_mut(rows);
            padding.fill(0.0);
            self.rng.fill_u32(draws);
            let t = self.threshold[i];
            if t == 0 {
                row.fill(0.0);
                continue;
            }
            let inv = self.inv_threshold[i] * scale;
            if t > u32::MAX as u64 {
                // p = 1: every feature present, value = u / 2^32.
                for (v, &u) in row.iter_mut().zip(draws.iter()) {
                    *v = u as f32 * inv + offset;
                }
            } else {
                let t = t as u32;
                for (v, &u) in row.iter_mut().zip(draws.iter()) {
                    let value = u as f32 * inv + offset;
                    *v = if u < t { value } else { 0.0 };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_distinct_and_reproducible() {
        let mut a = LaneRng::new(42);
        let mut b = LaneRng::new(42);
        let x = a.next_block();
        assert_eq!(x, b.next_block());
        for i in 0..LANES {
            for j in 0..i {
                assert_ne!(x[i], x[j]);
            }
        }
        assert_ne!(LaneRng::new(43).next_block(), x);
    }

    #[test]
    fn saved_state_continues_the_stream() {
        let mut a = LaneRng::new(5);
        a.next_block();
        let mut b = LaneRng::from_state(&a.state());
        assert_eq!(a.next_block(), b.next_block());
    }

    #[test]
    fn stream_keys_differ_by_instance_and_kind() {
        let k = stream_key(0, 0, StreamKind::Data);
        assert_ne!(k, stream_key(0, 1, StreamKind::Data));
        assert_ne!(k, stream_key(0, 0, StreamKind::Init));
        assert_ne!(k, stream_key(1, 0, StreamKind::Data));
        assert_eq!(k, stream_key(0, 0, StreamKind::Data));
    }

    #[test]
    fn normal_draws_have_unit_variance() {
        let mut rng = LaneRng::new(7);
        let n = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let z = rng.next_normal();
            s += z;
            s2 += z * z;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

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
}
