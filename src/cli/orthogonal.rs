//! `tms orthogonal`: the numbers of [`tms::orthogonal`], printed.

use anyhow::{bail, Context};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use tms::orthogonal::{
    capacity, cosine_stats, line_angle, max_abs_cos, pack, random_guarantee, random_pair_outside,
    welch_bound, welch_cap, window_cos, CosineStats, PackSettings, Packing, RandomKind,
};
use tms::output::weights::Weights;

/// `println!` that returns an error instead of panicking when stdout is closed (`| head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?;
    }};
}

/// A feature counts as represented when its norm is at least this (as in the metrics).
const REPRESENTED: f32 = 0.5;

/// Most pairs an optimised packing may have candidates for (its neighbour lists grow with
/// N²): 50,000 vectors.
const MAX_PACK: usize = 50_000;

fn describe(name: &str, s: &CosineStats) -> String {
    format!(
        "{name:<22} largest |cos| {:.4} (closest pair {:.2}°, {:.2}° from 90°); cos mean {:+.4}, s.d. {:.4}; pairs within ±1°: {:.1} %, ±5°: {:.1} %",
        s.max_abs_cos,
        s.min_angle,
        90.0 - s.min_angle,
        s.mean,
        s.std,
        100.0 * s.share_within(1.0),
        100.0 * s.share_within(5.0),
    )
}

/// The rate of computing the Gram matrix of `count` vectors in `dim` dimensions in `seconds`,
/// in GFLOP/s, counting the whole N × N matrix (2·N²·d): the upper triangle that is computed
/// costs about half of that, so this is the dense product's equivalent rate.
fn gflops(count: usize, dim: usize, seconds: f64) -> f64 {
    2.0 * (count * count) as f64 * dim as f64 / seconds.max(1e-9) / 1e9
}

