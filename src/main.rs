//! `tms`: the command line. A thin layer mapping subcommands onto library calls.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tms::config::{locate, InstanceRange, Shard, TrainConfig};
use tms::experiments::{self, Experiment, ExperimentOptions, Profile};
use tms::output::checkpoint::{is_checkpoint, merge_shards, Checkpoint, RunKind, SHARD_FILE};
use tms::output::foreign::Layout;
use tms::output::report::write_report;
use tms::output::{check_out_path, default_out_path};
use tms::pipeline::{
    analyze_weights, standard_figures, summary_table, train_run, write_run, RunResult,
};
use tms::train::{Progress, TrainControl, TrainError, TrainState};

/// Subcommands with more than a few lines of their own.
mod cli {
    pub mod orthogonal;
    pub mod sae;

    /// Tell the user where an interrupted run was saved and how to finish it.
    pub fn say_interrupted(done: u64, steps: u64, out: &std::path::Path) {
        eprintln!(
            "interrupted at step {done} of {steps}; saved in {}; continue with: tms resume {}",
            out.display(),
            out.display()
        );
    }
}
use cli::orthogonal;
use cli::sae;

/// Toy models of superposition: train, analyse and reproduce Elhage et al. (2022).
#[derive(Parser)]
#[command(name = "tms", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Flags shared by every command that writes a run folder.
#[derive(clap::Args)]
struct OutputArgs {
    /// Run folder to write (default: runs/NAME, numbered if it exists)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replace the --out folder if it exists
    #[arg(long)]
    force: bool,
    /// Print only the final summary (no progress bar)
    #[arg(long, short)]
    quiet: bool,
}

/// Flags that train part of a run's instances (a shard).
#[derive(clap::Args)]
struct SubsetArgs {
    /// Train only instances FROM..TO (e.g. 3..5) to shard a sweep; same weights as the full run
    #[arg(long, value_name = "FROM..TO")]
    instances: Option<InstanceRange>,
    /// Train shard K of N (the instances split evenly); join the shards with `tms merge`
    #[arg(long, value_name = "K/N", conflicts_with = "instances")]
    shard: Option<Shard>,
}

/// Flags shared by every command that trains.
#[derive(clap::Args)]
struct TrainingArgs {
    /// Worker threads (default: one per core); results do not depend on it
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Seconds between checkpoints of a long run (0: only on Ctrl-C / SIGTERM)
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    checkpoint_every: u64,
}

