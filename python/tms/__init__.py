"""tms — toy models of superposition (Elhage et al. 2022), from Python.

The same engine as the ``tms`` command line: training runs in Rust on all cores with the GIL
released, and the results come back as numpy arrays and plain dicts.

>>> import tms
>>> run = tms.reproduce("intro")          # the paper's first figure, with its verdict
>>> run.reproduced, run.W.shape            # W is [instances, features, hidden]
(True, (50, 5, 2))
>>> run.save("runs/intro")                 # the run folder the CLI writes

Functions: :func:`train`, :func:`reproduce`, :func:`analyze`, :func:`sample`, :func:`load`,
:func:`experiments`. Long calls show a tqdm bar when tqdm is installed (``progress=False``
hides it, a callable receives ``(stage, done, total, loss)``, with ``loss`` the mean training
loss of the latest block of steps, NaN before the first), and Ctrl-C stops them within about
50 ms of work and raises ``KeyboardInterrupt`` without killing a notebook's kernel (nothing is
kept of an interrupted run).
Errors in configs and weights raise ``ValueError`` with the CLI's message, naming the field
(and, for TOML text or files, the line).
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import re
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

import numpy as np

from . import _native

__all__ = [
    "Run",
    "LossCurve",
    "Experiment",
    "train",
    "reproduce",
    "analyze",
    "sample",
    "load",
    "experiments",
]
__version__: str = _native.__version__

#: A config: a dict with the TOML file's structure, TOML text, or the path of a TOML file.
Config = Union[Mapping[str, Any], str, "os.PathLike[str]"]
#: A progress callback: ``(stage, steps done, steps in all, latest mean loss)``.
ProgressCallback = Callable[[str, int, int, float], Any]
#: ``None`` (a tqdm bar when tqdm is installed), ``False`` (nothing), ``True`` (a tqdm bar,
#: an error without tqdm), or a callback.
Progress = Union[None, bool, ProgressCallback]


class LossCurve(NamedTuple):
    """Training loss: ``loss[k, i]`` is instance i's mean loss over the block ending at ``steps[k]``."""

    steps: np.ndarray
    loss: np.ndarray


class Experiment(NamedTuple):
    """A paper experiment: its name (for :func:`reproduce`), section and one-line summary."""

    name: str
    section: str
    summary: str


def _count(name: str, value: Optional[int], least: int = 0) -> None:
    """A ValueError for a negative (or too small) count, seed or index."""
    if value is not None and value < least:
        raise ValueError(f"{name}={value} is out of range: must be at least {least}")


def _python_words(message: str) -> str:
    """The engine's messages speak of the CLI's --layout flag; here it is a keyword."""
    return re.sub(r"--layout(?: ([a-z-]+))?", lambda m: f"layout={m.group(1)!r}" if m.group(1) else "layout=", message)


def _array(data: bytes, shape: List[int]) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)


