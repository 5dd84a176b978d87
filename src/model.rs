//! Models: the four architectures of the paper, their parameter layout, and one fused
//! forward + hand-written backward pass over a chunk of batch rows.
//!
//! Notation (per instance): `n` features, `m` hidden dimensions, a batch chunk of `c` rows.
//! Every model is "encoder, hidden nonlinearity, decoder, bias, output nonlinearity":
//!
//! | kind          | hidden           | output                     | tied |
//! |---------------|------------------|----------------------------|------|
//! | `linear`      | h = W x          | x' = Wᵀ h + b              | yes  |
//! | `relu-output` | h = W x          | x' = ReLU(Wᵀ h + b)        | yes  |
//! | `relu-hidden` | h = ReLU(W x)    | x' = ReLU(Wᵀ h + b)        | yes  |
//! | `abs`         | h = ReLU(W₁ x)   | y' = ReLU(W₂ h + b)        | no   |
//!
//! The `abs` model follows the paper's §"Computation in Superposition": no hidden bias, target
//! y = |x|, inputs uniform on [-1, 1] when present.
//!
//! Parameters of one instance live in one flat buffer (like llm.c), in the notebook's layout:
//! `W` as `[n][m]` (row `i` is feature `i`'s direction `W_i` in hidden space), then for untied
//! models the decoder `W_dec` as `[n][m]` (row `i` reads output `i` from the hidden layer), then
//! the bias `b[n]`. Gradients and the optimizer moments use the same layout.
//!
//! The batch is feature-major (`x[i * c + r]`) and hidden activations hidden-major
//! (`h[k * c + r]`): every inner loop runs over rows, long and branch-free, so it vectorises
//! even when `m` is 1 or 2.

pub mod cpu;
pub mod forward;
pub mod gemm;
pub mod sparse;

pub use cpu::KernelVariant;
pub use forward::{forward, ForwardPass};

use serde::{Deserialize, Serialize};

use crate::data::ValueRange;
use crate::simd::{mul_add, Lanes16};

/// Which model architecture an instance uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// x' = WᵀWx + b (the paper's linear baseline).
    Linear,
    /// x' = ReLU(WᵀWx + b) (the paper's main model).
    ReluOutput,
    /// h = ReLU(Wx), x' = ReLU(Wᵀh + b) (privileged basis, §7).
    ReluHidden,
    /// h = ReLU(W₁x), y' = ReLU(W₂h + b), target |x| (computation, §8).
    Abs,
}

impl ModelKind {
    /// All kinds, in the order of the paper.
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Linear,
        ModelKind::ReluOutput,
        ModelKind::ReluHidden,
        ModelKind::Abs,
    ];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Linear => "linear",
            ModelKind::ReluOutput => "relu-output",
            ModelKind::ReluHidden => "relu-hidden",
            ModelKind::Abs => "abs",
        }
    }

    /// Whether the decoder is the transpose of the encoder.
    pub fn tied(self) -> bool {
        !matches!(self, ModelKind::Abs)
    }

    /// The paper's range of a present input feature for this model (the default of
    /// `[data].values`).
    pub fn value_range(self) -> ValueRange {
        match self {
            ModelKind::Abs => ValueRange::Symmetric,
            _ => ValueRange::Unit,
        }
    }
}

/// Sizes of one instance's model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Architecture.
    pub kind: ModelKind,
    /// Number of features n.
    pub features: usize,
    /// Number of hidden dimensions m.
    pub hidden: usize,
}

impl Shape {
    /// Length of the `W` block (and of `W_dec` for untied models).
    pub fn weight_len(&self) -> usize {
        self.features * self.hidden
    }

    /// Total number of parameters of one instance.
    pub fn param_len(&self) -> usize {
        let blocks = if self.kind.tied() { 1 } else { 2 };
        blocks * self.weight_len() + self.features
    }

    /// Offset of the decoder block (equal to the encoder's, 0, when tied).
    pub fn decoder_offset(&self) -> usize {
        if self.kind.tied() {
            0
        } else {
            self.weight_len()
        }
    }

    /// Offset of the bias `b`.
    pub fn bias_offset(&self) -> usize {
        self.param_len() - self.features
    }

