//! Configs: what to train, as typed TOML, validated before any work starts.
//!
//! A config names the model (`[model]`), the optimiser and run length (`[train]`), the data
//! distribution shared by all instances (`[data]`), and how instances differ: a `[sweep]` (the
//! product of its axes, times `restarts`) or an explicit list of `[[instance]]` tables.
//! [`TrainConfig::resolve`] turns it into one [`InstanceSpec`] per trained model.
//!
//! ```toml
//! name = "my-run"
//! [model]
//! kind = "relu-output"        # linear | relu-output | relu-hidden | abs
//! features = 5
//! hidden = 2
//! [train]
//! steps = 10000
//! [data]
//! importance = { decay = 0.9 }   # I_i = 0.9^i; or a number, or a list with one per feature
//! [sweep]
//! feature_probability = { from = 1.0, to = 0.05, count = 10 }   # log-spaced, or a list
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::data::{DataSpec, DatasetSpec, FeatureSet, SetKind, ValueRange};
use crate::model::{ModelKind, Shape, ROW_CHUNK};

/// A config that failed to parse or validate. Display gives one line naming the field.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Where: `file:line:column` when known.
    pub location: Option<String>,
    /// The field, as a dotted path (`train.steps`, `sweep.feature_probability[3]`).
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            location: None,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Learning-rate schedule, as a factor on `lr` at each step (the notebook's three).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// 1.
    #[default]
    Constant,
    /// 1 - step / steps.
    Linear,
    /// cos(π/2 · step / (steps - 1)).
    Cosine,
    /// (1 + cos(π · step / steps)) / 2: cosine annealing to 0 (PyTorch's `CosineAnnealingLR`),
    /// the memorization paper's decay after its warm-up.
    CosineAnnealing,
}

impl Schedule {
    /// Factor on the learning rate at `step` (0-based) of `steps`.
    pub fn factor(self, step: u64, steps: u64) -> f64 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::Linear => 1.0 - step as f64 / steps as f64,
            Schedule::Cosine => {
                let denom = steps.saturating_sub(1).max(1) as f64;
                (0.5 * std::f64::consts::PI * step as f64 / denom).cos()
            }
            Schedule::CosineAnnealing => {
                let t = step as f64 / steps.max(1) as f64;
                0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// Which training pass computes the loss and gradient (`train.kernel`). Every pass trains
/// every model kind with every option, and they agree to rounding; they differ in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KernelChoice {
    /// Chosen per instance by its shape and density (the default): `sparse` at low density,
    /// `gemm` for big shapes, `fused` for small ones (see `tms::train::TrainPass::choose`).
    #[default]
    Auto,
    /// The fused register-tile kernel (`src/model.rs`): the fastest where per-call overhead
    /// dominates (small n·m). `dense`, its earlier name, is read as `fused`.
    #[serde(alias = "dense")]
    Fused,
    /// The block pass (`src/model/gemm.rs`): the five products through faer on blocks of
    /// rows, for big shapes.
    Gemm,
    /// Sparse input: the encoder and its gradient touch only a row's non-zero inputs and the
    /// decoder's backward only the non-zero output gradients (the block pass with sparse
    /// input; for tied models with m < 8 and no extras, the row-by-row pass of
    /// `src/model/sparse.rs`).
    Sparse,
}

impl KernelChoice {
    fn is_default(&self) -> bool {
        *self == KernelChoice::Auto
    }
}

/// How `W` is initialised (Xavier normal, std = sqrt(2 / (fan_in + fan_out)); b = 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InitScheme {
    /// As the notebook's `xavier_normal_` on the 3-D `[instances, n, m]` tensor: fan_in = n·m,
    /// fan_out = instances·m, so std = sqrt(2 / (m (n + instances))). Faithful, but the scale
    /// depends on how many instances the config has (not on which of them are trained).
    #[default]
    Notebook,
    /// Per instance, as a 2-D `[n, m]` matrix: std = sqrt(2 / (n + m)).
    PerInstance,
}

/// `[model]`: architecture and sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `linear`, `relu-output`, `relu-hidden` or `abs`.
    pub kind: ModelKind,
    /// Number of features n.
    pub features: usize,
    /// Number of hidden dimensions m.
    pub hidden: usize,
}

/// `[train]`: optimiser (AdamW, the notebook's defaults), run length, seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// Optimiser steps (one fresh batch each).
    pub steps: u64,
    /// Rows per batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning-rate schedule (after the warm-up, over the remaining steps).
    pub schedule: Schedule,
    /// Linear warm-up: the learning rate rises from lr/warmup to lr over this many steps
    /// before the schedule starts (0, the default, for none).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub warmup: u64,
    /// Fresh rows behind each instance's final (test) loss, `final_loss` (default 262144).
    #[serde(skip_serializing_if = "is_default_eval_rows")]
    pub eval_rows: usize,
    /// Training pass: `auto` (default), `fused`, `gemm` or `sparse` (see [`KernelChoice`]).
    #[serde(skip_serializing_if = "KernelChoice::is_default")]
    pub kernel: KernelChoice,
    /// Decoupled weight decay (PyTorch AdamW default 0.01).
    pub weight_decay: f64,
    /// λ of an L1 penalty λ·‖h‖₁ on the hidden activations, added to the training loss per
    /// row (averaged over the batch); 0, the default, for none. Evaluation losses leave it out.
    #[serde(skip_serializing_if = "is_zero")]
    pub hidden_l1: f64,
    /// Adversarial training: every step perturbs the batch's inputs (not the targets) by the
    /// paper's analytic attack on one random feature i, δ = ε(WᵀW)_i/‖(WᵀW)_i‖, with ε this
    /// share of the root-mean-square input norm; 0, the default, for none. Tied models only.
    #[serde(skip_serializing_if = "is_zero")]
    pub adversarial_radius: f64,
    /// Adam β₁.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// Seed of every random stream (instance `k` uses streams derived from `(seed, k)`).
    pub seed: u64,
    /// Initialisation convention.
    pub init: InitScheme,
    /// Number of points of the loss curve kept in `loss.csv`.
    pub log_points: u64,
    /// Train only instances `from..to` of the config (to shard a sweep across machines); each
    /// gets exactly the weights it would get in the full run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_instances: Option<InstanceRange>,
    /// Save `W` and `b` of every instance at these steps (`snapshots.safetensors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<Snapshots>,
}

/// `[train].snapshots`: the steps at which the weights are saved during training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Snapshots {
    /// Explicit steps (0 is the initialisation, `steps` the end).
    Steps(Vec<u64>),
    /// Step 0, then up to `count - 1` steps spaced from 1 to `steps` (rounded to whole steps;
    /// duplicates are removed, so the early log-spaced steps and short runs give fewer).
    Spaced {
        /// Number of snapshots.
        count: usize,
        /// `log` (default) or `linear`.
        #[serde(default)]
        spacing: Spacing,
    },
}

/// How spaced snapshot steps are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Spacing {
    /// Evenly on a log scale (learning dynamics happen early).
    #[default]
    Log,
    /// Evenly.
    Linear,
}

/// Most snapshots one run may take.
pub const MAX_SNAPSHOTS: usize = 10_000;

