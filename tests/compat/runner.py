"""Build and run one pipeline from a JSON spec with whichever job-orchestra is importable.

Used by tests/test_compat_1_1.py to run the same pipelines with 1.1.4 and with this version. Only the 1.1
API is used here. Reads a JSON list of specs on stdin; prints, for each, the plans before and after,
the results and the Contexts' contents.
"""

import contextlib
import io
import json
import sys

from job_orchestra import Context, Step


class Probe(Step):
    def run(self, *inputs):
        out = [str(self), list(inputs)]
        if str(self).endswith("d"):  # some steps return dicts, some return None
            return {"name": str(self), "n": len(inputs)}
        if str(self).endswith("n"):
            return None
        return out


def plain(x):
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def one(spec):
    contexts = [Context() for _ in range(spec["contexts"])]
    for c in contexts:
        c.pop("context_meta", None)
    steps = []
    for _i, node in enumerate(spec["nodes"]):
        ctx = contexts[node["ctx"]] if node["ctx"] is not None else None
        if ctx is not None and node["prefilled"]:
            ctx[node["name"]] = ["cached", node["name"]]
        steps.append(Probe(depends_on=[steps[d] for d in node["deps"]], ctx=ctx, name_alias=node["name"]))
    head = steps[-1]
    out = {}
    for label in ("plan_before", "result", "plan_after", "second_result"):
        if label.startswith("plan"):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                head.execution_plan()
            out[label] = buf.getvalue().strip("\n").splitlines()[1:]
        else:
            out[label] = plain(head.materialize())
    out["contexts"] = [plain({k: v for k, v in c.items() if k != "context_meta"}) for c in contexts]
    return out


def main():
    specs = json.loads(sys.stdin.read())
    print(json.dumps([one(spec) for spec in specs]))


if __name__ == "__main__":
    main()
