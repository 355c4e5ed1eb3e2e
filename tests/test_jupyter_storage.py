"""Where results live in the HTML plan (in memory / on disk / in s3://...), the cache's size, and the widget's
prune and invalidate controls, against a Context that has the persistent Context's location API."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from bs4 import BeautifulSoup

from job_orchestra import Context, ExecutionPlan, Step
from jupyter_ext.plan_html import render_plan
from jupyter_ext.storage_view import where


class DiskUsage(NamedTuple):
    total_bytes: int
    entries: int
    per_step: dict


class StoredContext(Context):
    """A Context bound to ``url`` as ``Context.open`` binds one: results it wrote out are at the url, the
    others in memory; each key keeps a list of stored versions (their sizes)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        object.__setattr__(self, "_url", url)
        object.__setattr__(self, "_versions", {})
        object.__setattr__(self, "pruned", [])

    @property
    def store_url(self) -> str:
        return self._url

    def write_out(self, key: str, *sizes: int) -> None:
        self._versions.setdefault(key, []).extend(sizes or (100,))

    def location(self, key: str) -> str | None:
        if key not in self:
            return None
        return self._url if key in self._versions else "memory"

    def disk_usage(self) -> DiskUsage:
        per = {k: sum(v) for k, v in self._versions.items()}
        return DiskUsage(sum(per.values()), sum(len(v) for v in self._versions.values()), per)

    def prune(self, *, older_than=None, keep=None, max_bytes=None) -> list:
        removed = []
        for key, versions in self._versions.items():
            if keep is not None and len(versions) > keep:
                removed += [(key, size) for size in versions[: len(versions) - keep]]
                del versions[: len(versions) - keep]
        self.pruned.append(keep)
        return removed

    def invalidate(self, *names):
        for name in names:
            self._versions.pop(str(name), None)
        return super().invalidate(*names)


class Load(Step):
    def run(self):
        return [1, 2, 3]


class Clean(Step):
    def run(self, xs):
        return xs[1:]


class Report(Step):
    def run(self, xs):
        return len(xs)


def pipeline(ctx: Context) -> Step:
    return Report(depends_on=[Clean(depends_on=[Load(ctx=ctx)], ctx=ctx)], ctx=ctx)


def cells(plan: ExecutionPlan) -> dict[str, str]:
    page = BeautifulSoup(render_plan(plan), "html.parser")
    return {tr["data-step"]: tr.select_one(".jo-where").get_text() for tr in page.select("tr[data-step]")}


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("cache/", "on disk"),
        ("file:///data/cache", "on disk"),
        ("C:/cache", "on disk"),
        ("s3://bucket/team/cache", "in s3://bucket/team/cache"),
        ("gs://a-very-long-bucket-name/with/a/deep/prefix/cache", "in gs://a-very-long-bucket-name/\u2026/cache"),
    ],
)
def test_each_row_says_where_its_result_lives(url, words):
    ctx = StoredContext(url)
    head = pipeline(ctx)
    head.materialize()
    ctx.write_out("Load", 10, 20)
    ctx.write_out("Clean")
    ctx.invalidate("Report")
    plan = head.execution_plan(show=False)
    assert cells(plan) == {"Load": words, "Clean": words, "Report": ""}
    head.materialize()  # Report's result: in memory only (this Context has not written it out)
    plan = head.execution_plan(show=False)
    assert cells(plan)["Report"] == "in memory" == where(ctx, "Report")
    page = BeautifulSoup(render_plan(plan), "html.parser")
    assert [th.get_text() for th in page.select("thead th")][-1] == "Stored"
    assert page.select_one(".jo-cache-size").get_text() == "3 stored versions, 130 B"


def test_a_plan_in_memory_only_has_no_stored_column():
    plan = pipeline(Context()).execution_plan(show=False)
    page = BeautifulSoup(render_plan(plan), "html.parser")
    assert "Stored" not in [th.get_text() for th in page.select("thead th")]
    assert page.select(".jo-where") == [] and page.select(".jo-cache") == []


def test_the_widget_prunes_and_invalidates_persisted_results():
    pytest.importorskip("ipywidgets")
    from jupyter_ext.widget import PipelineWidget

    plain = PipelineWidget(pipeline(Context()))
    assert plain.cache_box.layout.display == "none"  # nothing persisted: no prune control
    ctx = StoredContext("cache/")
    head = pipeline(ctx)
    head.materialize()
    for name in ("Load", "Clean", "Report"):
        ctx.write_out(name, 50, 50, 50)
    panel = PipelineWidget(head)
    assert panel.cache_box.layout.display == "flex"
    assert "9 stored versions, 450 B" in panel.plan_view.value
    panel.prune_keep.value = 1
    panel.prune_button.click()
    assert ctx.pruned == [1]
    assert "Pruned 6 stored versions from cache/ (300 B freed)" in panel.status.value
    assert "3 stored versions, 150 B" in panel.plan_view.value  # the plan was redrawn
    assert panel.invalidate(["Clean"]) == ["Clean", "Report"]
    assert ctx.disk_usage().entries == 1 and "1 stored versions, 50 B" in panel.plan_view.value
    page = BeautifulSoup(panel.plan_view.value, "html.parser")
    assert page.select_one("tr[data-step='Clean'] .jo-where").get_text() == ""


def test_prune_without_a_persisted_context_says_so():
    pytest.importorskip("ipywidgets")
    from jupyter_ext.widget import PipelineWidget

    panel = PipelineWidget(pipeline(Context()))
    assert panel.prune(keep=1) == []
    assert "no Context of this pipeline is stored on disk" in panel.status.value


def test_a_result_named_like_the_location_api_is_not_taken_for_it():
    """Contexts read keys as attributes (``ctx.Load``): a step named store_url or location must not make
    an in-memory Context look persisted (and the lookup must not scan every key for every step)."""
    ctx = Context()
    ctx["store_url"] = "s3://not/a/store"
    ctx["location"] = "disk"
    plan = pipeline(ctx).execution_plan(show=False)
    assert "Stored" not in render_plan(plan)
    assert where(ctx, "store_url") == "in memory" and where(ctx, "Load") is None


def test_with_a_context_opened_on_a_directory(tmp_path):
    """The same display on the real persistent Context (``Context.open``): on disk, its size, prune, invalidate."""
    pytest.importorskip("ipywidgets")
    from jupyter_ext.widget import PipelineWidget

    ctx = Context.open(tmp_path / "cache")
    head = pipeline(ctx)
    head.materialize()
    plan = head.execution_plan(show=False)
    assert cells(plan) == {"Load": "on disk", "Clean": "on disk", "Report": "on disk"}
    usage = ctx.disk_usage()
    assert usage.entries == 3
    panel = PipelineWidget(head)
    assert panel.cache_box.layout.display == "flex"
    assert "3 stored versions" in panel.plan_view.value
    assert panel.invalidate(["Report"]) == ["Report"]
    assert ctx.disk_usage().entries == 2 and "2 stored versions" in panel.plan_view.value
    removed = panel.prune(keep=0)
    assert len(removed) == 2 and ctx.disk_usage().entries == 0
    assert "Pruned 2 stored versions" in panel.status.value and "0 stored versions, 0 B" in panel.plan_view.value