    /// The encoder `W` (`[n][m]`) of a parameter buffer.
    pub fn encoder<'a>(&self, params: &'a [f32]) -> &'a [f32] {
        &params[..self.weight_len()]
    }

    /// The decoder (`[n][m]`) of a parameter buffer; the encoder itself when tied.
    pub fn decoder<'a>(&self, params: &'a [f32]) -> &'a [f32] {
        let o = self.decoder_offset();
        &params[o..o + self.weight_len()]
    }

    /// The output bias (`[n]`) of a parameter buffer.
    pub fn bias<'a>(&self, params: &'a [f32]) -> &'a [f32] {
        &params[self.bias_offset()..]
    }
}

/// Rows per chunk: a chunk's activations (`m * ROW_CHUNK` floats) stay in L1/L2 cache, and the
/// batch is never materialised whole.
pub const ROW_CHUNK: usize = 128;

/// Rows per register tile: two AVX2 registers of f32. Chunk buffers have a row stride rounded
/// up to a multiple of this (zero-padded), so every tile is full and bounds checks happen once
/// per tile, not per element.
pub const ROW_TILE: usize = 16;

/// Features per decoder tile: the decoder passes keep this many output rows in registers.
const FEATURE_TILE: usize = Tile::Four.size(); // the widest tile

/// Row stride of the chunk buffers for a chunk of `rows` rows.
pub fn padded_rows(rows: usize) -> usize {
    rows.next_multiple_of(ROW_TILE)
}

/// What a training step adds to the plain reconstruction loss: an L1 penalty on the hidden
/// activations, and a perturbation of the inputs (adversarial training). The default adds
/// nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras<'a> {
    /// `λ / batch`: the penalty λ·‖h‖₁ per row, averaged over the batch (0: none).
    pub hidden_l1: f32,
    /// δ added to every row's input but not to its target, one value per feature (empty:
    /// none). A constant of the step: no gradient flows into it.
    pub input_shift: &'a [f32],
}

/// Scratch buffers for one chunk of rows of one instance (allocated once, reused every step).
/// All are stored with the row stride `padded_rows(c)`; padding rows of `x` hold zeros.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// Inputs, feature-major `[n][stride]`.
    pub x: Vec<f32>,
    /// Hidden activations, hidden-major `[m][stride]`.
    pub h: Vec<f32>,
    /// Gradient of the loss w.r.t. the hidden activations `[m][stride]`.
    pub dh: Vec<f32>,
    /// Gradient w.r.t. the output pre-activations of one feature tile `[FEATURE_TILE][stride]`.
    pub g: Vec<f32>,
    /// Wδ, the hidden pre-activations' offset from [`Extras::input_shift`] (`[m]`).
    pub offset: Vec<f32>,
}

impl Workspace {
    /// Buffers for chunks of up to `ROW_CHUNK` rows.
    pub fn new(shape: &Shape) -> Self {
        let stride = padded_rows(ROW_CHUNK);
        Workspace {
            x: vec![0.0; shape.features * stride],
            h: vec![0.0; shape.hidden * stride],
            dh: vec![0.0; shape.hidden * stride],
            g: vec![0.0; FEATURE_TILE * stride],
            offset: vec![0.0; shape.hidden],
        }
    }
}

/// Dot product with 16 independent accumulators (vectorises; fixed summation order).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0.0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        acc[l] += x * y;
    }
    sum16(&acc)
}

/// Sum with 16 independent accumulators (vectorises; fixed summation order).
#[inline(always)]
pub fn sum(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = v.chunks_exact(16);
    for ch in &mut chunks {
        for l in 0..16 {
            acc[l] += ch[l];
        }
    }
    for (l, x) in chunks.remainder().iter().enumerate() {
        acc[l] += x;
    }
    sum16(&acc)
}

/// Sum of 16 partial sums in a fixed tree order.
#[inline(always)]
pub(crate) fn sum16(acc: &[f32; 16]) -> f32 {
    let mut s = [0.0f32; 8];
    for l in 0..8 {
        s[l] = acc[l] + acc[l + 8];
    }
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
}

/// The `N` floats of `v` starting at `at`, as an array (one bounds check).
#[inline(always)]
fn tile<const N: usize>(v: &[f32], at: usize) -> &[f32; N] {
    v[at..at + N].try_into().expect("tile in bounds")
}

/// Mutable version of [`tile`].
#[inline(always)]
fn tile_mut<const N: usize>(v: &mut [f32], at: usize) -> &mut [f32; N] {
    (&mut v[at..at + N]).try_into().expect("tile in bounds")
}

