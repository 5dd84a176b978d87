#!/usr/bin/env bash
# How often an experiment's verdict holds across seeds: runs `tms reproduce EXPERIMENT --seed K`
# for K = 1..N (quick profile unless PROFILE is set) and prints, per check, the share of seeds
# that pass it, then the share that reproduce. Extra arguments go to `tms reproduce` (e.g.
# --restarts 5). Not part of CI (a sweep of 20 seeds of `uniform` takes about an hour on 2 cores).
# Usage: bench/seeds.sh EXPERIMENT [N] [-- extra tms reproduce flags]
set -euo pipefail
cd "$(dirname "$0")/.."
experiment=${1:?usage: bench/seeds.sh EXPERIMENT [N] [-- flags]}
count=${2:-20}
shift $(( $# >= 2 ? 2 : 1 ))
[ "${1:-}" = "--" ] && shift
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for seed in $(seq 1 "$count"); do
    # Exit 3 means "not reproduced": a result, not a failure of this script.
    target/release/tms reproduce "$experiment" --profile "${PROFILE:-quick}" --seed "$seed" \
        --out "$work/seed-$seed" -q "$@" > /dev/null || [ $? -eq 3 ]
done
python3 - "$work" "$experiment" "$count" <<'PY'
import json, sys, pathlib
work, experiment, count = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
passed, reproduced, failing = {}, 0, []
for seed in range(1, count + 1):
    v = json.loads((work / f"seed-{seed}" / "metrics.json").read_text())["verdict"]
    reproduced += v["reproduced"]
    if not v["reproduced"]:
        failing.append(seed)
    for c in v["checks"]:
        passed[c["name"]] = passed.get(c["name"], 0) + c["passed"]
print(f"{experiment}: seeds 1..{count}")
for name, k in passed.items():
    print(f"  {k:>3}/{count}  {name}")
print(f"  {reproduced:>3}/{count}  REPRODUCED" + (f"  (not: seeds {failing})" if failing else ""))
PY
