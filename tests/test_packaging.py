"""What the wheel ships: both packages with their py.typed marker, and the full MIT license."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIT_CLAUSES = [
    "Permission is hereby granted, free of charge, to any person obtaining a copy",
    "The above copyright notice and this permission notice shall be included in all",
    'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR',
]


def test_license_is_the_full_mit_text_with_a_copyright_line():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) 20\d\d job-orchestra developers$", text, flags=re.M)
    assert all(clause in text for clause in MIT_CLAUSES)
    assert len(text.split()) > 150  # the whole text, not a name


@pytest.mark.parametrize("package", ["job_orchestra", "jupyter_ext"])
def test_both_packages_are_typed(package):
    assert (ROOT / package / "py.typed").is_file()


def test_the_wheel_ships_py_typed_and_the_license(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode and "No matching distribution found for hatchling" in done.stderr:
        pytest.skip("no package index to fetch the build backend (hatchling) from")
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("job_orchestra-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"job_orchestra/py.typed", "jupyter_ext/py.typed"} <= set(names)
    (license_file,) = [n for n in names if n.endswith("licenses/LICENSE")]
    assert "Permission is hereby granted" in zipfile.ZipFile(wheel).read(license_file).decode()
