//! Every experiment's verdict can say "not reproduced": hand-made weights that do not show the
//! paper's result (another experiment's kind of solution, the right geometry perturbed, the
//! phase regions swapped, random weights, ...) must fail the check that targets them, while
//! hand-made weights that do show it pass. No training: weights are built by hand, analysed
//! by the pipeline and judged, in well under a second per test.
//!
//! Tests marked `#[ignore]` document verdict weaknesses: wrong weights the verdict currently
//! accepts. They assert the behaviour a fixed verdict should have.

use super::{Experiment, Profile};
use crate::analysis::theory::{phase_2_1, phase_3_2, Phase};
use crate::analysis::{Check, Verdict};
use crate::config::{InstanceSpec, TrainConfig};
use crate::output::weights::Weights;
use crate::pipeline::{instance_records, RunResult};

// ---- Construction: the only places that know the pipeline's types and paths. ----

/// The experiment's config at the quick profile.
fn config_of(e: &Experiment) -> TrainConfig {
    let options = super::ExperimentOptions {
        profile: Profile::Quick,
        ..Default::default()
    };
    e.configure(&options).expect("an experiment that trains")
}

/// Analyse `weights` as a run of `config`, and judge it with the experiment's verdict.
fn run_of(
    e: &Experiment,
    config: &TrainConfig,
    weights: Weights,
    final_loss: Option<Vec<f64>>,
) -> RunResult {
    let specs = config.resolve().expect("the experiment's config resolves");
    let records = instance_records(&weights, Some(&specs), final_loss.as_deref());
    let mut run = RunResult::analysed(e.name, Some(config.clone()), weights, records);
    run.verdict = Some((e.verdict)(&run));
    run
}

/// Weights for every instance of `config`: `w_of(spec, level)` gives instance `spec`'s `W`
/// (`[n][m]`), where `level` numbers the config's distinct feature densities from the
/// densest (0).
fn weights_of(config: &TrainConfig, w_of: impl Fn(&InstanceSpec, usize) -> Vec<f32>) -> Weights {
    let specs = config.resolve().expect("the experiment's config resolves");
    let (n, m) = (config.model.features, config.model.hidden);
    let mut densities: Vec<f32> = specs.iter().map(|s| s.feature_probability[0]).collect();
    densities.sort_by(|a, b| b.total_cmp(a));
    densities.dedup();
    let mut w = Vec::with_capacity(specs.len() * n * m);
    for spec in &specs {
        let level = densities
            .iter()
            .position(|&p| p == spec.feature_probability[0])
            .expect("a density of the sweep");
        let wi = w_of(spec, level);
        assert_eq!(
            wi.len(),
            n * m,
            "W of instance {} has the wrong size",
            spec.index
        );
        w.extend(wi);
    }
    let kinds: Vec<_> = specs.iter().map(|s| s.kind).collect();
    Weights {
        instances: specs.len(),
        features: n,
        hidden: m,
        w,
        b: None,
        w_dec: None,
        kind: Some(config.model.kind),
        kinds: kinds
            .iter()
            .any(|&k| k != config.model.kind)
            .then_some(kinds),
        config: None,
    }
}

// ---- Shared helpers. ----

fn experiment(name: &str) -> &'static Experiment {
    super::find(name).unwrap_or_else(|| panic!("no experiment {name}"))
}

fn verdict_of(run: &RunResult) -> &Verdict {
    run.verdict.as_ref().expect("run_of judges the run")
}

/// The one check whose name contains `part`.
fn check<'a>(v: &'a Verdict, part: &str) -> &'a Check {
    let found: Vec<&Check> = v.checks.iter().filter(|c| c.name.contains(part)).collect();
    assert_eq!(found.len(), 1, "checks named like {part:?}: {v:#?}");
    found[0]
}

