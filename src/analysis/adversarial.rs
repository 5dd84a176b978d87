//! Adversarial attacks on the ReLU-output model (paper §"Relationship to Adversarial
//! Robustness").
//!
//! For x′ = ReLU(WᵀW(x + δ) + b) with the loss measured against the clean x, the paper's
//! analytic L2 attack on feature i moves the input along row i of WᵀW,
//! δ_i = ε·(WᵀW)_i / ‖(WᵀW)_i‖, the direction that raises feature i's output most while
//! dragging every feature that interferes with it along. An attacked output then only shifts its
//! pre-activation by WᵀWδ_i, so each of the n attacks costs n operations per row and no
//! matrix product.
//!
//! Both attacks here are per example: every row gets its own worst δ within the L2 ball of
//! radius ε (for the analytic attack, the worst of the n directions, λ = +ε: the sign that
//! raises feature i's output; for the gradient attack, projected gradient ascent from a random
//! start). Rows are `[rows][n]`, row-major.

/// Result of attacking one model on one batch.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackLosses {
    /// Loss on the clean batch (the notebook's loss: mean over rows and features of
    /// I_i (x_i − x′_i)²).
    pub clean: f64,
    /// Loss when every row gets the analytic attack that hurts it most.
    pub analytic: f64,
    /// The clean loss plus the mean loss increase projected gradient ascent reached on the
    /// rows it attacked (equal to `clean` when it attacked none).
    pub gradient: f64,
}

/// Steps of projected gradient ascent.
pub const GRADIENT_STEPS: usize = 20;

/// A tied ReLU-output model: `w` is `[n][m]`, `b` is `[n]`, `importance` is `[n]`.
pub struct TiedModel<'a> {
    /// W, feature rows.
    pub w: &'a [f32],
    /// Output bias.
    pub b: &'a [f32],
    /// Feature importances.
    pub importance: &'a [f32],
    /// Features n.
    pub features: usize,
    /// Hidden dimensions m.
    pub hidden: usize,
}

impl TiedModel<'_> {
    /// h = Wx (`[m]`) of an `[n]` vector.
    fn encode(&self, v: &[f64]) -> Vec<f64> {
        let m = self.hidden;
        let mut h = vec![0.0; m];
        for (row, &x) in self.w.chunks_exact(m).zip(v) {
            if x != 0.0 {
                for (hk, &wk) in h.iter_mut().zip(row) {
                    *hk += wk as f64 * x;
                }
            }
        }
        h
    }

    /// Wᵀh in the paper's orientation (`[n]`): W_j · h for every feature j.
    fn decode(&self, h: &[f64]) -> Vec<f64> {
        self.w
            .chunks_exact(self.hidden)
            .map(|row| row.iter().zip(h).map(|(&a, b)| a as f64 * b).sum())
            .collect()
    }

    /// WᵀW v.
    fn gram_times(&self, v: &[f64]) -> Vec<f64> {
        self.decode(&self.encode(v))
    }

    /// The row's loss share Σ_j I_j (x_j − ReLU(pre_j + shift_j))² / n.
    fn row_loss(&self, x: &[f64], pre: &[f64], shift: Option<&[f64]>) -> f64 {
        let n = self.features;
        let mut total = 0.0;
        for j in 0..n {
            let s = shift.map_or(0.0, |s| s[j]);
            let e = x[j] - (pre[j] + s).max(0.0);
            total += self.importance[j] as f64 * e * e;
        }
        total / n as f64
    }
}

/// Mean L2 norm of the rows of `x` (`[rows][n]`).
pub fn mean_norm(x: &[f32], n: usize) -> f64 {
    let rows = x.len() / n.max(1);
    if rows == 0 {
        return 0.0;
    }
    x.chunks_exact(n)
        .map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt())
        .sum::<f64>()
        / rows as f64
}