/// Forward and backward of one instance on one chunk of `c` rows; returns the chunk's share of
/// the loss and **adds** the gradients into `grads`.
///
/// `loss_weight[i] = I_i / (batch * n)`: the notebook's loss, a mean over the batch and the
/// features of `I_i (|x_i| - x'_i)²`, plus the [`Extras`]. `ws.x` must hold the inputs with row
/// stride `padded_rows(c)`, zeros in the padding.
///
/// Every sum has a fixed order that depends only on the sizes, never on the SIMD width or the
/// thread: the portable and the AVX2 build give the same bits.
#[inline(always)]
pub fn forward_backward_chunk(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut Workspace,
    loss_weight: &[f32],
    extras: Extras<'_>,
    c: usize,
) -> f64 {
    match shape.kind {
        ModelKind::Linear => {
            chunk_portable::<false, false>(shape, params, grads, ws, loss_weight, extras, c)
        }
        ModelKind::ReluOutput => {
            chunk_portable::<false, true>(shape, params, grads, ws, loss_weight, extras, c)
        }
        ModelKind::ReluHidden | ModelKind::Abs => {
            chunk_portable::<true, true>(shape, params, grads, ws, loss_weight, extras, c)
        }
    }
}

/// [`forward_backward_chunk`] compiled for AVX2 (same results, bit for bit).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn forward_backward_chunk_avx2(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut Workspace,
    loss_weight: &[f32],
    extras: Extras<'_>,
    c: usize,
) -> f64 {
    match shape.kind {
        ModelKind::Linear => {
            chunk_avx2::<false, false>(shape, params, grads, ws, loss_weight, extras, c)
        }
        ModelKind::ReluOutput => {
            chunk_avx2::<false, true>(shape, params, grads, ws, loss_weight, extras, c)
        }
        ModelKind::ReluHidden | ModelKind::Abs => {
            chunk_avx2::<true, true>(shape, params, grads, ws, loss_weight, extras, c)
        }
    }
}

// The kernel is kept out of line, one function per model kind and instruction set: inlined
// into the whole training loop it is too big a function for LLVM to keep the register tiles
// in registers (measured 2-3x slower).
#[inline(never)]
fn chunk_portable<const HIDDEN_RELU: bool, const OUTPUT_RELU: bool>(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut Workspace,
    loss_weight: &[f32],
    extras: Extras<'_>,
    c: usize,
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    type Lanes = crate::simd::Sse16;
    #[cfg(not(target_arch = "x86_64"))]
    type Lanes = crate::simd::Scalar16;
    chunk_impl::<Lanes, HIDDEN_RELU, OUTPUT_RELU>(shape, params, grads, ws, loss_weight, extras, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
fn chunk_avx2<const HIDDEN_RELU: bool, const OUTPUT_RELU: bool>(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut Workspace,
    loss_weight: &[f32],
    extras: Extras<'_>,
    c: usize,
) -> f64 {
    chunk_impl::<crate::simd::Avx16, HIDDEN_RELU, OUTPUT_RELU>(
        shape,
        params,
        grads,
        ws,
        loss_weight,
        extras,
        c,
    )
}

/// The width of a register tile: how many hidden dimensions (or output features) it keeps in
/// registers. An enum, so that every `match` on a tile is checked exhaustive by the compiler.
/// Ordered by width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tile {
    One,
    Two,
    Four,
}

/// The width of an encoder-gradient tile (at most two features × two hidden dimensions).
/// Ordered by width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SmallTile {
    One,
    Two,
}

/// A tile width: its size and the next smaller one. `Ord` orders by width.
trait TileWidth: Copy + Ord {
    /// The width as a number.
    fn size(self) -> usize;
    /// Half the width; `None` for one.
    fn half(self) -> Option<Self>;
}

impl Tile {
    /// The width as a number.
    pub(crate) const fn size(self) -> usize {
        match self {
            Tile::Four => 4,
            Tile::Two => 2,
            Tile::One => 1,
        }
    }
}

impl TileWidth for Tile {
    #[inline(always)]
    fn size(self) -> usize {
        Tile::size(self) // the inherent `const fn` (used for `FEATURE_TILE`)
    }
    #[inline(always)]
    fn half(self) -> Option<Self> {
        match self {
            Tile::Four => Some(Tile::Two),
            Tile::Two => Some(Tile::One),
            Tile::One => None,
        }
    }
}

impl TileWidth for SmallTile {
    #[inline(always)]
    fn size(self) -> usize {
        match self {
            SmallTile::Two => 2,
            SmallTile::One => 1,
        }
    }
    #[inline(always)]
    fn half(self) -> Option<Self> {
        match self {
            SmallTile::Two => Some(SmallTile::One),
            SmallTile::One => None,
        }
    }
}

