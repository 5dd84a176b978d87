//! `correlated`: correlated and anticorrelated features (paper §4, "Correlated and
//! Anticorrelated Features").
//!
//! ReLU-output models with m = 2 and features of importance 1 in sets of two. A correlated
//! set is zero or active as a whole (active members get independent values); an
//! anticorrelated set, when active, has exactly one member non-zero. Three cases, each
//! trained as its own stage: two correlated pairs (n = 4, the main stage), two anticorrelated
//! pairs (n = 4, stage `anticorrelated`) and three correlated pairs (n = 6, stage
//! `three-sets`). The paper: correlated features are put orthogonal to each other,
//! anticorrelated ones antipodal, and with three correlated pairs in two dimensions the
//! partners sit side by side (positive interference is the cheaper kind), although sometimes
//! a set collapses onto one direction.
//!
//! Our choices, where the paper is silent: every set active with probability 0.02 (sparse
//! enough that the six-feature case prefers the hexagon: at 0.05 collapsing one set is as
//! good), the notebook's optimiser and 10,000 steps, 20 restarts per case (`paper`: 50), the
//! lowest-loss one kept. "Side by side" means the partners are neighbours in the angular
//! order with a positive cosine: in the trained hexagons the partners are 64° apart and the
//! next set 56° away, so "nearest neighbour" would call the paper's picture a failure.

use super::{sets_config, Experiment, Profile, Stages, Work};
use crate::analysis::geometry::{cosine, PlaneGeometry};
use crate::analysis::verdict::{Check, Verdict};
use crate::config::TrainConfig;
use crate::data::sampler::SetKind;
use crate::output::plots::{ArrowPanel, Figure, StackedBar};
use crate::pipeline::RunResult;

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "correlated",
    section: "§4 Correlated features",
    summary: "m=2: correlated pairs orthogonal, anticorrelated pairs antipodal, three correlated pairs side by side",
    claim: "Correlated features are put orthogonal to each other; anticorrelated features \
            antipodal; with more correlated sets than fit, partners sit side by side (positive \
            interference preferred), though a set sometimes collapses onto one direction.",
    work: Work::Train {
        config,
        after: Some(other_cases),
    },
    figures,
    verdict,
};

/// Probability that a set is active.
const SET_PROBABILITY: f64 = 0.02;
/// Partners count as orthogonal below this |cos|.
const ORTHOGONAL_COS: f64 = 0.2;
/// Partners count as antipodal below this cos.
const ANTIPODAL_COS: f64 = -0.9;
/// A set counts as collapsed (both members along one direction) above this cos.
const COLLAPSED_COS: f64 = 0.9;

/// Stage names of the other two cases.
const ANTICORRELATED: &str = "anticorrelated";
const THREE_SETS: &str = "three-sets";

fn restarts(profile: Profile) -> usize {
    match profile {
        Profile::Quick => 20,
        Profile::Paper => 50,
    }
}

/// `sets` pairs of features (0, 1), (2, 3), ... of one kind.
pub(super) fn case(name: &str, sets: usize, kind: SetKind, profile: Profile) -> TrainConfig {
    sets_config(name, (sets, 2, kind), 2, SET_PROBABILITY, restarts(profile))
}

fn config(profile: Profile) -> TrainConfig {
    case("correlated", 2, SetKind::Correlated, profile)
}

fn other_cases(stages: &mut Stages<'_>, run: &mut RunResult) -> anyhow::Result<()> {
    let profile = stages.options().profile;
    let anti = stages.train(
        ANTICORRELATED,
        case(ANTICORRELATED, 2, SetKind::Anticorrelated, profile),
    )?;
    run.stages.push(anti);
    let three = stages.train(
        THREE_SETS,
        case(THREE_SETS, 3, SetKind::Correlated, profile),
    )?;
    run.stages.push(three);
    Ok(())
}

/// How one fit arranged its sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Every feature represented, every set's partners orthogonal.
    Orthogonal,
    /// Every feature represented, every set's partners antipodal.
    Antipodal,
    /// Every feature represented, every set's partners angular neighbours with cos > 0 (and
    /// not collapsed).
    SideBySide,
    /// Some set collapsed onto one direction; every other set side by side.
    Collapsed,
    /// Anything else.
    Other,
}

const OUTCOMES: [Outcome; 5] = [
    Outcome::Orthogonal,
    Outcome::Antipodal,
    Outcome::SideBySide,
    Outcome::Collapsed,
    Outcome::Other,
];

