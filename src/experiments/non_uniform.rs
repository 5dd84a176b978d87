//! `non-uniform`: one feature sparser or denser than the rest (paper §4, "Non-Uniform
//! Superposition").
//!
//! n = 5 features of importance 1 in m = 2 dimensions, ReLU-output model. Four features have
//! density p = 0.05 (a regular pentagon when all five do); the density of feature 0, the odd
//! one, is swept on a log grid from 2× denser to 8× sparser. The paper: a denser feature pushes
//! its neighbours away (it takes more angle), a sparser one takes less; sparse enough, the
//! model jumps (a first-order transition) to two antipodal pairs ("two digons") with the odd
//! feature dropped. It verifies the transition as a crossing of loss curves: train many
//! models per point, keep the suboptimal fits too, classify each by geometry and plot loss
//! against relative density per geometry.
//!
//! Our choices, where the paper is silent: the notebook's optimiser and 10,000 steps; 10
//! restarts per point (`quick`, 13 points a third of an octave apart) or 20 (`paper`, 25
//! points); every restart is kept and classified. Losses are compared on a common sample:
//! all restarts of a point are evaluated on the same 2^18 rows (the evaluation stream of the
//! point's first restart), so the two geometries' losses differ by the models, not by the
//! draw. The crossover is where the best-pentagon minus best-digons loss changes sign,
//! interpolated in log density. Measured: ≈ 3.8× sparser (the paper reads ≈ 2.5× off its
//! figure); with cosine decay over 20,000 steps the curves cross at the same place, so this
//! is the optimum of this setup, not under-training.

use super::{common_sample_loss, Experiment, Profile, Work};
use crate::analysis::geometry::PlaneGeometry;
use crate::analysis::verdict::{fmt_list, Check, Verdict};
use crate::config::{
    Axis, DataConfig, ImportanceSpec, ModelConfig, OneFeatureAxis, PerFeature, SweepConfig,
    TrainConfig, TrainSettings,
};
use crate::model::ModelKind;
use crate::output::plots::{ArrowPanel, Figure, Mark, Series, SeriesStyle};
use crate::output::records::InstanceRecord;
use crate::pipeline::RunResult;
use rayon::prelude::*;

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "non-uniform",
    section: "§4 Non-uniform superposition",
    summary: "n=5, m=2: one feature's density swept; pentagon ↔ two digons, found by crossing loss curves",
    claim: "A denser feature takes more angle in the pentagon, a sparser one less. Sparse \
            enough, the model jumps to two antipodal pairs with that feature dropped: the \
            loss curves of the two geometries cross (the paper: at about 2.5× sparser).",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Density of the four ordinary features.
const BASE: f64 = 0.05;
/// The feature whose density is swept.
const ODD: usize = 0;
/// The features.
const FEATURES: usize = 5;
/// A dropped feature's norm is below this (the paper's "at ~0 norm"; measured ≤ 0.01).
const DROPPED_NORM: f64 = 0.1;
/// How much wider (denser) or narrower (sparser) the odd feature's gaps must be, in degrees
/// (measured: 3.6° at 2× denser, 7° at 3.2× sparser).
const GAP_SHIFT: f64 = 1.0;
/// Grid points within this factor of the crossover may keep either geometry (there the
/// losses differ by less than the evaluation noise of `final_loss`).
const NEAR_CROSSOVER: f64 = 1.3;
/// The crossover must lie in this range of "times sparser" (see [`verdict`]).
const CROSSOVER_RANGE: (f64, f64) = (1.5, 5.0);

fn config(profile: Profile) -> TrainConfig {
    let (points, restarts) = match profile {
        Profile::Quick => (13, 10),
        Profile::Paper => (25, 20),
    };
    TrainConfig {
        name: "non-uniform".into(),
        model: ModelConfig {
            kind: ModelKind::ReluOutput,
            features: FEATURES,
            hidden: 2,
        },
        train: TrainSettings::default(),
        data: DataConfig {
            feature_probability: PerFeature::All(BASE),
            importance: ImportanceSpec::All(1.0),
            ..DataConfig::default()
        },
        sweep: Some(SweepConfig {
            // 2× denser to 8× sparser: relative density 1 is a grid point in both profiles.
            one_feature_probability: Some(OneFeatureAxis {
                feature: ODD,
                values: Axis::LogRange {
                    from: 2.0 * BASE,
                    to: BASE / 8.0,
                    count: points,
                },
            }),
            restarts,
            ..SweepConfig::default()
        }),
        instances: Vec::new(),
    }
}

