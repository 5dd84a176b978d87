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

use std::sync::OnceLock;

use crate::data::rng::{stream_key, LaneRng, StreamKind};
use crate::model::KernelVariant;

/// Rows per block of the row-wise passes (encode, select, decode): fixed, so results do not
/// depend on the thread count.
const ROW_BLOCK: usize = 128;

/// Above this share of active (row, latent) pairs the decoder and the gradients use dense
/// matrix products instead of per-pair loops (early in training, or at tiny penalties).
const DENSE_SHARE: f64 = 0.1;

/// Latents per block of the weight-gradient pass (fixed, like [`ROW_BLOCK`]).
const LATENT_BLOCK: usize = 32;

/// Elements per task of the Adam update.
const ADAM_CHUNK: usize = 1 << 14;

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

    /// The arrays in a fixed order: W_enc (transposed), b_enc, W_dec, b_dec.
    pub fn slices(&self) -> [&[f32]; 4] {
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
        self.scatter(latents, &mut out);
        out
    }

    /// Write the codes into `out` ([rows, latents], zeroed first).
    fn scatter(&self, latents: usize, out: &mut [f32]) {
        out.iter_mut().for_each(|v| *v = 0.0);
        for r in 0..self.rows() {
            for e in self.start[r]..self.start[r + 1] {
                out[r * latents + self.latent[e] as usize] = self.value[e];
            }
        }
    }

    fn clear(&mut self) {
        self.start.clear();
        self.start.push(0);
        self.latent.clear();
        self.value.clear();
        self.grad.clear();
    }
}

/// The buffers of one block of rows, reused between steps.
#[derive(Clone, Debug, Default)]
struct RowBlock {
    /// The block's active entries (offsets local to the block).
    codes: Codes,
    /// TopK's ordering scratch.
    order: Vec<u32>,
    /// Each row's squared reconstruction error.
    sq: Vec<f32>,
}

/// The active entries of a batch grouped by latent (rows ascending within a latent), for the
/// weight gradients: latent j's entries are `start[j]..start[j + 1]`.
#[derive(Clone, Debug, Default)]
struct ByLatent {
    start: Vec<usize>,
    row: Vec<u32>,
    value: Vec<f32>,
    grad: Vec<f32>,
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
    blocks: Vec<RowBlock>,
    by_latent: ByLatent,
    norms: Vec<f32>,
    grads: Option<Params>,
    dense: bool,
    /// Tests: take the dense (true) or per-pair (false) path whatever the codes.
    force_dense: Option<bool>,
    dense_codes: Vec<f32>,
    dense_codes_grad: Vec<f32>,
}

/// The sizes and settings every block of a pass reads.
#[derive(Clone, Copy)]
struct Dims {
    d: usize,
    n: usize,
    kind: SaeKind,
    variant: KernelVariant,
}

/// Rayon's `for_each` over fixed tasks, spread over threads only when `parallel`: the tasks
/// and their order within each are the same either way, so the results are the same bits.
fn for_each_task<I: IndexedParallelIterator>(
    tasks: I,
    parallel: bool,
    f: impl Fn(I::Item) + Sync + Send,
) {
    if parallel {
        tasks.for_each(f);
    } else {
        tasks.with_min_len(usize::MAX).for_each(f);
    }
}

