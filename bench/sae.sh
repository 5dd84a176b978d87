#!/usr/bin/env bash
# SAE training speed, tms beside PyTorch in one run, on the default synthetic setting of the
# issue: G = 512 true directions in d = 256 dimensions (5 active per row, p_g ∝ 0.99^g), one L1
# SAE with D = 1024 latents, batch 1024, Adam lr 1e-3, fresh batches every step.
# Both train from the same kind of init for STEPS steps and report steps per second over the
# whole run (tms's cost per step falls as the code gets sparse, PyTorch's does not, so both are
# timed over the same number of steps from the start; PyTorch's first 20 steps are not timed).
# Usage: bench/sae.sh [STEPS] [ALPHA] [THREADS]   (PyTorch from bench/requirements.txt: set
# PYTHON to a python that has torch; default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-8000}
alpha=${2:-0.1}
threads=${3:-$(nproc)}
python=${PYTHON:-python3}
if [ -z "${TMS:-}" ]; then
    cargo build --release --quiet
    TMS=target/release/tms
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/sae.toml" <<TOML
[ground_truth]
features = 512
dim = 256
[sae]
latents = [1024]
penalties = [$alpha]
[train]
steps = $steps
batch = 1024
eval_rows = 1024
TOML
"$TMS" sae "$work/sae.toml" --threads "$threads" --out "$work/run" -q > "$work/tms.txt"
tms_rate=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(r['sae_steps_per_second'])" "$work/run/metrics.json")
torch_json=$("$python" bench/reference_sae_torch.py --alpha "$alpha" --steps "$steps" --threads "$threads")
python3 - "$tms_rate" "$torch_json" "$steps" "$threads" <<'PY'
import json, sys
tms, torch, steps, threads = float(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
t = torch["steps_per_second"]
print(f"SAE G=512 d=256 D=1024 batch=1024, {steps} steps, {threads} threads")
print(f"  tms      {tms:8.1f} steps/s")
print(f"  pytorch  {t:8.1f} steps/s  (torch {torch.get('version', '?')})")
print(f"  ratio    {tms / t:8.2f}x")
PY
