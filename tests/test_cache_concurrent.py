"""Two processes writing one cache directory at once (1,200 writes) leave it consistent, and read each other."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from job_orchestra import Context
from job_orchestra.cache_index import read_index, version_of
from job_orchestra.stores import TEMP_SUFFIX, LocalStore

ROOT = Path(__file__).resolve().parent.parent
WRITES = 600  # per process
KEYS, VERSIONS = 40, 15

WRITER = """
import sys, random
from tests.test_cache_concurrent import KEYS, VERSIONS, fingerprint, value
from job_orchestra import Context
ctx = Context.open(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
for i in range(int(sys.argv[3])):
    key, version = f"k{rng.randrange(KEYS)}", rng.randrange(VERSIONS)
    ctx._put_result(key, value(key, version), fingerprint(version))
    if i % 50 == 0:  # read what the other process wrote, while it writes
        other = Context.open(sys.argv[1])
        for k in list(other)[:5]:
            if k != "context_meta":
                other[k]
print("done")
"""


def fingerprint(version: int) -> str:
    return hashlib.md5(str(version).encode()).hexdigest() + ":test"


def value(key: str, version: int) -> np.ndarray:
    seed = int(key[1:]) * 100 + version
    return np.arange(seed % 17 * 1000 + 1, dtype="int64") + seed  # 8 bytes to 128 KB: inline and value files


def test_two_writers_leave_the_cache_consistent(tmp_path):
    cache = tmp_path / "c"
    Context.open(cache)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(cache), str(seed), str(WRITES)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "done" in out, err
    store = LocalStore(cache)
    versions = read_index(store, None)
    by_version = {version_of(fingerprint(v)): v for v in range(VERSIONS)}
    checked = 0
    ctx = Context.open(cache)
    for key, records in versions.items():
        for version in records:
            assert ctx._cache.reuse(key, version)
            assert np.array_equal(ctx[key], value(key, by_version[version]))
            checked += 1
    assert checked > KEYS * VERSIONS // 2
    named = {r["file"] for records in versions.values() for r in records.values()}
    inline = {r["file"] for records in versions.values() for r in records.values() if r.get("inline")}
    assert inline and named - inline  # values on both sides of the inline threshold were written
    assert named - inline <= set(store.list("values"))  # every record names a complete value (or holds it)
    assert not [p for p in cache.rglob("*") if p.name.endswith(TEMP_SUFFIX)]  # no temporary file left over
    assert ctx.disk_usage().entries == checked


def test_many_processes_creating_one_cache_at_once(tmp_path):
    cache = tmp_path / "new"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; from job_orchestra import Context; Context.open(sys.argv[1]); print('ok')"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(cache)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    assert [p.communicate(timeout=120)[0].strip() for p in procs] == ["ok"] * 4
    assert sorted(p.name for p in cache.iterdir()) == ["cache.json"]
