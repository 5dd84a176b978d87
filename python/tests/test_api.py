"""The Python API against the CLI: same weights bit for bit, same errors, round trips,
progress and Ctrl-C. Needs the CLI binary: TMS_BIN, or target/release/tms of this checkout
(`cargo build --release`)."""

import os
import pathlib
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tms

ROOT = pathlib.Path(__file__).resolve().parents[2]

SMALL = {
    "name": "small",
    "model": {"kind": "relu-output", "features": 6, "hidden": 3},
    "train": {"steps": 300, "batch_size": 256, "seed": 7},
    "data": {"feature_probability": 0.3},
    "sweep": {"feature_probability": [1.0, 0.3, 0.05]},
}

SMALL_TOML = """\
name = "small"

[model]
kind = "relu-output"
features = 6
hidden = 3

[train]
steps = 300
batch_size = 256
seed = 7

[data]
feature_probability = 0.3

[sweep]
feature_probability = [1.0, 0.3, 0.05]
"""


def cli() -> str:
    path = os.environ.get("TMS_BIN") or str(ROOT / "target" / "release" / "tms")
    if not os.access(path, os.X_OK):
        pytest.fail(f"the tms binary is needed at {path} (cargo build --release, or set TMS_BIN)")
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([cli(), *args], capture_output=True, text=True)


def test_reproduce_intro_writes_the_clis_weights_bit_for_bit(tmp_path):
    run = tms.reproduce("intro", progress=False)
    assert run.reproduced is True
    assert run.W.shape == (50, 5, 2) and run.W.dtype == np.float32
    assert run.b.shape == (50, 5)
    assert len(run.metrics) == 50 and "fractional_dimensionality" in run.metrics[0]
    assert [c["name"] for c in run.verdict["checks"]]
    run.save(tmp_path / "py")
    done = run_cli("reproduce", "intro", "--out", str(tmp_path / "cli"), "-q")
    assert done.returncode == 0, done.stderr
    py = (tmp_path / "py" / "weights.safetensors").read_bytes()
    assert py == (tmp_path / "cli" / "weights.safetensors").read_bytes()
    for name in ["metrics.json", "config.toml", "loss.csv", "features.png"]:
        assert (tmp_path / "py" / name).is_file()


def test_a_dict_toml_text_and_a_path_train_the_same_weights_as_tms_train(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_TOML)
    from_dict = tms.train(SMALL, progress=False)
    from_text = tms.train(SMALL_TOML, progress=False)
    from_path = tms.train(path, progress=False)
    from_str_path = tms.train(str(path), progress=False, threads=1)
    for other in [from_text, from_path, from_str_path]:
        assert np.array_equal(from_dict.W, other.W) and np.array_equal(from_dict.b, other.b)
    from_dict.save(tmp_path / "py")
    done = run_cli("train", str(path), "--out", str(tmp_path / "cli"), "-q")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "py" / "weights.safetensors").read_bytes() == (
        tmp_path / "cli" / "weights.safetensors"
    ).read_bytes()
    # Overrides act as the CLI's --seed and --steps.
    other_seed = tms.train(SMALL, seed=8, steps=100, progress=False)
    assert not np.array_equal(other_seed.W, from_dict.W)
    assert other_seed.loss.steps[-1] == 100


def test_a_saved_run_loads_back_with_its_weights_metrics_and_curve(tmp_path):
    run = tms.train(SMALL, progress=False)
    folder = run.save(tmp_path / "run")
    back = tms.load(folder)
    assert np.array_equal(back.W, run.W) and np.array_equal(back.b, run.b)
    assert back.metrics == run.metrics
    assert back.name == "small"
    # config.toml starts with a comment line; the settings are the run's.
    assert [l for l in back.config.splitlines() if not l.startswith("#")] == run.config.splitlines()
    assert np.array_equal(back.loss.steps, run.loss.steps)
    assert np.allclose(back.loss.loss, run.loss.loss, rtol=1e-6)
    assert back.loss.loss.shape == (len(run.loss.steps), 3)
    with pytest.raises(FileExistsError):
        run.save(folder)
    copy = back.save(tmp_path / "copy")
    assert (copy / "weights.safetensors").read_bytes() == (folder / "weights.safetensors").read_bytes()
    # The run's config trains the same weights again.
    again = tms.train(back.config, progress=False)
    assert np.array_equal(again.W, run.W)


