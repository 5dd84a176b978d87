//! Vector packings: how many almost-orthogonal directions fit in `d` dimensions.
//!
//! The paper's intuition for superposition: only `d` vectors are exactly orthogonal in `d`
//! dimensions, but exponentially many (in d·ε²) are *almost* orthogonal, |cos| ≤ ε. This module
//! measures that with numbers instead of pictures:
//!
//! * the bounds: Welch's lower bound on the largest |cos| of N unit vectors, the cap on N it
//!   implies for a window ε, and the random construction's guarantee exp(d·ε²/4);
//! * random packings (Gaussian, and random signs ±1/√d) and their cosine statistics;
//! * optimised packings: projected gradient descent on the sphere of Σ_{i≠j} (c_ij/c_max)^{2p},
//!   a smooth surrogate of the largest |cos| that only the closest pairs feel;
//! * capacity: the largest N an optimised packing keeps within a window, searched by doubling
//!   and bisection.
//!
//! Gram matrices (N² · d multiply-adds) go through `faer` in fixed blocks of rows, one block
//! per task: results do not depend on the thread count. They may differ in the last bits
//! between CPUs with different vector units (faer picks its kernels at run time).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::ground_truth::erfc;
use crate::data::rng::{stream_key, LaneRng, StreamKind};

/// Rows of the Gram matrix computed per task (fixed, so results do not depend on threads).
const BLOCK: usize = 128;

/// Width of the angle histogram's bins, in degrees.
pub const BIN_DEGREES: f64 = 0.25;

/// Bins of the angle histogram over [0°, 180°].
pub const BINS: usize = (180.0 / BIN_DEGREES) as usize;

// ---------------------------------------------------------------------------------------------
// Bounds

/// The half-width ε = sin(δ) in |cos| of the window 90° ± δ (`degrees`).
pub fn window_cos(degrees: f64) -> f64 {
    degrees.to_radians().sin()
}

/// The angle in degrees (in [0°, 90°]) between two lines whose |cos| is `abs_cos`.
pub fn line_angle(abs_cos: f64) -> f64 {
    abs_cos.clamp(0.0, 1.0).acos().to_degrees()
}

/// Welch's bound: any `count` unit vectors in `dim` dimensions have some pair with
/// |cos| ≥ sqrt((N − d) / (d (N − 1))); 0 when N ≤ d (an orthonormal set exists).
pub fn welch_bound(count: usize, dim: usize) -> f64 {
    if count <= dim || dim == 0 {
        return 0.0;
    }
    let (n, d) = (count as f64, dim as f64);
    ((n - d) / (d * (n - 1.0))).sqrt()
}

/// Levenshtein's bound for lines in real space: beyond d(d+1)/2 vectors (where Gerzon's bound
/// rules out equiangular lines, so Welch's bound cannot be met) any `count` unit vectors in
/// `dim` dimensions have some pair with |cos| ≥ sqrt((3N − d² − 2d) / ((d + 2)(N − d))).
/// The formula gives Welch's value, 1/√(d+2), at N = d(d+1)/2 and more beyond; at or below
/// that count it does not apply and this returns 0. (The orthoplex bound 1/√d is larger
/// still for a few counts just above d(d+1)/2: up to N ≈ 5,100 for d = 100; not used.)
pub fn levenshtein_bound(count: usize, dim: usize) -> f64 {
    let (n, d) = (count as f64, dim as f64);
    if dim == 0 || n <= d * (d + 1.0) / 2.0 {
        return 0.0;
    }
    ((3.0 * n - d * d - 2.0 * d) / ((d + 2.0) * (n - d))).sqrt()
}

/// The best of the two lower bounds on the largest |cos| of `count` unit vectors in `dim`
/// dimensions: Welch's, or Levenshtein's where it is larger (beyond d(d+1)/2 vectors).
pub fn line_packing_bound(count: usize, dim: usize) -> f64 {
    welch_bound(count, dim).max(levenshtein_bound(count, dim))
}

/// The most unit vectors Welch's bound allows in `dim` dimensions with every |cos| ≤ `eps`:
/// d (1 − ε²) / (1 − d ε²), rounded down; `None` (no cap) once d ε² ≥ 1.
pub fn welch_cap(dim: usize, eps: f64) -> Option<u64> {
    let (d, e2) = (dim as f64, eps * eps);
    if d * e2 >= 1.0 {
        return None;
    }
    // A hair of slack so that exact cases (N = d + 1 at ε = 1/d) are not lost to rounding.
    Some((d * (1.0 - e2) / (1.0 - d * e2) + 1e-9).floor() as u64)
}