impl Outcome {
    /// A short name for figure panels.
    fn short(self) -> &'static str {
        match self {
            Outcome::Orthogonal => "orthogonal",
            Outcome::Antipodal => "antipodal",
            Outcome::SideBySide => "side by side",
            Outcome::Collapsed => "a set collapsed",
            Outcome::Other => "other",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::Orthogonal => "partners orthogonal",
            Outcome::Antipodal => "partners antipodal",
            Outcome::SideBySide => "partners side by side",
            Outcome::Collapsed => "a set collapsed, the rest side by side",
            Outcome::Other => "other",
        }
    }

    /// Classify `w` (`[n][2]`, sets (0, 1), (2, 3), ...).
    fn of(w: &[f32]) -> Self {
        let n = w.len() / 2;
        let feature = |i: usize| &w[2 * i..2 * i + 2];
        let cos: Vec<f64> = (0..n / 2)
            .map(|s| cosine(feature(2 * s), feature(2 * s + 1)))
            .collect();
        let g = PlaneGeometry::of(w, n);
        let all_represented = g.features.len() == n;
        let neighbours = |a: usize, b: usize| {
            let k = g.features.len();
            let at = |f: usize| g.features.iter().position(|&x| x == f);
            match (at(a), at(b)) {
                (Some(i), Some(j)) => (i + 1) % k == j || (j + 1) % k == i,
                _ => false,
            }
        };
        let collapsed: Vec<bool> = (0..n / 2).map(|s| set_collapsed(w, s)).collect();
        let side_by_side = |s: usize| cos[s] > 0.0 && !collapsed[s] && neighbours(2 * s, 2 * s + 1);
        if all_represented && cos.iter().all(|c| c.abs() < ORTHOGONAL_COS) {
            Outcome::Orthogonal
        } else if all_represented && cos.iter().all(|&c| c < ANTIPODAL_COS) {
            Outcome::Antipodal
        } else if all_represented && (0..n / 2).all(side_by_side) {
            Outcome::SideBySide
        } else if collapsed.iter().any(|&c| c)
            && (0..n / 2).all(|s| collapsed[s] || side_by_side(s))
        {
            Outcome::Collapsed
        } else {
            Outcome::Other
        }
    }
}

/// Whether the pair `(2s, 2s + 1)` of `w` (`[n][m]`) collapsed onto one direction: both
/// members there (norm > 0.3) with cos > 0.9, i.e. the model keeps (a+b)/√2.
pub(super) fn set_collapsed(w: &[f32], s: usize) -> bool {
    let m = 2;
    let (a, b) = (
        &w[2 * s * m..(2 * s + 1) * m],
        &w[(2 * s + 1) * m..(2 * s + 2) * m],
    );
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    cosine(a, b) > COLLAPSED_COS && norm(a) > 0.3 && norm(b) > 0.3
}

/// One case's fits: the kept one's outcome and the partners' cosines, and the count of each
/// outcome over the restarts.
struct CaseResult {
    kept: Option<(Outcome, Vec<f64>)>,
    counts: Vec<usize>,
    restarts: usize,
}

impl CaseResult {
    fn of(run: &RunResult) -> Self {
        let mut counts = vec![0; OUTCOMES.len()];
        let mut kept = None;
        for r in &run.records {
            let w = run.w(r);
            let outcome = Outcome::of(w);
            counts[OUTCOMES.iter().position(|&o| o == outcome).unwrap_or(0)] += 1;
            if r.selected {
                let cos = (0..w.len() / 4)
                    .map(|s| cosine(&w[4 * s..4 * s + 2], &w[4 * s + 2..4 * s + 4]))
                    .collect();
                kept = Some((outcome, cos));
            }
        }
        CaseResult {
            kept,
            counts,
            restarts: run.records.len(),
        }
    }

    fn share(&self, outcome: Outcome) -> f64 {
        let k = OUTCOMES.iter().position(|&o| o == outcome).unwrap_or(0);
        self.counts[k] as f64 / self.restarts.max(1) as f64
    }

    /// "partners orthogonal 18/20, other 2/20".
    fn describe(&self) -> String {
        let parts: Vec<String> = OUTCOMES
            .iter()
            .zip(&self.counts)
            .filter(|(_, &c)| c > 0)
            .map(|(o, c)| format!("{} {c}/{}", o.name(), self.restarts))
            .collect();
        parts.join(", ")
    }

