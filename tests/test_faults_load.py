"""Fault injection on the reading side: generated manifest mutations and file swaps.

Every case ends with :func:`tests.faultkit.check`: a clear SnapshotError (when the snapshot is opened, or
when the entry is read), or exactly the stored values; and never the payload's marker file, which only
unpickling bytes that were not verified could create.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import json
import os
import random
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from job_orchestra import Context, SnapshotError, snapshot_load
from job_orchestra.value_codec import digest_fields
from tests.faultkit import check, make_reference, payload_bytes

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses symlinks, FIFOs and SIGALRM")

OUTCOMES: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    for family, counts in sorted(OUTCOMES.items()):
        print(f"\n{family}: {sum(counts.values())} cases: {dict(counts)}")


@pytest.fixture(autouse=True)
def _no_hang():
    """A read that blocks (a FIFO, /dev/zero) fails the test instead of hanging it."""

    def hung(signum, frame):
        raise TimeoutError("a snapshot read blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# -- manifest mutations ---------------------------------------------------------------------------------
def other_type(value: Any, rng: random.Random) -> Any:
    """A JSON value of another type than ``value`` (a mistake no valid manifest makes)."""
    pool: list[Any] = [None, True, False, -7, 0, 3, 1.5, "1", "", "x" * 300, [], [1, 2], {}, {"a": 1}, ["entries"]]
    candidates = [v for v in pool if type(v) is not type(value)]
    return rng.choice(candidates)


BAD_NAMES = [
    "",
    ".",
    "..",
    "entries",
    "entries/",
    "/etc/passwd",
    "../outside.dill",
    "entries/../manifest.json",
    "entries/./000001.dill",
    "a\x00b",
    "entries\\000001.dill",
    "manifest.json",
    "manifest.hmac",
    ".hidden",
    "entries/sub/000001.dill",
    "entries//000001.dill",
    "x" * 300,
]


def places(manifest: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Every (object, field) of the manifest."""
    out = [(manifest, f) for f in manifest]
    for record in manifest["entries"]:
        out += [(record, f) for f in record]
    out += [(manifest["pipeline"], f) for f in manifest["pipeline"]]
    return out


def mutate(manifest: dict[str, Any], rng: random.Random, folder: Path, marker: Path) -> tuple[str, bytes]:
    """One random damage to the manifest (as a careless edit or a bad disk would do it); returns its family
    and the manifest's new bytes."""
    kind = rng.choice(
        ["type", "delete", "extra", "name", "wrong file", "size", "checksum", "version", "key", "nesting", "cut"]
    )
    m = copy.deepcopy(manifest)
    records = m["entries"]
    record = rng.choice([*records, m["pipeline"]])
    if kind == "type":
        obj, field = rng.choice(places(m))
        obj[field] = other_type(obj[field], rng)
    elif kind == "delete":
        obj, field = rng.choice(places(m))
        del obj[field]
    elif kind == "extra":
        obj, _ = rng.choice(places(m))
        obj[rng.choice(["extra", "File", "sha512", "key2", ""])] = rng.choice([1, "x", None])
    elif kind == "name":
        others = [r["file"] for r in records if r is not record]
        record["file"] = rng.choice([*BAD_NAMES, rng.choice(others)])  # bad, or another entry's file
    elif kind == "wrong file":  # a well-formed name, but not the file that was written
        record["file"] = rng.choice(["entries/evil.dill", "entries/missing.dill", "evil.dill"])
    elif kind == "size":
        record["size"] = max(0, record["size"] + rng.choice([-100, -1, 1, 7, 1 << 40, -record["size"]]))
    elif kind == "checksum":
        field = "blake3" if "blake3" in record else "sha256"
        digest = list(record[field])
        digest[rng.randrange(64)] = rng.choice("0123456789abcdef".replace(digest[0], ""))
        record[field] = "".join(digest) if "".join(digest) != record[field] else "0" * 64
    elif kind == "version":
        m["format_version"] = rng.choice(["1", True, -7, 0, 2.0, 3, None, [1], 10**30])
    elif kind == "key":
        dill_record = next(r for r in records if r["key_type"] == "dill")
        choice = rng.randrange(5)
        if choice == 0:  # the key's bytes replaced by the payload, its checksum left
            dill_record["key_dill"] = payload_bytes(marker).hex()
        elif choice == 1:  # no checksum at all
            dill_record["key_dill"] = payload_bytes(marker).hex()
            del dill_record["key_sha256"]
        elif choice == 2:  # an unhashable key
            rng.choice([r for r in records if r["key_type"] == "int"])["key"] = [1, 2]
        elif choice == 3:  # a key_type that does not match the key
            rng.choice(records)["key_type"] = rng.choice(["int", "dill", "pickle", "STR"])
        else:  # two entries with one key
            records[1]["key"] = records[0]["key"]
            records[1]["key_type"] = records[0]["key_type"]
    elif kind == "nesting":
        return kind, json.dumps(m).replace('"signed": false', '"signed": ' + "[" * 100_000 + "]" * 100_000).encode()
    else:  # cut short
        body = json.dumps(m).encode()
        return kind, body[: rng.randrange(len(body))]
    return kind, json.dumps(m).encode()


