"""``Step.from_file()`` on a 10,000-file directory: the cost of fingerprinting data files.

    python benchmarks/bench_file_input.py             # 10,000 files of 1 KiB, 5 runs
    python benchmarks/bench_file_input.py --files 1000 --size 65536

Each run, in a fresh temporary directory dated an hour back (as data files usually are): ``cold`` is the
first plan of a reader of the directory (every file read and hashed), ``warm`` a second plan with nothing
changed (one ``stat`` per file, no file read), ``one changed`` a plan after one file was edited (that file
alone read again). The medians are printed with the number of files hashed by each plan.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from job_orchestra import Context, Step, file_input  # noqa: E402


class Count(Step):
    def run(self, paths):
        return len(paths)


def one_run(files: int, size: int) -> dict[str, tuple[float, int]]:
    """``{phase: (seconds, files hashed)}`` for one fresh directory."""
    hashed = [0]
    real = file_input._hash_file

    def counting(path: str) -> str:
        hashed[0] += 1
        return real(path)

    file_input._hash_file = counting
    old = time.time() - 3600
    out = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "data"
            payload = b"x" * size
            for i in range(files):
                path = root / f"{i // 1000:02d}" / f"f{i:05d}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(payload + str(i).encode())
                os.utime(path, (old, old))
            ctx = Context()
            head = Count(depends_on=Step.from_file(str(root)), ctx=ctx)
            for phase in ("cold", "warm", "one changed"):
                if phase == "one changed":
                    (root / "04" / "f04321.csv").write_bytes(b"edited")
                hashed[0] = 0
                start = time.perf_counter()
                plan = head.execution_plan(show=False)
                out[phase] = (time.perf_counter() - start, hashed[0])
                if phase == "cold":
                    head.materialize()
            assert plan["Count"].reason is not None and "f04321.csv changed" in plan["Count"].reason
    finally:
        file_input._hash_file = real
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run(args.files, args.size) for _ in range(args.runs)]
    print(
        f"{args.files} files of {args.size} bytes, {args.runs} runs (median [min-max]), load {os.getloadavg()[0]:.2f}"
    )
    for phase in runs[0]:
        times = [r[phase][0] for r in runs]
        hashed = {r[phase][1] for r in runs}
        print(
            f"  {phase:12} {statistics.median(times) * 1000:8.1f} ms [{min(times) * 1000:.1f}-{max(times) * 1000:.1f}]"
            f"  files hashed: {'/'.join(map(str, sorted(hashed)))}"
        )


if __name__ == "__main__":
    main()
