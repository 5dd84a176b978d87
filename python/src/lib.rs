//! `tms._native`: the engine behind the `tms` Python package. `python/tms/__init__.py` wraps
//! it with numpy arrays, type hints and progress bars; this layer stays small.
//!
//! Arrays cross the boundary as little-endian f32 `bytes` with a shape. Long work runs on a
//! worker thread (which spreads over all cores as the CLI does), while the calling thread
//! releases the GIL between polls, passes progress to a Python callback and turns Ctrl-C
//! into a stop request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use tms::config::{locate, ConfigError, InstanceSpec, TrainConfig};
use tms::experiments::{self, ExperimentOptions, Profile};
use tms::output::foreign::{self, Layout};
use tms::output::weights::{Weights, WeightsError};
use tms::pipeline::{
    analyze_weights, metrics_file, standard_figures, summary_table, train_run, write_run, RunResult,
};
use tms::train::{training_rows, Progress, TrainControl};

/// The latest progress of the worker, read by the calling thread.
#[derive(Clone, Default)]
struct Report {
    label: String,
    done: u64,
    total: u64,
    loss: f64,
    /// Bumped on every change, so an unchanged report is not passed on again.
    version: u64,
}

fn lock(report: &Mutex<Report>) -> MutexGuard<'_, Report> {
    report
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The worker's [`Progress`]: writes into the shared report.
struct Shared<'a>(&'a Mutex<Report>);

impl Progress for Shared<'_> {
    fn begin(&mut self, label: &str, total: u64) {
        let mut r = lock(self.0);
        r.label = label.to_string();
        r.total = total;
        r.done = 0;
        r.version += 1;
    }

    fn update(&mut self, done: u64, loss: f64) {
        let mut r = lock(self.0);
        r.done = done;
        r.loss = loss;
        r.version += 1;
    }

    fn end(&mut self) {}
}

/// Run `work` on a worker thread. Meanwhile this thread waits with the GIL released, calls
/// `callback(label, done, total, loss)` when the progress changed (at most every 100 ms), and
/// checks for Ctrl-C; a KeyboardInterrupt, or an exception from the callback, sets the flag
/// `work` passes on as its training's abort (stop within about 50 ms of work, keep nothing),
/// waits for the worker, and is raised.
fn drive<T: Send>(
    py: Python<'_>,
    callback: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&AtomicBool, &mut dyn Progress) -> anyhow::Result<T> + Send,
) -> PyResult<T> {
    let stop = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let report = Mutex::new(Report::default());
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let result = work(&stop, &mut Shared(&report));
            finished.store(true, Ordering::Release);
            result
        });
        let mut seen = 0;
        let mut failure: Option<PyErr> = None;
        loop {
            let done = py.detach(|| {
                let start = Instant::now();
                while !finished.load(Ordering::Acquire) {
                    if start.elapsed() >= Duration::from_millis(100) {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                true
            });
            if failure.is_none() {
                let r = lock(&report).clone();
                if let (Some(cb), true) = (callback, r.version != seen) {
                    seen = r.version;
                    if let Err(e) = cb.call1((r.label, r.done, r.total, r.loss)) {
                        failure = Some(e);
                    }
                }
                if failure.is_none() {
                    failure = py.check_signals().err();
                }
                if failure.is_some() {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            if done {
                break;
            }
        }
        let result = worker
            .join()
            .map_err(|_| PyRuntimeError::new_err("tms: the worker thread panicked (a bug)"));
        match failure {
            Some(e) => Err(e),
            None => result?.map_err(to_python),
        }
    })
}

/// A Python exception for an error of the engine: `ValueError` for a bad config or bad
/// weights, `OSError` for a file that cannot be read or written, `RuntimeError` otherwise
/// (e.g. a diverged run). The message is the whole chain, as the CLI prints it.
fn to_python(e: anyhow::Error) -> PyErr {
    let message = format!("{e:#}");
    for cause in e.chain() {
        if cause.downcast_ref::<ConfigError>().is_some() {
            return PyValueError::new_err(message);
        }
        match cause.downcast_ref::<WeightsError>() {
            Some(WeightsError::Io(_)) => return PyOSError::new_err(message),
            Some(_) => return PyValueError::new_err(message),
            None => {}
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return PyOSError::new_err(message);
        }
    }
    PyRuntimeError::new_err(message)
}

/// A finished run in memory: weights, metrics, loss curve, figures, verdict.
#[pyclass(module = "tms._native", frozen)]
struct NativeRun {
    run: RunResult,
    /// How analysed weights were read (layout name and why); empty for trained runs.
    layout: (String, String),
}

/// Named arrays as they go to Python: `[(name, little-endian f32 bytes, shape)]`.
type Arrays<'py> = Vec<(&'static str, Bound<'py, PyBytes>, Vec<usize>)>;

/// `(bytes, shape)` of an f32 array.
fn array<'py>(
    py: Python<'py>,
    values: &[f32],
    shape: Vec<usize>,
) -> (Bound<'py, PyBytes>, Vec<usize>) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    (PyBytes::new(py, &bytes), shape)
}

