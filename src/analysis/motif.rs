//! The asymmetric superposition motif of the paper's |x| models ("Superposition vs
//! Sparsity"): one neuron carries two features with lopsided weights, and another neuron
//! cancels the interference that goes the heavy way.
//!
//! Model: h = ReLU(W₁x), y′ = ReLU(W₂h + b). In our layout `w[i * m + j]` is W₁[j][i] (neuron
//! `j`'s weight from input `i`) and `w_dec[i * m + j]` is W₂[i][j] (neuron `j`'s weight into
//! output `i`).
//!
//! Neuron `j` with incoming weights `u_a`, `u_v` and outgoing weights `o_a`, `o_v > 0` computes
//! half of |x_a| and half of |x_v|; when only `a` is active (with the sign that fires the
//! neuron), the victim output `v` receives the interference `|u_a|·o_v`, and the other way
//! `|u_v|·o_a`. The paper's example, W₁ = [2, −½] and W₂ = [½, 2], computes both features at
//! gain 1 while `a` interferes with `v` at 4 and `v` with `a` at ¼: asymmetric. A second neuron
//! that fires with `a` and has a negative weight into `v` turns the heavy interference into
//! negative interference, which the output ReLU discards.

/// Interference one way must be at least this many times the other (the paper's example: 16).
pub const ASYMMETRY: f64 = 4.0;

/// A feature takes part in a neuron when its |incoming weight| is at least this fraction of
/// the neuron's largest.
pub const SIGNIFICANT: f64 = 0.1;

/// The neuron computes both features: the smaller gain |u|·o is at least this share of the
/// larger (the paper's example: 1 and 1). Without it, a neuron that computes one feature and
/// merely leaks into another would count.
pub const GAIN_SHARE: f64 = 0.25;

/// One other neuron's inhibition must cancel at least this share of the heavy interference.
pub const INHIBITED_SHARE: f64 = 0.5;

/// One neuron showing the motif.
#[derive(Clone, Debug, PartialEq)]
pub struct Motif {
    /// The neuron carrying both features.
    pub neuron: usize,
    /// The feature that interferes heavily (larger incoming weight).
    pub strong: usize,
    /// The feature it interferes with (the victim).
    pub victim: usize,
    /// Interference strong → victim over victim → strong.
    pub asymmetry: f64,
    /// Share of the strong → victim interference the inhibitor cancels.
    pub inhibited: f64,
    /// The other neuron that inhibits most.
    pub inhibitor: usize,
}

/// Every (neuron, strong, victim) triple showing the motif in an |x| model with encoder `w`
/// and decoder `w_dec` (both `[n][m]`).
pub fn asymmetric_motifs(w: &[f32], w_dec: &[f32], n: usize, m: usize) -> Vec<Motif> {
    let enc = |i: usize, j: usize| w[i * m + j] as f64;
    let dec = |i: usize, j: usize| w_dec[i * m + j] as f64;
    let mut found = Vec::new();
    for j in 0..m {
        let largest = (0..n).map(|i| enc(i, j).abs()).fold(0.0, f64::max);
        if largest == 0.0 {
            continue;
        }
        // Features the neuron computes: a significant incoming weight, a positive outgoing one.
        let carried: Vec<usize> = (0..n)
            .filter(|&i| enc(i, j).abs() >= SIGNIFICANT * largest && dec(i, j) > 0.0)
            .collect();
        for &a in &carried {
            for &v in &carried {
                if a == v {
                    continue;
                }
                let heavy = enc(a, j).abs() * dec(v, j);
                let light = enc(v, j).abs() * dec(a, j);
                let (gain_a, gain_v) = (enc(a, j).abs() * dec(a, j), enc(v, j).abs() * dec(v, j));
                if heavy < ASYMMETRY * light || gain_a.min(gain_v) < GAIN_SHARE * gain_a.max(gain_v)
                {
                    continue;
                }
                // The other neuron that fires when `a` fires this one and pushes output `v`
                // down the most.
                let sign = enc(a, j).signum();
                let (mut best, mut inhibitor) = (0.0, j);
                for k in (0..m).filter(|&k| k != j) {
                    let push = (sign * enc(a, k)).max(0.0) * (-dec(v, k)).max(0.0);
                    if push > best {
                        (best, inhibitor) = (push, k);
                    }
                }
                let inhibited = best / heavy;
                if inhibited >= INHIBITED_SHARE {
                    found.push(Motif {
                        neuron: j,
                        strong: a,
                        victim: v,
                        asymmetry: heavy / light,
                        inhibited,
                        inhibitor,
                    });
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's motif on features 0 (strong) and 1 (victim): neuron 0 has W₁ = [2, −½],
    /// W₂ = [½, 2]; neuron 1 fires with feature 0 and inhibits output 1.
    fn paper_motif(inhibition: f32) -> (Vec<f32>, Vec<f32>) {
        let (n, m) = (2, 2);
        let mut w = vec![0.0; n * m];
        let mut w_dec = vec![0.0; n * m];
        w[0] = 2.0; // W₁[0][0]
        w[m] = -0.5; // W₁[0][1]
        w_dec[0] = 0.5; // W₂[0][0]
        w_dec[m] = 2.0; // W₂[1][0]
        w[1] = 1.0; // W₁[1][0]: neuron 1 reads feature 0
        w_dec[m + 1] = -inhibition; // W₂[1][1]: and pushes output 1 down
        (w, w_dec)
    }

    #[test]
    fn finds_the_papers_example() {
        let (w, w_dec) = paper_motif(4.0);
        let found = asymmetric_motifs(&w, &w_dec, 2, 2);
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!((f.neuron, f.strong, f.victim, f.inhibitor), (0, 0, 1, 1));
        assert!((f.asymmetry - 16.0).abs() < 1e-9 && (f.inhibited - 1.0).abs() < 1e-9);
    }

    #[test]
    fn needs_the_inhibition() {
        let (w, w_dec) = paper_motif(0.0);
        assert!(asymmetric_motifs(&w, &w_dec, 2, 2).is_empty());
        let (w, w_dec) = paper_motif(1.0); // cancels a quarter of the heavy interference
        assert!(asymmetric_motifs(&w, &w_dec, 2, 2).is_empty());
    }

    /// A neuron that computes the strong feature and only leaks into the victim (W₂ into `a`
    /// a hundredth of the paper's) is not the motif.
    #[test]
    fn both_features_must_be_computed() {
        let (w, mut w_dec) = paper_motif(4.0);
        w_dec[0] = 0.005;
        assert!(asymmetric_motifs(&w, &w_dec, 2, 2).is_empty());
    }

    /// Symmetric superposition (W₁ = [1, −1], W₂ = [1, 1]) is not the motif, even inhibited.
    #[test]
    fn symmetric_superposition_is_not_the_motif() {
        let (mut w, mut w_dec) = paper_motif(4.0);
        w[0] = 1.0;
        w[2] = -1.0;
        w_dec[0] = 1.0;
        w_dec[2] = 1.0;
        assert!(asymmetric_motifs(&w, &w_dec, 2, 2).is_empty());
    }

    /// An inhibitor that fires for the other sign of the strong feature does not help.
    #[test]
    fn the_inhibitor_must_fire_with_the_strong_feature() {
        let (mut w, w_dec) = paper_motif(4.0);
        w[1] = -1.0;
        assert!(asymmetric_motifs(&w, &w_dec, 2, 2).is_empty());
    }
}
