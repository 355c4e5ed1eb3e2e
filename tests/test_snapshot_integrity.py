"""Snapshot integrity: checksums verified on read, clear errors for damage, optional HMAC signatures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from job_orchestra import Context, SnapshotError, Step
from job_orchestra.snapshot import FORMAT_VERSION, MANIFEST


def make_snapshot(path: Path, key: bytes | str | None = None) -> Path:
    ctx = Context()
    ctx["small"] = {"a": 1}
    ctx["big"] = list(range(20_000))
    ctx["text"] = "hello"
    ctx.store(path, key=key)
    return path


def entry_file(snapshot: Path, key: str) -> Path:
    manifest = json.loads((snapshot / MANIFEST).read_text())
    (record,) = [r for r in manifest["entries"] if r["key"] == key]
    return snapshot / record["file"]


def test_manifest_lists_a_checksum_per_entry(tmp_path):
    snap = make_snapshot(tmp_path / "s")
    manifest = json.loads((snap / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    for record in manifest["entries"]:
        assert len(record["blake3"]) == 64
        assert (snap / record["file"]).stat().st_size == record["size"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "append"])
def test_a_damaged_entry_names_its_key_and_file(tmp_path, damage):
    snap = make_snapshot(tmp_path / "s")
    file = entry_file(snap, "big")
    data = bytearray(file.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "empty":
        data = bytearray()
    else:
        data += b"junk"
    file.write_bytes(bytes(data))
    loaded = Context.load(snap)
    with pytest.raises(SnapshotError) as info:
        loaded["big"]
    message = str(info.value)
    assert "'big'" in message and str(file) in message and "damaged" in message
    assert loaded["small"] == {"a": 1} and loaded.text == "hello"  # the other entries still load
    with pytest.raises(SnapshotError):  # and asking again fails the same way (nothing half-loaded)
        _ = loaded.big


def test_a_missing_entry_file_names_its_key_and_file(tmp_path):
    snap = make_snapshot(tmp_path / "s")
    file = entry_file(snap, "text")
    file.unlink()
    with pytest.raises(SnapshotError) as info:
        Context.load(snap)["text"]
    assert f"the file {str(file)!r} of the entry 'text' is missing" in str(info.value)


def test_an_intact_but_unreadable_entry_says_so(tmp_path):
    ns: dict = {"__name__": "vanishing_module"}
    exec("class Thing:\n    pass\n", ns)
    ctx = Context(thing=ns["Thing"]())
    import sys
    import types

    module = types.ModuleType("vanishing_module")
    module.Thing = ns["Thing"]
    sys.modules["vanishing_module"] = module
    try:
        ctx.store(tmp_path / "s")
    finally:
        del sys.modules["vanishing_module"]
    with pytest.raises(SnapshotError, match=r"the entry 'thing' .* is intact but cannot be read back"):
        Context.load(tmp_path / "s")["thing"]


def test_manifest_damage_and_foreign_directories(tmp_path):
    snap = make_snapshot(tmp_path / "s")
    (snap / MANIFEST).write_text("{not json")
    with pytest.raises(SnapshotError, match=r"manifest.json is damaged"):
        Context.load(snap)
    (snap / MANIFEST).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SnapshotError, match="is not a job-orchestra snapshot manifest"):
        Context.load(snap)
    (snap / MANIFEST).write_text(json.dumps({"format": "job-orchestra-snapshot", "format_version": 1, "entries": 3}))
    with pytest.raises(SnapshotError, match=r"manifest\.json is damaged: the manifest lacks the field 'created'"):
        Context.load(snap)


def test_a_newer_format_is_refused_with_advice(tmp_path):
    snap = make_snapshot(tmp_path / "s")
    manifest = json.loads((snap / MANIFEST).read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (snap / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(SnapshotError, match=rf"format version {FORMAT_VERSION + 1}, newer .* upgrade job-orchestra"):
        Context.load(snap)


def test_paths_that_are_not_snapshots(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Context.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SnapshotError, match="is an empty directory"):
        Context.load(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("a,b\n")
    with pytest.raises(SnapshotError, match=r"has no manifest\.json"):
        Context.load(tmp_path / "other")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SnapshotError, match="is a file, not a snapshot"):
        Context.load(tmp_path / "file.txt")


def test_an_entry_file_name_cannot_leave_the_snapshot(tmp_path):
    snap = make_snapshot(tmp_path / "s")
    manifest = json.loads((snap / MANIFEST).read_text())
    manifest["entries"][0]["file"] = "../../etc/passwd"
    (snap / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(SnapshotError, match=r"entry 0 of the manifest: 'file' must be a plain file name"):
        Context.load(snap)  # refused as a whole, before any file is opened


# -- signatures ------------------------------------------------------------------------------------------------
def test_signed_snapshots_round_trip(tmp_path):
    snap = make_snapshot(tmp_path / "s", key=b"secret")
    loaded = Context.load(snap, key=b"secret")
    assert loaded.big == list(range(20_000)) and loaded.small == {"a": 1}
    assert Context.load(snap, key="secret").text == "hello"  # str keys are UTF-8 bytes
    assert Context.load(snap).text == "hello"  # without key= nothing is checked beyond the checksums


def test_unsigned_snapshot_refused_when_a_key_is_given(tmp_path):
    snap = make_snapshot(tmp_path / "s")
    with pytest.raises(SnapshotError, match="is not signed, but key= was given"):
        Context.load(snap, key=b"secret")


def test_wrong_key_or_altered_manifest_refused(tmp_path):
    snap = make_snapshot(tmp_path / "s", key=b"secret")
    with pytest.raises(SnapshotError, match="signature does not match"):
        Context.load(snap, key=b"other")
    manifest = json.loads((snap / MANIFEST).read_text())
    manifest["entries"][0]["blake3"] = "0" * 64
    (snap / MANIFEST).write_text(json.dumps(manifest, indent=2))
    with pytest.raises(SnapshotError, match="altered after it was signed"):
        Context.load(snap, key=b"secret")


def test_an_altered_entry_of_a_signed_snapshot_is_refused_before_unpickling(tmp_path):
    snap = make_snapshot(tmp_path / "s", key=b"secret")
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('payload ran')",))

    entry_file(snap, "text").write_bytes(pickle.dumps(Boom()))
    loaded = Context.load(snap, key=b"secret")
    with pytest.raises(SnapshotError, match="the entry 'text' is damaged"):
        loaded["text"]  # refused on its size and checksum: the payload never runs


def test_signature_covers_the_pipeline(tmp_path):
    class One(Step):
        def run(self):
            return 1

    ctx = Context()
    head = One(ctx=ctx)
    head.materialize()
    ctx.store(tmp_path / "s", pipeline=head, key="k")
    (tmp_path / "s" / "pipeline.dill").write_bytes(b"\x80\x05N.")  # a valid pickle of None
    loaded = Context.load(tmp_path / "s", key="k")
    with pytest.raises(SnapshotError, match="the stored pipeline is damaged"):
        _ = loaded.pipeline


@pytest.mark.parametrize(("key", "error"), [(123, TypeError), (b"", ValueError), ("", ValueError)])
def test_bad_keys(tmp_path, key, error):
    with pytest.raises(error, match="key="):
        Context().store(tmp_path / "s", key=key)
    assert not (tmp_path / "s").exists()
    snap = make_snapshot(tmp_path / "t")
    with pytest.raises(error, match="key="):
        Context.load(snap, key=key)