/// Assert that exactly the checks named like `failing` fail (each substring naming one check)
/// and every other check passes; no failing check means the verdict must be "reproduced".
#[track_caller]
fn expect_failures(run: &RunResult, failing: &[&str]) {
    let v = verdict_of(run);
    assert!(!v.checks.is_empty(), "{}: no checks", run.experiment);
    for part in failing {
        let c = check(v, part);
        assert!(
            !c.passed,
            "{}: {part:?} should fail: {v:#?}",
            run.experiment
        );
    }
    for c in &v.checks {
        if !failing.iter().any(|part| c.name.contains(part)) {
            assert!(
                c.passed,
                "{}: {:?} should pass: {v:#?}",
                run.experiment, c.name
            );
        }
    }
    assert_eq!(
        v.reproduced,
        failing.is_empty(),
        "{}: {v:#?}",
        run.experiment
    );
}

/// `W` (`[n][m]`) built as a tegum product: structures in consecutive hidden dimensions (so
/// different structures are orthogonal), features in order; features left over are zero.
struct Tegum {
    n: usize,
    m: usize,
    w: Vec<f32>,
    feature: usize,
    dim: usize,
}

impl Tegum {
    fn new(n: usize, m: usize) -> Self {
        Tegum {
            n,
            m,
            w: vec![0.0; n * m],
            feature: 0,
            dim: 0,
        }
    }

    fn put(&mut self, values: &[(usize, f32)]) {
        assert!(self.feature < self.n, "more than {} features", self.n);
        for &(d, v) in values {
            assert!(d < self.m, "more than {} dimensions", self.m);
            self.w[self.feature * self.m + d] = v;
        }
        self.feature += 1;
    }

    /// Leave the next `k` features unrepresented.
    fn skip(mut self, k: usize) -> Self {
        self.feature += k;
        self
    }

    /// `k` features with a dimension each, of norm `norm`.
    fn dedicated(mut self, k: usize, norm: f32) -> Self {
        for _ in 0..k {
            let d = self.dim;
            self.put(&[(d, norm)]);
            self.dim += 1;
        }
        self
    }

    /// `k` antipodal pairs, one dimension each.
    fn digons(self, k: usize) -> Self {
        self.antipodal(k, 1.0)
    }

    /// `k` antipodal pairs, one dimension each: a unit feature and one of norm `second`.
    fn antipodal(mut self, k: usize, second: f32) -> Self {
        for _ in 0..k {
            let d = self.dim;
            self.put(&[(d, 1.0)]);
            self.put(&[(d, -second)]);
            self.dim += 1;
        }
        self
    }

    /// `count` sets of unit vectors at the given angles (degrees), two dimensions each.
    fn planar(mut self, count: usize, degrees: &[f64]) -> Self {
        for _ in 0..count {
            let d = self.dim;
            for a in degrees {
                let a = a.to_radians();
                self.put(&[(d, a.cos() as f32), (d + 1, a.sin() as f32)]);
            }
            self.dim += 2;
        }
        self
    }

    /// `count` regular `k`-gons.
    fn polygons(self, count: usize, k: usize) -> Self {
        let degrees: Vec<f64> = (0..k).map(|t| 360.0 * t as f64 / k as f64).collect();
        self.planar(count, &degrees)
    }

    fn done(self) -> Vec<f32> {
        assert!(self.feature <= self.n && self.dim <= self.m);
        self.w
    }
}

// ---- linear-vs-relu (paper §2, catalog E2): n = 20, m = 5. ----

mod linear_vs_relu {
    use super::*;
    use crate::model::ModelKind;

    const N: usize = 20;
    const M: usize = 5;

    /// The top 5 features, one dimension each (PCA): the linear model's solution.
    fn pca(norm: f32) -> Vec<f32> {
        Tegum::new(N, M).dedicated(M, norm).done()
    }

    /// The paper's ReLU solution at density level k (0 = dense): the top 5 − k features
    /// dedicated, the next ones in antipodal pairs in the remaining dimensions.
    fn relu_solution(level: usize) -> Vec<f32> {
        let d = M.saturating_sub(level);
        Tegum::new(N, M).dedicated(d, 1.0).digons(M - d).done()
    }

    /// Superposition starting with the most important features: pairs first, then dedicated.
    fn important_first(level: usize) -> Vec<f32> {
        let d = M.saturating_sub(level);
        Tegum::new(N, M).digons(M - d).dedicated(d, 1.0).done()
    }