def test_analyze_reads_every_layout_to_the_same_metrics():
    run = tms.train(SMALL, progress=False)
    notebook = tms.analyze(run.W, run.b)
    arena = tms.analyze(run.W.transpose(0, 2, 1), run.b)
    assert notebook.layout[0] == "notebook" and arena.layout[0] == "arena"
    for a, b in zip(notebook.metrics, arena.metrics):
        assert a["feature_norms"] == b["feature_norms"]
        assert a["fractional_dimensionality"] == b["fractional_dimensionality"]
        assert a["geometry"] == b["geometry"]
    one = tms.analyze(run.W[2].astype(np.float64))  # one model, [features, hidden], float64
    assert one.W.shape == (1, 6, 3)
    assert one.metrics[0]["feature_norms"] == notebook.metrics[2]["feature_norms"]
    assert "geometry" in one.metrics[0] and "structures" in one.metrics[0]
    with pytest.raises(ValueError, match="layout"):
        tms.analyze(np.eye(4, dtype=np.float32))
    square = tms.analyze(np.eye(4, dtype=np.float32), layout="features-hidden")
    assert square.metrics[0]["represented"] == 4
    with pytest.raises(ValueError, match="unknown array"):
        tms.analyze({"W": run.W, "bias": run.b})


def test_sample_gives_the_rows_training_sees():
    x = tms.sample(SMALL, 1000, instance=2)
    assert x.shape == (1000, 6) and x.dtype == np.float32
    assert abs((x == 0).mean() - 0.95) < 0.02  # instance 2: feature probability 0.05
    assert np.array_equal(tms.sample(SMALL, 300, instance=2), x[:300])
    assert not np.array_equal(tms.sample(SMALL, 1000, instance=2, seed=8), x)
    dense = tms.sample(SMALL, 500, instance=0)
    assert (dense > 0).all() and (dense < 1).all()
    with pytest.raises(ValueError, match="instance 3 does not exist"):
        tms.sample(SMALL, 10, instance=3)


def test_bad_configs_raise_value_errors_with_the_clis_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL_TOML.replace("steps = 300", "steps = 0"))
    with pytest.raises(ValueError) as caught:
        tms.train(bad, progress=False)
    done = run_cli("train", str(bad), "--out", str(tmp_path / "never"))
    assert done.returncode != 0
    assert str(caught.value) in done.stderr, (str(caught.value), done.stderr)
    assert "train.steps" in str(caught.value) and "bad.toml:" in str(caught.value)

    broken = dict(SMALL, train={"steps": 300, "lr": -1.0})
    with pytest.raises(ValueError, match="train.lr"):
        tms.train(broken, progress=False)
    no_kind = dict(SMALL, model={"features": 6, "hidden": 3})
    with pytest.raises(ValueError, match=r"config dict in \[model\]: missing field `kind`"):
        tms.train(no_kind, progress=False)
    with pytest.raises(ValueError, match="no None"):
        tms.train(dict(SMALL, name=None), progress=False)
    with pytest.raises(ValueError, match="unknown experiment"):
        tms.reproduce("no-such-experiment", progress=False)
    with pytest.raises(ValueError, match="unknown profile"):
        tms.reproduce("intro", "slow", progress=False)
    with pytest.raises(FileNotFoundError):
        tms.train(tmp_path / "missing.toml", progress=False)