/// Split `0..len` into tiles of width `max`, then halves for the rest, as `(start, width)`
/// pairs: 30 with `max` four gives seven fours and one two.
#[inline(always)]
fn tiles<T: TileWidth>(len: usize, max: T) -> impl Iterator<Item = (usize, T)> {
    let (mut at, mut width) = (0, Some(max));
    std::iter::from_fn(move || {
        while let Some(w) = width {
            let size = w.size();
            if at + size <= len {
                at += size;
                // `w` never exceeds `max`; the `min` lets the compiler see it, so a kernel whose
                // widest tile is two (SSE) drops the code for tiles of four (without it, the
                // portable kernel was 1.8x larger and measurably slower).
                return Some((at - size, w.min(max)));
            }
            width = w.half();
        }
        None
    })
}

#[inline(always)]
fn chunk_impl<V: Lanes16, const HIDDEN_RELU: bool, const OUTPUT_RELU: bool>(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut Workspace,
    loss_weight: &[f32],
    extras: Extras<'_>,
    c: usize,
) -> f64 {
    let (n, m) = (shape.features, shape.hidden);
    let stride = padded_rows(c);
    let (dec_off, bias_off) = (shape.decoder_offset(), shape.bias_offset());
    let enc = &params[..n * m];
    let dec = &params[dec_off..dec_off + n * m];
    let bias = &params[bias_off..bias_off + n];
    let dims = Dims { n, m, c, stride };
    let x = &ws.x[..n * stride];
    let h = &mut ws.h[..m * stride];
    let dh = &mut ws.dh[..m * stride];
    let g = &mut ws.g[..FEATURE_TILE * stride];
    let offset = &mut ws.offset[..m];

    // ---- input shift δ (adversarial training): W(x + δ) = Wx + Wδ, one offset per hidden
    // dimension. Padding rows then get h = Wδ too; their loss and gradients stay masked.
    let shift = extras.input_shift;
    offset.fill(0.0);
    for (i, &d) in shift.iter().enumerate() {
        for (o, &w) in offset.iter_mut().zip(&enc[i * m..(i + 1) * m]) {
            *o += w * d;
        }
    }
    let offset = &*offset;

    // ---- encoder forward: h[k] = Wδ[k] + sum_i W[i][k] x[i]  (then ReLU for the hidden-ReLU
    // models)
    for (k0, width) in tiles(m, V::TILE) {
        match width {
            Tile::Four => encode_tile::<V, 4, HIDDEN_RELU>(&dims, enc, offset, x, h, k0),
            Tile::Two => encode_tile::<V, 2, HIDDEN_RELU>(&dims, enc, offset, x, h, k0),
            Tile::One => encode_tile::<V, 1, HIDDEN_RELU>(&dims, enc, offset, x, h, k0),
        }
    }

    // ---- decoder forward + loss + backward, one tile of output features at a time
    dh.fill(0.0);
    let mut loss = 0.0f64;
    let h = &*h;
    for (i0, width) in tiles(n, V::TILE) {
        let t = DecoderTile {
            dims: &dims,
            dec,
            bias,
            loss_weight,
            x,
            h,
            i0,
        };
        loss += match width {
            Tile::Four => t.run::<V, 4, OUTPUT_RELU>(g, dh, grads, dec_off, bias_off),
            Tile::Two => t.run::<V, 2, OUTPUT_RELU>(g, dh, grads, dec_off, bias_off),
            Tile::One => t.run::<V, 1, OUTPUT_RELU>(g, dh, grads, dec_off, bias_off),
        };
    }

    // ---- hidden L1 penalty: loss += λ/batch · Σ|h|, dh += λ/batch · sign(h), real rows only
    let hidden_l1 = extras.hidden_l1;
    if hidden_l1 != 0.0 {
        for k in 0..m {
            let row = &h[k * stride..k * stride + c];
            let mut abs_sum = 0.0f32;
            for (d, &hv) in dh[k * stride..k * stride + c].iter_mut().zip(row) {
                abs_sum += hv.abs();
                if hv > 0.0 {
                    *d += hidden_l1;
                } else if hv < 0.0 {
                    *d -= hidden_l1;
                }
            }
            loss += (hidden_l1 * abs_sum) as f64;
        }
    }

    // ---- encoder backward: dh <- dh * relu'(h);  dW[i][k] += dh[k] . x[i]
    if HIDDEN_RELU {
        // A select, not a conditional store: LLVM turns `if hv <= 0 { *d = 0 }` into masked
        // stores, which are slow on AMD (measured 8 % of the small-model kernel).
        for (d, &hv) in dh.iter_mut().zip(h.iter()) {
            *d = if hv > 0.0 { *d } else { 0.0 };
        }
    }
    let dh = &*dh;
    use SmallTile::{One, Two};
    for (i0, fi) in tiles(n, Two) {
        for (k0, fk) in tiles(m, Two) {
            match (fi, fk) {
                (Two, Two) => encoder_grad_tile::<V, 2, 2>(&dims, x, dh, grads, i0, k0),
                (Two, One) => encoder_grad_tile::<V, 2, 1>(&dims, x, dh, grads, i0, k0),
                (One, Two) => encoder_grad_tile::<V, 1, 2>(&dims, x, dh, grads, i0, k0),
                (One, One) => encoder_grad_tile::<V, 1, 1>(&dims, x, dh, grads, i0, k0),
            }
        }
    }
    // The shift's share of dW[i][k] = sum_r dh[k] (x[i] + δ_i): δ_i · sum_r dh[k].
    if !shift.is_empty() {
        for k in 0..m {
            let total = sum(&dh[k * stride..(k + 1) * stride]);
            for (i, &d) in shift.iter().enumerate() {
                grads[i * m + k] += d * total;
            }
        }
    }
    loss
}

