//! The forward pass alone, for every model kind: hidden activations, outputs and the loss on a
//! given batch. Evaluation, attacks, sparse autoencoders and memorization metrics call this;
//! training keeps its fused forward + backward kernel.
//!
//! ```text
//! h   = W x                 (ReLU(W x) for relu-hidden and abs)     [m][rows]
//! out = Wdecᵀ h + b         (ReLU(...) for every kind but linear)   [n][rows]
//! loss = Σ_i I_i · mean_rows (|x_i| − out_i)² / n                   (the notebook's loss)
//! ```
//!
//! Batches are feature-major (`x[i * rows + r]`) like everywhere in tms; every inner loop runs
//! over rows. Sums have a fixed order, so the portable and the AVX2 build agree bit for bit.

use super::cpu::KernelVariant;
use super::{sum16, ModelKind, Shape, ROW_CHUNK, ROW_TILE};

/// Result of [`forward`] on a batch of `rows` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardPass {
    /// Hidden activations, hidden-major `[m][rows]`.
    pub hidden: Vec<f32>,
    /// Outputs x′ (ŷ for `abs`), feature-major `[n][rows]`.
    pub output: Vec<f32>,
    /// The loss: the mean over rows and features of `I_i (|x_i| − out_i)²`.
    pub loss: f64,
}

/// Forward pass of one instance (`params` in the layout of [`crate::model`]) on the
/// feature-major batch `x` (`[n][rows]`), with feature importances `importance` (`[n]`).
///
/// # Panics
/// If a buffer's length does not match the shape and `rows`.
pub fn forward(
    shape: &Shape,
    params: &[f32],
    x: &[f32],
    rows: usize,
    importance: &[f32],
) -> ForwardPass {
    check_lengths(shape, params, x, rows, importance);
    let (n, m) = (shape.features, shape.hidden);
    let mut pass = ForwardPass {
        hidden: vec![0.0; m * rows],
        output: vec![0.0; n * rows],
        loss: 0.0,
    };
    let weight = loss_weights(importance, rows);
    let variant = KernelVariant::detect();
    let mut start = 0;
    while start < rows {
        let c = ROW_CHUNK.min(rows - start);
        let cols = Columns {
            stride: rows,
            start,
            len: c,
        };
        pass.loss += forward_columns(
            variant,
            shape,
            params,
            x,
            &weight,
            cols,
            &mut pass.hidden,
            Outputs::Keep(&mut pass.output),
        );
        start += c;
    }
    pass
}

/// The loss of one instance on a feature-major batch `x` (`[n][rows]`), chunk by chunk,
/// without keeping activations: the evaluation path.
pub fn loss(shape: &Shape, params: &[f32], x: &[f32], rows: usize, importance: &[f32]) -> f64 {
    check_lengths(shape, params, x, rows, importance);
    let mut scratch = LossScratch::new(shape);
    let weight = loss_weights(importance, rows);
    let mut total = 0.0;
    let mut start = 0;
    while start < rows {
        let c = ROW_CHUNK.min(rows - start);
        let cols = Columns {
            stride: rows,
            start,
            len: c,
        };
        total += scratch.columns_loss(shape, params, x, &weight, cols);
        start += c;
    }
    total
}

/// Scratch for [`LossScratch::chunk_loss`]: the hidden activations of a chunk, and the kernel
/// variant to run.
#[derive(Clone, Debug)]
pub struct LossScratch {
    hidden: Vec<f32>,
    variant: KernelVariant,
}

impl LossScratch {
    /// Buffers for chunks of up to [`ROW_CHUNK`] rows, running the best kernel for this CPU.
    pub fn new(shape: &Shape) -> Self {
        Self::with_variant(shape, KernelVariant::detect())
    }

    /// [`LossScratch::new`] with a chosen kernel variant (falls back to the portable one where
    /// the CPU lacks it).
    pub fn with_variant(shape: &Shape, variant: KernelVariant) -> Self {
        LossScratch {
            hidden: vec![0.0; shape.hidden * ROW_CHUNK],
            variant: variant.checked(),
        }
    }

