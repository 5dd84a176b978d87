//! `collapse`: correlated features collapse onto their principal component when dense (paper
//! §4, "Correlated and Anticorrelated Features").
//!
//! n = 6 features as three correlated pairs (a pair is zero or active together, values
//! independent), m = 2, ReLU-output model, the sets' density swept on a log grid. With too
//! little capacity the model represents (a+b)/√2 of a pair and ignores (a−b)/√2: both members
//! point the same way ("collapsed", cos > 0.9). The paper: sparse, no set collapses (the
//! hexagon with partners side by side); then one set, two, and all of them as density grows;
//! dense, the model is PCA-like.
//!
//! Our choices: densities from 0.7 down to 0.01, 13 points (`paper`: 25), 12 restarts each
//! (`paper`: 20), the lowest-loss one kept; 10,000 steps. At the sparse end about half the
//! restarts find the hexagon and the rest keep a collapsed set (the paper's "optimisation
//! failure"): with 5 restarts a sparse point sometimes had no hexagon at all (15 of 20 seeds
//! reproduced), with 12 none did (20 of 20). The grid stops short of density 1:
//! there every feature is always active, the sets are no longer visible in the data, and the
//! model is PCA of six independent features (no pair collapses).

use super::correlated::{case, set_collapsed};
use super::{common_sample_loss, Experiment, Profile, Work};
use crate::analysis::verdict::{fmt_list, Check, Verdict};
use crate::config::Axis;
use crate::data::sampler::SetKind;
use crate::output::plots::{ArrowPanel, Figure, Series, SeriesStyle};
use crate::output::records::InstanceRecord;
use crate::pipeline::RunResult;
use rayon::prelude::*;

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "collapse",
    section: "§4 Correlated features",
    summary:
        "n=6 as 3 correlated pairs, m=2: sets collapse to (a+b)/√2 one by one as density grows",
    claim: "With too little capacity, correlated features collapse onto their principal \
            component: sparse, no set collapses; denser, one set, then two, then all.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Pairs of correlated features.
const SETS: usize = 3;
/// At or below this density no set may collapse.
const SPARSE: f64 = 0.03;
/// At or above this density every set must collapse.
const DENSE: f64 = 0.5;

fn config(profile: Profile) -> crate::config::TrainConfig {
    let (points, restarts) = match profile {
        Profile::Quick => (13, 12),
        Profile::Paper => (25, 20),
    };
    let mut c = case("collapse", SETS, SetKind::Correlated, profile);
    let sweep = c.sweep.get_or_insert_with(Default::default);
    sweep.feature_probability = Some(Axis::LogRange {
        from: 0.7,
        to: 0.01,
        count: points,
    });
    sweep.restarts = restarts;
    c
}

/// Collapsed sets of one model.
fn collapsed(w: &[f32]) -> usize {
    (0..SETS).filter(|&s| set_collapsed(w, s)).count()
}

/// The kept fit of each density, densest first: the lowest loss on a sample shared by the
/// point's restarts. Near the sparse end a hexagon and a fit with one collapsed set differ by
/// about 1 % in loss, as much as two independent evaluation samples do, so the pipeline's
/// `selected` (each restart on its own sample) sometimes keeps the wrong one.
fn kept(run: &RunResult) -> Vec<&InstanceRecord> {
    let mut groups: Vec<(f64, Vec<&InstanceRecord>)> = Vec::new();
    for r in &run.records {
        let p = r.density();
        match groups.iter_mut().find(|g| g.0 == p) {
            Some(g) => g.1.push(r),
            None => groups.push((p, vec![r])),
        }
    }
    groups.sort_by(|a, b| b.0.total_cmp(&a.0));
    let specs = run.config.as_ref().and_then(|c| c.resolve().ok());
    groups
        .into_iter()
        .filter_map(|(_, records)| {
            let common = records.iter().map(|r| r.index).min()?;
            let losses: Vec<f64> = records
                .par_iter()
                .map(|r| {
                    common_sample_loss(run, specs.as_deref(), r, common)
                        .or(r.final_loss)
                        .unwrap_or(f64::INFINITY)
                })
                .collect();
            let best = (0..records.len()).min_by(|&a, &b| losses[a].total_cmp(&losses[b]))?;
            Some(records[best])
        })
        .collect()
}

/// (density, collapsed sets) of the kept fit per point, densest first.
fn kept_counts(run: &RunResult) -> Vec<(f64, usize)> {
    kept(run)
        .iter()
        .map(|r| (r.density(), collapsed(run.w(r))))
        .collect()
}

