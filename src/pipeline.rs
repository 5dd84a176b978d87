//! The pipeline end to end: config → train → analyse → figures → run folder.
//!
//! [`train_run`] and [`analyze_weights`] produce a [`RunResult`] in memory; experiments add a
//! verdict and figures to it; [`write_run`] turns it into a run folder atomically.

use anyhow::Context;
use std::path::{Path, PathBuf};

use crate::analysis::geometry::{describe_geometry, structures};
use crate::analysis::metrics::{gram, FeatureMetrics};
use crate::analysis::Verdict;
use crate::config::{InstanceSpec, TrainConfig};
use crate::model::{ModelKind, Shape};
use crate::output::plots::{render_png, render_svg, ArrowPanel, BarPanel, Figure, GramPanel};
use crate::output::records::{
    loss_csv, InstanceRecord, MetricsFile, StructureRecord, TrainingRecord,
};
use crate::output::weights::Weights;
use crate::output::RunFolder;
use crate::train::{eval_batches, evaluate, train, Progress, TrainControl, TrainState, Trained};

/// A finished run, in memory.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Experiment name (or the config's name, or `analyze`).
    pub experiment: String,
    /// The config that reproduces the run, when there is one.
    pub config: Option<TrainConfig>,
    /// Final weights of every instance.
    pub weights: Weights,
    /// Training record (loss curve, timing), when this run trained.
    pub trained: Option<Trained>,
    /// Per-instance metrics.
    pub records: Vec<InstanceRecord>,
    /// Whether the paper's result was reproduced (experiments only).
    pub verdict: Option<Verdict>,
    /// Figures to write, by file stem.
    pub figures: Vec<(String, Figure)>,
}

impl RunResult {
    /// Records of the lowest-loss restart of each sweep point, in order.
    pub fn selected(&self) -> Vec<&InstanceRecord> {
        self.records.iter().filter(|r| r.selected).collect()
    }

    /// `W` of the instance a record describes.
    pub fn w(&self, record: &InstanceRecord) -> &[f32] {
        self.weights.instance_w(record.position)
    }
}

impl InstanceRecord {
    /// Mean feature probability p over features (1 when unknown).
    pub fn density(&self) -> f64 {
        match self.feature_probability.as_deref() {
            Some(p) if !p.is_empty() => p.iter().map(|&v| v as f64).sum::<f64>() / p.len() as f64,
            _ => 1.0,
        }
    }

    /// The sparsity S = 1 - p when every feature shares one p.
    pub fn common_sparsity(&self) -> Option<f64> {
        let p = self.feature_probability.as_ref()?;
        let first = *p.first()?;
        p.iter().all(|&v| v == first).then_some(1.0 - first as f64)
    }
}

/// Train the instances of `config` (continuing from `resume` when given), then analyse the
/// final weights.
pub fn train_run(
    experiment: &str,
    config: &TrainConfig,
    resume: Option<&TrainState>,
    control: TrainControl<'_>,
    progress: &mut dyn Progress,
) -> anyhow::Result<RunResult> {
    let all = config.resolve()?;
    let specs = config.selected(&all);
    let trained = train(config, specs, all.len(), resume, control, progress)?;
    let kinds: Vec<_> = specs.iter().map(|s| s.kind).collect();
    let weights = Weights::from_params(
        &trained.shape,
        &kinds,
        &trained.params,
        Some(config.clone()),
    );
    let records = instance_records(&weights, Some(specs), Some(&trained.final_loss));
    Ok(RunResult {
        experiment: experiment.to_string(),
        config: Some(config.clone()),
        weights,
        trained: Some(trained),
        records,
        verdict: None,
        figures: Vec::new(),
    })
}

