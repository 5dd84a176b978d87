//! The paper's experiments, as a registry on top of the pipeline.
//!
//! Each experiment is one file that gives its config (the paper's settings), its figures, and
//! its verdict: the paper's "reproduced when", checked against the trained weights with the
//! measured numbers recorded.

pub mod adversarial;
pub mod adversarial_training;
pub mod asymmetric_motif;
pub mod collapse;
pub mod computation;
pub mod computation_sweep;
pub mod correlated;
pub mod double_descent;
pub mod dynamics;
pub mod dynamics_correlated;
pub mod hidden_l1;
pub mod intro;
pub mod linear_vs_relu;
pub mod local_bases;
pub mod non_uniform;
pub mod orthogonal;
pub mod phase;
pub mod privileged_basis;
pub mod sae_synthetic;
pub mod sae_toy;
pub mod sweep_100;
pub mod uniform;
#[cfg(test)]
mod verdict_failures;

use crate::analysis::Verdict;
use crate::config::{
    DataConfig, ImportanceSpec, ModelConfig, PerFeature, SetConfig, SweepConfig, TrainConfig,
    TrainSettings,
};
use crate::data::sampler::SetKind;
use crate::model::ModelKind;
use crate::output::plots::Figure;
use crate::output::records::PaperClaim;
use crate::pipeline::{standard_figures, train_run, RunResult};
use crate::train::{Progress, TrainControl, TrainState};

/// How much compute an experiment spends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Small enough for a 2-core laptop in about two minutes per experiment, still
    /// reproducing the result (fewer restarts, coarser grids, fewer steps where safe).
    #[default]
    Quick,
    /// The paper's (or notebook's) full settings, for a bigger machine or a long run.
    Paper,
}

impl Profile {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Paper => "paper",
        }
    }

    /// The profile called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Profile::Quick, Profile::Paper]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// Options a user can set on any experiment: applied to every training stage by
/// [`ExperimentOptions::apply`], the one place they are applied.
#[derive(Clone, Debug, Default)]
pub struct ExperimentOptions {
    /// Compute budget.
    pub profile: Profile,
    /// Seed of every random stream (default: the experiment's, 0).
    pub seed: Option<u64>,
    /// Restarts per sweep point; figures and verdicts use the lowest-loss one (default: the
    /// experiment's).
    pub restarts: Option<usize>,
}

impl ExperimentOptions {
    /// Set the seed, and the restarts of the config's sweep (a config without a sweep or
    /// instance list gets a sweep of restarts; an `[[instance]]` list is left as it is).
    pub fn apply(&self, config: &mut TrainConfig) {
        if let Some(seed) = self.seed {
            config.train.seed = seed;
        }
        if let Some(restarts) = self.restarts {
            if config.instances.is_empty() {
                config
                    .sweep
                    .get_or_insert_with(SweepConfig::default)
                    .restarts = restarts;
            }
        }
    }
}

/// Stages after an experiment's main training: post-processing that trains more configs
/// (train, then attack; a toy model, then something on its activations).
pub type AfterStage = fn(&mut Stages<'_>, &mut RunResult) -> anyhow::Result<()>;

/// Computes an experiment that trains no toy model (vector packings, ...): the run it returns
/// carries its arrays as weights and its numbers in `results`; figures and verdict are added
/// as for any experiment.
pub type Compute = fn(&ExperimentOptions, &mut dyn Progress) -> anyhow::Result<RunResult>;

/// What an experiment runs.
pub enum Work {
    /// Train toy models.
    Train {
        /// The settings of the main training stage (seed and restarts are applied centrally).
        config: fn(Profile) -> TrainConfig,
        /// Stages after the main training, when the experiment has any.
        after: Option<AfterStage>,
    },
    /// Compute without training (no checkpoints, no `--instances`).
    Compute(Compute),
}

/// A paper experiment.
pub struct Experiment {
    /// Name on the command line.
    pub name: &'static str,
    /// Where it is in the paper.
    pub section: &'static str,
    /// One line: what it shows.
    pub summary: &'static str,
    /// The paper's result, as the report states it.
    pub claim: &'static str,
    /// What it runs: toy models to train, or a computation of its own.
    pub work: Work,
    /// Figures of a finished run.
    pub figures: fn(&RunResult) -> Vec<(String, Figure)>,
    /// The paper's result, checked.
    pub verdict: fn(&RunResult) -> Verdict,
}

/// Every registered experiment, in paper order.
pub fn registry() -> &'static [Experiment] {
    static REGISTRY: [Experiment; 24] = [
        orthogonal::EXPERIMENT,
        intro::EXPERIMENT,
        linear_vs_relu::EXPERIMENT,
        sweep_100::EXPERIMENT,
        phase::PHASE_2_1,
        phase::PHASE_3_2,
        uniform::UNIFORM,
        uniform::GEOMETRY,
        non_uniform::EXPERIMENT,
        correlated::EXPERIMENT,
        local_bases::EXPERIMENT,
        collapse::EXPERIMENT,
        dynamics::EXPERIMENT,
        dynamics_correlated::EXPERIMENT,
        adversarial::EXPERIMENT,
        adversarial_training::EXPERIMENT,
        privileged_basis::EXPERIMENT,
        computation::EXPERIMENT,
        computation_sweep::EXPERIMENT,
        asymmetric_motif::EXPERIMENT,
        hidden_l1::EXPERIMENT,
        double_descent::EXPERIMENT,
        sae_synthetic::EXPERIMENT,
        sae_toy::EXPERIMENT,
    ];
    &REGISTRY
}