impl TrainingArgs {
    fn runner(&self, quiet: bool) -> Runner {
        Runner {
            threads: self.threads.map(|t| t as usize),
            checkpoint_every: self.checkpoint_every,
            quiet,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// List the paper experiments, one line each
    List,
    /// Run paper experiments (or `all`) and write their run folders
    Reproduce {
        /// Experiment names (see `tms list`), or `all`; experiments with the same config
        /// (`uniform geometry`) share one training
        #[arg(required = true, num_args = 1..)]
        experiments: Vec<String>,
        /// Compute budget: `quick` (about 2 minutes each on 2 cores) or `paper` (full settings)
        #[arg(long, value_enum, default_value_t = Profile::Quick)]
        profile: Profile,
        /// Seed of every random stream
        #[arg(long)]
        seed: Option<u64>,
        /// Restarts per sweep point; figures and verdicts use the lowest-loss one
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        restarts: Option<u32>,
        #[command(flatten)]
        subset: SubsetArgs,
        #[command(flatten)]
        training: TrainingArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Train the models a TOML config describes (see README for the format)
    Train {
        /// Config file
        config: PathBuf,
        /// Override [train].seed
        #[arg(long)]
        seed: Option<u64>,
        /// Override [train].steps
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        steps: Option<u64>,
        #[command(flatten)]
        subset: SubsetArgs,
        #[command(flatten)]
        training: TrainingArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Join the shards of one run (`--shard K/N` or `--instances` run folders) into the run
    /// folder a single machine writes: the same weights file, byte for byte, then the
    /// experiment's later stages, figures and verdict
    Merge {
        /// The shards' run folders, in any order
        #[arg(required = true, num_args = 1..)]
        shards: Vec<PathBuf>,
        #[command(flatten)]
        training: TrainingArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Finish an interrupted run from its checkpoint (bit-identical to an uninterrupted run)
    Resume {
        /// The run folder holding checkpoint.safetensors
        run_dir: PathBuf,
        #[command(flatten)]
        training: TrainingArgs,
        /// Print only the final summary (no progress bar)
        #[arg(long, short)]
        quiet: bool,
    },
    /// Build RUNS_DIR/index.html, a self-contained report of the run folders in RUNS_DIR
    Report {
        /// A folder of run folders (e.g. runs/all)
        runs_dir: PathBuf,
    },
    /// How many almost-orthogonal directions fit in D dimensions: Welch's bound, random and
    /// optimised packings, capacity per window, or a run's feature directions against them
    #[command(after_help = ORTHOGONAL_HELP)]
    Orthogonal {
        /// Dimensions
        #[arg(long, value_name = "D", required_unless_present = "compare",
              value_parser = clap::value_parser!(u64).range(1..=100_000))]
        dim: Option<u64>,
        /// Vectors: random and optimised packings of N vectors, against Welch's bound
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=50_000))]
        count: Option<u64>,
        /// Half-width of the window 90° ± DEG: the most vectors found within it (with --count:
        /// whether N vectors fit)
        #[arg(long, value_name = "DEG")]
        angle: Option<f64>,
        /// A run folder (or weights file): its represented feature directions against an
        /// optimised packing of as many vectors in as many dimensions
        #[arg(long, value_name = "RUN", conflicts_with_all = ["dim", "count", "angle"])]
        compare: Option<PathBuf>,
        /// Gradient steps of each optimisation
        #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        steps: u64,
        /// Largest number of vectors the --angle search tries
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=50_000))]
        budget: u64,
        /// Seed of the random and starting vectors
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Worker threads (default: one per core); results do not depend on it
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: Option<u32>,
    },
    /// Train a grid of sparse autoencoders on synthetic ground truth or on a toy-model run's
    /// hidden activations, and score them against the true features
    #[command(after_help = SAE_HELP)]
    Sae {
        /// An SAE config (TOML: [ground_truth] or [activations], [sae], [train])
        #[arg(
            required_unless_present = "activations",
            conflicts_with = "activations"
        )]
        config: Option<PathBuf>,
        /// A toy-model run folder: train on its hidden activations (the sae-toy settings)
        #[arg(long, value_name = "RUN")]
        activations: Option<PathBuf>,
        /// SAE kind
        #[arg(long, value_parser = ["l1", "topk"])]
        kind: Option<String>,
        /// Dictionary sizes, comma-separated
        #[arg(long, value_delimiter = ',', value_name = "D,...")]
        latents: Option<Vec<usize>>,
        /// L1 penalties, comma-separated (kind l1)
        #[arg(long, value_delimiter = ',', value_name = "A,...")]
        penalties: Option<Vec<f64>>,
        /// Active latents per row, comma-separated (kind topk)
        #[arg(long, value_delimiter = ',', value_name = "K,...")]
        k: Option<Vec<usize>>,
        /// Override [train].steps
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        steps: Option<u64>,
        /// Override [train].seed
        #[arg(long)]
        seed: Option<u64>,
        #[command(flatten)]
        training: TrainingArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Compute metrics and figures for a weights file: tms's, the notebook's, ARENA's, or one
    /// model's W, as safetensors, .npy or .npz
    #[command(after_help = ANALYZE_HELP)]
    Analyze {
        /// A safetensors, .npy or .npz file with `W` (and optionally `b` or `b_final`), or the
        /// |x| model's `W1` and `W2`
        weights: PathBuf,
        /// How W is stored (default: from the file; a square W needs it)
        #[arg(long, value_parser = ["notebook", "arena", "features-hidden", "hidden-features"])]
        layout: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // One line: clap's message up to the usage block, joined.
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see `tms --help`)", message.join(" "));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        // The reader of our output went away (`tms orthogonal ... | head`): nothing to say.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

