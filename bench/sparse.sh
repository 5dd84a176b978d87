#!/usr/bin/env bash
# The sparse training pass against the dense kernel, one after the other on this machine: the
# `double-descent` experiment's largest quick model (n = 1,000, m = 2, S = 0.99, a fixed dataset
# of T unit-norm rows trained full-batch, warm-up then cosine decay) for STEPS steps, once with
# `kernel = "dense"` and once with `kernel = "sparse"`. Prints the training steps/s of each
# (from metrics.json), their ratio, both final test losses (they agree to rounding), and the
# sparse pass's cost per (row, feature) of a step. N = 10000 gives the paper profile's model
# (n = 10,000, 1−S = 0.001: ten active features a row, as at n = 1,000).
# TMS=path uses that binary instead of building one. Not part of CI.
# Usage: bench/sparse.sh [T] [STEPS] [N]      (defaults: 1600 10000 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1600}
steps=${2:-10000}
features=${3:-1000}
probability=$(python3 -c "print(10 / $features)")
if [ -z "${TMS:-}" ]; then
    cargo build --release --quiet
    TMS=target/release/tms
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for kernel in dense sparse; do
    cat > "$work/$kernel.toml" <<TOML
name = "sparse-bench"
[model]
kind = "relu-output"
features = $features
hidden = 2
[data]
feature_probability = $probability
[data.dataset]
rows = $rows
normalize = true
[train]
steps = $steps
batch_size = $rows
schedule = "cosine-annealing"
warmup = $(( steps / 20 ))
init = "per-instance"
eval_rows = 32768
kernel = "$kernel"
TOML
    "$TMS" train "$work/$kernel.toml" --out "$work/$kernel" --threads 1 -q > /dev/null
done
python3 - "$work" "$rows" "$steps" "$features" <<'PY'
import json, sys, pathlib
work, rows, steps, features = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
rate, loss = {}, {}
for kernel in ("dense", "sparse"):
    m = json.loads((work / kernel / "metrics.json").read_text())
    rate[kernel] = m["training"]["steps_per_second"]
    loss[kernel] = m["instances"][0]["final_loss"]
    print(f"{kernel:>6}: {rate[kernel]:8.1f} steps/s  ({m['training']['seconds']:.1f} s for {steps} steps of T = {rows}, one thread)  test loss {loss[kernel]:.6e}")
print(f"sparse / dense: {rate['sparse'] / rate['dense']:.1f}x")
per_entry = 1e9 / (rate["sparse"] * int(rows) * features)
print(f"sparse pass: {per_entry:.2f} ns per (row, feature) of a step (n = {features})")
PY