/// The loss of `record`'s model on the evaluation stream of instance `common`: restarts of one
/// sweep point evaluated on one sample differ by their models, not by the draw (`specs` are the
/// run's resolved instances; `None` without a config).
pub(crate) fn common_sample_loss(
    run: &RunResult,
    specs: Option<&[crate::config::InstanceSpec]>,
    record: &crate::output::records::InstanceRecord,
    common: usize,
) -> Option<f64> {
    let config = run.config.as_ref()?;
    let mut spec = specs?.iter().find(|s| s.index == record.index)?.clone();
    spec.index = common;
    let shape = crate::model::Shape {
        kind: spec.kind,
        ..config.shape()
    };
    let params = run.weights.instance_params(record.position, &shape)?;
    let batches = crate::train::eval_batches(&config.train);
    Some(crate::train::evaluate(
        shape,
        &config.train,
        &spec,
        &params,
        batches,
    ))
}

/// The config the feature-set experiments share: a ReLU-output model with `sets` consecutive
/// sets of `size` features of one `kind` (features 0..size, size..2·size, ...), importance 1,
/// each set active with probability `p`, `hidden` dimensions, the notebook's optimiser, and
/// `restarts` restarts.
pub(crate) fn sets_config(
    name: &str,
    (sets, size, kind): (usize, usize, SetKind),
    hidden: usize,
    p: f64,
    restarts: usize,
) -> TrainConfig {
    TrainConfig {
        name: name.into(),
        model: ModelConfig {
            kind: ModelKind::ReluOutput,
            features: sets * size,
            hidden,
        },
        train: TrainSettings::default(),
        data: DataConfig {
            feature_probability: PerFeature::All(p),
            importance: ImportanceSpec::All(1.0),
            sets: (0..sets)
                .map(|s| SetConfig {
                    kind,
                    features: (s * size..(s + 1) * size).collect(),
                    probability: Default::default(),
                })
                .collect(),
            ..DataConfig::default()
        },
        sweep: Some(SweepConfig {
            restarts,
            ..SweepConfig::default()
        }),
        instances: Vec::new(),
    }
}

/// The config of a sweep over feature densities: a `kind` model of `features` × `hidden`,
/// importance `decay`^i, one point per density in `densities`, `restarts` restarts each,
/// `steps` steps and otherwise the notebook's optimiser.
pub(crate) fn density_sweep_config(
    name: &str,
    (kind, features, hidden): (ModelKind, usize, usize),
    decay: f64,
    densities: &[f64],
    (steps, restarts): (u64, usize),
) -> TrainConfig {
    TrainConfig {
        name: name.into(),
        model: ModelConfig {
            kind,
            features,
            hidden,
        },
        train: TrainSettings {
            steps,
            ..TrainSettings::default()
        },
        data: DataConfig {
            feature_probability: PerFeature::All(1.0),
            importance: ImportanceSpec::Decay { decay },
            ..DataConfig::default()
        },
        sweep: Some(SweepConfig {
            feature_probability: Some(crate::config::Axis::Values(densities.to_vec())),
            restarts,
            ..SweepConfig::default()
        }),
        instances: Vec::new(),
    }
}