/// The random construction's guarantee: with cos ≈ N(0, 1/d) and P(|cos| ≥ ε) ≤ 2 exp(−d ε²/2),
/// a union bound over the N²/2 pairs leaves room for N ≈ exp(d ε²/4) vectors in the window.
pub fn random_guarantee(dim: usize, eps: f64) -> f64 {
    (dim as f64 * eps * eps / 4.0).exp()
}

/// The probability that one pair of random unit vectors in `dim` dimensions falls outside the
/// window |cos| ≤ `eps` (normal approximation, cos ≈ N(0, 1/d)).
pub fn random_pair_outside(dim: usize, eps: f64) -> f64 {
    erfc(eps * (dim as f64 / 2.0).sqrt())
}

// ---------------------------------------------------------------------------------------------
// Packings

/// `count` unit vectors in `dim` dimensions, row-major (`vectors[i * dim + k]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Packing {
    /// Dimensions.
    pub dim: usize,
    /// Number of vectors.
    pub count: usize,
    /// The vectors, one row each, unit norm.
    pub vectors: Vec<f32>,
}

/// How random vectors are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RandomKind {
    /// Gaussian coordinates, normalised: uniform on the sphere.
    Gaussian,
    /// Coordinates ±1/√d with equal probability.
    Sign,
}

impl RandomKind {
    /// Name in tables and figures.
    pub fn name(self) -> &'static str {
        match self {
            RandomKind::Gaussian => "gaussian",
            RandomKind::Sign => "sign",
        }
    }
}

impl Packing {
    /// Wrap row-major `vectors` (count × dim), normalising every row; a zero row becomes the
    /// first basis vector, so every row is a unit vector.
    ///
    /// # Panics
    /// When `dim` is 0 or does not divide the number of values.
    pub fn from_rows(dim: usize, mut vectors: Vec<f32>) -> Self {
        assert!(
            dim > 0 && vectors.len().is_multiple_of(dim),
            "rows of {dim} values"
        );
        let count = vectors.len() / dim;
        for row in vectors.chunks_exact_mut(dim) {
            normalise(row);
        }
        Packing {
            dim,
            count,
            vectors,
        }
    }

    /// `count` random unit vectors drawn from the stream of (`seed`, `stream`).
    pub fn random(kind: RandomKind, count: usize, dim: usize, seed: u64, stream: u64) -> Self {
        let mut rng = LaneRng::new(stream_key(seed, stream, StreamKind::Packing));
        let scale = 1.0 / (dim as f64).sqrt();
        let vectors: Vec<f32> = (0..count * dim)
            .map(|_| match kind {
                RandomKind::Gaussian => rng.next_normal() as f32,
                RandomKind::Sign => {
                    if rng.next_f64() < 0.5 {
                        scale as f32
                    } else {
                        -scale as f32
                    }
                }
            })
            .collect();
        Packing::from_rows(dim, vectors)
    }

    /// Vector `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

fn normalise(row: &mut [f32]) {
    let norm = row.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        let inv = (1.0 / norm) as f32;
        row.iter_mut().for_each(|x| *x *= inv);
    } else {
        row.iter_mut().for_each(|x| *x = 0.0);
        row[0] = 1.0;
    }
}

/// The rows `rows` of the Gram matrix V Vᵀ, from column `from` on, row-major into `out`
/// (`rows.len() × (count − from)`).
fn gram_rows(p: &Packing, rows: std::ops::Range<usize>, from: usize, out: &mut [f32]) {
    let lhs = MatRef::from_row_major_slice(
        &p.vectors[rows.start * p.dim..rows.end * p.dim],
        rows.len(),
        p.dim,
    );
    let cols = MatRef::from_row_major_slice(&p.vectors[from * p.dim..], p.count - from, p.dim);
    let dst = MatMut::from_row_major_slice_mut(out, rows.len(), p.count - from);
    matmul(dst, Accum::Replace, lhs, cols.transpose(), 1.0f32, Par::Seq);
}

