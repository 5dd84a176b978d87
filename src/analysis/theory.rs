//! Theoretical phase diagrams (paper §3, "Superposition as a Phase Change"): the exact
//! expected loss of each candidate solution, and the argmin.
//!
//! Data: every feature present with probability p, then uniform on [0, 1]. Only the
//! coordinates a candidate gets wrong contribute to its expected loss:
//! * a dropped feature of importance w, with its optimal bias p/2 (its mean), costs
//!   w · E[(x − p/2)²] = w · (p/3 − p²/4);
//! * an antipodal pair (W_i = −W_j, unit norm, b = 0) errs only when both are present
//!   (probability p²), each output by min(x_i, x_j), and E[min²] = 1/6 for two uniforms, so a
//!   pair of importances w_i, w_j costs (w_i + w_j) · p²/6.
//!
//! These reproduce the boundaries worked out in paper-catalog §E3/E4 (e.g. the triple point
//! p = 4/7 at r = 1, superposition for r < 1 iff p < 4r/(2 + 5r)). Losses are per example,
//! summed over features (the notebook's mean over features only rescales them all by 1/n).

use serde::{Deserialize, Serialize};

/// What happened to the "extra" feature whose importance the diagram varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The extra feature is not represented (W_extra ≈ 0).
    NotRepresented,
    /// The extra feature has a dimension of its own (orthogonal to the others).
    Dedicated,
    /// The extra feature shares a dimension with another feature (antipodal).
    Superposition,
}

impl Phase {
    /// Short label for figures and tables.
    pub fn label(self) -> &'static str {
        match self {
            Phase::NotRepresented => "not represented",
            Phase::Dedicated => "dedicated dimension",
            Phase::Superposition => "superposition",
        }
    }

    /// All phases, in legend order.
    pub const ALL: [Phase; 3] = [
        Phase::NotRepresented,
        Phase::Dedicated,
        Phase::Superposition,
    ];
}

/// Expected loss of dropping a feature of importance `w` at density `p`.
pub fn dropped_loss(w: f64, p: f64) -> f64 {
    w * (p / 3.0 - p * p / 4.0)
}

/// Expected loss of an antipodal pair of importances `wi`, `wj` at density `p`.
pub fn antipodal_loss(wi: f64, wj: f64, p: f64) -> f64 {
    (wi + wj) * p * p / 6.0
}

/// n = 2, m = 1: feature 1 of importance 1, the extra feature 2 of importance `r`.
/// Candidates: W = [1, 0] (extra dropped), [0, 1] (extra dedicated), [1, −1] (antipodal).
pub fn phase_2_1(r: f64, p: f64) -> (Phase, [f64; 3]) {
    let losses = [
        dropped_loss(r, p),
        dropped_loss(1.0, p),
        antipodal_loss(1.0, r, p),
    ];
    (argmin(&losses), losses)
}

/// n = 3, m = 2: features 1 and 2 of importance 1, the extra feature 3 of importance `r`.
/// Candidates, named by the direction W ignores (paper): ⊥[0,0,1] extra dropped; ⊥[1,0,0] a
/// regular feature dropped, extra dedicated; ⊥[1,1,0] the regular pair antipodal, extra
/// dedicated; ⊥[0,1,1] extra antipodal with a regular feature. (The triangle ⊥[1,1,1] is left
/// out, as in the paper.)
pub fn phase_3_2(r: f64, p: f64) -> (Phase, [f64; 4]) {
    let losses = [
        dropped_loss(r, p),
        dropped_loss(1.0, p),
        antipodal_loss(1.0, 1.0, p),
        antipodal_loss(1.0, r, p),
    ];
    let k = (0..4)
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
        .expect("four");
    let phase = match k {
        0 => Phase::NotRepresented,
        1 | 2 => Phase::Dedicated,
        _ => Phase::Superposition,
    };
    (phase, losses)
}

fn argmin(losses: &[f64; 3]) -> Phase {
    let k = (0..3)
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
        .expect("three");
    Phase::ALL[k]
}

