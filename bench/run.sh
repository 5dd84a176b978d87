#!/usr/bin/env bash
# Side-by-side benchmark of tms against our PyTorch and JAX references (not part of CI).
# First use creates bench/.venv from PyPI (PyTorch's wheel brings its CUDA libraries: a few GB).
# Usage: bench/run.sh [--scale X] [--only intro,uniform] [--baseline OLD_TMS_BINARY] [--skip-rss] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install --quiet -r bench/requirements.txt
fi
cargo build --release --quiet
exec bench/.venv/bin/python bench/compare.py "$@"