/// The experiment called `name`.
pub fn find(name: &str) -> Option<&'static Experiment> {
    registry().iter().find(|e| e.name == name)
}

/// Names of every experiment, comma-separated (for error messages).
pub fn names() -> String {
    registry()
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What later stages need from the run: how to train, and the options to apply.
pub struct Stages<'a> {
    options: ExperimentOptions,
    threads: Option<usize>,
    abort: Option<&'a std::sync::atomic::AtomicBool>,
    progress: &'a mut dyn Progress,
}

impl Stages<'_> {
    /// Train `config` as a stage called `name` (the run's seed and restarts applied, all its
    /// instances), analyse it, and return it. Stages after the main one are not checkpointed
    /// and not stopped by a first Ctrl-C: they run to the end and the run folder is written
    /// (a second Ctrl-C aborts without a checkpoint). An abort flag of the main stage's
    /// control (the Python API's Ctrl-C) stops them too.
    pub fn train(&mut self, name: &str, mut config: TrainConfig) -> anyhow::Result<RunResult> {
        self.options.apply(&mut config);
        config.train.only_instances = None;
        let control = TrainControl {
            abort: self.abort,
            threads: self.threads,
            stop: None,
            checkpoint: None,
        };
        train_run(name, &config, None, control, self.progress)
    }

    /// The options every stage gets.
    pub fn options(&self) -> &ExperimentOptions {
        &self.options
    }

    /// The progress display, for stages that train something other than toy models.
    pub fn progress(&mut self) -> &mut dyn Progress {
        self.progress
    }
}

impl Experiment {
    /// The main stage's config for these options (`None` for an experiment that trains
    /// nothing).
    pub fn configure(&self, options: &ExperimentOptions) -> Option<TrainConfig> {
        let Work::Train { config, .. } = self.work else {
            return None;
        };
        let mut config = config(options.profile);
        options.apply(&mut config);
        Some(config)
    }

    /// Whether the experiment trains nothing after its main stage (so experiments with the
    /// same config can share one training).
    pub fn single_stage(&self) -> bool {
        matches!(self.work, Work::Train { after: None, .. })
    }

    /// Run an experiment that trains nothing, then draw and judge.
    pub fn compute(
        &self,
        options: &ExperimentOptions,
        progress: &mut dyn Progress,
    ) -> anyhow::Result<RunResult> {
        let Work::Compute(compute) = self.work else {
            anyhow::bail!("experiment {} trains toy models", self.name);
        };
        let mut run = compute(options, progress)?;
        self.judge(&mut run);
        Ok(run)
    }

    /// Train the main stage `config` (from [`Experiment::configure`], possibly adjusted by the
    /// caller, e.g. an instance subset; or continue it from `resume`), run the later stages,
    /// then draw and judge. `options` are applied to the later stages.
    pub fn run(
        &self,
        config: &TrainConfig,
        options: &ExperimentOptions,
        resume: Option<&TrainState>,
        control: TrainControl<'_>,
        progress: &mut dyn Progress,
    ) -> anyhow::Result<RunResult> {
        let (threads, abort) = (control.threads, control.abort);
        let mut run = train_run(self.name, config, resume, control, progress)?;
        if config.train.only_instances.is_some() {
            // A shard: later stages and the verdict need every instance; `tms merge` joins
            // the shards and runs them.
            run.figures = standard_figures(&run);
            return Ok(run);
        }
        if let Work::Train {
            after: Some(after), ..
        } = self.work
        {
            // Later stages use the main stage's seed, whether it came from the options, the
            // experiment or a checkpoint, so a resumed run repeats them exactly.
            let mut options = options.clone();
            options.seed = Some(config.train.seed);
            let mut stages = Stages {
                options,
                threads,
                abort,
                progress,
            };
            after(&mut stages, &mut run)?;
        }
        self.judge(&mut run);
        Ok(run)
    }