/// Classify the extra feature (`extra`) of trained weights `w` (`[n][m]`) from its norm and
/// its interference with the others: not represented if ‖W_extra‖² < 0.5; in superposition
/// if Σ_{j≠extra} (Ŵ_extra · W_j)² > 0.5; dedicated otherwise.
pub fn classify(w: &[f32], n: usize, m: usize, extra: usize) -> Phase {
    let row = |i: usize| &w[i * m..(i + 1) * m];
    let dot =
        |a: &[f32], b: &[f32]| -> f64 { a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum() };
    let sq = dot(row(extra), row(extra));
    if sq < 0.5 {
        return Phase::NotRepresented;
    }
    let inv = 1.0 / sq.sqrt();
    let interference: f64 = (0..n)
        .filter(|&j| j != extra)
        .map(|j| (dot(row(extra), row(j)) * inv).powi(2))
        .sum();
    if interference > 0.5 {
        Phase::Superposition
    } else {
        Phase::Dedicated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalog's closed-form boundaries: superposition for r < 1 iff p < 4r/(2+5r), for
    /// r > 1 iff p < 4/(5+2r); triple point p = 4/7 at r = 1.
    #[test]
    fn boundaries_match_the_closed_forms() {
        for &r in &[0.1, 0.3, 0.5, 0.9] {
            let edge = 4.0 * r / (2.0 + 5.0 * r);
            assert_eq!(phase_2_1(r, edge * 0.99).0, Phase::Superposition, "r={r}");
            assert_eq!(phase_2_1(r, edge * 1.01).0, Phase::NotRepresented, "r={r}");
        }
        for &r in &[1.1, 3.0, 10.0] {
            let edge = 4.0 / (5.0 + 2.0 * r);
            assert_eq!(phase_2_1(r, edge * 0.99).0, Phase::Superposition, "r={r}");
            assert_eq!(phase_2_1(r, edge * 1.01).0, Phase::Dedicated, "r={r}");
        }
        assert_eq!(phase_2_1(1.0, 0.55).0, Phase::Superposition);
        assert_eq!(phase_2_1(0.99, 0.6).0, Phase::NotRepresented);
        assert_eq!(phase_2_1(1.01, 0.6).0, Phase::Dedicated);
    }

    /// The catalog's grid check for n = 3, m = 2 (rows p, columns r).
    #[test]
    fn three_two_grid_matches_the_catalog() {
        let rs = [0.1, 0.3, 0.5, 0.9, 1.1, 3.0, 10.0];
        let expect = [
            (1.0, "BBBBAAA"),
            (0.5, "BBBDCCC"),
            (0.3, "BDDDCCC"),
            (0.1, "DDDDCCC"),
        ];
        for (p, row) in expect {
            for (&r, c) in rs.iter().zip(row.chars()) {
                let (_, l) = phase_3_2(r, p);
                let k = (0..4).min_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
                let got = ['B', 'A', 'C', 'D'][k];
                assert_eq!(got, c, "p={p} r={r}");
            }
        }
    }

    #[test]
    fn classifies_the_three_phases() {
        assert_eq!(classify(&[1.0, 0.0], 2, 1, 1), Phase::NotRepresented);
        assert_eq!(classify(&[0.0, 1.0], 2, 1, 1), Phase::Dedicated);
        assert_eq!(classify(&[1.0, -1.0], 2, 1, 1), Phase::Superposition);
        let w = [1.0, 0.0, -1.0, 0.0, 0.0, 1.0];
        assert_eq!(classify(&w, 3, 2, 2), Phase::Dedicated);
        let w = [1.0, 0.0, 0.0, 1.0, 0.0, -1.0];
        assert_eq!(classify(&w, 3, 2, 2), Phase::Superposition);
    }

    /// Expected losses against a Monte-Carlo estimate with a simple generator.
    #[test]
    fn closed_forms_match_sampling() {
        let mut rng = crate::data::LaneRng::new(1);
        let p = 0.3;
        let (mut dropped, mut pair) = (0.0, 0.0);
        let trials = 400_000;
        for _ in 0..trials {
            let draw = |rng: &mut crate::data::LaneRng| {
                if rng.next_f64() < p {
                    rng.next_f64()
                } else {
                    0.0
                }
            };
            let (x, y) = (draw(&mut rng), draw(&mut rng));
            dropped += (x - p / 2.0).powi(2);
            let (ox, oy) = ((x - y).max(0.0), (y - x).max(0.0));
            pair += (x - ox).powi(2) + (y - oy).powi(2);
        }
        let t = trials as f64;
        assert!((dropped / t - dropped_loss(1.0, p)).abs() < 1e-3);
        assert!((pair / t - antipodal_loss(1.0, 1.0, p)).abs() < 1e-3);
    }
}
