//! Train a grid of SAEs side by side and score each against the ground truth.
//!
//! Every SAE of one input sees the same batches: each SAE is a worker with its own copy of
//! its input's stream (drawing is cheap beside a step), so the workers never wait for each
//! other; they run in parallel, one per thread (a lone SAE instead spreads each pass of its
//! step over the threads, and draws its next batch during the step). Results do not depend on
//! the thread count.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::checkpoint::{SaeSnapshot, SaeState};
use super::config::{KindName, SaeConfig};
use super::metrics;
use super::model::{AdamSettings, Sae, SaeKind, Workspace};
use crate::config::TrainConfig;
use crate::data::ground_truth::{GroundTruth, SampleScratch};
use crate::data::rng::{stream_key, LaneRng, StreamKind, LANES};
use crate::data::FeatureSampler;
use crate::model::{forward::forward, Shape};
use crate::output::weights::Weights;
use crate::train::Progress;

/// Best cosine above which a true feature counts as recovered.
pub const RECOVERED_COSINE: f32 = 0.9;

/// Loss-curve points recorded per SAE.
const CURVE_POINTS: u64 = 100;

/// What one input is: its ground truth and where its rows come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputInfo {
    /// `synthetic`, or `instance K` of a toy-model run.
    pub label: String,
    /// Number of true features G.
    pub features: usize,
    /// Input dimension d.
    pub dim: usize,
    /// Mean number of true features active per row (Σ_g p_g).
    pub mean_active: f64,
    /// For toy-model inputs: the model's features that are the ground truth (‖W_i‖ above the
    /// threshold), its feature count n, and the mean probability that a feature is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toy: Option<ToyInfo>,
}

/// The toy model behind an activations input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyInfo {
    /// The run instance.
    pub instance: usize,
    /// Features of the toy model.
    pub features: usize,
    /// Represented features (the ground truth), by index.
    pub represented: Vec<usize>,
    /// Mean of the features' presence probabilities (1 − S).
    pub density: f64,
}

/// Every number measured on one SAE (fresh evaluation rows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaeMetrics {
    /// Mean over true features of the best cosine with a decoder row.
    pub mmcs: f64,
    /// Mean cosine over a one-to-one (Hungarian) matching of features and latents.
    pub mcc: f64,
    /// Distinct features that are some latent's best match, over the latents.
    pub uniqueness: f64,
    /// Share of true features with best cosine > 0.9.
    pub recovered: f64,
    /// Mean over latents of P(best feature active | latent fires).
    pub precision: f64,
    /// Mean over latents of P(latent fires | best feature active).
    pub recall: f64,
    /// Mean number of latents firing per row.
    pub l0: f64,
    /// Share of latents that never fire on the evaluation rows.
    pub dead_fraction: f64,
    /// Mean squared reconstruction error per row (summed over dimensions).
    pub mse: f64,
    /// Fraction of variance explained.
    pub variance_explained: f64,
    /// Mean ‖x̂‖/‖x‖.
    pub shrinkage: f64,
    /// MMCS of this dictionary against the next-larger one (same input, penalty or k): the
    /// replication's check without ground truth; absent for the largest size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmcs_to_larger: Option<f64>,
}

/// One trained SAE of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaeResult {
    /// Folder name under `saes/`.
    pub name: String,
    /// Which input (index into [`SaeResults::inputs`]).
    pub input: usize,
    /// Architecture.
    pub kind: KindName,
    /// Dictionary size D.
    pub latents: usize,
    /// L1 penalty (kind l1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub penalty: Option<f64>,
    /// Active latents (kind topk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// Training loss over the last 1 % of steps.
    pub final_loss: f64,
    /// Scores.
    pub metrics: SaeMetrics,
}

