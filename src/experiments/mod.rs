//! The paper's experiments, as a registry on top of the pipeline.
//!
//! Each experiment is one file that gives its config (the paper's settings), its figures, and
//! its verdict: the paper's "reproduced when", checked against the trained weights with the
//! measured numbers recorded.

pub mod intro;
pub mod linear_vs_relu;
pub mod phase;
pub mod sweep_100;
pub mod uniform;
#[cfg(test)]
mod verdict_failures;

use crate::analysis::Verdict;
use crate::config::TrainConfig;
use crate::output::plots::Figure;
use crate::pipeline::{train_run, RunResult};
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

/// Options a user can set on any experiment.
#[derive(Clone, Debug, Default)]
pub struct ExperimentOptions {
    /// Compute budget.
    pub profile: Profile,
    /// Seed of every random stream (default 0).
    pub seed: Option<u64>,
    /// Restarts per sweep point; figures and verdicts use the lowest-loss one (default 1).
    pub restarts: Option<usize>,
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
    /// The settings.
    pub config: fn(&ExperimentOptions) -> TrainConfig,
    /// Figures of a finished run.
    pub figures: fn(&RunResult) -> Vec<(String, Figure)>,
    /// The paper's result, checked.
    pub verdict: fn(&RunResult) -> Verdict,
}

/// Every registered experiment, in paper order.
pub fn registry() -> &'static [Experiment] {
    static REGISTRY: [Experiment; 7] = [
        intro::EXPERIMENT,
        linear_vs_relu::EXPERIMENT,
        sweep_100::EXPERIMENT,
        phase::PHASE_2_1,
        phase::PHASE_3_2,
        uniform::UNIFORM,
        uniform::GEOMETRY,
    ];
    &REGISTRY
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

impl Experiment {
    /// Train (or continue from `resume`), analyse, draw and judge, with `config` from
    /// [`Experiment::config`] (possibly adjusted by the caller, e.g. an instance subset).
    pub fn run(
        &self,
        config: &TrainConfig,
        resume: Option<&TrainState>,
        control: TrainControl<'_>,
        progress: &mut dyn Progress,
    ) -> anyhow::Result<RunResult> {
        let mut run = train_run(self.name, config, resume, control, progress)?;
        self.judge(&mut run);
        Ok(run)
    }

    /// Add this experiment's figures and verdict to a finished run.
    pub fn judge(&self, run: &mut RunResult) {
        run.figures = (self.figures)(run);
        run.verdict = Some((self.verdict)(run));
    }
}