def test_random_manifest_mutations_give_a_snapshot_error_or_an_exact_round_trip(tmp_path):
    snap = make_reference(tmp_path / "snap")
    marker = tmp_path / "EXECUTED"
    original = (snap / "manifest.json").read_bytes()
    manifest = json.loads(original)
    array = next(r for r in manifest["entries"] if r["key"] == "array")
    (snap / "entries" / "evil.dill").write_bytes(payload_bytes(marker, array["size"]))
    (snap / "evil.dill").write_bytes(payload_bytes(marker))
    rng = random.Random(9)
    for _ in range(300):
        kind, body = mutate(manifest, rng, snap, marker)
        (snap / "manifest.json").write_bytes(body)
        outcome = check(snap, marker)
        OUTCOMES["manifest mutations"][outcome] += 1
        OUTCOMES[f"manifest mutations: {kind}"][outcome] += 1
        if kind in ("delete", "extra", "name", "version", "nesting", "cut"):
            # structural damage is caught by the schema, before anything is read (optional "given" aside)
            assert outcome == "refused at load" or kind == "delete", (kind, body[:300])
    assert OUTCOMES["manifest mutations"]["refused at load"] > 150


def test_signed_snapshots_refuse_every_change_even_with_checksums_recomputed(tmp_path):
    """An attacker who rewrites an entry and recomputes its checksum and size in the manifest, or puts the
    payload in as a pickled key with its checksum, is stopped by the signature: nothing runs."""
    key = b"k" * 32
    snap = make_reference(tmp_path / "snap", key=key)
    marker = tmp_path / "EXECUTED"
    manifest = json.loads((snap / "manifest.json").read_bytes())
    evil = payload_bytes(marker)
    (snap / "entries" / "evil.dill").write_bytes(evil)
    rng = random.Random(11)
    for case in range(80):
        m = copy.deepcopy(manifest)
        record = rng.choice(m["entries"])
        attack = case % 4
        if attack == 0:  # point an entry at the payload, with its true size and checksum
            record.pop("format", None)
            record.update(file="entries/evil.dill", size=len(evil), **digest_fields(evil))
        elif attack == 1:  # the payload as a pickled key, with a matching checksum
            dill_record = next(r for r in m["entries"] if r["key_type"] == "dill")
            dill_record.update(key_dill=evil.hex(), key_sha256=hashlib.sha256(evil).hexdigest())
        elif attack == 2:  # the same for the pipeline
            m["pipeline"].pop("format", None)
            m["pipeline"].update(file="entries/evil.dill", size=len(evil), **digest_fields(evil))
        body = json.dumps(m, indent=2).encode()
        if attack == 3:  # one flipped bit anywhere
            flipped = bytearray(body)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(7)
            body = bytes(flipped)
        (snap / "manifest.json").write_bytes(body)
        outcome = check(snap, marker, key=key)
        OUTCOMES["signed manifest attacks"][outcome] += 1
        assert outcome == "refused at load"