/// Everything a `tms sae` run measured (`metrics.json`, `results`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaeResults {
    /// The inputs, in order.
    pub inputs: Vec<InputInfo>,
    /// The SAEs, input by input, then size, then penalty or k.
    pub saes: Vec<SaeResult>,
    /// Steps at which the loss curves were recorded.
    pub curve_steps: Vec<u64>,
    /// Loss per SAE at those steps (same order as `saes`).
    pub curves: Vec<Vec<f64>>,
    /// Training time in seconds (all SAEs together).
    pub seconds: f64,
    /// SAE steps per second (SAEs × steps / seconds).
    pub sae_steps_per_second: f64,
}

/// A finished run: the results, the ground truths and the trained SAEs.
pub struct SaeRun {
    /// The config it ran.
    pub config: SaeConfig,
    /// Scores and curves.
    pub results: SaeResults,
    /// One ground truth per input.
    pub truths: Vec<GroundTruth>,
    /// The trained SAEs, in the order of `results.saes`.
    pub saes: Vec<Sae>,
}

/// Where one input's rows come from.
#[derive(Clone)]
enum Source {
    Synthetic {
        rng: LaneRng,
        scratch: SampleScratch,
    },
    Toy {
        shape: Shape,
        params: Vec<f32>,
        sampler: FeatureSampler,
        represented: Vec<usize>,
        ones: Vec<f32>,
        x: Vec<f32>,
        rows: usize,
    },
}

/// One input: its ground truth and a stream of rows.
#[derive(Clone)]
struct Input {
    info: InputInfo,
    truth: GroundTruth,
    source: Source,
}

impl Input {
    /// The position of the input's random stream.
    fn stream_state(&self) -> [u32; 4 * LANES] {
        match &self.source {
            Source::Synthetic { rng, .. } => rng.state(),
            Source::Toy { sampler, .. } => sampler.rng_state(),
        }
    }

    /// Continue the stream from a saved position.
    fn set_stream_state(&mut self, state: &[u32; 4 * LANES]) {
        match &mut self.source {
            Source::Synthetic { rng, .. } => *rng = LaneRng::from_state(state),
            Source::Toy { sampler, .. } => sampler.set_rng_state(state),
        }
    }

