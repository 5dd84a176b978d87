//! One sparse autoencoder: its parameters, forward pass, and training step (forward,
//! hand-written backward, Adam, decoder renormalisation) in one place.
//!
//! ```text
//! x_c   = x − b_dec                      pre-encoder bias (SAELens: apply_b_dec_to_input)
//! pre   = x_c W_enc + b_enc              [D]   dense: the one big product (faer)
//! c     = ReLU(pre)                      kind l1
//!       = ReLU(pre) on the k largest     kind topk (ties: the lower index)
//! x̂     = c W_dec + b_dec                [d]   sparse: only active latents
//! L     = mean_r ‖x̂_r − x_r‖² + α · mean_r Σ_j c_rj ‖W_dec_j‖      (α = 0 for topk)
//! ```
//!
//! After each Adam step every decoder row is renormalised to unit length, so the penalty is
//! α times the mean L1 norm of the code. Only the encoder's product is dense; the decoder, and
//! every gradient product, touch only the active (row, latent) pairs, which makes a step cost
//! about B·d·(D + 4·L0) multiply-adds instead of 3·B·d·D.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::data::rng::{stream_key, LaneRng, StreamKind};

/// Rows per block of the encoder product: fixed, so results do not depend on the thread
/// count.
const ROW_BLOCK: usize = 64;

/// Above this share of active (row, latent) pairs the decoder and the gradients use dense
/// matrix products instead of per-pair loops (early in training, or at tiny penalties).
const DENSE_SHARE: f64 = 0.1;

/// The sparsity mechanism.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SaeKind {
    /// ReLU code with an L1 penalty of strength `alpha`.
    L1 {
        /// Penalty coefficient α.
        alpha: f32,
    },
    /// The k largest pre-activations of each row (ReLU'd), no penalty.
    TopK {
        /// Active latents per row.
        k: usize,
    },
}

/// The four parameter arrays of an SAE (also used for its gradients and Adam moments).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Encoder, stored transposed: row j [d] is latent j's encoder direction (W_enc[:, j]).
    pub w_enc_t: Vec<f32>,
    /// Encoder bias [D].
    pub b_enc: Vec<f32>,
    /// Decoder [D, d]: row j is latent j's dictionary direction.
    pub w_dec: Vec<f32>,
    /// Decoder bias [d], also subtracted before encoding.
    pub b_dec: Vec<f32>,
}

impl Params {
    fn zeros(dim: usize, latents: usize) -> Self {
        Params {
            w_enc_t: vec![0.0; latents * dim],
            b_enc: vec![0.0; latents],
            w_dec: vec![0.0; latents * dim],
            b_dec: vec![0.0; dim],
        }
    }

    /// The arrays in a fixed order, for element-wise updates.
    fn slices_mut(&mut self) -> [&mut [f32]; 4] {
        [
            &mut self.w_enc_t,
            &mut self.b_enc,
            &mut self.w_dec,
            &mut self.b_dec,
        ]
    }

    fn slices(&self) -> [&[f32]; 4] {
        [&self.w_enc_t, &self.b_enc, &self.w_dec, &self.b_dec]
    }
}

/// Adam's settings (torch.optim.Adam's defaults but the learning rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamSettings {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub eps: f32,
}

