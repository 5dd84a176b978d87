"""Run every benchmark config in tms, PyTorch and JAX on this machine and print one table.

Run through `bench/run.sh`, which sets up the virtual environment and builds tms first.
Options: --scale X multiplies the step counts (default 1); --only NAME[,NAME] picks configs
(a shape's name picks its sparsity rows too: `--only uniform` runs `uniform`, `uniform-p1`,
`uniform-p0.01`, `uniform-p0.001`);
--baseline BIN also runs another tms binary (an older build) on every config, for a ratio in
the same run; --skip-rss skips the peak-memory runs of `tms reproduce intro` and
`tms reproduce uniform`; --json FILE also writes the raw results.
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from configs import (  # noqa: E402
    all_configs, dense_decoder_flops_per_step, matmul_flops_per_step)

TMS = os.path.join(ROOT, "target", "release", "tms")


def run_checked(cmd):
    """Run `cmd` and return its standard output; fail loudly with its error output."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def peak_rss_mb(cmd):
    """Peak resident memory of one command, in MB, measured by GNU time."""
    with tempfile.NamedTemporaryFile("r") as f:
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + cmd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode not in (0, 3):  # 3: ran, but a verdict was not reproduced
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        return int(f.read().split()[-1]) / 1024.0


def tms_toml(c, kernel=None):
    lines = [
        f'name = "bench-{c["name"]}"',
        "[model]",
        'kind = "relu-output"',
        f"features = {c['n']}",
        f"hidden = {c['m']}",
        "[train]",
        f"steps = {c['steps']}",
        f"batch_size = {c['batch']}",
    ] + ([f'kernel = "{kernel}"'] if kernel else []) + [
        "[data]",
        "feature_probability = 1.0",
    ]
    for p, imp in zip(c["probability"], c["importance"]):
        lines += ["[[instance]]", f"feature_probability = {p!r}",
                  "importance = [" + ", ".join(repr(v) for v in imp) + "]"]
    return "\n".join(lines) + "\n"


