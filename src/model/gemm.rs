//! The block pass: forward and backward of any model kind on a block of rows, with the five
//! matrix products done by `faer` and the element-wise work (ReLU masks, loss, output
//! gradient) in plain loops between them. It is the faster pass wherever the products
//! dominate (n·m in the thousands: `uniform`, `sweep-100`, the big |x| model); the fused
//! register-tile kernel of [`crate::model`] stays faster where per-call overhead dominates.
//!
//! Per block of `b` rows (X feature-major `[n][b]`, H and dH row-major `[b][m]`, P and G
//! feature-major `[n][b]`):
//!
//! ```text
//! H   = Xᵀ W_enc (+ W_enc δ)        then ReLU for the hidden-ReLU models   b·n·m
//! P   = W_dec Hᵀ + b                                                      n·m·b
//! G   = 2 w_i (f(P) − |X|) f′(P)    element-wise; the loss beside it
//! ∂W_dec += G H                                                           n·b·m
//! dH  = Gᵀ W_dec (+ L1), masked by ReLU′(H)                               b·n·m
//! ∂W_enc += X dH (+ δ Σ dH)                                               n·b·m
//! ```
//!
//! With **sparse input** (`train.kernel = "sparse"`, or `auto` at low density), the two
//! encoder products read each row's non-zero inputs only (p·n per row), and the decoder's two
//! backward products visit only the non-zero entries of G when fewer than
//! [`DENSE_G_SHARE`] of them are non-zero (after the output ReLU, almost all of G is zero for
//! sparse data once the biases have turned negative). Only P = W_dec Hᵀ is inherently dense.
//!
//! Every sum has a fixed order that depends only on the sizes and, inside faer, on the CPU's
//! vector instructions (faer picks its AVX2 or AVX-512 kernel at run time): results are the
//! same bits for any thread count, subset or resume on one machine, and the same on the
//! portable and AVX2 builds of tms, but may differ in the last bits between an AVX2 and an
//! AVX-512 machine. Dense and sparse input agree to rounding.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::{sum16, Extras, ModelKind, Shape};
use crate::simd::{mul_add, Lanes16};

/// Rows per block: faer runs near its peak from a few hundred rows; a block of `uniform`'s
/// shape (n = 400) is 2 × 400 × 512 floats of X and G, which stays in the L2 cache of one core.
/// A multiple of [`super::ROW_CHUNK`], so that blocks are filled by the fused kernel's chunks
/// (the same random draws).
pub const BLOCK_ROWS: usize = 512;

/// With sparse input, the decoder's backward products go through faer (dense) when more than
/// this share of G is non-zero, and visit the non-zero entries one by one otherwise.
pub const DENSE_G_SHARE: f32 = 0.1;

/// `train.kernel = "auto"` runs the block pass from this many weights (n·m) up; below,
/// per-call overhead dominates and the fused kernel is faster (`bench/passes.sh`, p = 0.1:
/// 30×8 fused 1.14× faster, 40×10 the block pass 1.09×, 100×20 1.6×, 400×30 at p = 1 2.2×).
/// Here, below the config and the trainer, so that both read one number.
pub const BLOCKS_FROM_WEIGHTS: usize = 256;

/// Sparse input on hidden layers narrower than this goes to the row-by-row pass of
/// [`super::sparse`] where it applies (a product with so few columns gives faer nothing to do).
pub const ROWS_BELOW_HIDDEN: usize = 8;

/// The hidden rows of H and dH are padded to a multiple of this many floats.
const PAD: usize = 16;

