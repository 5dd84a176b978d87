#!/usr/bin/env bash
# Split a tms run across a Slurm cluster: an array job of N shards, then a merge job that
# starts when every shard has succeeded (and is cancelled if one fails). Prints the two job
# ids. One experiment or config per submission.
#   deploy/slurm/submit.sh N OUT_DIR reproduce EXPERIMENT [flags...]   e.g. 8 /shared/runs/pb reproduce privileged-basis --profile paper
#   deploy/slurm/submit.sh N OUT_DIR train CONFIG.toml [flags...]
# Jobs run in the current folder (relative config paths work; OUT_DIR gets the logs).
# TMS=/path/to/tms is passed to the jobs (default: tms on PATH); extra sbatch options go in
# SBATCH_ARGS (e.g. "--partition=cpu --time=02:00:00").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${1:?usage: submit.sh N OUT_DIR reproduce|train WHAT [flags...]}
out=${2:?usage: submit.sh N OUT_DIR reproduce|train WHAT [flags...]}
shift 2
mkdir -p "$out"
out=$(cd "$out" && pwd)
# shellcheck disable=SC2086  # SBATCH_ARGS is a list of options
array=$(sbatch --parsable ${SBATCH_ARGS:-} --export=ALL --array="1-$n" \
    --output="$out/tms-shard-%A-%a.log" \
    "$here/shard.sbatch" "$out" "$@")
array=${array%%;*}
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_ARGS:-} --export=ALL --output="$out/tms-merge-%j.log" \
    --dependency="afterok:$array" --kill-on-invalid-dep=yes "$here/merge.sbatch" "$out" "$n")
merge=${merge%%;*}
echo "shards: job $array (tasks 1-$n); merge: job $merge -> $out/merged"
