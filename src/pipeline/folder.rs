//! The run folder of a finished run: `metrics.json`, weights, config, loss curve, snapshots,
//! figures, and the later stages' folders.

use anyhow::Context;
use std::path::{Path, PathBuf};

use super::RunResult;
use crate::output::plots::{render_png, render_svg};
use crate::output::records::{loss_csv, MetricsFile, TrainingRecord};
use crate::output::snapshots::{self, WeightsAt};
use crate::output::weights::Weights;
use crate::output::RunFolder;

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
                schedule: s.schedule_description(),
                steps: s.steps,
                batch_size: s.batch_size,
                seed: s.seed,
                init: format!("{:?}", s.init).to_lowercase(),
                seconds: secs,
                steps_per_second: s.steps as f64 / secs.max(1e-9),
                kernel: format!(
                    "{}, {}",
                    t.variant.name(),
                    crate::train::passes_in_words(&t.passes)
                ),
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
        paper: run.paper.clone(),
        stages: run.stages.iter().map(|s| s.experiment.clone()).collect(),
        snapshot_steps: run
            .trained
            .iter()
            .flat_map(|t| t.snapshots.iter().map(|s| s.step))
            .collect(),
        results: run.results.clone(),
    }
}

/// Write `run` as a run folder at `out` (atomically); returns the final path.
pub fn write_run(run: &RunResult, out: &Path, force: bool) -> anyhow::Result<PathBuf> {
    let folder = RunFolder::create(out, force)?;
    write_contents(run, &folder, "")?;
    folder.commit()
}

/// Write the files of `run` into `folder` under `prefix` (empty, or `stages/NAME/`).
fn write_contents(run: &RunResult, folder: &RunFolder, prefix: &str) -> anyhow::Result<()> {
    let put = |name: &str, bytes: &[u8]| folder.write(&format!("{prefix}{name}"), bytes);
    put("weights.safetensors", &run.weights.to_bytes()?)?;
    if let Some(cfg) = &run.config {
        let header = format!(
            "# Config of the run `{}`; `tms train config.toml` reproduces its weights exactly.\n",
            run.experiment
        );
        put(
            "config.toml",
            format!("{header}{}", cfg.to_toml()).as_bytes(),
        )?;
    }
    let metrics =
        serde_json::to_string_pretty(&metrics_file(run)).context("serialising metrics")?;
    put("metrics.json", metrics.as_bytes())?;
    if let Some(t) = &run.trained {
        let indices: Vec<usize> = t.specs.iter().map(|s| s.index).collect();
        put(
            "loss.csv",
            loss_csv(&t.log_steps, &t.log_loss, &indices).as_bytes(),
        )?;
        if !t.snapshots.is_empty() {
            let kinds: Vec<_> = t.specs.iter().map(|s| s.kind).collect();
            let at: Vec<WeightsAt> = t
                .snapshots
                .iter()
                .map(|s| WeightsAt {
                    step: s.step,
                    weights: Weights::from_params(&t.shape, &kinds, &s.params, None),
                })
                .collect();
            put("snapshots.safetensors", &snapshots::to_bytes(&at)?)?;
            let json = serde_json::to_string(&snapshots::metrics(&at, &indices))
                .context("serialising snapshot metrics")?;
            put("snapshots.json", json.as_bytes())?;
        }
    }
    for (name, fig) in &run.figures {
        put(&format!("{name}.svg"), render_svg(fig)?.as_bytes())?;
        let png = folder.staging_path().join(format!("{prefix}{name}.png"));
        render_png(fig, &png).with_context(|| format!("cannot write {prefix}{name}.png"))?;
    }
    for (name, bytes) in &run.files {
        let path = format!("{prefix}{name}");
        if let Some((parent, _)) = path.rsplit_once('/') {
            folder.create_dir(parent)?;
        }
        folder.write(&path, bytes)?;
    }
    for stage in &run.stages {
        let sub = format!("{prefix}stages/{}/", stage.experiment);
        folder.create_dir(&sub)?;
        write_contents(stage, folder, &sub)?;
    }
    Ok(())
}