def test_bad_run_folders_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        tms.load(tmp_path)
    (tmp_path / "weights.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(ValueError):
        tms.load(tmp_path)


def test_progress_reaches_a_callback_and_an_exception_from_it_stops_training():
    calls = []
    config = dict(SMALL, train={"steps": 30000, "batch_size": 256})
    tms.train(config, progress=lambda *a: calls.append(a))
    assert calls, "the callback was never called"
    label, done, total, loss = calls[-1]
    assert label and total == 30000 and done == total and loss > 0
    assert all(c[1] <= c[2] for c in calls)

    class Stop(Exception):
        pass

    def stop_at_once(*_):
        raise Stop()

    start = time.time()
    with pytest.raises(Stop):
        tms.train(dict(SMALL, train={"steps": 10**7, "batch_size": 256}), progress=stop_at_once)
    assert time.time() - start < 30


def test_ctrl_c_stops_training_and_the_interpreter_goes_on(tmp_path):
    script = tmp_path / "interrupt.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, threading, time
            import tms
            config = {"model": {"kind": "relu-output", "features": 40, "hidden": 10},
                      "train": {"steps": 10000000}}
            threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            start = time.time()
            try:
                tms.train(config, progress=False)
                print("finished")
            except KeyboardInterrupt:
                print(f"interrupted after {time.time() - start:.1f} s")
            print("still alive:", tms.reproduce("intro", progress=False).reproduced)
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "interrupted after" in done.stdout, done.stdout
    # Stopped within a block of steps (a block here is 50,000 steps, minutes of work).
    seconds = float(done.stdout.split("interrupted after ")[1].split(" s")[0])
    assert seconds < 6, done.stdout
    assert "still alive: True" in done.stdout


def test_experiments_lists_the_registry():
    names = [e.name for e in tms.experiments()]
    assert "intro" in names and "uniform" in names and "sae-toy" in names
    assert all(e.section and e.summary for e in tms.experiments())


def test_training_releases_the_gil():
    # A Python thread keeps running while the engine trains.
    import threading

    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(1)
            time.sleep(0.001)

    worker = threading.Thread(target=count)
    worker.start()
    try:
        tms.train(dict(SMALL, train={"steps": 20000, "batch_size": 256}), progress=False)
    finally:
        done.set()
        worker.join()
    assert len(ticks) > 50, len(ticks)


def test_the_intro_example_draws_its_figure(tmp_path):
    out = tmp_path / "intro.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "intro.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, MPLBACKEND="Agg"),
    )
    assert done.returncode == 0, done.stderr
    assert "verdict: reproduced" in done.stdout
    assert out.stat().st_size > 20000


def test_bad_arguments_raise_value_errors_not_panics(tmp_path):
    for kwargs, match in [
        ({"threads": 0}, "threads=0"),
        ({"threads": 5000}, "threads=5000"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": 2**63}, "train.seed"),
        ({"steps": 0}, "steps=0"),
    ]:
        with pytest.raises(ValueError, match=match):
            tms.train(SMALL, progress=False, **kwargs)
    with pytest.raises(ValueError, match="restarts=0"):
        tms.reproduce("intro", restarts=0, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        tms.train(dict(SMALL, train={"lr": float("nan")}), progress=False)
    W = np.ones((6, 2), np.float32)
    W[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        tms.analyze(W)
    with pytest.raises(TypeError, match="inside the dict"):
        tms.analyze({"W": np.ones((6, 2))}, b=np.zeros(6))
    with pytest.raises(ValueError, match="layout='features-hidden'"):
        tms.analyze(np.eye(3))
    with pytest.raises(ValueError, match="rows=-1"):
        tms.sample(SMALL, -1)


def test_save_replaces_only_when_forced_and_load_reads_stages_and_refuses_damage(tmp_path):
    run = tms.train(SMALL, progress=False)
    folder = run.save(tmp_path / "run")
    other = tms.train(SMALL, seed=3, progress=False)
    other.save(folder, force=True)
    assert np.array_equal(tms.load(folder).W, other.W)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        run.save(tmp_path / "file", force=True)
    # A later stage is a run folder under stages/.
    run.save(folder / "stages" / "second")
    back = tms.load(folder)
    assert len(back.stages) == 1 and np.array_equal(back.stages[0].W, run.W)
    (folder / "loss.csv").write_text("step,instance_0\n1,0.5\n")
    with pytest.raises(ValueError, match="loss.csv"):
        tms.load(folder)
    (folder / "metrics.json").write_text("[]")
    with pytest.raises(ValueError, match="metrics.json"):
        tms.load(folder)


def test_analyze_keeps_a_decoder_and_reports_the_layout_it_chose():
    run = tms.train(SMALL, progress=False)
    both = tms.analyze(run.W, run.b, W_dec=run.W * 0.5)
    assert both.W_dec is not None and both.W_dec.shape == run.W.shape
    assert np.allclose(both.W_dec, run.W * 0.5)
    assert "--layout" not in both.layout[1]


def test_a_tqdm_bar_shows_progress(capfd):
    pytest.importorskip("tqdm")
    tms.train(dict(SMALL, train={"steps": 20000, "batch_size": 256}), progress=True)
    err = capfd.readouterr().err
    assert "small" in err and "step" in err, err