    fn judge(linear: impl Fn(usize) -> Vec<f32>, relu: impl Fn(usize) -> Vec<f32>) -> RunResult {
        let e = experiment("linear-vs-relu");
        let config = config_of(e);
        let weights = weights_of(&config, |spec, level| match spec.kind {
            ModelKind::Linear => linear(level),
            _ => relu(level),
        });
        run_of(e, &config, weights, None)
    }

    #[test]
    fn pca_for_linear_and_growing_superposition_for_relu_pass() {
        let run = judge(|_| pca(1.0), relu_solution);
        expect_failures(&run, &[]);
    }

    /// The linear model given the ReLU model's solution (antipodal pairs) fails both linear
    /// checks; the ReLU checks are untouched.
    #[test]
    fn a_linear_model_in_superposition_fails() {
        let run = judge(relu_solution, relu_solution);
        expect_failures(
            &run,
            &[
                "linear model: exactly the top 5",
                "linear model: WᵀW is the projection",
            ],
        );
    }

    /// The top 5 features, but shrunk to norm 0.7: still "represented", WᵀW not a projection.
    #[test]
    fn a_shrunk_linear_solution_is_not_a_projection() {
        let run = judge(|_| pca(0.7), relu_solution);
        expect_failures(&run, &["WᵀW is the projection"]);
    }

    /// The ReLU model given the linear solution at every density: no superposition.
    #[test]
    fn a_relu_model_that_never_superposes_fails() {
        let run = judge(|_| pca(1.0), |_| pca(1.0));
        expect_failures(
            &run,
            &[
                "more features represented as sparsity grows",
                "superposition starts with the less important",
            ],
        );
        assert!(check(verdict_of(&run), "superposition starts")
            .measured
            .contains("no ReLU instance"));
    }

    /// The right counts, but the most important features are the ones put in superposition.
    #[test]
    fn superposition_of_the_most_important_features_fails() {
        let run = judge(|_| pca(1.0), important_first);
        expect_failures(&run, &["superposition starts with the less important"]);
    }

    /// The ReLU model's dense instance already superposes (the sparse solution everywhere).
    #[test]
    fn a_dense_relu_model_in_superposition_fails() {
        let run = judge(|_| pca(1.0), |_| relu_solution(M));
        expect_failures(
            &run,
            &[
                "ReLU model, dense",
                "more features represented as sparsity grows",
            ],
        );
    }
}

// ---- sweep-100 (notebook §2 scale, catalog E2c): n = 100, m = 20, 20 densities. ----

mod sweep_100 {
    use super::*;

    const N: usize = 100;
    const M: usize = 20;

    fn judge(w_of: impl Fn(usize) -> Vec<f32>) -> RunResult {
        let e = experiment("sweep-100");
        let config = config_of(e);
        let weights = weights_of(&config, |_, level| w_of(level));
        run_of(e, &config, weights, None)
    }

    /// Level k: the top 20 − k features dedicated, then k antipodal pairs of the next ones
    /// (20 + k represented, the less important in superposition).
    fn growing(level: usize) -> Vec<f32> {
        let d = M - level.min(M);
        Tegum::new(N, M).dedicated(d, 1.0).digons(M - d).done()
    }

    #[test]
    fn growing_superposition_of_unimportant_features_passes() {
        expect_failures(&judge(growing), &[]);
    }

    /// The same counts, with the most important features put in the pairs.
    #[test]
    fn superposing_the_most_important_features_fails() {
        let run = judge(|level| {
            let d = M - level.min(M);
            Tegum::new(N, M).digons(M - d).dedicated(d, 1.0).done()
        });
        expect_failures(&run, &["the superposed features are the less important"]);
    }

    /// All features orthogonal, no superposition: the top 20 at every density.
    #[test]
    fn no_superposition_at_any_density_fails() {
        let run = judge(|_| Tegum::new(N, M).dedicated(M, 1.0).done());
        expect_failures(
            &run,
            &[
                "more features are represented",
                "the superposed features are the less important",
            ],
        );
    }