#[pymethods]
impl NativeRun {
    /// The run's name (experiment, config name, or `analyze`).
    #[getter]
    fn name(&self) -> String {
        self.run.experiment.clone()
    }

    /// `W`, `b` and `W_dec` as `{name: (bytes, shape)}` (`b` and `W_dec` when present).
    fn arrays<'py>(&self, py: Python<'py>) -> Arrays<'py> {
        let w = &self.run.weights;
        let shape = vec![w.instances, w.features, w.hidden];
        let mut out = Vec::new();
        let (bytes, s) = array(py, &w.w, shape.clone());
        out.push(("W", bytes, s));
        if let Some(b) = &w.b {
            let (bytes, s) = array(py, b, vec![w.instances, w.features]);
            out.push(("b", bytes, s));
        }
        if let Some(d) = &w.w_dec {
            let (bytes, s) = array(py, d, shape);
            out.push(("W_dec", bytes, s));
        }
        out
    }

    /// The run's `metrics.json`, as the run folder would hold it.
    fn metrics_json(&self) -> PyResult<String> {
        serde_json::to_string(&metrics_file(&self.run))
            .map_err(|e| PyRuntimeError::new_err(format!("cannot write the metrics: {e}")))
    }

    /// The loss curve: (steps, `[points][instances]` losses as f64), or `None` without training.
    fn loss_curve(&self) -> Option<(Vec<u64>, Vec<Vec<f64>>)> {
        let t = self.run.trained.as_ref()?;
        Some((t.log_steps.clone(), t.log_loss.clone()))
    }

    /// The config that reproduces the run, as TOML.
    fn config_toml(&self) -> Option<String> {
        self.run.config.as_ref().map(TrainConfig::to_toml)
    }

    /// The terminal table of the CLI.
    fn summary(&self) -> String {
        summary_table(&self.run)
    }

    /// `(layout, why)` for analysed weights.
    #[getter]
    fn layout(&self) -> (String, String) {
        self.layout.clone()
    }

    /// Later stages (trained on this run's results), in order.
    fn stages(&self) -> Vec<NativeRun> {
        self.run
            .stages
            .iter()
            .map(|r| NativeRun {
                run: r.clone(),
                layout: Default::default(),
            })
            .collect()
    }

    /// Write the run folder (atomically; `force` replaces an existing folder); returns its path.
    fn save(&self, py: Python<'_>, dir: PathBuf, force: bool) -> PyResult<PathBuf> {
        py.detach(|| write_run(&self.run, &dir, force))
            .map_err(to_python)
    }
}