/// Apply `f` to every block of rows of the Gram matrix, in parallel; the results come back
/// in block order. `f` gets the block's first row and its rows of length `count − from`,
/// column `from` first: `from` is 0 for whole rows, or the first row itself when `upper`
/// (the pairs j ≥ i suffice for statistics, and cost half the products).
fn map_gram_blocks<T: Send>(
    p: &Packing,
    upper: bool,
    f: impl Fn(usize, usize, &[f32]) -> T + Sync,
) -> Vec<T> {
    let starts: Vec<usize> = (0..p.count).step_by(BLOCK).collect();
    starts
        .into_par_iter()
        .map_init(Vec::new, |buf: &mut Vec<f32>, start| {
            let end = (start + BLOCK).min(p.count);
            let from = if upper { start } else { 0 };
            buf.resize((end - start) * (p.count - from), 0.0);
            gram_rows(p, start..end, from, buf);
            f(start, from, buf)
        })
        .collect()
}

/// Statistics of the pairwise cosines of a packing (every unordered pair once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CosineStats {
    /// Vectors.
    pub count: usize,
    /// Dimensions.
    pub dim: usize,
    /// The largest |cos| over pairs.
    pub max_abs_cos: f64,
    /// The angle between the closest pair of lines, degrees (90° − it is the window needed).
    pub min_angle: f64,
    /// The pair with the largest |cos|.
    pub closest_pair: (usize, usize),
    /// Mean cosine.
    pub mean: f64,
    /// Standard deviation of the cosines (≈ 1/√d for random vectors).
    pub std: f64,
    /// Pairs per angle bin of [`BIN_DEGREES`] over [0°, 180°] (angles, not lines).
    pub histogram: Vec<u64>,
}

impl CosineStats {
    /// Share of pairs whose angle lies in 90° ± `degrees`.
    pub fn share_within(&self, degrees: f64) -> f64 {
        let (lo, hi) = (90.0 - degrees, 90.0 + degrees);
        let total: u64 = self.histogram.iter().sum();
        let inside: u64 = self
            .histogram
            .iter()
            .enumerate()
            .filter(|(b, _)| {
                let centre = (*b as f64 + 0.5) * BIN_DEGREES;
                centre > lo && centre < hi
            })
            .map(|(_, &c)| c)
            .sum();
        inside as f64 / total.max(1) as f64
    }
}

/// Cosine statistics of every pair of `p` (exact: the whole Gram matrix, block by block).
pub fn cosine_stats(p: &Packing) -> CosineStats {
    struct Part {
        max: (f32, usize, usize),
        sum: f64,
        sum_sq: f64,
        histogram: Vec<u64>,
    }
    let parts = map_gram_blocks(p, true, |start, from, block| {
        let mut part = Part {
            max: (-1.0, 0, 0),
            sum: 0.0,
            sum_sq: 0.0,
            histogram: vec![0; BINS],
        };
        for (r, row) in block.chunks_exact(p.count - from).enumerate() {
            let i = start + r;
            for (k, &c) in row.iter().enumerate().skip(i + 1 - from) {
                let j = from + k;
                let c = c.clamp(-1.0, 1.0);
                if c.abs() > part.max.0 {
                    part.max = (c.abs(), i, j);
                }
                part.sum += c as f64;
                part.sum_sq += c as f64 * c as f64;
                let angle = (c as f64).acos().to_degrees();
                part.histogram[((angle / BIN_DEGREES) as usize).min(BINS - 1)] += 1;
            }
        }
        part
    });
    let pairs = (p.count * p.count.saturating_sub(1) / 2).max(1) as f64;
    let mut max = (0.0f32, 0, 0);
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    let mut histogram = vec![0u64; BINS];
    for part in &parts {
        if part.max.0 > max.0 {
            max = part.max;
        }
        sum += part.sum;
        sum_sq += part.sum_sq;
        histogram
            .iter_mut()
            .zip(&part.histogram)
            .for_each(|(h, c)| *h += c);
    }
    let mean = sum / pairs;
    CosineStats {
        count: p.count,
        dim: p.dim,
        max_abs_cos: max.0 as f64,
        min_angle: line_angle(max.0 as f64),
        closest_pair: (max.1, max.2),
        mean,
        std: (sum_sq / pairs - mean * mean).max(0.0).sqrt(),
        histogram,
    }
}

