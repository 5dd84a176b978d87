//! `local-bases`: correlated features form local almost-orthogonal bases (paper §4,
//! "Correlated and Anticorrelated Features").
//!
//! n = 20 features of importance 1 as two correlated sets of ten (a set is zero or active as
//! a whole; active members get independent U[0, 1] values), m = 10, ReLU-output model. The
//! paper: within a set the features are (nearly) orthogonal, identity-like diagonal blocks of
//! WᵀW, while the model is in superposition overall: features of different sets, rarely active
//! together, share directions. Trained, each set becomes an orthonormal basis of the whole
//! hidden space and the block of WᵀW between the sets is close to an orthogonal matrix. The
//! lowest-loss fits make it minus a permutation (every feature antipodal to one of the other
//! set: ten digons); other restarts end with a less sparse mix at a slightly higher loss.
//!
//! Our choices, where the paper is silent: each set active with probability 0.02. Measured
//! (seed 0, the kept fit): at 0.02 the mean |(WᵀW)_ij| over same-set pairs i ≠ j is 0.003
//! (largest 0.011) against 0.12 between the sets, 45×; at 0.05 it is 0.033 (largest 0.045),
//! 6×; at 0.1 and denser the blocks blur (0.065, largest 0.26, 2×) and a feature or two drops
//! out. 4 restarts (`paper`: 10), the lowest-loss one kept; the notebook's optimiser and
//! 10,000 steps. The verdict asks for at least 15 of 20 features represented, a same-set mean
//! ≤ 0.02 with no pair above 0.1, and a between-set mean at least 10× the same-set one: over
//! seeds 1..20 the kept fits measure 20 represented, same-set mean 0.003–0.006 (largest pair
//! 0.020) and a ratio of 34–60×, so every threshold has a margin of three or more; a single
//! restart reaches the same (ratio 36–53×). At density 0.05 the verdict would fail (mean
//! 0.033, 6×): the diagonal blocks are visibly less clean there.

use super::{sets_config, Experiment, Profile, Work};
use crate::analysis::metrics::gram;
use crate::analysis::verdict::{Check, Verdict};
use crate::config::TrainConfig;
use crate::data::sampler::SetKind;
use crate::output::plots::{Figure, GramPanel};
use crate::pipeline::{bars_figure, RunResult};

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "local-bases",
    section: "§4 Correlated features",
    summary: "n=20 as 2 sets of 10 correlated features, m=10: orthogonal within a set, superposed across sets",
    claim: "Correlated features form a local almost-orthogonal basis: within a set the \
            features are (nearly) orthogonal, while the model is in superposition overall, \
            the interference going between features of different sets, which are rarely \
            active together.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Features per correlated set.
const SET_SIZE: usize = 10;
/// Correlated sets.
const SETS: usize = 2;
/// Features in all.
const FEATURES: usize = SETS * SET_SIZE;
/// Hidden dimensions.
const HIDDEN: usize = 10;
/// Probability that a set is active.
const SET_PROBABILITY: f64 = 0.02;
/// In superposition: at least this many features represented (‖W_i‖ > 0.5) in m = 10.
const MIN_REPRESENTED: usize = 15;
/// A local basis: mean |(WᵀW)_ij| over same-set pairs i ≠ j at most this.
const WITHIN_MEAN: f64 = 0.02;
/// ... and no same-set pair above this.
const WITHIN_MAX: f64 = 0.1;
/// The interference goes between the sets: their mean |(WᵀW)_ij| at least this many times the
/// same-set one.
const RATIO: f64 = 10.0;

fn restarts(profile: Profile) -> usize {
    match profile {
        Profile::Quick => 4,
        Profile::Paper => 10,
    }
}

fn config(profile: Profile) -> TrainConfig {
    sets_config(
        "local-bases",
        (SETS, SET_SIZE, SetKind::Correlated),
        HIDDEN,
        SET_PROBABILITY,
        restarts(profile),
    )
}

/// Off-diagonal |WᵀW| of one fit, split by whether the pair shares a set.
#[derive(Clone, Copy, Debug)]
struct Blocks {
    within_mean: f64,
    within_max: f64,
    between_mean: f64,
}