/// The CLI's limit on `--threads`.
fn check_threads(threads: Option<usize>) -> PyResult<()> {
    match threads {
        Some(t) if !(1..=1024).contains(&t) => Err(PyValueError::new_err(format!(
            "threads={t} is out of range: allowed 1 to 1024 (None: one per core)"
        ))),
        _ => Ok(()),
    }
}

/// Parse a TOML config as `tms train` does (errors located in `origin`), with overrides.
fn parse_config(
    text: &str,
    origin: &str,
    seed: Option<u64>,
    steps: Option<u64>,
) -> PyResult<(TrainConfig, Vec<InstanceSpec>)> {
    let mut config =
        TrainConfig::from_toml(text, origin).map_err(|e| PyValueError::new_err(e.to_string()))?;
    if let Some(s) = seed {
        config.train.seed = s;
    }
    if let Some(s) = steps {
        config.train.steps = s;
    }
    let specs = config.resolve().map_err(|mut e| {
        e.location = Some(locate(text, origin, &e.field));
        PyValueError::new_err(e.to_string())
    })?;
    Ok((config, specs))
}

/// Train the models of a TOML config.
#[pyfunction]
#[pyo3(signature = (toml, origin, seed=None, steps=None, threads=None, progress=None))]
fn train(
    py: Python<'_>,
    toml: &str,
    origin: &str,
    seed: Option<u64>,
    steps: Option<u64>,
    threads: Option<usize>,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<NativeRun> {
    check_threads(threads)?;
    let (config, _) = parse_config(toml, origin, seed, steps)?;
    let run = drive(py, progress.as_ref(), |stop, progress| {
        let control = TrainControl {
            abort: Some(stop),
            threads,
            stop: None,
            checkpoint: None,
        };
        let mut run = train_run(&config.name, &config, None, control, progress)?;
        run.figures = standard_figures(&run);
        Ok(run)
    })?;
    Ok(NativeRun {
        run,
        layout: Default::default(),
    })
}

/// Run a paper experiment and judge it.
#[pyfunction]
#[pyo3(signature = (name, profile="quick", seed=None, restarts=None, threads=None, progress=None))]
fn reproduce(
    py: Python<'_>,
    name: &str,
    profile: &str,
    seed: Option<u64>,
    restarts: Option<usize>,
    threads: Option<usize>,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<NativeRun> {
    let experiment = experiments::find(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown experiment {name:?}; known: {}",
            experiments::names()
        ))
    })?;
    let profile = Profile::from_name(profile).ok_or_else(|| {
        PyValueError::new_err(format!("unknown profile {profile:?}; known: quick, paper"))
    })?;
    check_threads(threads)?;
    if restarts == Some(0) {
        return Err(PyValueError::new_err("restarts must be at least 1"));
    }
    let options = ExperimentOptions {
        profile,
        seed,
        restarts,
    };
    let config = match experiment.configure(&options) {
        Some(c) => {
            c.resolve()
                .map_err(|e| PyValueError::new_err(format!("experiment {name}: {e}")))?;
            Some(c)
        }
        None => None,
    };
    let run = drive(py, progress.as_ref(), |stop, progress| match &config {
        Some(config) => {
            let control = TrainControl {
                abort: Some(stop),
                threads,
                stop: None,
                checkpoint: None,
            };
            experiment.run(config, &options, None, control, progress)
        }
        None => experiment.compute(&options, progress),
    })?;
    Ok(NativeRun {
        run,
        layout: Default::default(),
    })
}

