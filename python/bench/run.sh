#!/usr/bin/env bash
# Makes the bench's own virtual environment (a release build of the
# extension, plus websockets, orjson and uvloop: none of them is in CI's
# test path), then runs bench.py and prints the tables for BENCHMARKS.md.
#   python/bench/run.sh [bench.py flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${PYTHON:-python3}"
venv="$PWD/target/bench-venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "maturin>=1.9.4,<2" websockets orjson uvloop
(cd crates/argus-py && VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop --release --quiet)
"$venv/bin/python" python/bench/bench.py "$@"