    /// The loss share of one chunk of `c` ≤ [`ROW_CHUNK`] rows stored with row stride `stride`
    /// (`x` is `[n][stride]`), weighted by `weight[i] = I_i / (batch rows · n)`.
    ///
    /// # Panics
    /// If `c` exceeds [`ROW_CHUNK`] or `stride`, or a buffer is too short.
    pub fn chunk_loss(
        &mut self,
        shape: &Shape,
        params: &[f32],
        x: &[f32],
        weight: &[f32],
        c: usize,
        stride: usize,
    ) -> f64 {
        assert!(c <= ROW_CHUNK && c <= stride, "chunk of {c} rows");
        assert!(x.len() >= shape.features * stride && params.len() == shape.param_len());
        let cols = Columns {
            stride,
            start: 0,
            len: c,
        };
        self.columns_loss(shape, params, x, weight, cols)
    }

    fn columns_loss(
        &mut self,
        shape: &Shape,
        params: &[f32],
        x: &[f32],
        weight: &[f32],
        cols: Columns,
    ) -> f64 {
        // The scratch is laid out with its own stride: one chunk, starting at column 0.
        let hidden = &mut self.hidden[..shape.hidden * ROW_CHUNK];
        forward_columns(
            self.variant,
            shape,
            params,
            x,
            weight,
            cols,
            hidden,
            Outputs::Discard,
        )
    }
}

/// `I_i / (rows · n)`: the notebook's loss is a mean over rows and features.
pub fn loss_weights(importance: &[f32], rows: usize) -> Vec<f32> {
    let norm = (rows * importance.len()) as f32;
    importance.iter().map(|&i| i / norm).collect()
}

fn check_lengths(shape: &Shape, params: &[f32], x: &[f32], rows: usize, importance: &[f32]) {
    assert_eq!(params.len(), shape.param_len(), "parameter buffer length");
    assert_eq!(
        x.len(),
        shape.features * rows,
        "batch length (features × rows)"
    );
    assert_eq!(
        importance.len(),
        shape.features,
        "one importance per feature"
    );
}

/// Columns `start..start + len` of arrays stored with row stride `stride`.
#[derive(Clone, Copy, Debug)]
struct Columns {
    stride: usize,
    start: usize,
    len: usize,
}

/// Where outputs go: into a `[n][stride]` array at the same columns as the input, or nowhere
/// (loss only).
enum Outputs<'a> {
    Keep(&'a mut [f32]),
    Discard,
}

/// Forward over some columns; returns their loss share. `hidden` is `[m][stride]` at the
/// input's columns when keeping outputs, else `[m][ROW_CHUNK]` from column 0.
#[allow(clippy::too_many_arguments)]
fn forward_columns(
    variant: KernelVariant,
    shape: &Shape,
    params: &[f32],
    x: &[f32],
    weight: &[f32],
    cols: Columns,
    hidden: &mut [f32],
    out: Outputs<'_>,
) -> f64 {
    match variant.checked() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `checked` returned Avx2, so this CPU has AVX2 and FMA.
        KernelVariant::Avx2 => unsafe {
            forward_columns_avx2(shape, params, x, weight, cols, hidden, out)
        },
        _ => forward_columns_impl(shape, params, x, weight, cols, hidden, out),
    }
}

/// [`forward_columns_impl`] compiled for AVX2 (same results, bit for bit).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_columns_avx2(
    shape: &Shape,
    params: &[f32],
    x: &[f32],
    weight: &[f32],
    cols: Columns,
    hidden: &mut [f32],
    out: Outputs<'_>,
) -> f64 {
    forward_columns_impl(shape, params, x, weight, cols, hidden, out)
}