/// Analyse weights loaded from a file. When the file carries a `tms` config that matches its
/// tensors, per-instance p, I and the loss on fresh batches are reported too.
pub fn analyze_weights(weights: Weights) -> RunResult {
    let specs = weights
        .config
        .as_ref()
        .and_then(|c| c.resolve().ok().map(|all| c.selected(&all).to_vec()))
        .filter(|s| s.len() == weights.instances);
    let final_loss = match (&weights.config, &specs, &weights.b) {
        (Some(cfg), Some(specs), Some(_)) => {
            let losses: Vec<f64> = specs
                .iter()
                .enumerate()
                .map(|(k, spec)| {
                    let shape = Shape {
                        kind: spec.kind,
                        features: weights.features,
                        hidden: weights.hidden,
                    };
                    let params = params_of(&weights, &shape, k);
                    evaluate(
                        shape,
                        &cfg.train,
                        spec,
                        &params,
                        eval_batches(cfg.train.batch_size),
                    )
                })
                .collect();
            Some(losses)
        }
        _ => None,
    };
    let records = instance_records(&weights, specs.as_deref(), final_loss.as_deref());
    RunResult {
        experiment: "analyze".into(),
        config: weights.config.clone(),
        weights,
        trained: None,
        records,
        verdict: None,
        figures: Vec::new(),
    }
}

/// Parameter buffer (model layout) of instance `k` of a weights file.
fn params_of(weights: &Weights, shape: &Shape, k: usize) -> Vec<f32> {
    let mut p = weights.instance_w(k).to_vec();
    if let (ModelKind::Abs, Some(dec)) = (shape.kind, &weights.w_dec) {
        let len = shape.weight_len();
        p.extend_from_slice(&dec[k * len..(k + 1) * len]);
    }
    match weights.instance_b(k) {
        Some(b) => p.extend_from_slice(b),
        None => p.extend(std::iter::repeat_n(0.0, shape.features)),
    }
    p
}

/// Metrics of every instance; marks the lowest-loss restart of each sweep point as selected.
pub fn instance_records(
    weights: &Weights,
    specs: Option<&[InstanceSpec]>,
    final_loss: Option<&[f64]>,
) -> Vec<InstanceRecord> {
    let (n, m) = (weights.features, weights.hidden);
    let mut records: Vec<InstanceRecord> = (0..weights.instances)
        .map(|k| {
            let w = weights.instance_w(k);
            let metrics = FeatureMetrics::compute(w, n, m);
            let spec = specs.map(|s| &s[k]);
            let found = structures(w, n, m)
                .into_iter()
                .map(|st| StructureRecord {
                    name: st.name(),
                    span: st.span,
                    ideal_dimensionality: st.ideal_dimensionality(),
                    mean_dimensionality: st
                        .features
                        .iter()
                        .map(|&i| metrics.fractional_dimensionality[i])
                        .sum::<f64>()
                        / st.features.len() as f64,
                    features: st.features,
                })
                .collect();
            InstanceRecord {
                index: spec.map_or(k, |s| s.index),
                position: k,
                kind: spec
                    .map(|s| s.kind)
                    .or(weights.kind)
                    .map(|kind| kind.name().to_string()),
                restart: spec.map_or(0, |s| s.restart),
                selected: true,
                feature_probability: spec.map(|s| s.feature_probability.clone()),
                importance: spec.map(|s| s.importance.clone()),
                final_loss: final_loss.map(|l| l[k]),
                represented: metrics.represented(),
                geometry: describe_geometry(w, n, m),
                feature_norms: metrics.feature_norms,
                interference: metrics.interference,
                dimensions_per_feature: metrics.dimensions_per_feature,
                fractional_dimensionality: metrics.fractional_dimensionality,
                structures: found,
            }
        })
        .collect();
    select_best_restarts(&mut records);
    records
}

/// Within each run of consecutive records with the same p and I (a sweep point's restarts),
/// keep only the lowest final loss selected.
fn select_best_restarts(records: &mut [InstanceRecord]) {
    let mut start = 0;
    while start < records.len() {
        let same = |a: &InstanceRecord, b: &InstanceRecord| {
            a.feature_probability == b.feature_probability && a.importance == b.importance
        };
        let mut end = start + 1;
        while end < records.len()
            && records[end].restart > 0
            && same(&records[start], &records[end])
        {
            end += 1;
        }
        let best = (start..end)
            .min_by(|&a, &b| {
                let la = records[a].final_loss.unwrap_or(f64::INFINITY);
                let lb = records[b].final_loss.unwrap_or(f64::INFINITY);
                la.total_cmp(&lb)
            })
            .unwrap_or(start);
        for (k, r) in records[start..end].iter_mut().enumerate() {
            r.selected = start + k == best;
        }
        start = end;
    }
}

