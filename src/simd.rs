//! Sixteen f32 lanes held in registers: the one abstraction the training kernel is written in.
//!
//! The kernel in [`crate::model`] works on tiles of 16 batch rows. [`Lanes16`] is such a tile
//! in registers, with exactly the operations the kernel needs. Three implementations give the
//! same bits, because each lane does the same IEEE operations in the same order (no FMA, no
//! reassociation):
//!
//! - [`Avx16`]: two 256-bit AVX registers, used inside the AVX2 kernel only;
//! - [`Sse16`]: four 128-bit SSE registers, part of every x86-64 CPU (the portable build);
//! - [`Scalar16`]: a plain array, for other targets.
//!
//! We write the lanes out instead of trusting the auto-vectoriser: with the accumulators of a
//! register tile in plain arrays, LLVM kept them in memory and ran scalar code (2-3x slower).
//!
//! The module is private to the crate, and must stay so: [`Avx16`]'s safe methods execute AVX
//! instructions, so calling them on a CPU without AVX is undefined behaviour. Code outside the
//! crate cannot reach them; code inside it keeps the invariant documented on [`Avx16`].

use crate::model::Tile;

/// Sixteen f32 lanes in registers.
pub(crate) trait Lanes16: Copy {
    /// How many 16-row accumulators a register tile should hold: the kernel keeps this many
    /// hidden dimensions (or output features) in registers at once.
    const TILE: Tile;
    /// All lanes zero.
    fn zero() -> Self;
    /// All lanes `x`.
    fn splat(x: f32) -> Self;
    /// Load 16 floats.
    fn load(from: &[f32; 16]) -> Self;
    /// Store 16 floats.
    fn store(self, to: &mut [f32; 16]);
    /// Lane-wise `self + o`.
    fn add(self, o: Self) -> Self;
    /// Lane-wise `self - o`.
    fn sub(self, o: Self) -> Self;
    /// Lane-wise `self * o`.
    fn mul(self, o: Self) -> Self;
    /// Lane-wise `max(self, 0)`.
    fn relu(self) -> Self;
    /// Lane-wise `|self|`.
    fn abs(self) -> Self;
    /// `value` in the lanes where `self > 0`, +0 in the others.
    fn where_positive(self, value: Self) -> Self;
    /// `self` in the first `count` lanes, +0 in the rest.
    fn keep_first(self, count: usize) -> Self;
    /// Bit l set where lane l is `> 0` (16 bits).
    fn positive_mask(self) -> u32;
    /// The lanes as an array.
    fn to_array(self) -> [f32; 16];
}

/// `self + a * b`, lane-wise, rounded twice (no FMA, so every build gives the same bits).
#[inline(always)]
pub(crate) fn mul_add<V: Lanes16>(acc: V, a: V, b: V) -> V {
    acc.add(a.mul(b))
}

/// The portable fallback: a plain array (LLVM vectorises it where it can).
// On x86-64 the portable kernel uses `Sse16`; there this type is only the tests' reference.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar16([f32; 16]);

impl Lanes16 for Scalar16 {
    const TILE: Tile = Tile::Two;
    #[inline(always)]
    fn zero() -> Self {
        Scalar16([0.0; 16])
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Scalar16([x; 16])
    }
    #[inline(always)]
    fn load(from: &[f32; 16]) -> Self {
        Scalar16(*from)
    }
    #[inline(always)]
    fn store(self, to: &mut [f32; 16]) {
        *to = self.0;
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Scalar16(std::array::from_fn(|l| self.0[l] + o.0[l]))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Scalar16(std::array::from_fn(|l| self.0[l] - o.0[l]))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Scalar16(std::array::from_fn(|l| self.0[l] * o.0[l]))
    }
    #[inline(always)]
    fn relu(self) -> Self {
        Scalar16(self.0.map(|v| if v > 0.0 { v } else { 0.0 }))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Scalar16(self.0.map(f32::abs))
    }
    #[inline(always)]
    fn where_positive(self, value: Self) -> Self {
        Scalar16(std::array::from_fn(|l| {
            if self.0[l] > 0.0 {
                value.0[l]
            } else {
                0.0
            }
        }))
    }
    #[inline(always)]
    fn keep_first(self, count: usize) -> Self {
        Scalar16(std::array::from_fn(
            |l| if l < count { self.0[l] } else { 0.0 },
        ))
    }
    #[inline(always)]
    fn positive_mask(self) -> u32 {
        self.0
            .iter()
            .enumerate()
            .fold(0, |m, (l, &v)| m | (((v > 0.0) as u32) << l))
    }
    #[inline(always)]
    fn to_array(self) -> [f32; 16] {
        self.0
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx16, Sse16};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes16;
    use crate::model::Tile;
    use std::arch::x86_64::*;

