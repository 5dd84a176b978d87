//! The config of `tms sae`: the inputs (a synthetic ground truth, or a toy-model run's hidden
//! activations), the grid of SAEs (kind × dictionary size × penalty or k) and the training.
//!
//! ```toml
//! [ground_truth]          # or [activations] run = "runs/uniform"
//! features = 512
//! dim = 256
//!
//! [sae]
//! kind = "l1"             # or "topk"
//! latents = [512, 1024]
//! penalties = [0.01, 0.1]  # l1; topk takes k = [...]
//!
//! [train]
//! steps = 8000
//! batch = 256
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{toml_error, ConfigError};
use crate::data::ground_truth::GroundTruthSettings;

/// Which SAE architecture the grid trains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    /// ReLU code with an L1 penalty (SAELens "standard").
    #[default]
    L1,
    /// k largest latents per row (SAELens "topk").
    TopK,
}

/// A toy-model run whose hidden activations h are the SAE's inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationsConfig {
    /// The run folder (or its `weights.safetensors`), written by `tms train` or `reproduce`.
    pub run: PathBuf,
    /// Instances to use (empty: every instance).
    #[serde(default)]
    pub instances: Vec<usize>,
    /// A feature is part of the ground truth when ‖W_i‖ exceeds this (default 0.5).
    #[serde(default = "default_represented")]
    pub represented: f64,
}

fn default_represented() -> f64 {
    0.5
}

/// The grid of SAEs: every dictionary size with every penalty (l1) or k (topk).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridConfig {
    /// Architecture.
    pub kind: KindName,
    /// Dictionary sizes D.
    pub latents: Vec<usize>,
    /// L1 penalties α (kind l1).
    pub penalties: Vec<f64>,
    /// Active latents per row (kind topk).
    pub k: Vec<usize>,
}

impl Default for GridConfig {
    fn default() -> Self {
        GridConfig {
            kind: KindName::L1,
            latents: vec![1024],
            penalties: vec![0.03],
            k: vec![8],
        }
    }
}

/// Training settings shared by every SAE of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaeTrainConfig {
    /// Adam steps, each on a fresh batch.
    pub steps: u64,
    /// Rows per batch.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Seed of the ground truth, the batches and every SAE's initialisation.
    pub seed: u64,
    /// Fresh rows the metrics are measured on.
    pub eval_rows: usize,
}

impl Default for SaeTrainConfig {
    fn default() -> Self {
        SaeTrainConfig {
            steps: 8000,
            batch: 256,
            lr: 1e-3,
            seed: 0,
            eval_rows: 4096,
        }
    }
}

/// A whole `tms sae` config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaeConfig {
    /// Name of the run (default: `sae`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Synthetic inputs (exactly one of `ground_truth` and `activations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_truth: Option<GroundTruthSettings>,
    /// A toy model's hidden activations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activations: Option<ActivationsConfig>,
    /// The SAEs.
    #[serde(default)]
    pub sae: GridConfig,
    /// Their training.
    #[serde(default)]
    pub train: SaeTrainConfig,
}

/// Largest dictionary, batch and step counts accepted (guards against typos that would
/// exhaust memory).
const MAX_LATENTS: usize = 1 << 18;
const MAX_BATCH: usize = 1 << 16;
const MAX_CELLS: usize = 4096;
/// Largest buffer (in f32s) a config may ask for: 1 GiB.
const MAX_ELEMENTS: u64 = 1 << 28;

fn has_duplicates(values: impl Iterator<Item = f64>) -> bool {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.windows(2).any(|w| w[0] == w[1])
}