/// This CPU's kernel variant, detected once.
fn variant() -> KernelVariant {
    static VARIANT: OnceLock<KernelVariant> = OnceLock::new();
    *VARIANT.get_or_init(KernelVariant::detect)
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

    /// An SAE continuing from a saved state: weights, Adam's moments and its step count
    /// (shapes checked by the caller, as [`Sae::from_params`] asserts).
    pub fn from_state(
        dim: usize,
        latents: usize,
        kind: SaeKind,
        params: Params,
        (m, v, steps): (Params, Params, u64),
    ) -> Self {
        assert!(m
            .slices()
            .iter()
            .zip(params.slices())
            .all(|(a, b)| a.len() == b.len()));
        assert!(v
            .slices()
            .iter()
            .zip(params.slices())
            .all(|(a, b)| a.len() == b.len()));
        Sae {
            m,
            v,
            steps,
            ..Sae::from_params(dim, latents, kind, params)
        }
    }

    /// Adam's first and second moments and the steps taken.
    pub fn adam_state(&self) -> (&Params, &Params, u64) {
        (&self.m, &self.v, self.steps)
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

    /// The sizes and settings the blocks of a pass read.
    fn dims(&self) -> Dims {
        Dims {
            d: self.dim,
            n: self.latents,
            kind: self.kind,
            variant: variant(),
        }
    }

    /// Encode and decode `x` ([rows, d]): codes in `ws.codes`, reconstruction in `ws.x_hat`.
    /// `parallel` spreads the blocks of rows over threads (same result).
    pub fn forward(&self, x: &[f32], ws: &mut Workspace, parallel: bool) {
        self.encode(x, ws, parallel);
        self.decode(x, None, ws, parallel);
        gather_codes(ws);
    }

    /// Centre, encode and select every block of rows (see [`encode_block`]).
    fn encode(&self, x: &[f32], ws: &mut Workspace, parallel: bool) {
        let dims = self.dims();
        let (d, n) = (dims.d, dims.n);
        let rows = x.len() / d;
        ws.centred.resize(rows * d, 0.0);
        ws.pre.resize(rows * n, 0.0);
        ws.blocks
            .resize_with(rows.div_ceil(ROW_BLOCK), RowBlock::default);
        let p = &self.params;
        let tasks = ws
            .blocks
            .par_iter_mut()
            .zip(x.par_chunks(ROW_BLOCK * d))
            .zip(ws.centred.par_chunks_mut(ROW_BLOCK * d))
            .zip(ws.pre.par_chunks_mut(ROW_BLOCK * n));
        for_each_task(tasks, parallel, |(((block, x), centred), pre)| {
            dims.variant.run(
                #[inline(always)]
                || encode_block(p, dims, x, centred, pre, block),
            )
        });
    }

    /// Decode every block of rows, through the active latents only, or as a product when the
    /// codes are dense (chosen over the whole batch). With `terms`, also the loss's gradient
    /// with respect to x̂ (left in `ws.x_hat`) and to every active pre-activation.
    fn decode(&self, x: &[f32], terms: Option<&LossTerms>, ws: &mut Workspace, parallel: bool) {
        let dims = self.dims();
        let (d, n) = (dims.d, dims.n);
        let rows = x.len() / d;
        let active: usize = ws.blocks.iter().map(|b| b.codes.latent.len()).sum();
        ws.dense = ws
            .force_dense
            .unwrap_or(active as f64 > DENSE_SHARE * (rows * n) as f64);
        ws.x_hat.resize(rows * d, 0.0);
        let p = &self.params;
        let blocks = ws
            .blocks
            .par_iter_mut()
            .zip(x.par_chunks(ROW_BLOCK * d))
            .zip(ws.x_hat.par_chunks_mut(ROW_BLOCK * d));
        if ws.dense {
            ws.dense_codes.resize(rows * n, 0.0);
            // dL/dpre only with gradients (scoring many rows need not hold it).
            ws.dense_codes_grad
                .resize(if terms.is_some() { rows * n } else { 0 }, 0.0);
            let tasks = blocks
                .zip(ws.pre.par_chunks_mut(ROW_BLOCK * n))
                .zip(ws.dense_codes.par_chunks_mut(ROW_BLOCK * n));
            let decode = |((((b, x), x_hat), pre), codes), grad: &mut [f32]| {
                dims.variant.run(
                    #[inline(always)]
                    || decode_block_dense(p, dims, terms, x, x_hat, b, (codes, pre, grad)),
                )
            };
            if terms.is_some() {
                let tasks = tasks.zip(ws.dense_codes_grad.par_chunks_mut(ROW_BLOCK * n));
                for_each_task(tasks, parallel, |(task, grad)| decode(task, grad));
            } else {
                for_each_task(tasks, parallel, |task| decode(task, &mut []));
            }
        } else {
            for_each_task(blocks, parallel, |((b, x), x_hat)| {
                dims.variant.run(
                    #[inline(always)]
                    || decode_block(p, dims, terms, x, x_hat, b),
                )
            });
        }
    }

    /// One training step on the batch `x` ([rows, d]): forward, backward, Adam, decoder
    /// renormalisation. Returns the loss before the step. `parallel` spreads each pass over
    /// threads (same result).
    pub fn train_step(
        &mut self,
        x: &[f32],
        ws: &mut Workspace,
        adam: &AdamSettings,
        parallel: bool,
    ) -> f64 {
        let loss = self.gradients(x, ws, parallel);
        let grads = ws.grads.take().expect("gradients computed");
        self.adam_step(&grads, adam, parallel);
        ws.grads = Some(grads);
        let (d, variant) = (self.dim, variant());
        let rows = self.params.w_dec.par_chunks_mut(LATENT_BLOCK * d);
        for_each_task(rows, parallel, |w| {
            variant.run(
                #[inline(always)]
                || normalise_rows(w, d),
            )
        });
        loss
    }

    /// The loss on `x` and its gradient, left in the workspace (see [`Sae::grads`]).
    ///
    /// Three passes: over blocks of rows (encode, decode, the gradient of x̂ and of each
    /// active pre-activation), over blocks of latents (the gradients of W_dec, W_enc and
    /// b_enc, each latent summing its rows in order), then b_dec's.
    pub fn gradients(&self, x: &[f32], ws: &mut Workspace, parallel: bool) -> f64 {
        let dims = self.dims();
        let (d, n) = (dims.d, dims.n);
        let rows = x.len() / d;
        let p = &self.params;
        let alpha = match self.kind {
            SaeKind::L1 { alpha } => alpha,
            SaeKind::TopK { .. } => 0.0,
        };
        let mut norms = std::mem::take(&mut ws.norms);
        norms.resize(n, 0.0);
        let tasks = norms
            .par_chunks_mut(LATENT_BLOCK)
            .zip(p.w_dec.par_chunks(LATENT_BLOCK * d));
        for_each_task(tasks, parallel, |(norms, w)| {
            dims.variant.run(
                #[inline(always)]
                || {
                    for (norm, row) in norms.iter_mut().zip(w.chunks_exact(d)) {
                        *norm = dot(row, row).sqrt();
                    }
                },
            )
        });
        let terms = LossTerms {
            alpha,
            inv_rows: 1.0 / rows as f32,
            norms: &norms,
        };

        // Rows: encode, decode, dL/dx̂ and dL/dpre of every active entry.
        self.encode(x, ws, parallel);
        self.decode(x, Some(&terms), ws, parallel);
        gather_codes(ws);
        // The loss: squared errors row by row, then the penalty α Σ c_rj ‖W_dec_j‖, over B.
        let mut loss = 0f64;
        for b in &ws.blocks {
            b.sq.iter().for_each(|&s| loss += s as f64);
        }
        let codes = &ws.codes;
        let penalty: f64 = (0..codes.latent.len())
            .map(|e| (codes.value[e] * norms[codes.latent[e] as usize]) as f64)
            .sum();
        loss = (loss + alpha as f64 * penalty) / rows as f64;

        // Latents: the weight gradients from each latent's entries.
        group_by_latent(&ws.codes, n, &mut ws.by_latent);
        let g = ws.grads.get_or_insert_with(|| Params::zeros(d, n));
        let dense = ws
            .dense
            .then_some((&ws.dense_codes[..], &ws.dense_codes_grad[..]));
        let (by_latent, grad_x_hat, centred) = (&ws.by_latent, &ws.x_hat[..], &ws.centred[..]);
        let tasks = g
            .w_dec
            .par_chunks_mut(LATENT_BLOCK * d)
            .zip(g.w_enc_t.par_chunks_mut(LATENT_BLOCK * d))
            .zip(g.b_enc.par_chunks_mut(LATENT_BLOCK))
            .enumerate();
        for_each_task(tasks, parallel, |(b, ((gd, ge), gb))| {
            let block = LatentGrads {
                first: b * LATENT_BLOCK,
                w_dec: gd,
                w_enc_t: ge,
                b_enc: gb,
            };
            dims.variant.run(
                #[inline(always)]
                || {
                    latent_block(
                        p, dims, &terms, by_latent, grad_x_hat, centred, dense, block,
                    )
                },
            )
        });

        // b_dec: Σ_r dL/dx̂_r, and through x_c = x − b_dec, minus Σ_j (dL/db_enc)_j W_enc_j.
        dims.variant.run(
            #[inline(always)]
            || {
                g.b_dec.iter_mut().for_each(|v| *v = 0.0);
                for gx in grad_x_hat.chunks_exact(d) {
                    g.b_dec.iter_mut().zip(gx).for_each(|(b, v)| *b += v);
                }
                for j in 0..n {
                    if g.b_enc[j] != 0.0 {
                        axpy(-g.b_enc[j], &p.w_enc_t[j * d..(j + 1) * d], &mut g.b_dec);
                    }
                }
            },
        );
        ws.norms = norms;
        loss
    }

    /// The gradient left by the last [`Sae::gradients`] call.
    pub fn grads<'a>(&self, ws: &'a Workspace) -> Option<&'a Params> {
        ws.grads.as_ref()
    }

    /// torch.optim.Adam's update, element by element.
    fn adam_step(&mut self, grads: &Params, adam: &AdamSettings, parallel: bool) {
        self.steps += 1;
        let t = self.steps as i32;
        let bias1 = 1.0 - adam.beta1.powi(t);
        let bias2_sqrt = (1.0 - adam.beta2.powi(t)).sqrt();
        let step_size = adam.lr / bias1;
        let variant = variant();
        let params = self.params.slices_mut();
        let ms = self.m.slices_mut();
        let vs = self.v.slices_mut();
        for (((p, m), v), g) in params.into_iter().zip(ms).zip(vs).zip(grads.slices()) {
            let tasks = p
                .par_chunks_mut(ADAM_CHUNK)
                .zip(m.par_chunks_mut(ADAM_CHUNK))
                .zip(v.par_chunks_mut(ADAM_CHUNK))
                .zip(g.par_chunks(ADAM_CHUNK));
            for_each_task(tasks, parallel, |(((p, m), v), g)| {
                variant.run(
                    #[inline(always)]
                    || {
                        for (((p, m), v), &g) in
                            p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g)
                        {
                            *m = adam.beta1 * *m + (1.0 - adam.beta1) * g;
                            *v = adam.beta2 * *v + (1.0 - adam.beta2) * g * g;
                            let denom = v.sqrt() / bias2_sqrt + adam.eps;
                            *p -= step_size * *m / denom;
                        }
                    },
                )
            });
        }
    }
}

