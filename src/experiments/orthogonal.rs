//! `orthogonal`: how many almost-orthogonal directions fit in d dimensions (the intuition of
//! the paper's "Superposition Hypothesis"; catalog F3).
//!
//! Only d vectors are orthogonal in d dimensions; exponentially many in d·ε² are almost
//! orthogonal (|cos| ≤ ε). Popular demonstrations overstate it: 10,000 vectors in 100
//! dimensions cannot all lie within 89°–91° (Welch: some pair has |cos| ≥ 0.0995, at most 103
//! vectors fit in ±1°). This experiment measures it:
//! * random vectors (Gaussian and ±1/√d) in d = 100 and 1,000: cos spreads as 1/√d;
//! * 10,000 vectors in 100 dimensions (the paper profile; the quick profile packs 2,000, whose
//!   Welch bound is 0.0975), optimised (see [`crate::orthogonal::pack`]): their largest |cos|
//!   respects the lower bound and comes within 2× of it. The bound is Welch's up to d(d+1)/2
//!   vectors; beyond (10,000 in 100 dimensions) no equiangular set exists and Levenshtein's
//!   bound is the larger (0.1400 against Welch's 0.0995), so the check uses it there;
//! * capacity: the most vectors an optimised packing keeps within 90° ± 1°, 5°, 10°, 20° for
//!   small d, beside Welch's cap and the random guarantee exp(dε²/4); within ±1° nothing
//!   beats the d orthogonal vectors except where Welch allows it.
//!
//! The packing is saved as `weights.safetensors` (`W`: [1, N, 100]); the numbers are in
//! `metrics.json` under `results`.

use serde::{Deserialize, Serialize};

use super::{Experiment, ExperimentOptions, Profile, Work};
use crate::analysis::verdict::{Check, Verdict};
use crate::orthogonal::{
    capacity, cosine_stats, line_angle, line_packing_bound, pack, random_guarantee, welch_bound,
    welch_cap, window_cos, Capacity, CosineStats, PackSettings, Packing, RandomKind, BIN_DEGREES,
};
use crate::output::plots::{Figure, Series, SeriesStyle};
use crate::output::weights::Weights;
use crate::pipeline::RunResult;
use crate::train::Progress;

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "orthogonal",
    section: "§1 Superposition hypothesis",
    summary: "almost-orthogonal vectors: random cosines spread as 1/√d; 10,000 packed in 100 dims against Welch's and Levenshtein's bounds; capacity per window",
    claim: "Only d vectors are orthogonal in d dimensions, but exponentially many (in d·ε²) are \
            almost orthogonal. Measured: random cosines have standard deviation 1/√d; an \
            optimised packing of 10,000 vectors in 100 dimensions cannot beat the lower bound \
            on its largest |cos| (Welch's 0.0995, or Levenshtein's 0.1400 beyond d(d+1)/2 \
            vectors) and comes within 2× of it; within 90° ± 1° no more than \
            d vectors fit unless Welch's cap allows it.",
    work: Work::Compute(compute),
    figures,
    verdict,
};

/// Random vectors per cosine-spread check.
const RANDOM_COUNT: usize = 2000;
/// Dimensions of the cosine-spread checks.
const RANDOM_DIMS: [usize; 2] = [100, 1000];
/// The random cosines' standard deviation is within this share of 1/√d.
const SPREAD_TOLERANCE: f64 = 0.05;
/// The packing of the headline claim (the paper profile; the quick profile packs fewer).
const PACK_COUNT: usize = 10_000;
/// Vectors the quick profile packs (same dimensions, same 2× check; Welch's bound applies).
const QUICK_PACK_COUNT: usize = 2_000;
/// Dimensions of the packing.
const PACK_DIM: usize = 100;
/// "Within 2× of the lower bound" (Welch's, or Levenshtein's beyond d(d+1)/2 vectors).
const BOUND_FACTOR: f64 = 2.0;
/// Windows of the capacity figure, degrees either side of 90°.
pub const WINDOWS: [f64; 4] = [1.0, 5.0, 10.0, 20.0];

/// Settings of one profile.
struct Plan {
    pack_count: usize,
    pack_steps: usize,
    capacity_dims: &'static [usize],
    capacity_budget: usize,
    capacity_steps: usize,
}

