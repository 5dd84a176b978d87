//! `adversarial`: superposition makes models vulnerable to adversarial examples (paper,
//! "Relationship to Adversarial Robustness").
//!
//! The `uniform` models (n = 400, m = 30, I = 1, one per density; the same config, so
//! `reproduce all` judges uniform's training and trains nothing) are attacked on 1,024 fresh
//! rows of their own distribution with an L2 budget of ε = 0.1 × the rows' mean L2 norm. The
//! paper's analytic attack on feature i moves the input along row i of WᵀW,
//! δ_i = ε (WᵀW)_i / ‖(WᵀW)_i‖; each row gets the feature whose attack hurts it most.
//! Vulnerability = (L′ − L)/(L′₀ − L₀): the loss the attack adds, over what the same attack
//! adds to a model without superposition, the first m features on orthonormal axes with b = 0
//! (which loses exactly ε²·max I/n). The paper: vulnerability rises sharply as superposition forms and
//! tracks the features per dimension 1/D* = ‖W‖²_F/m.
//!
//! Beside it, a gradient attack: projected gradient ascent on each row's own δ in the same
//! ball (20 steps of ε/4 from a random start of length ε/2, on the first 256 rows). The paper
//! found gradient attacks fail on very sparse models (outputs whose ReLU is off give no
//! gradient); the figure shows what ours do. Adversarial training (the option the issue asks
//! for) is not built yet.

use super::{Experiment, Profile, Work};
use crate::analysis::adversarial::{attack, mean_norm, reference_weights, TiedModel};
use crate::analysis::verdict::{fmt_list, Check, Verdict};
use crate::config::TrainConfig;
use crate::data::source::DataSource;
use crate::model::ModelKind;
use crate::output::plots::{Figure, Series, SeriesStyle};
use crate::pipeline::RunResult;
use rayon::prelude::*;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "adversarial",
    section: "§5 Adversarial robustness",
    summary: "the uniform models under the analytic L2 attack: vulnerability rises with superposition and tracks 1/D*",
    claim: "Superposition makes a model vulnerable: under the analytic L2 attack \
            (‖δ‖ = 0.1 × the mean input norm) the loss increase, relative to a model without \
            superposition, rises sharply (more than 3×) as superposition forms and correlates \
            with the features per dimension 1/D* = ‖W‖²_F/m.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Attack budget: this fraction of the mean input L2 norm.
pub const RADIUS_SHARE: f64 = 0.1;
/// Rows attacked per model (analytic attack).
const ROWS: usize = 1024;
/// Rows attacked by gradient ascent (each costs 20 forward and backward passes).
const GRADIENT_ROWS: usize = 256;
/// Rise of the vulnerability from the densest to the most superposed model.
const MIN_RISE: f64 = 3.0;
/// Pearson correlation of vulnerability with 1/D* over the levels where superposition forms.
const MIN_CORRELATION: f64 = 0.9;
/// How much 1/D* must rise over the levels the correlation is judged on.
const MIN_SPAN: f64 = 2.0;

fn config(profile: Profile) -> TrainConfig {
    super::uniform::config(profile)
}

/// One attacked model.
#[derive(Clone, Debug)]
pub struct Point {
    /// Feature density 1 − S.
    pub density: f64,
    /// Features per dimension 1/D* = ‖W‖²_F / m.
    pub features_per_dimension: f64,
    /// Attack radius ε.
    pub radius: f64,
    /// (L′ − L)/(L′₀ − L₀) under the analytic attack.
    pub vulnerability: f64,
    /// The same under the gradient attack.
    pub gradient_vulnerability: f64,
    /// Whether nearly every feature (95 %) is represented (‖W_i‖ > 0.5): superposition has
    /// almost no features left to take in, and sparser levels mostly lengthen them.
    pub nearly_every_feature_represented: bool,
}

/// Attack every kept model of `run` (ReLU-output, with a config); densest first. The figures
/// and the verdict both ask for the points of the same run, one after the other: the last
/// result is kept, keyed by a hash of the weights and the config, so the attacks run once.
pub fn points(run: &RunResult) -> Vec<Point> {
    static LAST: Mutex<Option<(u64, Vec<Point>)>> = Mutex::new(None);
    let mut hasher = DefaultHasher::new();
    for v in run.weights.w.iter().chain(run.weights.b.iter().flatten()) {
        v.to_bits().hash(&mut hasher);
    }
    format!("{:?}", run.config).hash(&mut hasher);
    let key = hasher.finish();
    // A poisoned lock only means another thread panicked mid-update: recompute.
    if let Ok(last) = LAST.lock() {
        if let Some((k, pts)) = last.as_ref() {
            if *k == key {
                return pts.clone();
            }
        }
    }
    let pts = attack_all(run);
    if let Ok(mut last) = LAST.lock() {
        *last = Some((key, pts.clone()));
    }
    pts
}