/// The largest |cos| over pairs of `p`, exactly (0 for fewer than two vectors).
pub fn max_abs_cos(p: &Packing) -> f64 {
    map_gram_blocks(p, true, |start, from, block| {
        let mut max = 0.0f32;
        for (r, row) in block.chunks_exact(p.count - from).enumerate() {
            for &c in &row[start + r + 1 - from..] {
                max = max.max(c.abs());
            }
        }
        max
    })
    .into_iter()
    .fold(0.0f32, f32::max)
    .min(1.0) as f64
}

// ---------------------------------------------------------------------------------------------
// Optimised packings

/// How [`pack`] optimises.
#[derive(Clone, Debug, PartialEq)]
pub struct PackSettings {
    /// Gradient steps at most.
    pub steps: usize,
    /// Power p of the surrogate Σ (c/c_max)^{2p}: larger p feels only the closest pairs.
    pub power: i32,
    /// Steps between exact Gram matrices; between them only the candidate pairs are updated.
    pub refresh: usize,
    /// Seed of the starting vectors.
    pub seed: u64,
    /// Stop as soon as an exact check finds every |cos| ≤ this.
    pub target: Option<f64>,
}

impl Default for PackSettings {
    fn default() -> Self {
        PackSettings {
            steps: 400,
            power: 8,
            refresh: 10,
            seed: 0,
            target: None,
        }
    }
}

/// Candidate pairs: |cos| at least this share of the largest at the last exact Gram matrix.
/// Pairs further below cannot reach the top within `refresh` small steps.
const CANDIDATE_SHARE: f32 = 0.5;

/// Pairs whose surrogate weight (c/c_max)^{2p−1} is below this are left out of a step.
const NEGLIGIBLE: f64 = 1e-9;

/// When more than this share of all pairs are candidates, steps use every pair through two
/// matrix products per block instead of lists of pairs (cheaper past this density).
const DENSE_SHARE: f64 = 0.05;

/// First step size, as a share of the largest |cos|: the vector with the largest gradient
/// moves this far (in radians, roughly). At every exact check the share grows by a quarter
/// when the largest |cos| fell, shrinks by a fifth when it stayed about the same, and halves
/// (back at the best packing) after a setback.
const STEP_SHARE: f64 = 0.1;

/// The step share stays within these.
const STEP_SHARE_RANGE: (f64, f64) = (1e-5, 0.5);

/// An exact check this much above the best so far counts as a setback (smaller ones are the
/// jitter of a single closest pair).
const SETBACK: f64 = 0.01;

/// An optimised packing and how it was found.
#[derive(Clone, Debug)]
pub struct Packed {
    /// The best packing seen (by exact largest |cos|).
    pub packing: Packing,
    /// Its largest |cos| (exact).
    pub max_abs_cos: f64,
    /// Gradient steps taken.
    pub steps: usize,
    /// Exact largest |cos| at each refresh: (step, value).
    pub trace: Vec<(usize, f64)>,
}

/// Rows of each vector's candidate neighbours (both directions), for per-row gradients.
struct Neighbours {
    starts: Vec<usize>,
    others: Vec<u32>,
}

/// Exact largest |cos|, and the pairs with |cos| ≥ `share` × it; no pairs (`None`) when they
/// are more than [`DENSE_SHARE`] of all pairs: then every pair takes part, through products.
fn exact_with_candidates(p: &Packing, share: f32) -> (f64, Option<Neighbours>) {
    let max = max_abs_cos(p) as f32;
    let threshold = max * share;
    let per_block = (DENSE_SHARE * (BLOCK * p.count) as f64) as usize;
    let rows = map_gram_blocks(p, false, |start, _, block| {
        let mut kept = 0;
        let mut rows = Vec::new();
        for (r, row) in block.chunks_exact(p.count).enumerate() {
            let i = start + r;
            let others: Vec<u32> = row
                .iter()
                .enumerate()
                .filter(|&(j, &c)| j != i && c.abs() >= threshold)
                .map(|(j, _)| j as u32)
                .collect();
            kept += others.len();
            if kept > per_block {
                return None;
            }
            rows.push(others);
        }
        Some(rows)
    });
    let Some(rows) = rows.into_iter().collect::<Option<Vec<_>>>() else {
        return (max as f64, None);
    };
    let mut starts = vec![0];
    let mut others = Vec::new();
    for row in rows.into_iter().flatten() {
        others.extend(row);
        starts.push(others.len());
    }
    (max as f64, Some(Neighbours { starts, others }))
}