/// What the gradient passes need besides the weights.
struct LossTerms<'a> {
    /// The L1 coefficient (0 for TopK).
    alpha: f32,
    /// 1 / B.
    inv_rows: f32,
    /// ‖W_dec_j‖ of every latent.
    norms: &'a [f32],
}

/// Centre, encode and select, for one block of rows: x_c = x − b_dec, pre = x_c W_encᵀ +
/// b_enc (the one dense product of a step), and each row's active latents into
/// `block.codes`.
#[inline(always)]
fn encode_block(
    p: &Params,
    dims: Dims,
    x: &[f32],
    centred: &mut [f32],
    pre: &mut [f32],
    block: &mut RowBlock,
) {
    let Dims { d, n, kind, .. } = dims;
    let rows = x.len() / d;
    for (c, xr) in centred.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        for ((c, &x), &b) in c.iter_mut().zip(xr).zip(&p.b_dec) {
            *c = x - b;
        }
    }
    let enc = MatRef::from_row_major_slice(&p.w_enc_t, n, d);
    let lhs = MatRef::from_row_major_slice(centred, rows, d);
    let dst = MatMut::from_row_major_slice_mut(pre, rows, n);
    matmul(dst, Accum::Replace, lhs, enc.transpose(), 1.0f32, Par::Seq);
    let RowBlock { codes, order, .. } = block;
    codes.clear();
    for row in pre.chunks_exact_mut(n) {
        row.iter_mut().zip(&p.b_enc).for_each(|(v, b)| *v += b);
        let row = &*row;
        match kind {
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
                order.clear();
                order.extend(0..n as u32);
                // Largest first; ties go to the lower index.
                let by_value =
                    |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
                if k < n {
                    order.select_nth_unstable_by(k, by_value);
                }
                order[..k].sort_unstable();
                for &j in &order[..k] {
                    if row[j as usize] > 0.0 {
                        codes.latent.push(j);
                        codes.value.push(row[j as usize]);
                    }
                }
            }
        }
        codes.start.push(codes.latent.len());
    }
}