/// What a fit converged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arrangement {
    /// All five features represented: the pentagon, and its continuation as the odd feature
    /// gets sparser (the other four drift towards two antipodal pairs, the odd one squeezed
    /// between them).
    Pentagon,
    /// Two antipodal pairs of the ordinary features, the odd feature not represented.
    TwoDigons,
    /// Anything else.
    Other,
}

impl Arrangement {
    fn of(w: &[f32]) -> Self {
        let g = PlaneGeometry::of(w, FEATURES);
        let k = g.features.len();
        if k == FEATURES {
            Arrangement::Pentagon
        } else if k == 4 && !g.features.contains(&ODD) && g.antipodal_pairs.len() == 2 {
            Arrangement::TwoDigons
        } else {
            Arrangement::Other
        }
    }

    fn name(self) -> &'static str {
        match self {
            Arrangement::Pentagon => "pentagon (all five kept)",
            Arrangement::TwoDigons => "two digons, odd feature dropped",
            Arrangement::Other => "other",
        }
    }
}

/// One trained model.
struct Fit<'a> {
    record: &'a InstanceRecord,
    arrangement: Arrangement,
    /// Loss on the sweep point's common sample.
    loss: f64,
}

/// One sweep point: every restart at one density of the odd feature.
struct Point<'a> {
    /// The odd feature's density relative to the others.
    relative: f64,
    fits: Vec<Fit<'a>>,
}

impl Point<'_> {
    fn best(&self, a: Arrangement) -> Option<&Fit<'_>> {
        self.fits
            .iter()
            .filter(|f| f.arrangement == a)
            .min_by(|x, y| x.loss.total_cmp(&y.loss))
    }

    fn kept(&self) -> Option<&Fit<'_>> {
        self.fits.iter().find(|f| f.record.selected)
    }

    fn times_sparser(&self) -> f64 {
        1.0 / self.relative
    }
}

/// Every fit, grouped by sweep point, densest first. Losses are re-evaluated on a sample
/// shared by the point's restarts when the run has its config (else `final_loss` is used).
fn points(run: &RunResult) -> Vec<Point<'_>> {
    let mut groups: Vec<(f32, Vec<&InstanceRecord>)> = Vec::new();
    for r in &run.records {
        let Some(p) = r.feature_probability.as_ref().and_then(|p| p.get(ODD)) else {
            continue;
        };
        match groups.iter_mut().find(|g| g.0 == *p) {
            Some(g) => g.1.push(r),
            None => groups.push((*p, vec![r])),
        }
    }
    groups.sort_by(|a, b| b.0.total_cmp(&a.0));
    let specs = run.config.as_ref().and_then(|c| c.resolve().ok());
    groups
        .into_iter()
        .map(|(p, records)| {
            let common = records.iter().map(|r| r.index).min().unwrap_or(0);
            let fits = records
                .par_iter()
                .map(|r| Fit {
                    record: r,
                    arrangement: Arrangement::of(run.w(r)),
                    loss: common_sample_loss(run, specs.as_deref(), r, common)
                        .or(r.final_loss)
                        .unwrap_or(f64::NAN),
                })
                .collect();
            Point {
                relative: p as f64 / BASE,
                fits,
            }
        })
        .collect()
}

/// Where the best-pentagon loss stops being below the best-digons loss, scanning from dense
/// to sparse over the points that have both, interpolated in log density: the relative
/// density of the crossover.
fn crossover(points: &[Point<'_>]) -> Option<f64> {
    let diffs: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| {
            let pentagon = p.best(Arrangement::Pentagon)?.loss;
            let digons = p.best(Arrangement::TwoDigons)?.loss;
            Some((p.relative.ln(), pentagon - digons))
        })
        .collect();
    diffs.windows(2).find_map(|w| {
        let ((x0, d0), (x1, d1)) = (w[0], w[1]);
        (d0 < 0.0 && d1 >= 0.0).then(|| (x0 + (x1 - x0) * d0 / (d0 - d1)).exp())
    })
}