fn attack_all(run: &RunResult) -> Vec<Point> {
    let Some(config) = run.config.as_ref() else {
        return Vec::new();
    };
    let Ok(all) = config.resolve() else {
        return Vec::new();
    };
    let (n, m) = (run.weights.features, run.weights.hidden);
    let seed = config.train.seed;
    let mut sel = run.selected();
    sel.sort_by(|a, b| b.density().total_cmp(&a.density()));
    sel.par_iter()
        .filter_map(|r| {
            let spec = all.iter().find(|s| s.index == r.index)?;
            if spec.kind != ModelKind::ReluOutput {
                return None;
            }
            let b = run.weights.instance_b(r.position)?;
            let w = run.w(r);
            // Fresh rows from the instance's evaluation stream, made row-major.
            let mut sampler =
                DataSource::evaluation(&spec.data, &spec.feature_probability, seed, r.index, ROWS);
            let mut cols = vec![0.0f32; n * ROWS];
            sampler.fill(&mut cols, ROWS);
            let x: Vec<f32> = (0..ROWS)
                .flat_map(|row| (0..n).map(move |i| (row, i)))
                .map(|(row, i)| cols[i * ROWS + row])
                .collect();
            let radius = RADIUS_SHARE * mean_norm(&x, n);
            let model = TiedModel {
                w,
                b,
                importance: &spec.importance,
                features: n,
                hidden: m,
            };
            let (w0, b0) = reference_weights(n, m);
            let reference = TiedModel {
                w: &w0,
                b: &b0,
                ..model
            };
            let hit = attack(&model, &x, radius, GRADIENT_ROWS);
            // The reference's rise is the same for both attacks (ε²/n: the best direction
            // moves one represented output by ε), so its gradient attack is not run.
            let base = attack(&reference, &x, radius, 0);
            let reference_rise = (base.analytic - base.clean).max(1e-30);
            let frobenius: f64 = w.iter().map(|&v| (v as f64).powi(2)).sum();
            Some(Point {
                density: r.density(),
                features_per_dimension: frobenius / m as f64,
                radius,
                vulnerability: (hit.analytic - hit.clean) / reference_rise,
                gradient_vulnerability: (hit.gradient - hit.clean) / reference_rise,
                nearly_every_feature_represented: r.represented as f64
                    >= super::uniform::NEARLY_ALL * n as f64,
            })
        })
        .collect()
}

/// Pearson correlation of two equally long series (0 when either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let k = a.len().min(b.len());
    if k < 2 {
        return 0.0;
    }
    let mean = |v: &[f64]| v[..k].iter().sum::<f64>() / k as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..k {
        let (da, db) = (a[i] - ma, b[i] - mb);
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let pts = points(run);
    let by_sparsity = |f: fn(&Point) -> f64| -> Vec<(f64, f64)> {
        pts.iter().map(|p| (1.0 / p.density, f(p))).collect()
    };
    vec![
        (
            "vulnerability".to_string(),
            Figure::Chart {
                title: "Vulnerability and features per dimension against sparsity".into(),
                x_label: "1/(1−S)".into(),
                y_label: "vulnerability (L′−L)/(L′₀−L₀); 1/D*".into(),
                log_x: true,
                log_y: false,
                series: vec![
                    Series {
                        label: "vulnerability, analytic attack".into(),
                        points: by_sparsity(|p| p.vulnerability),
                        style: SeriesStyle::Line,
                        colour: 0,
                    },
                    Series {
                        label: "vulnerability, gradient attack".into(),
                        points: by_sparsity(|p| p.gradient_vulnerability),
                        style: SeriesStyle::Line,
                        colour: 2,
                    },
                    Series {
                        label: "features per dimension 1/D*".into(),
                        points: by_sparsity(|p| p.features_per_dimension),
                        style: SeriesStyle::Line,
                        colour: 1,
                    },
                ],
                marks: Vec::new(),
            },
        ),
        (
            "vulnerability-vs-superposition".to_string(),
            Figure::Chart {
                title: "Vulnerability against features per dimension".into(),
                x_label: "features per dimension 1/D* = ‖W‖²/m".into(),
                y_label: "vulnerability (analytic attack)".into(),
                log_x: false,
                log_y: false,
                series: vec![Series {
                    label: "one model per density".into(),
                    points: pts
                        .iter()
                        .map(|p| (p.features_per_dimension, p.vulnerability))
                        .collect(),
                    style: SeriesStyle::Line,
                    colour: 0,
                }],
                marks: Vec::new(),
            },
        ),
    ]
}

