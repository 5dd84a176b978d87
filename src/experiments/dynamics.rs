//! `dynamics`: learning dynamics of uniform superposition (paper §4, "Superposition and
//! Learning Dynamics").
//!
//! The `uniform` setup (n = 400 features of importance 1, m = 30, ReLU-output model) at one
//! density on the digon plateau, with the weights saved on an evenly spaced grid of steps. The
//! paper: every feature's fractional dimensionality D_i moves between "sticky" values (0, 1/2,
//! 1) in sudden jumps rather than drifting, and each jump comes with a drop of the loss.
//!
//! Our choices, where the paper is silent: density 1 − S = 0.3 (1/(1−S) ≈ 3.3, the middle of
//! the D* = 1/2 plateau, so the learned features end as digons), the notebook's optimiser,
//! 5,000 steps and 125 snapshots (`paper`: 20,000 steps, 400 snapshots; the jumps are over by
//! step 3,000), time on a linear axis. A value is "sticky" within 0.05 of 0, 1/2 or 1, and a
//! feature that is not represented (‖W_i‖ < 0.5) counts as at 0: before any feature is learned
//! all 400 have small norms and D_i ≈ 0.1, a number set by the random directions of the
//! initialisation rather than by any geometry. A feature sits on a plateau when it
//! stays at one such value for at least 3 % of the run, and jumps when it goes from one plateau
//! to another within 20 % of the run. Only features whose D_i ever exceeds 0.25 are followed
//! (the ~340 never-learned ones sit near 0 throughout and would make "sticky" trivially true).
//! The loss check leaves out the first 500 steps, where the loss falls from its initial value
//! while the bias is learned, and asks that the loss fall during the jumps: at least 60 %
//! of the later drop, and at least 1.5× as fast as on average (measured over seeds 0..20:
//! 83–98 % of the drop, 1.8–2.6× as fast).

use super::{Experiment, Profile, Work};
use crate::analysis::metrics::{FeatureMetrics, REPRESENTED_NORM};
use crate::analysis::verdict::{Check, Verdict};
use crate::config::{PerFeature, Snapshots, Spacing, SweepConfig, TrainConfig};
use crate::output::plots::{Figure, Mark, Series, SeriesStyle};
use crate::pipeline::RunResult;

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "dynamics",
    section: "§4 Learning Dynamics",
    summary: "uniform n=400, m=30 at 1−S=0.3: D_i jumps between sticky values, with the loss",
    claim: "Over training, the features' dimensionalities D_i jump between sticky values \
            (0, 1/2, 1) rather than drift, and the jumps coincide with drops of the loss.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Density of every feature: 1/(1−S) ≈ 3.3, on the D* = 1/2 plateau of `uniform`.
const DENSITY: f64 = 0.3;

/// The sticky values of D_i, and how close counts as on one.
const LEVELS: [f64; 3] = [0.0, 0.5, 1.0];
const NEAR: f64 = 0.05;
/// Features whose D_i ever exceeds this are followed.
const MOVING: f64 = 0.25;
/// Shortest plateau and longest jump, as fractions of the run.
const PLATEAU: f64 = 0.03;
const JUMP: f64 = 0.2;
/// Steps left out of the loss check (the jumps start near step 1,000 whatever the run's length).
const BURN_IN: u64 = 500;

/// Share of the time the followed features must be on a sticky value.
const STICKY_SHARE: f64 = 0.6;
/// Share of the later loss drop that must happen during jumps, and how much faster than on
/// average the loss must fall there.
const DROP_SHARE: f64 = 0.6;
const DROP_SPEED: f64 = 1.5;

fn config(profile: Profile) -> TrainConfig {
    let (steps, snapshots) = match profile {
        Profile::Quick => (5_000, 125),
        Profile::Paper => (20_000, 400),
    };
    // The `uniform` model, at one density, with snapshots.
    let mut c = super::uniform::config(profile);
    c.name = "dynamics".into();
    c.train.steps = steps;
    c.train.snapshots = Some(Snapshots::Spaced {
        count: snapshots,
        spacing: Spacing::Linear,
    });
    c.data.feature_probability = PerFeature::All(DENSITY);
    c.sweep = Some(SweepConfig::default());
    c
}

/// The sticky value a feature of dimensionality `d` and norm `norm` sits on, if any (a
/// feature that is not represented is at 0).
fn level_of(d: f64, norm: f64) -> Option<usize> {
    if norm < REPRESENTED_NORM {
        return Some(0);
    }
    LEVELS.iter().position(|&l| (d - l).abs() <= NEAR)
}