    /// Fill `x` ([rows, d]) and `active` ([rows, G]) with the next rows.
    fn fill(&mut self, x: &mut [f32], active: Option<&mut [bool]>) {
        match &mut self.source {
            Source::Synthetic { rng, scratch } => self.truth.sample(rng, x, active, scratch),
            Source::Toy {
                shape,
                params,
                sampler,
                represented,
                ones,
                x: features,
                rows,
            } => {
                let rows = *rows;
                let m = shape.hidden;
                sampler.fill_padded(features, rows, rows);
                let pass = forward(shape, params, features, rows, ones);
                for r in 0..rows {
                    for k in 0..m {
                        x[r * m + k] = pass.hidden[k * rows + r];
                    }
                }
                if let Some(active) = active {
                    let g = represented.len();
                    for (gi, &f) in represented.iter().enumerate() {
                        for r in 0..rows {
                            active[r * g + gi] = features[f * rows + r] != 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// The inputs of `config`, with streams for `rows`-row batches (`stream`: training or
/// evaluation).
fn inputs(
    config: &SaeConfig,
    toy: Option<&Weights>,
    rows: usize,
    stream: StreamKind,
) -> anyhow::Result<Vec<Input>> {
    let seed = config.train.seed;
    if let Some(g) = &config.ground_truth {
        let truth = GroundTruth::new(g, seed);
        return Ok(vec![Input {
            info: InputInfo {
                label: "synthetic".into(),
                features: truth.features,
                dim: truth.dim,
                mean_active: truth.probabilities.iter().sum(),
                toy: None,
            },
            truth,
            source: Source::Synthetic {
                rng: GroundTruth::stream(seed, stream),
                scratch: SampleScratch::default(),
            },
        }]);
    }
    let a = config
        .activations
        .as_ref()
        .context("the config has no input")?;
    let weights = toy.context("activations: the toy model's weights were not loaded")?;
    let train_config: TrainConfig = weights.config.clone().with_context(|| {
        format!(
            "{} has no config in its metadata: SAEs on activations need a run written by tms \
             (its data distribution comes from the config)",
            a.run.display()
        )
    })?;
    let specs = train_config
        .resolve()
        .map_err(|e| anyhow::anyhow!("the run's config: {e}"))?;
    let chosen: Vec<usize> = if a.instances.is_empty() {
        (0..specs.len()).collect()
    } else {
        a.instances.clone()
    };
    let mut out = Vec::new();
    for &position in &chosen {
        let Some(spec) = specs.get(position) else {
            bail!(
                "activations.instances: the run has {} instances, no instance {position}",
                specs.len()
            );
        };
        let shape = Shape {
            kind: spec.kind,
            ..train_config.shape()
        };
        let params = weights
            .instance_params(position, &shape)
            .with_context(|| format!("instance {position}: weights do not match the config"))?;
        let (n, m) = (shape.features, shape.hidden);
        let w = weights.instance_w(position);
        let mut represented = Vec::new();
        let mut directions = Vec::new();
        for i in 0..n {
            let row = &w[i * m..(i + 1) * m];
            let norm = row.iter().map(|v| (v * v) as f64).sum::<f64>().sqrt();
            if norm > a.represented {
                represented.push(i);
                directions.extend(row.iter().map(|v| (*v as f64 / norm) as f32));
            }
        }
        if represented.is_empty() {
            bail!(
                "instance {position} of {} represents no feature (no ‖W_i‖ > {}): nothing to \
                 recover",
                a.run.display(),
                a.represented
            );
        }
        let probabilities: Vec<f64> = represented
            .iter()
            .map(|&i| spec.feature_probability[i] as f64)
            .collect();
        let density = spec
            .feature_probability
            .iter()
            .map(|&p| p as f64)
            .sum::<f64>()
            / n as f64;
        // Streams of their own: not the rows the toy model trained or was evaluated on.
        let purpose = match stream {
            StreamKind::Eval => StreamKind::SaeEval,
            _ => StreamKind::SaeData,
        };
        let key = stream_key(seed, spec.index as u64, purpose);
        let sampler = spec.data.sampler(&spec.feature_probability, key, rows);
        out.push(Input {
            info: InputInfo {
                label: format!("instance {position}"),
                features: represented.len(),
                dim: m,
                mean_active: probabilities.iter().sum(),
                toy: Some(ToyInfo {
                    instance: position,
                    features: n,
                    represented: represented.clone(),
                    density,
                }),
            },
            truth: GroundTruth::from_directions(directions, m, probabilities.clone()),
            source: Source::Toy {
                shape,
                params,
                sampler,
                represented,
                ones: vec![1.0; n],
                x: vec![0.0; n * rows],
                rows,
            },
        });
    }
    Ok(out)
}

/// A run folder's (or a file's) weights.
fn load_run_weights(run: &Path) -> anyhow::Result<Weights> {
    let path: PathBuf = if run.is_dir() {
        run.join("weights.safetensors")
    } else {
        run.to_path_buf()
    };
    Weights::load(&path).map_err(|e| anyhow::anyhow!("activations.run: {e}"))
}

/// One SAE in training, with its own copy of its input stream and its buffers.
struct Worker {
    sae: Sae,
    input: Input,
    batch: Vec<f32>,
    /// The batch after this one, drawn during the step (a lone SAE only).
    next: Vec<f32>,
    ws: Workspace,
    curve: Vec<f64>,
    tail: f64,
    failed: Option<(u64, f64)>,
}

impl Worker {
    /// Whether the weights and Adam's moments are all finite.
    fn finite(&self) -> bool {
        let (m, v, _) = self.sae.adam_state();
        [&self.sae.params, m, v]
            .iter()
            .all(|p| p.slices().iter().all(|a| a.iter().all(|x| x.is_finite())))
    }

    /// The worker's state at a block boundary.
    fn snapshot(&self) -> SaeSnapshot {
        let (m, v, steps) = self.sae.adam_state();
        SaeSnapshot {
            params: self.sae.params.clone(),
            adam_m: m.clone(),
            adam_v: v.clone(),
            adam_steps: steps,
            stream: self.input.stream_state(),
            curve: self.curve.clone(),
            tail: self.tail,
        }
    }
}

/// Whether a saved state fits the run it is to continue: same steps, one SAE per cell of
/// the grid with the cell's sizes, curve points as many as blocks done.
fn check_state(
    state: &SaeState,
    config: &SaeConfig,
    grid: &[Cell],
    inputs: &[Input],
) -> anyhow::Result<()> {
    let t = &config.train;
    if state.steps != t.steps {
        bail!(
            "the checkpoint is of a {}-step run; its config asks for {}",
            state.steps,
            t.steps
        );
    }
    if state.saes.len() != grid.len() {
        bail!(
            "the checkpoint holds {} SAEs; its config's grid has {}",
            state.saes.len(),
            grid.len()
        );
    }
    let every = (t.steps / CURVE_POINTS).max(1);
    if state.done >= t.steps || !state.done.is_multiple_of(every) {
        bail!(
            "the checkpoint stopped at step {}, not at a block boundary before {}",
            state.done,
            t.steps
        );
    }
    if state.curve_steps.len() as u64 != state.done / every {
        bail!(
            "the checkpoint has {} curve points after {} steps",
            state.curve_steps.len(),
            state.done
        );
    }
    for (i, (s, cell)) in state.saes.iter().zip(grid).enumerate() {
        if s.adam_steps != state.done {
            bail!(
                "checkpoint SAE {i} took {} Adam steps in {} steps",
                s.adam_steps,
                state.done
            );
        }
        let d = inputs[cell.input].info.dim;
        let (n, p) = (cell.latents, &s.params);
        if p.w_enc_t.len() != n * d || p.b_enc.len() != n || p.b_dec.len() != d {
            bail!(
                "checkpoint SAE {i} has {} latents in {} dimensions; the config's cell {} has {n} in {d}",
                p.b_enc.len(),
                p.b_dec.len(),
                name(cell)
            );
        }
    }
    Ok(())
}

/// One cell of the grid.
struct Cell {
    input: usize,
    latents: usize,
    kind: SaeKind,
    /// The penalty as the config wrote it (the kind holds it as f32).
    penalty: Option<f64>,
}

fn cells(config: &SaeConfig, inputs: usize) -> Vec<Cell> {
    let mut out = Vec::new();
    for input in 0..inputs {
        for &latents in &config.sae.latents {
            match config.sae.kind {
                KindName::L1 => out.extend(config.sae.penalties.iter().map(|&a| Cell {
                    input,
                    latents,
                    kind: SaeKind::L1 { alpha: a as f32 },
                    penalty: Some(a),
                })),
                KindName::TopK => out.extend(config.sae.k.iter().map(|&k| Cell {
                    input,
                    latents,
                    kind: SaeKind::TopK { k },
                    penalty: None,
                })),
            }
        }
    }
    out
}

/// What may stop or checkpoint a run (nothing, by default).
#[derive(Default)]
pub struct SaeControl<'a> {
    /// Set (by a signal handler) to stop at the next block of steps with [`Interrupted`].
    pub stop: Option<&'a AtomicBool>,
    /// Wall time between checkpoints, and what to do with each state.
    pub checkpoint: Option<(Duration, &'a mut CheckpointWriter<'a>)>,
}

/// Receives the state of a run at a block boundary (to write a checkpoint).
pub type CheckpointWriter<'a> = dyn FnMut(&SaeState) -> Result<(), String> + 'a;

/// A run stopped by [`SaeControl::stop`], with the state to finish it from.
#[derive(Debug, thiserror::Error)]
#[error("interrupted at step {} of {}", state.done, state.steps)]
pub struct Interrupted {
    /// Where it stopped.
    pub state: Box<SaeState>,
}

/// Train every SAE of `config` and score it (a toy-model input is read from its run folder).
pub fn run(config: &SaeConfig, progress: &mut dyn Progress) -> anyhow::Result<SaeRun> {
    run_controlled(config, None, SaeControl::default(), progress)
}

/// [`run`], continued from `resume` when given, stopped or checkpointed by `control`.
pub fn run_controlled(
    config: &SaeConfig,
    resume: Option<&SaeState>,
    control: SaeControl,
    progress: &mut dyn Progress,
) -> anyhow::Result<SaeRun> {
    let toy = match &config.activations {
        Some(a) => Some(load_run_weights(&a.run)?),
        None => None,
    };
    run_with(config, toy.as_ref(), resume, control, progress)
}

/// [`run_controlled`] with a toy model's weights given (they must carry their config;
/// `activations.run` is then only a label).
pub fn run_with(
    config: &SaeConfig,
    toy: Option<&Weights>,
    resume: Option<&SaeState>,
    mut control: SaeControl,
    progress: &mut dyn Progress,
) -> anyhow::Result<SaeRun> {
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid SAE config: {e}"))?;
    let t = &config.train;
    let train_inputs = inputs(config, toy, t.batch, StreamKind::Data)?;
    let total = config.cells() * train_inputs.len();
    if total > SaeConfig::MAX_CELLS {
        bail!(
            "{} inputs × {} SAEs each is {total} SAEs; at most {} in one run (choose fewer \
             activations.instances)",
            train_inputs.len(),
            config.cells(),
            SaeConfig::MAX_CELLS
        );
    }
    let grid = cells(config, train_inputs.len());
    if let Some(state) = resume {
        check_state(state, config, &grid, &train_inputs)?;
    }
    let mut saes: Vec<Sae> = grid
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let dim = train_inputs[c.input].info.dim;
            match resume {
                Some(state) => {
                    let s = &state.saes[i];
                    let adam = (s.adam_m.clone(), s.adam_v.clone(), s.adam_steps);
                    Sae::from_state(dim, c.latents, c.kind, s.params.clone(), adam)
                }
                None => Sae::new(dim, c.latents, c.kind, t.seed, i as u64),
            }
        })
        .collect();
    let adam = AdamSettings {
        lr: t.lr as f32,
        ..AdamSettings::default()
    };
    let every = (t.steps / CURVE_POINTS).max(1);
    let tail_from = t.steps - (t.steps / 100).max(1);
    let lone = saes.len() == 1;
    // Each SAE draws its own copy of its input's stream (the same batches for every SAE of
    // one input) and runs on its own: no barrier between SAEs within a block of steps.
    let mut workers: Vec<Worker> = grid
        .iter()
        .zip(saes.drain(..))
        .enumerate()
        .map(|(i, (cell, sae))| Worker {
            sae,
            input: {
                let mut input = train_inputs[cell.input].clone();
                if let Some(state) = resume {
                    input.set_stream_state(&state.saes[i].stream);
                }
                input
            },
            batch: vec![0f32; t.batch * train_inputs[cell.input].info.dim],
            next: if lone {
                vec![0f32; t.batch * train_inputs[cell.input].info.dim]
            } else {
                Vec::new()
            },
            ws: Workspace::default(),
            curve: resume.map_or_else(Vec::new, |s| s.saes[i].curve.clone()),
            tail: resume.map_or(0.0, |s| s.saes[i].tail),
            failed: None,
        })
        .collect();
    let mut curve_steps: Vec<u64> = resume.map_or_else(Vec::new, |s| s.curve_steps.clone());
    progress.begin("SAEs", t.steps);
    let before = resume.map_or(Duration::ZERO, |s| s.elapsed);
    let started = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut from = resume.map_or(0, |s| s.done);
    while from < t.steps {
        let to = (from + every).min(t.steps);
        workers.par_iter_mut().for_each(|w| {
            for step in from..to {
                if w.failed.is_some() {
                    return;
                }
                let loss = if lone {
                    // A lone SAE draws the next batch while it trains on this one (within a
                    // block, so that at its end the stream has given exactly its steps).
                    if step == from {
                        w.input.fill(&mut w.next, None);
                    }
                    std::mem::swap(&mut w.batch, &mut w.next);
                    let (sae, ws, batch) = (&mut w.sae, &mut w.ws, &w.batch);
                    let (input, next) = (&mut w.input, &mut w.next);
                    let last = step + 1 == to;
                    let (loss, ()) = rayon::join(
                        || sae.train_step(batch, ws, &adam, true),
                        || {
                            if !last {
                                input.fill(next, None)
                            }
                        },
                    );
                    loss
                } else {
                    w.input.fill(&mut w.batch, None);
                    w.sae.train_step(&w.batch, &mut w.ws, &adam, false)
                };
                if !loss.is_finite() {
                    w.failed = Some((step, loss));
                }
                if step == from {
                    w.curve.push(loss);
                }
                if step >= tail_from {
                    w.tail += loss;
                }
            }
        });
        if let Some((i, (step, loss))) = workers
            .iter()
            .enumerate()
            .find_map(|(i, w)| w.failed.map(|f| (i, f)))
        {
            progress.end();
            bail!(
                "SAE {} diverged at step {step} (loss {loss}): lower train.lr or the penalty",
                name(&grid[i])
            );
        }
        curve_steps.push(from);
        let mean =
            workers.iter().filter_map(|w| w.curve.last()).sum::<f64>() / workers.len() as f64;
        progress.update(to, mean);
        from = to;
        if from == t.steps {
            break;
        }
        let state = || SaeState {
            done: from,
            steps: t.steps,
            curve_steps: curve_steps.clone(),
            saes: workers.iter().map(Worker::snapshot).collect(),
            elapsed: before + started.elapsed(),
        };
        let stopping = control.stop.is_some_and(|s| s.load(Ordering::SeqCst));
        let writing = control
            .checkpoint
            .as_ref()
            .is_some_and(|(every, _)| last_checkpoint.elapsed() >= *every);
        // Only finite states are saved: the block's last update is in no loss yet.
        if stopping || writing {
            if let Some(i) = workers.iter().position(|w| !w.finite()) {
                progress.end();
                bail!(
                    "SAE {} diverged before step {from} (non-finite weights or Adam state):                      lower train.lr or the penalty",
                    name(&grid[i])
                );
            }
        }
        if stopping {
            progress.end();
            return Err(Interrupted {
                state: Box::new(state()),
            }
            .into());
        }
        if let Some((_, write)) = control.checkpoint.as_mut().filter(|_| writing) {
            write(&state()).map_err(|e| anyhow::anyhow!("cannot write a checkpoint: {e}"))?;
            last_checkpoint = Instant::now();
        }
    }
    // The last step's update is not in any loss: check the weights it left.
    if let Some(i) = workers.iter().position(|w| {
        let p = &w.sae.params;
        [&p.w_enc_t, &p.b_enc, &p.w_dec, &p.b_dec]
            .iter()
            .any(|v| v.iter().any(|x| !x.is_finite()))
    }) {
        bail!(
            "SAE {} ended with non-finite weights: lower train.lr or the penalty",
            name(&grid[i])
        );
    }
    let curves: Vec<Vec<f64>> = workers.iter().map(|w| w.curve.clone()).collect();
    let tail: Vec<f64> = workers.iter().map(|w| w.tail).collect();
    let saes: Vec<Sae> = workers.into_iter().map(|w| w.sae).collect();
    progress.end();
    let seconds = (before + started.elapsed()).as_secs_f64();
    let tail_steps = (t.steps - tail_from) as f64;

    // Score every SAE on fresh rows of its input.
    let mut eval_inputs = inputs(config, toy, t.eval_rows, StreamKind::Eval)?;
    let mut eval_rows = Vec::new();
    for input in eval_inputs.iter_mut() {
        let (g, d) = (input.info.features, input.info.dim);
        let mut x = vec![0f32; t.eval_rows * d];
        let mut active = vec![false; t.eval_rows * g];
        input.fill(&mut x, Some(&mut active));
        eval_rows.push((x, active));
    }
    let truths: Vec<GroundTruth> = train_inputs.iter().map(|i| i.truth.clone()).collect();
    let scores: Vec<SaeMetrics> = saes
        .par_iter()
        .zip(grid.par_iter())
        .map(|(sae, cell)| {
            let (x, active) = &eval_rows[cell.input];
            score(sae, &truths[cell.input], x, active)
        })
        .collect();

    let mut results: Vec<SaeResult> = grid
        .iter()
        .zip(scores)
        .zip(&tail)
        .map(|((cell, metrics), tail)| SaeResult {
            name: name(cell),
            input: cell.input,
            kind: config.sae.kind,
            latents: cell.latents,
            penalty: cell.penalty,
            k: match cell.kind {
                SaeKind::TopK { k } => Some(k),
                SaeKind::L1 { .. } => None,
            },
            final_loss: tail / tail_steps,
            metrics,
        })
        .collect();
    link_next_larger(&grid, &saes, &mut results);

    let total_steps = (saes.len() as u64 * t.steps) as f64;
    Ok(SaeRun {
        config: config.clone(),
        results: SaeResults {
            inputs: train_inputs.iter().map(|i| i.info.clone()).collect(),
            saes: results,
            curve_steps,
            curves,
            seconds,
            sae_steps_per_second: total_steps / seconds.max(1e-9),
        },
        truths,
        saes,
    })
}

/// The folder name of a cell: `in0-d1024-l1-0.03` / `in0-d1024-top8`.
fn name(cell: &Cell) -> String {
    match cell.kind {
        SaeKind::L1 { .. } => format!(
            "in{}-d{}-l1-{}",
            cell.input,
            cell.latents,
            cell.penalty.unwrap_or(0.0)
        ),
        SaeKind::TopK { k } => format!("in{}-d{}-top{}", cell.input, cell.latents, k),
    }
}

/// Every metric of one SAE on the evaluation rows `x` with true activity `active`.
pub fn score(sae: &Sae, truth: &GroundTruth, x: &[f32], active: &[bool]) -> SaeMetrics {
    let (g, d, n) = (truth.features, truth.dim, sae.latents);
    let rows = x.len() / d;
    let mut ws = Workspace::default();
    sae.forward(x, &mut ws, false);
    let codes = ws.codes.dense(n);
    let cos = metrics::cosine_matrix(&truth.directions, g, &sae.params.w_dec, n, d);
    let matching = metrics::hungarian_match(&cos, g, n);
    let pairs = metrics::best_match_pairs(&cos, g, n);
    let firing = metrics::firing_classification(active, &codes, rows, g, n, &pairs);
    let stats = metrics::code_stats(&codes, rows, n);
    let recon = metrics::reconstruction_stats(x, &ws.x_hat, rows, d);
    SaeMetrics {
        mmcs: metrics::mmcs(&cos, g, n),
        mcc: matching.mcc,
        uniqueness: metrics::uniqueness(&cos, g, n),
        recovered: metrics::recovered_fraction(&cos, g, n, RECOVERED_COSINE),
        precision: firing.precision,
        recall: firing.recall,
        l0: stats.l0,
        dead_fraction: stats.dead_fraction,
        mse: recon.mse,
        variance_explained: recon.variance_explained,
        shrinkage: recon.shrinkage,
        mmcs_to_larger: None,
    }
}

/// For each SAE, the MMCS of its dictionary against the next-larger dictionary with the same
/// input and penalty (or k).
fn link_next_larger(grid: &[Cell], saes: &[Sae], results: &mut [SaeResult]) {
    for i in 0..grid.len() {
        let larger = (0..grid.len())
            .filter(|&j| {
                grid[j].input == grid[i].input
                    && grid[j].kind == grid[i].kind
                    && grid[j].latents > grid[i].latents
            })
            .min_by_key(|&j| grid[j].latents);
        if let Some(j) = larger {
            let (a, b) = (&saes[i], &saes[j]);
            let cos = metrics::cosine_matrix(
                &a.params.w_dec,
                a.latents,
                &b.params.w_dec,
                b.latents,
                a.dim,
            );
            results[i].metrics.mmcs_to_larger = Some(metrics::mmcs(&cos, a.latents, b.latents));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::NoProgress;

    fn config(latents: &str, penalties: &str) -> SaeConfig {
        SaeConfig::from_toml(
            &format!(
                "[ground_truth]\nfeatures = 24\ndim = 12\nmean_active = 3\n[sae]\n\
                 latents = {latents}\npenalties = {penalties}\n[train]\nsteps = 230\nbatch = 64\n\
                 eval_rows = 256\n"
            ),
            "test",
        )
        .unwrap()
    }

    /// Stopped after its first checkpoint and resumed from the state, a run ends with the same
    /// weights, curves and scores as one straight through: a grid, and a lone SAE (which draws
    /// its next batch during each step).
    #[test]
    fn a_resumed_run_equals_an_uninterrupted_one() {
        for config in [config("[16, 32]", "[0.05]"), config("[32]", "[0.1]")] {
            let full = run(&config, &mut NoProgress).unwrap();
            let stop = AtomicBool::new(false);
            let mut saved = None;
            let mut write = |s: &SaeState| -> Result<(), String> {
                saved = Some(s.clone());
                stop.store(true, Ordering::SeqCst);
                Ok(())
            };
            let control = SaeControl {
                stop: Some(&stop),
                checkpoint: Some((Duration::ZERO, &mut write)),
            };
            let err = run_controlled(&config, None, control, &mut NoProgress)
                .err()
                .expect("stopped");
            let state = err.downcast::<Interrupted>().unwrap().state;
            // Stopped at the block after the checkpoint's: two blocks of 2 steps in.
            assert_eq!(state.done, 4);
            assert_eq!(saved.unwrap().done, 2);
            let resumed = run_controlled(
                &config,
                Some(&state),
                SaeControl::default(),
                &mut NoProgress,
            )
            .unwrap();
            for (a, b) in full.saes.iter().zip(&resumed.saes) {
                assert_eq!(a.params, b.params);
                assert_eq!(a.adam_state(), b.adam_state());
            }
            assert_eq!(full.results.curves, resumed.results.curves);
            assert_eq!(full.results.curve_steps, resumed.results.curve_steps);
            let final_loss = |r: &SaeRun| {
                r.results
                    .saes
                    .iter()
                    .map(|s| s.final_loss)
                    .collect::<Vec<_>>()
            };
            assert_eq!(final_loss(&full), final_loss(&resumed));
        }
    }

    /// A state that does not fit the config is refused with the reason, not trained on.
    #[test]
    fn a_mismatched_state_is_refused() {
        let config = config("[16, 32]", "[0.05]");
        let stop = AtomicBool::new(true);
        let control = SaeControl {
            stop: Some(&stop),
            checkpoint: None,
        };
        let err = run_controlled(&config, None, control, &mut NoProgress)
            .err()
            .expect("stopped");
        let state = *err.downcast::<Interrupted>().unwrap().state;
        let refuse = |state: &SaeState, config: &SaeConfig, what: &str| {
            let err = run_controlled(config, Some(state), SaeControl::default(), &mut NoProgress)
                .err()
                .expect("refused");
            assert!(err.to_string().contains(what), "{err}");
        };
        let mut longer = config.clone();
        longer.train.steps = 500;
        refuse(&state, &longer, "230-step run");
        refuse(&state, &self::config("[16]", "[0.05]"), "holds 2 SAEs");
        refuse(&state, &self::config("[16, 24]", "[0.05]"), "24 in 12");
        let mut odd = state.clone();
        odd.done = 3;
        refuse(&odd, &config, "block boundary");
    }
}
