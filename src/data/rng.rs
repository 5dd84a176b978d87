//! Random streams: every instance owns its streams, derived from `(seed, instance index,
//! purpose)` alone, so an instance trains to the same weights whatever the thread count and
//! whichever other instances are trained beside it.

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
    /// Evaluation batches (after training), and the test stream of a fixed dataset.
    Eval = 3,
    /// The order in which a fixed dataset's rows are visited, epoch by epoch.
    Shuffle = 4,
    /// The features adversarial training attacks, step by step.
    Attack = 5,
    /// Random vectors of a packing (`orthogonal`), not a toy model.
    Packing = 6,
    /// Directions and copula of a synthetic ground truth (sparse autoencoders).
    GroundTruth = 7,
    /// Initial weights of a sparse autoencoder.
    SaeInit = 8,
    /// A toy model's inputs drawn to train sparse autoencoders on its activations (not the
    /// stream the toy model trained on).
    SaeData = 9,
    /// The same, for scoring the sparse autoencoders.
    SaeEval = 10,
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
}