/// One feature's D_i and ‖W_i‖ at each snapshot.
#[derive(Clone, Debug, Default)]
struct Trace {
    dims: Vec<f64>,
    norms: Vec<f64>,
}

impl Trace {
    fn level(&self, j: usize) -> Option<usize> {
        level_of(self.dims[j], self.norms[j])
    }
}

/// A stay of one feature at one sticky value.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Plateau {
    level: usize,
    first: u64,
    last: u64,
}

/// A move of one feature from one plateau to the next.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Jump {
    feature: usize,
    from: f64,
    to: f64,
    /// Last step on the old plateau and first step on the new one.
    start: u64,
    end: u64,
}

/// The plateaus of one feature (snapshot `j` at `steps[j]`) lasting at least `min_len` steps.
fn plateaus(steps: &[u64], trace: &Trace, min_len: u64) -> Vec<Plateau> {
    let mut out = Vec::new();
    let mut j = 0;
    let len = trace.dims.len();
    while j < len {
        let Some(level) = trace.level(j) else {
            j += 1;
            continue;
        };
        let mut k = j;
        while k + 1 < len && trace.level(k + 1) == Some(level) {
            k += 1;
        }
        if steps[k] - steps[j] >= min_len {
            out.push(Plateau {
                level,
                first: steps[j],
                last: steps[k],
            });
        }
        j = k + 1;
    }
    out
}

/// The D_i series of the followed features.
struct Traces {
    steps: Vec<u64>,
    /// `(feature, its trace)`.
    features: Vec<(usize, Trace)>,
    /// The run's length in steps.
    total: u64,
}

impl Traces {
    /// The kept instance's traces, when the run has snapshots.
    fn of(run: &RunResult) -> Option<Self> {
        let t = run.trained.as_ref()?;
        let record = *run.selected().first()?;
        let (n, m) = (t.shape.features, t.shape.hidden);
        let steps: Vec<u64> = t.snapshots.iter().map(|s| s.step).collect();
        let mut traces = vec![Trace::default(); n];
        for s in &t.snapshots {
            let w = t.shape.encoder(&s.params[record.position]);
            let metrics = FeatureMetrics::compute(w, n, m);
            for (i, trace) in traces.iter_mut().enumerate() {
                trace.dims.push(metrics.fractional_dimensionality[i]);
                trace.norms.push(metrics.feature_norms[i]);
            }
        }
        let features = traces
            .into_iter()
            .enumerate()
            .filter(|(_, t)| t.dims.iter().any(|&x| x > MOVING))
            .collect();
        Some(Traces {
            total: *steps.last()?,
            steps,
            features,
        })
    }

    /// Share of the time (step-weighted) the followed features spend on a sticky value.
    fn sticky_share(&self) -> f64 {
        let (mut on, mut all) = (0.0, 0.0);
        for (_, trace) in &self.features {
            for j in 0..self.steps.len().saturating_sub(1) {
                let dt = (self.steps[j + 1] - self.steps[j]) as f64;
                all += dt;
                if trace.level(j).is_some() {
                    on += dt;
                }
            }
        }
        if all > 0.0 {
            on / all
        } else {
            0.0
        }
    }

    /// Every jump of every followed feature.
    fn jumps(&self) -> Vec<Jump> {
        let min_len = (PLATEAU * self.total as f64) as u64;
        let max_gap = (JUMP * self.total as f64) as u64;
        let mut out = Vec::new();
        for (feature, trace) in &self.features {
            for pair in plateaus(&self.steps, trace, min_len).windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if a.level != b.level && b.first - a.last <= max_gap {
                    out.push(Jump {
                        feature: *feature,
                        from: LEVELS[a.level],
                        to: LEVELS[b.level],
                        start: a.last,
                        end: b.first,
                    });
                }
            }
        }
        out
    }
}