fn verdict(run: &RunResult) -> Verdict {
    let counts = kept_counts(run);
    let list = |pred: &dyn Fn(f64) -> bool| -> Vec<(f64, usize)> {
        counts.iter().copied().filter(|&(p, _)| pred(p)).collect()
    };
    let show = |points: &[(f64, usize)]| {
        points
            .iter()
            .map(|(p, c)| format!("p={p:.3}: {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sparse = list(&|p| p <= SPARSE);
    let dense = list(&|p| p >= DENSE);
    // Going from dense to sparse, the count may rise once, by one set (a restart that missed
    // the lower-loss arrangement).
    let rises: Vec<usize> = counts
        .windows(2)
        .filter(|w| w[1].1 > w[0].1)
        .map(|w| w[1].1 - w[0].1)
        .collect();
    let partial = list(&|p| p > SPARSE && p < DENSE);
    let partial_counts: Vec<f64> = partial
        .iter()
        .filter(|&&(_, c)| c > 0 && c < SETS)
        .map(|&(p, _)| p)
        .collect();
    let checks = vec![
        Check {
            name: format!("sparse (density ≤ {SPARSE}): no set collapses"),
            passed: !sparse.is_empty() && sparse.iter().all(|&(_, c)| c == 0),
            measured: show(&sparse),
            expected: "0 collapsed sets at every such density".into(),
        },
        Check {
            name: format!("dense (density ≥ {DENSE}): every set collapses onto (a+b)/√2"),
            passed: !dense.is_empty() && dense.iter().all(|&(_, c)| c == SETS),
            measured: show(&dense),
            expected: format!("{SETS} collapsed sets at every such density"),
        },
        Check {
            name: "in between, sets collapse one at a time".into(),
            passed: !partial_counts.is_empty(),
            measured: if partial_counts.is_empty() {
                format!("no density with 1 or 2 collapsed sets ({})", show(&partial))
            } else {
                format!(
                    "1 or 2 collapsed sets at density {}",
                    fmt_list(&partial_counts, 3)
                )
            },
            expected: "some density with 1 or 2 collapsed sets".into(),
        },
        Check {
            name: "the number of collapsed sets falls as density falls".into(),
            passed: rises.len() <= 1 && rises.iter().all(|&r| r == 1),
            measured: format!(
                "{} rise(s) from dense to sparse: {}",
                rises.len(),
                show(&counts)
            ),
            expected: "non-increasing, one rise of one set allowed (noise)".into(),
        },
    ];
    Verdict::from_checks(checks)
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let every: Vec<(f64, f64)> = run
        .records
        .iter()
        .map(|r| (r.density(), collapsed(run.w(r)) as f64))
        .collect();
    let fits = kept(run);
    let best: Vec<(f64, f64)> = fits
        .iter()
        .map(|r| (r.density(), collapsed(run.w(r)) as f64))
        .collect();
    let chart = Figure::Chart {
        title: "collapsed sets (partners at cos > 0.9) against density".into(),
        x_label: "density of each set (1 − S)".into(),
        y_label: "collapsed sets".into(),
        log_x: true,
        log_y: false,
        series: vec![
            Series {
                label: "every restart".into(),
                points: every,
                style: SeriesStyle::Dots,
                colour: 0,
            },
            Series {
                label: "kept (lowest loss)".into(),
                points: best,
                style: SeriesStyle::Line,
                colour: 1,
            },
        ],
        marks: Vec::new(),
    };
    let panels = fits
        .iter()
        .map(|r| {
            let w = run.w(r);
            ArrowPanel {
                title: format!("p = {:.3}: {} collapsed", r.density(), collapsed(w)),
                vectors: w
                    .chunks_exact(2)
                    .map(|v| [v[0] as f64, v[1] as f64])
                    .collect(),
                shade: (0..2 * SETS)
                    .map(|i| (i / 2) as f64 / (SETS - 1) as f64)
                    .collect(),
            }
        })
        .collect();
    vec![
        ("collapsed".into(), chart),
        (
            "features".into(),
            Figure::FeatureArrows { panels, columns: 7 },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::geometry::plane_weights as at;
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;

    /// Judge kept fits with `collapsed_at(point)` sets collapsed (points densest first).
    fn judge(collapsed_at: impl Fn(usize) -> usize) -> Verdict {
        let mut cfg = config(Profile::Quick);
        cfg.sweep.as_mut().unwrap().restarts = 1;
        let specs = cfg.resolve().unwrap();
        let w: Vec<f32> = (0..specs.len())
            .flat_map(|k| {
                let c = collapsed_at(k);
                // Collapsed sets along one direction each, the rest side by side.
                let mut angles = Vec::new();
                for s in 0..SETS {
                    let base = 120.0 * s as f64;
                    let spread = if s < c { 0.0 } else { 64.0 };
                    angles.extend([base, base + spread]);
                }
                at(&angles, if c > 0 { 0.7 } else { 1.0 })
            })
            .collect();
        let weights = Weights::w_only(2 * SETS, 2, w);
        let records = instance_records(&weights, Some(&specs), None);
        verdict(&RunResult::analysed(
            "collapse",
            Some(cfg),
            weights,
            records,
        ))
    }

    /// The measured staircase over the 13 quick densities (0.7 → 0.01).
    const MEASURED: [usize; 13] = [3, 3, 3, 3, 2, 1, 1, 0, 0, 0, 0, 0, 0];

    #[test]
    fn the_measured_staircase_passes() {
        let v = judge(|k| MEASURED[k]);
        assert!(v.reproduced, "{v:#?}");
    }

    #[test]
    fn no_collapse_anywhere_fails() {
        let v = judge(|_| 0);
        assert!(!v.reproduced);
        assert!(!v.checks[1].passed && !v.checks[2].passed, "{v:#?}");
    }

    #[test]
    fn collapse_at_every_density_fails() {
        let v = judge(|_| SETS);
        assert!(!v.reproduced && !v.checks[0].passed, "{v:#?}");
    }

    #[test]
    fn a_staircase_going_the_wrong_way_fails() {
        let v = judge(|k| MEASURED[12 - k]);
        assert!(!v.reproduced && !v.checks[3].passed, "{v:#?}");
    }
}