/// Decode one block of rows through its active latents: x̂_r = b_dec + Σ_j c_rj W_dec_j.
/// With `terms`, x̂ is then replaced by dL/dx̂ = 2(x̂ − x)/B, each row's squared error is
/// kept, and each entry gets dL/dpre = dL/dx̂ · W_dec_j + α‖W_dec_j‖/B.
#[inline(always)]
fn decode_block(
    p: &Params,
    dims: Dims,
    terms: Option<&LossTerms>,
    x: &[f32],
    x_hat: &mut [f32],
    block: &mut RowBlock,
) {
    let d = dims.d;
    let RowBlock { codes, sq, .. } = block;
    codes.grad.clear();
    sq.clear();
    for (r, (out, xr)) in x_hat.chunks_exact_mut(d).zip(x.chunks_exact(d)).enumerate() {
        out.copy_from_slice(&p.b_dec);
        let entries = codes.start[r]..codes.start[r + 1];
        for e in entries.clone() {
            let j = codes.latent[e] as usize;
            axpy(codes.value[e], &p.w_dec[j * d..(j + 1) * d], out);
        }
        if let Some(t) = terms {
            sq.push(error_into_gradient(out, xr, t.inv_rows));
            for e in entries {
                let j = codes.latent[e] as usize;
                let dec = &p.w_dec[j * d..(j + 1) * d];
                codes
                    .grad
                    .push(dot(out, dec) + t.alpha * t.norms[j] * t.inv_rows);
            }
        }
    }
}

