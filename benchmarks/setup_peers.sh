#!/usr/bin/env bash
# Create the benchmark's own environment with the peer libraries (Apache Hamilton, pipefunc) that
# benchmarks/parallel.py compares job-orchestra with. They are never dependencies of job-orchestra.
#
#   benchmarks/setup_peers.sh [VENV_DIR]     (default: /tmp/benchvenv)
#
# benchmarks/parallel.py finds this environment through $JO_BENCH_PEERS_PYTHON, or at /tmp/benchvenv.
set -euo pipefail
VENV="${1:-/tmp/benchvenv}"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "sf-hamilton>=1.80" "pipefunc>=0.60"
"$VENV/bin/python" - <<'PY'
from importlib import metadata
for dist in ("sf-hamilton", "pipefunc"):
    print(dist, metadata.version(dist))
PY
