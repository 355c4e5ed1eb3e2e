"""Stored values through value_codec: pickle protocol 5 with out-of-band buffers, BLAKE3 computed while written
and read, read once. Generated values go through snapshots (store/load) and caches (Context.open); generated
faults (a flipped byte in the stream, a buffer, the padding or the header; a cut; an extension) are refused
before anything is unpickled; entries written before this format (fixtures) still load."""

from __future__ import annotations

import io
import json
import mmap
import random
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from job_orchestra import CacheError, Context, SnapshotError, value_codec
from job_orchestra.errors import HiddenKeyError
from tests.fixtures import make_sha256_entries

FIXTURES = Path(__file__).parent / "fixtures" / "sha256_entries"
DTYPES = [
    "bool",
    "int8",
    "uint16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
    "complex128",
    "<U3",
    "S2",
    "M8[s]",
]
STRUCTURED = np.dtype([("a", "i4"), ("b", "f8"), ("c", "S3")])


# -- generated values ----------------------------------------------------------------------------------------
@st.composite
def arrays(draw: Any) -> np.ndarray:
    """numpy arrays of many dtypes and shapes (0-size too), in C or Fortran order or non-contiguous views."""
    kind = draw(st.sampled_from(["plain", "plain", "object", "structured"]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40))
    if kind == "object":
        items = draw(st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), min_size=4, max_size=4))
        array = np.empty(shape, dtype=object)
        for index in np.ndindex(shape):
            array[index] = items[sum(index) % 4]
    elif kind == "structured":
        array = np.zeros(shape, dtype=STRUCTURED)
        array["a"] = draw(st.integers(-5, 5))
        array["b"] = np.arange(array.size, dtype="f8").reshape(shape) / 3
    else:
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        array = draw(hnp.arrays(dtype, shape, elements=_elements(dtype)))
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    if layout == "F":
        array = np.asfortranarray(array)
    elif layout == "strided" and array.ndim:
        array = array[::2]
    return array


def _elements(dtype: np.dtype) -> Any:
    if dtype.kind == "M":
        return st.integers(0, 2**31).map(lambda s: np.datetime64(s, "s"))
    if dtype.kind in "fc":
        return None if dtype.itemsize < 8 else st.floats(allow_nan=True, allow_infinity=True, width=64)
    return None


def big_arrays() -> Any:
    """Arrays large enough to go out of band (IN_BAND bytes or more)."""
    return st.tuples(
        st.sampled_from(["float64", "int16", "complex64", "uint8"]), st.integers(1, 3000), st.booleans()
    ).map(
        lambda t: (np.asfortranarray if t[2] else np.ascontiguousarray)(
            (np.arange(t[1] * 3) % 251).astype(t[0]).reshape(t[1], 3)
        )
    )


def frames() -> Any:
    return st.integers(0, 300).map(
        lambda n: pd.DataFrame(
            {"f": np.arange(n) / 7, "i": np.arange(n, dtype="int32"), "s": [f"r{i}" for i in range(n)]},
            index=pd.RangeIndex(n) * 2,
        )
    )


leaves = st.one_of(
    arrays(),
    big_arrays(),
    frames(),
    frames().map(lambda f: f["f"]),
    st.binary(max_size=3000),
    st.binary(max_size=3000).map(bytearray),
    st.integers(),
    st.text(max_size=20),
    st.none(),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.sampled_from(["a", "b", ".hidden", ".x", "c"]), inner, max_size=4),
    ),
    max_leaves=8,
)


def shared(value: Any) -> Any:
    """The value with an array appearing twice (it must come back as one object)."""
    array = np.arange(2000, dtype="float64")
    return {"one": array, "again": [array, value], "value": value}