/// The union of the jumps' windows, as sorted disjoint intervals.
fn windows(jumps: &[Jump]) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = jumps.iter().map(|j| (j.start, j.end)).collect();
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// How the loss fell after the burn-in: (share of the drop during the windows, share of the
/// time they cover, the whole drop). `steps[k]` ends the logged block of mean loss `loss[k]`.
fn loss_during(steps: &[u64], loss: &[f64], windows: &[(u64, u64)], total: u64) -> (f64, f64, f64) {
    let from = BURN_IN.min(total / 2);
    let inside = |a: u64, b: u64| windows.iter().any(|&(s, e)| a < e && b > s);
    let (mut drop_in, mut drop_all, mut time_in, mut time_all) = (0.0, 0.0, 0.0, 0.0);
    for k in 1..steps.len() {
        let (a, b) = (steps[k - 1], steps[k]);
        if a < from {
            continue;
        }
        let (drop, dt) = (loss[k - 1] - loss[k], (b - a) as f64);
        drop_all += drop;
        time_all += dt;
        if inside(a, b) {
            drop_in += drop;
            time_in += dt;
        }
    }
    if drop_all <= 0.0 || time_all <= 0.0 {
        return (0.0, time_in / time_all.max(1.0), drop_all);
    }
    (drop_in / drop_all, time_in / time_all, drop_all)
}

/// The kept instance's loss curve.
fn loss_curve(run: &RunResult) -> Option<(Vec<u64>, Vec<f64>)> {
    let t = run.trained.as_ref()?;
    let k = run.selected().first()?.position;
    Some((
        t.log_steps.clone(),
        t.log_loss.iter().map(|row| row[k]).collect(),
    ))
}

fn verdict(run: &RunResult) -> Verdict {
    let (Some(traces), Some((steps, loss))) = (Traces::of(run), loss_curve(run)) else {
        return Verdict::from_checks(vec![Check {
            name: "snapshots and a loss curve to follow".into(),
            passed: false,
            measured: "none: the run did not train with snapshots".into(),
            expected: "the weights during training".into(),
        }]);
    };
    let sticky = traces.sticky_share();
    let jumps = traces.jumps();
    let spans = windows(&jumps);
    let (drop_share, time_share, drop) = loss_during(&steps, &loss, &spans, traces.total);
    let kinds = {
        let mut seen: Vec<String> = Vec::new();
        for j in &jumps {
            let s = format!("{} → {}", j.from, j.to);
            if !seen.contains(&s) {
                seen.push(s);
            }
        }
        seen.join(", ")
    };
    let checks = vec![
        Check {
            name: "D_i sits on sticky values (0, 1/2, 1) most of the time".into(),
            passed: !traces.features.is_empty() && sticky >= STICKY_SHARE,
            measured: format!(
                "{:.0} % of the time, over the {} features that move",
                100.0 * sticky,
                traces.features.len()
            ),
            expected: format!(
                "≥ {:.0} % (within {NEAR} of a sticky value)",
                100.0 * STICKY_SHARE
            ),
        },
        Check {
            name: "D_i jumps between plateaus".into(),
            passed: !jumps.is_empty(),
            measured: format!(
                "{} jump(s) by {} feature(s){}",
                jumps.len(),
                {
                    let mut f: Vec<usize> = jumps.iter().map(|j| j.feature).collect();
                    f.sort_unstable();
                    f.dedup();
                    f.len()
                },
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!(": {kinds}")
                }
            ),
            expected: format!(
                "≥ 1 (plateaus of ≥ {:.0} % of the run, joined within {:.0} %)",
                100.0 * PLATEAU,
                100.0 * JUMP
            ),
        },
        Check {
            name: "the loss drops while features jump".into(),
            passed: drop > 0.0 && drop_share >= DROP_SHARE && drop_share >= DROP_SPEED * time_share,
            measured: format!(
                "{:.0} % of the drop after step {}, in {:.0} % of the time",
                100.0 * drop_share,
                BURN_IN.min(traces.total / 2),
                100.0 * time_share
            ),
            expected: format!(
                "≥ {:.0} % of the drop, ≥ {DROP_SPEED}× its share of the time",
                100.0 * DROP_SHARE
            ),
        },
    ];
    Verdict::from_checks(checks)
}