/// Attack `model` on the rows of `x` (`[rows][n]`) with L2 radius `radius`: the clean loss,
/// the per-row worst analytic attack, and per-row projected gradient ascent
/// ([`GRADIENT_STEPS`] steps of radius/4 along the normalised gradient, projected back onto
/// the ball, from a random start of length radius/2: at δ = 0 a perfectly reconstructed
/// feature has zero gradient; where every output ReLU stays off the gradient is 0 and the
/// attack does not move, the paper's gradient masking) on the first `gradient_rows` rows
/// (its loss is compared with the clean loss of the same rows).
pub fn attack(model: &TiedModel<'_>, x: &[f32], radius: f64, gradient_rows: usize) -> AttackLosses {
    let n = model.features;
    let rows = x.len() / n.max(1);
    // Analytic directions, as output shifts: WᵀW δ_i = ε (WᵀW)(WᵀW)_i / ‖(WᵀW)_i‖.
    let shifts: Vec<Vec<f64>> = (0..n)
        .filter_map(|i| {
            let unit: Vec<f64> = (0..n).map(|j| f64::from(j == i)).collect();
            let g = model.gram_times(&unit);
            let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            (norm > 1e-9).then(|| {
                model
                    .gram_times(&g)
                    .into_iter()
                    .map(|v| radius * v / norm)
                    .collect()
            })
        })
        .collect();
    let (mut clean, mut analytic) = (0.0, 0.0);
    let (mut clean_g, mut gradient) = (0.0, 0.0);
    for (r, row) in x.chunks_exact(n).enumerate() {
        let xs: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        let pre: Vec<f64> = model
            .gram_times(&xs)
            .iter()
            .zip(model.b)
            .map(|(a, &b)| a + b as f64)
            .collect();
        let base = model.row_loss(&xs, &pre, None);
        clean += base;
        analytic += shifts
            .iter()
            .map(|s| model.row_loss(&xs, &pre, Some(s)))
            .fold(base, f64::max);
        if r < gradient_rows {
            clean_g += base;
            gradient += gradient_ascent(model, &xs, &pre, radius, r as u64).max(base);
        }
    }
    let g_rows = gradient_rows.min(rows).max(1) as f64;
    let rows = rows.max(1) as f64;
    AttackLosses {
        clean: clean / rows,
        analytic: analytic / rows,
        // On the same footing as the analytic attack: the clean loss of all rows plus the
        // mean increase the gradient attack achieved on its rows.
        gradient: clean / rows + (gradient - clean_g) / g_rows,
    }
}

/// Projected gradient ascent on one row's loss over δ with ‖δ‖ ≤ radius; returns the loss
/// reached.
fn gradient_ascent(model: &TiedModel<'_>, x: &[f64], pre: &[f64], radius: f64, seed: u64) -> f64 {
    let n = model.features;
    let mut delta = random_start(n, radius / 2.0, seed);
    let mut shift = model.gram_times(&delta);
    let mut u = vec![0.0f64; n];
    let step = radius / 4.0;
    let mut best = model
        .row_loss(x, pre, None)
        .max(model.row_loss(x, pre, Some(&shift)));
    for _ in 0..GRADIENT_STEPS {
        let grad = loss_gradient(model, x, pre, &shift, &mut u);
        let norm = grad.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm < 1e-30 {
            break; // every output ReLU is off (or the loss is flat): masked
        }
        for (d, g) in delta.iter_mut().zip(&grad) {
            *d += step * g / norm;
        }
        let len = delta.iter().map(|v| v * v).sum::<f64>().sqrt();
        if len > radius {
            delta.iter_mut().for_each(|d| *d *= radius / len);
        }
        shift = model.gram_times(&delta);
        best = best.max(model.row_loss(x, pre, Some(&shift)));
    }
    best
}

/// The gradient of a row's loss with respect to δ, where the output pre-activations are
/// `pre + shift` and shift = WᵀWδ: ∂loss/∂δ = WᵀW u with u_j = −2 I_j (x_j − out_j) ·
/// 1[pre_j + shift_j > 0] / n (`u` is scratch of length n).
fn loss_gradient(
    model: &TiedModel<'_>,
    x: &[f64],
    pre: &[f64],
    shift: &[f64],
    u: &mut [f64],
) -> Vec<f64> {
    let n = model.features;
    for j in 0..n {
        let z = pre[j] + shift[j];
        u[j] = if z > 0.0 {
            -2.0 * model.importance[j] as f64 * (x[j] - z) / n as f64
        } else {
            0.0
        };
    }
    model.gram_times(u)
}

