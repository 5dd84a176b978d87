//! `tms sae`: train a grid of sparse autoencoders on synthetic ground truth or on a toy-model
//! run's hidden activations, score them, and write a run folder.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use tms::output::{check_out_path, default_out_path};
use tms::pipeline::folder::write_run;
use tms::sae::checkpoint::{self, SaeState};
use tms::sae::config::{ActivationsConfig, KindName, SaeConfig};
use tms::sae::run::{CheckpointWriter, Interrupted, SaeControl};
use tms::sae::{output, run};
use tms::train::Progress;

/// `println!` that returns an error instead of panicking when stdout is closed (`| head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?;
    }};
}

/// Flags that override (or, with `--activations`, build) the config.
pub struct Overrides {
    /// A toy-model run to take activations from (instead of a config file).
    pub activations: Option<PathBuf>,
    /// `[sae].kind`.
    pub kind: Option<KindName>,
    /// `[sae].latents`.
    pub latents: Option<Vec<usize>>,
    /// `[sae].penalties`.
    pub penalties: Option<Vec<f64>>,
    /// `[sae].k`.
    pub k: Option<Vec<usize>>,
    /// `[train].steps`.
    pub steps: Option<u64>,
    /// `[train].seed`.
    pub seed: Option<u64>,
}

/// The config a `tms sae` command line describes.
pub fn config(path: Option<&Path>, o: &Overrides) -> anyhow::Result<SaeConfig> {
    let mut config = match (path, &o.activations) {
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            SaeConfig::from_toml(&text, &path.display().to_string())?
        }
        (None, Some(run)) => activations_config(run),
        _ => anyhow::bail!(
            "give a config file (`tms sae sae.toml`) or a toy-model run (`tms sae --activations runs/NAME`)"
        ),
    };
    if let Some(k) = o.kind {
        config.sae.kind = k;
    }
    if let Some(l) = &o.latents {
        config.sae.latents = l.clone();
    }
    if let Some(p) = &o.penalties {
        config.sae.penalties = p.clone();
    }
    if let Some(k) = &o.k {
        config.sae.k = k.clone();
    }
    if let Some(s) = o.steps {
        config.train.steps = s;
    }
    if let Some(s) = o.seed {
        config.train.seed = s;
    }
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid SAE settings: {e}"))?;
    Ok(config)
}

/// Defaults for a toy model's activations: the settings of the `sae-toy` experiment.
fn activations_config(run: &Path) -> SaeConfig {
    let mut c = tms::experiments::sae_toy::sae_config(tms::experiments::Profile::Quick);
    c.name = Some(format!(
        "sae-{}",
        run.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "activations".into())
    ));
    c.activations = Some(ActivationsConfig {
        run: run.to_path_buf(),
        instances: Vec::new(),
        represented: 0.5,
    });
    c
}

/// One `tms sae` run: a config, started afresh or continued from a checkpoint.
pub struct Job<'a> {
    /// What to train.
    pub config: &'a SaeConfig,
    /// The state of an interrupted run to finish (its folder is `out`).
    pub resume: Option<SaeState>,
    /// The run folder (default: runs/NAME, numbered if it exists).
    pub out: Option<&'a Path>,
    /// Replace `out` if it exists.
    pub force: bool,
}

/// Train, score, write the run folder and print the summary. Checkpoints go to the run's
/// output path every `checkpoint_every` seconds (0: never) and when `stop` is set; returns
/// false when the run stopped there.
pub fn train(
    job: Job,
    checkpoint_every: u64,
    stop: &AtomicBool,
    progress: &mut dyn Progress,
) -> anyhow::Result<bool> {
    let config = job.config;
    let out = job
        .out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_out_path(Path::new("runs"), config.name()));
    // A resumed run's folder is its checkpoint: ours to replace, as is one written here.
    let owned = Cell::new(job.resume.is_some());
    if !owned.get() {
        check_out_path(&out, job.force)?;
    }
    let force = job.force;
    let mut periodic = |state: &SaeState| -> Result<(), String> {
        checkpoint::write(&out, config, state, "in progress", force || owned.get())
            .map_err(|e| format!("{e:#}"))?;
        owned.set(true);
        Ok(())
    };
    let control = SaeControl {
        stop: Some(stop),
        checkpoint: (checkpoint_every > 0).then(|| {
            (
                Duration::from_secs(checkpoint_every),
                &mut periodic as &mut CheckpointWriter,
            )
        }),
    };
    let trained = match run::run_controlled(config, job.resume.as_ref(), control, progress) {
        Ok(trained) => trained,
        Err(e) => {
            return match e.downcast::<Interrupted>() {
                Ok(Interrupted { state }) => {
                    checkpoint::write(&out, config, &state, "interrupted", force || owned.get())?;
                    super::say_interrupted(state.done, state.steps, &out);
                    Ok(false)
                }
                Err(e) if owned.get() => Err(e.context(format!(
                    "the last good checkpoint is kept in {}",
                    out.display()
                ))),
                Err(e) => Err(e),
            };
        }
    };
    let result = output::run_result(&trained, config.name())?;
    let path = write_run(&result, &out, force || owned.get())?;
    for line in output::summary(&trained.results) {
        say!("{line}");
    }
    say!(
        "\nwrote {}/ (saes/NAME/cfg.json + sae_weights.safetensors in SAELens's layout, ground_truth.safetensors, metrics.json, figures: grid, loss{})",
        path.display(),
        if trained.results.inputs.iter().any(|i| i.toy.is_some()) { ", recovered" } else { "" }
    );
    Ok(true)
}