    /// The densest instance represents the 20 least important features instead of the top 20.
    #[test]
    fn a_dense_model_keeping_the_least_important_features_fails() {
        let run = judge(|level| match level {
            0 => Tegum::new(N, M).skip(N - M).dedicated(M, 1.0).done(),
            k => growing(k),
        });
        expect_failures(&run, &["dense data"]);
    }

    /// The diagram of the sweep reversed: the sparsest instance holds the dense solution and
    /// the densest the sparse one.
    #[test]
    fn the_sweep_reversed_fails() {
        let run = judge(|level| growing(19 - level));
        expect_failures(&run, &["more features are represented", "dense data"]);
    }
}

// ---- phase-2-1 and phase-3-2 (paper §3, catalog E3/E4). ----

mod phase {
    use super::*;

    /// The extra feature's importance r and the density p of an instance.
    fn r_p(spec: &InstanceSpec, extra: usize) -> (f64, f64) {
        (
            spec.importance[extra] as f64,
            spec.feature_probability[0] as f64,
        )
    }

    /// n = 2, m = 1: W for each phase.
    fn w_2_1(phase: Phase) -> Vec<f32> {
        match phase {
            Phase::NotRepresented => vec![1.0, 0.0],
            Phase::Dedicated => vec![0.0, 1.0],
            Phase::Superposition => vec![1.0, -1.0],
        }
    }