impl Default for AdamSettings {
    fn default() -> Self {
        AdamSettings {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// A sparse autoencoder with its optimiser state.
#[derive(Clone, Debug)]
pub struct Sae {
    /// Input dimension d.
    pub dim: usize,
    /// Dictionary size D.
    pub latents: usize,
    /// L1 or TopK.
    pub kind: SaeKind,
    /// Weights.
    pub params: Params,
    /// Adam's first moments.
    m: Params,
    /// Adam's second moments.
    v: Params,
    /// Adam steps taken.
    pub steps: u64,
}

/// The active latents of a batch: for row r, `latent[start[r]..start[r + 1]]` and their code
/// values `value[..]` (and, during a step, their pre-activation gradients `grad[..]`).
#[derive(Clone, Debug, Default)]
pub struct Codes {
    /// Offsets of each row's entries (rows + 1).
    pub start: Vec<usize>,
    /// Latent index of each entry.
    pub latent: Vec<u32>,
    /// Code value c_rj of each entry.
    pub value: Vec<f32>,
    grad: Vec<f32>,
}

impl Codes {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    /// The dense code matrix [rows, latents].
    pub fn dense(&self, latents: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.rows() * latents];
        for r in 0..self.rows() {
            for e in self.start[r]..self.start[r + 1] {
                out[r * latents + self.latent[e] as usize] = self.value[e];
            }
        }
        out
    }
}

/// Buffers of a step, reused between steps (no allocation once they have grown).
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    centred: Vec<f32>,
    pre: Vec<f32>,
    /// The codes of the last forward pass.
    pub codes: Codes,
    /// The reconstruction of the last [`Sae::forward`] [rows, d] (after [`Sae::gradients`] it
    /// holds the loss's gradient with respect to it, 2(x̂ − x)/B).
    pub x_hat: Vec<f32>,
    order: Vec<u32>,
    grads: Option<Params>,
    dense: bool,
    /// Tests: take the dense (true) or per-pair (false) path whatever the codes.
    force_dense: Option<bool>,
    dense_codes: Vec<f32>,
    dense_codes_grad: Vec<f32>,
    enc_sums: Vec<f32>,
}

impl Sae {
    /// A new SAE: decoder rows Gaussian, normalised to unit length; encoder = decoder
    /// transposed; biases 0. Stream: (seed, `index`).
    pub fn new(dim: usize, latents: usize, kind: SaeKind, seed: u64, index: u64) -> Self {
        let mut rng = LaneRng::new(stream_key(seed, index, StreamKind::SaeInit));
        let mut params = Params::zeros(dim, latents);
        for row in params.w_dec.chunks_exact_mut(dim) {
            row.iter_mut().for_each(|v| *v = rng.next_normal() as f32);
        }
        normalise_rows(&mut params.w_dec, dim);
        params.w_enc_t.copy_from_slice(&params.w_dec);
        Sae::from_params(dim, latents, kind, params)
    }

    /// An SAE with given weights and a fresh optimiser.
    pub fn from_params(dim: usize, latents: usize, kind: SaeKind, params: Params) -> Self {
        assert_eq!(params.w_enc_t.len(), latents * dim);
        assert_eq!(params.w_dec.len(), latents * dim);
        assert_eq!(params.b_enc.len(), latents);
        assert_eq!(params.b_dec.len(), dim);
        Sae {
            dim,
            latents,
            kind,
            params,
            m: Params::zeros(dim, latents),
            v: Params::zeros(dim, latents),
            steps: 0,
        }
    }

    /// W_enc in SAELens's layout [d, D].
    pub fn w_enc(&self) -> Vec<f32> {
        let (d, n) = (self.dim, self.latents);
        let mut out = vec![0f32; d * n];
        for j in 0..n {
            for i in 0..d {
                out[i * n + j] = self.params.w_enc_t[j * d + i];
            }
        }
        out
    }

    /// Encode and decode `x` ([rows, d]): codes in `ws.codes`, reconstruction in `ws.x_hat`.
    /// `parallel` splits the encoder product over threads (same result).
    pub fn forward(&self, x: &[f32], ws: &mut Workspace, parallel: bool) {
        let (d, n) = (self.dim, self.latents);
        let rows = x.len() / d;
        let p = &self.params;
        ws.centred.resize(rows * d, 0.0);
        for (c, xr) in ws.centred.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            for ((c, &x), &b) in c.iter_mut().zip(xr).zip(&p.b_dec) {
                *c = x - b;
            }
        }
        ws.pre.resize(rows * n, 0.0);
        let enc = MatRef::from_row_major_slice(&p.w_enc_t, n, d);
        let block = |(pre, centred): (&mut [f32], &[f32])| {
            let r = centred.len() / d;
            let lhs = MatRef::from_row_major_slice(centred, r, d);
            let dst = MatMut::from_row_major_slice_mut(pre, r, n);
            matmul(dst, Accum::Replace, lhs, enc.transpose(), 1.0f32, Par::Seq);
            for row in pre.chunks_exact_mut(n) {
                row.iter_mut().zip(&p.b_enc).for_each(|(v, b)| *v += b);
            }
        };
        let blocks = ws
            .pre
            .chunks_mut(ROW_BLOCK * n)
            .zip(ws.centred.chunks(ROW_BLOCK * d));
        if parallel {
            blocks.collect::<Vec<_>>().into_par_iter().for_each(block);
        } else {
            blocks.for_each(block);
        }