def run_tms(c, kernel=None, binary=TMS):
    """Train config `c` with tms (`kernel`: a `[train] kernel`, None for the binary's default,
    as an older build needs)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "config.toml")
        with open(cfg, "w") as f:
            f.write(tms_toml(c, kernel))
        out = os.path.join(tmp, "run")
        run_checked([binary, "train", cfg, "--out", out, "-q", "--checkpoint-every", "0"])
        with open(os.path.join(out, "metrics.json")) as f:
            training = json.load(f)["training"]
        with open(os.path.join(out, "loss.csv")) as f:
            rows = list(csv.reader(f))[1:]
        steps = [int(r[0]) for r in rows]
        # Mean training loss over the last 10% of the steps, over instances (as the references).
        first = c["steps"] - c["steps"] // 10
        tail = [r for r, s in zip(rows, steps) if s > first] or rows[-1:]
        values = [float(v) for r in tail for v in r[1:]]
        return {
            "seconds": training["seconds"],
            "steps_per_second": training["steps_per_second"],
            "final_loss": sum(values) / len(values),
            "kernel": training["kernel"],
        }


def run_reference(script, c):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(c, f)
        path = f.name
    try:
        out = run_checked([sys.executable, os.path.join(HERE, script), path])
        return json.loads(out.strip().splitlines()[-1])
    finally:
        os.unlink(path)


def measured_peak():
    """The f32 peak of this machine, measured by `cargo bench --bench peak` (an FMA loop in the
    widest vectors, on every core at once)."""
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "peak"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine():
    """CPU model, cores, clock and f32 peak (FLOP/s): measured, with the nominal figure beside."""
    info = open("/proc/cpuinfo").read()
    model = next((l.split(":", 1)[1].strip() for l in info.splitlines()
                  if l.startswith("model name")), platform.processor())
    mhz = max((float(l.split(":", 1)[1]) for l in info.splitlines() if l.startswith("cpu MHz")),
              default=0.0)
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines()
                  if l.startswith("flags")), [])
    cores = os.cpu_count() or 1
    # f32 FLOP per cycle per core: two 8-lane FMA pipes with AVX2+FMA (2 x 8 x 2 = 32);
    # one 8-lane add and one multiply with AVX only (16); 4-lane SSE add + multiply (8).
    per_cycle = 32 if ("avx2" in flags and "fma" in flags) else 16 if "avx" in flags else 8
    nominal = cores * mhz * 1e6 * per_cycle
    peak = measured_peak()
    return {"model": model, "cores": cores, "mhz": mhz, "flop_per_cycle": per_cycle,
            "nominal_peak_gflops": nominal / 1e9, "peak_gflops": peak["gflops"],
            "peak_isa": peak["isa"]}


def fmt(v, digits=1):
    return "—" if v is None else f"{v:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default="")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--json", default="")
    ap.add_argument("--baseline", default="")
    args = ap.parse_args()

    m = machine()
    configs = all_configs(args.scale)
    if args.only:
        keep = set(args.only.split(","))
        configs = [c for c in configs if c["name"].split("-p")[0] in keep or c["name"] in keep]
    print(f"machine: {m['model']}, {m['cores']} cores at {m['mhz']:.0f} MHz; f32 peak "
          f"{m['peak_gflops']:.1f} GFLOP/s measured ({m['peak_isa']} FMA loop on every core; "
          f"nominal {m['nominal_peak_gflops']:.1f} at {m['flop_per_cycle']} FLOP/cycle/core)")
    results = []
    for c in configs:
        print(f"running {c['name']} ({c['instances']} instances, n={c['n']}, m={c['m']}, "
              f"{c['steps']} steps) ...", flush=True)
        torch = run_reference("reference_torch.py", c)
        jax = run_reference("reference_jax.py", c)
        base = run_tms(c, None, args.baseline) if args.baseline else None
        for kernel in c["kernels"]:
            r = {"config": c["name"], "kernel": kernel, "instances": c["instances"],
                 "n": c["n"], "m": c["m"], "steps": c["steps"], "torch": torch, "jax": jax,
                 "baseline": base}
            r["tms"] = run_tms(c, kernel)
            rate = r["tms"]["steps_per_second"]
            r["tms_gflops"] = matmul_flops_per_step(c) * rate / 1e9
            r["tms_dense_decoder_gflops"] = dense_decoder_flops_per_step(c) * rate / 1e9
            r["tms_peak_fraction"] = r["tms_gflops"] / m["peak_gflops"]
            results.append(r)

    header = ("| config | tms pass | tms steps/s | baseline steps/s | tms/baseline "
              "| PyTorch steps/s | JAX steps/s | tms/PyTorch | tms/JAX "
              "| loss tms | loss PyTorch | loss JAX | tms GFLOP/s (dense-equivalent) "
              "| of which the dense decoder forward | % of f32 peak |")
    print()
    print(header)
    print("|" + "---|" * 15)
    for r in results:
        t, p, j, b = r["tms"], r["torch"], r["jax"], r["baseline"]
        rate = t["steps_per_second"]
        ratio = f"{rate / b['steps_per_second']:.2f}×" if b else "—"
        print(f"| {r['config']} | {r['kernel']} ({t['kernel']}) | {fmt(rate)} "
              f"| {fmt(b['steps_per_second']) if b else '—'} "
              f"| {ratio} "
              f"| {fmt(p['steps_per_second'])} | {fmt(j['steps_per_second'])} "
              f"| {rate / p['steps_per_second']:.1f}× | {rate / j['steps_per_second']:.1f}× "
              f"| {t['final_loss']:.4e} | {p['final_loss']:.4e} | {j['final_loss']:.4e} "
              f"| {r['tms_gflops']:.1f} | {r['tms_dense_decoder_gflops']:.1f} "
              f"| {100 * r['tms_peak_fraction']:.0f}% |")

    rss = {}
    if not args.skip_rss:
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("intro", "uniform"):
                rss[name] = peak_rss_mb([TMS, "reproduce", name, "--out",
                                         os.path.join(tmp, name), "-q"])
        print()
        print("| command | peak RSS |")
        print("|---|---|")
        for name, mb in rss.items():
            print(f"| `tms reproduce {name}` | {mb:.1f} MB |")

    if results:
        t = results[0]
        print(f"\nversions: PyTorch {t['torch']['version']} ({t['torch']['threads']} threads), "
              f"JAX {t['jax']['version']}; tms kernel {t['tms']['kernel']}")
        print("steps/s: the training loop only (JAX: after compiling; compile times: "
              + ", ".join(f"{name} {jax['compile_seconds']:.1f} s"
                          for name, jax in {r["config"]: r["jax"] for r in results}.items())
              + ")")
        print("loss: mean training loss over the last 10% of the steps, averaged over instances")
        print("GFLOP/s: 10·n·m·batch·instances matmul FLOPs per step (dense-equivalent), and "
              "of it the 2·n·m·batch·instances of the decoder's forward, the one product every "
              "pass does densely (the least real work of a sparse step)")
        print("baseline: " + (args.baseline or "none (--baseline BIN)"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": m, "results": results, "rss_mb": rss}, f, indent=2)


if __name__ == "__main__":
    main()