/// Exit status of a run that finished but did not reproduce the paper's result.
const NOT_REPRODUCED: u8 = 3;
/// Exit status of a run stopped by Ctrl-C or SIGTERM (a checkpoint was saved).
const INTERRUPTED: u8 = 130;

/// Set by the signal handler; training stops at the next block boundary.
static STOP: AtomicBool = AtomicBool::new(false);

fn install_signal_handler() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\nstopping now, without a checkpoint");
            std::process::exit(INTERRUPTED as i32);
        }
        eprintln!(
            "\nstopping at the next block of steps to save a checkpoint (Ctrl-C again to abort)"
        );
    });
}

/// What one training job is: a config, how it was started, and where it continues from.
struct Job {
    name: String,
    kind: RunKind,
    experiment: Option<&'static Experiment>,
    options: ExperimentOptions,
    config: TrainConfig,
    resume: Option<TrainState>,
}

/// Settings shared by every command that trains.
struct Runner {
    threads: Option<usize>,
    checkpoint_every: u64,
    quiet: bool,
}

enum Outcome {
    Finished(Box<RunResult>),
    Interrupted,
}

impl Runner {
    /// Train `job`, checkpointing into `out`; on success write the run folder there.
    fn execute(&self, job: Job, out: &Path, force: bool) -> anyhow::Result<Outcome> {
        // A checkpoint folder at `out` is ours to replace (a resumed run, or one written here).
        let owned = Cell::new(job.resume.is_some() && is_checkpoint(out));
        let checkpoint_of = |state: &TrainState| Checkpoint {
            experiment: job.name.clone(),
            kind: job.kind,
            config: job.config.clone(),
            state: state.clone(),
            profile: job
                .experiment
                .map(|_| job.options.profile.name().to_string()),
            restarts: job.options.restarts,
        };
        let mut periodic = |state: &TrainState| -> Result<(), String> {
            checkpoint_of(state)
                .write(out, "in progress", force || owned.get())
                .map_err(|e| format!("{e:#}"))?;
            owned.set(true);
            Ok(())
        };
        let control = TrainControl {
            abort: None,
            threads: self.threads,
            stop: Some(&STOP),
            checkpoint: (self.checkpoint_every > 0).then(|| {
                (
                    Duration::from_secs(self.checkpoint_every),
                    &mut periodic as _,
                )
            }),
        };
        let mut bar = Bar::new(self.quiet);
        let resume = job.resume.as_ref();
        let result = match job.experiment {
            Some(e) => e.run(&job.config, &job.options, resume, control, &mut bar),
            None => train_run(&job.name, &job.config, resume, control, &mut bar).map(|mut r| {
                r.figures = standard_figures(&r);
                r
            }),
        };
        match result {
            Ok(mut run) => {
                // A shard keeps its whole final state, for `tms merge`.
                let shard_state = run.trained.as_mut().and_then(|t| t.final_state.take());
                if let Some(state) = shard_state {
                    run.files
                        .push((SHARD_FILE.to_string(), checkpoint_of(&state).to_bytes()?));
                }
                finish(&run, out, force || owned.get())?;
                if let Some(r) = job.config.train.only_instances {
                    println!(
                        "a shard (instances {}..{}): when every shard has finished, join them with `tms merge SHARD_DIR... --out RUN`\n",
                        r.from, r.to
                    );
                }
                Ok(Outcome::Finished(Box::new(run)))
            }
            Err(e) => match e.downcast::<TrainError>() {
                Ok(TrainError::Interrupted { state }) => {
                    checkpoint_of(&state).write(out, "interrupted", force || owned.get())?;
                    cli::say_interrupted(state.done, state.steps, out);
                    Ok(Outcome::Interrupted)
                }
                Ok(e @ TrainError::Diverged { .. }) => {
                    if owned.get() {
                        bail!("{e}; the last good checkpoint is kept in {}", out.display())
                    }
                    bail!("{e}")
                }
                Ok(other) => Err(other.into()),
                Err(other) => Err(other),
            },
        }
    }
}

