#!/usr/bin/env bash
# Open the example notebooks in JupyterLab: sets up .venv like the README's commands, then starts Lab on
# examples/. As root (a container, a cloud VM) it adds --allow-root, which plain `jupyter lab` requires there.
# Extra arguments go to `jupyter lab` (e.g. --no-browser --port 8899).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
jo_setup "test,dask"
args=()
if [[ $(id -u) == 0 ]]; then args+=(--allow-root); fi
exec .venv/bin/jupyter lab "${args[@]}" "$@" examples/
