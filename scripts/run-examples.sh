#!/usr/bin/env bash
# Run the example pipelines: the pasta recipe script, then every example notebook, executed headlessly.
# Executed copies are written to artifacts/examples/ (HTML too), the committed notebooks stay untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
jo_setup "test,dask"
.venv/bin/python examples/pasta_recipe.py
.venv/bin/python examples/run_notebooks.py "$@"
