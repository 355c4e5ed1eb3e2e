#!/usr/bin/env bash
# Run every test: unit and property tests, the example notebooks (nbval) and the browser test.
# Installs what it needs first (Graphviz, Chromium, a .venv). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
jo_setup "test,dask,docs" chromium
jo_setup_legacy  # the side-by-side tests with the published 1.1.4 (tests/test_compat_*.py)
jo_setup_other_pythons  # fingerprints agree however code is compiled, on 3.12 and 3.13 too
exec .venv/bin/python -m pytest "$@"