fn plan(profile: Profile) -> Plan {
    match profile {
        Profile::Quick => Plan {
            pack_count: QUICK_PACK_COUNT,
            pack_steps: 200,
            capacity_dims: &[2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 100],
            capacity_budget: 512,
            capacity_steps: 300,
        },
        Profile::Paper => Plan {
            pack_count: PACK_COUNT,
            pack_steps: 1000,
            capacity_dims: &[2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 100, 200],
            capacity_budget: 4096,
            capacity_steps: 600,
        },
    }
}

/// The cosine spread of one set of random vectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// How they were drawn.
    pub kind: RandomKind,
    /// Vectors.
    pub count: usize,
    /// Dimensions.
    pub dim: usize,
    /// Standard deviation of the pairwise cosines.
    pub std: f64,
    /// Largest |cos|.
    pub max_abs_cos: f64,
}

/// The optimised packing of the headline claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackResult {
    /// Its cosine statistics (the whole Gram matrix).
    pub stats: CosineStats,
    /// Welch's bound for its count and dimensions.
    pub welch: f64,
    /// Gradient steps taken.
    pub steps: usize,
    /// Exact largest |cos| at each refresh: (step, value).
    pub trace: Vec<(usize, f64)>,
    /// Seconds the optimisation took.
    pub seconds: f64,
    /// Random Gaussian vectors of the same count and dimensions, for comparison.
    pub random: CosineStats,
}

/// Everything the experiment measured (`metrics.json`, `results`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Random vectors' cosine spread.
    pub spreads: Vec<Spread>,
    /// The optimised packing.
    pub packing: PackResult,
    /// Capacity per (window, dimension).
    pub capacity: Vec<Capacity>,
}

fn compute(options: &ExperimentOptions, progress: &mut dyn Progress) -> anyhow::Result<RunResult> {
    let plan = plan(options.profile);
    let seed = options.seed.unwrap_or(0);
    let mut spreads = Vec::new();
    for (s, &dim) in RANDOM_DIMS.iter().enumerate() {
        for (k, kind) in [RandomKind::Gaussian, RandomKind::Sign]
            .into_iter()
            .enumerate()
        {
            let p = Packing::random(kind, RANDOM_COUNT, dim, seed, 10 + 2 * s as u64 + k as u64);
            let stats = cosine_stats(&p);
            spreads.push(Spread {
                kind,
                count: RANDOM_COUNT,
                dim,
                std: stats.std,
                max_abs_cos: stats.max_abs_cos,
            });
        }
    }

    let settings = PackSettings {
        steps: plan.pack_steps,
        seed,
        ..PackSettings::default()
    };
    progress.begin("packing", plan.pack_steps as u64);
    let started = std::time::Instant::now();
    let packed = pack(plan.pack_count, PACK_DIM, &settings, &mut |step, max| {
        progress.update(step as u64, max)
    });
    let seconds = started.elapsed().as_secs_f64();
    progress.end();
    let random = Packing::random(RandomKind::Gaussian, plan.pack_count, PACK_DIM, seed, 1);
    let packing = PackResult {
        stats: cosine_stats(&packed.packing),
        welch: welch_bound(plan.pack_count, PACK_DIM),
        steps: packed.steps,
        trace: packed.trace,
        seconds,
        random: cosine_stats(&random),
    };

    let capacity_settings = PackSettings {
        steps: plan.capacity_steps,
        seed,
        ..PackSettings::default()
    };
    let cells: Vec<(f64, usize)> = WINDOWS
        .iter()
        .flat_map(|&w| plan.capacity_dims.iter().map(move |&d| (w, d)))
        .collect();
    progress.begin("capacity", cells.len() as u64);
    let mut caps = Vec::new();
    for (done, &(window, dim)) in cells.iter().enumerate() {
        caps.push(capacity(
            dim,
            window,
            plan.capacity_budget,
            &capacity_settings,
        ));
        progress.update(done as u64 + 1, 0.0);
    }
    progress.end();

    let results = Results {
        spreads,
        packing,
        capacity: caps,
    };
    let weights = Weights::w_only(plan.pack_count, PACK_DIM, packed.packing.vectors);
    let mut run = RunResult::analysed("orthogonal", None, weights, Vec::new());
    run.results = Some(serde_json::to_value(&results)?);
    Ok(run)
}

/// The results of a run of this experiment.
pub fn results(run: &RunResult) -> Option<Results> {
    serde_json::from_value(run.results.clone()?).ok()
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let Some(r) = results(run) else {
        return Vec::new();
    };
    vec![
        ("capacity".to_string(), capacity_figure(&r.capacity)),
        ("angles".to_string(), angles_figure(&r.packing)),
    ]
}