class Run:
    """A finished run: weights, per-instance metrics, loss curve and, for experiments, the verdict.

    Attributes:
        name: the experiment, the config's ``name``, or ``"analyze"``.
        W: ``[instances, features, hidden]`` float32 (the notebook's layout).
        b: ``[instances, features]``, or ``None`` (weights analysed without a bias).
        W_dec: the decoder ``[instances, features, hidden]`` of untied models, else ``None``.
        metrics: one dict per instance, with the fields of ``metrics.json``'s ``instances``
            (``feature_norms``, ``interference``, ``dimensions_per_feature``,
            ``fractional_dimensionality``, ``geometry``, ``structures``, ``final_loss``, ...).
        record: the whole ``metrics.json`` (training settings, verdict, figures, ...).
        verdict: ``{"reproduced": bool, "checks": [...]}`` for experiments, else ``None``.
        loss: the :class:`LossCurve`, or ``None`` when nothing was trained.
        config: the TOML config that reproduces the run (``tms train`` reads it), or ``None``.
        stages: later stages of multi-stage experiments (each a :class:`Run`).
        layout: for :func:`analyze`, ``(layout, why)``: how ``W`` was read.
    """

    def __init__(
        self,
        *,
        arrays: Dict[str, np.ndarray],
        record: Dict[str, Any],
        loss: Optional[LossCurve],
        config: Optional[str],
        stages: List["Run"],
        native: Any = None,
        folder: Optional[pathlib.Path] = None,
        layout: Optional[Tuple[str, str]] = None,
    ) -> None:
        self.W: np.ndarray = arrays["W"]
        self.b: Optional[np.ndarray] = arrays.get("b")
        self.W_dec: Optional[np.ndarray] = arrays.get("W_dec")
        self.record: Dict[str, Any] = record
        self.name: str = record.get("experiment", "")
        self.metrics: List[Dict[str, Any]] = record.get("instances", [])
        self.verdict: Optional[Dict[str, Any]] = record.get("verdict")
        self.loss: Optional[LossCurve] = loss
        self.config: Optional[str] = config
        self.stages: List[Run] = stages
        self.layout: Optional[Tuple[str, str]] = layout
        self._native = native
        self._folder = folder

    @classmethod
    def _from_native(cls, native: Any) -> "Run":
        arrays = {name: _array(data, shape) for name, data, shape in native.arrays()}
        curve = native.loss_curve()
        loss = None
        if curve is not None:
            steps, values = curve
            loss = LossCurve(np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64))
        layout = (native.layout[0], _python_words(native.layout[1])) if native.layout[0] else None
        return cls(
            arrays=arrays,
            record=json.loads(native.metrics_json()),
            loss=loss,
            config=native.config_toml(),
            stages=[cls._from_native(s) for s in native.stages()],
            native=native,
            layout=layout,
        )

    @property
    def reproduced(self) -> Optional[bool]:
        """Whether the experiment's verdict holds (``None`` for runs without a verdict)."""
        return None if self.verdict is None else bool(self.verdict["reproduced"])

    def summary(self) -> str:
        """The table the CLI prints: one line per instance (loss, represented features, D*,
        geometry). For a run read by :func:`load`, a shorter table from its metrics."""
        if self._native is not None:
            return self._native.summary()
        lines = [f"{'inst':>5} {'loss':>11} {'represented':>12} {'D*':>7}  geometry"]
        for m in self.metrics:
            loss = m.get("final_loss")
            lines.append(
                f"{m['index']:>5} {'–' if loss is None else format(loss, '.3e'):>11} "
                f"{m['represented']:>8}/{len(m['feature_norms'])} "
                f"{m['dimensions_per_feature']:>7.3f}  {m.get('geometry', '')}"
            )
        return "\n".join(lines) + "\n"

    def save(self, dir: Union[str, "os.PathLike[str]"], force: bool = False) -> pathlib.Path:
        """Write the run folder the CLI writes (weights.safetensors, metrics.json, config.toml,
        loss.csv, figures), atomically. ``force`` replaces an existing folder; without it an
        existing folder raises ``FileExistsError``. Returns the folder's path."""
        target = pathlib.Path(dir)
        if target.exists() and not force:
            raise FileExistsError(f"{target} exists; pass force=True to replace it")
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"{target} exists and is not a folder")
        if self._native is not None:
            return pathlib.Path(self._native.save(str(target), force))
        if self._folder is None:
            raise ValueError("this run has no folder to save")
        # A loaded run: copy its folder next to the target, then swap it in.
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            shutil.copytree(self._folder, staging, dirs_exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def __repr__(self) -> str:
        i, n, m = self.W.shape
        verdict = ""
        if self.verdict is not None:
            verdict = ", reproduced" if self.reproduced else ", NOT reproduced"
        return f"<tms.Run {self.name!r}: {i} instance(s), n={n}, m={m}{verdict}>"


class _Bar:
    """A tqdm bar per stage, as a progress callback."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self._bar: Any = None
        self._label: Optional[str] = None

    def __call__(self, label: str, done: int, total: int, loss: float) -> None:
        if self._bar is None or label != self._label:
            self.close()
            self._bar = self._tqdm(total=total, desc=label, unit="step", leave=False)
            self._label = label
        self._bar.n = done
        self._bar.set_postfix_str(f"loss {loss:.3e}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _with_progress(progress: Progress, call: Callable[[Optional[ProgressCallback]], Any]) -> Any:
    if progress is False:
        return call(None)
    if callable(progress):
        return call(progress)
    try:
        bar = _Bar()
    except ImportError:
        if progress is True:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from None
        return call(None)
    try:
        return call(bar)
    finally:
        bar.close()


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not a config value")


def _config_text(config: Config) -> Tuple[str, str]:
    """TOML text and its origin (for error messages) of any accepted config form."""
    if isinstance(config, Mapping):
        try:
            text = json.dumps(config, default=_json_default, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"the config dict cannot be written as TOML: {e} (NaN and infinity have no TOML form)"
                if "JSON compliant" in str(e)
                else f"the config dict cannot be written as TOML: {e}"
            ) from None
        return _native.toml_of_json(text), "<dict>"
    if isinstance(config, os.PathLike) or (
        isinstance(config, str) and "\n" not in config and config.strip().endswith(".toml")
    ):
        path = pathlib.Path(config)
        return path.read_text(encoding="utf-8"), str(path)
    if isinstance(config, str):
        return config, "<string>"
    raise TypeError(f"a config is a dict, TOML text or a path, not {type(config).__name__}")


def _located(call: Callable[[], Any], text: str, origin: str) -> Any:
    """Run ``call``; for a dict config, say where in the dict a located error points (its
    line number refers to the TOML written from the dict, which the user never saw)."""
    try:
        return call()
    except ValueError as e:
        message = str(e)
        prefix = f"{origin}:"
        if origin != "<dict>" or not message.startswith(prefix):
            raise
        line, _, rest = message[len(prefix):].partition(":")
        rest = rest.split(":", 1)[1] if rest[:1].isdigit() else rest
        lines = text.splitlines()
        table = ""
        if line.isdigit():
            for k in range(min(int(line), len(lines)) - 1, -1, -1):
                if lines[k].startswith("["):
                    table = f" in {lines[k].strip()}"
                    break
        raise ValueError(f"config dict{table}:{rest}") from None


def train(
    config: Config,
    *,
    seed: Optional[int] = None,
    steps: Optional[int] = None,
    threads: Optional[int] = None,
    progress: Progress = None,
) -> Run:
    """Train the models a config describes, as ``tms train CONFIG`` does.

    Args:
        config: a dict with the TOML config's structure (``{"model": {"features": 5,
            "hidden": 2}, "train": {"steps": 10000}, "sweep": {...}}``), TOML text, or the
            path of a ``.toml`` file. See the README's config reference.
        seed, steps: override ``[train].seed`` and ``[train].steps``.
        threads: worker threads (default: one per core); results do not depend on it.
        progress: see the module's docstring.

    Returns:
        the :class:`Run`; ``run.save(dir)`` writes the usual run folder.

    Raises:
        ValueError: the config is invalid (the message names the field).
        RuntimeError: training diverged (a NaN or infinite loss; the message names the
            instance and the steps).
        KeyboardInterrupt: Ctrl-C; training stops within about 50 ms of work.
    """
    _count("seed", seed)
    _count("steps", steps, 1)
    _count("threads", threads, 1)
    text, origin = _config_text(config)
    native = _with_progress(
        progress,
        lambda cb: _located(
            lambda: _native.train(text, origin, seed=seed, steps=steps, threads=threads, progress=cb),
            text,
            origin,
        ),
    )
    return Run._from_native(native)


def reproduce(
    name: str,
    profile: str = "quick",
    *,
    seed: Optional[int] = None,
    restarts: Optional[int] = None,
    threads: Optional[int] = None,
    progress: Progress = None,
) -> Run:
    """Run a paper experiment (see :func:`experiments`) and judge it, as ``tms reproduce NAME``.

    Args:
        name: the experiment, e.g. ``"intro"``, ``"phase-2-1"``, ``"uniform"``.
        profile: ``"quick"`` (minutes on a laptop) or ``"paper"`` (the paper's settings).
        seed: seed of every random stream (default: the experiment's, 0).
        restarts: restarts per sweep point; figures and verdict use the lowest-loss one.
        threads, progress: as in :func:`train`.

    Returns:
        the :class:`Run` with ``verdict`` and ``reproduced`` set. Experiments with later
        stages list them in ``run.stages``. Ctrl-C stops any of them (raising
        ``KeyboardInterrupt``); an experiment that trains no toy model (``orthogonal``,
        ``sae-synthetic``) runs to its end.
    """
    _count("seed", seed)
    _count("restarts", restarts, 1)
    _count("threads", threads, 1)
    native = _with_progress(
        progress,
        lambda cb: _native.reproduce(
            name, profile, seed=seed, restarts=restarts, threads=threads, progress=cb
        ),
    )
    return Run._from_native(native)


def analyze(
    W: Union[np.ndarray, Mapping[str, np.ndarray]],
    b: Optional[np.ndarray] = None,
    *,
    W_dec: Optional[np.ndarray] = None,
    layout: Optional[str] = None,
) -> Run:
    """Metrics and geometry of any weights, as ``tms analyze`` computes them for a file.

    Args:
        W: ``[instances, features, hidden]`` (the notebook's layout), ``[instances, hidden,
            features]`` (ARENA's), or one model's ``[features, hidden]`` or ``[hidden,
            features]``; or a dict of arrays named as in a file (``{"W1": ..., "W2": ...}``
            for the |x| model). Any float dtype; read as float32.
        b: the output bias, ``[instances, features]`` or ``[features]``.
        W_dec: the decoder of an untied model, in ``W``'s layout.
        layout: ``"notebook"``, ``"arena"``, ``"features-hidden"`` or ``"hidden-features"``;
            needed for a square ``W``. Without it the layout is read from the shapes
            (features ≥ hidden, checked against ``b``); ``run.layout`` says which and why.

    Returns:
        a :class:`Run` named ``"analyze"`` whose ``metrics`` hold, per instance, the feature
        norms, interference, D*, fractional dimensionalities, ``geometry`` (a description)
        and ``structures`` (the polytopes found).
    """
    if isinstance(W, Mapping):
        if b is not None or W_dec is not None:
            raise TypeError("give b and W_dec inside the dict of arrays, not beside it")
        named = dict(W)
    else:
        named = {"W": W}
        if b is not None:
            named["b"] = b
        if W_dec is not None:
            named["W_dec"] = W_dec
    arrays = []
    for key, value in named.items():
        a = np.ascontiguousarray(value, dtype="<f4")
        arrays.append((key, list(a.shape), a.tobytes()))
    try:
        native = _native.analyze(arrays, layout)
    except ValueError as e:
        raise ValueError(_python_words(str(e))) from None
    return Run._from_native(native)


def sample(config: Config, rows: int, *, instance: int = 0, seed: Optional[int] = None) -> np.ndarray:
    """The first ``rows`` training rows of one instance of a config, ``[rows, features]``.

    They are drawn exactly as training draws them (the same stream, batch by batch; for a
    fixed dataset, its minibatches in order), so ``sample(cfg, batch_size)`` is the first
    batch the model sees. Adversarial perturbations are not applied. At most 2^28 values
    (rows × features) per call.
    """
    _count("rows", rows)
    _count("instance", instance)
    _count("seed", seed)
    text, origin = _config_text(config)
    data, shape = _located(
        lambda: _native.sample(text, origin, rows, instance=instance, seed=seed), text, origin
    )
    return _array(data, shape)


def _read_loss_csv(path: pathlib.Path, instances: int) -> Optional[LossCurve]:
    if not path.is_file():
        return None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            table = list(csv.reader(f))
        body = table[1:]
        if not table or len(table[0]) != instances + 1 or any(len(r) != instances + 1 for r in body):
            raise ValueError(f"expected a step column and {instances} loss columns on every line")
        steps = np.array([int(r[0]) for r in body], dtype=np.int64)
        values = np.array([[float(v) for v in r[1:]] for r in body], dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a loss curve of tms ({e})") from None
    return LossCurve(steps, values.reshape(len(body), instances))


def load(run_dir: Union[str, "os.PathLike[str]"]) -> Run:
    """Read a run folder written by the CLI or :meth:`Run.save` (weights, metrics, loss
    curve, config, verdict, later stages)."""
    folder = pathlib.Path(run_dir)
    weights = folder / "weights.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{folder} is not a run folder: it has no weights.safetensors")
    arrays = {name: _array(data, shape) for name, data, shape in _native.load_weights(str(weights))}
    metrics = folder / "metrics.json"
    try:
        record = json.loads(metrics.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder} is not a run folder: it has no metrics.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{metrics}: not valid JSON ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("instances", []), list):
        raise ValueError(f"{metrics}: not the metrics of a tms run (no object with `instances`)")
    config = folder / "config.toml"
    stages_dir = folder / "stages"
    stages = []
    if stages_dir.is_dir():
        stages = [load(p) for p in sorted(stages_dir.iterdir()) if (p / "weights.safetensors").is_file()]
    return Run(
        arrays=arrays,
        record=record,
        loss=_read_loss_csv(folder / "loss.csv", arrays["W"].shape[0]),
        config=config.read_text(encoding="utf-8") if config.is_file() else None,
        stages=stages,
        folder=folder,
    )


def experiments() -> List[Experiment]:
    """The paper experiments :func:`reproduce` runs, in the paper's order."""
    return [Experiment(*e) for e in _native.experiments_list()]