/// Sizes of one chunk.
struct Dims {
    n: usize,
    m: usize,
    /// Real rows in the chunk.
    c: usize,
    /// Row stride of the buffers (`c` rounded up to `ROW_TILE`).
    stride: usize,
}

/// `h[k0..k0+K] = offset[k] + sum_i W[i][k] x[i]` for one tile of `K` hidden dimensions,
/// `ROW_TILE` rows at a time with the accumulators in registers. Features are added in order,
/// as a plain loop would (from an offset of 0 the sums are the same bits as from zero).
#[inline(always)]
fn encode_tile<V: Lanes16, const K: usize, const RELU: bool>(
    d: &Dims,
    enc: &[f32],
    offset: &[f32],
    x: &[f32],
    h: &mut [f32],
    k0: usize,
) {
    let start: [f32; K] = std::array::from_fn(|kk| offset[k0 + kk]);
    for r0 in (0..d.stride).step_by(ROW_TILE) {
        let mut acc: [V; K] = std::array::from_fn(|kk| V::splat(start[kk]));
        for i in 0..d.n {
            let xv = V::load(tile(x, i * d.stride + r0));
            let w: &[f32; K] = tile(enc, i * d.m + k0);
            for kk in 0..K {
                acc[kk] = mul_add(acc[kk], V::splat(w[kk]), xv);
            }
        }
        for (kk, a) in acc.into_iter().enumerate() {
            let a = if RELU { a.relu() } else { a };
            a.store(tile_mut(h, (k0 + kk) * d.stride + r0));
        }
    }
}

/// One tile of output features `i0..i0+I`: decoder forward, loss, and the backward pass into
/// the bias, the decoder weights and the hidden gradient `dh`.
struct DecoderTile<'a> {
    dims: &'a Dims,
    dec: &'a [f32],
    bias: &'a [f32],
    loss_weight: &'a [f32],
    x: &'a [f32],
    h: &'a [f32],
    i0: usize,
}