/// Dimensions at which the bound lines are drawn: 2 to 4,096, log-spaced.
fn bound_dims() -> Vec<usize> {
    let mut dims: Vec<usize> = (0..=48)
        .map(|k| (2.0f64 * 2048f64.powf(k as f64 / 48.0)).round() as usize)
        .collect();
    dims.dedup();
    dims
}

fn capacity_figure(caps: &[Capacity]) -> Figure {
    let mut series = Vec::new();
    for (c, &window) in WINDOWS.iter().enumerate() {
        let eps = window_cos(window);
        let found: Vec<(f64, f64)> = caps
            .iter()
            .filter(|k| k.degrees == window)
            .map(|k| (k.dim as f64, k.found as f64))
            .collect();
        series.push(Series {
            label: format!("±{window}°: found by optimisation"),
            points: found,
            style: SeriesStyle::Line,
            colour: c,
        });
        series.push(Series {
            label: format!(
                "±{window}°: Welch's cap (none past d = 1/ε² = {:.0})",
                1.0 / (eps * eps)
            ),
            points: bound_dims()
                .into_iter()
                .filter_map(|d| welch_cap(d, eps).map(|n| (d as f64, n as f64)))
                .collect(),
            style: SeriesStyle::Trace,
            colour: c,
        });
        series.push(Series {
            label: String::new(),
            points: bound_dims()
                .into_iter()
                .map(|d| (d as f64, random_guarantee(d, eps)))
                .filter(|&(_, n)| n <= 1e12)
                .collect(),
            style: SeriesStyle::Dots,
            colour: c,
        });
    }
    series.push(Series {
        label: "d orthogonal vectors".into(),
        points: bound_dims()
            .into_iter()
            .map(|d| (d as f64, d as f64))
            .collect(),
        style: SeriesStyle::Trace,
        colour: WINDOWS.len(),
    });
    Figure::Chart {
        title: "Vectors within 90° ± δ: optimised packings (lines), Welch's cap (thin), random guarantee exp(dε²/4) (dots)".into(),
        x_label: "dimensions d".into(),
        y_label: "number of vectors".into(),
        log_x: true,
        log_y: true,
        series,
        marks: Vec::new(),
    }
}

fn angles_figure(p: &PackResult) -> Figure {
    // Share of pairs per degree, over the range where either distribution has pairs.
    let density = |s: &CosineStats| -> Vec<(f64, f64)> {
        let total: u64 = s.histogram.iter().sum::<u64>().max(1);
        s.histogram
            .iter()
            .enumerate()
            .map(|(b, &c)| {
                (
                    (b as f64 + 0.5) * BIN_DEGREES,
                    c as f64 / total as f64 / BIN_DEGREES,
                )
            })
            .collect()
    };
    let reach = (90.0 - p.random.min_angle).max(90.0 - p.stats.min_angle) * 1.1 + 1.0;
    let window = |v: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        v.into_iter()
            .filter(|&(a, _)| (a - 90.0).abs() <= reach)
            .collect()
    };
    let bound = line_packing_bound(p.stats.count, p.stats.dim);
    let bound_angle = 90.0 - line_angle(bound);
    let bound_name = if bound > p.welch {
        "Levenshtein"
    } else {
        "Welch"
    };
    Figure::Chart {
        title: format!(
            "Pairwise angles of {} vectors in {} dimensions: optimised packing vs random",
            p.stats.count, p.stats.dim
        ),
        x_label: "angle between the vectors (degrees)".into(),
        y_label: "share of pairs per degree".into(),
        log_x: false,
        log_y: false,
        series: vec![
            Series {
                label: format!(
                    "optimised: closest pair {:.2}° from 90°",
                    90.0 - p.stats.min_angle
                ),
                points: window(density(&p.stats)),
                style: SeriesStyle::Trace,
                colour: 0,
            },
            Series {
                label: format!(
                    "random Gaussian: closest pair {:.2}° from 90°",
                    90.0 - p.random.min_angle
                ),
                points: window(density(&p.random)),
                style: SeriesStyle::Trace,
                colour: 1,
            },
        ],
        marks: vec![
            crate::output::plots::Mark {
                x: 90.0 - bound_angle,
                label: format!("{bound_name}: not every pair fits in 90° ± {bound_angle:.2}°"),
            },
            crate::output::plots::Mark {
                x: 90.0 + bound_angle,
                label: String::new(),
            },
        ],
    }
}