/// Title of an instance's panel: its sparsity when uniform, else its index.
pub fn panel_title(r: &InstanceRecord) -> String {
    match r.common_sparsity() {
        Some(s) => format!("S = {s:.3}  (1−S = {:.3})", 1.0 - s),
        None => format!("instance {}", r.index),
    }
}

/// Panel title, prefixed by the model kind when the run mixes kinds.
fn titled(run: &RunResult, r: &InstanceRecord) -> String {
    match (&run.weights.kinds, &r.kind) {
        (Some(_), Some(kind)) => format!("{kind}: {}", panel_title(r)),
        _ => panel_title(r),
    }
}

/// Loss curve of every instance (when trained).
pub fn loss_figure(run: &RunResult) -> Option<Figure> {
    let t = run.trained.as_ref()?;
    let series = t
        .specs
        .iter()
        .enumerate()
        .map(|(k, spec)| {
            let label = match run.records[k].common_sparsity() {
                Some(s) => format!("S = {s:.3}"),
                None => format!("instance {}", spec.index),
            };
            (label, t.log_loss.iter().map(|row| row[k]).collect())
        })
        .collect();
    Some(Figure::LossCurves {
        steps: t.log_steps.clone(),
        series,
    })
}

/// Feature directions in the plane, one panel per selected instance (m = 2 only).
pub fn arrows_figure(run: &RunResult) -> Option<Figure> {
    if run.weights.hidden != 2 {
        return None;
    }
    let panels = run
        .selected()
        .into_iter()
        .map(|r| {
            let w = run.w(r);
            let imp = r
                .importance
                .clone()
                .unwrap_or_else(|| vec![1.0; run.weights.features]);
            let top = imp.iter().cloned().fold(f32::MIN, f32::max).max(1e-12);
            ArrowPanel {
                title: titled(run, r),
                vectors: w
                    .chunks_exact(2)
                    .map(|v| [v[0] as f64, v[1] as f64])
                    .collect(),
                shade: imp.iter().map(|&i| (i / top) as f64).collect(),
            }
        })
        .collect();
    Some(Figure::FeatureArrows { panels, columns: 5 })
}

/// Norm bars coloured by interference, one panel per selected instance.
pub fn bars_figure(run: &RunResult) -> Figure {
    let panels = run
        .selected()
        .into_iter()
        .map(|r| BarPanel {
            title: format!("{} — {} represented", titled(run, r), r.represented),
            norms: r.feature_norms.clone(),
            interference: r.interference.clone(),
        })
        .collect();
    Figure::NormBars { panels, columns: 4 }
}

/// WᵀW (and b) heatmaps, one panel per selected instance.
pub fn gram_figure(run: &RunResult) -> Figure {
    let (n, m) = (run.weights.features, run.weights.hidden);
    let panels = run
        .selected()
        .into_iter()
        .map(|r| GramPanel {
            title: titled(run, r),
            gram: gram(run.w(r), n, m),
            bias: run
                .weights
                .instance_b(r.position)
                .map(|b| b.iter().map(|&v| v as f64).collect()),
        })
        .collect();
    Figure::GramHeatmaps { panels, columns: 4 }
}

/// The figures every run gets: loss curves, arrows (m = 2), norm bars, WᵀW (n ≤ 100).
pub fn standard_figures(run: &RunResult) -> Vec<(String, Figure)> {
    let mut figs = Vec::new();
    if let Some(f) = loss_figure(run) {
        figs.push(("loss".to_string(), f));
    }
    if let Some(f) = arrows_figure(run) {
        figs.push(("features".to_string(), f));
    }
    figs.push(("norms".to_string(), bars_figure(run)));
    if run.weights.features <= 100 {
        figs.push(("wtw".to_string(), gram_figure(run)));
    }
    figs
}

