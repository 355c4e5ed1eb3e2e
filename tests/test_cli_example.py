"""The README's command-line instructions work on the shipped example, exactly as written there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from job_orchestra import Context

ROOT = Path(__file__).resolve().parents[1]
LUNCH = "spaghetti in salted boiling water, tossed with cut tomatoes on browned onions and basil"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if "-m job_orchestra" in line]


def run(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    argv = command.split()
    assert argv[:3] == [".venv/bin/python", "-m", "job_orchestra"], command
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    environment.update(env)
    return subprocess.run(
        [sys.executable, *argv[1:]], cwd=cwd, capture_output=True, text=True, env=environment, timeout=120
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "kitchen.py", tmp_path / "examples" / "kitchen.py")
    return tmp_path


def test_the_readme_shows_plan_run_and_resume_commands():
    commands = readme_commands()
    assert [c.split()[3] for c in commands] == ["plan", "run", "run"]
    assert all("examples/kitchen.py:lunch" in c for c in commands)
    assert "--snapshot kitchen-run/" in commands[1] and "--load kitchen-run/" in commands[2]


def test_readme_commands_run_print_the_result_in_full_and_resume_after_a_failure(checkout):
    plan, first_run, resume = readme_commands()
    shown = run(plan, checkout)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1] == " [ ] (H) PanFry" and len(shown.stdout.splitlines()) == 9

    done = run(first_run, checkout)
    assert done.returncode == 0, done.stderr
    assert done.stdout == LUNCH + "\n"  # in full, not a truncated repr
    assert "PanFry done: 8 step(s) run" in done.stderr
    shutil.rmtree(checkout / "kitchen-run")

    failed = run(first_run, checkout, BURN_THE_PAN="1")
    assert failed.returncode == 1 and "step 'PanFry' failed" in failed.stderr
    assert "snapshot with 7 result(s) written to kitchen-run/" in failed.stderr
    assert "PanFry" not in Context.load(checkout / "kitchen-run")

    resumed = run(resume, checkout)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == LUNCH + "\n" and "PanFry done: 1 step(s) run" in resumed.stderr


def test_every_command_line_option_is_in_the_api_reference():
    from job_orchestra.cli import _parser

    api = (ROOT / "docs" / "api.md").read_text()
    parser = _parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subparsers.items():
        assert f"python -m job_orchestra {name}" in api
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in api or f" {option}" in api, f"{name} {option} is not in docs/api.md"