impl Blocks {
    /// Of `w` (`[n][m]`, sets of [`SET_SIZE`] consecutive features).
    fn of(w: &[f32]) -> Self {
        let m = w.len() / FEATURES;
        let g = gram(w, FEATURES, m);
        let (mut within, mut between) = (Vec::new(), Vec::new());
        for i in 0..FEATURES {
            for j in (0..FEATURES).filter(|&j| j != i) {
                let v = g[i * FEATURES + j].abs();
                if i / SET_SIZE == j / SET_SIZE {
                    within.push(v);
                } else {
                    between.push(v);
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        Blocks {
            within_mean: mean(&within),
            within_max: within.iter().copied().fold(0.0, f64::max),
            between_mean: mean(&between),
        }
    }

    /// Between-set over same-set mean (NaN when both are zero: nothing to compare).
    fn ratio(&self) -> f64 {
        self.between_mean / self.within_mean
    }
}

fn verdict(run: &RunResult) -> Verdict {
    let Some(kept) = run.selected().into_iter().next() else {
        return Verdict::from_checks(vec![Check {
            name: "a fit was kept".into(),
            passed: false,
            measured: "no kept fit".into(),
            expected: "one".into(),
        }]);
    };
    let b = Blocks::of(run.w(kept));
    let checks = vec![
        Check {
            name: format!("in superposition: at least {MIN_REPRESENTED} features represented in m = {HIDDEN} dimensions"),
            passed: kept.represented >= MIN_REPRESENTED,
            measured: format!("{} of {FEATURES} with ‖W_i‖ > 0.5", kept.represented),
            expected: format!("at least {MIN_REPRESENTED}"),
        },
        Check {
            name: "within a set the features are nearly orthogonal (local basis)".into(),
            passed: b.within_mean <= WITHIN_MEAN && b.within_max <= WITHIN_MAX,
            measured: format!(
                "same-set |(WᵀW)_ij|, i ≠ j: mean {:.3}, largest {:.3}",
                b.within_mean, b.within_max
            ),
            expected: format!("mean ≤ {WITHIN_MEAN}, largest ≤ {WITHIN_MAX}"),
        },
        Check {
            name: "the interference goes between the sets".into(),
            passed: b.ratio() >= RATIO,
            measured: format!(
                "mean |(WᵀW)_ij| between sets {:.3}, within {:.3}: {:.1}×",
                b.between_mean,
                b.within_mean,
                b.ratio()
            ),
            expected: format!("between at least {RATIO}× within"),
        },
    ];
    Verdict::from_checks(checks)
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    // The kept fit first, then the other restarts.
    let kept = run.records.iter().filter(|r| r.selected);
    let others = run.records.iter().filter(|r| !r.selected);
    let panels = kept
        .chain(others)
        .take(4)
        .map(|r| {
            let w = run.w(r);
            let b = Blocks::of(w);
            GramPanel {
                title: format!(
                    "#{}{}: within {:.3}, between {:.3}",
                    r.restart,
                    if r.selected { " kept" } else { "" },
                    b.within_mean,
                    b.between_mean
                ),
                gram: gram(w, FEATURES, run.weights.hidden),
                bias: run
                    .weights
                    .instance_b(r.position)
                    .map(|b| b.iter().map(|&v| v as f64).collect()),
                boundaries: (1..SETS).map(|s| s * SET_SIZE).collect(),
            }
        })
        .collect();
    vec![
        ("wtw".into(), Figure::GramHeatmaps { panels, columns: 4 }),
        ("norms".into(), bars_figure(run)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;

    /// Judge `w` (`[n][m]`) as the kept (only) fit.
    fn judge(w: Vec<f32>) -> Verdict {
        let mut cfg = config(Profile::Quick);
        cfg.sweep.as_mut().unwrap().restarts = 1;
        let specs = cfg.resolve().unwrap();
        let weights = Weights::w_only(FEATURES, HIDDEN, w);
        let records = instance_records(&weights, Some(&specs), None);
        verdict(&RunResult::analysed(
            "local-bases",
            Some(cfg),
            weights,
            records,
        ))
    }

    fn unit(k: usize) -> Vec<f32> {
        (0..HIDDEN).map(|t| f32::from(t == k)).collect()
    }

    /// Basis e_0..e_9, then the same dimensions rotated by 45° in the planes (e_2k, e_2k+1).
    fn two_bases() -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let a: Vec<Vec<f32>> = (0..HIDDEN).map(unit).collect();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let b = (0..HIDDEN)
            .map(|k| {
                let (even, odd) = (k - k % 2, k - k % 2 + 1);
                let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
                (0..HIDDEN)
                    .map(|t| {
                        if t == even {
                            h
                        } else if t == odd {
                            sign * h
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        (a, b)
    }

    #[test]
    fn one_basis_per_set_passes() {
        let (a, b) = two_bases();
        let v = judge([a, b].concat().concat());
        assert!(v.reproduced, "{v:#?}");
    }

    /// The same 20 directions, but each set takes half of each basis: the interference is
    /// inside the sets.
    #[test]
    fn bases_split_across_the_sets_fail() {
        let (a, b) = two_bases();
        let sets = [[&a[..5], &b[..5]].concat(), [&a[5..], &b[5..]].concat()];
        let v = judge(sets.concat().concat());
        assert!(!v.reproduced);
        assert!(v.checks[0].passed, "still in superposition: {v:#?}");
        assert!(!v.checks[1].passed && !v.checks[2].passed, "{v:#?}");
    }

    /// One set as a basis, the other not represented: no superposition, no interference.
    #[test]
    fn one_set_only_fails() {
        let (a, _) = two_bases();
        let zero = vec![vec![0.0; HIDDEN]; SET_SIZE];
        let v = judge([a, zero].concat().concat());
        assert!(!v.reproduced);
        assert!(!v.checks[0].passed && !v.checks[2].passed, "{v:#?}");
    }

    /// Random directions (unit norm): superposition without local bases.
    #[test]
    fn random_directions_fail() {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
        };
        let w: Vec<f32> = (0..FEATURES)
            .flat_map(|_| {
                let v: Vec<f64> = (0..HIDDEN).map(|_| next()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                v.into_iter()
                    .map(move |x| (x / norm) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let v = judge(w);
        assert!(!v.reproduced);
        assert!(
            v.checks[0].passed && !v.checks[1].passed && !v.checks[2].passed,
            "{v:#?}"
        );
    }
}