        // Select the active latents of each row.
        let codes = &mut ws.codes;
        codes.start.clear();
        codes.latent.clear();
        codes.value.clear();
        codes.start.push(0);
        for row in ws.pre.chunks_exact(n) {
            match self.kind {
                SaeKind::L1 { .. } => {
                    for (j, &v) in row.iter().enumerate() {
                        if v > 0.0 {
                            codes.latent.push(j as u32);
                            codes.value.push(v);
                        }
                    }
                }
                SaeKind::TopK { k } => {
                    let k = k.min(n);
                    ws.order.clear();
                    ws.order.extend(0..n as u32);
                    // Largest first; ties go to the lower index.
                    let by_value = |a: &u32, b: &u32| {
                        row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b))
                    };
                    if k < n {
                        ws.order.select_nth_unstable_by(k, by_value);
                    }
                    ws.order[..k].sort_unstable();
                    for &j in &ws.order[..k] {
                        if row[j as usize] > 0.0 {
                            codes.latent.push(j);
                            codes.value.push(row[j as usize]);
                        }
                    }
                }
            }
            codes.start.push(codes.latent.len());
        }

        // Decode: through the active latents only, or as a product when codes are dense.
        ws.x_hat.resize(rows * d, 0.0);
        ws.dense = ws
            .force_dense
            .unwrap_or(codes.latent.len() as f64 > DENSE_SHARE * (rows * n) as f64);
        if ws.dense {
            ws.dense_codes.clear();
            ws.dense_codes.resize(rows * n, 0.0);
            for r in 0..rows {
                for e in codes.start[r]..codes.start[r + 1] {
                    ws.dense_codes[r * n + codes.latent[e] as usize] = codes.value[e];
                }
            }
            for out in ws.x_hat.chunks_exact_mut(d) {
                out.copy_from_slice(&p.b_dec);
            }
            product(
                &ws.dense_codes,
                (rows, n),
                &p.w_dec,
                false,
                &mut ws.x_hat,
                true,
            );
        } else {
            for (r, out) in ws.x_hat.chunks_exact_mut(d).enumerate() {
                out.copy_from_slice(&p.b_dec);
                for e in codes.start[r]..codes.start[r + 1] {
                    let j = codes.latent[e] as usize;
                    axpy(codes.value[e], &p.w_dec[j * d..(j + 1) * d], out);
                }
            }
        }
    }

    /// One training step on the batch `x` ([rows, d]): forward, backward, Adam, decoder
    /// renormalisation. Returns the loss before the step.
    pub fn train_step(
        &mut self,
        x: &[f32],
        ws: &mut Workspace,
        adam: &AdamSettings,
        parallel: bool,
    ) -> f64 {
        let loss = self.gradients(x, ws, parallel);
        let grads = ws.grads.take().expect("gradients computed");
        self.adam_step(&grads, adam);
        ws.grads = Some(grads);
        normalise_rows(&mut self.params.w_dec, self.dim);
        loss
    }

    /// The loss on `x` and its gradient, left in the workspace (see [`Sae::grads`]).
    pub fn gradients(&self, x: &[f32], ws: &mut Workspace, parallel: bool) -> f64 {
        let (d, n) = (self.dim, self.latents);
        let rows = x.len() / d;
        self.forward(x, ws, parallel);
        let p = &self.params;
        let alpha = match self.kind {
            SaeKind::L1 { alpha } => alpha,
            SaeKind::TopK { .. } => 0.0,
        };
        let inv_rows = 1.0 / rows as f32;
        let norms: Vec<f32> = p
            .w_dec
            .chunks_exact(d)
            .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
            .collect();

        // Loss, and the reconstruction error scaled into the gradient of x̂: 2(x̂ − x)/B.
        let mut loss = 0f64;
        for (e, xr) in ws.x_hat.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let mut sq = 0f32;
            for (e, &x) in e.iter_mut().zip(xr) {
                let diff = *e - x;
                sq += diff * diff;
                *e = 2.0 * diff * inv_rows;
            }
            loss += sq as f64;
        }
        let codes = &mut ws.codes;
        let penalty: f64 = (0..codes.latent.len())
            .map(|e| (codes.value[e] * norms[codes.latent[e] as usize]) as f64)
            .sum();
        loss = (loss + alpha as f64 * penalty) / rows as f64;

        let g = ws.grads.get_or_insert_with(|| Params::zeros(d, n));
        for s in g.slices_mut() {
            s.iter_mut().for_each(|v| *v = 0.0);
        }
        ws.enc_sums.clear();
        ws.enc_sums.resize(n, 0.0);
        let grad_x_hat = &ws.x_hat;
        codes.grad.resize(codes.latent.len(), 0.0);
        for gx in grad_x_hat.chunks_exact(d) {
            g.b_dec.iter_mut().zip(gx).for_each(|(b, v)| *b += v);
        }
        if ws.dense {
            // Dense codes: the four gradient products as matrix products. dL/dc for every
            // latent first (into `pre`, no longer needed), then kept where the latent fired.
            product(grad_x_hat, (rows, d), &p.w_dec, true, &mut ws.pre, false);
            let dpre = &mut ws.dense_codes_grad;
            dpre.clear();
            dpre.resize(rows * n, 0.0);
            for r in 0..rows {
                for e in codes.start[r]..codes.start[r + 1] {
                    let j = codes.latent[e] as usize;
                    let v = ws.pre[r * n + j] + alpha * norms[j] * inv_rows;
                    codes.grad[e] = v;
                    dpre[r * n + j] = v;
                    ws.enc_sums[j] += codes.value[e];
                    g.b_enc[j] += v;
                }
            }
            product_tn(&ws.dense_codes, (rows, n), grad_x_hat, d, &mut g.w_dec);
            product_tn(dpre, (rows, n), &ws.centred, d, &mut g.w_enc_t);
        } else {
            for r in 0..rows {
                let gx = &grad_x_hat[r * d..(r + 1) * d];
                let xc = &ws.centred[r * d..(r + 1) * d];
                for e in codes.start[r]..codes.start[r + 1] {
                    let j = codes.latent[e] as usize;
                    let c = codes.value[e];
                    let dec = &p.w_dec[j * d..(j + 1) * d];
                    // dL/dc through the reconstruction, plus the penalty's α‖W_dec_j‖/B.
                    let dpre = dot(gx, dec) + alpha * norms[j] * inv_rows;
                    codes.grad[e] = dpre;
                    axpy(c, gx, &mut g.w_dec[j * d..(j + 1) * d]);
                    ws.enc_sums[j] += c;
                    g.b_enc[j] += dpre;
                    axpy(dpre, xc, &mut g.w_enc_t[j * d..(j + 1) * d]);
                }
            }
        }
        // The penalty's pull on each decoder row's norm: α/B · Σ_r c_rj · W_dec_j/‖W_dec_j‖.
        if alpha != 0.0 {
            let rows_of = p.w_dec.chunks_exact(d).zip(g.w_dec.chunks_exact_mut(d));
            for ((dec, gd), (&sum, &norm)) in rows_of.zip(ws.enc_sums.iter().zip(&norms)) {
                if sum != 0.0 && norm > 0.0 {
                    axpy(alpha * inv_rows * sum / norm, dec, gd);
                }
            }
        }
        // b_dec also enters through x_c = x − b_dec: minus Σ_r Σ_j dpre_rj W_enc_j, which is
        // Σ_j (dL/db_enc)_j W_enc_j.
        for j in 0..n {
            if g.b_enc[j] != 0.0 {
                axpy(-g.b_enc[j], &p.w_enc_t[j * d..(j + 1) * d], &mut g.b_dec);
            }
        }
        loss
    }

    /// The gradient left by the last [`Sae::gradients`] call.
    pub fn grads<'a>(&self, ws: &'a Workspace) -> Option<&'a Params> {
        ws.grads.as_ref()
    }

    /// torch.optim.Adam's update, element by element.
    fn adam_step(&mut self, grads: &Params, adam: &AdamSettings) {
        self.steps += 1;
        let t = self.steps as i32;
        let bias1 = 1.0 - adam.beta1.powi(t);
        let bias2_sqrt = (1.0 - adam.beta2.powi(t)).sqrt();
        let step_size = adam.lr / bias1;
        let params = self.params.slices_mut();
        let ms = self.m.slices_mut();
        let vs = self.v.slices_mut();
        for (((p, m), v), g) in params.into_iter().zip(ms).zip(vs).zip(grads.slices()) {
            for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                *m = adam.beta1 * *m + (1.0 - adam.beta1) * g;
                *v = adam.beta2 * *v + (1.0 - adam.beta2) * g * g;
                let denom = v.sqrt() / bias2_sqrt + adam.eps;
                *p -= step_size * *m / denom;
            }
        }
    }
}