    /// n = 3, m = 2: W of each candidate of [`phase_3_2`] (index of its loss): extra dropped;
    /// a regular feature dropped, extra dedicated; regular pair antipodal, extra dedicated;
    /// extra antipodal with a regular feature.
    fn w_3_2(candidate: usize) -> Vec<f32> {
        match candidate {
            0 => vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            1 => vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0],
            2 => vec![1.0, 0.0, -1.0, 0.0, 0.0, 1.0],
            _ => vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0],
        }
    }

    fn best_3_2(r: f64, p: f64) -> usize {
        let losses = phase_3_2(r, p).1;
        (0..4)
            .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
            .expect("four candidates")
    }

    fn judge_2_1(w_of: impl Fn(&InstanceSpec) -> Vec<f32>, loss: Option<Vec<f64>>) -> RunResult {
        let e = experiment("phase-2-1");
        let config = config_of(e);
        let weights = weights_of(&config, |spec, _| w_of(spec));
        run_of(e, &config, weights, loss)
    }

    fn judge_3_2(w_of: impl Fn(&InstanceSpec) -> Vec<f32>) -> RunResult {
        let e = experiment("phase-3-2");
        let config = config_of(e);
        let weights = weights_of(&config, |spec, _| w_of(spec));
        run_of(e, &config, weights, None)
    }

    fn theory_2_1(spec: &InstanceSpec) -> Phase {
        let (r, p) = r_p(spec, 1);
        phase_2_1(r, p).0
    }

    /// The regions swapped: the extra feature dropped where theory dedicates it a dimension
    /// and vice versa (as if the importances were mirrored, r → 1/r).
    fn swapped_2_1(spec: &InstanceSpec) -> Phase {
        match theory_2_1(spec) {
            Phase::NotRepresented => Phase::Dedicated,
            Phase::Dedicated => Phase::NotRepresented,
            Phase::Superposition => Phase::Superposition,
        }
    }

    #[test]
    fn phase_2_1_theory_passes_and_swapped_regions_fail() {
        expect_failures(&judge_2_1(|s| w_2_1(theory_2_1(s)), None), &[]);
        let run = judge_2_1(|s| w_2_1(swapped_2_1(s)), None);
        expect_failures(&run, &["diagrams agree"]);
    }

    /// A model that never drops the extra feature (superposition wherever theory drops it):
    /// the dropped region is small enough (19 of 144 cells) that the agreement check alone
    /// accepts it; the "all three phases" check catches it.
    #[test]
    fn phase_2_1_without_the_not_represented_phase_fails() {
        let run = judge_2_1(
            |s| match theory_2_1(s) {
                Phase::NotRepresented => w_2_1(Phase::Superposition),
                ph => w_2_1(ph),
            },
            None,
        );
        expect_failures(&run, &["all three phases"]);
    }

    /// No superposition anywhere: each cell takes the better of dropping or dedicating.
    #[test]
    fn phase_2_1_without_superposition_fails() {
        let run = judge_2_1(
            |s| {
                let (r, _) = r_p(s, 1);
                match theory_2_1(s) {
                    Phase::Superposition if r < 1.0 => w_2_1(Phase::NotRepresented),
                    Phase::Superposition => w_2_1(Phase::Dedicated),
                    ph => w_2_1(ph),
                }
            },
            None,
        );
        expect_failures(&run, &["all three phases", "diagrams agree"]);
    }

    /// Restart selection: restart 0 holds the theoretical solution, restarts 1–4 the swapped
    /// diagram. The verdict judges the lowest-loss restart of each cell, so it passes when
    /// restart 0 has the lowest loss and fails when the others do.
    #[test]
    fn phase_2_1_judges_the_lowest_loss_restart() {
        let e = experiment("phase-2-1");
        let config = config_of(e);
        let specs = config.resolve().unwrap();
        assert!(
            specs.iter().any(|s| s.restart > 0),
            "the quick profile trains restarts"
        );
        let w_of = |s: &InstanceSpec| match s.restart {
            0 => w_2_1(theory_2_1(s)),
            _ => w_2_1(swapped_2_1(s)),
        };
        let loss = |restart0: f64| -> Option<Vec<f64>> {
            Some(
                specs
                    .iter()
                    .map(|s| if s.restart == 0 { restart0 } else { 0.5 })
                    .collect(),
            )
        };
        expect_failures(&judge_2_1(w_of, loss(0.1)), &[]);
        expect_failures(&judge_2_1(w_of, loss(1.0)), &["diagrams agree"]);
    }

    /// WEAKNESS: the dedicated region is 19 of 144 cells, fewer than the 21 cells the 85%
    /// agreement threshold forgives. A diagram that keeps one dedicated cell and superposes
    /// the extra feature in the other 18 agrees on 87.5% of cells and shows all three phases,
    /// so it passes although the dedicated region is essentially missing. A per-phase check
    /// (each theoretical region mostly recovered) would catch it.
    #[test]
    #[ignore = "verdict weakness: the 85% agreement forgives a whole minority phase region"]
    fn phase_2_1_missing_most_of_the_dedicated_region_should_fail() {
        let e = experiment("phase-2-1");
        let config = config_of(e);
        let specs = config.resolve().unwrap();
        let first_dedicated = specs
            .iter()
            .find(|s| theory_2_1(s) == Phase::Dedicated)
            .map(|s| s.index)
            .unwrap();
        let run = judge_2_1(
            |s| match theory_2_1(s) {
                Phase::Dedicated if s.index != first_dedicated => w_2_1(Phase::Superposition),
                ph => w_2_1(ph),
            },
            None,
        );
        assert!(!verdict_of(&run).reproduced, "{:#?}", verdict_of(&run));
    }

    #[test]
    fn phase_3_2_theory_passes() {
        let run = judge_3_2(|s| {
            let (r, p) = r_p(s, 2);
            w_3_2(best_3_2(r, p))
        });
        expect_failures(&run, &[]);
    }

    /// The local minimum the experiment's docs mention: where theory makes the regular pair
    /// antipodal (extra dedicated), the extra feature is made antipodal with a regular one.
    #[test]
    fn phase_3_2_with_the_wrong_pair_antipodal_fails() {
        let run = judge_3_2(|s| {
            let (r, p) = r_p(s, 2);
            match best_3_2(r, p) {
                2 => w_3_2(3),
                k => w_3_2(k),
            }
        });
        expect_failures(&run, &["diagrams agree"]);
    }

    /// The theoretical solution scaled down (‖W_i‖² = 0.25): nothing is represented.
    #[test]
    fn phase_3_2_scaled_down_fails() {
        let run = judge_3_2(|s| {
            let (r, p) = r_p(s, 2);
            w_3_2(best_3_2(r, p)).iter().map(|x| 0.5 * x).collect()
        });
        expect_failures(&run, &["all three phases", "diagrams agree"]);
    }
}