/// Judge attack results (densest first).
fn judge_points(pts: &[Point]) -> Verdict {
    let v: Vec<f64> = pts.iter().map(|p| p.vulnerability).collect();
    let f: Vec<f64> = pts.iter().map(|p| p.features_per_dimension).collect();
    let g: Vec<f64> = pts.iter().map(|p| p.gradient_vulnerability).collect();
    let most = pts.iter().max_by(|a, b| {
        a.features_per_dimension
            .total_cmp(&b.features_per_dimension)
    });
    let rise = match (pts.first(), most) {
        (Some(d), Some(s)) if d.vulnerability > 0.0 => s.vulnerability / d.vulnerability,
        _ => 0.0,
    };
    // The claim is about superposition forming: the levels before nearly every feature is
    // represented. Sparser than that (the paper profile's 1/(1−S) beyond about 60) 1/D*
    // grows mostly through longer features while the biases turn more negative, and
    // vulnerability falls again. The judged levels must span a real rise of 1/D* (at least
    // 2×, the antipodal plateau), so that weights saturating early leave nothing to judge.
    let forming = pts
        .iter()
        .position(|p| p.nearly_every_feature_represented)
        .unwrap_or(pts.len());
    let r = pearson(&v[..forming], &f[..forming]);
    let span = match (f.first(), f[..forming].last()) {
        (Some(&a), Some(&b)) if a > 0.0 => b / a,
        _ => 0.0,
    };
    let beyond = if forming < pts.len() {
        format!(
            "; nearly every feature represented from 1/(1−S) = {:.0} on (r = {:.3} over all {} levels)",
            1.0 / pts[forming].density,
            pearson(&v, &f),
            pts.len()
        )
    } else {
        String::new()
    };
    Verdict::from_checks(vec![
        Check {
            name: "vulnerability rises as superposition forms".into(),
            passed: pts.len() >= 3 && rise > MIN_RISE,
            measured: format!(
                "{rise:.1}× from 1/(1−S) = {:.1} to the most superposed model (1/(1−S) = {:.1}); \
                 vulnerability, densest first: {} (gradient attack: {})",
                pts.first().map_or(f64::NAN, |p| 1.0 / p.density),
                most.map_or(f64::NAN, |p| 1.0 / p.density),
                fmt_list(&v, 2),
                fmt_list(&g, 2)
            ),
            expected: format!("more than {MIN_RISE}×"),
        },
        Check {
            name: "vulnerability tracks the features per dimension 1/D* while superposition forms"
                .into(),
            passed: forming >= 3 && span >= MIN_SPAN && r >= MIN_CORRELATION,
            measured: format!(
                "Pearson r = {r:.3} over the {forming} densest levels, before nearly every feature is represented, \
                 where 1/D* rises {span:.1}×{beyond}; 1/D*, densest first: {}",
                fmt_list(&f, 2)
            ),
            expected: format!(
                "r ≥ {MIN_CORRELATION} over the levels before 95 % of the features are represented, \
                 at least 3 of them, with 1/D* rising at least {MIN_SPAN}× over them"
            ),
        },
    ])
}