def visible(value: Any) -> Any:
    """What a snapshot keeps of ``value``: dicts without their keys starting with '.'."""
    if isinstance(value, dict):
        return {k: visible(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("."))}
    if isinstance(value, list):
        return [visible(v) for v in value]
    if isinstance(value, tuple):
        return tuple(visible(v) for v in value)
    return value


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types; arrays also with the same dtype, shape, order and writeable."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        order_kept = a.flags.c_contiguous == b.flags.c_contiguous or not (a.flags.c_contiguous or a.flags.f_contiguous)
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and order_kept
            and b.flags.writeable
            and (
                np.array_equal(a, b, equal_nan=a.dtype.kind in "fc") if a.dtype != object else a.tolist() == b.tolist()
            )
        )
    if isinstance(a, (pd.DataFrame, pd.Series)):
        kinds = (lambda x: list(x.dtypes)) if isinstance(a, pd.DataFrame) else (lambda x: [x.dtype])
        return a.equals(b) and kinds(a) == kinds(b) and a.index.equals(b.index)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_shared(out: Any) -> None:
    assert out["one"] is out["again"][0]


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- round trips -------------------------------------------------------------------------------------------
@SETTINGS
@given(value=values)
def test_encode_then_decode_is_exact_and_to_bytes_is_what_write_to_writes(value):
    value = shared(value)
    encoded = value_codec.encode(value)
    out = io.BytesIO()
    fields = encoded.write_to(out)
    data = encoded.to_bytes()
    assert out.getvalue() == data and len(data) == encoded.nbytes
    assert fields == value_codec.digest_fields(data)
    record = {"size": encoded.nbytes, **fields}
    value_codec.verify(data, record)
    for entry in (bytearray(data), data):  # a writable buffer (read from a file), or bytes (an object store)
        back = value_codec.decode(entry, record)
        assert same(visible(value), back)
        check_shared(back)


@SETTINGS
@given(value=values, threaded=st.booleans())
def test_snapshot_round_trip(tmp_path_factory, monkeypatch, value, threaded):
    monkeypatch.setattr(value_codec, "THREADED", 0 if threaded else 1 << 40)  # the hashing thread, or none
    where = tmp_path_factory.mktemp("snap") / "s"
    Context(v=shared(value), n=1).store(where)
    back = Context.load(where)
    assert same(visible(shared(value)), back["v"]) and back["n"] == 1
    check_shared(back["v"])


@SETTINGS
@given(value=values, threaded=st.booleans())
def test_cache_round_trip(tmp_path_factory, monkeypatch, value, threaded):
    monkeypatch.setattr(value_codec, "THREADED", 0 if threaded else 1 << 40)
    where = tmp_path_factory.mktemp("cache") / "c"
    ctx = Context.open(where)
    ctx._put_result("v", shared(value), "0" * 32 + ":test")
    back = Context.open(where)  # a fresh open: read from disk
    assert same(visible(shared(value)), back["v"])
    check_shared(back["v"])