/// Mean gap (degrees) beside the odd feature minus the mean of the other gaps, for a
/// pentagon.
fn odd_gap_excess(w: &[f32]) -> f64 {
    let g = PlaneGeometry::of(w, FEATURES);
    let Some(at) = g.features.iter().position(|&f| f == ODD) else {
        return f64::NAN;
    };
    let k = g.features.len();
    // gaps[i] lies between features[i] and features[i + 1].
    let beside = [g.gaps[at], g.gaps[(at + k - 1) % k]];
    let others: Vec<f64> = (0..k)
        .filter(|&i| i != at && i != (at + k - 1) % k)
        .map(|i| g.gaps[i])
        .collect();
    beside.iter().sum::<f64>() / 2.0 - others.iter().sum::<f64>() / others.len() as f64
}

fn verdict(run: &RunResult) -> Verdict {
    let points = points(run);
    let mut checks = Vec::new();
    let kept = |p: &Point<'_>| p.kept().map(|f| f.arrangement);

    // Relative density 1: the regular pentagon.
    let equal = points
        .iter()
        .min_by(|a, b| a.relative.ln().abs().total_cmp(&b.relative.ln().abs()));
    let regular = equal.and_then(|p| p.kept()).map(|f| {
        let g = PlaneGeometry::of(run.w(f.record), FEATURES);
        (
            g.features.len() == FEATURES && g.is_regular_polygon(10.0),
            g.gaps,
        )
    });
    checks.push(Check {
        name: "equal densities: the kept fit is a regular pentagon".into(),
        passed: regular.as_ref().is_some_and(|r| r.0),
        measured: match &regular {
            Some((_, gaps)) => format!("gaps {} degrees", fmt_list(gaps, 1)),
            None => "no fit at relative density 1".into(),
        },
        expected: "five gaps of 72° ± 10°".into(),
    });

    // In the pentagon, a denser odd feature takes more angle, a sparser one less.
    let densest = points.first().filter(|p| p.relative > 1.0);
    let excess = densest
        .and_then(|p| p.kept())
        .filter(|f| f.arrangement == Arrangement::Pentagon)
        .map(|f| odd_gap_excess(run.w(f.record)));
    checks.push(Check {
        name: "denser odd feature (pentagon): the gaps beside it are wider than the others".into(),
        passed: excess.is_some_and(|e| e > GAP_SHIFT),
        measured: match (densest, excess) {
            (Some(p), Some(e)) => format!("{:.2}× denser: wider by {e:.1}°", p.relative),
            _ => "the densest point keeps no pentagon".into(),
        },
        expected: format!("mean gap beside it − mean other gap > {GAP_SHIFT}°"),
    });

    let cross = crossover(&points);
    // The sparsest point still in the pentagon, short of the crossover's neighbourhood.
    let sparse_pentagon = points
        .iter()
        .rev()
        .filter(|p| p.relative < 1.0 && cross.is_none_or(|c| p.relative > c * NEAR_CROSSOVER))
        .find(|p| kept(p) == Some(Arrangement::Pentagon));
    let narrower = sparse_pentagon
        .and_then(|p| p.kept())
        .map(|f| -odd_gap_excess(run.w(f.record)));
    checks.push(Check {
        name: "sparser odd feature (pentagon): the gaps beside it are narrower".into(),
        passed: narrower.is_some_and(|e| e > GAP_SHIFT),
        measured: match (sparse_pentagon, narrower) {
            (Some(p), Some(e)) => format!("{:.2}× sparser: narrower by {e:.1}°", p.times_sparser()),
            _ => "no sparser point keeps a pentagon".into(),
        },
        expected: format!("mean other gap − mean gap beside it > {GAP_SHIFT}°"),
    });

    // The loss curves cross.
    checks.push(Check {
        name: "the loss curves of the pentagon and the two digons cross".into(),
        passed: cross.is_some_and(|c| {
            let s = 1.0 / c;
            s >= CROSSOVER_RANGE.0 && s <= CROSSOVER_RANGE.1
        }),
        measured: match cross {
            Some(c) => format!(
                "crossover at {:.2}× sparser (relative density {c:.3})",
                1.0 / c
            ),
            None => "the best-pentagon loss never rises above the best-digons loss".into(),
        },
        expected: format!(
            "between {}× and {}× sparser (the paper: ≈ 2.5×)",
            CROSSOVER_RANGE.0, CROSSOVER_RANGE.1
        ),
    });

    // A first-order transition: the optimum's geometry switches at the crossover.
    let mut wrong = Vec::new();
    if let Some(c) = cross {
        for p in &points {
            let expect = if p.relative > c * NEAR_CROSSOVER {
                Arrangement::Pentagon
            } else if p.relative < c / NEAR_CROSSOVER {
                Arrangement::TwoDigons
            } else {
                continue;
            };
            let Some(f) = p.kept() else { continue };
            let odd_norm = f.record.feature_norms[ODD];
            if f.arrangement != expect
                || (expect == Arrangement::TwoDigons && odd_norm >= DROPPED_NORM)
            {
                wrong.push(format!(
                    "{:.2}× sparser: {} (odd norm {odd_norm:.2})",
                    p.times_sparser(),
                    f.arrangement.name()
                ));
            }
        }
    }
    let sparsest = points.last().and_then(|p| p.kept());
    checks.push(Check {
        name: "the kept geometry switches at the crossover: two digons, odd feature at ~0 norm, beyond it"
            .into(),
        passed: cross.is_some() && wrong.is_empty(),
        measured: if cross.is_none() {
            "no crossover".into()
        } else if wrong.is_empty() {
            format!(
                "as expected at every point more than {NEAR_CROSSOVER}× from the crossover; sparsest: odd norm {:.3}",
                sparsest.map_or(f64::NAN, |f| f.record.feature_norms[ODD])
            )
        } else {
            wrong.join("; ")
        },
        expected: format!(
            "pentagon denser, two digons with the odd feature's norm < {DROPPED_NORM} sparser (points within {NEAR_CROSSOVER}× of the crossover excepted)"
        ),
    });
    Verdict::from_checks(checks)
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let points = points(run);
    let cross = crossover(&points);
    let mut series = Vec::new();
    for (colour, a) in [
        Arrangement::Pentagon,
        Arrangement::TwoDigons,
        Arrangement::Other,
    ]
    .into_iter()
    .enumerate()
    {
        let every: Vec<(f64, f64)> = points
            .iter()
            .flat_map(|p| {
                p.fits
                    .iter()
                    .filter(|f| f.arrangement == a)
                    .map(|f| (p.relative, f.loss))
            })
            .collect();
        if every.is_empty() {
            continue;
        }
        series.push(Series {
            label: format!("{}: every restart", a.name()),
            points: every,
            style: SeriesStyle::Dots,
            colour,
        });
        if a != Arrangement::Other {
            series.push(Series {
                label: format!("{}: best", a.name()),
                points: points
                    .iter()
                    .filter_map(|p| Some((p.relative, p.best(a)?.loss)))
                    .collect(),
                style: SeriesStyle::Line,
                colour,
            });
        }
    }
    let crossover_figure = Figure::Chart {
        title: "loss per geometry against the odd feature's relative density".into(),
        x_label: "density of feature 0 / density of the others".into(),
        y_label: "loss (common sample per point)".into(),
        log_x: true,
        log_y: true,
        series,
        marks: cross
            .map(|c| Mark {
                x: c,
                label: format!("crossover: {:.2}× sparser", 1.0 / c),
            })
            .into_iter()
            .collect(),
    };
    // Best fit of each geometry per point, turned so the odd feature (or, when dropped,
    // feature 1) points up and mirrored so feature 1 (or 2) lies to its right.
    let mut panels = Vec::new();
    for a in [Arrangement::Pentagon, Arrangement::TwoDigons] {
        for p in &points {
            let Some(f) = p.best(a) else { continue };
            panels.push(ArrowPanel {
                title: format!(
                    "p₀/p = {:.2}: {}, {:.2e}",
                    p.relative,
                    if a == Arrangement::Pentagon {
                        "pentagon"
                    } else {
                        "digons"
                    },
                    f.loss
                ),
                vectors: canonical(run.w(f.record), f.record),
                shade: (0..FEATURES)
                    .map(|i| if i == ODD { 1.0 } else { 0.35 })
                    .collect(),
            });
        }
    }
    vec![
        ("crossover".into(), crossover_figure),
        (
            "features".into(),
            Figure::FeatureArrows { panels, columns: 7 },
        ),
    ]
}