/// The surrogate's gradient over every pair, by two products per block of rows: the Gram rows
/// G_b = V_b Vᵀ become the weights w_ij = c_ij |c_ij/c_ref|^{exponent} in place (0 on the
/// diagonal), then g_b = W_b V; each g_i loses its component along v_i. Returns the exact
/// largest |cos| of `p` (before the step).
fn dense_gradient(p: &Packing, c_ref: f64, exponent: i32, grads: &mut [f32]) -> f64 {
    let (count, dim) = (p.count, p.dim);
    let all = MatRef::from_row_major_slice(&p.vectors, count, dim);
    grads
        .par_chunks_mut(BLOCK * dim)
        .enumerate()
        .map_init(Vec::new, |buf: &mut Vec<f32>, (b, g)| {
            let start = b * BLOCK;
            let rows = g.len() / dim;
            buf.resize(rows * count, 0.0);
            gram_rows(p, start..start + rows, 0, buf);
            let mut max = 0.0f32;
            let inv = (1.0 / c_ref) as f32;
            for (r, row) in buf.chunks_exact_mut(count).enumerate() {
                row[start + r] = 0.0;
                for c in row.iter_mut() {
                    max = max.max(c.abs());
                    let w = *c * (c.abs() * inv).powi(exponent);
                    *c = if w.abs() < (NEGLIGIBLE * c_ref) as f32 {
                        0.0
                    } else {
                        w
                    };
                }
            }
            let weights = MatRef::from_row_major_slice(buf, rows, count);
            let dst = MatMut::from_row_major_slice_mut(g, rows, dim);
            matmul(dst, Accum::Replace, weights, all, 1.0f32, Par::Seq);
            for (r, gi) in g.chunks_exact_mut(dim).enumerate() {
                let v = p.row(start + r);
                let along = dot(gi, v);
                gi.iter_mut().zip(v).for_each(|(x, &y)| *x -= along * y);
            }
            max
        })
        .reduce(|| 0.0, f32::max)
        .min(1.0) as f64
}