    fn kept_check(&self, name: &str, want: Outcome, expected: &str) -> Check {
        let fmt_cos = |cos: &[f64]| {
            cos.iter()
                .map(|c| format!("{c:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Check {
            name: name.into(),
            passed: self.kept.as_ref().is_some_and(|k| k.0 == want),
            measured: match &self.kept {
                Some((o, cos)) => format!(
                    "kept fit: {} (partner cos {}); restarts: {}",
                    o.name(),
                    fmt_cos(cos),
                    self.describe()
                ),
                None => "the case was not trained".into(),
            },
            expected: expected.into(),
        }
    }
}

fn stage<'a>(run: &'a RunResult, name: &str) -> Option<&'a RunResult> {
    run.stages.iter().find(|s| s.experiment == name)
}

fn verdict(run: &RunResult) -> Verdict {
    let correlated = CaseResult::of(run);
    let missing = || CaseResult {
        kept: None,
        counts: vec![0; OUTCOMES.len()],
        restarts: 0,
    };
    let anti = stage(run, ANTICORRELATED).map_or_else(missing, CaseResult::of);
    let three = stage(run, THREE_SETS).map_or_else(missing, CaseResult::of);
    let mut checks = vec![
        correlated.kept_check(
            "two correlated pairs (n = 4): the partners are orthogonal",
            Outcome::Orthogonal,
            &format!("every set's |cos| < {ORTHOGONAL_COS}, all features represented"),
        ),
        anti.kept_check(
            "two anticorrelated pairs (n = 4): the partners are antipodal",
            Outcome::Antipodal,
            &format!("every set's cos < {ANTIPODAL_COS}, all features represented"),
        ),
        three.kept_check(
            "three correlated pairs (n = 6): the partners sit side by side",
            Outcome::SideBySide,
            "every set's partners angular neighbours with cos > 0, no set collapsed",
        ),
    ];
    // The paper's "sometimes a set collapses": count collapsed fits with the side-by-side
    // ones when asking whether the uncollapsed sets sit side by side in most restarts.
    let side = three.share(Outcome::SideBySide) + three.share(Outcome::Collapsed);
    checks.push(Check {
        name: "three correlated pairs: in most restarts every uncollapsed set sits side by side"
            .into(),
        passed: side > 0.5,
        measured: format!("{:.0} % ({})", 100.0 * side, three.describe()),
        expected: "more than half of the restarts".into(),
    });
    Verdict::from_checks(checks)
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let cases: Vec<(&str, &RunResult)> = [("correlated", Some(run))]
        .into_iter()
        .chain([
            ("anticorrelated", stage(run, ANTICORRELATED)),
            ("3 correlated", stage(run, THREE_SETS)),
        ])
        .filter_map(|(label, r)| Some((label, r?)))
        .collect();
    // Per case: the kept fit, then the first restarts, partners in one colour.
    const PER_CASE: usize = 6;
    let mut panels = Vec::new();
    for (label, r) in &cases {
        let kept = r.records.iter().filter(|x| x.selected);
        let others = r.records.iter().filter(|x| !x.selected).take(PER_CASE - 1);
        for rec in kept.chain(others) {
            let w = r.w(rec);
            let n = w.len() / 2;
            let sets = (n / 2).max(2);
            panels.push(ArrowPanel {
                title: format!(
                    "{label} #{}{}: {}",
                    rec.restart,
                    if rec.selected { " kept" } else { "" },
                    Outcome::of(w).short()
                ),
                vectors: w
                    .chunks_exact(2)
                    .map(|v| [v[0] as f64, v[1] as f64])
                    .collect(),
                shade: (0..n).map(|i| (i / 2) as f64 / (sets - 1) as f64).collect(),
            });
        }
    }
    let bars = cases
        .iter()
        .map(|(label, r)| StackedBar {
            label: label.to_string(),
            counts: CaseResult::of(r).counts.iter().map(|&c| c as f64).collect(),
        })
        .collect();
    vec![
        (
            "features".into(),
            Figure::FeatureArrows {
                panels,
                columns: PER_CASE,
            },
        ),
        (
            "outcomes".into(),
            Figure::StackedBars {
                title: "what the restarts reached, per case".into(),
                y_label: "restarts".into(),
                categories: OUTCOMES.iter().map(|o| o.name().to_string()).collect(),
                bars,
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::geometry::plane_weights as at;
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;

    /// A run of `fits` (one `W` per restart, restart 0 kept) for the case `config`.
    fn run_of(name: &str, mut config: TrainConfig, fits: &[Vec<f32>]) -> RunResult {
        config.sweep.as_mut().unwrap().restarts = fits.len();
        let specs = config.resolve().unwrap();
        let weights = Weights::w_only(config.model.features, 2, fits.concat());
        let mut records = instance_records(&weights, Some(&specs), None);
        for r in &mut records {
            r.selected = r.restart == 0;
        }
        RunResult::analysed(name, Some(config), weights, records)
    }

    const ORTHOGONAL: [f64; 4] = [0.0, 90.0, 180.0, 270.0];
    const ANTIPODAL: [f64; 4] = [0.0, 180.0, 90.0, 270.0];
    const HEXAGON: [f64; 6] = [0.0, 64.0, 120.0, 184.0, 240.0, 304.0];
    const OPPOSITE: [f64; 6] = [0.0, 180.0, 60.0, 240.0, 120.0, 300.0];

    fn judge(pairs: &[f64], anti: &[f64], three: &[f64]) -> Verdict {
        let p = Profile::Quick;
        let mut run = run_of(
            "correlated",
            config(p),
            &[at(pairs, 1.0), at(&ANTIPODAL, 1.0)],
        );
        let anti_case = case(ANTICORRELATED, 2, SetKind::Anticorrelated, p);
        run.stages.push(run_of(
            ANTICORRELATED,
            anti_case,
            &[at(anti, 1.0), at(&ORTHOGONAL, 1.0)],
        ));
        let three_case = case(THREE_SETS, 3, SetKind::Correlated, p);
        let fits = [at(three, 1.0), at(three, 1.0), at(&OPPOSITE, 1.0)];
        run.stages.push(run_of(THREE_SETS, three_case, &fits));
        verdict(&run)
    }

    #[test]
    fn the_papers_arrangements_pass() {
        let v = judge(&ORTHOGONAL, &ANTIPODAL, &HEXAGON);
        assert!(v.reproduced, "{v:#?}");
        assert!(v.checks[3].measured.contains("67 %"), "{v:#?}");
    }

    #[test]
    fn arrangements_that_ignore_the_correlations_fail() {
        let v = judge(&ANTIPODAL, &ORTHOGONAL, &OPPOSITE);
        assert!(!v.reproduced);
        assert!(v.checks.iter().all(|c| !c.passed), "{v:#?}");
    }

    #[test]
    fn missing_stages_fail() {
        let run = run_of(
            "correlated",
            config(Profile::Quick),
            &[at(&ORTHOGONAL, 1.0)],
        );
        let v = verdict(&run);
        assert!(v.checks[0].passed && !v.checks[1].passed && !v.checks[2].passed);
        assert!(!v.reproduced);
    }

    #[test]
    fn outcomes_are_classified() {
        // Two pairs, partners orthogonal, sets antipodal to each other.
        assert_eq!(
            Outcome::of(&at(&[0.0, 90.0, 180.0, 270.0], 1.0)),
            Outcome::Orthogonal
        );
        assert_eq!(
            Outcome::of(&at(&[0.0, 180.0, 90.0, 270.0], 1.0)),
            Outcome::Antipodal
        );
        // The trained hexagon: partners 64° apart, the next set 56° away.
        let hexagon = at(&[0.0, 64.0, 120.0, 184.0, 240.0, 304.0], 1.0);
        assert_eq!(Outcome::of(&hexagon), Outcome::SideBySide);
        // The independent-feature hexagon may put partners opposite: not side by side.
        let opposite = at(&[0.0, 180.0, 60.0, 240.0, 120.0, 300.0], 1.0);
        assert_eq!(Outcome::of(&opposite), Outcome::Antipodal);
        // Set 0 collapsed onto one direction at norm 0.71, the others side by side.
        let mut collapsed = at(&[0.0, 0.5], 0.71);
        collapsed.extend(at(&[110.0, 165.0, 250.0, 305.0], 1.0));
        assert_eq!(Outcome::of(&collapsed), Outcome::Collapsed);
        // Partners side by side but not neighbours (another feature between them).
        let interleaved = at(&[0.0, 100.0, 50.0, 170.0, 240.0, 300.0], 1.0);
        assert_eq!(Outcome::of(&interleaved), Outcome::Other);
    }
}