    /// Lane indices 0..16, for [`Lanes16::keep_first`].
    const LANE_INDEX: [f32; 16] = [
        0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
    ];

    /// Four SSE registers. SSE and SSE2 are part of x86-64, so this needs no detection.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Sse16([__m128; 4]);

    // SAFETY (every `unsafe` block in this impl): SSE is in the x86-64 baseline, and the loads
    // and stores go through `&[f32; 16]`, which holds 16 valid floats.
    impl Lanes16 for Sse16 {
        // 16 XMM registers: two tiles of four registers leave room for the operands.
        const TILE: Tile = Tile::Two;
        #[inline(always)]
        fn zero() -> Self {
            unsafe { Sse16([_mm_setzero_ps(); 4]) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            unsafe { Sse16([_mm_set1_ps(x); 4]) }
        }
        #[inline(always)]
        fn load(from: &[f32; 16]) -> Self {
            let p = from.as_ptr();
            unsafe {
                Sse16([
                    _mm_loadu_ps(p.add(0)),
                    _mm_loadu_ps(p.add(4)),
                    _mm_loadu_ps(p.add(8)),
                    _mm_loadu_ps(p.add(12)),
                ])
            }
        }
        #[inline(always)]
        fn store(self, to: &mut [f32; 16]) {
            let p = to.as_mut_ptr();
            for (j, v) in self.0.iter().enumerate() {
                unsafe { _mm_storeu_ps(p.add(4 * j), *v) }
            }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            unsafe {
                Sse16([
                    _mm_add_ps(self.0[0], o.0[0]),
                    _mm_add_ps(self.0[1], o.0[1]),
                    _mm_add_ps(self.0[2], o.0[2]),
                    _mm_add_ps(self.0[3], o.0[3]),
                ])
            }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            unsafe {
                Sse16([
                    _mm_sub_ps(self.0[0], o.0[0]),
                    _mm_sub_ps(self.0[1], o.0[1]),
                    _mm_sub_ps(self.0[2], o.0[2]),
                    _mm_sub_ps(self.0[3], o.0[3]),
                ])
            }
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            unsafe {
                Sse16([
                    _mm_mul_ps(self.0[0], o.0[0]),
                    _mm_mul_ps(self.0[1], o.0[1]),
                    _mm_mul_ps(self.0[2], o.0[2]),
                    _mm_mul_ps(self.0[3], o.0[3]),
                ])
            }
        }
        #[inline(always)]
        fn relu(self) -> Self {
            // (v > 0) & v: +0 for v <= 0, as `Scalar16::relu`.
            unsafe {
                let z = _mm_setzero_ps();
                Sse16([
                    _mm_and_ps(_mm_cmpgt_ps(self.0[0], z), self.0[0]),
                    _mm_and_ps(_mm_cmpgt_ps(self.0[1], z), self.0[1]),
                    _mm_and_ps(_mm_cmpgt_ps(self.0[2], z), self.0[2]),
                    _mm_and_ps(_mm_cmpgt_ps(self.0[3], z), self.0[3]),
                ])
            }
        }
        #[inline(always)]
        fn abs(self) -> Self {
            unsafe {
                let sign = _mm_set1_ps(-0.0);
                Sse16([
                    _mm_andnot_ps(sign, self.0[0]),
                    _mm_andnot_ps(sign, self.0[1]),
                    _mm_andnot_ps(sign, self.0[2]),
                    _mm_andnot_ps(sign, self.0[3]),
                ])
            }
        }
        #[inline(always)]
        fn where_positive(self, value: Self) -> Self {
            unsafe {
                let z = _mm_setzero_ps();
                Sse16([
                    { _mm_and_ps(_mm_cmpgt_ps(self.0[0], z), value.0[0]) },
                    { _mm_and_ps(_mm_cmpgt_ps(self.0[1], z), value.0[1]) },
                    { _mm_and_ps(_mm_cmpgt_ps(self.0[2], z), value.0[2]) },
                    { _mm_and_ps(_mm_cmpgt_ps(self.0[3], z), value.0[3]) },
                ])
            }
        }
        #[inline(always)]
        fn keep_first(self, count: usize) -> Self {
            Sse16::splat(count as f32).where_greater(Sse16::load(&LANE_INDEX), self)
        }
        #[inline(always)]
        fn positive_mask(self) -> u32 {
            unsafe {
                let z = _mm_setzero_ps();
                let bits = |v: __m128| _mm_movemask_ps(_mm_cmpgt_ps(v, z)) as u32;
                bits(self.0[0])
                    | bits(self.0[1]) << 4
                    | bits(self.0[2]) << 8
                    | bits(self.0[3]) << 12
            }
        }
        #[inline(always)]
        fn to_array(self) -> [f32; 16] {
            let mut out = [0.0; 16];
            self.store(&mut out);
            out
        }
    }

