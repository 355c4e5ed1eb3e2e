"""Mapped steps (``Step.map``) in the HTML plan, the SVG graph and the progress line: one group with counts,
expanded when small or when asked, and a 10,000-item map drawn as one row / one node."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup
from hypothesis import given, settings
from hypothesis import strategies as st

from job_orchestra import Context, Step
from job_orchestra.errors import UnknownGroupError
from job_orchestra.group_view import EXPAND_ITEMS, counts_text, expanded_groups
from jupyter_ext import runs
from jupyter_ext.bundles import render
from jupyter_ext.graph_svg import render_svg
from jupyter_ext.plan_html import MAX_ROWS, progress_html, render_plan

pytest.importorskip("graphviz")


class Fold(Step):
    def __init__(self, *deps: Step, k: int = 0, **kw: object) -> None:
        super().__init__(depends_on=list(deps) or kw.pop("depends_on", None), **kw)
        self.k = k

    def run(self, *inputs: object) -> int:
        return self.k


class ListFiles(Step):
    def run(self) -> list[int]:
        return [1, 2, 3]


class Report(Step):
    def run(self, *xs: object) -> object:
        return xs


def mapped(n: int, cached: int = 0) -> tuple[Step, Step]:
    """``cv_fold`` over ``range(n)`` (the first ``cached`` items computed) collected by ``Report``."""
    ctx = Context()
    group = Fold.map(k=range(n), ctx=ctx, name_alias="cv_fold")
    for item in group.items[:cached]:
        item.materialize()
    return Report(depends_on=[group], ctx=ctx), group


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def naive_counts(n: int, cached: int, running: set[int], failed: set[int]) -> str:
    parts = [f"{cached:,} cached"] if cached else []
    if n - cached:
        parts.append(f"{n - cached:,} to run")
    if running:
        parts.append(f"{len(running):,} running")
    if failed:
        parts.append(f"{len(failed):,} failed")
    return f"\u00d7{n:,}: " + ", ".join(parts)


MIXES = {
    "nothing cached": (0, set(), set()),
    "some cached, one running": (None, {-1}, set()),
    "all cached": ("all", set(), set()),
    "running and failed": (0, {0}, {-1}),
}


@pytest.mark.parametrize("n", [1, 5, 10_000])
@pytest.mark.parametrize("mix", list(MIXES))
def test_the_plan_shows_one_group_row_with_the_counts(n, mix):
    cached, running, failed = MIXES[mix]
    cached = n if cached == "all" else (n // 2 if cached is None else cached)
    running = {i % n for i in running if i % n >= cached}
    failed = {i % n for i in failed if i % n >= cached} - running
    head, _ = mapped(n, cached)
    plan = head.execution_plan(show=False)
    statuses = {f"cv_fold[{i}]": "running" for i in running} | {f"cv_fold[{i}]": "failed" for i in failed}
    page = soup(render_plan(plan, statuses))
    table = page.select_one("table.jo-plan-table")
    top = table.find("tbody", recursive=False).find_all("tr", recursive=False)
    assert [tr.get("data-group") or tr.get("data-step") for tr in top] == ["cv_fold", "Report"]
    row = top[0]
    assert row.select_one(".jo-counts").get_text() == naive_counts(n, cached, running, failed)
    details = row.select_one("details.jo-group")
    assert ("open" in details.attrs) is (n <= EXPAND_ITEMS)
    items = details.select("table.jo-group-items tr[data-step]")
    assert len(items) == min(n, MAX_ROWS)
    assert items[0]["data-step"] == "cv_fold[0]" and items[-1]["data-step"] == f"cv_fold[{n - 1}]"
    if n > MAX_ROWS:
        assert f"\u2026 {n - MAX_ROWS:,} more items" in details.get_text()
    if running:
        assert row.select_one("span[title='running']") is not None  # the group says an item runs
    # The text plan keeps one row per item, as 1.1 printed it.
    assert sum(1 for line in str(plan).splitlines() if "cv_fold[" in line) == n


@pytest.mark.parametrize("n", [1, 5, 10_000])
@pytest.mark.parametrize("expand", [None, True, False, ["cv_fold"]])
def test_the_graph_draws_one_stacked_node_or_every_item(n, expand):
    head, _ = mapped(n, cached=n // 2)
    plan = head.execution_plan(show=False)
    opened = "cv_fold" in expanded_groups(plan, expand)
    assert opened is (expand is True or expand == ["cv_fold"] or (expand is None and n <= EXPAND_ITEMS))
    svg = render_svg(plan, expand=expand)
    assert svg is not None
    assert svg.count('id="group&#45;cv_fold"') == 1
    group_node = re.search(r'<g id="group&#45;cv_fold".*?</a>\n</g>', svg, re.S)[0]
    assert "<polygon" in group_node and group_node.count("<polyline") >= 2  # box3d: a face and its depth edges
    assert counts_text(plan.groups["cv_fold"]) in group_node.replace("&#215;", "\u00d7")
    items_drawn = len(re.findall(r'id="step&#45;cv_fold\[', svg))
    large = n > 400  # drawings stop at MAX_NODES nodes: a huge group is collapsed even when asked
    assert items_drawn == (n if opened and not large else 0)
    assert ('id="cluster&#45;cv_fold"' in svg) is (opened and not large)
    graph = head.dependency_graph(expand=expand)
    assert graph.node_count == (n + 2 if opened else 2)


def test_expand_names_unknown_groups():
    head, _ = mapped(3)
    with pytest.raises(
        UnknownGroupError, match=r"expand= names no mapped step of this pipeline: nope \(its mapped steps: cv_fold\)"
    ):
        head.dependency_graph(expand=["nope"])
    with pytest.raises(KeyError):  # also a KeyError, as a missing name is
        render_plan(head.execution_plan(show=False), expand="nope")


def test_a_dynamic_group_not_yet_known_shows_a_placeholder():
    ctx = Context()
    files = ListFiles(ctx=ctx)
    group = Fold.map(k=files, ctx=ctx, name_alias="per_file")
    head = Report(depends_on=[group], ctx=ctx)
    plan = head.execution_plan(show=False)
    row = soup(render_plan(plan)).select_one("tr.jo-group-row[data-group='per_file']")
    assert row.select_one(".jo-counts").get_text() == "? items (known after ListFiles runs)"
    assert row.select_one("details") is None  # nothing to expand yet
    svg = render_svg(plan)
    assert "? items (known after ListFiles runs)" in svg
    head.materialize()
    plan = head.execution_plan(show=False)
    assert soup(render_plan(plan)).select_one(".jo-counts").get_text() == "\u00d73: 3 cached"
    assert len(re.findall(r'id="step&#45;per_file\[', render_svg(plan))) == 3


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 30),
    data=st.data(),
)
def test_group_counts_match_a_naive_model(n, data):
    cached = data.draw(st.integers(0, n))
    left = list(range(cached, n))
    running = set(data.draw(st.lists(st.sampled_from(left), unique=True))) if left else set()
    failed = set(data.draw(st.lists(st.sampled_from(left), unique=True))) - running if left else set()
    head, _ = mapped(n, cached)
    plan = head.execution_plan(show=False)
    statuses = {f"cv_fold[{i}]": "running" for i in running} | {f"cv_fold[{i}]": "failed" for i in failed}
    assert counts_text(plan.groups["cv_fold"], statuses) == naive_counts(n, cached, running, failed)
    html = render("step", plan, statuses)["text/html"]
    assert html.count('class="jo-group-row"') == 1


def test_the_progress_line_counts_items_and_folds_running_items():
    head, _ = mapped(6, cached=2)
    plan = head.execution_plan(show=False)
    run = runs.Run(plan, total=len(plan.to_run))
    assert run.group_total == {"cv_fold": 4}
    run.running = ["cv_fold[2]", "cv_fold[3]"]
    line = soup(progress_html(run)).get_text()
    assert "0/6 steps (cv_fold 0/4 items), running cv_fold \u00d72," in line
    tracker = runs.RunTracker()
    tracker.start(plan)
    for name in ("cv_fold[2]", "cv_fold[3]"):
        tracker.step_start(name)
        tracker.step_finish(name, 0.01)
    current = tracker.current()
    tracker.finish(plan, None)
    assert current.group_done == {"cv_fold": 2}
    assert "2/6 steps (cv_fold 2/4 items), done" in soup(progress_html(current)).get_text()
