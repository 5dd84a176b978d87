#!/usr/bin/env bash
# The training passes side by side, one instance on one thread, one after the other: the table
# behind `auto`'s thresholds (README, "Training passes"). For each shape n×m and density p it
# trains the same ReLU-output config (batch 1024, the notebook's AdamW) with `kernel = fused`,
# `gemm` and `sparse` and prints the training steps/s of each (from metrics.json) and the test
# loss (they agree to rounding). TMS=path uses that binary instead of building one. Not part of
# CI (a few minutes at the default STEPS).
# Usage: bench/passes.sh [STEPS]      (default 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-3000}
if [ -z "${TMS:-}" ]; then
    cargo build --release --quiet
    TMS=target/release/tms
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| shape n×m, density | fused steps/s | gemm steps/s | sparse steps/s | test loss (fused) |"
echo "|---|---|---|---|---|"
for case in "20 5 0.1" "30 8 0.1" "40 10 0.1" "100 20 0.1" "100 40 0.1" \
            "400 30 1" "400 30 0.03" "400 30 0.01" "400 30 0.001"; do
    read -r n m p <<< "$case"
    row="| ${n}×${m}, $p |"
    loss=""
    for kernel in fused gemm sparse; do
        cat > "$work/$kernel.toml" <<TOML
name = "passes"
[model]
kind = "relu-output"
features = $n
hidden = $m
[data]
feature_probability = $p
[train]
steps = $steps
eval_rows = 65536
kernel = "$kernel"
TOML
        "$TMS" train "$work/$kernel.toml" --out "$work/$kernel" --threads 1 -q --force \
            --checkpoint-every 0 > /dev/null
        read -r rate final < <(python3 -c "
import json, sys
m = json.load(open(sys.argv[1]))
print(f\"{m['training']['steps_per_second']:,.0f} {m['instances'][0]['final_loss']:.6e}\")" \
            "$work/$kernel/metrics.json")
        row="$row $rate |"
        [ -z "$loss" ] && loss=$final
    done
    echo "$row $loss |"
done