// The tile loops index several small arrays by the same feature or hidden index; explicit
// indices keep that visible (and iterator adaptors with closures would not be inlined into the
// AVX2 kernel, see `simd.rs`).
#[allow(clippy::needless_range_loop)]
impl DecoderTile<'_> {
    #[inline(always)]
    fn run<V: Lanes16, const I: usize, const OUTPUT_RELU: bool>(
        &self,
        g: &mut [f32],
        dh: &mut [f32],
        grads: &mut [f32],
        dec_off: usize,
        bias_off: usize,
    ) -> f64 {
        let d = self.dims;
        let (m, stride, i0) = (d.m, d.stride, self.i0);
        let w_out: [f32; I] = std::array::from_fn(|ii| self.loss_weight[i0 + ii]);

        // pre = b_i + sum_k Wdec[i][k] h[k];  g = dL/dpre = 2 w_i err relu'(pre), err = out - |x_i|
        let mut sq = [V::zero(); I];
        for r0 in (0..stride).step_by(ROW_TILE) {
            let mut pre = [V::zero(); I];
            for ii in 0..I {
                pre[ii] = V::splat(self.bias[i0 + ii]);
            }
            for k in 0..m {
                let hv = V::load(tile(self.h, k * stride + r0));
                for ii in 0..I {
                    pre[ii] = mul_add(pre[ii], V::splat(self.dec[(i0 + ii) * m + k]), hv);
                }
            }
            let real_rows = d.c - r0; // the padding rows of a ragged chunk count for nothing
            for ii in 0..I {
                let target = V::load(tile(self.x, (i0 + ii) * stride + r0)).abs();
                let out = if OUTPUT_RELU { pre[ii].relu() } else { pre[ii] };
                let mut err = out.sub(target);
                if real_rows < ROW_TILE {
                    err = err.keep_first(real_rows);
                }
                sq[ii] = mul_add(sq[ii], err, err);
                let grad = V::splat(2.0 * w_out[ii]).mul(err);
                let grad = if OUTPUT_RELU {
                    pre[ii].where_positive(grad)
                } else {
                    grad
                };
                grad.store(tile_mut(g, ii * stride + r0));
            }
        }
        let mut loss = 0.0f64;
        for ii in 0..I {
            loss += (w_out[ii] * sum16(&sq[ii].to_array())) as f64;
            grads[bias_off + i0 + ii] += sum(&g[ii * stride..(ii + 1) * stride]);
        }

        // dWdec[i][k] += g_i . h[k];  dh[k] += Wdec[i][k] g_i  (features added in order)
        for k in 0..m {
            let mut wk = [0.0f32; I];
            for ii in 0..I {
                wk[ii] = self.dec[(i0 + ii) * m + k];
            }
            let mut dw = [V::zero(); I];
            for r0 in (0..stride).step_by(ROW_TILE) {
                let hv = V::load(tile(self.h, k * stride + r0));
                let dhv: &mut [f32; ROW_TILE] = tile_mut(dh, k * stride + r0);
                let mut dh_acc = V::load(dhv);
                for ii in 0..I {
                    let gv = V::load(tile(g, ii * stride + r0));
                    dw[ii] = mul_add(dw[ii], gv, hv);
                    dh_acc = mul_add(dh_acc, V::splat(wk[ii]), gv);
                }
                dh_acc.store(dhv);
            }
            for ii in 0..I {
                grads[dec_off + (i0 + ii) * m + k] += sum16(&dw[ii].to_array());
            }
        }
        loss
    }
}

/// `dW[i][k] += dh[k] . x[i]` for a tile of `I` features × `K` hidden dimensions.
#[allow(clippy::needless_range_loop)] // as in `DecoderTile`
#[inline(always)]
fn encoder_grad_tile<V: Lanes16, const I: usize, const K: usize>(
    d: &Dims,
    x: &[f32],
    dh: &[f32],
    grads: &mut [f32],
    i0: usize,
    k0: usize,
) {
    let mut acc = [[V::zero(); K]; I];
    for r0 in (0..d.stride).step_by(ROW_TILE) {
        let mut dv = [V::zero(); K];
        for kk in 0..K {
            dv[kk] = V::load(tile(dh, (k0 + kk) * d.stride + r0));
        }
        for ii in 0..I {
            let xv = V::load(tile(x, (i0 + ii) * d.stride + r0));
            for kk in 0..K {
                acc[ii][kk] = mul_add(acc[ii][kk], dv[kk], xv);
            }
        }
    }
    for ii in 0..I {
        for kk in 0..K {
            grads[(i0 + ii) * d.m + k0 + kk] += sum16(&acc[ii][kk].to_array());
        }
    }
}