    /// Add this experiment's claim, figures and verdict to a finished run.
    pub fn judge(&self, run: &mut RunResult) {
        run.paper = Some(PaperClaim {
            section: self.section.to_string(),
            summary: self.summary.to_string(),
            claim: self.claim.to_string(),
            order: registry()
                .iter()
                .position(|e| e.name == self.name)
                .unwrap_or(usize::MAX),
        });
        run.figures = (self.figures)(run);
        run.verdict = Some((self.verdict)(run));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Check;
    use crate::pipeline::write_run;
    use crate::train::NoProgress;

    fn tiny(_profile: Profile) -> TrainConfig {
        let mut config = intro::EXPERIMENT
            .configure(&ExperimentOptions::default())
            .unwrap();
        config.name = "two-stages".into();
        config.train.steps = 40;
        config.train.batch_size = 64;
        config.sweep.as_mut().unwrap().feature_probability =
            Some(crate::config::Axis::Values(vec![1.0, 0.1]));
        config
    }

    /// A second stage: the same data in three hidden dimensions.
    fn wider(stages: &mut Stages<'_>, run: &mut RunResult) -> anyhow::Result<()> {
        let mut config = run.config.clone().expect("trained");
        config.name = "wider".into();
        config.model.hidden = 3;
        config.train.seed = 99; // replaced by the run's seed
        let stage = stages.train("wider", config)?;
        run.stages.push(stage);
        Ok(())
    }

    fn no_figures(_: &RunResult) -> Vec<(String, Figure)> {
        Vec::new()
    }

    fn stage_ran(run: &RunResult) -> Verdict {
        Verdict::from_checks(vec![Check {
            name: "the later stage ran".into(),
            passed: run.stages.len() == 1,
            measured: format!("{} stage(s)", run.stages.len()),
            expected: "1".into(),
        }])
    }

    const TWO_STAGES: Experiment = Experiment {
        name: "two-stages",
        section: "test",
        summary: "a main stage and a later one",
        claim: "both run",
        work: Work::Train {
            config: tiny,
            after: Some(wider),
        },
        figures: no_figures,
        verdict: stage_ran,
    };

    /// Seed and restarts reach every stage from one place; later stages become run folders
    /// of their own, and the claim travels in `metrics.json`.
    #[test]
    fn later_stages_get_the_runs_seed_and_restarts_and_are_written_as_run_folders() {
        let options = ExperimentOptions {
            profile: Profile::Quick,
            seed: Some(5),
            restarts: Some(2),
        };
        let config = TWO_STAGES.configure(&options).unwrap();
        assert_eq!(config.train.seed, 5);
        assert_eq!(config.sweep.as_ref().unwrap().restarts, 2);
        let control = TrainControl {
            threads: Some(1),
            ..Default::default()
        };
        let run = TWO_STAGES
            .run(&config, &options, None, control, &mut NoProgress)
            .unwrap();
        assert!(run.verdict.as_ref().unwrap().reproduced);
        let stage = &run.stages[0];
        let stage_config = stage.config.as_ref().unwrap();
        assert_eq!(stage_config.train.seed, 5);
        assert_eq!(stage_config.sweep.as_ref().unwrap().restarts, 2);
        assert_eq!(stage.weights.hidden, 3);
        assert_eq!(stage.records.len(), 4);

        let dir = tempfile::tempdir().unwrap();
        let out = write_run(&run, &dir.path().join("run"), false).unwrap();
        let metrics: crate::output::records::MetricsFile =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        assert_eq!(metrics.stages, ["wider"]);
        assert_eq!(metrics.paper.unwrap().claim, "both run");
        let inner = out.join("stages/wider");
        for file in [
            "weights.safetensors",
            "metrics.json",
            "config.toml",
            "loss.csv",
        ] {
            assert!(inner.join(file).exists(), "{file}");
        }
    }

    /// `--seed` changes the weights; no seed keeps the experiment's (0).
    #[test]
    fn options_apply_to_any_config() {
        let mut config = intro::EXPERIMENT
            .configure(&ExperimentOptions::default())
            .unwrap();
        assert_eq!(config.train.seed, 0);
        assert_eq!(config.sweep.as_ref().unwrap().restarts, 5);
        config.sweep = None;
        let options = ExperimentOptions {
            restarts: Some(3),
            ..Default::default()
        };
        options.apply(&mut config);
        assert_eq!(config.resolve().unwrap().len(), 3);
        let phase = phase::PHASE_2_1
            .configure(&ExperimentOptions::default())
            .unwrap();
        assert_eq!(
            phase.sweep.unwrap().restarts,
            5,
            "the experiment's own default"
        );
    }
}