/// a · b, in eight independent partial sums so the compiler can vectorise it (one running
/// sum would serialise every addition).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Optimise `count` unit vectors in `dim` dimensions for the smallest largest |cos|, from
/// Gaussian random vectors; `progress(step, exact max)` is called at every refresh.
///
/// One step: for every vector i, the gradient of Σ_j (c_ij/c_ref)^{2p} over its candidate
/// neighbours j is g_i = Σ_j w_ij v_j with w_ij = c_ij |c_ij/c_ref|^{2p−2}; its component along
/// v_i is removed (the sphere's tangent), and every vector moves against it by a step that
/// scales with c_ref, then is normalised again. Every row is updated independently, so the
/// result is the same for any thread count.
pub fn pack(
    count: usize,
    dim: usize,
    settings: &PackSettings,
    progress: &mut dyn FnMut(usize, f64),
) -> Packed {
    let mut current = Packing::random(RandomKind::Gaussian, count, dim, settings.seed, 0);
    let mut best: Option<(f64, Packing)> = None;
    let mut trace = Vec::new();
    // The candidate pairs of the last exact check, or `None`: every pair (dense steps).
    let mut neighbours: Option<Neighbours> = None;
    // The exact largest |cos| of the last dense step (before it moved).
    let mut dense_max = 0.0;
    let mut step = 0;
    let refresh = settings.refresh.max(1);
    let mut grads = vec![0.0f32; count * dim];
    let mut share = STEP_SHARE;
    loop {
        if step % refresh == 0 || step == settings.steps {
            let (max, found) = exact_with_candidates(&current, CANDIDATE_SHARE);
            neighbours = found;
            dense_max = max;
            trace.push((step, max));
            progress(step, max);
            match &best {
                None => best = Some((max, current.clone())),
                Some((b, _)) if max < *b => {
                    share = (share * 1.25).min(STEP_SHARE_RANGE.1);
                    best = Some((max, current.clone()));
                }
                Some((b, kept)) if max > *b * (1.0 + SETBACK) => {
                    // Clearly worse: back to the best packing, with smaller steps.
                    share = (share * 0.5).max(STEP_SHARE_RANGE.0);
                    current.vectors.copy_from_slice(&kept.vectors);
                }
                // About as good (the largest |cos| is one pair and jitters): carry on with
                // somewhat smaller steps, which lets a converging packing settle.
                Some(_) => share = (share * 0.8).max(STEP_SHARE_RANGE.0),
            }
            let done = settings.target.is_some_and(|t| max <= t);
            let stalled = share <= STEP_SHARE_RANGE.0;
            if done || stalled || step >= settings.steps || count <= 1 {
                break;
            }
        }
        let exponent = 2 * settings.power - 2;
        // c_ref: the largest |cos| among the candidates now (for dense steps: before the last
        // step, which the Gram products measure as they go).
        let c_ref = match &neighbours {
            None => dense_max,
            Some(nb) => (0..count)
                .into_par_iter()
                .map(|i| {
                    let v = current.row(i);
                    nb.others[nb.starts[i]..nb.starts[i + 1]]
                        .iter()
                        .map(|&j| dot(v, current.row(j as usize)).abs())
                        .fold(0.0f32, f32::max)
                })
                .reduce(|| 0.0, f32::max) as f64,
        };
        if c_ref <= 0.0 {
            // Every candidate is orthogonal: nothing to push apart until the next refresh.
            step = (step / refresh + 1) * refresh;
            step = step.min(settings.steps);
            continue;
        }
        match &neighbours {
            None => dense_max = dense_gradient(&current, c_ref, exponent, &mut grads),
            Some(nb) => sparse_gradient(&current, nb, c_ref, exponent, &mut grads),
        }
        let largest = grads
            .par_chunks(dim)
            .map(|g| dot(g, g))
            .reduce(|| 0.0, f32::max)
            .sqrt() as f64;
        if largest > 0.0 {
            let scale = (c_ref * share / largest) as f32;
            current
                .vectors
                .par_chunks_mut(dim)
                .zip(grads.par_chunks(dim))
                .for_each(|(v, g)| {
                    v.iter_mut().zip(g).for_each(|(x, &y)| *x -= scale * y);
                    normalise(v);
                });
        }
        step += 1;
    }
    let (max, packing) = best.expect("at least one exact check");
    Packed {
        packing,
        max_abs_cos: max,
        steps: step,
        trace,
    }
}

/// The surrogate's gradient over the candidate pairs `nb` only (see [`dense_gradient`]).
fn sparse_gradient(p: &Packing, nb: &Neighbours, c_ref: f64, exponent: i32, grads: &mut [f32]) {
    let dim = p.dim;
    grads.par_chunks_mut(dim).enumerate().for_each(|(i, g)| {
        g.iter_mut().for_each(|x| *x = 0.0);
        let v = p.row(i);
        for &j in &nb.others[nb.starts[i]..nb.starts[i + 1]] {
            let u = p.row(j as usize);
            let c = dot(v, u) as f64;
            let w = c * (c.abs() / c_ref).powi(exponent);
            if w.abs() < NEGLIGIBLE * c_ref {
                continue;
            }
            let w = w as f32;
            g.iter_mut().zip(u).for_each(|(x, &y)| *x += w * y);
        }
        let along = dot(g, v);
        g.iter_mut().zip(v).for_each(|(x, &y)| *x -= along * y);
    });
}

// ---------------------------------------------------------------------------------------------
// Capacity

/// The largest number of vectors found within a window, and how it was bounded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Dimensions.
    pub dim: usize,
    /// Half-width of the window, degrees (90° ± it).
    pub degrees: f64,
    /// The largest N an optimised packing kept within the window (at least `dim`: an
    /// orthonormal basis).
    pub found: usize,
    /// The search stopped at its budget: the true capacity may be larger.
    pub at_budget: bool,
    /// Welch's cap (none when d ε² ≥ 1).
    pub welch_cap: Option<u64>,
    /// The random construction's guarantee, exp(d ε²/4).
    pub random_guarantee: f64,
}

