# Sourced by run-examples.sh and run-tests.sh: installs what is missing, idempotently.
#   - system packages (Debian/Ubuntu): graphviz's `dot`, python3-venv, and chromium for the browser test
#   - a virtual environment in .venv with job-orchestra installed in editable mode and its extras
#   - for the tests: job-orchestra 1.1.4 in its own venv in a cache directory (jo_setup_legacy)
# Set JO_SKIP_APT=1 to never call apt-get (then missing system packages only skip what needs them).
set -euo pipefail

SUDO=""
if [[ $(id -u) != 0 ]] && command -v sudo >/dev/null; then SUDO="sudo"; fi

apt_install() {
  [[ ${JO_SKIP_APT:-0} == 1 ]] && { echo "setup: JO_SKIP_APT=1, not installing $*" >&2; return 0; }
  command -v apt-get >/dev/null || { echo "setup: no apt-get; please install: $*" >&2; return 0; }
  echo "setup: installing system packages: $*" >&2
  # Wait (up to JO_APT_LOCK_TIMEOUT seconds) for another install to release the dpkg lock instead of failing.
  local lock=(-o "DPkg::Lock::Timeout=${JO_APT_LOCK_TIMEOUT:-600}")
  $SUDO apt-get "${lock[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${lock[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}

# jo_setup_legacy: job-orchestra 1.1.4 in its own venv (in a cache directory, outside the checkout) for the
# side-by-side tests; exports JO11_PYTHON. Prints one line saying why when it cannot (those tests then skip).
# JO11_PYTHON=path reuses an existing interpreter; JO_SKIP_LEGACY=1 skips this.
jo_setup_legacy() {
  if [[ -n ${JO11_PYTHON:-} && -x $JO11_PYTHON ]]; then export JO11_PYTHON; return 0; fi
  if [[ ${JO_SKIP_LEGACY:-0} == 1 ]]; then
    echo "setup: JO_SKIP_LEGACY=1: the side-by-side tests with job-orchestra 1.1.4 will skip" >&2; return 0
  fi
  local dir="${JO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/job-orchestra}/jo11"
  if [[ ! -f $dir/.installed ]]; then
    echo "setup: installing job-orchestra 1.1.4 into $dir (for the side-by-side tests)" >&2
    local py log
    py=$(find_python) || return 0
    log=$(mktemp)
    if ! { "$py" -m venv --clear "$dir" && "$dir/bin/python" -m pip install -q job-orchestra==1.1.4 cleverdict; } >"$log" 2>&1; then
      echo "setup: could not install job-orchestra 1.1.4 ($(grep -m1 -iE 'error|could not' "$log" || tail -n1 "$log")); the side-by-side tests with 1.1 will skip" >&2
      rm -f "$log"; return 0
    fi
    rm -f "$log"
    touch "$dir/.installed"
  fi
  export JO11_PYTHON="$dir/bin/python"
}

# jo_setup_other_pythons: venvs with job-orchestra's dependencies for every other Python 3.11+ found
# (python3.12, python3.13 on the PATH or under pyenv), so the fingerprint tests check that each compiles the
# same source to one digest; exports JO_TEST_PYTHONS. Prints one line when there is none (that test skips).
jo_setup_other_pythons() {
  if [[ ${JO_SKIP_OTHER_PYTHONS:-0} == 1 ]]; then return 0; fi
  local found=() cache="${JO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/job-orchestra}" version py dir
  for version in 3.12 3.13; do
    py=""
    if [[ -n ${PYENV_ROOT:-} ]]; then  # pyenv's own builds (its shims fail for versions not selected)
      py=$(ls -d "$PYENV_ROOT"/versions/"$version".*/bin/"python$version" 2>/dev/null | tail -n1 || true)
    fi
    [[ -n $py ]] || py=$(command -v "python$version" || true)
    [[ -n $py && -x $py ]] || continue
    dir="$cache/py$version"
    if [[ ! -f $dir/.installed || pyproject.toml -nt $dir/.installed ]]; then
      echo "setup: installing job-orchestra's dependencies for Python $version into $dir (fingerprint tests)" >&2
      if ! { "$py" -m venv --clear "$dir" && "$dir/bin/python" -m pip install -q -e .; } >/dev/null 2>&1; then
        echo "setup: could not set up Python $version; the fingerprint tests skip it" >&2; continue
      fi
      touch "$dir/.installed"
    fi
    found+=("$dir/bin/python")
  done
  if ((${#found[@]})); then
    JO_TEST_PYTHONS=$(IFS=:; echo "${found[*]}"); export JO_TEST_PYTHONS
  else
    echo "setup: no Python 3.12 or 3.13 here: the fingerprint tests run on this Python only" >&2
  fi
}

find_python() {
  for py in python3 python3.13 python3.12 python3.11; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$py"; return 0
    fi
  done
  echo "setup: job-orchestra needs Python 3.11 or newer" >&2
  return 1
}

# jo_setup EXTRAS [SYSTEM-PACKAGES...]
jo_setup() {
  local extras=$1; shift
  local want=()
  command -v dot >/dev/null || want+=(graphviz)
  for pkg in "$@"; do
    case $pkg in
      chromium) command -v chromium >/dev/null || want+=(chromium) ;;
      *) want+=("$pkg") ;;
    esac
  done
  local py
  py=$(find_python)
  if [[ ! -x .venv/bin/python ]] && ! "$py" -c 'import ensurepip' 2>/dev/null; then
    want+=("python3-venv")
  fi
  if ((${#want[@]})); then apt_install "${want[@]}"; fi

  if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv with $py" >&2
    "$py" -m venv .venv
  fi
  local stamp=".venv/.installed-$extras"
  if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    echo "setup: installing job-orchestra[$extras] into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
  fi
}
