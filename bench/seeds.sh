#!/usr/bin/env bash
# How often an experiment's verdict holds across seeds: runs `tms reproduce EXPERIMENT --seed K`
# for K = 1..N (quick profile unless PROFILE is set) and prints, per check, the share of seeds
# that pass it, then the share that reproduce. EXPERIMENT may be a comma-separated list of
# experiments that share a config (`uniform,geometry`): they are trained once per seed and
# judged separately. Extra arguments go to `tms reproduce` (e.g. --restarts 5). TMS=path uses
# that binary instead of building one. Not part of CI (20 seeds of `uniform,geometry` take
# about an hour on 2 cores). Exit status: 0 when at least 19 of 20 (95 %) of the seeds
# reproduce every experiment, 3 otherwise.
# Usage: bench/seeds.sh EXPERIMENT[,EXPERIMENT...] [N | FROM..TO] [-- extra tms reproduce flags]
set -euo pipefail
cd "$(dirname "$0")/.."
experiments=${1:?usage: bench/seeds.sh EXPERIMENT[,EXPERIMENT...] [N | FROM..TO] [-- flags]}
range=${2:-20}
if [[ $range == *..* ]]; then first=${range%..*}; last=${range#*..}; else first=1; last=$range; fi
shift $(( $# >= 2 ? 2 : 1 ))
[ "${1:-}" = "--" ] && shift
if [ -z "${TMS:-}" ]; then
    cargo build --release --quiet
    TMS=target/release/tms
fi
IFS=, read -r -a names <<< "$experiments"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for seed in $(seq "$first" "$last"); do
    # Exit 3 means "not reproduced": a result, not a failure of this script.
    "$TMS" reproduce "${names[@]}" --profile "${PROFILE:-quick}" --seed "$seed" \
        --out "$work/seed-$seed" -q "$@" > /dev/null || [ $? -eq 3 ]
done
python3 - "$work" "$first" "$last" "${PROFILE:-quick}" "${names[@]}" <<'PY'
import json, sys, pathlib
work, first, last, profile = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
names = sys.argv[5:]
seeds = range(first, last + 1)
count = len(seeds)
all_ok = True
for name in names:
    passed, reproduced, failing = {}, 0, []
    for seed in seeds:
        folder = work / f"seed-{seed}"
        if len(names) > 1:
            folder = folder / name
        v = json.loads((folder / "metrics.json").read_text())["verdict"]
        reproduced += v["reproduced"]
        if not v["reproduced"]:
            failing.append(seed)
        for c in v["checks"]:
            passed[c["name"]] = passed.get(c["name"], 0) + c["passed"]
    print(f"{name} ({profile} profile): seeds {first}..{last}")
    for check, k in passed.items():
        print(f"  {k:>3}/{count}  {check}")
    print(f"  {reproduced:>3}/{count}  REPRODUCED" + (f"  (not: seeds {failing})" if failing else ""))
    all_ok &= reproduced >= 0.95 * count
sys.exit(0 if all_ok else 3)
PY