/// Buffers of the block pass for one instance (allocated once, reused every step).
#[derive(Clone, Debug)]
pub struct BlockWorkspace {
    /// Inputs X, feature-major `[n][b]` for a block of `b` rows.
    pub x: Vec<f32>,
    /// Hidden activations H, row-major `[b][mp]` (mp: m rounded up to [`PAD`], zero padding,
    /// so that the sparse loops run on whole vectors).
    h: Vec<f32>,
    /// Their gradient dH, `[b][mp]`.
    dh: Vec<f32>,
    /// W_enc and W_dec with rows padded to mp, `[2][n][mp]` (sparse input only; empty
    /// otherwise).
    w_pad: Vec<f32>,
    /// Their gradients with rows padded to mp, `[2][n][mp]` (sparse input only).
    dw_pad: Vec<f32>,
    /// Output pre-activations P, then in place the output gradient G, `[n][b]`.
    g: Vec<f32>,
    /// W_enc δ (`[m]`), the hidden offset of adversarial training, then Σ_r dH (`[m]`).
    offset: Vec<f32>,
    /// X's non-zero entries, feature by feature (sparse input only).
    inputs: Entries,
    /// G's non-zero entries, feature by feature (sparse input only).
    gradients: Entries,
    /// [`DENSE_G_SHARE`]; tests move it to force one way or the other.
    dense_g_share: f32,
}

/// The non-zero entries of a feature-major block, feature by feature and in each feature by
/// row (compressed sparse columns). Found 16 rows at a time: a group of zeros costs one
/// compare, so the scan is cheap at the paper's densities.
#[derive(Clone, Debug, Default)]
struct Entries {
    /// Feature `i`'s entries are `start[i]..start[i + 1]`.
    start: Vec<u32>,
    /// Rows and values of the entries; the first `len` are in use (the buffers hold the
    /// largest block seen, so that adding an entry is one store, not a `Vec::push`).
    row: Vec<u32>,
    value: Vec<f32>,
    len: usize,
}

impl Entries {
    /// Room for `capacity` entries of a block of `features` features.
    fn with_capacity(features: usize, capacity: usize) -> Self {
        Entries {
            start: Vec::with_capacity(if capacity > 0 { features + 1 } else { 0 }),
            row: vec![0; capacity],
            value: vec![0.0; capacity],
            len: 0,
        }
    }

    /// No entries yet, room for `capacity`: call [`Entries::push`] for the non-zeros of
    /// feature 0, then [`Entries::end_feature`], and so on. Allocates only when a block is
    /// larger than any before.
    #[inline(always)]
    fn clear(&mut self, capacity: usize) {
        if self.row.len() < capacity {
            self.row.resize(capacity, 0);
            self.value.resize(capacity, 0.0);
        }
        self.start.clear();
        self.start.push(0);
        self.len = 0;
    }

    /// The lanes of `mask` (bit l for lane l) of a group of 16 rows starting at `r0`.
    #[inline(always)]
    fn push(&mut self, r0: usize, mut mask: u32, values: &[f32; 16]) {
        let mut len = self.len;
        while mask != 0 {
            let l = mask.trailing_zeros() as usize;
            self.row[len] = (r0 + l) as u32;
            self.value[len] = values[l];
            len += 1;
            mask &= mask - 1;
        }
        self.len = len;
    }

    /// One entry.
    #[inline(always)]
    fn push_one(&mut self, r: usize, value: f32) {
        self.row[self.len] = r as u32;
        self.value[self.len] = value;
        self.len += 1;
    }

    /// Close the current feature's list.
    #[inline(always)]
    fn end_feature(&mut self) {
        self.start.push(self.len as u32);
    }

    /// Replace the entries by those of `x` (`[features][b]`).
    #[inline(always)]
    fn fill<V: Lanes16>(&mut self, x: &[f32], features: usize, b: usize) {
        self.clear(features * b);
        let full = b - b % 16;
        for line in x.chunks_exact(b).take(features) {
            for (k, group) in line[..full].chunks_exact(16).enumerate() {
                let group: &[f32; 16] = group.try_into().expect("16 floats");
                let mask = V::load(group).abs().positive_mask();
                if mask != 0 {
                    self.push(16 * k, mask, group);
                }
            }
            for (r, &v) in line.iter().enumerate().skip(full) {
                if v != 0.0 {
                    self.push_one(r, v);
                }
            }
            self.end_feature();
        }
    }

    /// Feature `i`'s entries: rows and values.
    #[inline(always)]
    fn feature(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.start[i] as usize, self.start[i + 1] as usize);
        (&self.row[a..b], &self.value[a..b])
    }
}

