//! The sparse-input pass of the tied models, x′ = f(WᵀWx + b) with f = ReLU (`relu-output`)
//! or the identity (`linear`): loss and gradient over rows given as lists of their non-zero
//! features ([`SparseRows`]).
//!
//! Per row x (active features A, target y = x), with loss weights w_i:
//!
//! ```text
//! h     = Σ_{j∈A} x_j W_j                     only the active inputs: |A|·m
//! pre_i = W_i·h + b_i,  x′_i = f(pre_i)       dense over the n features: n·m
//! g_i   = 2 w_i (pre_i − y_i) [pre_i > 0]     zero wherever the ReLU is off
//! ∂b_i += g_i,  ∂W_i += g_i h                 the decoder's side
//! dh    = Σ_i g_i W_i,  ∂W_j += x_j dh         the encoder's side, j ∈ A only
//! ```
//!
//! Only the pre-activations are inherently dense: they are computed 16 features at a time
//! (the lanes of [`Lanes16`]), with a bit mask of the outputs that are on. The rest is done
//! one output at a time, for the outputs of the mask that matter, in one of two ways chosen
//! per call by the signs of the biases (both exact, to rounding):
//!
//! * **direct**: add the terms of the outputs that are on. Cheap when most outputs are off
//!   (negative biases: the memorizing models).
//! * **baseline**: add every term as if every output were on (the linear model), which
//!   collapses into m×m matrices over the rows (H = Σ h hᵀ, G = Σ_i w_i W_i W_iᵀ) and the
//!   active entries; then take back the terms of the outputs that are off. Cheap when most
//!   outputs are on (the small positive biases of the unrepresented features: the
//!   generalizing models), and the only pass the linear model needs.
//!
//! Results agree with the dense kernel to rounding (sums run in another order), are the same
//! for every thread count, and the same bits on the portable and AVX2 builds (no FMA).

use super::{ModelKind, Shape};
use crate::data::SparseRows;
use crate::simd::{mul_add, Lanes16};

/// Buffers of the sparse pass, padded to whole blocks of 16 features.
#[derive(Clone, Debug)]
pub struct SparseWorkspace {
    /// n rounded up to a multiple of 16.
    padded: usize,
    /// Wᵀ, `[m][padded]`.
    wt: Vec<f32>,
    /// b, `[padded]`.
    bias: Vec<f32>,
    /// Loss weights w_i, `[padded]` (zero in the padding).
    weight: Vec<f32>,
    /// The current row's targets, scattered (zero between rows).
    y: Vec<f32>,
    /// h and dh of the current row, `[m]` each.
    h: Vec<f32>,
    dh: Vec<f32>,
    /// Baseline sums over the rows: H = Σ h hᵀ (`[m][m]`) and Σ h; per call: G = Σ_i w_i W_i
    /// W_iᵀ (`[m][m]`) and c = Σ_i w_i b_i W_i (`[m]`), in f64.
    hh: Vec<f64>,
    h_sum: Vec<f64>,
    gw: Vec<f64>,
    c: Vec<f64>,
    /// The mode, when a test forces one (`Some(true)`: baseline); `None` chooses by the biases.
    forced_baseline: Option<bool>,
}

impl SparseWorkspace {
    /// Buffers for a model of this shape.
    pub fn new(shape: &Shape) -> Self {
        let (n, m) = (shape.features, shape.hidden);
        let padded = n.next_multiple_of(16);
        SparseWorkspace {
            padded,
            wt: vec![0.0; m * padded],
            bias: vec![0.0; padded],
            weight: vec![0.0; padded],
            y: vec![0.0; padded],
            h: vec![0.0; m],
            dh: vec![0.0; m],
            hh: vec![0.0; m * m],
            h_sum: vec![0.0; m],
            gw: vec![0.0; m * m],
            c: vec![0.0; m],
            forced_baseline: None,
        }
    }
}

/// Add the loss and gradient of rows `order` of `rows` into `grads`; returns the loss
/// (weighted by `loss_weight`, as the dense kernel's).
///
/// # Panics
/// If `shape` is not a tied model, or a buffer does not fit `shape`.
pub fn sparse_forward_backward(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut SparseWorkspace,
    loss_weight: &[f32],
    rows: (&SparseRows, &[u32]),
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    type Lanes = crate::simd::Sse16;
    #[cfg(not(target_arch = "x86_64"))]
    type Lanes = crate::simd::Scalar16;
    sparse_by_kind::<Lanes>(shape, params, grads, ws, loss_weight, rows)
}

