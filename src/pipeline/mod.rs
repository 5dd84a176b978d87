//! The pipeline end to end: config → train → analyse → figures → run folder.
//!
//! [`train_run`] and [`analyze_weights`] produce a [`RunResult`] in memory; experiments add a
//! verdict and figures to it; [`write_run`] turns it into a run folder atomically.
//!
//! * [`records`]: per-instance metrics, and which restart of each sweep point is kept;
//! * [`figures`]: the figures every run gets;
//! * [`folder`]: the run folder (`metrics.json`, weights, snapshots, figures, later stages);
//! * [`summary`]: the terminal table.

pub mod figures;
pub mod folder;
pub mod records;
pub mod summary;

pub use figures::{
    arrows_figure, bars_figure, gram_figure, loss_figure, panel_title, standard_figures,
};
pub use folder::{metrics_file, write_run};
pub use records::{instance_records, params_of};
pub use summary::summary_table;

use crate::analysis::Verdict;
use crate::config::TrainConfig;
use crate::model::Shape;
use crate::output::plots::Figure;
use crate::output::records::{InstanceRecord, PaperClaim};
use crate::output::weights::Weights;
use crate::train::{
    eval_batches, evaluate, train, train_set_loss, Progress, TrainControl, TrainState, Trained,
};

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
    /// The paper's claim, for experiments.
    pub paper: Option<PaperClaim>,
    /// Later stages (trained after this run, on its results), written under `stages/`.
    pub stages: Vec<RunResult>,
    /// Numbers of an experiment that trains no toy model (its own structure), written to
    /// `metrics.json` as `results`.
    pub results: Option<serde_json::Value>,
    /// Files of its own, written as they are (relative paths, e.g. `saes/NAME/cfg.json`;
    /// folders are created).
    pub files: Vec<(String, Vec<u8>)>,
}

impl RunResult {
    /// A run of analysed weights, not yet judged: no training record, verdict, figures or
    /// later stages.
    pub fn analysed(
        experiment: &str,
        config: Option<TrainConfig>,
        weights: Weights,
        records: Vec<InstanceRecord>,
    ) -> Self {
        RunResult {
            experiment: experiment.to_string(),
            config,
            weights,
            trained: None,
            records,
            verdict: None,
            figures: Vec::new(),
            paper: None,
            stages: Vec::new(),
            results: None,
            files: Vec::new(),
        }
    }

    /// Records of the lowest-loss restart of each sweep point, in order.
    pub fn selected(&self) -> Vec<&InstanceRecord> {
        self.records.iter().filter(|r| r.selected).collect()
    }

    /// `W` of the instance a record describes.
    pub fn w(&self, record: &InstanceRecord) -> &[f32] {
        self.weights.instance_w(record.position)
    }

    /// The decoder `W₂` (`[n][m]`) of the instance a record describes, for untied models.
    pub fn w_dec(&self, record: &InstanceRecord) -> Option<&[f32]> {
        let len = self.weights.features * self.weights.hidden;
        let k = record.position;
        self.weights.w_dec.as_ref()?.get(k * len..(k + 1) * len)
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
    // The notebook's init scale counts the models of one run; restarts are repeated runs, so
    // they keep the scale of a single one.
    let models_per_run = all.iter().filter(|s| s.restart == 0).count();
    let trained = train(config, specs, models_per_run, resume, control, progress)?;
    let kinds: Vec<_> = specs.iter().map(|s| s.kind).collect();
    let weights = Weights::from_params(
        &trained.shape,
        &kinds,
        &trained.params,
        Some(config.clone()),
    );
    let mut records = instance_records(&weights, Some(specs), Some(&trained.final_loss));
    if let Some(losses) = &trained.train_set_loss {
        for (r, &l) in records.iter_mut().zip(losses) {
            r.train_set_loss = Some(l);
        }
    }
    let mut run = RunResult::analysed(experiment, Some(config.clone()), weights, records);
    run.trained = Some(trained);
    Ok(run)
}

/// Analyse weights loaded from a file. When the file carries a `tms` config that matches its
/// tensors, per-instance p, I and the loss on fresh batches are reported too.
pub fn analyze_weights(weights: Weights) -> RunResult {
    let specs = weights
        .config
        .as_ref()
        .and_then(|c| c.resolve().ok().map(|all| c.selected(&all).to_vec()))
        .filter(|s| s.len() == weights.instances);
    // (final loss, loss on the fixed training set) per instance, when the config is known.
    let losses: Option<Vec<(f64, Option<f64>)>> = match (&weights.config, &specs, &weights.b) {
        (Some(cfg), Some(specs), Some(_)) => Some(
            specs
                .iter()
                .enumerate()
                .map(|(k, spec)| {
                    let shape = Shape {
                        kind: spec.kind,
                        features: weights.features,
                        hidden: weights.hidden,
                    };
                    let params = params_of(&weights, &shape, k);
                    let batches = eval_batches(&cfg.train);
                    (
                        evaluate(shape, &cfg.train, spec, &params, batches),
                        train_set_loss(shape, &cfg.train, spec, &params),
                    )
                })
                .collect(),
        ),
        _ => None,
    };
    let final_loss: Option<Vec<f64>> = losses.as_ref().map(|l| l.iter().map(|p| p.0).collect());
    let mut records = instance_records(&weights, specs.as_deref(), final_loss.as_deref());
    for (r, (_, train_set)) in records.iter_mut().zip(losses.iter().flatten()) {
        r.train_set_loss = *train_set;
    }
    RunResult::analysed("analyze", weights.config.clone(), weights, records)
}