impl BlockWorkspace {
    /// Buffers for blocks of up to [`BLOCK_ROWS`] rows of a model of this shape, with the
    /// sparse-input buffers when `sparse_input` (all allocated here, none during training).
    pub fn new(shape: &Shape, sparse_input: bool) -> Self {
        let (n, mp) = (shape.features, shape.hidden.next_multiple_of(PAD));
        let sparse = if sparse_input { 2 * n * mp } else { 0 };
        let entries = if sparse_input { n * BLOCK_ROWS } else { 0 };
        BlockWorkspace {
            x: vec![0.0; n * BLOCK_ROWS],
            h: vec![0.0; BLOCK_ROWS * mp],
            dh: vec![0.0; BLOCK_ROWS * mp],
            w_pad: vec![0.0; sparse],
            dw_pad: vec![0.0; sparse],
            g: vec![0.0; n * BLOCK_ROWS],
            offset: vec![0.0; shape.hidden],
            inputs: Entries::with_capacity(n, entries),
            gradients: Entries::with_capacity(n, entries),
            dense_g_share: DENSE_G_SHARE,
        }
    }

    /// Floats (or 4-byte words) these buffers hold for a model of n features and m hidden
    /// dimensions: the config's memory check counts them.
    pub fn words(features: usize, hidden: usize, sparse_input: bool) -> usize {
        let (n, mp) = (features, hidden.next_multiple_of(PAD));
        let dense = 2 * n * BLOCK_ROWS + 2 * BLOCK_ROWS * mp + hidden;
        let sparse = 4 * n * mp + 4 * n * BLOCK_ROWS + 2 * (n + 1);
        dense + if sparse_input { sparse } else { 0 }
    }
}

/// What one call of the block pass works on besides the parameters and the workspace.
#[derive(Clone, Copy, Debug)]
pub struct Block<'a> {
    /// `I_i / (batch · n)` per feature, as for [`super::forward_backward_chunk`].
    pub loss_weight: &'a [f32],
    /// The L1 penalty and the input shift.
    pub extras: Extras<'a>,
    /// Rows in the block (1 to [`BLOCK_ROWS`]), held in `ws.x[..n * rows]`.
    pub rows: usize,
    /// Run the encoder products over the non-zero inputs (and, where G is mostly zero, the
    /// decoder's backward over G's non-zeros); needs a workspace made for it.
    pub sparse_input: bool,
}

/// Forward and backward of one instance on a block of rows held in `ws.x` (feature-major,
/// lines of `block.rows`); returns the block's share of the loss and **adds** the gradients
/// into `grads`, as [`super::forward_backward_chunk`] does for a chunk (same loss weights,
/// same [`Extras`]), to rounding. Dense and sparse input agree to rounding.
///
/// # Panics
/// If the block is empty or larger than [`BLOCK_ROWS`], or a buffer does not fit `shape`.
pub fn block_forward_backward(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut BlockWorkspace,
    block: Block<'_>,
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    type Lanes = crate::simd::Sse16;
    #[cfg(not(target_arch = "x86_64"))]
    type Lanes = crate::simd::Scalar16;
    block_impl::<Lanes>(shape, params, grads, ws, block)
}