// ---- uniform and geometry (paper §4, catalog E5/E6): n = 400, m = 30, I = 1. ----

mod uniform {
    use super::*;

    const N: usize = 400;
    const M: usize = 30;

    /// `c` dedicated features, `b` regular pentagons, and antipodal pairs in the remaining
    /// dimensions: 60 − c + b features in 30 dimensions, D* = 30 / (60 − c + b).
    fn mix(c: usize, b: usize) -> Vec<f32> {
        Tegum::new(N, M)
            .dedicated(c, 1.0)
            .polygons(b, 5)
            .digons(M - c - 2 * b)
            .done()
    }

    /// (c, b) per level, densest first: D* = 1, 1, 0.83, 0.68, 0.58, three levels at 1/2, then
    /// pentagons take over down to 0.4.
    const PAPER_LIKE: [(usize, usize); 12] = [
        (30, 0),
        (30, 0),
        (24, 0),
        (16, 0),
        (8, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 3),
        (0, 7),
        (0, 11),
        (0, 15),
    ];

    fn judge(name: &str, w_of: impl Fn(usize) -> Vec<f32>) -> RunResult {
        let e = experiment(name);
        let config = config_of(e);
        assert_eq!(config.sweep.as_ref().unwrap().restarts, 1);
        let weights = weights_of(&config, |_, level| w_of(level));
        run_of(e, &config, weights, None)
    }

    fn paper_like(level: usize) -> Vec<f32> {
        let (c, b) = PAPER_LIKE[level];
        mix(c, b)
    }

    #[test]
    fn uniform_paper_like_passes() {
        expect_failures(&judge("uniform", paper_like), &[]);
    }

    /// All features orthogonal, no superposition: D* = 1 at every density.
    #[test]
    fn uniform_without_superposition_fails() {
        let run = judge("uniform", |_| mix(M, 0));
        expect_failures(
            &run,
            &[
                "D* falls",
                "sticky at 1/2",
                "superposition in whole features",
            ],
        );
    }

    /// D* falls straight past 1/2 (0.58 → 0.45): no level on the plateau.
    #[test]
    fn uniform_without_the_half_plateau_fails() {
        const LEVELS: [(usize, usize); 12] = [
            (30, 0),
            (30, 0),
            (24, 0),
            (16, 0),
            (8, 0),
            (0, 7),
            (0, 9),
            (0, 11),
            (0, 12),
            (0, 13),
            (0, 14),
            (0, 15),
        ];
        let run = judge("uniform", |level| mix(LEVELS[level].0, LEVELS[level].1));
        expect_failures(&run, &["sticky at 1/2"]);
    }

    /// The sparse solution (antipodal pairs) already at the densest level.
    #[test]
    fn uniform_with_dense_features_in_superposition_fails() {
        let run = judge("uniform", |level| mix(0, PAPER_LIKE[level].1));
        expect_failures(&run, &["dense features: one dimension each"]);
    }

    /// One sparse level falls back to the dense solution (D* jumps from 1/2 back to 1).
    #[test]
    fn uniform_with_a_rise_in_d_star_fails() {
        let run = judge("uniform", |level| match level {
            9 => mix(M, 0),
            k => paper_like(k),
        });
        expect_failures(&run, &["D* falls"]);
    }

    /// D* = m/‖W‖²_F sees only the Frobenius norm: thirty orthogonal features (no superposition
    /// at all) whose norms grow as 1/√D* reproduce the paper-like D* curve exactly. They are
    /// whole features of one length, so only the count (at least 1.5 per dimension) and the
    /// length (near 1 until nearly every feature is represented) catch it.
    #[test]
    fn uniform_orthogonal_features_with_growing_norms_fail() {
        let run = judge("uniform", |level| {
            let (c, b) = PAPER_LIKE[level];
            let d_star = M as f32 / (60 - c + b) as f32;
            Tegum::new(N, M).dedicated(M, 1.0 / d_star.sqrt()).done()
        });
        expect_failures(&run, &["superposition in whole features"]);
    }