impl Snapshots {
    /// The sorted, distinct steps of a run of `steps` steps (unvalidated values are clamped).
    pub fn steps(&self, steps: u64) -> Vec<u64> {
        let mut out: Vec<u64> = match self {
            Snapshots::Steps(list) => list.iter().map(|&s| s.min(steps)).collect(),
            Snapshots::Spaced { count, spacing } => {
                let count = (*count).min(MAX_SNAPSHOTS);
                let mut v = vec![0];
                let k = count.saturating_sub(1);
                for j in 0..k {
                    let t = if k == 1 {
                        1.0
                    } else {
                        j as f64 / (k - 1) as f64
                    };
                    let s = match spacing {
                        Spacing::Log => (steps as f64).powf(t).round() as u64,
                        Spacing::Linear => (1.0 + t * (steps as f64 - 1.0)).round() as u64,
                    };
                    v.push(s.clamp(1, steps));
                }
                v
            }
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    fn validate(&self, steps: u64) -> Result<(), ConfigError> {
        match self {
            Snapshots::Steps(list) => {
                if list.is_empty() || list.len() > MAX_SNAPSHOTS {
                    return Err(ConfigError::new(
                        "train.snapshots",
                        format!("has {} steps: give 1 to {MAX_SNAPSHOTS}", list.len()),
                    ));
                }
                for (k, &s) in list.iter().enumerate() {
                    if s > steps {
                        return Err(ConfigError::new(
                            format!("train.snapshots[{k}]"),
                            format!("{s} is out of range: the run has {steps} steps (0 is the initialisation)"),
                        ));
                    }
                }
            }
            Snapshots::Spaced { count, .. } => {
                if *count == 0 || *count > MAX_SNAPSHOTS {
                    return Err(ConfigError::new(
                        "train.snapshots.count",
                        format!("{count} is out of range: allowed 1 to {MAX_SNAPSHOTS}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A half-open range of instance indices, `from..to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceRange {
    /// First instance.
    pub from: usize,
    /// One past the last instance.
    pub to: usize,
}

impl std::str::FromStr for InstanceRange {
    type Err = String;

    /// `3..5` (instances 3 and 4) or `7` (instance 7 alone).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a range: write FROM..TO (e.g. 3..5) or one index");
        let (from, to) = match s.split_once("..") {
            Some((a, b)) => (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let k: usize = s.trim().parse().map_err(|_| bad())?;
                (k, k + 1)
            }
        };
        if from >= to {
            return Err(format!("{s:?} is empty: FROM must be below TO"));
        }
        Ok(InstanceRange { from, to })
    }
}

/// Shard `index` of `count` (`--shard K/N`, 1 ≤ K ≤ N): the N shards split a run's instances
/// into N consecutive ranges whose sizes differ by at most one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `2/4`: the second of four shards.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a shard: write K/N with 1 ≤ K ≤ N (e.g. 2/4)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The instances of this shard among `total`: `(K−1)·T/N .. K·T/N`.
    pub fn range(self, total: usize) -> Result<InstanceRange, String> {
        if self.count > total {
            return Err(format!(
                "{} shards for {total} instances: some shards would be empty; use at most {total}",
                self.count
            ));
        }
        Ok(InstanceRange {
            from: (self.index - 1) * total / self.count,
            to: self.index * total / self.count,
        })
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// Default of `train.eval_rows`: about 1e-3 relative precision on the paper's sparsest
/// losses, where restarts differ by ~1e-4 (sparse data makes the loss a rare-event average).
pub const DEFAULT_EVAL_ROWS: usize = 1 << 18;

fn is_default_eval_rows(v: &usize) -> bool {
    *v == DEFAULT_EVAL_ROWS
}

impl TrainSettings {
    /// The schedule in words, e.g. `cosine-annealing after a 500-step linear warm-up`.
    pub fn schedule_description(&self) -> String {
        let name = match self.schedule {
            Schedule::Constant => "constant",
            Schedule::Linear => "linear",
            Schedule::Cosine => "cosine",
            Schedule::CosineAnnealing => "cosine-annealing",
        };
        if self.warmup == 0 {
            name.to_string()
        } else {
            format!("{name} after a {}-step linear warm-up", self.warmup)
        }
    }

    /// Factor on `lr` at `step` (0-based): the linear warm-up, then the schedule over the
    /// remaining steps.
    pub fn lr_factor(&self, step: u64) -> f64 {
        if step < self.warmup {
            return (step + 1) as f64 / self.warmup as f64;
        }
        self.schedule
            .factor(step - self.warmup, self.steps.saturating_sub(self.warmup))
    }
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            steps: 10_000,
            batch_size: 1024,
            lr: 1e-3,
            schedule: Schedule::Constant,
            warmup: 0,
            eval_rows: DEFAULT_EVAL_ROWS,
            kernel: KernelChoice::Auto,
            weight_decay: 0.01,
            hidden_l1: 0.0,
            adversarial_radius: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            seed: 0,
            init: InitScheme::Notebook,
            log_points: 200,
            only_instances: None,
            snapshots: None,
        }
    }
}

/// A value for every feature: one number for all, or a list with one per feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerFeature {
    /// The same value for every feature.
    All(f64),
    /// One value per feature.
    Each(Vec<f64>),
}

/// Feature importances: a number, a list, or a geometric decay I_i = decay^i.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImportanceSpec {
    /// The same importance for every feature.
    All(f64),
    /// One importance per feature.
    Each(Vec<f64>),
    /// I_i = decay^i, i = 0..n.
    Decay {
        /// The ratio between consecutive features' importances.
        decay: f64,
    },
}

/// `[data]`: the distribution every instance starts from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Probability p = 1 - S that a feature is non-zero (for a set's members, see
    /// [`SetConfig`]).
    pub feature_probability: PerFeature,
    /// Importance I_i of each feature in the loss.
    pub importance: ImportanceSpec,
    /// Range of a present value: `unit` ([0, 1]) or `symmetric` ([-1, 1]); by default
    /// `symmetric` for the `abs` model and `unit` for the others, as in the paper. The loss's
    /// target is |x| for every model, as in the notebook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<ValueRange>,
    /// Features drawn together (`[[data.sets]]`); the rest are independent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<SetConfig>,
    /// Train on a fixed dataset of T rows instead of fresh batches (`[data.dataset]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetConfig>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            feature_probability: PerFeature::All(1.0),
            importance: ImportanceSpec::All(1.0),
            values: None,
            sets: Vec::new(),
            dataset: None,
        }
    }
}

/// `[[data.sets]]`: features drawn together.
///
/// A set's members must share one feature probability p (per instance). For a `correlated`
/// set, p is the probability that the set is active, and so each member's density. For an
/// `anticorrelated` set, `probability = "set"` (default, the paper's convention) reads p as the
/// set's probability 1 − S, so each member is non-zero with p / k; `probability = "member"`
/// reads p as each member's density, so the set is active with k·p (must be ≤ 1): use it to
/// match an independent run's densities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// `correlated` or `anticorrelated`.
    pub kind: SetKind,
    /// Member feature indices (0-based, at least two).
    pub features: Vec<usize>,
    /// How the members' feature probability is read: `set` (default) or `member`.
    #[serde(default, skip_serializing_if = "SetProbability::is_default")]
    pub probability: SetProbability,
}

/// How the feature probability of an anticorrelated set's members is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SetProbability {
    /// p is the probability that the set is active (1 − S).
    #[default]
    Set,
    /// p is each member's own density; the set is active with k·p.
    Member,
}

impl SetProbability {
    fn is_default(&self) -> bool {
        *self == SetProbability::Set
    }
}

/// `[data.dataset]`: a fixed dataset, drawn once per instance from the distribution above.
///
/// Training visits it full-batch when `train.batch_size` ≥ `rows`, else in shuffled
/// minibatches (a new order every epoch). The reported loss is on a fresh test stream from the
/// same distribution; the loss on the training rows is reported beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Number of rows T.
    pub rows: usize,
    /// Scale each row (training and test) to unit L2 norm.
    #[serde(default)]
    pub normalize: bool,
}

/// A sweep axis: explicit values, or `count` log-spaced values from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Axis {
    /// Explicit values.
    Values(Vec<f64>),
    /// `from * (to / from)^(t / (count - 1))`, t = 0..count (e.g. the notebook's 20^-linspace).
    LogRange {
        /// First value.
        from: f64,
        /// Last value.
        to: f64,
        /// Number of values.
        count: usize,
    },
}

impl Axis {
    /// The axis's values (not yet validated).
    pub fn values(&self) -> Vec<f64> {
        match self {
            Axis::Values(v) => v.clone(),
            Axis::LogRange { from, to, count } => (0..*count)
                .map(|t| {
                    if *count <= 1 {
                        *from
                    } else {
                        from * (to / from).powf(t as f64 / (*count - 1) as f64)
                    }
                })
                .collect(),
        }
    }