/// [`block_forward_backward`] with its element-wise loops compiled for AVX2 (same bits).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub unsafe fn block_forward_backward_avx2(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut BlockWorkspace,
    block: Block<'_>,
) -> f64 {
    block_avx2(shape, params, grads, ws, block)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
fn block_avx2(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut BlockWorkspace,
    block: Block<'_>,
) -> f64 {
    block_impl::<crate::simd::Avx16>(shape, params, grads, ws, block)
}

#[inline(always)]
fn block_impl<V: Lanes16>(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut BlockWorkspace,
    block: Block<'_>,
) -> f64 {
    let Block {
        loss_weight,
        extras,
        rows: b,
        sparse_input,
    } = block;
    assert!(
        b > 0 && b <= BLOCK_ROWS,
        "a block holds 1 to BLOCK_ROWS rows"
    );
    let (n, m) = (shape.features, shape.hidden);
    let hidden_relu = matches!(shape.kind, ModelKind::ReluHidden | ModelKind::Abs);
    let output_relu = shape.kind != ModelKind::Linear;
    let (dec_off, bias_off) = (shape.decoder_offset(), shape.bias_offset());
    let w_enc = MatRef::from_row_major_slice(&params[..n * m], n, m);
    let dec = &params[dec_off..dec_off + n * m];
    let w_dec = MatRef::from_row_major_slice(dec, n, m);
    let bias = &params[bias_off..bias_off + n];
    let mp = m.next_multiple_of(PAD);
    assert!(
        !sparse_input || ws.w_pad.len() >= 2 * n * mp,
        "sparse input needs a workspace made for it (BlockWorkspace::new(shape, true))"
    );
    let BlockWorkspace {
        x,
        h,
        dh,
        w_pad,
        dw_pad,
        g,
        offset,
        inputs,
        gradients,
        dense_g_share,
    } = ws;
    let x = &x[..n * b];
    let h = &mut h[..b * mp];
    let dh = &mut dh[..b * mp];
    let g = &mut g[..n * b];
    let offset = &mut offset[..m];

    // ---- H = Xᵀ W_enc (+ W_enc δ), then the hidden ReLU
    let pad = if sparse_input { n * mp } else { 0 }; // the padded copies: sparse input only
    let (w_enc_pad, w_dec_pad) = w_pad[..2 * pad].split_at_mut(pad);
    let (dw_enc_pad, dw_dec_pad) = dw_pad[..2 * pad].split_at_mut(pad);
    if sparse_input {
        for (i, (we, wd)) in w_enc_pad
            .chunks_exact_mut(mp)
            .zip(w_dec_pad.chunks_exact_mut(mp))
            .enumerate()
        {
            we[..m].copy_from_slice(&params[i * m..(i + 1) * m]);
            wd[..m].copy_from_slice(&dec[i * m..(i + 1) * m]);
        }
        dw_enc_pad.fill(0.0);
        dw_dec_pad.fill(0.0);
        inputs.fill::<V>(x, n, b);
        h.fill(0.0);
        for j in 0..n {
            let w_j = &w_enc_pad[j * mp..(j + 1) * mp];
            let (rows, values) = inputs.feature(j);
            for (&r, &v) in rows.iter().zip(values) {
                let r = r as usize;
                axpy_padded::<V>(&mut h[r * mp..(r + 1) * mp], v, w_j);
            }
        }
    } else {
        let dst = row_major_mut(h, b, m, mp);
        let xt = MatRef::from_row_major_slice(x, n, b).transpose();
        matmul(dst, Accum::Replace, xt, w_enc, 1.0f32, Par::Seq);
    }
    let shift = extras.input_shift;
    if !shift.is_empty() {
        offset.fill(0.0);
        for (i, &d) in shift.iter().enumerate() {
            axpy(offset, d, &params[i * m..(i + 1) * m]);
        }
        for h_r in h.chunks_exact_mut(mp) {
            axpy(&mut h_r[..m], 1.0, offset);
        }
    }
    if hidden_relu {
        for v in h.iter_mut() {
            *v = v.max(0.0);
        }
    }

    // ---- P = W_dec Hᵀ; then per output feature: loss, G = dL/dP in place, the bias gradient
    // (and with sparse input, G's non-zero entries)
    {
        let dst = MatMut::from_row_major_slice_mut(g, n, b);
        let ht = MatRef::from_row_major_slice_with_stride(h, b, m, mp).transpose();
        matmul(dst, Accum::Replace, w_dec, ht, 1.0f32, Par::Seq);
    }
    let mut loss = 0.0f64;
    let mut nonzero = 0;
    for i in 0..n {
        let line = &mut g[i * b..(i + 1) * b];
        let x_i = &x[i * b..(i + 1) * b];
        let (sq, g_sum, count) = if output_relu {
            output_gradient::<V, true>(line, x_i, bias[i], 2.0 * loss_weight[i])
        } else {
            output_gradient::<V, false>(line, x_i, bias[i], 2.0 * loss_weight[i])
        };
        loss += (loss_weight[i] * sq) as f64;
        grads[bias_off + i] += g_sum;
        nonzero += count;
    }
    let g = &*g;
    let h = &*h;

    // ---- ∂W_dec += G H and dH = Gᵀ W_dec: dense, or over G's non-zero entries
    let dense_g = !sparse_input || nonzero as f32 > *dense_g_share * (n * b) as f32;
    if dense_g {
        let gm = MatRef::from_row_major_slice(g, n, b);
        let hm = MatRef::from_row_major_slice_with_stride(h, b, m, mp);
        let dst = MatMut::from_row_major_slice_mut(&mut grads[dec_off..dec_off + n * m], n, m);
        matmul(dst, Accum::Add, gm, hm, 1.0f32, Par::Seq);
        let dst = row_major_mut(dh, b, m, mp);
        matmul(dst, Accum::Replace, gm.transpose(), w_dec, 1.0f32, Par::Seq);
    } else {
        gradients.fill::<V>(g, n, b);
        dh.fill(0.0);
        for i in 0..n {
            let dw_i = &mut dw_dec_pad[i * mp..(i + 1) * mp];
            let w_i = &w_dec_pad[i * mp..(i + 1) * mp];
            let (rows, values) = gradients.feature(i);
            for (&r, &gv) in rows.iter().zip(values) {
                let r = r as usize;
                axpy_padded::<V>(dw_i, gv, &h[r * mp..(r + 1) * mp]);
                axpy_padded::<V>(&mut dh[r * mp..(r + 1) * mp], gv, w_i);
            }
        }
    }

    // ---- hidden L1 penalty: loss += λ/batch · Σ|h|, dH += λ/batch · sign(h)
    let hidden_l1 = extras.hidden_l1;
    if hidden_l1 != 0.0 {
        let mut abs_sum = 0.0f64;
        for (d_r, h_r) in dh.chunks_exact_mut(mp).zip(h.chunks_exact(mp)) {
            let mut row_sum = 0.0f32;
            for (d, &hv) in d_r.iter_mut().zip(h_r) {
                row_sum += hv.abs();
                if hv > 0.0 {
                    *d += hidden_l1;
                } else if hv < 0.0 {
                    *d -= hidden_l1;
                }
            }
            abs_sum += row_sum as f64;
        }
        loss += hidden_l1 as f64 * abs_sum;
    }
    if hidden_relu {
        for (d, &hv) in dh.iter_mut().zip(h.iter()) {
            *d = if hv > 0.0 { *d } else { 0.0 };
        }
    }
    let dh = &*dh;

    // ---- ∂W_enc += X dH (+ δ Σ_r dH)
    if sparse_input {
        for j in 0..n {
            let dw_j = &mut dw_enc_pad[j * mp..(j + 1) * mp];
            let (rows, values) = inputs.feature(j);
            for (&r, &v) in rows.iter().zip(values) {
                let r = r as usize;
                axpy_padded::<V>(dw_j, v, &dh[r * mp..(r + 1) * mp]);
            }
        }
        // The padded gradients into their places.
        for (offset, pad) in [(0, &*dw_enc_pad), (dec_off, &*dw_dec_pad)] {
            for (i, row) in pad.chunks_exact(mp).enumerate() {
                axpy(
                    &mut grads[offset + i * m..offset + (i + 1) * m],
                    1.0,
                    &row[..m],
                );
            }
        }
    } else {
        let xm = MatRef::from_row_major_slice(x, n, b);
        let dhm = MatRef::from_row_major_slice_with_stride(dh, b, m, mp);
        let dst = MatMut::from_row_major_slice_mut(&mut grads[..n * m], n, m);
        matmul(dst, Accum::Add, xm, dhm, 1.0f32, Par::Seq);
    }
    if !shift.is_empty() {
        let total = offset;
        total.fill(0.0);
        for dh_r in dh.chunks_exact(mp) {
            axpy(total, 1.0, &dh_r[..m]);
        }
        for (i, &d) in shift.iter().enumerate() {
            axpy(&mut grads[i * m..(i + 1) * m], d, total);
        }
    }
    loss
}

/// A row-major `rows × cols` view of `slice` with rows `stride` apart. (Through the
/// column-major constructor: faer 0.24's `from_row_major_slice_with_stride_mut` swaps the two
/// strides.)
fn row_major_mut(slice: &mut [f32], rows: usize, cols: usize, stride: usize) -> MatMut<'_, f32> {
    MatMut::from_column_major_slice_with_stride_mut(slice, cols, rows, stride).transpose_mut()
}