#[inline(always)]
fn forward_columns_impl(
    shape: &Shape,
    params: &[f32],
    x: &[f32],
    weight: &[f32],
    cols: Columns,
    hidden: &mut [f32],
    out: Outputs<'_>,
) -> f64 {
    let (n, m) = (shape.features, shape.hidden);
    let (enc, dec, bias) = (
        shape.encoder(params),
        shape.decoder(params),
        shape.bias(params),
    );
    let hidden_relu = matches!(shape.kind, ModelKind::ReluHidden | ModelKind::Abs);
    let output_relu = shape.kind != ModelKind::Linear;
    let Columns { stride, start, len } = cols;
    // (No closures here: they are not inlined into the AVX2 copy and lose its target features.)
    // Hidden rows sit at the input's columns when outputs are kept, else at column 0.
    let (h_stride, h_start) = match out {
        Outputs::Keep(_) => (stride, start),
        Outputs::Discard => (ROW_CHUNK, 0),
    };

    // ---- h[k] = Σ_i W[i][k] x[i]   (features added in order), 16 rows × up to 4 k at a time
    for r0 in (0..len).step_by(ROW_TILE) {
        let mut k0 = 0;
        while k0 < m {
            let k_tile = if k0 + 4 <= m {
                4
            } else if k0 + 2 <= m {
                2
            } else {
                1
            };
            let mut acc = [[0.0f32; ROW_TILE]; 4];
            for i in 0..n {
                let xv = load_tile(&x[i * stride + start..i * stride + start + len], r0);
                let w = &enc[i * m + k0..i * m + k0 + k_tile];
                for (acc, &w) in acc.iter_mut().zip(w) {
                    for l in 0..ROW_TILE {
                        acc[l] += w * xv[l];
                    }
                }
            }
            for (kk, acc) in acc.iter_mut().take(k_tile).enumerate() {
                if hidden_relu {
                    for v in acc.iter_mut() {
                        *v = if *v > 0.0 { *v } else { 0.0 };
                    }
                }
                let k = k0 + kk;
                store_tile(
                    &mut hidden[k * h_stride + h_start..k * h_stride + h_start + len],
                    r0,
                    acc,
                );
            }
            k0 += k_tile;
        }
    }

    // ---- out_i = b_i + Σ_k Wdec[i][k] h[k]  (then ReLU);  loss += w_i Σ_rows (out_i − |x_i|)²
    let hidden = &*hidden;
    let mut out = out;
    let mut loss = 0.0f64;
    for i in 0..n {
        let xi = &x[i * stride + start..i * stride + start + len];
        let d = &dec[i * m..(i + 1) * m];
        let mut sq = [0.0f32; ROW_TILE];
        for r0 in (0..len).step_by(ROW_TILE) {
            let mut o = [bias[i]; ROW_TILE];
            for (k, &w) in d.iter().enumerate() {
                let hv = load_tile(
                    &hidden[k * h_stride + h_start..k * h_stride + h_start + len],
                    r0,
                );
                for l in 0..ROW_TILE {
                    o[l] += w * hv[l];
                }
            }
            if output_relu {
                for v in o.iter_mut() {
                    *v = if *v > 0.0 { *v } else { 0.0 };
                }
            }
            let target = load_tile(xi, r0);
            let valid = len - r0; // rows past the end count for nothing
            for l in 0..ROW_TILE {
                let e = if l < valid {
                    o[l] - target[l].abs()
                } else {
                    0.0
                };
                sq[l] += e * e;
            }
            if let Outputs::Keep(buf) = &mut out {
                store_tile(
                    &mut buf[i * stride + start..i * stride + start + len],
                    r0,
                    &o,
                );
            }
        }
        loss += (weight[i] * sum16(&sq)) as f64;
    }
    loss
}

/// `row[r0..r0 + 16]`, zero-padded past the end of `row`.
#[inline(always)]
fn load_tile(row: &[f32], r0: usize) -> [f32; ROW_TILE] {
    match row.get(r0..r0 + ROW_TILE) {
        Some(full) => full.try_into().expect("16 floats"),
        None => {
            let mut t = [0.0; ROW_TILE];
            let rest = &row[r0..];
            t[..rest.len()].copy_from_slice(rest);
            t
        }
    }
}