    fn validate(&self, field: &str) -> Result<(), ConfigError> {
        match self {
            Axis::Values(v) if v.is_empty() => {
                Err(ConfigError::new(field, "needs at least one value"))
            }
            Axis::LogRange { from, to, count } => {
                if *count == 0 {
                    return Err(ConfigError::new(
                        format!("{field}.count"),
                        "must be at least 1",
                    ));
                }
                for (name, v) in [("from", from), ("to", to)] {
                    if !(v.is_finite() && *v > 0.0) {
                        return Err(ConfigError::new(
                            format!("{field}.{name}"),
                            format!("{v} is not allowed: a log-spaced range needs values > 0"),
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// A sweep over one feature's importance (the phase-diagram axis) or probability (the
/// non-uniform pentagon).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneFeatureAxis {
    /// Index of the feature whose value is swept (0-based).
    pub feature: usize,
    /// Its values.
    pub values: Axis,
}

/// `[sweep]`: instances are the product of the given axes (outermost first: model kind, hidden
/// L1 penalty, adversarial radius, feature importance, one feature's probability, importance
/// decay, feature probability or sparsity), each repeated `restarts` times with its own random
/// streams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Model kinds, overriding `[model].kind` (outermost axis; kinds must share the layout:
    /// `linear`, `relu-output` and `relu-hidden` mix, `abs` does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Vec<ModelKind>>,
    /// λ of the hidden L1 penalty, overriding `[train].hidden_l1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_l1: Option<Axis>,
    /// Adversarial training radius, overriding `[train].adversarial_radius`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial_radius: Option<Axis>,
    /// Importance of one feature, overriding `[data]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_importance: Option<OneFeatureAxis>,
    /// Probability of one feature, overriding `[data]` and `feature_probability` for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_feature_probability: Option<OneFeatureAxis>,
    /// Decay d of I_i = d^i, overriding `[data].importance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance_decay: Option<Axis>,
    /// Feature probability p (all features), overriding `[data]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_probability: Option<Axis>,
    /// Sparsity S = 1 - p (all features); the alternative to `feature_probability`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparsity: Option<Axis>,
    /// Rows T of the fixed dataset (needs `[data.dataset]`, whose `rows` it overrides);
    /// values are rounded to whole rows. Innermost axis before the restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_rows: Option<Axis>,
    /// Independent restarts (seeds) per sweep point.
    #[serde(default = "one_usize")]
    pub restarts: usize,
}

fn one_usize() -> usize {
    1
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            kind: None,
            hidden_l1: None,
            adversarial_radius: None,
            feature_importance: None,
            one_feature_probability: None,
            importance_decay: None,
            feature_probability: None,
            sparsity: None,
            dataset_rows: None,
            restarts: 1,
        }
    }
}

/// One `[[instance]]` table: overrides of `[data]` for one instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// Model kind of this instance (default `[model].kind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ModelKind>,
    /// Feature probability of this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_probability: Option<PerFeature>,
    /// Importances of this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<ImportanceSpec>,
}

/// A whole training config (the content of `config.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Name of the run (used for the default output folder).
    #[serde(default = "default_name")]
    pub name: String,
    /// Model architecture and sizes.
    pub model: ModelConfig,
    /// Optimiser and run length.
    #[serde(default)]
    pub train: TrainSettings,
    /// Data distribution shared by all instances.
    #[serde(default)]
    pub data: DataConfig,
    /// How instances differ, as a product of axes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepConfig>,
    /// How instances differ, one table each.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "instance")]
    pub instances: Vec<InstanceConfig>,
}

fn default_name() -> String {
    "custom".into()
}

/// Everything that distinguishes one trained instance.
///
/// `feature_probability` is each feature's density P(x_i ≠ 0); for an anticorrelated set read
/// the `set` way, that is the set's probability divided by its size.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSpec {
    /// Position in the config's list of instances (also selects its random streams).
    pub index: usize,
    /// Model kind of this instance (the config's `[model].kind` unless a sweep varies it).
    pub kind: ModelKind,
    /// Restart number within its sweep point.
    pub restart: usize,
    /// λ of the hidden L1 penalty (0 for none).
    pub hidden_l1: f32,
    /// Adversarial training radius, a share of the input norm (0 for none).
    pub adversarial_radius: f32,
    /// p_i per feature.
    pub feature_probability: Vec<f32>,
    /// I_i per feature.
    pub importance: Vec<f32>,
    /// Value range, feature sets and fixed dataset.
    pub data: DataSpec,
}

/// Refuse runs whose buffers would not fit comfortably in memory.
pub const MAX_TRAINING_BYTES: u64 = 16 << 30;

impl TrainConfig {
    /// Parse TOML text; `origin` (a file name) prefixes error locations.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| toml_error(text, origin, &e))
    }

    /// Parse and fully validate TOML text; every error names `origin:line:column` of the
    /// offending value (or of its nearest enclosing table).
    pub fn from_toml_validated(
        text: &str,
        origin: &str,
    ) -> Result<(Self, Vec<InstanceSpec>), ConfigError> {
        let config = Self::from_toml(text, origin)?;
        match config.resolve() {
            Ok(specs) => Ok((config, specs)),
            Err(mut e) => {
                e.location = Some(locate(text, origin, &e.field));
                Err(e)
            }
        }
    }