/// [`decode_block`] with dense products, for dense codes: `dense` is the block's code matrix,
/// dL/dc for every latent (in the no longer needed pre-activations), and dL/dpre (zero where
/// a latent did not fire), each [rows, D].
#[inline(always)]
fn decode_block_dense(
    p: &Params,
    dims: Dims,
    terms: Option<&LossTerms>,
    x: &[f32],
    x_hat: &mut [f32],
    block: &mut RowBlock,
    (codes_dense, grad_codes, grad_pre): (&mut [f32], &mut [f32], &mut [f32]),
) {
    let (d, n) = (dims.d, dims.n);
    let rows = x.len() / d;
    let RowBlock { codes, sq, .. } = block;
    codes.scatter(n, codes_dense);
    for out in x_hat.chunks_exact_mut(d) {
        out.copy_from_slice(&p.b_dec);
    }
    product(codes_dense, (rows, n), &p.w_dec, false, x_hat, true);
    codes.grad.clear();
    sq.clear();
    let Some(t) = terms else { return };
    for (out, xr) in x_hat.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        sq.push(error_into_gradient(out, xr, t.inv_rows));
    }
    product(x_hat, (rows, d), &p.w_dec, true, grad_codes, false);
    grad_pre.iter_mut().for_each(|v| *v = 0.0);
    for r in 0..rows {
        for e in codes.start[r]..codes.start[r + 1] {
            let j = codes.latent[e] as usize;
            let v = grad_codes[r * n + j] + t.alpha * t.norms[j] * t.inv_rows;
            codes.grad.push(v);
            grad_pre[r * n + j] = v;
        }
    }
}

