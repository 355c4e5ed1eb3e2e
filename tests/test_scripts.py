"""The set-up scripts the README tells newcomers to run, with stand-ins for apt-get, pip and jupyter.

Nothing here installs anything: each test copies scripts/ into a scratch checkout and puts recording stubs
first on the PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the scripts are bash scripts")


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A scratch checkout: scripts/ and pyproject.toml, a .venv whose set-up is already done."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    os.symlink(sys.executable, venv_bin / "python")
    stub(venv_bin, "jupyter", 'echo "jupyter $*" > "$JO_TEST_LOG"')
    for extras in ("test,dask", "test,dask,docs"):
        (repo / ".venv" / f".installed-{extras}").touch()
    return repo


def bash(script: str, cwd: Path, bin_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("JO11_PYTHON", "JO_SKIP_LEGACY")}
    environment["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    environment.update(env)
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60)


def test_lab_starts_jupyter_lab_on_the_examples_and_allows_root_only_as_root(checkout, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir, "dot", "exit 0")  # so set-up wants no system package
    log = tmp_path / "jupyter.log"
    done = bash("bash scripts/lab.sh --no-browser", checkout, bin_dir, JO_TEST_LOG=str(log), JO_SKIP_APT="1")
    assert done.returncode == 0, done.stderr
    args = log.read_text().split()
    assert args[:2] == ["jupyter", "lab"] and args[-1] == "examples/" and "--no-browser" in args
    assert ("--allow-root" in args) == (os.geteuid() == 0)


def test_apt_get_waits_for_the_dpkg_lock(checkout, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    stub(bin_dir, "apt-get", f'echo "apt-get $*" >> "{log}"')
    stub(bin_dir, "sudo", 'exec "$@"')
    done = bash("source scripts/setup.sh && apt_install graphviz", checkout, bin_dir, JO_APT_LOCK_TIMEOUT="42")
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and "update" in calls[0] and "install" in calls[1] and "graphviz" in calls[1]
    assert all("-o DPkg::Lock::Timeout=42" in call for call in calls)


def legacy(checkout: Path, bin_dir: Path, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    done = bash('source scripts/setup.sh && jo_setup_legacy && echo "JO11=${JO11_PYTHON:-}"', checkout, bin_dir, **env)
    assert done.returncode == 0, done.stderr
    return done, done.stdout.strip().rpartition("JO11=")[2]


def test_the_test_command_sets_up_1_1_4_in_a_cache_directory(checkout, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cache = tmp_path / "cache"
    log = tmp_path / "python.log"
    # a python3 whose venv gets a pip that records what it installs
    stub(
        bin_dir,
        "python3",
        f'''echo "$*" >> "{log}"
if [[ $1 == -c ]]; then exit 0; fi
dir="${{@: -1}}"; mkdir -p "$dir/bin"
printf '#!/usr/bin/env bash\\necho "pip $*" >> "{log}"\\n' > "$dir/bin/python"; chmod +x "$dir/bin/python"''',
    )
    done, jo11 = legacy(checkout, bin_dir, JO_CACHE_DIR=str(cache))
    assert jo11 == str(cache / "jo11" / "bin" / "python")
    assert "pip -m pip install -q job-orchestra==1.1.4 cleverdict" in log.read_text()
    assert done.stderr.count("\n") == 1 and "installing job-orchestra 1.1.4" in done.stderr
    # the second time it is there already: nothing installed, nothing said
    log.write_text("")
    again, jo11_again = legacy(checkout, bin_dir, JO_CACHE_DIR=str(cache))
    assert jo11_again == jo11 and "pip" not in log.read_text() and again.stderr == ""


def test_when_1_1_4_cannot_be_installed_one_line_says_why_the_side_by_side_tests_skip(checkout, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir, "python3", 'if [[ $1 == -c ]]; then exit 0; fi\necho "ERROR: no network" >&2; exit 1')
    done, jo11 = legacy(checkout, bin_dir, JO_CACHE_DIR=str(tmp_path / "cache"))
    assert jo11 == ""
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("setup: could not install job-orchestra 1.1.4 (ERROR: no network)")
    assert lines[-1].endswith("the side-by-side tests with 1.1 will skip")


def test_an_existing_1_1_interpreter_is_used_and_skipping_is_said_once(checkout, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _, jo11 = legacy(checkout, bin_dir, JO11_PYTHON=sys.executable)
    assert jo11 == sys.executable
    skipped, jo11 = legacy(checkout, bin_dir, JO_SKIP_LEGACY="1")
    assert jo11 == "" and skipped.stderr.count("\n") == 1 and "will skip" in skipped.stderr


def test_ci_runs_the_readme_command_only():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/run-tests.sh" in ci and "/tmp" not in ci and "pip install" not in ci
    assert "jo_setup_legacy" in (ROOT / "scripts" / "run-tests.sh").read_text()