/// Feature vectors rotated and mirrored into a canonical pose (see [`figures`]).
fn canonical(w: &[f32], record: &InstanceRecord) -> Vec<[f64; 2]> {
    let v: Vec<[f64; 2]> = w
        .chunks_exact(2)
        .map(|c| [c[0] as f64, c[1] as f64])
        .collect();
    let norms = &record.feature_norms;
    let up = if norms[ODD] > 0.5 { ODD } else { 1 };
    let side = if up == ODD { 1 } else { 2 };
    let turn = std::f64::consts::FRAC_PI_2 - v[up][1].atan2(v[up][0]);
    let (s, c) = turn.sin_cos();
    let mut out: Vec<[f64; 2]> = v
        .iter()
        .map(|p| [c * p[0] - s * p[1], s * p[0] + c * p[1]])
        .collect();
    if out[side][0] < 0.0 {
        for p in &mut out {
            p[0] = -p[0];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::geometry::plane_weights as at;
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;

    #[test]
    fn arrangements_are_classified() {
        let pentagon = at(&[90.0, 164.0, 234.0, 306.0, 16.0], 1.1);
        assert_eq!(Arrangement::of(&pentagon), Arrangement::Pentagon);
        // The pentagon's sparse continuation: two near-antipodal pairs, the odd one between.
        let squeezed = at(&[90.0, 170.0, 10.0, 200.0, 340.0], 1.1);
        assert_eq!(Arrangement::of(&squeezed), Arrangement::Pentagon);
        let mut digons = vec![0.01, 0.0];
        digons.extend(at(&[0.0, 180.0, 90.0, 270.0], 1.0));
        assert_eq!(Arrangement::of(&digons), Arrangement::TwoDigons);
        // Two digons that drop an ordinary feature instead are "other".
        let mut other = at(&[0.0, 180.0, 90.0, 270.0], 1.0);
        other.extend([0.0, 0.01]);
        assert_eq!(Arrangement::of(&other), Arrangement::Other);
        // The odd feature with 80° gaps beside it, the others at 200/3°.
        let wide = at(&[90.0, 10.0, 170.0, 236.667, 303.333], 1.0);
        assert!((odd_gap_excess(&wide) - (80.0 - 200.0 / 3.0)).abs() < 1e-3);
    }

    #[test]
    fn canonical_pose_puts_the_odd_feature_up_and_feature_1_right() {
        let w = at(&[200.0, 130.0, 60.0, 0.0, 300.0], 1.0);
        let cfg = config(Profile::Quick);
        let weights = Weights::w_only(FEATURES, 2, w.clone());
        let records = instance_records(&weights, Some(&cfg.resolve().unwrap()[..1]), None);
        let v = canonical(&w, &records[0]);
        assert!(v[0][0].abs() < 1e-9 && (v[0][1] - 1.0).abs() < 1e-9);
        assert!(v[1][0] > 0.0);
        // Rotation and mirroring keep lengths and the angle between features.
        let dot = v[0][0] * v[1][0] + v[0][1] * v[1][1];
        assert!((dot - 70f64.to_radians().cos()).abs() < 1e-6);
    }

    /// Weights for a small version of the sweep (relative densities 2, 1, 1/2, 1/4, 1/8, two
    /// restarts each), judged by the verdict. `fit(point, restart)` gives each model's `W`
    /// and its loss; restart 0 is the kept one. Without a config the verdict compares the
    /// records' `final_loss` (the common-sample evaluation is covered by `reproduce`).
    fn judge(fit: impl Fn(usize, usize) -> (Vec<f32>, f64)) -> Verdict {
        let mut cfg = config(Profile::Quick);
        let sweep = cfg.sweep.as_mut().unwrap();
        sweep.one_feature_probability.as_mut().unwrap().values =
            Axis::Values(vec![0.1, 0.05, 0.025, 0.0125, 0.00625]);
        sweep.restarts = 2;
        let specs = cfg.resolve().unwrap();
        let fits: Vec<(Vec<f32>, f64)> =
            specs.iter().map(|s| fit(s.index / 2, s.restart)).collect();
        let w = fits.iter().flat_map(|f| f.0.clone()).collect();
        let weights = Weights::w_only(FEATURES, 2, w);
        let mut records = instance_records(&weights, Some(&specs), None);
        for (r, f) in records.iter_mut().zip(&fits) {
            r.selected = r.restart == 0;
            r.final_loss = Some(f.1);
        }
        let run = RunResult::analysed("non-uniform", None, weights, records);
        verdict(&run)
    }

    /// A pentagon whose odd feature's gaps follow its density (as measured), and two digons
    /// with the odd feature dropped.
    fn pentagon(point: usize) -> Vec<f32> {
        let beside = [75.0, 72.0, 69.0, 66.0, 64.0][point];
        let rest = (360.0 - 2.0 * beside) / 3.0;
        let a = [
            90.0,
            90.0 - beside,
            90.0 - beside - rest,
            90.0 + beside + rest,
            90.0 + beside,
        ];
        at(&a, 1.13)
    }

    fn digons() -> Vec<f32> {
        let mut w = vec![0.0, 0.0];
        w.extend(at(&[0.0, 180.0, 90.0, 270.0], 1.0));
        w
    }

    /// Loss curves as measured: the pentagon's falls more slowly with the odd feature's
    /// density; they cross at 3× sparser.
    fn loss(arrangement: Arrangement, point: usize) -> f64 {
        let sparser = 2f64.powi(point as i32 - 1);
        match arrangement {
            Arrangement::Pentagon => 1.0 - 0.1 * sparser.log2(),
            _ => 1.0 + 0.1 * 3f64.log2() - 0.2 * sparser.log2(),
        }
    }

    #[test]
    fn a_transition_between_the_geometries_passes() {
        // Pentagon kept at 2, 1, 1/2; digons at 1/4 and 1/8; both present everywhere.
        let v = judge(|point, restart| {
            let pentagon_kept = point < 3;
            if (restart == 0) == pentagon_kept {
                (pentagon(point), loss(Arrangement::Pentagon, point))
            } else {
                (digons(), loss(Arrangement::TwoDigons, point))
            }
        });
        assert!(v.reproduced, "{v:#?}");
        assert!(v.checks[3].measured.contains("3.00× sparser"), "{v:#?}");
    }

    #[test]
    fn pentagons_everywhere_fail() {
        // No digons at all: no crossover, no transition.
        let v = judge(|point, _| (pentagon(point), loss(Arrangement::Pentagon, point)));
        assert!(!v.reproduced);
        assert!(!v.checks[3].passed && !v.checks[4].passed, "{v:#?}");
        assert!(v.checks[..3].iter().all(|c| c.passed), "{v:#?}");
    }

    #[test]
    fn digons_kept_where_the_pentagon_is_better_fail() {
        // The fits are there, but the kept geometry disagrees with the loss curves.
        let v = judge(|point, restart| {
            if restart == 0 {
                (digons(), loss(Arrangement::TwoDigons, point))
            } else {
                (pentagon(point), loss(Arrangement::Pentagon, point))
            }
        });
        assert!(!v.reproduced);
        assert!(v.checks[3].passed && !v.checks[4].passed, "{v:#?}");
    }

    #[test]
    fn a_crossover_too_far_out_fails() {
        // The pentagon stays better down to 8× sparser.
        let v = judge(|point, restart| {
            if restart == 0 {
                (pentagon(point), loss(Arrangement::Pentagon, point))
            } else {
                (digons(), loss(Arrangement::TwoDigons, point) + 1.0)
            }
        });
        assert!(!v.reproduced && !v.checks[3].passed, "{v:#?}");
    }

    #[test]
    fn a_regular_pentagon_at_every_density_fails_the_angle_checks() {
        let v = judge(|point, restart| {
            let pentagon_kept = point < 3;
            if (restart == 0) == pentagon_kept {
                (pentagon(1), loss(Arrangement::Pentagon, point))
            } else {
                (digons(), loss(Arrangement::TwoDigons, point))
            }
        });
        assert!(!v.reproduced);
        assert!(!v.checks[1].passed && !v.checks[2].passed, "{v:#?}");
        assert!(v.checks[3].passed && v.checks[4].passed, "{v:#?}");
    }
}