/// `--dim D [--count N] [--angle DEG]`.
pub fn report(
    dim: usize,
    count: Option<usize>,
    angle: Option<f64>,
    budget: usize,
    settings: &PackSettings,
) -> anyhow::Result<()> {
    if let Some(a) = angle {
        if !(a > 0.0 && a < 90.0) {
            bail!("--angle {a}: the window 90° ± DEG needs 0 < DEG < 90");
        }
    }
    if count.is_none() && angle.is_none() {
        bail!("give --count N (packings of N vectors) or --angle DEG (the most vectors within 90° ± DEG), or both");
    }
    if let Some(n) = count {
        if n.checked_mul(dim).is_none_or(|v| v > 1 << 30) {
            bail!("--count {n} × --dim {dim} is over 2^30 numbers; ask for fewer vectors or dimensions");
        }
        let welch = welch_bound(n, dim);
        say!("{n} unit vectors in {dim} dimensions");
        if n <= dim {
            say!("Welch's bound: none (N ≤ d: {n} orthonormal vectors exist, |cos| = 0)");
        } else {
            say!(
                "Welch's bound: some pair has |cos| ≥ {welch:.4} (an angle of {:.2}° or less between the lines): no window tighter than 90° ± {:.2}° holds every pair",
                line_angle(welch),
                90.0 - line_angle(welch)
            );
        }
        for (kind, label) in [
            (RandomKind::Gaussian, "random Gaussian"),
            (RandomKind::Sign, "random ±1/√d"),
        ] {
            let p = Packing::random(kind, n, dim, settings.seed, 1 + kind as u64);
            // The Gram matrix alone (largest |cos|), timed apart from the statistics.
            let started = Instant::now();
            max_abs_cos(&p);
            let secs = started.elapsed().as_secs_f64();
            let s = cosine_stats(&p);
            say!(
                "{}  [Gram matrix in {secs:.2} s, {:.1} GFLOP/s]",
                describe(label, &s),
                gflops(n, dim, secs)
            );
        }
        say!(
            "1/√d = {:.4}: the standard deviation of random vectors' cosines",
            1.0 / (dim as f64).sqrt()
        );
        if n >= 2 {
            // exp(dε²/4) ≥ N  ⇔  ε ≥ sqrt(4 ln N / d).
            let eps = (4.0 * (n as f64).ln() / dim as f64).sqrt();
            say!(
                "random construction: some {n} vectors have every |cos| ≤ {:.4} (ε with exp(dε²/4) = N{})",
                eps.min(1.0),
                if eps >= 1.0 { "; vacuous here" } else { "" }
            );
        }
        if n > MAX_PACK {
            say!("(no optimised packing above {MAX_PACK} vectors)");
        } else if n >= 2 {
            let started = Instant::now();
            let tty = std::io::stderr().is_terminal();
            let packed = pack(n, dim, settings, &mut |step, max| {
                if tty {
                    eprint!("\roptimising: step {step}, largest |cos| {max:.4}   ");
                }
            });
            if tty {
                eprint!("\r{:60}\r", "");
            }
            let secs = started.elapsed().as_secs_f64();
            let s = cosine_stats(&packed.packing);
            say!(
                "{}  [{} steps in {secs:.1} s]",
                describe("optimised", &s),
                packed.steps
            );
            if welch > 0.0 {
                say!(
                    "optimised packing: {:.2}× Welch's bound",
                    s.max_abs_cos / welch
                );
            }
        }
        if let Some(deg) = angle {
            let eps = window_cos(deg);
            say!();
            if welch > eps {
                say!(
                    "within 90° ± {deg}° (|cos| ≤ {eps:.4}): impossible for {n} vectors in {dim} dimensions — Welch's bound needs |cos| ≥ {welch:.4}; at most {} vectors fit",
                    welch_cap(dim, eps).map_or("any number of".into(), |c| c.to_string())
                );
            } else {
                say!(
                    "within 90° ± {deg}° (|cos| ≤ {eps:.4}): Welch allows {n} vectors; the optimised packing {}",
                    if n <= dim || n <= MAX_PACK && pack(n, dim, &PackSettings { target: Some(eps), ..settings.clone() }, &mut |_, _| {}).max_abs_cos <= eps {
                        "fits"
                    } else {
                        "did not fit (more steps may help)"
                    }
                );
            }
        }
        return Ok(());
    }
    let deg = angle.expect("checked above");
    let eps = window_cos(deg);
    let cap = welch_cap(dim, eps);
    say!("within 90° ± {deg}° (|cos| ≤ {eps:.4}) in {dim} dimensions");
    say!(
        "Welch's cap: {}",
        cap.map_or(
            format!("none (d·ε² = {:.2} ≥ 1)", dim as f64 * eps * eps),
            |c| format!("{c} vectors")
        )
    );
    say!(
        "random construction: about exp(dε²/4) = {:.3e} vectors (one random pair falls outside with probability {:.3})",
        random_guarantee(dim, eps),
        random_pair_outside(dim, eps)
    );
    let started = Instant::now();
    let c = capacity(dim, deg, budget, settings);
    say!(
        "found by optimisation: {}{} vectors ({:.1} s){}",
        c.found,
        if c.at_budget { "+" } else { "" },
        started.elapsed().as_secs_f64(),
        if c.at_budget {
            format!(" — stopped at --budget {budget}")
        } else if c.found == dim {
            " — no more than d orthogonal vectors".to_string()
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `--compare RUN`: every instance's represented feature directions against Welch's bound and
/// an optimised packing of as many vectors in as many dimensions.
pub fn compare(run: &Path, settings: &PackSettings) -> anyhow::Result<()> {
    let path = if run.is_dir() {
        run.join("weights.safetensors")
    } else {
        run.to_path_buf()
    };
    let weights =
        Weights::load(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (n, m) = (weights.features, weights.hidden);
    let densities: Option<Vec<f32>> = weights.config.as_ref().and_then(|c| {
        let all = c.resolve().ok()?;
        let specs = c.selected(&all);
        (specs.len() == weights.instances)
            .then(|| specs.iter().map(|s| s.feature_probability[0]).collect())
    });
    say!(
        "{}: {} instance(s), n = {n} features in m = {m} dimensions; features with ‖W_i‖ ≥ {REPRESENTED} count as represented",
        path.display(),
        weights.instances
    );
    say!(
        "{:>8} {:>9} {:>11} {:>12} {:>10} {:>14} {:>12}",
        "instance",
        "density",
        "represented",
        "model |cos|",
        "Welch",
        "optimised |cos|",
        "model/optim"
    );
    for k in 0..weights.instances {
        let w = weights.instance_w(k);
        let rows: Vec<f32> = w
            .chunks_exact(m)
            .filter(|r| r.iter().map(|x| x * x).sum::<f32>().sqrt() >= REPRESENTED)
            .flatten()
            .copied()
            .collect();
        let count = rows.len() / m;
        let density = densities
            .as_ref()
            .map_or("–".to_string(), |d| format!("{:.4}", d[k]));
        if count < 2 {
            say!("{k:>8} {density:>9} {count:>11} {:>12}", "–");
            continue;
        }
        let model = max_abs_cos(&Packing::from_rows(m, rows));
        let optimised = pack(count, m, settings, &mut |_, _| {}).max_abs_cos;
        say!(
            "{k:>8} {density:>9} {count:>11} {model:>12.4} {:>10.4} {optimised:>15.4} {:>12.2}",
            welch_bound(count, m),
            model / optimised.max(1e-12)
        );
    }
    say!("(model |cos|: the largest |cos| between two represented features; a model that packs its features as well as the optimiser has model/optim ≈ 1)");
    Ok(())
}