/// Store the first `row.len() - r0` (at most 16) values of `tile` at `row[r0..]`.
#[inline(always)]
fn store_tile(row: &mut [f32], r0: usize, tile: &[f32; ROW_TILE]) {
    let count = ROW_TILE.min(row.len() - r0);
    row[r0..r0 + count].copy_from_slice(&tile[..count]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{FeatureSampler, LaneRng};
    use crate::model::{loss_and_grad, Extras};

    fn random_params(shape: &Shape, seed: u64) -> Vec<f32> {
        let mut rng = LaneRng::new(seed);
        (0..shape.param_len())
            .map(|_| (0.6 * rng.next_normal()) as f32)
            .collect()
    }

    /// The forward pass, row by row in f64, straight from the definitions.
    fn reference(shape: &Shape, p: &[f32], x: &[f32], rows: usize) -> (Vec<f64>, Vec<f64>) {
        let (n, m) = (shape.features, shape.hidden);
        let (enc, dec, b) = (shape.encoder(p), shape.decoder(p), shape.bias(p));
        let mut h = vec![0.0; m * rows];
        let mut out = vec![0.0; n * rows];
        for r in 0..rows {
            for k in 0..m {
                let mut v: f64 = (0..n)
                    .map(|i| enc[i * m + k] as f64 * x[i * rows + r] as f64)
                    .sum();
                if matches!(shape.kind, ModelKind::ReluHidden | ModelKind::Abs) {
                    v = v.max(0.0);
                }
                h[k * rows + r] = v;
            }
            for i in 0..n {
                let mut v = b[i] as f64;
                for k in 0..m {
                    v += dec[i * m + k] as f64 * h[k * rows + r];
                }
                out[i * rows + r] = if shape.kind == ModelKind::Linear {
                    v
                } else {
                    v.max(0.0)
                };
            }
        }
        (h, out)
    }

    /// Every kind: activations match the f64 reference, and the loss matches the training
    /// kernel's (which the finite-difference and golden tests check).
    #[test]
    fn forward_matches_the_definitions_and_the_training_kernel() {
        for kind in ModelKind::ALL {
            let shape = Shape {
                kind,
                features: 7,
                hidden: 3,
            };
            let rows = 300; // three chunks, the last ragged
            let mut sampler = FeatureSampler::new(&[0.4; 7], kind.value_range(), 5, rows);
            let mut x = vec![0.0f32; 7 * rows];
            sampler.fill(&mut x, rows);
            let params = random_params(&shape, 3 + kind as u64);
            let imp: Vec<f32> = (0..7).map(|i| 0.9f32.powi(i)).collect();
            let pass = forward(&shape, &params, &x, rows, &imp);
            let (h, out) = reference(&shape, &params, &x, rows);
            for (a, b) in pass.hidden.iter().zip(&h) {
                assert!((*a as f64 - b).abs() < 1e-5, "{kind:?}: hidden {a} vs {b}");
            }
            for (a, b) in pass.output.iter().zip(&out) {
                assert!((*a as f64 - b).abs() < 1e-5, "{kind:?}: output {a} vs {b}");
            }
            let mut grads = vec![0.0; shape.param_len()];
            let fused = loss_and_grad(
                &shape,
                &params,
                &x,
                rows,
                &imp,
                Extras::default(),
                &mut grads,
            );
            assert!(
                (pass.loss - fused).abs() <= 1e-6 * fused,
                "{kind:?}: {} vs {fused}",
                pass.loss
            );
            assert_eq!(
                loss(&shape, &params, &x, rows, &imp).to_bits(),
                pass.loss.to_bits(),
                "{kind:?}: loss-only path"
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_and_portable_forward_agree_bit_for_bit() {
        if KernelVariant::Avx2.checked() != KernelVariant::Avx2 {
            return;
        }
        let shape = Shape {
            kind: ModelKind::ReluHidden,
            features: 13,
            hidden: 5,
        };
        let rows = 100;
        let mut sampler = FeatureSampler::new(&[0.3; 13], shape.kind.value_range(), 1, rows);
        let mut x = vec![0.0f32; 13 * rows];
        sampler.fill(&mut x, rows);
        let params = random_params(&shape, 8);
        let weight = loss_weights(&[1.0; 13], rows);
        let mut a = LossScratch::with_variant(&shape, KernelVariant::Portable);
        let mut b = LossScratch::with_variant(&shape, KernelVariant::Avx2);
        let pa = a.chunk_loss(&shape, &params, &x, &weight, rows, rows);
        let pb = b.chunk_loss(&shape, &params, &x, &weight, rows, rows);
        assert_eq!(pa.to_bits(), pb.to_bits());
    }

    #[test]
    #[should_panic(expected = "batch length")]
    fn a_batch_of_the_wrong_size_is_refused() {
        let shape = Shape {
            kind: ModelKind::Linear,
            features: 3,
            hidden: 2,
        };
        forward(&shape, &[0.0; 9], &[0.0; 10], 4, &[1.0; 3]);
    }
}