/// A deterministic random direction of length `len` (coordinates uniform in [−1, 1], then
/// scaled), from a SplitMix64 stream seeded by `seed`.
fn random_start(n: usize, len: f64, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let v: Vec<f64> = (0..n).map(|_| next()).collect();
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-300);
    v.into_iter().map(|a| a * len / norm).collect()
}

/// The non-superposition reference of the same shape: the first m features on orthonormal
/// axes (W_i = e_i for i < m, 0 for the rest), b = 0. Under the attack on feature i < m it
/// loses exactly ε²·I_i/n (on that feature, nothing elsewhere); the worst row attack loses
/// ε²·max_{i<m} I_i/n.
pub fn reference_weights(n: usize, m: usize) -> (Vec<f32>, Vec<f32>) {
    let mut w = vec![0.0f32; n * m];
    for i in 0..m.min(n) {
        w[i * m + i] = 1.0;
    }
    (w, vec![0.0; n])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, count: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n * count)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 40) as f32 / (1u64 << 24) as f32;
                if u < 0.3 {
                    u / 0.3
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn the_reference_loses_eps_squared_over_n() {
        let (n, m) = (6, 3);
        let (w, b) = reference_weights(n, m);
        let imp = vec![1.0f32; n];
        let model = TiedModel {
            w: &w,
            b: &b,
            importance: &imp,
            features: n,
            hidden: m,
        };
        let x = rows(n, 50, 1);
        let r = attack(&model, &x, 0.2, 50);
        assert!(
            (r.analytic - r.clean - 0.04 / n as f64).abs() < 1e-9,
            "{r:?}"
        );
        // The gradient attack climbs towards the same (the best direction gives ε²/n).
        let gained = r.gradient - r.clean;
        assert!(
            gained > 0.5 * 0.04 / n as f64 && gained <= 0.04 / n as f64 + 1e-9,
            "{r:?}"
        );
    }

    #[test]
    fn superposition_is_more_vulnerable_than_the_reference() {
        // Two features antipodal in one dimension, and a pentagon of five in two.
        let n = 5;
        let ang = |k: usize| (k as f64 * 72f64).to_radians();
        let w: Vec<f32> = (0..n)
            .flat_map(|k| [ang(k).cos() as f32, ang(k).sin() as f32])
            .collect();
        let b = vec![0.0f32; n];
        let imp = vec![1.0f32; n];
        let x = rows(n, 200, 7);
        let pentagon = TiedModel {
            w: &w,
            b: &b,
            importance: &imp,
            features: n,
            hidden: 2,
        };
        let (w0, b0) = reference_weights(n, 2);
        let reference = TiedModel {
            w: &w0,
            b: &b0,
            ..pentagon
        };
        let (p, r) = (
            attack(&pentagon, &x, 0.1, 200),
            attack(&reference, &x, 0.1, 200),
        );
        assert!(
            p.analytic - p.clean > 1.5 * (r.analytic - r.clean),
            "{p:?} {r:?}"
        );
        assert!(p.analytic >= p.clean && p.gradient >= p.clean);
    }

    #[test]
    fn dead_outputs_mask_the_gradient() {
        // Biases of −0.3 on all-zero rows: every output ReLU is off at δ = 0 and anywhere
        // within the random start (length 0.25), so the gradient attack never moves; the
        // analytic attack (length 0.5 along one represented axis) opens an output.
        let (n, m) = (4, 2);
        let (w, _) = reference_weights(n, m);
        let b = vec![-0.3f32; n];
        let imp = vec![1.0f32; n];
        let model = TiedModel {
            w: &w,
            b: &b,
            importance: &imp,
            features: n,
            hidden: m,
        };
        let x = vec![0.0f32; n * 10];
        let r = attack(&model, &x, 0.5, 10);
        assert_eq!(r.clean, 0.0);
        assert_eq!(r.gradient, r.clean);
        // The opened output reads −0.3 + 0.5 = 0.2 where the target is 0.
        assert!((r.analytic - 0.04 / n as f64).abs() < 1e-7, "{r:?}");
        assert!((mean_norm(&[3.0, 4.0, 0.0, 0.0], 2) - 2.5).abs() < 1e-12);
    }

    /// A small random model with unequal importances, written out with an explicit n x n
    /// Gram matrix.
    fn random_model(n: usize, m: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut s = 99u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64) * 2.0 - 1.0
        };
        let w: Vec<f32> = (0..n * m).map(|_| next() as f32).collect();
        let b: Vec<f32> = (0..n).map(|_| (0.2 * next()) as f32).collect();
        let imp: Vec<f32> = (0..n).map(|i| 0.8f32.powi(i as i32)).collect();
        (w, b, imp)
    }

    #[test]
    fn the_analytic_attack_matches_an_explicit_gram_computation() {
        let (n, m) = (6, 3);
        let (w, b, imp) = random_model(n, m);
        let model = TiedModel {
            w: &w,
            b: &b,
            importance: &imp,
            features: n,
            hidden: m,
        };
        let x = rows(n, 40, 3);
        let eps = 0.3;
        let g = crate::analysis::metrics::gram(&w, n, m);
        let out = |xr: &[f32], delta: &[f64]| -> f64 {
            (0..n)
                .map(|j| {
                    let pre: f64 = b[j] as f64
                        + (0..n)
                            .map(|k| g[j * n + k] * (xr[k] as f64 + delta[k]))
                            .sum::<f64>();
                    imp[j] as f64 * (xr[j] as f64 - pre.max(0.0)).powi(2)
                })
                .sum::<f64>()
                / n as f64
        };
        let mut want = 0.0;
        for xr in x.chunks_exact(n) {
            let mut worst = out(xr, &vec![0.0; n]);
            for i in 0..n {
                let gi = &g[i * n..(i + 1) * n];
                let norm = gi.iter().map(|v| v * v).sum::<f64>().sqrt();
                let delta: Vec<f64> = gi.iter().map(|v| eps * v / norm).collect();
                worst = worst.max(out(xr, &delta));
            }
            want += worst;
        }
        want /= 40.0;
        let got = attack(&model, &x, eps, 0);
        assert!(
            (got.analytic - want).abs() < 1e-9,
            "{} vs {want}",
            got.analytic
        );
    }

    #[test]
    fn the_loss_gradient_matches_finite_differences() {
        let (n, m) = (6, 3);
        let (w, b, imp) = random_model(n, m);
        let model = TiedModel {
            w: &w,
            b: &b,
            importance: &imp,
            features: n,
            hidden: m,
        };
        let x: Vec<f64> = rows(n, 1, 5).iter().map(|&v| v as f64 + 0.3).collect();
        let pre: Vec<f64> = model
            .gram_times(&x)
            .iter()
            .zip(&b)
            .map(|(a, &c)| a + c as f64)
            .collect();
        let delta = random_start(n, 0.2, 1);
        let loss_at = |d: &[f64]| model.row_loss(&x, &pre, Some(&model.gram_times(d)));
        let mut u = vec![0.0; n];
        let grad = loss_gradient(&model, &x, &pre, &model.gram_times(&delta), &mut u);
        let h = 1e-6;
        for k in 0..n {
            let (mut up, mut down) = (delta.clone(), delta.clone());
            up[k] += h;
            down[k] -= h;
            let fd = (loss_at(&up) - loss_at(&down)) / (2.0 * h);
            assert!(
                (fd - grad[k]).abs() < 1e-6 * (1.0 + fd.abs()),
                "{k}: {fd} vs {}",
                grad[k]
            );
        }
    }
}
