//! `tms`: the command line. A thin layer mapping subcommands onto library calls.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tms::config::TrainConfig;
use tms::experiments::{self, ExperimentOptions};
use tms::output::weights::Weights;
use tms::output::{check_out_path, default_out_path};
use tms::pipeline::{
    analyze_weights, standard_figures, summary_table, train_run, write_run, RunResult,
};
use tms::train::Progress;

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

#[derive(Subcommand)]
enum Command {
    /// List the paper experiments, one line each
    List,
    /// Run a paper experiment (or `all`) and write its run folder
    Reproduce {
        /// Experiment name (see `tms list`), or `all`
        experiment: String,
        /// Seed of every random stream
        #[arg(long)]
        seed: Option<u64>,
        /// Restarts per sweep point; figures and verdicts use the lowest-loss one
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        restarts: Option<u32>,
        /// Worker threads (default: one per core)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: Option<u32>,
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
        /// Worker threads (default: one per core)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: Option<u32>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Compute metrics and figures for a weights file (W as [instances, features, hidden])
    Analyze {
        /// A safetensors file with `W` (and optionally `b` or `b_final`)
        weights: PathBuf,
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
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

/// Exit status of a run that finished but did not reproduce the paper's result.
const NOT_REPRODUCED: u8 = 3;

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::List => {
            for e in experiments::registry() {
                println!("{:<16} {:<22} {}", e.name, e.section, e.summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reproduce {
            experiment,
            seed,
            restarts,
            threads,
            output,
        } => {
            let options = ExperimentOptions {
                seed,
                restarts: restarts.map(|r| r as usize),
            };
            let threads = threads.map(|t| t as usize);
            let chosen: Vec<_> = if experiment == "all" {
                experiments::registry().iter().collect()
            } else {
                match experiments::find(&experiment) {
                    Some(e) => vec![e],
                    None => bail!(
                        "unknown experiment {experiment:?}; known: {}, all (see `tms list`)",
                        experiments::names()
                    ),
                }
            };
            let all = experiment == "all";
            let base = match (&output.out, all) {
                (Some(dir), true) => dir.clone(),
                (None, true) => default_out_path(Path::new("runs"), "all"),
                _ => PathBuf::from("runs"),
            };
            let outs: Vec<PathBuf> = chosen
                .iter()
                .map(|e| match (&output.out, all) {
                    (Some(dir), false) => dir.clone(),
                    (None, false) => default_out_path(&base, e.name),
                    (_, true) => base.join(e.name),
                })
                .collect();
            for o in &outs {
                check_out_path(o, output.force)?;
            }
            let mut reproduced = true;
            for (e, out) in chosen.iter().zip(&outs) {
                let mut bar = Bar::new(output.quiet);
                let result = e.run(&options, threads, &mut bar)?;
                reproduced &= result.verdict.as_ref().is_some_and(|v| v.reproduced);
                finish(&result, out, output.force)?;
            }
            Ok(if reproduced {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(NOT_REPRODUCED)
            })
        }
        Command::Train {
            config,
            seed,
            steps,
            threads,
            output,
        } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("cannot read the config {}", config.display()))?;
            let mut cfg = TrainConfig::from_toml(&text, &config.display().to_string())?;
            if let Some(s) = seed {
                cfg.train.seed = s;
            }
            if let Some(s) = steps {
                cfg.train.steps = s;
            }
            cfg.resolve()
                .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
            let out = output
                .out
                .clone()
                .unwrap_or_else(|| default_out_path(Path::new("runs"), &cfg.name));
            check_out_path(&out, output.force)?;
            let mut bar = Bar::new(output.quiet);
            let mut result = train_run(&cfg.name, &cfg, threads.map(|t| t as usize), &mut bar)?;
            result.figures = standard_figures(&result);
            finish(&result, &out, output.force)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Analyze { weights, output } => {
            let loaded = Weights::load(&weights)
                .with_context(|| format!("cannot analyse {}", weights.display()))?;
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
    }
}

/// Write the run folder and print the summary.
fn finish(result: &RunResult, out: &Path, force: bool) -> anyhow::Result<()> {
    let path = write_run(result, out, force)?;
    println!("{}", result.experiment);
    if let (Some(t), Some(cfg)) = (&result.trained, &result.config) {
        let secs = t.elapsed.as_secs_f64();
        println!(
            "trained {} instance(s) of {} (n={}, m={}) for {} steps, batch {}, in {:.2} s ({:.0} steps/s, {} kernel)",
            t.specs.len(),
            cfg.model.kind.name(),
            cfg.model.features,
            cfg.model.hidden,
            cfg.train.steps,
            cfg.train.batch_size,
            secs,
            cfg.train.steps as f64 / secs.max(1e-9),
            t.variant.name()
        );
        println!(
            "optimizer: AdamW(lr={}, betas=({}, {}), eps={:e}, weight_decay={}), {:?} schedule, seed {}",
            cfg.train.lr,
            cfg.train.beta1,
            cfg.train.beta2,
            cfg.train.eps,
            cfg.train.weight_decay,
            cfg.train.schedule,
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
