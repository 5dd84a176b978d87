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

use serde::{Deserialize, Serialize};

use crate::data::ValueRange;

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

    /// Range of a present input feature.
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

/// Scratch buffers for one chunk of rows of one instance (allocated once, reused every step).
#[derive(Clone, Debug)]
pub struct Workspace {
    /// Inputs, feature-major `[n][c]`.
    pub x: Vec<f32>,
    /// Hidden activations, hidden-major `[m][c]`.
    pub h: Vec<f32>,
    /// Gradient of the loss w.r.t. the hidden activations `[m][c]`.
    pub dh: Vec<f32>,
    /// One output row: pre-activation, then its gradient `[c]`.
    pub row: Vec<f32>,
}

impl Workspace {
    /// Buffers for chunks of up to `ROW_CHUNK` rows.
    pub fn new(shape: &Shape) -> Self {
        Workspace {
            x: vec![0.0; shape.features * ROW_CHUNK],
            h: vec![0.0; shape.hidden * ROW_CHUNK],
            dh: vec![0.0; shape.hidden * ROW_CHUNK],
            row: vec![0.0; ROW_CHUNK],
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
fn sum16(acc: &[f32; 16]) -> f32 {
    let mut s = [0.0f32; 8];
    for l in 0..8 {
        s[l] = acc[l] + acc[l + 8];
    }
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
}

/// y += alpha * x.
#[inline(always)]
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// Forward and backward of one instance on one chunk of `c` rows; returns the chunk's share of
/// the loss and **adds** the gradients into `grads`.
///
/// `loss_weight[i] = I_i / (batch * n)`: the notebook's loss, a mean over the batch and the
/// features of `I_i (|x_i| - x'_i)²`. `ws.x[..n * c]` must hold the inputs.
#[inline(always)]
pub fn forward_backward_chunk(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut Workspace,
    loss_weight: &[f32],
    c: usize,
) -> f64 {
    match shape.kind {
        ModelKind::Linear => chunk_impl::<false, false>(shape, params, grads, ws, loss_weight, c),
        ModelKind::ReluOutput => {
            chunk_impl::<false, true>(shape, params, grads, ws, loss_weight, c)
        }
        ModelKind::ReluHidden | ModelKind::Abs => {
            chunk_impl::<true, true>(shape, params, grads, ws, loss_weight, c)
        }
    }
}

#[inline(always)]
fn chunk_impl<const HIDDEN_RELU: bool, const OUTPUT_RELU: bool>(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut Workspace,
    loss_weight: &[f32],
    c: usize,
) -> f64 {
    let (n, m) = (shape.features, shape.hidden);
    let (dec_off, bias_off) = (shape.decoder_offset(), shape.bias_offset());
    let enc = &params[..n * m];
    let dec = &params[dec_off..dec_off + n * m];
    let bias = &params[bias_off..bias_off + n];
    let x = &ws.x[..n * c];
    let h = &mut ws.h[..m * c];
    let dh = &mut ws.dh[..m * c];
    let row = &mut ws.row[..c];

    // ---- encoder forward: h[k] = sum_i W[i][k] x[i]  (then ReLU for the hidden-ReLU models)
    h.fill(0.0);
    for (i, xi) in x.chunks_exact(c).enumerate() {
        for (k, hk) in h.chunks_exact_mut(c).enumerate() {
            axpy(hk, enc[i * m + k], xi);
        }
    }
    if HIDDEN_RELU {
        for v in h.iter_mut() {
            *v = v.max(0.0);
        }
    }

    // ---- decoder forward + loss + backward, one output feature at a time
    dh.fill(0.0);
    let mut loss = 0.0f64;
    for i in 0..n {
        // row = b_i + sum_k Wdec[i][k] h[k]   (pre-activation of output i)
        row.fill(bias[i]);
        for (k, hk) in h.chunks_exact(c).enumerate() {
            axpy(row, dec[i * m + k], hk);
        }
        // err = out - |x_i|;  row <- dL/dpre = 2 w_i err * relu'(pre)
        let w = loss_weight[i];
        let two_w = 2.0 * w;
        let xi = &x[i * c..(i + 1) * c];
        let mut sq = [0.0f32; 16];
        let mut rows16 = row.chunks_exact_mut(16);
        let mut xs16 = xi.chunks_exact(16);
        for (r16, x16) in (&mut rows16).zip(&mut xs16) {
            for l in 0..16 {
                let pre = r16[l];
                let out = if OUTPUT_RELU { pre.max(0.0) } else { pre };
                let err = out - x16[l].abs();
                sq[l] += err * err;
                let active = !OUTPUT_RELU || pre > 0.0;
                r16[l] = if active { two_w * err } else { 0.0 };
            }
        }
        for (l, (r, xv)) in rows16
            .into_remainder()
            .iter_mut()
            .zip(xs16.remainder())
            .enumerate()
        {
            let pre = *r;
            let out = if OUTPUT_RELU { pre.max(0.0) } else { pre };
            let err = out - xv.abs();
            sq[l] += err * err;
            let active = !OUTPUT_RELU || pre > 0.0;
            *r = if active { two_w * err } else { 0.0 };
        }
        loss += (w * sum16(&sq)) as f64;

        // db_i, dWdec[i][k] = row . h[k], dh[k] += Wdec[i][k] row
        grads[bias_off + i] += sum(row);
        for (k, (hk, dhk)) in h.chunks_exact(c).zip(dh.chunks_exact_mut(c)).enumerate() {
            grads[dec_off + i * m + k] += dot(row, hk);
            axpy(dhk, dec[i * m + k], row);
        }
    }

    // ---- encoder backward: dh <- dh * relu'(h);  dW[i][k] += dh[k] . x[i]
    if HIDDEN_RELU {
        for (d, &hv) in dh.iter_mut().zip(h.iter()) {
            if hv <= 0.0 {
                *d = 0.0;
            }
        }
    }
    for (i, xi) in x.chunks_exact(c).enumerate() {
        for (k, dhk) in dh.chunks_exact(c).enumerate() {
            grads[i * m + k] += dot(dhk, xi);
        }
    }
    loss
}

/// Loss and gradient of one instance on a whole feature-major batch `x` (`[n][rows]`), chunked
/// exactly as training chunks it. Used by tests and evaluation; training fuses sampling in.
pub fn loss_and_grad(
    shape: &Shape,
    params: &[f32],
    x: &[f32],
    rows: usize,
    importance: &[f32],
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
        for i in 0..n {
            ws.x[i * c..(i + 1) * c].copy_from_slice(&x[i * rows + start..i * rows + start + c]);
        }
        loss += forward_backward_chunk(shape, params, grads, &mut ws, &weight, c);
        start += c;
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{FeatureSampler, LaneRng};

    /// Loss in f64 straight from the definitions, independent of the fused kernel.
    fn reference_loss(shape: &Shape, p: &[f64], x: &[f64], rows: usize, imp: &[f64]) -> f64 {
        let (n, m) = (shape.features, shape.hidden);
        let enc = &p[..n * m];
        let dec = &p[shape.decoder_offset()..shape.decoder_offset() + n * m];
        let b = &p[shape.bias_offset()..];
        let mut total = 0.0;
        for r in 0..rows {
            let mut h = vec![0.0; m];
            for k in 0..m {
                for i in 0..n {
                    h[k] += enc[i * m + k] * x[i * rows + r];
                }
                if matches!(shape.kind, ModelKind::ReluHidden | ModelKind::Abs) {
                    h[k] = h[k].max(0.0);
                }
            }
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

    /// Every gradient of every model against central finite differences of the f64 reference.
    #[test]
    fn gradients_match_finite_differences_for_every_model() {
        for kind in ModelKind::ALL {
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
            let loss = loss_and_grad(&shape, &params, &x, rows, &imp, &mut grads);

            let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let imp64: Vec<f64> = imp.iter().map(|&v| v as f64).collect();
            let ref_loss = reference_loss(&shape, &p64, &x64, rows, &imp64);
            assert!(
                (loss - ref_loss).abs() < 1e-5 * ref_loss.max(1.0),
                "{kind:?}: loss {loss} vs reference {ref_loss}"
            );
            let eps = 1e-6;
            for j in 0..shape.param_len() {
                let mut plus = p64.clone();
                plus[j] += eps;
                let mut minus = p64.clone();
                minus[j] -= eps;
                let fd = (reference_loss(&shape, &plus, &x64, rows, &imp64)
                    - reference_loss(&shape, &minus, &x64, rows, &imp64))
                    / (2.0 * eps);
                let g = grads[j] as f64;
                assert!(
                    (g - fd).abs() <= 1e-4 + 1e-3 * fd.abs(),
                    "{kind:?}: parameter {j}: analytic {g} vs finite difference {fd}"
                );
            }
        }
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