fn verdict(run: &RunResult) -> Verdict {
    let pts = points(run);
    if pts.is_empty() {
        return Verdict::from_checks(vec![Check {
            name: "attackable models".into(),
            passed: false,
            measured: "no ReLU-output model with its config and bias to attack".into(),
            expected: "the uniform sweep's models, with the run's config".into(),
        }]);
    }
    judge_points(&pts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(density: f64, fpd: f64, v: f64) -> Point {
        Point {
            density,
            features_per_dimension: fpd,
            radius: 0.1,
            vulnerability: v,
            gradient_vulnerability: v / 2.0,
            nearly_every_feature_represented: false,
        }
    }

    /// The paper profile's shape: vulnerability tracks 1/D* until every feature is
    /// represented, then falls while 1/D* levels off. Judged on the levels before.
    #[test]
    fn vulnerability_falling_once_every_feature_is_represented_passes() {
        let mut pts: Vec<Point> = (0..6)
            .map(|k| point(1.0 / (k + 1) as f64, 1.0 + k as f64, 1.0 + 1.1 * k as f64))
            .collect();
        for k in 6..10 {
            let fpd = 6.0 - 0.01 * (k - 5) as f64;
            let mut p = point(1.0 / (k + 1) as f64, fpd, 6.5 - (k - 5) as f64);
            p.nearly_every_feature_represented = true;
            pts.push(p);
        }
        let v = judge_points(&pts);
        assert!(v.reproduced, "{v:#?}");
        // The same tail while features are still being taken in is judged, and fails.
        for p in &mut pts {
            p.nearly_every_feature_represented = false;
        }
        let v = judge_points(&pts);
        assert!(!v.reproduced && !v.checks[1].passed, "{v:#?}");
        // Every feature represented from the start: nothing to judge the claim on.
        for p in &mut pts {
            p.nearly_every_feature_represented = true;
        }
        let v = judge_points(&pts);
        assert!(!v.reproduced && !v.checks[1].passed, "{v:#?}");
        // Saturated after three levels over which 1/D* rose only 1.4×: too little to judge.
        let mut pts: Vec<Point> = (0..8)
            .map(|k| point(1.0 / (k + 1) as f64, 1.0 + 0.2 * k as f64, 1.0 + k as f64))
            .collect();
        for p in &mut pts[3..] {
            p.nearly_every_feature_represented = true;
        }
        let v = judge_points(&pts);
        assert!(!v.reproduced && !v.checks[1].passed, "{v:#?}");
    }

    #[test]
    fn vulnerability_tracking_superposition_passes() {
        let pts: Vec<Point> = (0..6)
            .map(|k| point(1.0 / (k + 1) as f64, 1.0 + k as f64, 1.0 + 1.1 * k as f64))
            .collect();
        let v = judge_points(&pts);
        assert!(v.reproduced, "{v:#?}");
    }

    #[test]
    fn flat_vulnerability_fails() {
        let pts: Vec<Point> = (0..6)
            .map(|k| point(1.0 / (k + 1) as f64, 1.0 + k as f64, 1.0 + 0.01 * k as f64))
            .collect();
        let v = judge_points(&pts);
        assert!(!v.reproduced && !v.checks[0].passed, "{v:#?}");
    }

    #[test]
    fn vulnerability_unrelated_to_superposition_fails() {
        // Rises 5× but peaks where superposition is lowest among the sparse models.
        let v_of = [1.0, 5.0, 1.2, 0.8, 1.1, 5.0];
        let pts: Vec<Point> = (0..6)
            .map(|k| point(1.0 / (k + 1) as f64, 1.0 + k as f64, v_of[k]))
            .collect();
        let v = judge_points(&pts);
        assert!(!v.reproduced && !v.checks[1].passed, "{v:#?}");
    }

    /// Weights without superposition at every density (the first m features on orthonormal
    /// axes): every model is exactly as vulnerable as the reference, and the verdict fails.
    #[test]
    fn models_without_superposition_are_not_judged_vulnerable() {
        use crate::output::weights::Weights;
        use crate::pipeline::instance_records;
        let cfg = config(Profile::Quick);
        let specs = cfg.resolve().unwrap();
        let (n, m) = (cfg.model.features, cfg.model.hidden);
        let (w0, b0) = reference_weights(n, m);
        let weights = Weights {
            b: Some(b0.repeat(specs.len())),
            ..Weights::w_only(n, m, w0.repeat(specs.len()))
        };
        let records = instance_records(&weights, Some(&specs), None);
        let run = RunResult::analysed("adversarial", Some(cfg), weights, records);
        let pts = points(&run);
        assert_eq!(pts.len(), specs.len());
        for p in &pts {
            assert!((p.vulnerability - 1.0).abs() < 1e-9, "{p:?}");
            assert!((p.features_per_dimension - 1.0).abs() < 1e-9, "{p:?}");
        }
        let v = verdict(&run);
        assert!(
            !v.reproduced && !v.checks[0].passed && !v.checks[1].passed,
            "{v:#?}"
        );
    }

    #[test]
    fn pearson_of_a_line_is_one_and_of_a_constant_zero() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), 0.0);
    }
}