    impl Sse16 {
        /// `value` where `self > than`, else +0.
        #[inline(always)]
        fn where_greater(self, than: Self, value: Self) -> Self {
            unsafe {
                Sse16([
                    { _mm_and_ps(_mm_cmpgt_ps(self.0[0], than.0[0]), value.0[0]) },
                    { _mm_and_ps(_mm_cmpgt_ps(self.0[1], than.0[1]), value.0[1]) },
                    { _mm_and_ps(_mm_cmpgt_ps(self.0[2], than.0[2]), value.0[2]) },
                    { _mm_and_ps(_mm_cmpgt_ps(self.0[3], than.0[3]), value.0[3]) },
                ])
            }
        }
    }

    /// Two AVX registers.
    ///
    /// # Invariant (soundness)
    ///
    /// Every method executes AVX instructions although it is a safe function (trait methods
    /// cannot carry `#[target_feature]`). So this type may only be used, constructed or have
    /// its methods called inside functions compiled with `#[target_feature(enable =
    /// "avx2,fma")]` that are reached only after runtime detection of AVX2 and FMA
    /// (`is_x86_feature_detected!`, as `KernelVariant::detect` does): today `chunk_avx2` in
    /// [`crate::model`], reached through the `unsafe fn forward_backward_chunk_avx2`, `sparse_rows_avx2` in
    /// `crate::model::sparse`, reached through the `unsafe fn sparse_forward_backward_avx2`,
    /// `block_avx2` in `crate::model::gemm`, reached through the `unsafe fn
    /// block_forward_backward_avx2`, and the AVX test below. Using it anywhere else is undefined behaviour on a CPU without AVX. This
    /// is why the type, and the whole `simd` module, is private to the crate.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx16([__m256; 2]);