    /// 1.5 features per dimension (15 dedicated, 15 antipodal pairs) at every sparse level,
    /// their norms grown to follow the paper-like D* curve (‖W_i‖² from 1.33 to 1.67): enough
    /// features, one common length, but lengths far from 1 with most features unrepresented.
    #[test]
    fn uniform_few_features_with_growing_norms_fail() {
        let run = judge("uniform", |level| {
            let (c, b) = PAPER_LIKE[level];
            if c > 0 {
                return paper_like(level);
            }
            let d_star = M as f32 / (60 + b) as f32;
            let scale = (M as f32 / (45.0 * d_star)).sqrt();
            let w = Tegum::new(N, M).dedicated(15, 1.0).digons(15).done();
            w.into_iter().map(|x| x * scale).collect()
        });
        expect_failures(&run, &["superposition in whole features"]);
    }

    /// The paper profile's sparsest levels: nearly every feature represented (here 390 of
    /// 400, in 26-gons), each lengthened to ‖W_i‖² = 1.6 as the biases turn negative. Whole
    /// features of one length still pass.
    #[test]
    fn uniform_lengthened_features_once_nearly_all_are_represented_pass() {
        let run = judge("uniform", |level| {
            if level < 10 {
                return paper_like(level);
            }
            let w = Tegum::new(N, M).polygons(M / 2, 26).done();
            w.into_iter().map(|x| x * 1.6f32.sqrt()).collect()
        });
        expect_failures(&run, &[]);
    }

    /// The same lengthening while most features are still unrepresented (67 to 75 of 400):
    /// norm growth standing in for superposition.
    #[test]
    fn uniform_lengthened_features_before_saturation_fail() {
        let run = judge("uniform", |level| {
            let scale = if level >= 9 { 1.6f32.sqrt() } else { 1.0 };
            paper_like(level).into_iter().map(|w| w * scale).collect()
        });
        expect_failures(&run, &["superposition in whole features"]);
    }

    /// At the sparse levels a third of the features shrunk to ‖W_i‖² = 0.36 and the others
    /// lengthened to 1.32 (‖W‖², so D*, nearly unchanged): the norm no longer sits in whole
    /// features of one length.
    #[test]
    fn uniform_shrunk_features_fail() {
        let run = judge("uniform", |level| {
            let mut w = paper_like(level);
            if level >= 5 {
                for (i, row) in w.chunks_mut(M).enumerate() {
                    let scale = if i % 3 == 0 { 0.6 } else { 1.32f32.sqrt() };
                    row.iter_mut().for_each(|x| *x *= scale);
                }
            }
            w
        });
        expect_failures(&run, &["superposition in whole features"]);
    }

    /// "sticky at 1/2" once needed only two consecutive levels within 0.04 of 1/2. The quick
    /// grid's levels are 1.23× apart in 1/(1−S), so a smooth power law with no plateau,
    /// D* ≈ (1/(1−S))^−0.4 (from 1 to 0.4), puts two levels (0.517 and 0.476) in the band;
    /// the check now also asks for a step there at most 0.6× as steep as the fall around it
    /// (log-log slopes; a power law has the same slope everywhere).
    #[test]
    fn uniform_smooth_power_law_fails_the_plateau_check() {
        // 30, 33, 35, 38, 42, 45, 49, 53, 58, 63, 68, 75 features: D* ≈ 0.4^(level/11).
        const LEVELS: [(usize, usize); 12] = [
            (30, 0),
            (27, 0),
            (25, 0),
            (22, 0),
            (18, 0),
            (15, 0),
            (11, 0),
            (7, 0),
            (2, 0),
            (0, 3),
            (0, 8),
            (0, 15),
        ];
        let run = judge("uniform", |level| mix(LEVELS[level].0, LEVELS[level].1));
        assert!(
            !check(verdict_of(&run), "sticky at 1/2").passed,
            "{:#?}",
            verdict_of(&run)
        );
    }

    #[test]
    fn geometry_paper_like_passes() {
        expect_failures(&judge("geometry", paper_like), &[]);
    }