/// `y += a · x` (element by element; vectorises).
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `y += a · x` on rows padded to whole tiles of [`PAD`] floats, in explicit lanes (LLVM
/// left the plain loop scalar).
#[inline(always)]
fn axpy_padded<V: Lanes16>(y: &mut [f32], a: f32, x: &[f32]) {
    let a = V::splat(a);
    for (to, from) in y.chunks_exact_mut(PAD).zip(x.chunks_exact(PAD)) {
        let to: &mut [f32; PAD] = to.try_into().expect("whole tiles");
        mul_add(
            V::load(to),
            a,
            V::load(from.try_into().expect("whole tiles")),
        )
        .store(to);
    }
}

/// One output feature over the block: `pre = p + bias`, `err = f(pre) − |x|` (f the output
/// ReLU when `RELU`), and in place `g = two_w · err · f′(pre)`. Returns (Σ err², Σ g), each
/// summed in 16 fixed lanes, and the number of non-zero g.
#[inline(always)]
fn output_gradient<V: Lanes16, const RELU: bool>(
    p: &mut [f32],
    x: &[f32],
    bias: f32,
    two_w: f32,
) -> (f32, f32, usize) {
    let b = p.len();
    let full = b - b % 16;
    let (bias_v, two_w_v) = (V::splat(bias), V::splat(two_w));
    let (mut sq, mut gs) = (V::zero(), V::zero());
    let mut nonzero = 0;
    for (pc, xc) in p[..full]
        .chunks_exact_mut(16)
        .zip(x[..full].chunks_exact(16))
    {
        let at: &mut [f32; 16] = pc.try_into().expect("16 floats");
        let pre = V::load(at).add(bias_v);
        let out = if RELU { pre.relu() } else { pre };
        let err = out.sub(V::load(xc.try_into().expect("16 floats")).abs());
        sq = mul_add(sq, err, err);
        let gv = two_w_v.mul(err);
        let gv = if RELU { pre.where_positive(gv) } else { gv };
        gs = gs.add(gv);
        gv.store(at);
        nonzero += gv.abs().positive_mask().count_ones() as usize;
    }
    let (mut sq, mut gs) = (sq.to_array(), gs.to_array());
    for r in full..b {
        let pre = p[r] + bias;
        let out = if RELU { pre.max(0.0) } else { pre };
        let err = out - x[r].abs();
        let gv = two_w * err;
        let gv = if !RELU || pre > 0.0 { gv } else { 0.0 };
        sq[r - full] += err * err;
        gs[r - full] += gv;
        p[r] = gv;
        nonzero += (gv != 0.0) as usize;
    }
    (sum16(&sq), sum16(&gs), nonzero)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{FeatureSampler, LaneRng, ValueRange};
    use crate::model::{loss_and_grad, KernelVariant};

    fn random_params(shape: &Shape, seed: u64) -> Vec<f32> {
        let mut rng = LaneRng::new(seed);
        (0..shape.param_len())
            .map(|_| (0.4 * rng.next_normal()) as f32)
            .collect()
    }

    /// One block through the block pass: dense input, sparse input with G's products dense,
    /// and sparse input with G's products over its non-zeros; portable, then AVX2 where the
    /// CPU has it (the same bits). Returns (loss, gradient) of each of the three.
    fn block_runs(
        shape: &Shape,
        params: &[f32],
        x: &[f32],
        rows: usize,
        weight: &[f32],
        extras: Extras<'_>,
    ) -> Vec<(f64, Vec<f32>)> {
        let mut out = Vec::new();
        for (sparse_input, share) in [(false, DENSE_G_SHARE), (true, -1.0), (true, 2.0)] {
            let mut ws = BlockWorkspace::new(shape, sparse_input);
            ws.dense_g_share = share;
            ws.x[..x.len()].copy_from_slice(x);
            let mut grads = vec![0.0; shape.param_len()];
            let block = Block {
                loss_weight: weight,
                extras,
                rows,
                sparse_input,
            };
            let loss = block_forward_backward(shape, params, &mut grads, &mut ws, block);
            #[cfg(target_arch = "x86_64")]
            if KernelVariant::detect() == KernelVariant::Avx2 {
                let mut again = vec![0.0; shape.param_len()];
                // SAFETY: `detect` found AVX2 and FMA on this CPU.
                let loss2 = unsafe {
                    block_forward_backward_avx2(shape, params, &mut again, &mut ws, block)
                };
                assert_eq!(loss2.to_bits(), loss.to_bits(), "AVX2 loss");
                assert!(
                    again
                        .iter()
                        .zip(&grads)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "AVX2 gradient bits"
                );
            }
            out.push((loss, grads));
        }
        out
    }

    /// Every model kind, with the L1 penalty and an input shift, blocks of 1, 17 and 512 rows
    /// (ragged and full), hidden widths 1, 16 and 30 (padded and not), dense and sparse data,
    /// against the fused kernel (`model::loss_and_grad`): the loss within 1e-5 relative, every
    /// gradient within 1e-4 of the largest.
    #[test]
    fn the_block_pass_matches_the_fused_kernel() {
        let cases = [
            (1.0f32, 0.0f32, false, 17, 16),
            (0.05, 0.0, false, 512, 30),
            (0.05, 0.02, true, 17, 1),
            (0.3, 0.01, false, 1, 16),
            (0.02, 0.0, true, 512, 16),
        ];
        for kind in ModelKind::ALL {
            for (density, l1, shifted, rows, m) in cases {
                let shape = Shape {
                    kind,
                    features: 37,
                    hidden: m,
                };
                let n = shape.features;
                let params = random_params(&shape, 5);
                let range = if kind == ModelKind::Abs {
                    ValueRange::Symmetric
                } else {
                    ValueRange::Unit
                };
                let mut sampler = FeatureSampler::new(&vec![density; n], range, 9, rows);
                let mut x = vec![0.0; n * rows];
                sampler.fill(&mut x, rows);
                let importance: Vec<f32> = (0..n).map(|i| 1.0 + 0.1 * i as f32).collect();
                let weight: Vec<f32> = importance.iter().map(|&v| v / (rows * n) as f32).collect();
                let shift: Vec<f32> = if shifted {
                    (0..n).map(|i| 0.01 * (i % 5) as f32).collect()
                } else {
                    Vec::new()
                };
                let extras = Extras {
                    hidden_l1: l1 / rows as f32,
                    input_shift: &shift,
                };
                let mut want = vec![0.0; shape.param_len()];
                let want_loss =
                    loss_and_grad(&shape, &params, &x, rows, &importance, extras, &mut want);
                let scale = want.iter().fold(0.0f32, |a, g| a.max(g.abs()));
                for (k, (loss, grads)) in block_runs(&shape, &params, &x, rows, &weight, extras)
                    .into_iter()
                    .enumerate()
                {
                    let what = format!(
                        "{kind:?} p={density} l1={l1} shift={shifted} rows={rows} m={m} run {k}"
                    );
                    assert!(
                        (loss - want_loss).abs() <= 1e-5 * want_loss.abs().max(1e-6),
                        "{what}: loss {loss} vs {want_loss}"
                    );
                    for (j, (a, b)) in grads.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-4 * scale,
                            "{what}: gradient {j}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn entries_list_exactly_the_nonzeros_feature_by_feature() {
        // Two features, 19 rows (one group of 16 and a tail of 3), signed values.
        let mut x = vec![0.0f32; 2 * 19];
        for (i, r, v) in [(0, 0, 1.0), (0, 15, -2.0), (0, 17, 3.0), (1, 4, 0.5)] {
            x[i * 19 + r] = v;
        }
        let mut e = Entries::with_capacity(2, 2 * 19);
        for _ in 0..2 {
            // A second fill must not keep the first one's entries.
            e.fill::<crate::simd::Scalar16>(&x, 2, 19);
            assert_eq!(
                e.feature(0),
                (&[0u32, 15, 17][..], &[1.0f32, -2.0, 3.0][..])
            );
            assert_eq!(e.feature(1), (&[4u32][..], &[0.5f32][..]));
        }
    }
}