/// Search the largest N whose optimised packing in `dim` dimensions keeps every pair within
/// 90° ± `degrees`: N = d always fits (an orthonormal basis); above it, double N until a
/// packing fails (or Welch's cap or `budget` is reached), then bisect. Each try runs [`pack`]
/// with `settings` (stopping early once the window is met).
pub fn capacity(dim: usize, degrees: f64, budget: usize, settings: &PackSettings) -> Capacity {
    let eps = window_cos(degrees);
    let cap = welch_cap(dim, eps);
    let limit = cap.map_or(budget, |c| (c as usize).min(budget)).max(dim);
    let fits = |n: usize| -> bool {
        let s = PackSettings {
            target: Some(eps),
            ..settings.clone()
        };
        pack(n, dim, &s, &mut |_, _| {}).max_abs_cos <= eps
    };
    let (mut good, mut bad) = (dim, None);
    while bad.is_none() && good < limit {
        let next = (good * 2).min(limit).max(good + 1);
        if fits(next) {
            good = next;
        } else {
            bad = Some(next);
        }
    }
    if let Some(mut bad) = bad {
        while bad - good > 1 {
            let mid = good + (bad - good) / 2;
            if fits(mid) {
                good = mid;
            } else {
                bad = mid;
            }
        }
    }
    Capacity {
        dim,
        degrees,
        found: good,
        at_budget: good >= budget,
        welch_cap: cap,
        random_guarantee: random_guarantee(dim, eps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalog's table (F3): Welch's cap on N within 89°–91°, and the random guarantee.
    #[test]
    fn welch_caps_and_random_guarantees_match_the_catalog() {
        let eps = window_cos(1.0);
        assert!((eps - 0.01745).abs() < 1e-5);
        assert_eq!(welch_cap(100, eps), Some(103));
        assert_eq!(welch_cap(768, eps), Some(1002));
        assert_eq!(welch_cap(1000, eps), Some(1437));
        let cap_3000 = welch_cap(3000, eps).unwrap() as f64;
        assert!((cap_3000 - 34_775.0).abs() / 34_775.0 < 0.002, "{cap_3000}");
        assert_eq!(welch_cap(12_288, eps), None);
        assert!((random_guarantee(100, eps) - 1.01).abs() < 0.005);
        assert!((random_guarantee(12_288, eps) - 2.5).abs() < 0.06);
        assert!((random_guarantee(100_000, eps) / 2.0e3 - 1.0).abs() < 0.02);
        assert!((random_pair_outside(100, eps) - 0.86).abs() < 0.005);
        assert!((random_pair_outside(1000, eps) - 0.58).abs() < 0.005);
        assert!((random_pair_outside(12_288, eps) - 0.053).abs() < 0.001);
        // Other windows.
        assert_eq!(welch_cap(100, window_cos(2.0)), Some(113));
        assert_eq!(welch_cap(100, window_cos(5.0)), Some(412));
        // 10,000 vectors in 100 dimensions: some pair has |cos| ≥ 0.0995 (within ≈ 84.3°).
        let w = welch_bound(10_000, 100);
        assert!((w - 0.0995).abs() < 5e-5, "{w}");
        assert!((90.0 - line_angle(w) - 5.71).abs() < 0.01);
        assert_eq!(welch_bound(100, 100), 0.0);
    }

    #[test]
    fn levenshtein_bound_takes_over_from_welch_and_respects_known_packings() {
        // Both bounds agree at Gerzon's d(d+1)/2 and Levenshtein's is the larger beyond it.
        for d in [2usize, 3, 10, 100] {
            let gerzon = d * (d + 1) / 2;
            assert_eq!(levenshtein_bound(gerzon, d), 0.0);
            let (w, l) = (welch_bound(gerzon + 1, d), levenshtein_bound(gerzon + 1, d));
            assert!(l > w, "d={d}: {l} vs {w}");
            if d == 100 {
                assert!(l - w < 0.001 * w, "d={d}: {l} vs {w}");
            }
            assert!(line_packing_bound(4 * gerzon, d) > welch_bound(4 * gerzon, d));
        }
        // Four lines in the plane, 45° apart, meet it exactly; five lines 36° apart respect it.
        assert!((levenshtein_bound(4, 2) - 45f64.to_radians().cos()).abs() < 1e-12);
        assert!(levenshtein_bound(5, 2) < 36f64.to_radians().cos());
        // 10,000 vectors in 100 dimensions: 0.1400, 1.41× Welch's 0.0995.
        let l = line_packing_bound(10_000, 100);
        assert!((l - 0.1400).abs() < 5e-5, "{l}");
        assert_eq!(line_packing_bound(2_000, 100), welch_bound(2_000, 100));
    }

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - want).abs() < 2e-7 * want.max(1e-3), "{x}");
        }
    }

    /// Statistics from the blocked faer Gram equal a direct double loop.
    #[test]
    fn cosine_stats_match_a_direct_computation() {
        let p = Packing::random(RandomKind::Gaussian, 300, 7, 3, 0);
        let stats = cosine_stats(&p);
        let (mut max, mut sum, mut pairs) = (0.0f64, 0.0, 0);
        for i in 0..p.count {
            for j in i + 1..p.count {
                let c: f64 = p
                    .row(i)
                    .iter()
                    .zip(p.row(j))
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum();
                max = max.max(c.abs());
                sum += c;
                pairs += 1;
            }
        }
        assert!((stats.max_abs_cos - max).abs() < 1e-5);
        assert!((max_abs_cos(&p) - max).abs() < 1e-5);
        assert!((stats.mean - sum / pairs as f64).abs() < 1e-6);
        assert_eq!(stats.histogram.iter().sum::<u64>(), pairs);
        let (i, j) = stats.closest_pair;
        assert!(i < j);
    }

    /// Random vectors: cos has mean 0 and standard deviation 1/√d, for both kinds.
    #[test]
    fn random_cosines_spread_as_one_over_root_d() {
        for kind in [RandomKind::Gaussian, RandomKind::Sign] {
            let p = Packing::random(kind, 800, 400, 1, 0);
            let stats = cosine_stats(&p);
            assert!(
                (stats.std * 20.0 - 1.0).abs() < 0.03,
                "{kind:?} {}",
                stats.std
            );
            assert!(stats.mean.abs() < 0.002);
            if kind == RandomKind::Sign {
                let v = p.row(0);
                assert!(v.iter().all(|x| (x.abs() - 0.05).abs() < 1e-6));
            }
        }
    }

    /// Known optimal line packings: 6 lines in 3 dimensions (the icosahedron's diagonals,
    /// |cos| = 1/√5, 63.43°), and a simplex of d + 1 vectors (|cos| = 1/d), both meeting
    /// Welch's bound; d vectors in d dimensions become orthogonal.
    #[test]
    fn the_optimiser_finds_known_optimal_packings() {
        // The last digits come slowly: the surrogate's gradient is shared among all 15 pairs.
        let settings = PackSettings {
            steps: 4000,
            ..PackSettings::default()
        };
        let six = pack(6, 3, &settings, &mut |_, _| {});
        assert!(
            (six.max_abs_cos - 0.2f64.sqrt()).abs() < 3e-3,
            "{}",
            six.max_abs_cos
        );
        assert!((line_angle(six.max_abs_cos) - 63.43).abs() < 0.2);
        assert!(six.max_abs_cos >= welch_bound(6, 3) - 1e-6);
        let simplex = pack(11, 10, &settings, &mut |_, _| {});
        assert!(
            (simplex.max_abs_cos - 0.1).abs() < 2e-3,
            "{}",
            simplex.max_abs_cos
        );
        let basis = pack(8, 8, &settings, &mut |_, _| {});
        assert!(basis.max_abs_cos < 0.01, "{}", basis.max_abs_cos);
    }

    /// Same seed, same packing, whatever the thread count.
    #[test]
    fn packing_is_deterministic_across_thread_counts() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let s = PackSettings {
                    steps: 60,
                    ..PackSettings::default()
                };
                pack(700, 12, &s, &mut |_, _| {}).packing
            })
        };
        assert_eq!(run(1), run(3));
    }

    /// Capacity never exceeds Welch's cap, and is at least d.
    #[test]
    fn capacity_stays_between_d_and_welch() {
        let settings = PackSettings::default();
        let narrow = capacity(10, 1.0, 1000, &settings);
        assert_eq!(narrow.welch_cap, Some(10));
        assert_eq!(narrow.found, 10, "±1° in 10 dimensions: only a basis");
        // 90° ± 30° in 3 dimensions: |cos| ≤ 1/2; six lines fit (1/√5 ≈ 0.447), Welch allows
        // 3·(3/4)/(1/4) = 9.
        let wide = capacity(3, 30.0, 1000, &settings);
        assert_eq!(wide.welch_cap, Some(9));
        assert!((6..=9).contains(&wide.found), "{}", wide.found);
        assert!(!wide.at_budget);
    }
}