    /// Random Gaussian weights (unit norm on average; an untrained model): one big tangle,
    /// no polytopes.
    #[test]
    fn geometry_of_random_weights_fails() {
        let run = judge("geometry", |level| {
            let mut rng = crate::data::LaneRng::new(level as u64 + 1);
            let scale = 1.0 / (M as f64).sqrt();
            (0..N * M)
                .map(|_| (rng.next_normal() * scale) as f32)
                .collect()
        });
        expect_failures(
            &run,
            &[
                "D_i clusters",
                "digons (antipodal pairs)",
                "other polytopes appear",
            ],
        );
    }

    /// Pentagons with one feature dropped (four vectors 72° apart): not a uniform polytope,
    /// so no polytope other than digons is found; the digons and D_i clusters still pass.
    #[test]
    fn geometry_with_pentagons_missing_a_vertex_fails() {
        let run = judge("geometry", |level| {
            let (c, b) = PAPER_LIKE[level];
            Tegum::new(N, M)
                .dedicated(c, 1.0)
                .planar(b, &[0.0, 72.0, 144.0, 216.0])
                .digons(M - c - 2 * b)
                .done()
        });
        expect_failures(&run, &["other polytopes appear"]);
    }

    /// Antipodal pairs of unequal norms (1 and 0.6): found as digons, but their D_i are
    /// 1/(1 + 0.36) and 0.36/(1 + 0.36), not 1/2 (the mean of each pair still is).
    #[test]
    fn geometry_with_unequal_digons_fails() {
        let run = judge("geometry", |level| {
            let (c, b) = PAPER_LIKE[level];
            Tegum::new(N, M)
                .dedicated(c, 1.0)
                .polygons(b, 5)
                .antipodal(M - c - 2 * b, 0.6)
                .done()
        });
        expect_failures(&run, &["digons (antipodal pairs)"]);
    }

    /// "Pentagons" whose five vectors bunch within 80° (0°, 20°, ..., 80°): found as
    /// pentagons (five features in two dimensions), but their D_i are far below 2/5.
    #[test]
    fn geometry_with_bunched_pentagons_fails() {
        let run = judge("geometry", |level| {
            let (c, b) = PAPER_LIKE[level];
            Tegum::new(N, M)
                .dedicated(c, 1.0)
                .planar(b, &[0.0, 20.0, 40.0, 60.0, 80.0])
                .digons(M - c - 2 * b)
                .done()
        });
        let others = check(verdict_of(&run), "other polytopes appear");
        assert!(
            !others.passed && others.measured.contains("× pentagon"),
            "{others:#?}"
        );
    }

    /// Crowded digons: every antipodal pair leans towards the next dimension (axis
    /// e_d + 0.25 e_(d+1), |cos| 0.24 between neighbours: still separate digons), so every D_i
    /// is about 0.45, not 1/2.
    #[test]
    fn geometry_with_crowded_digons_fails() {
        let run = judge("geometry", |_| {
            let mut w = vec![0.0f32; N * M];
            let norm = (1.0f32 + 0.25 * 0.25).sqrt();
            for d in 0..M {
                for (k, sign) in [(2 * d, 1.0f32), (2 * d + 1, -1.0)] {
                    w[k * M + d] = sign / norm;
                    w[k * M + (d + 1) % M] = sign * 0.25 / norm;
                }
            }
            w
        });
        let v = verdict_of(&run);
        let digons = check(v, "digons (antipodal pairs)");
        assert!(
            !digons.passed && digons.measured.contains("× digon"),
            "{digons:#?}"
        );
    }

    /// Triangles where the paper finds antipodal pairs: no digons at all.
    #[test]
    fn geometry_with_triangles_instead_of_digons_fails() {
        let run = judge("geometry", |level| {
            let c = PAPER_LIKE[level].0;
            Tegum::new(N, M)
                .dedicated(c, 1.0)
                .polygons((M - c) / 2, 3)
                .done()
        });
        expect_failures(&run, &["digons (antipodal pairs)"]);
    }
}