/// Most traces drawn (the first followed features; the verdict uses all of them).
const DRAWN: usize = 60;

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let (Some(traces), Some((steps, loss))) = (Traces::of(run), loss_curve(run)) else {
        return Vec::new();
    };
    let series = traces
        .features
        .iter()
        .take(DRAWN)
        .enumerate()
        .map(|(k, (_, trace))| Series {
            label: String::new(),
            points: traces
                .steps
                .iter()
                .zip(&trace.dims)
                .map(|(&s, &y)| (s as f64, y))
                .collect(),
            style: SeriesStyle::Trace,
            colour: k,
        })
        .collect();
    let dims = Figure::Chart {
        title: format!(
            "D_i over training ({} of the {} features that move)",
            traces.features.len().min(DRAWN),
            traces.features.len()
        ),
        x_label: "step".into(),
        y_label: "fractional dimensionality D_i".into(),
        log_x: false,
        log_y: false,
        series,
        marks: Vec::new(),
    };
    let marks = windows(&traces.jumps())
        .iter()
        .flat_map(|&(a, b)| {
            [
                Mark {
                    x: a as f64,
                    label: "jumps from".into(),
                },
                Mark {
                    x: b as f64,
                    label: "to".into(),
                },
            ]
        })
        .collect();
    let losses = Figure::Chart {
        title: "training loss, with the span of the detected jumps".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        log_x: false,
        log_y: false,
        series: vec![Series {
            label: "loss".into(),
            points: steps
                .iter()
                .zip(&loss)
                .map(|(&s, &y)| (s as f64, y))
                .collect(),
            style: SeriesStyle::Trace,
            colour: 0,
        }],
        marks,
    };
    vec![("dimensionality".into(), dims), ("jumps".into(), losses)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::geometry::plane_weights;
    use crate::model::cpu::KernelVariant;
    use crate::model::{ModelKind, Shape};
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;
    use crate::train::{Snapshot, Trained};
    use std::time::Duration;

    /// Judge a hand-made run of n = 2, m = 2 over 10,000 steps: `degrees(t)` places the two
    /// features (norm 1) at time `t` in [0, 1]; `loss(t)` is the training loss.
    fn judge(degrees: impl Fn(f64) -> Vec<f64>, loss: impl Fn(f64) -> f64) -> Verdict {
        verdict(&run_of(degrees, loss))
    }

    /// The hand-made run `judge` judges.
    fn run_of(degrees: impl Fn(f64) -> Vec<f64>, loss: impl Fn(f64) -> f64) -> RunResult {
        let mut cfg = config(Profile::Quick);
        cfg.model.features = 2;
        cfg.model.hidden = 2;
        let specs = cfg.resolve().unwrap();
        let shape = Shape {
            kind: ModelKind::ReluOutput,
            features: 2,
            hidden: 2,
        };
        let params_at = |t: f64| {
            let mut p = plane_weights(&degrees(t), 1.0);
            p.extend([0.0; 2]);
            p
        };
        let snapshots: Vec<Snapshot> = (0..=100)
            .map(|k| Snapshot {
                step: k * 100,
                params: vec![params_at(k as f64 / 100.0)],
            })
            .collect();
        let log_steps: Vec<u64> = (1..=200).map(|k| k * 50).collect();
        let log_loss = log_steps
            .iter()
            .map(|&s| vec![loss(s as f64 / 10_000.0)])
            .collect();
        let final_params = params_at(1.0);
        let weights = Weights::from_params(
            &shape,
            &[shape.kind],
            std::slice::from_ref(&final_params),
            None,
        );
        let records = instance_records(&weights, Some(&specs), None);
        let mut run = RunResult::analysed("dynamics", Some(cfg), weights, records);
        run.trained = Some(Trained {
            shape,
            specs,
            params: vec![final_params],
            log_steps,
            log_loss,
            final_loss: vec![loss(1.0)],
            train_set_loss: None,
            snapshots,
            elapsed: Duration::ZERO,
            variant: KernelVariant::Portable,
            passes: vec![crate::train::TrainPass::Fused],
            final_state: None,
        });
        run
    }

    /// An antipodal pair that turns into two orthogonal features (D_i 1/2 → 1) between t0
    /// and t0 + 0.1.
    fn pair_splitting(t0: f64) -> impl Fn(f64) -> Vec<f64> {
        move |t| vec![0.0, 180.0 - 90.0 * ((t - t0) / 0.1).clamp(0.0, 1.0)]
    }

    /// A loss that falls by 1 between t0 and t0 + 0.1, and is flat otherwise.
    fn drop_at(t0: f64) -> impl Fn(f64) -> f64 {
        move |t| 2.0 - ((t - t0) / 0.1).clamp(0.0, 1.0)
    }

    #[test]
    fn a_jump_with_a_loss_drop_passes() {
        let v = judge(pair_splitting(0.3), drop_at(0.3));
        assert!(v.reproduced, "{v:#?}");
    }

    #[test]
    fn a_slow_drift_fails() {
        // The pair splits evenly over the whole run.
        let drift = |t: f64| vec![0.0, 180.0 - 90.0 * t];
        let v = judge(drift, drop_at(0.3));
        assert!(
            !v.reproduced && !v.checks[0].passed && !v.checks[1].passed,
            "{v:#?}"
        );
    }

    #[test]
    fn a_loss_drop_away_from_the_jumps_fails() {
        let v = judge(pair_splitting(0.3), drop_at(0.7));
        assert!(!v.reproduced && !v.checks[2].passed, "{v:#?}");
        assert!(v.checks[0].passed && v.checks[1].passed, "{v:#?}");
    }

    #[test]
    fn a_run_without_snapshots_is_not_judged_reproduced() {
        let cfg = config(Profile::Quick);
        let weights = Weights::w_only(4, 2, plane_weights(&[0.0, 90.0, 180.0, 270.0], 1.0));
        let run = RunResult::analysed("dynamics", Some(cfg), weights, Vec::new());
        assert!(!verdict(&run).reproduced);
        // Trained, but without snapshots.
        let mut run = run_of(pair_splitting(0.3), drop_at(0.3));
        run.trained.as_mut().unwrap().snapshots.clear();
        assert!(!verdict(&run).reproduced);
    }

    fn steps() -> Vec<u64> {
        (0..=100).map(|k| k * 100).collect()
    }

    /// A represented feature's trace (norm 1) with dimensionalities `dims`.
    fn trace(dims: Vec<f64>) -> Trace {
        Trace {
            norms: vec![1.0; dims.len()],
            dims,
        }
    }

    #[test]
    fn a_feature_that_is_not_represented_is_at_zero() {
        assert_eq!(level_of(0.12, 0.3), Some(0));
        assert_eq!(level_of(0.12, 0.8), None);
        assert_eq!(level_of(0.52, 1.0), Some(1));
        assert_eq!(level_of(0.97, 1.0), Some(2));
    }

    #[test]
    fn plateaus_and_a_jump_are_found() {
        let s = steps();
        // On 0 until step 2000, rising over 1000 steps, then on 1/2.
        let d: Vec<f64> = s
            .iter()
            .map(|&t| match t {
                0..=2000 => 0.01,
                2001..=2999 => 0.01 + 0.49 * (t - 2000) as f64 / 1000.0,
                _ => 0.5,
            })
            .collect();
        let d = trace(d);
        let p = plateaus(&s, &d, 300);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!((p[0].level, p[0].last), (0, 2000));
        assert_eq!((p[1].level, p[1].first), (1, 2900));
        let traces = Traces {
            steps: s.clone(),
            features: vec![(7, d)],
            total: 10_000,
        };
        let jumps = traces.jumps();
        assert_eq!(jumps.len(), 1);
        assert_eq!(
            (jumps[0].feature, jumps[0].start, jumps[0].end),
            (7, 2000, 2900)
        );
        assert!(traces.sticky_share() > 0.85);
    }

    #[test]
    fn a_slow_drift_is_not_a_jump() {
        let s = steps();
        // From 0 to 1/2 evenly over the whole run: never sticky in between, no jump.
        let d: Vec<f64> = s.iter().map(|&t| 0.5 * t as f64 / 10_000.0).collect();
        let traces = Traces {
            steps: s,
            features: vec![(0, trace(d))],
            total: 10_000,
        };
        assert!(traces.jumps().is_empty());
        assert!(traces.sticky_share() < 0.3);
    }

    #[test]
    fn windows_merge_and_the_loss_is_attributed() {
        let jump = |start, end| Jump {
            feature: 0,
            from: 0.0,
            to: 0.5,
            start,
            end,
        };
        let w = windows(&[jump(2000, 3000), jump(2500, 3500), jump(6000, 6500)]);
        assert_eq!(w, vec![(2000, 3500), (6000, 6500)]);
        let s = steps();
        // Flat, except for a drop of 1.0 during 2000..3500.
        let loss: Vec<f64> = s
            .iter()
            .map(|&t| 2.0 - ((t.clamp(2000, 3500) - 2000) as f64 / 1500.0))
            .collect();
        let (share, time, drop) = loss_during(&s, &loss, &w, 10_000);
        assert!((share - 1.0).abs() < 1e-9 && (drop - 1.0).abs() < 1e-9);
        assert!(time > 0.15 && time < 0.3, "{time}");
        // The same drop away from the jumps.
        let late: Vec<f64> = s
            .iter()
            .map(|&t| 2.0 - ((t.clamp(8000, 9500) - 8000) as f64 / 1500.0))
            .collect();
        let (share, _, _) = loss_during(&s, &late, &w, 10_000);
        assert!(share < 0.1);
    }
}