/// out (+)= a · b, row-major: `a` is [r, k]; `b` is [k, c], or stored as [c, k] when
/// `b_transposed` (then bᵀ is used); `out` is [r, c] (added to when `accumulate`).
fn product(
    a: &[f32],
    (r, k): (usize, usize),
    b: &[f32],
    b_transposed: bool,
    out: &mut [f32],
    accumulate: bool,
) {
    let c = b.len() / k;
    let lhs = MatRef::from_row_major_slice(a, r, k);
    let rhs = if b_transposed {
        MatRef::from_row_major_slice(b, c, k).transpose()
    } else {
        MatRef::from_row_major_slice(b, k, c)
    };
    let dst = MatMut::from_row_major_slice_mut(out, r, c);
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    matmul(dst, accum, lhs, rhs, 1.0f32, Par::Seq);
}

/// out = aᵀ · b: `a` is [rows, n], `b` [rows, d], `out` [n, d].
fn product_tn(a: &[f32], (rows, n): (usize, usize), b: &[f32], d: usize, out: &mut [f32]) {
    let lhs = MatRef::from_row_major_slice(a, rows, n).transpose();
    let rhs = MatRef::from_row_major_slice(b, rows, d);
    let dst = MatMut::from_row_major_slice_mut(out, n, d);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
}

