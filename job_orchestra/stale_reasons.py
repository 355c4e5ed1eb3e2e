"""Why a recorded fingerprint differs from the current one, in words: ``code: Train.run``,
``constant CV_SEED``, ``parameters: lr 0.1 → 0.2``, ``upstream: TrainForest``.

A fingerprint is recorded as ``"<total>:<code>:<parameters>:<inputs>"``, followed (since job-orchestra 2.0's
exact fingerprints) by a small record on two more lines: the JSON of the code's parts (label -> 8 hex
digits) and, for a step with parameters, the JSON of its parameters (name -> [8 hex digits, short text of
the value or null]); a reader of ``Step.from_file()`` inputs has a fourth line, the JSON of those inputs'
files (input name -> {path: 8 hex digits}, or their count). Only the total decides whether a result is
fresh; the record only explains. A fingerprint without a record (from an older snapshot) still loads: its
reasons are the coarse ``code`` and ``parameters``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "code_reason",
    "encode_code_parts",
    "files_record",
    "param_reason",
    "parse_record",
    "split_fingerprint",
    "with_files_line",
]


def encode_code_parts(parts: dict[str, str]) -> str:
    """The code line of a record (parts shortened to 8 hex digits: they explain, the total decides)."""
    return json.dumps({k: parts[k][:8] for k in sorted(parts)}, separators=(",", ":"), ensure_ascii=False)


def encode_params(record: dict[str, list]) -> str:
    """The parameters line of a record."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def split_fingerprint(fingerprint: str) -> tuple[list[str], dict[str, str] | None, dict[str, list] | None]:
    """``([total, code, params, inputs], code parts, parameters)`` of a recorded fingerprint (None when absent)."""
    core, _, rest = fingerprint.partition("\n")
    code_line, _, params_line = rest.partition("\n")
    return core.split(":"), parse_record(code_line), parse_record(params_line.partition("\n")[0])


def with_files_line(fingerprint: str, line: str) -> str:
    """``fingerprint`` with a fourth record line: the files of its data-file inputs (see file_input)."""
    lines = fingerprint.split("\n")[:3]
    lines += [""] * (3 - len(lines))
    return "\n".join([*lines, line])


def files_record(fingerprint: str) -> dict | None:
    """The fourth record line of a fingerprint (input name -> its files and their digests), if any."""
    parts = fingerprint.split("\n", 3)
    return parse_record(parts[3]) if len(parts) == 4 else None


def parse_record(line: str) -> Any:
    if not line:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _plural(kind: str, items: list[str]) -> str:
    return f"{kind}: {', '.join(items)}"


def code_reason(old: dict[str, str] | None, new: dict[str, str] | None) -> str:
    """``code: Train.run, helper make_model; constant CV_SEED`` from the code parts before and now."""
    if old is None or new is None:
        return "code"
    code: list[str] = []
    constants: list[str] = []
    libraries: list[str] = []
    changed = [label for label in sorted(set(old) | set(new)) if old.get(label) != new.get(label)]
    owners = {label.partition(".")[0] for label in changed if "." in label and " " not in label}
    for label in changed:
        before, now = old.get(label), new.get(label)
        if label.startswith("class ") and label[6:] in owners:
            continue  # "class X" (its name and bases) changed along with X's members: they say it better
        note = " (new)" if before is None else " (removed)" if now is None else ""
        if label.startswith("constant "):
            constants.append(label + note)
        elif label.startswith("library "):
            libraries.append(label.removeprefix("library ") + note)
        else:
            code.append(label + note)
    out = []
    if code:
        out.append(_plural("code", code))
    out.extend(constants)
    if libraries:
        out.append(_plural("library", libraries))
    return "; ".join(out) or "code (another Python or job-orchestra version)"


def param_reason(old: dict[str, list] | None, new: dict[str, list] | None) -> str:
    """``parameters: lr 0.1 → 0.2, data`` from the parameter records before and now."""
    if old is None or new is None:
        return "parameters"
    items = []
    for key in sorted(set(old) | set(new)):
        before, now = old.get(key), new.get(key)
        if before is None:
            items.append(f"{key} (new)")
        elif now is None:
            items.append(f"{key} (removed)")
        elif before[0] != now[0]:
            if before[1] is not None and now[1] is not None:
                items.append(f"{key} {before[1]} → {now[1]}")
            else:
                items.append(key)
    return _plural("parameters", items) if items else "parameters"