fn verdict(run: &RunResult) -> Verdict {
    match results(run) {
        Some(r) => judge(&r),
        None => Verdict::from_checks(vec![Check {
            name: "the experiment's results are present".into(),
            passed: false,
            measured: "no results".into(),
            expected: "results in metrics.json".into(),
        }]),
    }
}

/// The claim, checked on `r`.
pub fn judge(r: &Results) -> Verdict {
    let mut checks = Vec::new();
    let worst = r
        .spreads
        .iter()
        .map(|s| ((s.std * (s.dim as f64).sqrt()) - 1.0).abs())
        .fold(0.0f64, f64::max);
    checks.push(Check {
        name: "random vectors' cosines have standard deviation ≈ 1/√d (Gaussian and ±1/√d, d = 100 and 1,000)".into(),
        passed: !r.spreads.is_empty() && worst <= SPREAD_TOLERANCE,
        measured: r
            .spreads
            .iter()
            .map(|s| format!("{} d={}: {:.4} (1/√d {:.4})", s.kind.name(), s.dim, s.std, 1.0 / (s.dim as f64).sqrt()))
            .collect::<Vec<_>>()
            .join("; "),
        expected: format!("within {:.0} % of 1/√d", SPREAD_TOLERANCE * 100.0),
    });
    let p = &r.packing;
    let max = p.stats.max_abs_cos;
    // Welch's bound cannot be met beyond d(d+1)/2 vectors; Levenshtein's is then the larger.
    let bound = line_packing_bound(p.stats.count, p.stats.dim);
    let which = if bound > p.welch {
        format!(
            "Levenshtein's {bound:.4} ({:.2}× Welch's {:.4}, which no set of more than d(d+1)/2 lines meets)",
            bound / p.welch,
            p.welch
        )
    } else {
        format!("Welch's {bound:.4}")
    };
    checks.push(Check {
        name: format!(
            "the optimised packing of {} vectors in {} dimensions respects the lower bound on its largest |cos| and comes within {BOUND_FACTOR}× of it",
            p.stats.count, p.stats.dim
        ),
        passed: p.stats.count >= QUICK_PACK_COUNT
            && p.stats.dim == PACK_DIM
            && max >= bound
            && max <= BOUND_FACTOR * bound,
        measured: format!(
            "largest |cos| {max:.4} (closest pair {:.2}° from 90°; random vectors: {:.4}), {:.2}× the bound, {which}",
            90.0 - p.stats.min_angle,
            p.random.max_abs_cos,
            max / bound,
        ),
        expected: format!("{bound:.4} ≤ |cos| ≤ {:.4}", BOUND_FACTOR * bound),
    });
    let narrow: Vec<&Capacity> = r.capacity.iter().filter(|c| c.degrees == 1.0).collect();
    let bad: Vec<String> = narrow
        .iter()
        .filter(|c| c.found < c.dim || c.welch_cap.is_some_and(|cap| c.found as u64 > cap))
        .map(|c| format!("d={}: {}", c.dim, c.found))
        .collect();
    checks.push(Check {
        name: "within 90° ± 1°, more than d vectors fit only where Welch's cap allows it".into(),
        passed: !narrow.is_empty() && bad.is_empty(),
        measured: narrow
            .iter()
            .map(|c| {
                format!(
                    "d={}: {} (cap {})",
                    c.dim,
                    c.found,
                    c.welch_cap.map_or("none".into(), |v| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        expected: "d ≤ N ≤ Welch's cap for every d".into(),
    });
    let wide: Vec<&Capacity> = r.capacity.iter().filter(|c| c.degrees >= 20.0).collect();
    let beyond = wide.iter().filter(|c| c.found > 2 * c.dim).count();
    checks.push(Check {
        name: "wide windows hold many more than d vectors (almost-orthogonal beats orthogonal)"
            .into(),
        passed: !wide.is_empty() && beyond > 0,
        measured: wide
            .iter()
            .map(|c| {
                format!(
                    "d={}: {}{}",
                    c.dim,
                    c.found,
                    if c.at_budget { "+" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        expected: "N > 2d for some d at ±20°".into(),
    });
    Verdict::from_checks(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(kind: RandomKind, dim: usize, std: f64) -> Spread {
        Spread {
            kind,
            count: 100,
            dim,
            std,
            max_abs_cos: 0.5,
        }
    }

    fn stats(max: f64) -> CosineStats {
        CosineStats {
            count: PACK_COUNT,
            dim: PACK_DIM,
            max_abs_cos: max,
            min_angle: line_angle(max),
            closest_pair: (0, 1),
            mean: 0.0,
            std: 0.1,
            histogram: vec![1; crate::orthogonal::BINS],
        }
    }

    fn cap(dim: usize, degrees: f64, found: usize) -> Capacity {
        let eps = window_cos(degrees);
        Capacity {
            dim,
            degrees,
            found,
            at_budget: false,
            welch_cap: welch_cap(dim, eps),
            random_guarantee: random_guarantee(dim, eps),
        }
    }

    fn good() -> Results {
        Results {
            spreads: vec![
                spread(RandomKind::Gaussian, 100, 0.1),
                spread(RandomKind::Sign, 1000, 0.0317),
            ],
            packing: PackResult {
                stats: stats(0.17),
                welch: welch_bound(PACK_COUNT, PACK_DIM),
                steps: 10,
                trace: vec![(0, 0.5), (10, 0.17)],
                seconds: 1.0,
                random: stats(0.55),
            },
            capacity: vec![
                cap(10, 1.0, 10),
                cap(100, 1.0, 103),
                cap(3, 20.0, 7),
                cap(8, 20.0, 40),
            ],
        }
    }

    /// The verdict passes on good numbers and fails on each kind of wrong one.
    #[test]
    fn the_verdict_fails_on_wrong_results() {
        assert!(judge(&good()).reproduced);
        let mut r = good();
        r.spreads[0].std = 0.2; // cosines twice too spread
        assert!(!judge(&r).reproduced);
        let mut r = good();
        r.packing.stats = stats(0.05); // below Welch: impossible, a wrong Gram
        assert!(!judge(&r).reproduced);
        let mut r = good();
        r.packing.stats = stats(0.12); // above Welch but below Levenshtein's 0.1400: impossible
        assert!(!judge(&r).reproduced);
        let mut r = good();
        r.packing.stats = stats(0.29); // more than 2× Levenshtein's bound
        assert!(!judge(&r).reproduced);
        let mut r = good();
        r.packing.stats = stats(0.2347); // the paper profile's packing (1.68× Levenshtein's)
        assert!(judge(&r).reproduced);
        // The quick profile's 2,000 vectors are below d(d+1)/2: judged against Welch's 0.0975.
        let quick = |max: f64| {
            let mut r = good();
            r.packing.stats = CosineStats {
                count: QUICK_PACK_COUNT,
                ..stats(max)
            };
            r.packing.welch = welch_bound(QUICK_PACK_COUNT, PACK_DIM);
            judge(&r).reproduced
        };
        assert!(quick(0.1745)); // 1.79× Welch's, as measured
        assert!(!quick(0.21)); // 2.15× Welch's, though within 2× of 10,000 vectors' bound
        assert!(!quick(0.09)); // below Welch's: impossible
        let mut r = good();
        r.packing.stats = stats(0.55); // random vectors, not optimised
        assert!(!judge(&r).reproduced);
        let mut r = good();
        r.capacity[1].found = 150; // more than Welch's cap at ±1°
        assert!(!judge(&r).reproduced);
        let mut r = good();
        r.capacity[0].found = 9; // fewer than an orthonormal basis
        assert!(!judge(&r).reproduced);
        let mut r = good();
        r.capacity[2].found = 4; // wide windows no better than orthogonal
        r.capacity[3].found = 12;
        assert!(!judge(&r).reproduced);
    }

    /// The figures draw from the results: bounds, found counts, both histograms.
    #[test]
    fn figures_come_from_the_results() {
        let r = good();
        let Figure::Chart { series, .. } = capacity_figure(&r.capacity) else {
            panic!("a chart")
        };
        assert_eq!(series.len(), 3 * WINDOWS.len() + 1);
        assert_eq!(series[0].points, vec![(10.0, 10.0), (100.0, 103.0)]);
        let Figure::Chart { series, marks, .. } = angles_figure(&r.packing) else {
            panic!("a chart")
        };
        assert_eq!(series.len(), 2);
        assert_eq!(marks.len(), 2);
        let bound = crate::orthogonal::line_packing_bound(PACK_COUNT, PACK_DIM);
        assert!((marks[0].x - line_angle(bound)).abs() < 1e-9);
    }
}
