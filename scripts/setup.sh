# Sourced by run-examples.sh and run-tests.sh: installs what is missing, idempotently.
#   - system packages (Debian/Ubuntu): graphviz's `dot`, python3-venv, and chromium for the browser test
#   - a virtual environment in .venv with job-orchestra installed in editable mode and its extras
# Set JO_SKIP_APT=1 to never call apt-get (then missing system packages only skip what needs them).
set -euo pipefail

SUDO=""
if [[ $(id -u) != 0 ]] && command -v sudo >/dev/null; then SUDO="sudo"; fi

apt_install() {
  [[ ${JO_SKIP_APT:-0} == 1 ]] && { echo "setup: JO_SKIP_APT=1, not installing $*" >&2; return 0; }
  command -v apt-get >/dev/null || { echo "setup: no apt-get; please install: $*" >&2; return 0; }
  echo "setup: installing system packages: $*" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
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