/// Replace the reconstruction `out` by dL/dx̂ = 2(x̂ − x)/B; returns ‖x̂ − x‖².
#[inline(always)]
fn error_into_gradient(out: &mut [f32], x: &[f32], inv_rows: f32) -> f32 {
    // Eight partial sums, as in `dot`, so the loop vectorises.
    let mut acc = [0f32; 8];
    let mut tail = 0f32;
    let (mut oc, mut xc) = (out.chunks_exact_mut(8), x.chunks_exact(8));
    for (o, x) in (&mut oc).zip(&mut xc) {
        for ((e, &x), acc) in o.iter_mut().zip(x).zip(acc.iter_mut()) {
            let diff = *e - x;
            *acc += diff * diff;
            *e = 2.0 * diff * inv_rows;
        }
    }
    for (e, &x) in oc.into_remainder().iter_mut().zip(xc.remainder()) {
        let diff = *e - x;
        tail += diff * diff;
        *e = 2.0 * diff * inv_rows;
    }
    acc.iter().sum::<f32>() + tail
}

/// Concatenate the blocks' codes into `ws.codes` (row-major over the whole batch).
fn gather_codes(ws: &mut Workspace) {
    let codes = &mut ws.codes;
    codes.clear();
    for b in &ws.blocks {
        let base = codes.latent.len();
        codes
            .start
            .extend(b.codes.start[1..].iter().map(|s| base + s));
        codes.latent.extend_from_slice(&b.codes.latent);
        codes.value.extend_from_slice(&b.codes.value);
        codes.grad.extend_from_slice(&b.codes.grad);
    }
}

/// Regroup the entries of `codes` by latent, rows ascending within each (a counting sort).
fn group_by_latent(codes: &Codes, latents: usize, out: &mut ByLatent) {
    let entries = codes.latent.len();
    out.start.clear();
    out.start.resize(latents + 1, 0);
    for &j in &codes.latent {
        out.start[j as usize + 1] += 1;
    }
    for j in 0..latents {
        out.start[j + 1] += out.start[j];
    }
    out.row.resize(entries, 0);
    out.value.resize(entries, 0.0);
    out.grad.resize(entries, 0.0);
    // `next[j]` is latent j's next free slot; borrow the `start` of the next latent as it.
    let mut next = std::mem::take(&mut out.start);
    for r in 0..codes.rows() {
        for e in codes.start[r]..codes.start[r + 1] {
            let j = codes.latent[e] as usize;
            let slot = next[j];
            next[j] += 1;
            out.row[slot] = r as u32;
            out.value[slot] = codes.value[e];
            out.grad[slot] = codes.grad[e];
        }
    }
    // After the fill next[j] = end of latent j = start of j + 1: shift back by one.
    next.copy_within(0..latents, 1);
    next[0] = 0;
    out.start = next;
}

/// One block of latents' gradient rows.
struct LatentGrads<'a> {
    /// Index of the block's first latent.
    first: usize,
    w_dec: &'a mut [f32],
    w_enc_t: &'a mut [f32],
    b_enc: &'a mut [f32],
}