    /// The config as TOML (round-trips through [`TrainConfig::from_toml`] exactly).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a TrainConfig always serialises to TOML")
    }

    /// The model's sizes.
    pub fn shape(&self) -> Shape {
        Shape {
            kind: self.model.kind,
            features: self.model.features,
            hidden: self.model.hidden,
        }
    }

    /// Validate every field and expand the instances.
    pub fn resolve(&self) -> Result<Vec<InstanceSpec>, ConfigError> {
        self.validate_scalars()?;
        let n = self.model.features;
        let base_p = per_feature(
            &self.data.feature_probability,
            n,
            "data.feature_probability",
        )?;
        check_probabilities(&base_p, "data.feature_probability")?;
        let base_imp = importance(&self.data.importance, n, "data.importance")?;

        let mut specs = Vec::new();
        if let Some(sweep) = &self.sweep {
            if !self.instances.is_empty() {
                return Err(ConfigError::new(
                    "instance",
                    "give either a [sweep] or [[instance]] tables, not both",
                ));
            }
            specs = self.expand_sweep(sweep, &base_p, &base_imp)?;
        } else if !self.instances.is_empty() {
            for (k, inst) in self.instances.iter().enumerate() {
                let field = format!("instance[{k}]");
                let p = match &inst.feature_probability {
                    Some(v) => per_feature(v, n, &format!("{field}.feature_probability"))?,
                    None => base_p.clone(),
                };
                check_probabilities(&p, &format!("{field}.feature_probability"))?;
                let imp = match &inst.importance {
                    Some(v) => importance(v, n, &format!("{field}.importance"))?,
                    None => base_imp.clone(),
                };
                let kind = inst.kind.unwrap_or(self.model.kind);
                self.check_kind(kind, &format!("{field}.kind"))?;
                specs.push(instance(k, kind, 0, &p, &imp));
            }
        } else {
            specs.push(instance(0, self.model.kind, 0, &base_p, &base_imp));
        }
        if self.sweep.is_none() {
            for spec in &mut specs {
                spec.hidden_l1 = self.train.hidden_l1 as f32;
                spec.adversarial_radius = self.train.adversarial_radius as f32;
            }
        }
        if let Some(spec) = specs.iter().find(|s| {
            s.adversarial_radius > 0.0
                && !matches!(s.kind, ModelKind::Linear | ModelKind::ReluOutput)
        }) {
            let swept = self
                .sweep
                .as_ref()
                .is_some_and(|s| s.adversarial_radius.is_some());
            let field = if swept {
                "sweep.adversarial_radius"
            } else {
                "train.adversarial_radius"
            };
            return Err(ConfigError::new(
                field,
                format!(
                    "adversarial training needs a model with x' = f(WᵀWx + b) (linear or relu-output), not {}",
                    spec.kind.name()
                ),
            ));
        }
        self.validate_data()?;
        for spec in &mut specs {
            self.resolve_data(spec)?;
        }
        if let Some(r) = self.train.only_instances {
            if r.from >= r.to || r.to > specs.len() {
                return Err(ConfigError::new(
                    "train.only_instances",
                    format!(
                        "{}..{} is out of range: the config has {} instances (0..{})",
                        r.from,
                        r.to,
                        specs.len(),
                        specs.len()
                    ),
                ));
            }
        }
        self.check_memory(self.selected(&specs).len())?;
        Ok(specs)
    }

    /// Check the shape of `[data]`'s sets, dataset and the snapshot steps (per-instance
    /// probabilities are checked by [`TrainConfig::resolve_data`]).
    fn validate_data(&self) -> Result<(), ConfigError> {
        let n = self.model.features;
        let mut owner: Vec<Option<usize>> = vec![None; n];
        for (k, set) in self.data.sets.iter().enumerate() {
            let field = format!("data.sets[{k}].features");
            if set.features.len() < 2 {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "has {} feature(s): a set needs at least two (leave a lone feature out of the sets)",
                        set.features.len()
                    ),
                ));
            }
            for (j, &f) in set.features.iter().enumerate() {
                if f >= n {
                    return Err(ConfigError::new(
                        format!("{field}[{j}]"),
                        format!("{f} is out of range: features are numbered 0 to {}", n - 1),
                    ));
                }
                if let Some(other) = owner[f] {
                    let message = if other == k {
                        format!("feature {f} is listed twice")
                    } else {
                        format!(
                            "feature {f} is already in data.sets[{other}]: sets must not overlap"
                        )
                    };
                    return Err(ConfigError::new(format!("{field}[{j}]"), message));
                }
                owner[f] = Some(k);
            }
            if set.kind == SetKind::Correlated && set.probability == SetProbability::Member {
                return Err(ConfigError::new(
                    format!("data.sets[{k}].probability"),
                    "\"member\" applies to anticorrelated sets only (a correlated member's density is the set's)",
                ));
            }
        }
        if let Some(d) = &self.data.dataset {
            if d.rows == 0 || d.rows > 1 << 26 {
                return Err(ConfigError::new(
                    "data.dataset.rows",
                    format!("{} is out of range: allowed 1 to {}", d.rows, 1u64 << 26),
                ));
            }
        }
        if let Some(snapshots) = &self.train.snapshots {
            snapshots.validate(self.train.steps)?;
        }
        Ok(())
    }

    /// Fill `spec.data` from `[data]`: value range, the sets with this instance's
    /// probabilities, the dataset; an anticorrelated set read the `set` way gives each member
    /// the density p / k.
    fn resolve_data(&self, spec: &mut InstanceSpec) -> Result<(), ConfigError> {
        let mut sets = Vec::with_capacity(self.data.sets.len());
        for (k, set) in self.data.sets.iter().enumerate() {
            let p = spec.feature_probability[set.features[0]];
            if let Some(&f) = set
                .features
                .iter()
                .find(|&&f| spec.feature_probability[f] != p)
            {
                return Err(ConfigError::new(
                    format!("data.sets[{k}].features"),
                    format!(
                        "features {} and {f} have feature probabilities {p} and {} in instance {}: a set's members must share one",
                        set.features[0],
                        spec.feature_probability[f],
                        spec.index
                    ),
                ));
            }
            let size = set.features.len() as f64;
            let (set_p, member_p) = match (set.kind, set.probability) {
                (SetKind::Correlated, _) => (p as f64, p as f64),
                (SetKind::Anticorrelated, SetProbability::Set) => (p as f64, p as f64 / size),
                (SetKind::Anticorrelated, SetProbability::Member) => (p as f64 * size, p as f64),
            };
            if set_p > 1.0 + 1e-6 {
                return Err(ConfigError::new(
                    format!("data.sets[{k}].probability"),
                    format!(
                        "members of density {p} make the set active with {set_p:.4} > 1 in instance {}: use a density ≤ 1/{size}",
                        spec.index
                    ),
                ));
            }
            for &f in &set.features {
                spec.feature_probability[f] = member_p as f32;
            }
            sets.push(FeatureSet {
                kind: set.kind,
                features: set.features.clone(),
                probability: set_p.min(1.0) as f32,
            });
        }
        spec.data = DataSpec {
            values: self.data.values.unwrap_or(spec.kind.value_range()),
            sets,
            dataset: self.data.dataset.as_ref().map(|d| DatasetSpec {
                // A swept T (set by `expand_sweep`) overrides the table's.
                rows: spec.data.dataset.map_or(d.rows, |swept| swept.rows),
                normalize: d.normalize,
            }),
        };
        Ok(())
    }

    /// The steps at which snapshots are taken (empty when off).
    pub fn snapshot_steps(&self) -> Vec<u64> {
        self.train
            .snapshots
            .as_ref()
            .map_or_else(Vec::new, |s| s.steps(self.train.steps))
    }

    /// Instances of one run share the parameter layout: tied kinds mix, `abs` does not.
    fn check_kind(&self, kind: ModelKind, field: &str) -> Result<(), ConfigError> {
        if kind.tied() != self.model.kind.tied() {
            return Err(ConfigError::new(
                field,
                format!(
                    "{} cannot share a run with {}: the untied `abs` model has a different layout",
                    kind.name(),
                    self.model.kind.name()
                ),
            ));
        }
        Ok(())
    }

    /// The instances this run trains: all of `specs`, or the `train.only_instances` range.
    pub fn selected<'a>(&self, specs: &'a [InstanceSpec]) -> &'a [InstanceSpec] {
        match self.train.only_instances {
            Some(r) if r.from < r.to && r.to <= specs.len() => &specs[r.from..r.to],
            _ => specs,
        }
    }

    fn validate_scalars(&self) -> Result<(), ConfigError> {
        let m = &self.model;
        if m.features == 0 || m.features > 1_000_000 {
            return Err(ConfigError::new(
                "model.features",
                format!("{} is out of range: allowed 1 to 1000000", m.features),
            ));
        }
        if m.hidden == 0 || m.hidden > 100_000 {
            return Err(ConfigError::new(
                "model.hidden",
                format!("{} is out of range: allowed 1 to 100000", m.hidden),
            ));
        }
        let t = &self.train;
        if t.steps == 0 {
            return Err(ConfigError::new(
                "train.steps",
                "0 is out of range: must be at least 1",
            ));
        }
        // The saved config.toml must hold the run's settings, and TOML integers are i64.
        for (field, value) in [("train.seed", t.seed), ("train.steps", t.steps)] {
            if value > i64::MAX as u64 {
                return Err(ConfigError::new(
                    field,
                    format!("{value} is out of range: allowed up to {}", i64::MAX),
                ));
            }
        }
        if t.batch_size == 0 || t.batch_size > 1 << 24 {
            return Err(ConfigError::new(
                "train.batch_size",
                format!("{} is out of range: allowed 1 to 16777216", t.batch_size),
            ));
        }
        if t.log_points == 0 {
            return Err(ConfigError::new(
                "train.log_points",
                "0 is out of range: must be at least 1",
            ));
        }
        positive_finite(t.lr, "train.lr")?;
        positive_finite(t.eps, "train.eps")?;
        for (name, v) in [
            ("train.hidden_l1", t.hidden_l1),
            ("train.adversarial_radius", t.adversarial_radius),
        ] {
            if !(v.is_finite() && (0.0..=1e12).contains(&v)) {
                return Err(ConfigError::new(
                    name,
                    format!("{v} is out of range: must be a finite number in [0, 1e12]"),
                ));
            }
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(ConfigError::new(
                "train.weight_decay",
                format!(
                    "{} is out of range: must be a finite number >= 0",
                    t.weight_decay
                ),
            ));
        }
        if t.eval_rows == 0 || t.eval_rows > 1 << 26 {
            return Err(ConfigError::new(
                "train.eval_rows",
                format!(
                    "{} is out of range: allowed 1 to {}",
                    t.eval_rows,
                    1u64 << 26
                ),
            ));
        }
        if t.warmup > t.steps {
            return Err(ConfigError::new(
                "train.warmup",
                format!(
                    "{} is out of range: the run has {} steps",
                    t.warmup, t.steps
                ),
            ));
        }
        for (name, b) in [("train.beta1", t.beta1), ("train.beta2", t.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(ConfigError::new(
                    name,
                    format!("{b} is out of range: allowed [0, 1)"),
                ));
            }
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || self.name.starts_with('.')
        {
            return Err(ConfigError::new(
                "name",
                format!(
                    "{:?} is not allowed: use letters, digits, '-', '_' and '.' (not first)",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    fn expand_sweep(
        &self,
        sweep: &SweepConfig,
        base_p: &[f64],
        base_imp: &[f64],
    ) -> Result<Vec<InstanceSpec>, ConfigError> {
        let n = self.model.features;
        if sweep.restarts == 0 || sweep.restarts > 100_000 {
            return Err(ConfigError::new(
                "sweep.restarts",
                format!("{} is out of range: allowed 1 to 100000", sweep.restarts),
            ));
        }
        // Importance of one feature.
        let feature_imp = one_feature_axis(
            sweep.feature_importance.as_ref(),
            n,
            "sweep.feature_importance",
            check_nonnegative,
        )?;
        let feature_p = one_feature_axis(
            sweep.one_feature_probability.as_ref(),
            n,
            "sweep.one_feature_probability",
            check_probabilities,
        )?;
        let decays: Vec<Option<f64>> =
            match nonnegative_axis(sweep.importance_decay.as_ref(), "sweep.importance_decay")? {
                None => vec![None],
                Some(vals) => vals.into_iter().map(Some).collect(),
            };
        let probs: Vec<Option<f64>> = match (&sweep.feature_probability, &sweep.sparsity) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "sweep.sparsity",
                    "give either sweep.feature_probability or sweep.sparsity, not both",
                ))
            }
            (Some(ax), None) => {
                ax.validate("sweep.feature_probability")?;
                let vals = ax.values();
                check_probabilities(&vals, "sweep.feature_probability")?;
                vals.into_iter().map(Some).collect()
            }
            (None, Some(ax)) => {
                ax.validate("sweep.sparsity")?;
                let vals = ax.values();
                check_probabilities(&vals, "sweep.sparsity")?;
                vals.into_iter().map(|s| Some(1.0 - s)).collect()
            }
            (None, None) => vec![None],
        };
        let penalties = nonnegative_axis(sweep.hidden_l1.as_ref(), "sweep.hidden_l1")?
            .unwrap_or_else(|| vec![self.train.hidden_l1]);
        let radii = nonnegative_axis(
            sweep.adversarial_radius.as_ref(),
            "sweep.adversarial_radius",
        )?
        .unwrap_or_else(|| vec![self.train.adversarial_radius]);
        let rows: Vec<Option<usize>> = match &sweep.dataset_rows {
            None => vec![None],
            Some(ax) => {
                ax.validate("sweep.dataset_rows")?;
                if self.data.dataset.is_none() {
                    return Err(ConfigError::new(
                        "sweep.dataset_rows",
                        "needs a fixed dataset: add a [data.dataset] table (its `normalize` applies to every T)",
                    ));
                }
                let mut list = Vec::new();
                for v in ax.values() {
                    let r = v.round();
                    if !(1.0..=(1u64 << 26) as f64).contains(&r) {
                        return Err(ConfigError::new(
                            "sweep.dataset_rows",
                            format!("{v} is out of range: allowed 1 to {}", 1u64 << 26),
                        ));
                    }
                    list.push(Some(r as usize));
                }
                list
            }
        };
        let kinds: Vec<ModelKind> = match &sweep.kind {
            None => vec![self.model.kind],
            Some(list) if list.is_empty() => {
                return Err(ConfigError::new(
                    "sweep.kind",
                    "needs at least one model kind",
                ))
            }
            Some(list) => {
                for (k, kind) in list.iter().enumerate() {
                    self.check_kind(*kind, &format!("sweep.kind[{k}]"))?;
                }
                list.clone()
            }
        };
        let total = kinds.len() as u64
            * penalties.len() as u64
            * radii.len() as u64
            * feature_imp.len() as u64
            * feature_p.len() as u64
            * decays.len() as u64
            * probs.len() as u64
            * rows.len() as u64
            * sweep.restarts as u64;
        if total > 10_000_000 {
            return Err(ConfigError::new(
                "sweep",
                format!("{total} instances is too many: at most 10000000"),
            ));
        }
        let mut specs = Vec::with_capacity(total as usize);
        let mut outer = Vec::new();
        for &kind in &kinds {
            for &l1 in &penalties {
                for &radius in &radii {
                    outer.push((kind, l1, radius));
                }
            }
        }
        for (kind, l1, radius) in outer {
            for fi in &feature_imp {
                for fp in &feature_p {
                    for decay in &decays {
                        for p in &probs {
                            let mut imp = match decay {
                                Some(d) => (0..n).map(|i| d.powi(i as i32)).collect(),
                                None => base_imp.to_vec(),
                            };
                            if let Some((f, v)) = fi {
                                imp[*f] = *v;
                            }
                            let mut prob = match p {
                                Some(p) => vec![*p; n],
                                None => base_p.to_vec(),
                            };
                            if let Some((f, v)) = fp {
                                prob[*f] = *v;
                            }
                            for &t in &rows {
                                for restart in 0..sweep.restarts {
                                    let mut spec =
                                        instance(specs.len(), kind, restart, &prob, &imp);
                                    spec.hidden_l1 = l1 as f32;
                                    spec.adversarial_radius = radius as f32;
                                    // Carries the swept T to `resolve_data`, which keeps it.
                                    spec.data.dataset = t.map(|rows| DatasetSpec {
                                        rows,
                                        normalize: false,
                                    });
                                    specs.push(spec);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(specs)
    }

    /// Bytes the training buffers will take (parameters, gradients, two Adam moments, workspace).
    pub fn estimated_bytes(&self, instances: usize) -> u64 {
        let shape = self.shape();
        // The block pass's buffers, where it may run (as `train::TrainPass::choose` picks:
        // `auto` from n·m = 256 up; `sparse` but for narrow tied models, which take the
        // row-by-row pass).
        use crate::model::gemm::{BlockWorkspace, BLOCKS_FROM_WEIGHTS, ROWS_BELOW_HIDDEN};
        let narrow_tied = shape.hidden < ROWS_BELOW_HIDDEN
            && matches!(shape.kind, ModelKind::Linear | ModelKind::ReluOutput);
        let blocks = match self.train.kernel {
            KernelChoice::Fused => None,
            KernelChoice::Auto if shape.features * shape.hidden < BLOCKS_FROM_WEIGHTS => None,
            KernelChoice::Sparse if narrow_tied => None,
            KernelChoice::Gemm => Some(false),
            KernelChoice::Auto | KernelChoice::Sparse => Some(true),
        }
        .map_or(0, |sparse| {
            BlockWorkspace::words(shape.features, shape.hidden, sparse) as u64
        });
        let per_instance = 4 * shape.param_len() as u64
            + (shape.features + 2 * shape.hidden + 2) as u64 * ROW_CHUNK as u64
            + 2 * shape.features as u64
            + blocks;
        let log = self.train.log_points.min(self.train.steps);
        // A dataset's rows and its row order (a sweep over T: the mean T per instance).
        let swept_rows = self
            .sweep
            .as_ref()
            .and_then(|s| s.dataset_rows.as_ref())
            .map(|ax| {
                let v = ax.values();
                (v.iter().sum::<f64>() / v.len().max(1) as f64).ceil() as u64
            });
        let dataset = self.data.dataset.as_ref().map_or(0, |d| {
            swept_rows
                .unwrap_or(d.rows as u64)
                .saturating_mul(4 * (shape.features as u64 + 1))
        });
        let snapshots = match &self.train.snapshots {
            Some(Snapshots::Steps(list)) => list.len() as u64,
            Some(Snapshots::Spaced { count, .. }) => *count as u64,
            None => 0,
        };
        // Snapshots are held once, and copied twice more while a checkpoint is written.
        let snapshot_bytes = snapshots.saturating_mul(3 * 4 * shape.param_len() as u64);
        (per_instance * 4 + log * 4)
            .saturating_add(dataset)
            .saturating_add(snapshot_bytes)
            .saturating_mul(instances as u64)
    }

    fn check_memory(&self, instances: usize) -> Result<(), ConfigError> {
        let bytes = self.estimated_bytes(instances);
        if bytes > MAX_TRAINING_BYTES {
            return Err(ConfigError::new(
                "",
                format!(
                    "this run needs about {:.1} GiB for {instances} instances of n={}, m={}; \
                     the limit is {} GiB: use fewer instances or smaller models",
                    bytes as f64 / (1u64 << 30) as f64,
                    self.model.features,
                    self.model.hidden,
                    MAX_TRAINING_BYTES >> 30
                ),
            ));
        }
        Ok(())
    }
}

/// The values of a one-feature axis as `(feature, value)`, or one `None` without the axis.
fn one_feature_axis(
    axis: Option<&OneFeatureAxis>,
    n: usize,
    field: &str,
    check: fn(&[f64], &str) -> Result<(), ConfigError>,
) -> Result<Vec<Option<(usize, f64)>>, ConfigError> {
    let Some(ax) = axis else {
        return Ok(vec![None]);
    };
    if ax.feature >= n {
        return Err(ConfigError::new(
            format!("{field}.feature"),
            format!(
                "{} is out of range: features are numbered 0 to {}",
                ax.feature,
                n - 1
            ),
        ));
    }
    let values_field = format!("{field}.values");
    ax.values.validate(&values_field)?;
    let vals = ax.values.values();
    check(&vals, &values_field)?;
    Ok(vals.into_iter().map(|v| Some((ax.feature, v))).collect())
}

fn instance(index: usize, kind: ModelKind, restart: usize, p: &[f64], imp: &[f64]) -> InstanceSpec {
    InstanceSpec {
        index,
        kind,
        restart,
        hidden_l1: 0.0,
        adversarial_radius: 0.0,
        feature_probability: p.iter().map(|&v| v as f32).collect(),
        importance: imp.iter().map(|&v| v as f32).collect(),
        data: DataSpec::default(),
    }
}

fn per_feature(v: &PerFeature, n: usize, field: &str) -> Result<Vec<f64>, ConfigError> {
    match v {
        PerFeature::All(x) => Ok(vec![*x; n]),
        PerFeature::Each(list) if list.len() == n => Ok(list.clone()),
        PerFeature::Each(list) => Err(ConfigError::new(
            field,
            format!(
                "has {} values but the model has {n} features: give one number or {n} values",
                list.len()
            ),
        )),
    }
}

fn importance(v: &ImportanceSpec, n: usize, field: &str) -> Result<Vec<f64>, ConfigError> {
    let values = match v {
        ImportanceSpec::All(x) => vec![*x; n],
        ImportanceSpec::Each(list) => per_feature(&PerFeature::Each(list.clone()), n, field)?,
        ImportanceSpec::Decay { decay } => {
            if !(decay.is_finite() && *decay > 0.0) {
                return Err(ConfigError::new(
                    format!("{field}.decay"),
                    format!("{decay} is out of range: must be a finite number > 0"),
                ));
            }
            (0..n).map(|i| decay.powi(i as i32)).collect()
        }
    };
    check_nonnegative(&values, field)?;
    Ok(values)
}

fn check_probabilities(values: &[f64], field: &str) -> Result<(), ConfigError> {
    for (i, v) in values.iter().enumerate() {
        if !(0.0..=1.0).contains(v) {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                format!("{v} is out of range: a probability must be in [0, 1]"),
            ));
        }
    }
    Ok(())
}

/// The values of an optional sweep axis whose values must be in [0, 1e12].
fn nonnegative_axis(axis: Option<&Axis>, field: &str) -> Result<Option<Vec<f64>>, ConfigError> {
    let Some(ax) = axis else { return Ok(None) };
    ax.validate(field)?;
    let vals = ax.values();
    check_nonnegative(&vals, field)?;
    Ok(Some(vals))
}

fn check_nonnegative(values: &[f64], field: &str) -> Result<(), ConfigError> {
    for (i, v) in values.iter().enumerate() {
        if !(v.is_finite() && *v >= 0.0 && *v <= 1e12) {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                format!("{v} is out of range: must be a finite number in [0, 1e12]"),
            ));
        }
    }
    Ok(())
}

fn positive_finite(v: f64, field: &str) -> Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("{v} is out of range: must be a finite number > 0"),
        ))
    }
}