/// The `metrics.json` content of a run.
pub fn metrics_file(run: &RunResult) -> MetricsFile {
    let training = match (&run.trained, &run.config) {
        (Some(t), Some(c)) => {
            let s = &c.train;
            let secs = t.elapsed.as_secs_f64();
            Some(TrainingRecord {
                optimizer: format!(
                    "AdamW(lr={}, betas=({}, {}), eps={:e}, weight_decay={})",
                    s.lr, s.beta1, s.beta2, s.eps, s.weight_decay
                ),
                schedule: format!("{:?}", s.schedule).to_lowercase(),
                steps: s.steps,
                batch_size: s.batch_size,
                seed: s.seed,
                init: format!("{:?}", s.init).to_lowercase(),
                seconds: secs,
                steps_per_second: s.steps as f64 / secs.max(1e-9),
                kernel: t.variant.name().to_string(),
            })
        }
        _ => None,
    };
    MetricsFile {
        experiment: run.experiment.clone(),
        model: run.weights.kind.map(|k| k.name().to_string()),
        features: run.weights.features,
        hidden: run.weights.hidden,
        training,
        instances: run.records.clone(),
        verdict: run.verdict.clone(),
        figures: run.figures.iter().map(|f| f.0.clone()).collect(),
    }
}

/// Write `run` as a run folder at `out` (atomically); returns the final path.
pub fn write_run(run: &RunResult, out: &Path, force: bool) -> anyhow::Result<PathBuf> {
    let folder = RunFolder::create(out, force)?;
    folder.write("weights.safetensors", &run.weights.to_bytes()?)?;
    if let Some(cfg) = &run.config {
        let header = format!(
            "# Config of the run `{}`; `tms train config.toml` reproduces its weights exactly.\n",
            run.experiment
        );
        folder.write(
            "config.toml",
            format!("{header}{}", cfg.to_toml()).as_bytes(),
        )?;
    }
    let metrics =
        serde_json::to_string_pretty(&metrics_file(run)).context("serialising metrics")?;
    folder.write("metrics.json", metrics.as_bytes())?;
    if let Some(t) = &run.trained {
        let indices: Vec<usize> = t.specs.iter().map(|s| s.index).collect();
        folder.write(
            "loss.csv",
            loss_csv(&t.log_steps, &t.log_loss, &indices).as_bytes(),
        )?;
    }
    for (name, fig) in &run.figures {
        folder.write(&format!("{name}.svg"), render_svg(fig)?.as_bytes())?;
        render_png(fig, &folder.staging_path().join(format!("{name}.png")))
            .with_context(|| format!("cannot write {name}.png"))?;
    }
    folder.commit()
}

/// A plain-text table of the run, one line per instance, for the terminal.
pub fn summary_table(run: &RunResult) -> String {
    let n = run.weights.features;
    let show_restarts = run.records.iter().any(|r| r.restart > 0);
    let mut out = format!(
        "{:>5}  {:>7}  {:>10}  {:>11}  {:>6}  {}\n",
        "inst", "S", "loss", "represented", "D*", "geometry"
    );
    let rows: Vec<&InstanceRecord> = run.records.iter().collect();
    let limit = 40;
    for (k, r) in rows.iter().enumerate() {
        if rows.len() > limit && k == limit / 2 {
            out.push_str(&format!(
                "  ... {} more instances (all in metrics.json)\n",
                rows.len() - limit
            ));
        }
        if rows.len() > limit && k >= limit / 2 && k < rows.len() - limit / 2 {
            continue;
        }
        let s = r
            .common_sparsity()
            .map_or("mixed".into(), |s| format!("{s:.3}"));
        let loss = r.final_loss.map_or("-".into(), |l| format!("{l:.3e}"));
        let mark = if show_restarts && r.selected {
            " *"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:>5}  {:>7}  {:>10}  {:>11}  {:>6.3}  {}{}\n",
            r.index,
            s,
            loss,
            format!("{}/{}", r.represented, n),
            r.dimensions_per_feature,
            r.geometry,
            mark
        ));
    }
    if show_restarts {
        out.push_str(
            "  * lowest-loss restart of its sweep point (used by figures and the verdict)\n",
        );
    }
    if let Some(v) = &run.verdict {
        out.push('\n');
        for c in &v.checks {
            out.push_str(&format!(
                "  [{}] {}\n        measured: {}\n        expected: {}\n",
                if c.passed { "pass" } else { "FAIL" },
                c.name,
                c.measured,
                c.expected
            ));
        }
        out.push_str(if v.reproduced {
            "\nverdict: REPRODUCED\n"
        } else {
            "\nverdict: NOT REPRODUCED\n"
        });
    }
    out
}