/// The instances a sharded run trains: a range, or shard K of N.
#[derive(Clone, Copy)]
enum Subset {
    Instances(InstanceRange),
    Shard(Shard),
}

impl Subset {
    fn of(args: SubsetArgs) -> Option<Self> {
        match (args.instances, args.shard) {
            (Some(r), _) => Some(Subset::Instances(r)),
            (None, Some(s)) => Some(Subset::Shard(s)),
            (None, None) => None,
        }
    }

    /// Restrict `config` to the subset (checked when the config is resolved).
    fn apply(self, config: &mut TrainConfig) -> anyhow::Result<()> {
        config.train.only_instances = Some(match self {
            Subset::Instances(r) => r,
            Subset::Shard(s) => {
                let mut whole = config.clone();
                whole.train.only_instances = None;
                let total = whole.resolve()?.len();
                s.range(total)
                    .map_err(|e| anyhow::anyhow!("--shard: {e}"))?
            }
        });
        Ok(())
    }

    /// The folder name of the subset's run of `name`.
    fn out_name(self, name: &str) -> String {
        match self {
            Subset::Instances(r) => format!("{name}-instances-{}-{}", r.from, r.to),
            Subset::Shard(s) => format!("{name}-shard-{}-of-{}", s.index, s.count),
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::List => list(),
        Command::Reproduce {
            experiments,
            profile,
            seed,
            restarts,
            subset,
            training,
            output,
        } => {
            let options = ExperimentOptions {
                profile,
                seed,
                restarts: restarts.map(|r| r as usize),
            };
            reproduce(
                &experiments,
                options,
                Subset::of(subset),
                &training,
                &output,
            )
        }
        Command::Train {
            config,
            seed,
            steps,
            subset,
            training,
            output,
        } => train(&config, seed, steps, Subset::of(subset), &training, &output),
        Command::Merge {
            shards,
            training,
            output,
        } => merge(&shards, &training, &output),
        Command::Resume {
            run_dir,
            training,
            quiet,
        } => resume(&run_dir, &training, quiet),
        Command::Report { runs_dir } => {
            if !runs_dir.is_dir() {
                bail!("{} is not a folder of runs", runs_dir.display());
            }
            print_report(&runs_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Analyze {
            weights,
            layout,
            output,
        } => analyze(&weights, layout.as_deref(), &output),
        Command::Sae {
            config,
            activations,
            kind,
            latents,
            penalties,
            k,
            steps,
            seed,
            training,
            output,
        } => {
            let overrides = sae::Overrides {
                activations,
                kind: kind.map(|k| {
                    if k == "topk" {
                        tms::sae::config::KindName::TopK
                    } else {
                        tms::sae::config::KindName::L1
                    }
                }),
                latents,
                penalties,
                k,
                steps,
                seed,
            };
            let config = sae::config(config.as_deref(), &overrides)?;
            let job = sae::Job {
                config: &config,
                resume: None,
                out: output.out.as_deref(),
                force: output.force,
            };
            sae_job(job, &training, output.quiet)
        }
        Command::Orthogonal {
            dim,
            count,
            angle,
            compare,
            steps,
            budget,
            seed,
            threads,
        } => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads.unwrap_or(0) as usize)
                .build()
                .context("cannot start the worker threads")?;
            let settings = tms::orthogonal::PackSettings {
                steps: steps as usize,
                seed,
                ..Default::default()
            };
            pool.install(|| match compare {
                Some(run) => orthogonal::compare(&run, &settings),
                None => orthogonal::report(
                    dim.unwrap_or(1) as usize,
                    count.map(|c| c as usize),
                    angle,
                    budget as usize,
                    &settings,
                ),
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

const SAE_HELP: &str = "Examples:
  tms sae sae.toml                          the grid of a config file (see the README's SAE section)
  tms sae --activations runs/uniform        SAEs on every instance's hidden activations
  tms sae sae.toml --kind topk --k 4,8 --latents 512,1024
Each SAE is saved in SAELens's layout under RUN/saes/NAME/ (cfg.json, sae_weights.safetensors).
`tms reproduce sae-synthetic` and `tms reproduce sae-toy` run the two experiments.";

const ANALYZE_HELP: &str = "Layouts of W (the first line printed says which was used and why):
  notebook         [instances, features, hidden]   the paper's notebook, tms (b_final or b: [instances, features])
  arena            [instances, hidden, features]   ARENA's superposition exercises
  features-hidden  [features, hidden]              one model
  hidden-features  [hidden, features]              one model, e.g. nn.Linear(features, hidden).weight
The |x| model: W1 [.., hidden, features] and W2 [.., features, hidden]. Without --layout, files
written by tms are read as they are; for others the layout with features ≥ hidden is taken and
the bias checked against it; a square W needs --layout. PyTorch pickles (.pt, .pth, or a
torch.save zip) are refused with the one-line conversion to safetensors.
Examples:
  tms analyze runs/intro/weights.safetensors
  tms analyze arena_model.npz
  tms analyze square.npy --layout arena";

const ORTHOGONAL_HELP: &str = "Examples:
  tms orthogonal --dim 100 --count 10000      random and optimised packings against Welch's bound
  tms orthogonal --dim 100 --angle 1          the most vectors found within 89°–91° (Welch: 103)
  tms orthogonal --dim 100 --count 10000 --angle 1   says plainly that it is impossible
  tms orthogonal --compare runs/uniform       a trained run's feature directions against packings
`tms reproduce orthogonal` draws the capacity and angle figures.";

/// `tms list`.
fn list() -> anyhow::Result<ExitCode> {
    for e in experiments::registry() {
        println!("{:<16} {:<22} {}", e.name, e.section, e.summary);
    }
    Ok(ExitCode::SUCCESS)
}

/// `tms reproduce NAME|all`.
fn reproduce(
    names: &[String],
    options: ExperimentOptions,
    subset: Option<Subset>,
    training: &TrainingArgs,
    output: &OutputArgs,
) -> anyhow::Result<ExitCode> {
    let all = names.iter().any(|n| n == "all");
    let mut chosen: Vec<&'static Experiment> = Vec::new();
    if all {
        chosen.extend(experiments::registry());
    }
    for name in names.iter().filter(|n| *n != "all") {
        let Some(e) = experiments::find(name) else {
            bail!(
                "unknown experiment {name:?}; known: {}, all (see `tms list`)",
                experiments::names()
            );
        };
        if !chosen.iter().any(|c| c.name == e.name) {
            chosen.push(e);
        }
    }
    // Several experiments are written like `all`: one folder with a run folder per experiment
    // and the report.
    let several = chosen.len() > 1;
    if several && subset.is_some() {
        bail!(
            "--instances and --shard split one experiment's instances; give one experiment (each shares nothing with the others' shards)"
        );
    }
    let base = match (&output.out, several) {
        (Some(dir), true) => dir.clone(),
        (None, true) if all => default_out_path(Path::new("runs"), "all"),
        (None, true) => default_out_path(Path::new("runs"), &names.join("+")),
        _ => PathBuf::from("runs"),
    };
    let mut jobs = Vec::new();
    for e in &chosen {
        let config = match e.configure(&options) {
            Some(mut config) => {
                if let Some(subset) = subset {
                    subset
                        .apply(&mut config)
                        .map_err(|err| anyhow::anyhow!("experiment {}: {err:#}", e.name))?;
                }
                config
                    .resolve()
                    .map_err(|err| anyhow::anyhow!("experiment {}: {err}", e.name))?;
                Some(config)
            }
            None if subset.is_some() => {
                bail!(
                    "experiment {} trains no models; --instances and --shard do not apply to it",
                    e.name
                )
            }
            None => None,
        };
        let name = subset.map_or(e.name.to_string(), |s| s.out_name(e.name));
        let out = match (&output.out, several) {
            (Some(dir), false) => dir.clone(),
            (None, false) => default_out_path(&base, &name),
            (_, true) => base.join(e.name),
        };
        check_out_path(&out, output.force)?;
        jobs.push((e, config, out));
    }
    install_signal_handler();
    let runner = training.runner(output.quiet);
    let mut reproduced = true;
    let any_jobs = !jobs.is_empty();
    // Experiments with the same config and no later stages (`uniform` and `geometry`) share
    // one training.
    let mut finished: Vec<RunResult> = Vec::new();
    for (e, config, out) in jobs {
        let Some(config) = config else {
            let run = e.compute(&options, &mut Bar::new(output.quiet))?;
            finish(&run, &out, output.force)?;
            reproduced &= run.verdict.as_ref().is_some_and(|v| v.reproduced);
            continue;
        };
        let shared = finished.iter().find(|r| {
            e.single_stage() && r.config.as_ref() == Some(&config) && r.stages.is_empty()
        });
        if let Some(done) = shared {
            let mut run = done.clone();
            println!(
                "{}: same config as {}, judging its training",
                e.name, run.experiment
            );
            run.experiment = e.name.to_string();
            e.judge(&mut run);
            finish(&run, &out, output.force)?;
            reproduced &= run.verdict.as_ref().is_some_and(|v| v.reproduced);
            continue;
        }
        let job = Job {
            name: e.name.to_string(),
            kind: RunKind::Experiment,
            experiment: Some(e),
            options: options.clone(),
            config,
            resume: None,
        };
        match runner.execute(job, &out, output.force)? {
            // A shard is judged after `tms merge`.
            Outcome::Finished(run) if subset.is_some() => finished.push(*run),
            Outcome::Finished(run) => {
                reproduced &= run.verdict.as_ref().is_some_and(|v| v.reproduced);
                finished.push(*run);
            }
            Outcome::Interrupted => return Ok(ExitCode::from(INTERRUPTED)),
        }
    }
    if several && any_jobs {
        print_report(&base)?;
    }
    Ok(if reproduced {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_REPRODUCED)
    })
}

/// `tms train CONFIG`.
fn train(
    config: &Path,
    seed: Option<u64>,
    steps: Option<u64>,
    subset: Option<Subset>,
    training: &TrainingArgs,
    output: &OutputArgs,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read the config {}", config.display()))?;
    let origin = config.display().to_string();
    let mut cfg = TrainConfig::from_toml(&text, &origin)?;
    if let Some(s) = seed {
        cfg.train.seed = s;
    }
    if let Some(s) = steps {
        cfg.train.steps = s;
    }
    if let Err(mut e) = cfg.resolve() {
        e.location = Some(locate(&text, &origin, &e.field));
        return Err(e.into());
    }
    if let Some(subset) = subset {
        subset.apply(&mut cfg)?;
    }
    if let Err(mut e) = cfg.resolve() {
        e.location = Some(locate(&text, &origin, &e.field));
        return Err(e.into());
    }
    let name = subset.map_or(cfg.name.clone(), |s| s.out_name(&cfg.name));
    let out = output
        .out
        .clone()
        .unwrap_or_else(|| default_out_path(Path::new("runs"), &name));
    check_out_path(&out, output.force)?;
    install_signal_handler();
    let job = Job {
        name: cfg.name.clone(),
        kind: RunKind::Train,
        experiment: None,
        options: ExperimentOptions::default(),
        config: cfg,
        resume: None,
    };
    match training
        .runner(output.quiet)
        .execute(job, &out, output.force)?
    {
        Outcome::Finished(_) => Ok(ExitCode::SUCCESS),
        Outcome::Interrupted => Ok(ExitCode::from(INTERRUPTED)),
    }
}

/// Run an SAE job in its own thread pool, stopped by Ctrl-C / SIGTERM with a checkpoint.
fn sae_job(job: sae::Job, training: &TrainingArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(training.threads.unwrap_or(0) as usize)
        .build()
        .context("cannot start the worker threads")?;
    install_signal_handler();
    let mut bar = Bar::new(quiet);
    let every = training.checkpoint_every;
    Ok(
        match pool.install(|| sae::train(job, every, &STOP, &mut bar))? {
            true => ExitCode::SUCCESS,
            false => ExitCode::from(INTERRUPTED),
        },
    )
}

/// `tms resume RUN_DIR`.
/// The job that continues the run a checkpoint holds (`what`: where it came from, for
/// messages: "the checkpoint", "the shards").
fn job_of(ck: Checkpoint, what: &str) -> anyhow::Result<Job> {
    let experiment = match ck.kind {
        RunKind::Experiment => Some(
            experiments::find(&ck.experiment)
                .with_context(|| format!("{what}: an unknown experiment {:?}", ck.experiment))?,
        ),
        RunKind::Train => None,
    };
    ck.config
        .resolve()
        .map_err(|e| anyhow::anyhow!("{what}: the config: {e}"))?;
    let profile = match ck.profile.as_deref() {
        Some(name) => Profile::from_name(name)
            .with_context(|| format!("{what}: an unknown profile {name:?}"))?,
        None => Profile::default(),
    };
    Ok(Job {
        name: ck.experiment,
        kind: ck.kind,
        experiment,
        options: ExperimentOptions {
            profile,
            seed: Some(ck.config.train.seed),
            restarts: ck.restarts,
        },
        config: ck.config,
        resume: Some(ck.state),
    })
}

fn resume(run_dir: &Path, training: &TrainingArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    if tms::sae::checkpoint::is_checkpoint(run_dir) {
        let (config, state) = tms::sae::checkpoint::read(run_dir)?;
        let job = sae::Job {
            config: &config,
            resume: Some(state),
            out: Some(run_dir),
            force: false,
        };
        return sae_job(job, training, quiet);
    }
    let job = job_of(Checkpoint::read(run_dir)?, "the checkpoint")?;
    install_signal_handler();
    match training.runner(quiet).execute(job, run_dir, false)? {
        Outcome::Finished(run) => Ok(match &run.verdict {
            Some(v) if !v.reproduced => ExitCode::from(NOT_REPRODUCED),
            _ => ExitCode::SUCCESS,
        }),
        Outcome::Interrupted => Ok(ExitCode::from(INTERRUPTED)),
    }
}

/// `tms merge SHARD_DIR... --out RUN`: join the shards' final states and finish the whole run
/// from them (no step is trained again; final losses, later stages, figures and the verdict are
/// computed as a single machine would).
fn merge(
    dirs: &[PathBuf],
    training: &TrainingArgs,
    output: &OutputArgs,
) -> anyhow::Result<ExitCode> {
    let mut shards = Vec::new();
    for dir in dirs {
        let name = dir.display().to_string();
        if shards.iter().any(|(n, _)| *n == name) {
            bail!("{name} is given twice: merge each shard once");
        }
        let path = dir.join(SHARD_FILE);
        if !path.is_file() {
            bail!(
                "{name} has no {SHARD_FILE}: not the finished run folder of a shard (`--shard K/N` or `--instances FROM..TO`){}",
                if is_checkpoint(dir) { "; it is unfinished: `tms resume` it first" } else { "" }
            );
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let shard = Checkpoint::from_bytes(&bytes)
            .with_context(|| format!("{name} is damaged: {}", path.display()))?;
        shards.push((name, shard));
    }
    let merged = merge_shards(&shards)?;
    let out = output
        .out
        .clone()
        .unwrap_or_else(|| default_out_path(Path::new("runs"), &merged.experiment));
    check_out_path(&out, output.force)?;
    let job = job_of(merged, "the shards")?;
    install_signal_handler();
    match training
        .runner(output.quiet)
        .execute(job, &out, output.force)?
    {
        Outcome::Finished(run) => Ok(match &run.verdict {
            Some(v) if !v.reproduced => ExitCode::from(NOT_REPRODUCED),
            _ => ExitCode::SUCCESS,
        }),
        Outcome::Interrupted => Ok(ExitCode::from(INTERRUPTED)),
    }
}

/// `tms analyze WEIGHTS`.
fn analyze(weights: &Path, layout: Option<&str>, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let layout = layout.and_then(Layout::from_name);
    let imported = tms::output::foreign::load(weights, layout)
        .with_context(|| format!("cannot analyse {}", weights.display()))?;
    println!(
        "{}: {}, W as {} ({}: {}){}",
        weights.display(),
        imported.format,
        imported.layout.shape(),
        imported.layout.name(),
        imported.reason,
        if imported.weights.kind == Some(tms::model::ModelKind::Abs) {
            ", the |x| model"
        } else {
            ""
        }
    );
    let loaded = imported.weights;
    let stem = weights
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "weights".into());
    let out = output
        .out
        .clone()
        .unwrap_or_else(|| default_out_path(Path::new("runs"), &format!("analyze-{stem}")));
    check_out_path(&out, output.force)?;
    let mut result = analyze_weights(loaded);
    result.figures = standard_figures(&result);
    finish(&result, &out, output.force)?;
    Ok(ExitCode::SUCCESS)
}

/// Write the report page of a folder of runs and say what it holds.
fn print_report(dir: &Path) -> anyhow::Result<()> {
    let (path, shown, skipped) = write_report(dir)?;
    println!("report: {} ({shown} run(s))", path.display());
    for s in &skipped {
        eprintln!("report: skipped {}: {}", s.name, s.reason);
    }
    Ok(())
}

/// Write the run folder and print the summary.
fn finish(result: &RunResult, out: &Path, force: bool) -> anyhow::Result<()> {
    let path = write_run(result, out, force)?;
    println!("{}", result.experiment);
    if let (Some(t), Some(cfg)) = (&result.trained, &result.config) {
        let secs = t.elapsed.as_secs_f64();
        let mut kinds: Vec<&str> = t.specs.iter().map(|s| s.kind.name()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        println!(
            "trained {} instance(s) of {} (n={}, m={}) for {} steps, batch {}, in {:.2} s ({:.0} steps/s, {} kernel, {} pass)",
            t.specs.len(),
            kinds.join(" + "),
            cfg.model.features,
            cfg.model.hidden,
            cfg.train.steps,
            cfg.train.batch_size,
            secs,
            cfg.train.steps as f64 / secs.max(1e-9),
            t.variant.name(),
            tms::train::passes_in_words(&t.passes)
        );
        println!(
            "optimizer: AdamW(lr={}, betas=({}, {}), eps={:e}, weight_decay={}), {} schedule, seed {}",
            cfg.train.lr,
            cfg.train.beta1,
            cfg.train.beta2,
            cfg.train.eps,
            cfg.train.weight_decay,
            cfg.train.schedule_description(),
            cfg.train.seed
        );
    }
    println!();
    print!("{}", summary_table(result));
    let figures: Vec<&str> = result.figures.iter().map(|f| f.0.as_str()).collect();
    println!(
        "\nwrote {}/ (weights.safetensors, metrics.json{}{}, figures: {})\n",
        path.display(),
        if result.config.is_some() {
            ", config.toml"
        } else {
            ""
        },
        if result.trained.is_some() {
            ", loss.csv"
        } else {
            ""
        },
        figures.join(", ")
    );
    Ok(())
}

/// A progress bar that appears only when the work lasts longer than a second.
struct Bar {
    quiet: bool,
    bar: Option<ProgressBar>,
    started: Instant,
    label: String,
    total: u64,
}

impl Bar {
    fn new(quiet: bool) -> Self {
        Bar {
            quiet,
            bar: None,
            started: Instant::now(),
            label: String::new(),
            total: 0,
        }
    }
}

impl Progress for Bar {
    fn begin(&mut self, label: &str, total: u64) {
        self.started = Instant::now();
        self.label = label.to_string();
        self.total = total;
    }

    fn update(&mut self, done: u64, loss: f64) {
        if self.quiet {
            return;
        }
        if self.bar.is_none() && self.started.elapsed() > Duration::from_secs(1) {
            let bar = ProgressBar::new(self.total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {pos}/{len} steps  {per_sec:>12}  loss {msg}  eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(self.label.clone());
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            bar.set_message(format!("{loss:.3e}"));
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