# -- file swaps -----------------------------------------------------------------------------------------
def swap(file: Path, how: str, marker: Path, scratch: Path) -> None:
    """Replace ``file`` by something else."""
    data = file.read_bytes()
    file.unlink()
    if how == "symlink to /dev/zero":
        file.symlink_to("/dev/zero")
    elif how == "symlink to an identical copy":
        copy_of = scratch / f"copy-{file.name}"
        copy_of.write_bytes(data)
        file.symlink_to(copy_of)
    elif how == "FIFO":
        os.mkfifo(file)
    elif how == "directory":
        file.mkdir()
    elif how == "character device":
        try:
            os.mknod(file, 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers
        except PermissionError:
            file.symlink_to("/dev/null")
    elif how == "payload of the same size":
        file.write_bytes(payload_bytes(marker, len(data)))
    elif how == "payload":
        file.write_bytes(payload_bytes(marker))
    elif how == "truncated":
        file.write_bytes(data[: len(data) // 2])
    elif how == "grown":
        file.write_bytes(data + b"\0")
    elif how == "hard link to an outside file":
        outside = scratch / f"outside-{file.name}"
        outside.write_bytes(bytes(len(data)))
        os.link(outside, file)
    else:
        raise AssertionError(how)


SWAPS = [
    "symlink to /dev/zero",
    "symlink to an identical copy",
    "FIFO",
    "directory",
    "character device",
    "payload of the same size",
    "payload",
    "truncated",
    "grown",
    "hard link to an outside file",
]


@pytest.mark.parametrize("how", SWAPS)
def test_files_swapped_after_the_snapshot_was_opened(tmp_path, how):
    """Each entry file (and the pipeline's) is swapped between load() and the first read."""
    clean = make_reference(tmp_path / "clean")
    marker = tmp_path / "EXECUTED"
    names = sorted(p.relative_to(clean).as_posix() for p in clean.rglob("*.dill"))
    for name in names:
        snap = tmp_path / f"snap-{name.replace('/', '-')}"
        shutil.copytree(clean, snap)
        loaded = Context.load(snap)  # opened while intact; nothing read yet
        swap(snap / name, how, marker, tmp_path)
        refused = 0
        for k in [*loaded, "pipeline"]:
            try:
                loaded.pipeline if k == "pipeline" else loaded[k]
            except SnapshotError as exc:
                assert name in str(exc) and ("damaged" in str(exc) or "missing" in str(exc)), str(exc)
                refused += 1
        assert refused == 1, f"{how} of {name} was not refused"
        assert not marker.exists()
        OUTCOMES[f"file swaps during load: {how}"]["refused at read"] += 1
        assert check(snap, marker) == "refused at read"  # opening it afresh refuses it too


@pytest.mark.parametrize("how", ["symlink", "FIFO", "too large"])
def test_a_swapped_manifest_or_entries_directory_is_refused(tmp_path, how):
    snap = make_reference(tmp_path / "snap")
    marker = tmp_path / "EXECUTED"
    manifest = snap / "manifest.json"
    if how == "symlink":
        (tmp_path / "elsewhere.json").write_bytes(manifest.read_bytes())
        manifest.unlink()
        manifest.symlink_to(tmp_path / "elsewhere.json")
    elif how == "FIFO":
        manifest.unlink()
        os.mkfifo(manifest)
    else:
        with open(manifest, "ab") as f:
            f.truncate((1 << 26) + 1)
    with pytest.raises(SnapshotError, match=r"manifest\.json"):
        Context.load(snap)
    entries_copy = tmp_path / "entries-copy"
    shutil.copytree(make_reference(tmp_path / "other") / "entries", entries_copy)
    shutil.rmtree(snap / "entries")
    (snap / "entries").symlink_to(entries_copy)
    (snap / "manifest.json").unlink()
    shutil.copy(tmp_path / "other" / "manifest.json", snap / "manifest.json")
    assert check(snap, marker) == "refused at read"  # the entries directory is never followed as a link


def test_the_bytes_unpickled_are_the_bytes_verified(tmp_path, monkeypatch):
    """The file is rewritten with the payload right after it was read and verified: the value still
    comes from the verified bytes, and nothing runs."""
    snap = make_reference(tmp_path / "snap")
    marker = tmp_path / "EXECUTED"
    real_read = snapshot_load.read_into

    def read_then_rewrite(root, name, allocate, **kwargs):
        data = real_read(root, name, allocate, **kwargs)
        if name.endswith(".dill"):
            (Path(root) / name).write_bytes(payload_bytes(marker, len(data)))
        return data

    monkeypatch.setattr(snapshot_load, "read_into", read_then_rewrite)
    assert check(snap, marker) == "exact"
    monkeypatch.undo()
    assert check(snap, marker) == "refused at read"  # the files were rewritten indeed