impl SaeConfig {
    /// Parse and validate a TOML config; errors are located (`origin:line:column`).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: SaeConfig = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
        config.validate().map_err(|mut e| {
            e.location = Some(origin.to_string());
            e
        })?;
        Ok(config)
    }

    /// The config as TOML (what `config.toml` of the run folder holds).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Check every value; the error names the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.ground_truth, &self.activations) {
            (Some(g), None) => {
                if let Some(p) = g.problems().first() {
                    return Err(ConfigError::new("ground_truth", p.clone()));
                }
            }
            (None, Some(a)) => {
                if !(a.represented > 0.0 && a.represented.is_finite()) {
                    return Err(ConfigError::new(
                        "activations.represented",
                        format!("must be a positive norm, got {}", a.represented),
                    ));
                }
            }
            _ => {
                return Err(ConfigError::new(
                    "",
                    "give exactly one input: a [ground_truth] table (synthetic features) or an \
                     [activations] table (a toy-model run)",
                ))
            }
        }
        let grid = &self.sae;
        if grid.latents.is_empty() {
            return Err(ConfigError::new("sae.latents", "needs at least one size"));
        }
        if let Some(&d) = grid.latents.iter().find(|&&d| d == 0 || d > MAX_LATENTS) {
            return Err(ConfigError::new(
                "sae.latents",
                format!("sizes must be 1..={MAX_LATENTS}, got {d}"),
            ));
        }
        match grid.kind {
            KindName::L1 => {
                if grid.penalties.is_empty() {
                    return Err(ConfigError::new("sae.penalties", "needs at least one α"));
                }
                if let Some(a) = grid
                    .penalties
                    .iter()
                    .find(|a| !(a.is_finite() && **a >= 0.0))
                {
                    return Err(ConfigError::new(
                        "sae.penalties",
                        format!("penalties must be finite and ≥ 0, got {a}"),
                    ));
                }
            }
            KindName::TopK => {
                if grid.k.is_empty() {
                    return Err(ConfigError::new("sae.k", "needs at least one k"));
                }
                if let Some(k) = grid.k.iter().find(|&&k| k == 0) {
                    return Err(ConfigError::new("sae.k", format!("k must be ≥ 1, got {k}")));
                }
                let smallest = grid.latents.iter().copied().min().unwrap_or(0);
                if let Some(k) = grid.k.iter().find(|&&k| k > smallest) {
                    return Err(ConfigError::new(
                        "sae.k",
                        format!(
                            "k = {k} is more than the smallest dictionary ({smallest} latents)"
                        ),
                    ));
                }
            }
        }
        if has_duplicates(grid.latents.iter().map(|&d| d as f64))
            || has_duplicates(grid.penalties.iter().copied())
            || has_duplicates(grid.k.iter().map(|&k| k as f64))
        {
            return Err(ConfigError::new(
                "sae",
                "a size, penalty or k is listed twice (each SAE of the grid needs its own folder)",
            ));
        }
        // Buffers that grow with the settings: the evaluation codes [eval_rows, D], a batch's
        // pre-activations [batch, D], the ground truth [G, d] and its copula [G, rank].
        let largest = grid.latents.iter().copied().max().unwrap_or(0) as u64;
        let mut sizes = vec![
            (
                "train.eval_rows × the largest dictionary",
                self.train.eval_rows as u64 * largest,
            ),
            (
                "train.batch × the largest dictionary",
                self.train.batch as u64 * largest,
            ),
        ];
        if let Some(g) = &self.ground_truth {
            sizes.push(("ground_truth.features × dim", (g.features * g.dim) as u64));
            sizes.push((
                "ground_truth.features × correlation_rank",
                (g.features * g.correlation_rank) as u64,
            ));
            sizes.push((
                "ground_truth.features × the largest dictionary",
                g.features as u64 * largest,
            ));
        }
        if let Some((what, n)) = sizes.into_iter().find(|(_, n)| *n > MAX_ELEMENTS) {
            return Err(ConfigError::new(
                "",
                format!("{what} is {n} numbers, over the {MAX_ELEMENTS} tms allocates for one buffer; ask for less"),
            ));
        }
        if self.cells() > MAX_CELLS {
            return Err(ConfigError::new(
                "sae",
                format!("the grid has {} SAEs; at most {MAX_CELLS}", self.cells()),
            ));
        }
        let t = &self.train;
        if t.steps == 0 || t.steps > 100_000_000 {
            return Err(ConfigError::new(
                "train.steps",
                format!("must be 1..=100000000, got {}", t.steps),
            ));
        }
        if t.batch == 0 || t.batch > MAX_BATCH {
            return Err(ConfigError::new(
                "train.batch",
                format!("must be 1..={MAX_BATCH}, got {}", t.batch),
            ));
        }
        if !(t.lr > 0.0 && t.lr < 10.0) {
            return Err(ConfigError::new(
                "train.lr",
                format!("must be in (0, 10), got {}", t.lr),
            ));
        }
        if t.eval_rows == 0 || t.eval_rows > 1 << 20 {
            return Err(ConfigError::new(
                "train.eval_rows",
                format!("must be 1..=1048576, got {}", t.eval_rows),
            ));
        }
        Ok(())
    }

    /// Most SAEs one run may train (inputs × cells).
    pub const MAX_CELLS: usize = MAX_CELLS;

    /// SAEs per input (dictionary sizes × penalties or k).
    pub fn cells(&self) -> usize {
        let per = match self.sae.kind {
            KindName::L1 => self.sae.penalties.len(),
            KindName::TopK => self.sae.k.len(),
        };
        self.sae.latents.len() * per
    }

    /// The run's name.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("sae")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_config_parses_with_defaults() {
        let c =
            SaeConfig::from_toml("[ground_truth]\nfeatures = 64\ndim = 32\n", "t.toml").unwrap();
        assert_eq!(c.ground_truth.as_ref().unwrap().features, 64);
        assert_eq!(c.train.steps, 8000);
        assert_eq!(c.cells(), 1);
        let back = SaeConfig::from_toml(&c.to_toml(), "back").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            ("[sae]\nlatents = [8]\n", "exactly one input"),
            (
                "[ground_truth]\n[activations]\nrun = \"x\"\n",
                "exactly one input",
            ),
            ("[ground_truth]\nfeatures = 0\n", "features must be"),
            ("[ground_truth]\n[sae]\nlatents = []\n", "sae.latents"),
            (
                "[ground_truth]\n[sae]\npenalties = [-1.0]\n",
                "sae.penalties",
            ),
            ("[ground_truth]\n[sae]\nkind = \"topk\"\nk = [0]\n", "sae.k"),
            ("[ground_truth]\n[train]\nbatch = 0\n", "train.batch"),
            ("[ground_truth]\n[train]\nlr = -1.0\n", "train.lr"),
            ("[ground_truth]\n[train]\nstepz = 3\n", "steps"),
            ("[ground_truth]\n[sae]\nkind = \"gated\"\n", "kind"),
            (
                "[ground_truth]\n[sae]\nkind = \"topk\"\nlatents = [8]\nk = [9]\n",
                "sae.k",
            ),
            ("[ground_truth]\n[sae]\nlatents = [8, 8]\n", "listed twice"),
            (
                "[ground_truth]\n[sae]\npenalties = [0.1, 0.1]\n",
                "listed twice",
            ),
            (
                "[ground_truth]\n[sae]\nlatents = [262144]\n[train]\neval_rows = 1048576\n",
                "eval_rows",
            ),
            (
                "[ground_truth]\nfeatures = 1048576\ndim = 65536\n",
                "features × dim",
            ),
        ];
        for (text, want) in cases {
            let e = SaeConfig::from_toml(text, "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("t.toml"), "{text}: {e}");
        }
    }
}