/// [`sparse_forward_backward`] compiled for AVX2 (same results, bit for bit).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub unsafe fn sparse_forward_backward_avx2(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut SparseWorkspace,
    loss_weight: &[f32],
    rows: (&SparseRows, &[u32]),
) -> f64 {
    sparse_rows_avx2(shape, params, grads, ws, loss_weight, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
fn sparse_rows_avx2(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut SparseWorkspace,
    loss_weight: &[f32],
    rows: (&SparseRows, &[u32]),
) -> f64 {
    sparse_by_kind::<crate::simd::Avx16>(shape, params, grads, ws, loss_weight, rows)
}

/// The pass for the model kind: with the output ReLU (`relu-output`) or without (`linear`).
#[inline(always)]
fn sparse_by_kind<V: Lanes16>(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut SparseWorkspace,
    loss_weight: &[f32],
    rows: (&SparseRows, &[u32]),
) -> f64 {
    match shape.kind {
        ModelKind::ReluOutput => {
            sparse_impl::<V, true>(shape, params, grads, ws, loss_weight, rows)
        }
        ModelKind::Linear => sparse_impl::<V, false>(shape, params, grads, ws, loss_weight, rows),
        kind => panic!("the sparse pass needs a tied model without a hidden ReLU, not {kind:?}"),
    }
}

/// Whether most outputs are likely on: at least half the biases positive. An unrepresented
/// feature's output is its bias; a represented one's is on about as often as its bias is
/// positive. A function of the parameters alone, so a resumed run chooses as the original did.
fn mostly_on(bias: &[f32]) -> bool {
    2 * bias.iter().filter(|&&b| b > 0.0).count() >= bias.len()
}

/// Sixteen floats of `v` from `at`.
#[inline(always)]
fn block(v: &[f32], at: usize) -> &[f32; 16] {
    v[at..at + 16].try_into().expect("16 floats")
}

#[inline(always)]
fn sparse_impl<V: Lanes16, const RELU: bool>(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut SparseWorkspace,
    loss_weight: &[f32],
    rows: (&SparseRows, &[u32]),
) -> f64 {
    // The linear model has every output on: the baseline is exact and needs no blocks.
    let baseline = !RELU
        || ws
            .forced_baseline
            .unwrap_or_else(|| mostly_on(&params[shape.bias_offset()..]));
    // m = 2 (the plane models) compiled with m known, so its loops over k unroll.
    match (baseline, shape.hidden) {
        (true, 2) => sparse_rows::<V, RELU, true, 2>(shape, params, grads, ws, loss_weight, rows),
        (true, _) => sparse_rows::<V, RELU, true, 0>(shape, params, grads, ws, loss_weight, rows),
        (false, 2) => sparse_rows::<V, RELU, false, 2>(shape, params, grads, ws, loss_weight, rows),
        (false, _) => sparse_rows::<V, RELU, false, 0>(shape, params, grads, ws, loss_weight, rows),
    }
}

/// One call in the direct (`BASELINE = false`) or baseline mode; see the module docs. `M` is
/// the number of hidden dimensions when known at compile time, else 0.
#[inline(always)]
fn sparse_rows<V: Lanes16, const RELU: bool, const BASELINE: bool, const M: usize>(
    shape: &Shape,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut SparseWorkspace,
    loss_weight: &[f32],
    (rows, order): (&SparseRows, &[u32]),
) -> f64 {
    assert!(M == 0 || M == shape.hidden, "compiled for m = {M}");
    let (n, m) = (shape.features, if M > 0 { M } else { shape.hidden });
    assert!(shape.kind.tied(), "tied models only");
    assert_eq!(params.len(), shape.param_len(), "parameter buffer length");
    assert_eq!(grads.len(), shape.param_len(), "gradient buffer length");
    assert_eq!(loss_weight.len(), n, "one loss weight per feature");
    assert_eq!(ws.wt.len(), m * ws.padded, "workspace of another shape");
    let np = ws.padded;
    let (w, b) = params.split_at(n * m);
    // Wᵀ, b and the weights in blocks of 16 features; fresh decoder-side gradients.
    for i in 0..n {
        for k in 0..m {
            ws.wt[k * np + i] = w[i * m + k];
        }
    }
    ws.bias[..n].copy_from_slice(b);
    ws.weight[..n].copy_from_slice(loss_weight);
    if BASELINE {
        ws.hh.fill(0.0);
        ws.h_sum.fill(0.0);
        ws.gw.fill(0.0);
        ws.c.fill(0.0);
        for i in 0..n {
            let (wi, wb) = (loss_weight[i] as f64, loss_weight[i] as f64 * b[i] as f64);
            for k in 0..m {
                let wik = w[i * m + k] as f64;
                ws.c[k] += wb * wik;
                for l in 0..m {
                    ws.gw[k * m + l] += wi * wik * w[i * m + l] as f64;
                }
            }
        }
    }
    // Lanes of the last block that are features (the rest is padding).
    let last_block = np - 16;
    let last_lanes = (1u32 << (n - last_block)) - 1;

    let mut loss = 0.0f64;
    for &r in order {
        let (features, values) = rows.row(r as usize);
        // Encoder: h from the active inputs; scatter the targets.
        ws.h.fill(0.0);
        for (&f, &v) in features.iter().zip(values) {
            let f = f as usize;
            for (h, &wf) in ws.h.iter_mut().zip(&w[f * m..(f + 1) * m]) {
                *h += v * wf;
            }
            ws.y[f] = v;
        }
        let mut row_loss = 0.0f32;
        if BASELINE {
            // Every output on: dh = 2(G h + c) − 2 Σ_{j∈A} w_j y_j W_j; the active entries'
            // terms of ∂W_j (−2 w_j y_j h), ∂b_j and the loss (w y² − 2 w y pre); Σ h hᵀ, Σ h.
            for k in 0..m {
                let hk = ws.h[k] as f64;
                ws.h_sum[k] += hk;
                let mut ghk = ws.c[k];
                for l in 0..m {
                    ws.hh[k * m + l] += hk * ws.h[l] as f64;
                    ghk += ws.gw[k * m + l] * ws.h[l] as f64;
                }
                ws.dh[k] = (2.0 * ghk) as f32;
            }
            for (&f, &v) in features.iter().zip(values) {
                let f = f as usize;
                let wf = &w[f * m..(f + 1) * m];
                let pre = b[f] + wf.iter().zip(&ws.h).map(|(a, c)| a * c).sum::<f32>();
                let wy2 = 2.0 * ws.weight[f] * v;
                row_loss += ws.weight[f] * v * (v - 2.0 * pre);
                for k in 0..m {
                    ws.dh[k] -= wy2 * wf[k];
                    grads[f * m + k] -= wy2 * ws.h[k];
                }
                grads[n * m + f] -= wy2;
            }
        } else {
            // Every output off: the loss is Σ w y² of the active entries.
            for (&f, &v) in features.iter().zip(values) {
                row_loss += ws.weight[f as usize] * v * v;
            }
            ws.dh.fill(0.0);
        }
        // Decoder: the pre-activations 16 features at a time (the only dense work); then,
        // one output at a time, the terms of the outputs that are on (direct) or the
        // correction of those that are off (baseline: their linear terms taken back).
        if RELU {
            for at in (0..np).step_by(16) {
                let mut pre = V::load(block(&ws.bias, at));
                for (k, &hk) in ws.h.iter().enumerate() {
                    pre = mul_add(pre, V::load(block(&ws.wt, k * np + at)), V::splat(hk));
                }
                let on = pre.positive_mask();
                let mut todo = if BASELINE { !on & 0xFFFF } else { on };
                if at == last_block {
                    todo &= last_lanes;
                }
                if todo == 0 {
                    continue;
                }
                let pre = pre.to_array();
                while todo != 0 {
                    let lane = todo.trailing_zeros() as usize;
                    todo &= todo - 1;
                    let i = at + lane;
                    let (y, wi) = (ws.y[i], ws.weight[i]);
                    let d = pre[lane] - y;
                    // g = 2 w (pre − y) and the loss w((pre − y)² − y²) of an output that is
                    // on, against the all-off loss w y²; taken back for an off one.
                    let (g, l) = (2.0 * wi * d, wi * (d * d - y * y));
                    let (g, l) = if BASELINE { (-g, -l) } else { (g, l) };
                    row_loss += l;
                    grads[n * m + i] += g;
                    let wi_row = &w[i * m..(i + 1) * m];
                    let gi_row = &mut grads[i * m..(i + 1) * m];
                    for k in 0..m {
                        gi_row[k] += g * ws.h[k];
                        ws.dh[k] += g * wi_row[k];
                    }
                }
            }
        }
        // Encoder side of ∂W: x_j dh for the active inputs; clear the targets.
        for (&f, &v) in features.iter().zip(values) {
            let f = f as usize;
            for (g, &dh) in grads[f * m..(f + 1) * m].iter_mut().zip(&ws.dh) {
                *g += v * dh;
            }
            ws.y[f] = 0.0;
        }
        loss += row_loss as f64;
    }
    // Baseline: every output's linear terms summed over the rows, 2 w_i (H W_i + b_i Σh) for
    // ∂W_i, 2 w_i (W_i·Σh + R b_i) for ∂b_i, and w_i (W_iᵀ H W_i + 2 b_i W_i·Σh + R b_i²).
    let mut baseline_loss = 0.0f64;
    if BASELINE {
        let rows_f = order.len() as f64;
        let (gw, gb) = grads.split_at_mut(n * m);
        for i in 0..n {
            let (wi, bi) = (loss_weight[i] as f64, b[i] as f64);
            let row = &w[i * m..(i + 1) * m];
            let mut w_s = 0.0;
            let mut whw = 0.0;
            for k in 0..m {
                let hh_k = &ws.hh[k * m..(k + 1) * m];
                let hw: f64 = hh_k.iter().zip(row).map(|(&a, &r)| a * r as f64).sum();
                gw[i * m + k] += (2.0 * wi * (hw + bi * ws.h_sum[k])) as f32;
                w_s += row[k] as f64 * ws.h_sum[k];
                whw += row[k] as f64 * hw;
            }
            gb[i] += (2.0 * wi * (w_s + rows_f * bi)) as f32;
            baseline_loss += wi * (whw + 2.0 * bi * w_s + rows_f * bi * bi);
        }
    }
    loss + baseline_loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::forward::loss_weights;
    use crate::model::{forward_backward_chunk, padded_rows, Extras, Workspace};

    /// Sparse random rows (feature-major, `rows` rows, stride padded) and parameters.
    fn problem(
        kind: ModelKind,
        n: usize,
        m: usize,
        rows: usize,
        seed: u64,
    ) -> (Shape, Vec<f32>, Vec<f32>, usize) {
        let shape = Shape {
            kind,
            features: n,
            hidden: m,
        };
        let mut rng = crate::data::SplitMix64(seed);
        let mut uniform = || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        let stride = padded_rows(rows);
        let mut x = vec![0.0f32; n * stride];
        for i in 0..n {
            for r in 0..rows {
                if uniform() < 0.1 {
                    x[i * stride + r] = uniform();
                }
            }
        }
        let mut params: Vec<f32> = (0..shape.param_len()).map(|_| uniform() - 0.5).collect();
        // A negative bias, as trained sparse models have: most output blocks stay off.
        for b in &mut params[n * m..] {
            *b -= 0.2;
        }
        (shape, params, x, stride)
    }

    fn dense(shape: &Shape, params: &[f32], x: &[f32], rows: usize, lw: &[f32]) -> (f64, Vec<f32>) {
        let mut grads = vec![0.0; shape.param_len()];
        let mut ws = Workspace::new(shape);
        ws.x[..x.len()].copy_from_slice(x);
        let extras = Extras {
            hidden_l1: 0.0,
            input_shift: &[],
        };
        let loss = forward_backward_chunk(shape, params, &mut grads, &mut ws, lw, extras, rows);
        (loss, grads)
    }

    /// The sparse pass in the baseline mode, or forced into the direct one.
    fn sparse_mode(
        shape: &Shape,
        params: &[f32],
        x: &[f32],
        (rows, stride): (usize, usize),
        lw: &[f32],
        direct: bool,
    ) -> (f64, Vec<f32>) {
        let csr = SparseRows::from_feature_major(x, shape.features, rows, stride);
        let order: Vec<u32> = (0..rows as u32).collect();
        let mut grads = vec![0.0; shape.param_len()];
        let mut ws = SparseWorkspace::new(shape);
        ws.forced_baseline = Some(!direct);
        let loss = sparse_forward_backward(shape, params, &mut grads, &mut ws, lw, (&csr, &order));
        (loss, grads)
    }

    fn sparse(
        shape: &Shape,
        params: &[f32],
        x: &[f32],
        rows: usize,
        stride: usize,
        lw: &[f32],
    ) -> (f64, Vec<f32>) {
        sparse_mode(shape, params, x, (rows, stride), lw, false)
    }

    #[test]
    fn both_modes_match_the_dense_kernel() {
        for kind in [ModelKind::ReluOutput, ModelKind::Linear] {
            for (n, m, rows, bias) in [
                (37, 2, 100, -0.2),
                (64, 5, 128, -0.2),
                (5, 1, 7, 0.0),
                (40, 3, 50, 0.3),
            ] {
                let (shape, mut params, x, stride) = problem(kind, n, m, rows, 11 + n as u64);
                for b in &mut params[n * m..] {
                    *b += bias + 0.2;
                }
                let imp: Vec<f32> = (0..n).map(|i| 0.9f32.powi(i as i32)).collect();
                let lw = loss_weights(&imp, rows);
                let (dl, dg) = dense(&shape, &params, &x, rows, &lw);
                for direct in [false, true] {
                    let (sl, sg) = sparse_mode(&shape, &params, &x, (rows, stride), &lw, direct);
                    let what = format!("{kind:?} n={n} m={m} bias {bias} direct {direct}");
                    assert!(
                        (dl - sl).abs() <= 1e-5 * dl.abs(),
                        "{what}: loss {dl} vs {sl}"
                    );
                    let scale = dg.iter().fold(0.0f32, |a, g| a.max(g.abs()));
                    for (k, (a, b)) in dg.iter().zip(&sg).enumerate() {
                        assert!(
                            (a - b).abs() <= 2e-5 * scale,
                            "{what}: grad {k}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_mode_follows_the_biases() {
        assert!(mostly_on(&[0.1, -0.2, 0.3, -0.4]));
        assert!(!mostly_on(&[0.1, -0.2, -0.3, -0.4]));
        assert!(!mostly_on(&[0.0, 0.0, 0.0]));
    }

    #[test]
    fn sparse_gradient_matches_finite_differences() {
        let (shape, params, x, stride) = problem(ModelKind::ReluOutput, 20, 3, 40, 5);
        let lw = loss_weights(&[1.0; 20], 40);
        let (_, grads) = sparse(&shape, &params, &x, 40, stride, &lw);
        let loss_at = |p: &[f32]| {
            let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
            // Loss in f64 straight from the definition.
            let (n, m) = (20, 3);
            let mut total = 0.0;
            for r in 0..40 {
                let h: Vec<f64> = (0..m)
                    .map(|k| {
                        (0..n)
                            .map(|i| p64[i * m + k] * x[i * stride + r] as f64)
                            .sum()
                    })
                    .collect();
                for i in 0..n {
                    let pre: f64 =
                        (0..m).map(|k| p64[i * m + k] * h[k]).sum::<f64>() + p64[n * m + i];
                    let d = pre.max(0.0) - x[i * stride + r] as f64;
                    total += lw[i] as f64 * d * d;
                }
            }
            total
        };
        for k in [0, 7, 31, 59, 60, 65, 79] {
            let eps = 1e-3f32;
            let mut plus = params.clone();
            plus[k] += eps;
            let mut minus = params.clone();
            minus[k] -= eps;
            let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * eps as f64);
            let analytic = grads[k] as f64;
            assert!(
                (numeric - analytic).abs() <= 1e-3 * numeric.abs().max(1e-3),
                "parameter {k}: finite difference {numeric} vs {analytic}"
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_sparse_pass_gives_the_same_bits() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        for m in [2, 3] {
            let (shape, params, x, stride) = problem(ModelKind::ReluOutput, 50, m, 64, 3);
            let lw = loss_weights(&[1.0; 50], 64);
            let csr = SparseRows::from_feature_major(&x, 50, 64, stride);
            let order: Vec<u32> = (0..64).collect();
            for direct in [false, true] {
                let (l1, g1) = sparse_mode(&shape, &params, &x, (64, stride), &lw, direct);
                let mut g2 = vec![0.0; shape.param_len()];
                let mut ws = SparseWorkspace::new(&shape);
                ws.forced_baseline = Some(!direct);
                // SAFETY: AVX2 and FMA were detected above.
                let l2 = unsafe {
                    sparse_forward_backward_avx2(
                        &shape,
                        &params,
                        &mut g2,
                        &mut ws,
                        &lw,
                        (&csr, &order),
                    )
                };
                assert_eq!(l1.to_bits(), l2.to_bits(), "m = {m}, direct {direct}");
                assert_eq!(g1, g2, "m = {m}, direct {direct}");
            }
        }
    }
}