/// Loss and gradient of one instance on a whole feature-major batch `x` (`[n][rows]`), with the
/// [`Extras`] (`hidden_l1` already divided by `rows`), chunked
/// exactly as training chunks it (tests and the golden file use it; training fuses sampling in,
/// and evaluation uses the forward pass alone, [`forward::loss`]).
pub fn loss_and_grad(
    shape: &Shape,
    params: &[f32],
    x: &[f32],
    rows: usize,
    importance: &[f32],
    extras: Extras<'_>,
    grads: &mut [f32],
) -> f64 {
    let n = shape.features;
    let mut ws = Workspace::new(shape);
    let weight: Vec<f32> = importance
        .iter()
        .map(|&imp| imp / (rows * n) as f32)
        .collect();
    grads.fill(0.0);
    let mut loss = 0.0;
    let mut start = 0;
    while start < rows {
        let c = ROW_CHUNK.min(rows - start);
        let stride = padded_rows(c);
        ws.x.fill(0.0);
        for i in 0..n {
            ws.x[i * stride..i * stride + c]
                .copy_from_slice(&x[i * rows + start..i * rows + start + c]);
        }
        loss += forward_backward_chunk(shape, params, grads, &mut ws, &weight, extras, c);
        start += c;
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{FeatureSampler, LaneRng};

    /// Loss in f64 straight from the definitions, independent of the fused kernel.
    fn reference_loss(
        shape: &Shape,
        p: &[f64],
        x: &[f64],
        rows: usize,
        imp: &[f64],
        hidden_l1: f64,
        shift: &[f64],
    ) -> f64 {
        let (n, m) = (shape.features, shape.hidden);
        let enc = &p[..n * m];
        let dec = &p[shape.decoder_offset()..shape.decoder_offset() + n * m];
        let b = &p[shape.bias_offset()..];
        let mut total = 0.0;
        for r in 0..rows {
            let mut h = vec![0.0; m];
            for k in 0..m {
                for i in 0..n {
                    let input = x[i * rows + r] + shift.get(i).copied().unwrap_or(0.0);
                    h[k] += enc[i * m + k] * input;
                }
                if matches!(shape.kind, ModelKind::ReluHidden | ModelKind::Abs) {
                    h[k] = h[k].max(0.0);
                }
            }
            let l1: f64 = h.iter().map(|v| v.abs()).sum();
            total += hidden_l1 * l1 * n as f64; // divided by n below with the reconstruction
            for i in 0..n {
                let mut pre = b[i];
                for k in 0..m {
                    pre += dec[i * m + k] * h[k];
                }
                let out = if shape.kind == ModelKind::Linear {
                    pre
                } else {
                    pre.max(0.0)
                };
                let err = out - x[i * rows + r].abs();
                total += imp[i] * err * err;
            }
        }
        total / (rows * n) as f64
    }

    fn random_params(shape: &Shape, seed: u64) -> Vec<f32> {
        let mut rng = LaneRng::new(seed);
        (0..shape.param_len())
            .map(|_| (0.6 * rng.next_normal()) as f32)
            .collect()
    }

    /// Every gradient of every model, with and without the hidden L1 penalty and an input
    /// shift, against central finite differences of the f64 reference.
    #[test]
    fn gradients_match_finite_differences_for_every_model() {
        let some_shift = [0.2f32, -0.1, 0.0, 0.15, -0.25, 0.05];
        for (kind, l1, shifted) in ModelKind::ALL.into_iter().flat_map(|k| {
            [
                (k, 0.0f32, false),
                (k, 0.03, false),
                (k, 0.0, true),
                (k, 0.03, true),
            ]
        }) {
            let shift: &[f32] = if shifted { &some_shift } else { &[] };
            let shift64: Vec<f64> = shift.iter().map(|&v| v as f64).collect();
            let shape = Shape {
                kind,
                features: 6,
                hidden: 3,
            };
            // 300 rows: more than two chunks, with a ragged last chunk.
            let rows = 300;
            let probs = [1.0, 0.8, 0.5, 0.5, 0.3, 0.9];
            let mut sampler = FeatureSampler::new(&probs, kind.value_range(), 11, rows);
            let mut x = vec![0.0f32; shape.features * rows];
            sampler.fill(&mut x, rows);
            let imp: Vec<f32> = (0..shape.features).map(|i| 0.8f32.powi(i as i32)).collect();
            let params = random_params(&shape, 5 + kind as u64);
            let mut grads = vec![0.0f32; shape.param_len()];
            let extras = Extras {
                hidden_l1: l1 / rows as f32,
                input_shift: shift,
            };
            let loss = loss_and_grad(&shape, &params, &x, rows, &imp, extras, &mut grads);

            let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let imp64: Vec<f64> = imp.iter().map(|&v| v as f64).collect();
            let ref_loss = reference_loss(&shape, &p64, &x64, rows, &imp64, l1 as f64, &shift64);
            assert!(
                (loss - ref_loss).abs() < 1e-5 * ref_loss.max(1.0),
                "{kind:?}, λ {l1}, shift {shifted}: loss {loss} vs reference {ref_loss}"
            );
            let eps = 1e-6;
            for j in 0..shape.param_len() {
                let mut plus = p64.clone();
                plus[j] += eps;
                let mut minus = p64.clone();
                minus[j] -= eps;
                let fd = (reference_loss(&shape, &plus, &x64, rows, &imp64, l1 as f64, &shift64)
                    - reference_loss(&shape, &minus, &x64, rows, &imp64, l1 as f64, &shift64))
                    / (2.0 * eps);
                let g = grads[j] as f64;
                assert!(
                    (g - fd).abs() <= 1e-4 + 1e-3 * fd.abs(),
                    "{kind:?}, λ {l1}, shift {shifted}: parameter {j}: analytic {g} vs finite difference {fd}"
                );
            }
        }
    }

    /// The AVX2 kernel and the portable one give the same bits: ragged chunks, every model,
    /// sizes that leave tiles of 4, 2 and 1.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_and_portable_kernels_agree_bit_for_bit() {
        if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            return;
        }
        for kind in ModelKind::ALL {
            for (n, m) in [(7, 3), (13, 6), (2, 1)] {
                let shape = Shape {
                    kind,
                    features: n,
                    hidden: m,
                };
                let rows = 100; // one ragged chunk: 6 full row tiles and one of 4 rows
                let stride = padded_rows(rows);
                let probs = vec![0.4; n];
                let mut sampler = FeatureSampler::new(&probs, kind.value_range(), 3, rows);
                let mut ws = Workspace::new(&shape);
                sampler.fill_padded(&mut ws.x[..n * stride], rows, stride);
                let params = random_params(&shape, 17);
                let weight = vec![1.0 / (rows * n) as f32; n];
                let mut portable = vec![0.0f32; shape.param_len()];
                let mut avx2 = vec![0.0f32; shape.param_len()];
                let shift: Vec<f32> = (0..n).map(|i| 0.05 * (i as f32 - 3.0)).collect();
                let extras = Extras {
                    hidden_l1: 0.01 / rows as f32,
                    input_shift: &shift,
                };
                let a = forward_backward_chunk(
                    &shape,
                    &params,
                    &mut portable,
                    &mut ws,
                    &weight,
                    extras,
                    rows,
                );
                // SAFETY: AVX2 and FMA detected above.
                let b = unsafe {
                    forward_backward_chunk_avx2(
                        &shape, &params, &mut avx2, &mut ws, &weight, extras, rows,
                    )
                };
                assert_eq!(a.to_bits(), b.to_bits(), "{kind:?} n={n} m={m}: loss");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&portable),
                    bits(&avx2),
                    "{kind:?} n={n} m={m}: gradients"
                );
            }
        }
    }

    #[test]
    fn tiles_cover_the_range_widest_first() {
        let widths = |len, max| tiles(len, max).collect::<Vec<_>>();
        // 30 with four: seven fours and one two.
        let mut thirty: Vec<_> = (0..28).step_by(4).map(|at| (at, Tile::Four)).collect();
        thirty.push((28, Tile::Two));
        assert_eq!(widths(30, Tile::Four), thirty);
        assert_eq!(
            widths(7, Tile::Four),
            [(0, Tile::Four), (4, Tile::Two), (6, Tile::One)]
        );
        assert_eq!(widths(3, Tile::Two), [(0, Tile::Two), (2, Tile::One)]);
        assert_eq!(widths(0, Tile::Four), []);
        assert_eq!(
            tiles(5, SmallTile::Two).collect::<Vec<_>>(),
            [
                (0, SmallTile::Two),
                (2, SmallTile::Two),
                (4, SmallTile::One)
            ]
        );
    }

    #[test]
    fn layout_offsets() {
        let tied = Shape {
            kind: ModelKind::ReluOutput,
            features: 5,
            hidden: 2,
        };
        assert_eq!(tied.param_len(), 15);
        assert_eq!(tied.decoder_offset(), 0);
        assert_eq!(tied.bias_offset(), 10);
        let untied = Shape {
            kind: ModelKind::Abs,
            ..tied
        };
        assert_eq!(untied.param_len(), 25);
        assert_eq!(untied.decoder_offset(), 10);
        assert_eq!(untied.bias_offset(), 20);
    }

    #[test]
    fn dot_handles_every_length() {
        for len in [0, 1, 15, 16, 17, 100] {
            let a: Vec<f32> = (0..len).map(|i| i as f32).collect();
            let b: Vec<f32> = (0..len).map(|i| 0.5 * i as f32).collect();
            let expect: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - expect).abs() <= 1e-3 * expect.max(1.0));
        }
    }
}