/// Turn a TOML error into one line: `file:line:col: `key`: message`.
/// A TOML parse error as a [`ConfigError`] located at `origin:line:column`, naming the key.
pub(crate) fn toml_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let mut message = e.message().trim().replace('\n', " ");
    if message.starts_with("unknown") {
        if let Some(name) = suggestion(&message) {
            message = format!("{message}; did you mean `{name}`?");
        }
    }
    let (location, field) = match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let (line, col) = line_col(text, start);
            let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
            let line_text = text[line_start..].lines().next().unwrap_or("");
            let key = line_text
                .split_once('=')
                .map(|(k, _)| k.trim().trim_matches('"').to_string())
                .unwrap_or_default();
            (Some(format!("{origin}:{line}:{col}")), key)
        }
        None => (Some(origin.to_string()), String::new()),
    };
    ConfigError {
        location,
        field,
        message,
    }
}

/// `origin:line:column` of the value at a dotted field path (`data.importance[2]`), or of the
/// nearest enclosing entry found in the text.
pub fn locate(text: &str, origin: &str, field: &str) -> String {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return origin.to_string();
    };
    let mut item = doc.as_item();
    let mut span = None;
    'walk: for segment in field.split('.').filter(|s| !s.is_empty()) {
        let (key, indices) = match segment.split_once('[') {
            Some((k, rest)) => (k, rest),
            None => (segment, ""),
        };
        match item.get(key) {
            Some(next) => {
                item = next;
                span = item.span().or(span);
            }
            None => break,
        }
        for idx in indices.split('[').filter(|s| !s.is_empty()) {
            let Ok(i) = idx.trim_end_matches(']').parse::<usize>() else {
                break 'walk;
            };
            match item.get(i) {
                Some(next) => {
                    item = next;
                    span = item.span().or(span);
                }
                None => break 'walk,
            }
        }
    }
    match span {
        Some(range) => {
            let (line, col) = line_col(text, range.start);
            format!("{origin}:{line}:{col}")
        }
        None => origin.to_string(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and unknown variants), the
/// closest allowed name, when one is close enough to be a likely typo.
fn suggestion(message: &str) -> Option<String> {
    let unknown = message.split('`').nth(1)?;
    let expected = message.split_once("expected")?.1;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let (best, distance) = candidates
        .iter()
        .map(|c| (*c, edit_distance(unknown, c)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= (best.len().max(unknown.len()) / 2).max(2)).then(|| best.to_string())
}

/// Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTRO_LIKE: &str = r#"
name = "t"
[model]
kind = "relu-output"
features = 5
hidden = 2
[data]
importance = { decay = 0.9 }
[sweep]
feature_probability = { from = 1.0, to = 0.05, count = 10 }
"#;

    #[test]
    fn log_range_matches_the_notebook_sweep() {
        let cfg = TrainConfig::from_toml(INTRO_LIKE, "t.toml").unwrap();
        let specs = cfg.resolve().unwrap();
        assert_eq!(specs.len(), 10);
        let expect = [
            1.0, 0.7169, 0.5139, 0.3684, 0.2641, 0.1893, 0.1357, 0.0973, 0.0697, 0.05,
        ];
        for (s, e) in specs.iter().zip(expect) {
            assert!((s.feature_probability[0] - e).abs() < 1e-4);
            assert_eq!(s.feature_probability.len(), 5);
            assert!((s.importance[4] - 0.6561).abs() < 1e-6);
        }
    }

    #[test]
    fn config_round_trips_through_toml() {
        let cfg = TrainConfig::from_toml(INTRO_LIKE, "t.toml").unwrap();
        let again = TrainConfig::from_toml(&cfg.to_toml(), "again").unwrap();
        assert_eq!(cfg, again);
    }

    #[test]
    fn sweep_product_order_and_restarts() {
        let text = r#"
[model]
kind = "relu-output"
features = 2
hidden = 1
[sweep]
feature_importance = { feature = 1, values = [0.5, 2.0] }
sparsity = [0.0, 0.9]
restarts = 3
"#;
        let specs = TrainConfig::from_toml(text, "x")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(specs.len(), 12);
        assert_eq!(specs[0].importance, vec![1.0, 0.5]);
        assert_eq!(specs[3].feature_probability, vec![0.1f32 as f64 as f32; 2]);
        assert_eq!(specs[5].restart, 2);
        assert_eq!(specs[6].importance, vec![1.0, 2.0]);
        assert!(specs.iter().enumerate().all(|(k, s)| s.index == k));
    }

    /// The hidden L1 penalty: `[train]` sets every instance's, a sweep axis (after the model
    /// kind) overrides it; it is left out of the written config when 0, so configs without it
    /// are written as before.
    #[test]
    fn hidden_l1_from_train_or_a_sweep_axis() {
        let base = "[model]\nkind = \"relu-output\"\nfeatures = 2\nhidden = 1\n";
        let one =
            TrainConfig::from_toml(&format!("{base}[train]\nhidden_l1 = 0.5\n"), "x").unwrap();
        assert!(one.resolve().unwrap().iter().all(|s| s.hidden_l1 == 0.5));
        assert!(one.to_toml().contains("hidden_l1 = 0.5"));
        let swept = format!(
            "{base}[train]\nhidden_l1 = 0.5\n[sweep]\nhidden_l1 = [0.0, 0.1]\nsparsity = [0.0, 0.9]\nrestarts = 2\n"
        );
        let specs = TrainConfig::from_toml(&swept, "x")
            .unwrap()
            .resolve()
            .unwrap();
        let got: Vec<(f32, usize)> = specs.iter().map(|s| (s.hidden_l1, s.restart)).collect();
        assert_eq!(got.len(), 8);
        assert!(got[..4].iter().all(|g| g.0 == 0.0) && got[4..].iter().all(|g| g.0 == 0.1));
        assert_eq!(specs[2].feature_probability[0], 0.1f32 as f64 as f32);
        let plain = TrainConfig::from_toml(base, "x").unwrap();
        assert!(!plain.to_toml().contains("hidden_l1"));
        let e = err(&format!("{base}[train]\nhidden_l1 = -1.0\n"));
        assert!(
            e.contains("train.hidden_l1") && e.contains("[0, 1e12]"),
            "{e}"
        );
        let e = err(&format!("{base}[sweep]\nhidden_l1 = [0.1, -2.0]\n"));
        assert!(e.contains("sweep.hidden_l1[1]"), "{e}");
    }

    /// Adversarial training: from `[train]` or a sweep axis, tied models with WᵀW only.
    #[test]
    fn adversarial_radius_from_train_or_a_sweep_axis() {
        let base = "[model]\nkind = \"relu-output\"\nfeatures = 2\nhidden = 1\n";
        let swept = format!("{base}[sweep]\nadversarial_radius = [0.0, 0.8]\nrestarts = 2\n");
        let specs = TrainConfig::from_toml(&swept, "x")
            .unwrap()
            .resolve()
            .unwrap();
        let radii: Vec<f32> = specs.iter().map(|s| s.adversarial_radius).collect();
        assert_eq!(radii, vec![0.0, 0.0, 0.8, 0.8]);
        let e = err(&format!("{base}[train]\nadversarial_radius = -0.5\n"));
        assert!(
            e.contains("train.adversarial_radius") && e.contains("[0, 1e12]"),
            "{e}"
        );
        let hidden = "[model]\nkind = \"relu-hidden\"\nfeatures = 2\nhidden = 1\n";
        let e = err(&format!("{hidden}[train]\nadversarial_radius = 0.5\n"));
        assert!(
            e.contains("train.adversarial_radius") && e.contains("relu-hidden"),
            "{e}"
        );
        let e = err(&format!(
            "{hidden}[sweep]\nadversarial_radius = [0.0, 0.5]\n"
        ));
        assert!(e.contains("sweep.adversarial_radius"), "{e}");
    }

    fn err(text: &str) -> String {
        match TrainConfig::from_toml(text, "c.toml").and_then(|c| c.resolve().map(|_| c)) {
            Ok(_) => panic!("config was accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_values_name_the_field_and_the_range() {
        let base = "[model]\nkind = \"relu-output\"\nfeatures = 5\nhidden = 2\n";
        let e = err(&format!("{base}[data]\nfeature_probability = 1.5\n"));
        assert!(
            e.contains("data.feature_probability[0]") && e.contains("[0, 1]"),
            "{e}"
        );
        let e = err("[model]\nkind = \"relu-output\"\nfeatures = 0\nhidden = 2\n");
        assert!(e.contains("model.features") && e.contains("1 to"), "{e}");
        let e = err(&format!("{base}[train]\nsteps = 0\n"));
        assert!(e.contains("train.steps"), "{e}");
        let e = err(&format!("{base}[train]\nstepz = 10\n"));
        assert!(e.contains("c.toml:6:1") && e.contains("stepz"), "{e}");
        let e = err(&format!("{base}[train]\nsteps = \"many\"\n"));
        assert!(e.contains("c.toml:6:9") && e.contains("`steps`"), "{e}");
        let e = err("[model]\nkind = \"cnn\"\nfeatures = 5\nhidden = 2\n");
        assert!(e.contains("kind") && e.contains("relu-output"), "{e}");
        let e = err(&format!("{base}[data]\nimportance = [1.0, 2.0]\n"));
        assert!(e.contains("2 values") && e.contains("5 features"), "{e}");
        let e = err(&format!("{base}[sweep]\nsparsity = [0.5, -0.1]\n"));
        assert!(e.contains("sweep.sparsity[1]"), "{e}");
        let e = err(&format!("{base}[train]\nbeta2 = 1.0\n"));
        assert!(e.contains("train.beta2"), "{e}");
        let e = err("[model]\nkind = \"relu-output\"\nfeatures = 100000\nhidden = 100000\n[sweep]\nrestarts = 100\n");
        assert!(e.contains("GiB"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn semantic_errors_point_at_the_value() {
        let text = "[model]\nkind = \"relu-output\"\nfeatures = 5\nhidden = 2\n[data]\nfeature_probability = [1.0, 0.5, 2.0, 0.1, 0.1]\n";
        let e = TrainConfig::from_toml_validated(text, "c.toml").unwrap_err();
        assert_eq!(e.location.as_deref(), Some("c.toml:6:34"), "{e}");
        let text = "[model]\nkind = \"relu-output\"\nfeatures = 5\nhidden = 2\n[sweep]\nsparsity = { from = 0.0, to = 0.9, count = 3 }\n";
        let e = TrainConfig::from_toml_validated(text, "c.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml:6:21: `sweep.sparsity.from`"),
            "{e}"
        );
        let text = "[model]\nkind = \"relu-output\"\nfeatures = 5\nhidden = 2\n[[instance]]\n[[instance]]\nimportance = -1\n";
        let e = TrainConfig::from_toml_validated(text, "c.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml:7:14: `instance[1].importance[0]`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_names_get_a_suggestion() {
        let base = "[model]\nkind = \"relu-output\"\nfeatures = 5\nhidden = 2\n";
        let e = err(&format!("{base}[train]\nbatchsize = 10\n"));
        assert!(e.contains("did you mean `batch_size`?"), "{e}");
        let e = err("[model]\nkind = \"relu_output\"\nfeatures = 5\nhidden = 2\n");
        assert!(e.contains("did you mean `relu-output`?"), "{e}");
        let e = err(&format!("{base}[train]\nzzzzzzzzzz = 10\n"));
        assert!(!e.contains("did you mean"), "{e}");
        assert_eq!(edit_distance("stepz", "steps"), 1);
    }

    #[test]
    fn shards_split_the_instances_evenly_and_exactly_once() {
        for total in 1..40 {
            for count in 1..=total {
                let mut next = 0;
                for index in 1..=count {
                    let r = Shard { index, count }.range(total).unwrap();
                    assert_eq!(r.from, next);
                    assert!(r.to > r.from && r.to - r.from <= total.div_ceil(count));
                    next = r.to;
                }
                assert_eq!(next, total);
            }
        }
        assert!(Shard { index: 1, count: 5 }
            .range(4)
            .unwrap_err()
            .contains("at most 4"));
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "2", "a/b", "2/0"] {
            assert!(bad.parse::<Shard>().unwrap_err().contains("K/N"), "{bad}");
        }
    }

    #[test]
    fn instance_ranges_parse_and_validate() {
        assert_eq!("3..5".parse(), Ok(InstanceRange { from: 3, to: 5 }));
        assert_eq!("7".parse(), Ok(InstanceRange { from: 7, to: 8 }));
        assert!("5..3".parse::<InstanceRange>().is_err());
        assert!("a..b".parse::<InstanceRange>().is_err());
        let mut cfg = TrainConfig::from_toml(INTRO_LIKE, "t").unwrap();
        cfg.train.only_instances = Some(InstanceRange { from: 8, to: 12 });
        let e = cfg.resolve().unwrap_err().to_string();
        assert!(
            e.contains("train.only_instances") && e.contains("10 instances"),
            "{e}"
        );
        cfg.train.only_instances = Some(InstanceRange { from: 8, to: 10 });
        let specs = cfg.resolve().unwrap();
        assert_eq!(cfg.selected(&specs)[0].index, 8);
    }

    proptest::proptest! {
        /// Arbitrary text never panics the parser or the validator.
        #[test]
        fn parsing_never_panics(text in "\\PC{0,200}") {
            if let Ok(cfg) = TrainConfig::from_toml(&text, "x") {
                let _ = cfg.resolve();
            }
            let _ = locate(&text, "x", "a.b[3].c");
        }

        /// Valid configs with random numbers never panic, and errors always name a field.
        #[test]
        fn random_values_never_panic(
            n in 0usize..50, m in 0usize..10, steps in 0u64..5, p in -1.0f64..2.0,
            decay in -1.0f64..2.0, lr in -1.0f64..1.0, count in 0usize..5,
        ) {
            let text = format!(
                "[model]\nkind = \"abs\"\nfeatures = {n}\nhidden = {m}\n[train]\nsteps = {steps}\nlr = {lr:?}\n\
                 [data]\nimportance = {{ decay = {decay:?} }}\n[sweep]\nfeature_probability = {{ from = {p:?}, to = 0.5, count = {count} }}\n"
            );
            match TrainConfig::from_toml_validated(&text, "x") {
                Ok((_, specs)) => proptest::prop_assert!(!specs.is_empty()),
                Err(e) => proptest::prop_assert!(!e.field.is_empty() || e.message.contains("GiB")),
            }
        }
    }

    const SETS: &str = r#"
[model]
kind = "relu-output"
features = 7
hidden = 2
[data]
feature_probability = 0.3
[[data.sets]]
kind = "correlated"
features = [0, 1]
[[data.sets]]
kind = "anticorrelated"
features = [2, 3, 4]
[[data.sets]]
kind = "anticorrelated"
features = [5, 6]
probability = "member"
"#;

    #[test]
    fn sets_resolve_to_marginal_densities_and_set_probabilities() {
        let (cfg, specs) = TrainConfig::from_toml_validated(SETS, "s.toml").unwrap();
        let spec = &specs[0];
        let p = |v: f64| v as f32;
        assert_eq!(
            spec.feature_probability,
            vec![p(0.3), p(0.3), p(0.1), p(0.1), p(0.1), p(0.3), p(0.3)]
        );
        let sets = &spec.data.sets;
        assert_eq!(sets.len(), 3);
        assert_eq!(sets[1].probability, p(0.3));
        assert_eq!(sets[2].probability, p(0.6));
        assert_eq!(spec.data.values, ValueRange::Unit);
        // Round trip, and configs without the new fields print none of them.
        let again = TrainConfig::from_toml(&cfg.to_toml(), "again").unwrap();
        assert_eq!(again, cfg);
        let plain = TrainConfig::from_toml(INTRO_LIKE, "t").unwrap().to_toml();
        for key in ["values", "sets", "dataset", "snapshots"] {
            assert!(!plain.contains(key), "{plain}");
        }
    }

    #[test]
    fn bad_sets_name_the_field() {
        let e = err(&SETS.replace("features = [0, 1]", "features = [0, 9]"));
        assert!(
            e.contains("data.sets[0].features[1]") && e.contains("0 to 6"),
            "{e}"
        );
        let e = err(&SETS.replace("features = [0, 1]", "features = [0, 2]"));
        assert!(
            e.contains("data.sets[1].features[0]") && e.contains("already in data.sets[0]"),
            "{e}"
        );
        let e = err(&SETS.replace("features = [0, 1]", "features = [0]"));
        assert!(e.contains("at least two"), "{e}");
        let e = err(&SETS.replace("feature_probability = 0.3", "feature_probability = 0.7"));
        assert!(
            e.contains("data.sets[2].probability") && e.contains("> 1"),
            "{e}"
        );
        let e = err(&SETS.replace(
            "feature_probability = 0.3",
            "feature_probability = [0.3, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3]",
        ));
        assert!(
            e.contains("data.sets[0].features") && e.contains("share one"),
            "{e}"
        );
        let e = err(&SETS.replace("kind = \"correlated\"", "kind = \"corelated\""));
        assert!(e.contains("did you mean `correlated`?"), "{e}");
        let e = err(&format!("{SETS}[data.dataset]\nrows = 0\n"));
        assert!(e.contains("data.dataset.rows"), "{e}");
        let e = err(&format!("{SETS}[train]\nsteps = 10\nsnapshots = [0, 11]\n"));
        assert!(e.contains("train.snapshots[1]"), "{e}");
        let e = err(&format!(
            "{SETS}[train]\nsnapshots = {{ count = 5, spacng = \"linear\" }}\n"
        ));
        assert!(e.contains("snapshots"), "a misspelt field is refused: {e}");
    }

    #[test]
    fn values_default_to_the_model_kind_and_can_be_chosen() {
        let abs = "[model]\nkind = \"abs\"\nfeatures = 3\nhidden = 2\n";
        let (_, specs) = TrainConfig::from_toml_validated(abs, "a").unwrap();
        assert_eq!(specs[0].data.values, ValueRange::Symmetric);
        let unit = format!("{abs}[data]\nvalues = \"unit\"\n");
        let (_, specs) = TrainConfig::from_toml_validated(&unit, "a").unwrap();
        assert_eq!(specs[0].data.values, ValueRange::Unit);
    }

    #[test]
    fn schedules_follow_the_notebook() {
        assert_eq!(Schedule::Constant.factor(5, 10), 1.0);
        assert_eq!(Schedule::Linear.factor(5, 10), 0.5);
        assert!((Schedule::Cosine.factor(9, 10)).abs() < 1e-12);
        assert_eq!(Schedule::Cosine.factor(0, 10), 1.0);
        assert_eq!(Schedule::CosineAnnealing.factor(0, 10), 1.0);
        assert!((Schedule::CosineAnnealing.factor(5, 10) - 0.5).abs() < 1e-12);
        assert!(Schedule::CosineAnnealing.factor(10, 10).abs() < 1e-12);
    }

    #[test]
    fn a_warm_up_rises_linearly_then_the_schedule_runs_over_the_rest() {
        let t = TrainSettings {
            steps: 110,
            warmup: 10,
            schedule: Schedule::CosineAnnealing,
            ..TrainSettings::default()
        };
        assert!((t.lr_factor(0) - 0.1).abs() < 1e-12);
        assert!((t.lr_factor(4) - 0.5).abs() < 1e-12);
        assert_eq!(t.lr_factor(9), 1.0);
        assert_eq!(t.lr_factor(10), 1.0);
        assert!((t.lr_factor(60) - 0.5).abs() < 1e-12);
        assert!(t.lr_factor(109) < 1e-3);
        assert_eq!(
            t.schedule_description(),
            "cosine-annealing after a 10-step linear warm-up"
        );
        let plain = TrainSettings::default();
        assert_eq!(plain.lr_factor(7), 1.0);
        assert_eq!(plain.schedule_description(), "constant");
    }

    #[test]
    fn a_sweep_over_dataset_rows_gives_each_instance_its_t() {
        let base = "[model]\nkind = \"relu-output\"\nfeatures = 20\nhidden = 2\n";
        let text = format!(
            "{base}[data.dataset]\nrows = 7\nnormalize = true\n[sweep]\ndataset_rows = {{ from = 3, to = 300, count = 3 }}\nrestarts = 2\n"
        );
        let (_, specs) = TrainConfig::from_toml_validated(&text, "c.toml").unwrap();
        let rows: Vec<usize> = specs.iter().map(|s| s.data.dataset.unwrap().rows).collect();
        assert_eq!(rows, [3, 3, 30, 30, 300, 300]);
        assert!(specs.iter().all(|s| s.data.dataset.unwrap().normalize));
        assert_eq!(specs[1].restart, 1);
        let e = err(&format!("{base}[sweep]\ndataset_rows = [3, 30]\n"));
        assert!(
            e.contains("sweep.dataset_rows") && e.contains("[data.dataset]"),
            "{e}"
        );
        let e = err(&format!(
            "{base}[data.dataset]\nrows = 7\n[sweep]\ndataset_rows = [0.2, 30]\n"
        ));
        assert!(e.contains("sweep.dataset_rows") && e.contains("0.2"), "{e}");
    }

    #[test]
    fn every_kernel_takes_every_model_and_dense_reads_as_fused() {
        let model = |kind: &str| format!("[model]\nkind = \"{kind}\"\nfeatures = 20\nhidden = 2\n");
        for kernel in ["auto", "fused", "dense", "gemm", "sparse"] {
            for kind in ["relu-output", "linear", "relu-hidden", "abs"] {
                let text = format!(
                    "{}[train]\nkernel = \"{kernel}\"\nhidden_l1 = 0.1\n",
                    model(kind)
                );
                let c = TrainConfig::from_toml_validated(&text, "c.toml")
                    .unwrap_or_else(|e| panic!("{kernel} {kind}: {e}"));
                if kernel == "dense" {
                    assert_eq!(c.0.train.kernel, KernelChoice::Fused);
                }
            }
        }
        let e = err(&format!("{}[train]\nkernel = \"blas\"\n", model("linear")));
        assert!(e.contains("kernel") && e.contains("blas"), "{e}");
        let e = err(&format!(
            "{}[train]\nsteps = 10\nwarmup = 11\n",
            model("linear")
        ));
        assert!(e.contains("train.warmup"), "{e}");
        let e = err(&format!("{}[train]\neval_rows = 0\n", model("linear")));
        assert!(e.contains("train.eval_rows"), "{e}");
    }
}