def test_large_arrays_are_out_of_band_aligned_and_built_over_the_memory_read(tmp_path):
    big = np.arange(300_000, dtype="float64").reshape(1000, 300)
    frame = pd.DataFrame({"a": np.arange(100_000), "b": np.arange(100_000) / 2})
    Context(big=big, fortran=np.asfortranarray(big), frame=frame).store(tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    for record in manifest["entries"]:
        if record["key"] == "context_meta":
            continue
        assert record["format"] == "oob1" and len(record["blake3"]) == 64 and "sha256" not in record
        data = (tmp_path / "s" / record["file"]).read_bytes()
        stream, count = struct.unpack_from("<QQ", data, 8)
        lengths = struct.unpack_from(f"<{count}Q", data, 24)
        assert sum(lengths) >= 1_600_000 and stream < 10_000  # the data is outside the pickle stream
        _, offsets, total = value_codec._layout(stream, list(lengths))
        assert total == len(data) and all(at % 64 == 0 for at in offsets)
    back = Context.load(tmp_path / "s")
    for key in ("big", "fortran"):
        array = back[key]
        base = array
        while isinstance(base, np.ndarray):
            base = base.base
        assert array.flags.writeable and isinstance(base, memoryview)
        assert isinstance(base.obj, (mmap.mmap, bytearray))  # over the buffer read, not a copy
        array[0, 0] = -1.0  # writeable indeed
    assert back["fortran"].flags.f_contiguous and np.array_equal(back["fortran"][1:], big[1:])
    assert back["frame"].equals(frame)


@pytest.mark.parametrize("first", ["dill", "cloudpickle"])
def test_large_bytes_go_out_of_band_and_come_back_equal_and_shared(tmp_path, first):
    blob = bytes(range(256)) * 8192  # 2 MiB
    mutable = bytearray(blob[::-1])
    value = {"blob": blob, "again": blob, "mutable": mutable, "small": b"x" * 10, "empty": b""}
    encoded = value_codec.encode(value, first=first)
    assert encoded.format == "oob1" and encoded.nbytes >= 2 * len(blob)
    Context(v=value).store(tmp_path / first)
    back = Context.load(tmp_path / first)["v"]
    assert back == value and type(back["mutable"]) is bytearray and type(back["blob"]) is bytes
    assert back["blob"] is back["again"]
    back["mutable"][0] ^= 1  # a bytearray of its own


def test_small_values_stay_plain_pickle_streams(tmp_path):
    Context(n=1, text="x" * 100, small=np.arange(10)).store(tmp_path / "s")
    for record in json.loads((tmp_path / "s" / "manifest.json").read_text())["entries"]:
        assert "format" not in record and "blake3" in record


def test_hidden_key_errors_and_fallbacks_are_kept():
    class Odd(dict):
        def __reduce__(self):
            return (Odd, ())

    with pytest.raises(HiddenKeyError):
        value_codec.encode(Odd({".h": 1}))
    fn = lambda x: x + 1  # noqa: E731  (dill pickles it; both picklers round trip it)
    for first in ("dill", "cloudpickle"):
        encoded = value_codec.encode({"f": fn, "a": np.ones(500)}, first=first)
        data = encoded.to_bytes()
        back = value_codec.decode(data, {"size": len(data), **value_codec.digest_fields(data)})
        assert back["f"](1) == 2 and encoded.pickler == first


# -- tampering -------------------------------------------------------------------------------------------
def _regions(data: bytes) -> dict[str, tuple[int, int]]:
    """Where the header, stream, paddings and buffers of an oob1 entry are (non-empty ranges)."""
    stream, count = struct.unpack_from("<QQ", data, 8)
    lengths = list(struct.unpack_from(f"<{count}Q", data, 24))
    stream_at, offsets, _ = value_codec._layout(stream, lengths)
    regions = {"header": (0, 24 + 8 * count), "stream": (stream_at, stream_at + stream)}
    if stream_at > 24 + 8 * count:
        regions["padding"] = (24 + 8 * count, stream_at)
    for i, (at, n) in enumerate(zip(offsets, lengths, strict=True)):
        regions[f"buffer {i}"] = (at, at + n)
    return regions


def _spy(monkeypatch) -> list:
    calls: list = []
    real = value_codec.decode
    monkeypatch.setattr(value_codec, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


FAULTS = ["flip header", "flip stream", "flip padding", "flip buffer", "truncate", "extend", "swap format"]


def _tamper(path: Path, record: dict[str, Any], rng: random.Random, fault: str) -> str:
    data = bytearray(path.read_bytes())
    regions = _regions(bytes(data))
    if fault.startswith("flip"):
        names = [n for n in regions if n.startswith(fault[5:])]
        start, end = regions[rng.choice(names)]
        at = rng.randrange(start, end)
        data[at] ^= 1 << rng.randrange(8)
    elif fault == "truncate":
        del data[rng.randrange(len(data)) :]
    elif fault == "extend":
        data += bytes(rng.randrange(1, 100))
    else:  # the record no longer says "oob1": its (matching) bytes must not be read as a plain stream
        record.pop("format")
        return "record"
    path.write_bytes(bytes(data))
    return "file"


@pytest.mark.parametrize("threaded", [False, True])
def test_tampered_snapshot_entries_are_refused_before_unpickling(tmp_path, monkeypatch, threaded):
    monkeypatch.setattr(value_codec, "THREADED", 0 if threaded else 1 << 40)
    reference = tmp_path / "ref"
    Context(v={"a": np.arange(5000, dtype="float64"), "b": np.ones((40, 30), order="F"), "t": "x" * 50}).store(
        reference
    )
    calls = _spy(monkeypatch)
    rng = random.Random(13)
    outcomes: dict[str, int] = {}
    for case in range(70):
        fault = FAULTS[case % len(FAULTS)]
        snap = tmp_path / f"s{case}"
        shutil.copytree(reference, snap)
        manifest = json.loads((snap / "manifest.json").read_text())
        record = next(r for r in manifest["entries"] if r["key"] == "v")
        if _tamper(snap / record["file"], record, rng, fault) == "record":
            (snap / "manifest.json").write_text(json.dumps(manifest))
        before = len(calls)
        with pytest.raises(SnapshotError, match="'v' is damaged") as info:
            Context.load(snap)["v"]
        assert len(calls) == before, f"{fault}: unpickled before it was refused"
        assert "Nothing of it was unpickled" in str(info.value)
        outcomes[fault] = outcomes.get(fault, 0) + 1
    assert set(outcomes) == set(FAULTS)
    print(f"snapshot tampering: {outcomes}")


def test_tampered_cache_values_are_refused_before_unpickling(tmp_path, monkeypatch):
    reference = tmp_path / "ref"
    Context.open(reference)._put_result("v", [np.arange(9000), np.ones(700)], "0" * 32 + ":t")
    calls = _spy(monkeypatch)
    rng = random.Random(5)
    for case in range(42):
        fault = FAULTS[case % len(FAULTS)]
        where = tmp_path / f"c{case}"
        shutil.copytree(reference, where)
        (record_file,) = (where / "index").iterdir()
        record = json.loads(record_file.read_text())
        if _tamper(where / record["file"], record, rng, fault) == "record":
            record_file.write_text(json.dumps(record))
        with pytest.raises(CacheError, match="'v' is damaged"):
            Context.open(where)["v"]
        assert calls == [], f"{fault}: unpickled before it was refused"


def test_a_plain_entry_said_to_be_out_of_band_is_refused(tmp_path):
    Context(n=[1, 2, 3]).store(tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    next(r for r in manifest["entries"] if r["key"] == "n")["format"] = "oob1"
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SnapshotError, match="'n' is damaged: its record says it is an out-of-band entry"):
        Context.load(tmp_path / "s")["n"]


def test_verify_names_what_differs():
    data = value_codec.encode(np.arange(1000)).to_bytes()
    record = {"size": len(data), **value_codec.digest_fields(data)}
    with pytest.raises(ValueError, match=f"has {len(data) - 1} bytes, its record says {len(data)}"):
        value_codec.verify(data[:-1], record)
    with pytest.raises(ValueError, match="BLAKE3 checksum does not match"):
        value_codec.verify(bytes(len(data)), record)
    with pytest.raises(ValueError, match="no checksum"):
        value_codec.verify(data, {"size": len(data)})


# -- entries written before out-of-band buffers -----------------------------------------------------------
def _expected() -> dict[str, Any]:
    return {k: visible(v) for k, v in make_sha256_entries.values().items()}


def test_old_snapshots_still_load():
    manifest = json.loads((FIXTURES / "snapshot" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and all("sha256" in r and "blake3" not in r for r in manifest["entries"])
    back = Context.load(FIXTURES / "snapshot")
    for key, value in _expected().items():
        assert same(value, back[key]), key
    assert back["mixed"]["shared"][0] is back["mixed"]["shared"][1]


def test_old_caches_still_load_and_take_new_entries(tmp_path):
    where = tmp_path / "cache"
    shutil.copytree(FIXTURES / "cache", where)
    ctx = Context.open(where)
    for key, value in _expected().items():
        assert same(value, ctx[key]), key
    ctx._put_result("new", np.arange(5000), "f" * 32 + ":new")
    again = Context.open(where)
    assert np.array_equal(again["new"], np.arange(5000)) and same(_expected()["array"], again["array"])


def test_old_snapshot_entries_are_still_checked(tmp_path):
    shutil.copytree(FIXTURES / "snapshot", tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    record = next(r for r in manifest["entries"] if r["key"] == "array")
    path = tmp_path / "s" / record["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="'array' is damaged: its SHA-256 checksum does not match"):
        Context.load(tmp_path / "s")["array"]


@pytest.mark.parametrize("where", ["s3", "memory"])
def test_object_store_caches_round_trip_out_of_band_values(request, where):
    pytest.importorskip("fsspec")
    url = request.getfixturevalue("s3_url") if where == "s3" else f"memory://jo-codec-{random.getrandbits(48):012x}"
    trust = {"trust": True} if where == "s3" else {}
    value = shared({"frame": pd.DataFrame({"a": np.arange(20_000) / 3}), "f": np.ones((300, 20), order="F")})
    Context.open(url, **trust)._put_result("v", value, "0" * 32 + ":s3")
    back = Context.open(url, **trust)["v"]
    assert same(value, back)
    check_shared(back)
    assert back["value"]["f"].flags.writeable and back["value"]["f"].flags.f_contiguous