/// The weight gradients of one block of latents, each from its entries in row order:
/// dW_dec_j = Σ_r c_rj dL/dx̂_r (+ the penalty's pull on ‖W_dec_j‖), dW_enc_j = Σ_r
/// dL/dpre_rj x_c,r, db_enc_j = Σ_r dL/dpre_rj. With `dense` codes the two sums over rows are
/// products instead.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn latent_block(
    p: &Params,
    dims: Dims,
    terms: &LossTerms,
    by_latent: &ByLatent,
    grad_x_hat: &[f32],
    centred: &[f32],
    dense: Option<(&[f32], &[f32])>,
    out: LatentGrads,
) {
    let (d, n) = (dims.d, dims.n);
    let count = out.b_enc.len();
    let first = out.first;
    if let Some((codes, grad_pre)) = dense {
        let rows = grad_x_hat.len() / d;
        let gx = MatRef::from_row_major_slice(grad_x_hat, rows, d);
        let xc = MatRef::from_row_major_slice(centred, rows, d);
        let c = MatRef::from_row_major_slice(codes, rows, n).subcols(first, count);
        let g = MatRef::from_row_major_slice(grad_pre, rows, n).subcols(first, count);
        let dst = MatMut::from_row_major_slice_mut(out.w_dec, count, d);
        matmul(dst, Accum::Replace, c.transpose(), gx, 1.0f32, Par::Seq);
        let dst = MatMut::from_row_major_slice_mut(out.w_enc_t, count, d);
        matmul(dst, Accum::Replace, g.transpose(), xc, 1.0f32, Par::Seq);
    } else {
        out.w_dec.iter_mut().for_each(|v| *v = 0.0);
        out.w_enc_t.iter_mut().for_each(|v| *v = 0.0);
    }
    for (i, j) in (first..first + count).enumerate() {
        let gd = &mut out.w_dec[i * d..(i + 1) * d];
        let ge = &mut out.w_enc_t[i * d..(i + 1) * d];
        let (mut b, mut sum) = (0f32, 0f32);
        for e in by_latent.start[j]..by_latent.start[j + 1] {
            let r = by_latent.row[e] as usize;
            let (c, dpre) = (by_latent.value[e], by_latent.grad[e]);
            if dense.is_none() {
                axpy(c, &grad_x_hat[r * d..(r + 1) * d], gd);
                axpy(dpre, &centred[r * d..(r + 1) * d], ge);
            }
            b += dpre;
            sum += c;
        }
        out.b_enc[i] = b;
        // The penalty's pull on the decoder row's norm: α/B · Σ_r c_rj · W_dec_j/‖W_dec_j‖.
        let norm = terms.norms[j];
        if terms.alpha != 0.0 && sum != 0.0 && norm > 0.0 {
            let dec = &p.w_dec[j * d..(j + 1) * d];
            axpy(terms.alpha * terms.inv_rows * sum / norm, dec, gd);
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

/// Scale every row of `m` ([rows, dim]) to unit length (zero rows stay zero).
#[inline(always)]
pub fn normalise_rows(m: &mut [f32], dim: usize) {
    for row in m.chunks_exact_mut(dim) {
        let norm = dot(row, row).sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
}

/// y += a·x.
#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, &x)| *y += a * x);
}

/// x · y in eight partial sums, so it vectorises.
#[inline(always)]
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
        sized_problem(kind, (5, 7, 12))
    }

    /// An SAE with perturbed weights and biases, and `rows` inputs, for sizes (d, D, rows).
    fn sized_problem(kind: SaeKind, (d, n, rows): (usize, usize, usize)) -> (Sae, Vec<f32>) {
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

    /// The dense and per-pair paths give the same loss and gradients (to rounding), and each
    /// gives the same bits on one thread and on several: one block of rows and latents, and
    /// several with partial last blocks (300 rows, 70 latents).
    #[test]
    fn dense_and_sparse_paths_agree() {
        for sizes in [(5, 7, 12), (9, 70, 300)] {
            let (sae, x) = sized_problem(SaeKind::L1 { alpha: 0.05 }, sizes);
            let run = |dense: bool, parallel: bool| {
                let mut ws = Workspace {
                    force_dense: Some(dense),
                    ..Workspace::default()
                };
                let loss = sae.gradients(&x, &mut ws, parallel);
                (loss, ws.grads.unwrap(), ws.x_hat)
            };
            let (la, ga, xa) = run(false, false);
            let (lb, gb, _) = run(true, false);
            assert!((la - lb).abs() < 1e-6 * la.abs().max(1.0));
            for (a, b) in ga.slices().iter().zip(gb.slices()) {
                for (x, y) in a.iter().zip(b.iter()) {
                    assert!(
                        (x - y).abs() < 1e-5 * (1.0 + x.abs()),
                        "{sizes:?}: {x} vs {y}"
                    );
                }
            }
            for dense in [false, true] {
                let (l1, g1, x1) = run(dense, false);
                let (l2, g2, x2) = run(dense, true);
                assert_eq!((l1, &g1, &x1), (l2, &g2, &x2), "{sizes:?} dense {dense}");
            }
            // Forward alone reconstructs what the step's forward did (on the per-pair path).
            let mut ws = Workspace::default();
            sae.forward(&x, &mut ws, true);
            let rows = sizes.2 as f32;
            let grad_x_hat: Vec<f32> = ws
                .x_hat
                .iter()
                .zip(&x)
                .map(|(h, x)| 2.0 * (h - x) / rows)
                .collect();
            for (a, b) in grad_x_hat.iter().zip(&xa) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
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