/// Scale every row of `m` ([rows, dim]) to unit length (zero rows stay zero).
pub fn normalise_rows(m: &mut [f32], dim: usize) {
    for row in m.chunks_exact_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
}

/// y += a·x.
#[inline]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, &x)| *y += a * x);
}

/// x · y in eight partial sums, so it vectorises.
#[inline]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xc.zip(yc) {
        for ((acc, a), b) in acc.iter_mut().zip(a).zip(b) {
            *acc += a * b;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: SaeKind) -> (Sae, Vec<f32>) {
        let (d, n, rows) = (5, 7, 12);
        let mut sae = Sae::new(d, n, kind, 3, 0);
        let mut rng = LaneRng::new(99);
        sae.params
            .b_enc
            .iter_mut()
            .for_each(|v| *v = 0.3 * rng.next_normal() as f32);
        sae.params
            .b_dec
            .iter_mut()
            .for_each(|v| *v = 0.2 * rng.next_normal() as f32);
        sae.params
            .w_enc_t
            .iter_mut()
            .for_each(|v| *v += 0.3 * rng.next_normal() as f32);
        let x = (0..rows * d)
            .map(|_| rng.next_normal().max(0.0) as f32)
            .collect();
        (sae, x)
    }

    /// Every analytic gradient entry matches a central finite difference of the loss (f64
    /// steps on f32 weights: a loose relative tolerance; masks checked not to flip).
    #[test]
    fn gradients_match_finite_differences() {
        for (kind, dense) in [
            (SaeKind::L1 { alpha: 0.1 }, false),
            (SaeKind::L1 { alpha: 0.1 }, true),
            (SaeKind::TopK { k: 3 }, false),
            (SaeKind::TopK { k: 3 }, true),
        ] {
            let (sae, x) = problem(kind);
            let mut ws = Workspace {
                force_dense: Some(dense),
                ..Workspace::default()
            };
            sae.gradients(&x, &mut ws, false);
            let grads = ws.grads.clone().unwrap();
            let active = ws.codes.latent.clone();
            let h = 1e-3f32;
            let mut checked = 0;
            for which in 0..4 {
                let len = grads.slices()[which].len();
                for i in 0..len {
                    let mut plus = sae.clone();
                    plus.params.slices_mut()[which][i] += h;
                    let mut minus = sae.clone();
                    minus.params.slices_mut()[which][i] -= h;
                    let mut w = Workspace::default();
                    let lp = plus.gradients(&x, &mut w, false);
                    let same_mask = w.codes.latent == active;
                    let lm = minus.gradients(&x, &mut w, false);
                    if !same_mask || w.codes.latent != active {
                        continue; // the step crossed a kink
                    }
                    let numeric = (lp - lm) / (2.0 * h as f64);
                    let analytic = grads.slices()[which][i] as f64;
                    assert!(
                        (numeric - analytic).abs() < 2e-3 + 2e-2 * analytic.abs(),
                        "{kind:?} param {which} entry {i}: numeric {numeric} analytic {analytic}"
                    );
                    checked += 1;
                }
            }
            // 5·7 + 7 + 7·5 + 5 entries; a kink may skip a few, not most.
            assert!(checked > 70, "{kind:?}: only {checked} entries checked");
        }
    }

    /// The dense and per-pair paths give the same loss and gradients (to rounding).
    #[test]
    fn dense_and_sparse_paths_agree() {
        let (sae, x) = problem(SaeKind::L1 { alpha: 0.05 });
        let run = |dense: bool| {
            let mut ws = Workspace {
                force_dense: Some(dense),
                ..Workspace::default()
            };
            let loss = sae.gradients(&x, &mut ws, false);
            (loss, ws.grads.unwrap(), ws.x_hat)
        };
        let (la, ga, _) = run(false);
        let (lb, gb, _) = run(true);
        assert!((la - lb).abs() < 1e-6 * la.abs().max(1.0));
        for (a, b) in ga.slices().iter().zip(gb.slices()) {
            for (x, y) in a.iter().zip(b.iter()) {
                assert!((x - y).abs() < 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
            }
        }
    }

    /// TopK keeps at most k latents per row, the largest positive ones.
    #[test]
    fn topk_keeps_the_k_largest() {
        let (sae, x) = problem(SaeKind::TopK { k: 2 });
        let mut ws = Workspace::default();
        sae.forward(&x, &mut ws, false);
        for r in 0..ws.codes.rows() {
            let kept = ws.codes.start[r + 1] - ws.codes.start[r];
            assert!(kept <= 2);
            let pre = &ws.pre[r * 7..(r + 1) * 7];
            let mut sorted = pre.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            for e in ws.codes.start[r]..ws.codes.start[r + 1] {
                assert!(ws.codes.value[e] >= sorted[1] && ws.codes.value[e] > 0.0);
            }
        }
    }

    /// Training lowers the loss, keeps decoder rows at unit norm, and the parallel encoder
    /// gives the same bits as the sequential one.
    #[test]
    fn training_lowers_the_loss_and_is_deterministic() {
        let (sae, x) = problem(SaeKind::L1 { alpha: 0.01 });
        let x: Vec<f32> = x.iter().cycle().take(x.len() * 20).copied().collect();
        let run = |parallel: bool| {
            let mut s = sae.clone();
            let mut ws = Workspace::default();
            let adam = AdamSettings {
                lr: 1e-2,
                ..AdamSettings::default()
            };
            let first = s.train_step(&x, &mut ws, &adam, parallel);
            let mut last = first;
            for _ in 0..200 {
                last = s.train_step(&x, &mut ws, &adam, parallel);
            }
            (first, last, s.params)
        };
        let (first, last, params) = run(false);
        assert!(last < 0.5 * first, "{first} -> {last}");
        for row in params.w_dec.chunks_exact(5) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
        assert_eq!(run(true).2, params);
    }
}