/// Metrics and geometry of weights given as `(name, shape, little-endian f32 bytes)`
/// arrays, read as `tms analyze` reads a file with those arrays.
#[pyfunction]
#[pyo3(signature = (arrays, layout=None))]
fn analyze(
    py: Python<'_>,
    arrays: Vec<(String, Vec<usize>, Bound<'_, PyBytes>)>,
    layout: Option<&str>,
) -> PyResult<NativeRun> {
    let layout = match layout {
        None => None,
        Some(name) => Some(Layout::from_name(name).ok_or_else(|| {
            PyValueError::new_err(format!(
                "unknown layout {name:?}; known: notebook, arena, features-hidden, hidden-features"
            ))
        })?),
    };
    let mut named = Vec::new();
    for (name, shape, bytes) in arrays {
        let bytes = bytes.as_bytes();
        if bytes.len() % 4 != 0 {
            return Err(PyValueError::new_err(format!(
                "{name}: {} bytes is not a whole number of float32 values",
                bytes.len()
            )));
        }
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        named.push(foreign::NamedArray {
            name,
            shape,
            values,
        });
    }
    let imported = foreign::from_memory(named, layout).map_err(PyValueError::new_err)?;
    let how = (imported.layout.name().to_string(), imported.reason.clone());
    let run = py.detach(|| {
        let mut run = analyze_weights(imported.weights);
        run.figures = standard_figures(&run);
        run
    });
    Ok(NativeRun { run, layout: how })
}

/// The first `rows` training rows of instance `instance` of a TOML config, as
/// `(bytes, [rows, features])`.
#[pyfunction]
#[pyo3(signature = (toml, origin, rows, instance=0, seed=None))]
fn sample<'py>(
    py: Python<'py>,
    toml: &str,
    origin: &str,
    rows: usize,
    instance: usize,
    seed: Option<u64>,
) -> PyResult<(Bound<'py, PyBytes>, Vec<usize>)> {
    let (config, specs) = parse_config(toml, origin, seed, None)?;
    let spec = specs.get(instance).ok_or_else(|| {
        PyValueError::new_err(format!(
            "instance {instance} does not exist: the config has {} instance(s)",
            specs.len()
        ))
    })?;
    let n = spec.feature_probability.len();
    if rows.checked_mul(n).is_none_or(|v| v > 1 << 28) {
        return Err(PyValueError::new_err(format!(
            "{rows} rows × {n} features is more than 2^28 values"
        )));
    }
    let x = py.detach(|| training_rows(&config.train, spec, rows));
    Ok(array(py, &x, vec![rows, n]))
}

/// The arrays of a tms weights file (`weights.safetensors` of a run folder), as
/// `[(name, bytes, shape)]`.
#[pyfunction]
fn load_weights(py: Python<'_>, path: PathBuf) -> PyResult<Arrays<'_>> {
    let weights = Weights::load(&path).map_err(|e| to_python(e.into()))?;
    let run = RunResult::analysed("load", None, weights, Vec::new());
    Ok(NativeRun {
        run,
        layout: Default::default(),
    }
    .arrays(py))
}

/// A config given as JSON (a Python dict with the TOML file's structure), as TOML text.
#[pyfunction]
fn toml_of_json(json: &str) -> PyResult<String> {
    let value: toml::Value = serde_json::from_str(json).map_err(|e| {
        PyValueError::new_err(format!(
            "the config dict cannot be written as TOML ({e}); use numbers, strings, booleans, lists and dicts, no None"
        ))
    })?;
    if !value.is_table() {
        return Err(PyValueError::new_err(
            "a config is a dict of tables ([model], [train], ...)",
        ));
    }
    toml::to_string(&value).map_err(|e| {
        PyValueError::new_err(format!("the config dict cannot be written as TOML: {e}"))
    })
}

/// The paper experiments: `(name, section, summary)`.
#[pyfunction]
fn experiments_list() -> Vec<(&'static str, &'static str, &'static str)> {
    experiments::registry()
        .iter()
        .map(|e| (e.name, e.section, e.summary))
        .collect()
}

/// The engine of the `tms` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeRun>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(reproduce, m)?)?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    m.add_function(wrap_pyfunction!(sample, m)?)?;
    m.add_function(wrap_pyfunction!(load_weights, m)?)?;
    m.add_function(wrap_pyfunction!(toml_of_json, m)?)?;
    m.add_function(wrap_pyfunction!(experiments_list, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