    // SAFETY (every `unsafe` block in this impl): by the invariant on `Avx16`, these methods
    // run only inside the AVX2 kernel, which runs only after runtime detection of AVX2 and FMA;
    // loads and stores go through `&[f32; 16]`, which holds 16 valid floats.
    impl Lanes16 for Avx16 {
        // 16 YMM registers: four tiles of two registers leave room for the operands.
        const TILE: Tile = Tile::Four;
        #[inline(always)]
        fn zero() -> Self {
            unsafe { Avx16([_mm256_setzero_ps(); 2]) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            unsafe { Avx16([_mm256_set1_ps(x); 2]) }
        }
        #[inline(always)]
        fn load(from: &[f32; 16]) -> Self {
            let p = from.as_ptr();
            unsafe { Avx16([_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))]) }
        }
        #[inline(always)]
        fn store(self, to: &mut [f32; 16]) {
            let p = to.as_mut_ptr();
            unsafe {
                _mm256_storeu_ps(p, self.0[0]);
                _mm256_storeu_ps(p.add(8), self.0[1]);
            }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            unsafe {
                Avx16([
                    _mm256_add_ps(self.0[0], o.0[0]),
                    _mm256_add_ps(self.0[1], o.0[1]),
                ])
            }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            unsafe {
                Avx16([
                    _mm256_sub_ps(self.0[0], o.0[0]),
                    _mm256_sub_ps(self.0[1], o.0[1]),
                ])
            }
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            unsafe {
                Avx16([
                    _mm256_mul_ps(self.0[0], o.0[0]),
                    _mm256_mul_ps(self.0[1], o.0[1]),
                ])
            }
        }
        #[inline(always)]
        fn relu(self) -> Self {
            unsafe {
                let z = _mm256_setzero_ps();
                Avx16([
                    _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(self.0[0], z), self.0[0]),
                    _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(self.0[1], z), self.0[1]),
                ])
            }
        }
        #[inline(always)]
        fn abs(self) -> Self {
            unsafe {
                let sign = _mm256_set1_ps(-0.0);
                Avx16([
                    _mm256_andnot_ps(sign, self.0[0]),
                    _mm256_andnot_ps(sign, self.0[1]),
                ])
            }
        }
        #[inline(always)]
        fn where_positive(self, value: Self) -> Self {
            unsafe {
                let z = _mm256_setzero_ps();
                Avx16([
                    { _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(self.0[0], z), value.0[0]) },
                    { _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(self.0[1], z), value.0[1]) },
                ])
            }
        }
        #[inline(always)]
        fn keep_first(self, count: usize) -> Self {
            let limit = Avx16::splat(count as f32);
            let index = Avx16::load(&LANE_INDEX);
            unsafe {
                Avx16([
                    {
                        _mm256_and_ps(
                            _mm256_cmp_ps::<_CMP_GT_OQ>(limit.0[0], index.0[0]),
                            self.0[0],
                        )
                    },
                    {
                        _mm256_and_ps(
                            _mm256_cmp_ps::<_CMP_GT_OQ>(limit.0[1], index.0[1]),
                            self.0[1],
                        )
                    },
                ])
            }
        }
        #[inline(always)]
        fn positive_mask(self) -> u32 {
            unsafe {
                let z = _mm256_setzero_ps();
                let low = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(self.0[0], z)) as u32;
                let high = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(self.0[1], z)) as u32;
                low | high << 8
            }
        }
        #[inline(always)]
        fn to_array(self) -> [f32; 16] {
            let mut out = [0.0; 16];
            self.store(&mut out);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<V: Lanes16>() {
        let a: [f32; 16] = std::array::from_fn(|l| l as f32 - 7.5);
        let b: [f32; 16] = std::array::from_fn(|l| 0.25 * l as f32 - 1.0);
        let (va, vb) = (V::load(&a), V::load(&b));
        let s = Scalar16::load(&a);
        let t = Scalar16::load(&b);
        assert_eq!(va.add(vb).to_array(), s.add(t).to_array());
        assert_eq!(va.sub(vb).to_array(), s.sub(t).to_array());
        assert_eq!(va.mul(vb).to_array(), s.mul(t).to_array());
        assert_eq!(mul_add(va, vb, va).to_array(), mul_add(s, t, s).to_array());
        assert_eq!(va.relu().to_array(), s.relu().to_array());
        assert_eq!(va.abs().to_array(), s.abs().to_array());
        assert_eq!(
            va.where_positive(vb).to_array(),
            s.where_positive(t).to_array()
        );
        for count in 0..=16 {
            assert_eq!(
                va.keep_first(count).to_array(),
                s.keep_first(count).to_array()
            );
        }
        assert_eq!(va.positive_mask(), s.positive_mask());
        assert_eq!(vb.positive_mask(), t.positive_mask());
        assert_eq!(va.positive_mask(), 0xFF00);
        assert_eq!(V::zero().positive_mask(), 0);
        assert_eq!(V::splat(1.0).positive_mask(), 0xFFFF);
        for l in 0..16 {
            let mut one = [-1.0f32; 16];
            one[l] = 0.5;
            assert_eq!(V::load(&one).positive_mask(), 1 << l, "lane {l}");
        }
        assert_eq!(V::splat(3.0).to_array(), [3.0; 16]);
        assert_eq!(V::zero().to_array(), [0.0; 16]);
        let mut out = [0.0; 16];
        va.store(&mut out);
        assert_eq!(out, a);
    }

    #[test]
    fn scalar_lanes() {
        check::<Scalar16>();
        assert_eq!(Scalar16::splat(-2.0).relu().to_array(), [0.0; 16]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sse_lanes_match_scalar() {
        check::<Sse16>();
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx_lanes_match_scalar() {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 detected just above.
            unsafe { avx_check() }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn avx_check() {
        check::<Avx16>();
    }
}
