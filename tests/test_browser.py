"""A real browser: JupyterLab on 127.0.0.1 and Debian's headless Chromium driven by Playwright.

Opens a copy of ``examples/03-widget-and-live-plans.ipynb``, runs it, checks that the SVG graph and the HTML
plan render and that a live view shown in the first cell followed the later cells, then uses the widget:
Invalidate a step, see the plan change, click Materialize, see it change back. Screenshots (light and dark
themes) go to ``artifacts/`` at the repository root (git-ignored).

Skipped, with the reason, only when Chromium or Playwright is missing; CI installs both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "03-widget-and-live-plans.ipynb"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = uuid.uuid4().hex
ARGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync"]

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); CI installs it"
)
expect = playwright_api.expect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


class Lab:
    """A JupyterLab server for the tests, with its own config, settings and workspace folders."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "notebooks"
        self.root.mkdir()
        self.settings = base / "user-settings"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        _write_json(
            self.settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings",
            {"fetchNews": "false", "checkForUpdates": False},
        )
        self.set_theme("JupyterLab Light")
        env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(base / "config"),
            JUPYTER_RUNTIME_DIR=str(base / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(self.settings),
            JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
            PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        )
        self.log = open(base / "lab.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={self.root}",
                "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited early; see {base / 'lab.log'}")
            try:
                urllib.request.urlopen(f"{self.url}/api", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer within 60 s; see {base / 'lab.log'}") from None
                time.sleep(0.2)

    def set_theme(self, theme: str) -> None:
        _write_json(self.settings / "@jupyterlab/apputils-extension/themes.jupyterlab-settings", {"theme": theme})

    def _request(self, method: str, path: str) -> None:
        req = urllib.request.Request(f"{self.url}{path}", method=method, headers={"Authorization": f"token {TOKEN}"})
        urllib.request.urlopen(req, timeout=10).close()

    def close_sessions(self) -> None:
        req = urllib.request.Request(f"{self.url}/api/sessions", headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as answer:
            for session in json.load(answer):
                self._request("DELETE", f"/api/sessions/{session['id']}")

    def copy_example(self) -> str:
        name = f"example-{uuid.uuid4().hex[:8]}.ipynb"
        shutil.copy(NOTEBOOK, self.root / name)
        return name

    def stop(self) -> None:
        try:
            self._request("POST", "/api/shutdown")
            self.proc.wait(30)
        except Exception:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = Lab(tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(lab, browser):
    expect.set_options(timeout=60_000)
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    yield context.new_page()
    context.close()
    lab.close_sessions()


def _open_and_run_all(page, lab, name: str):
    page.goto(f"{lab.url}/lab/workspaces/{uuid.uuid4().hex[:8]}/tree/{name}?token={TOKEN}")
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    expect(page.locator(".jp-StatusBar-TextItem", has_text="Python 3 (ipykernel) | Idle")).to_be_visible()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator("li[data-command='runmenu:run-all']").click()
    prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt")
    count = prompts.count()
    assert count > 10
    for i in range(count):
        expect(prompts.nth(i)).to_have_text(re.compile(r"\[\d+\]:"))
    return panel


def _shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    expect(page.locator("#jupyterlab-splash")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / name))


def test_example_renders_and_the_widget_runs_the_pipeline(lab, page):
    lab.set_theme("JupyterLab Light")
    panel = _open_and_run_all(page, lab, lab.copy_example())

    # The SVG graph (image/svg+xml, shown by Lab as an <img>) and the inline SVG of the step view.
    graph = panel.locator(".jp-OutputArea-output[data-mime-type='image/svg+xml'] img").first
    expect(graph).to_be_visible()
    svg = urllib.parse.unquote(graph.get_attribute("src"))
    assert "step&#45;Summary" in svg and "runs on materialize()" in svg
    expect(panel.locator(".jp-RenderedHTMLCommon .jo-step svg").first).to_be_visible()

    # The first cell's live view was drawn before anything ran, and followed every later cell.
    first_view = panel.locator(".jp-RenderedHTMLCommon .jo-step").first
    expect(first_view.locator("table.jo-plan-table tr[data-step]")).to_have_count(5)
    expect(first_view.locator(".jo-title")).to_contain_text("5 cached")
    _shoot(page, "browser-light-notebook.png")

    widget = panel.locator(".jo-pipeline-widget")
    widget.scroll_into_view_if_needed()
    expect(widget.locator(".jo-title")).to_contain_text("0 to run on materialize()")

    widget.locator(".widget-select-multiple select").select_option(["Clean"])
    widget.locator(".jupyter-widgets.widget-button", has_text="Invalidate selected").click()
    expect(widget.locator(".jo-title")).to_contain_text("4 to run on materialize()")
    expect(widget.locator(".jo-status")).to_contain_text("Dropped the results of Clean")
    expect(first_view.locator(".jo-title")).to_contain_text("4 to run on materialize()")  # live, no cell re-run
    _shoot(page, "browser-light-widget-invalidated.png")

    widget.locator(".jupyter-widgets.widget-button", has_text="Materialize").click()
    expect(widget.locator(".jo-status")).to_contain_text("Materialized Summary")
    expect(widget.locator(".jo-title")).to_contain_text("0 to run on materialize()")
    expect(widget.locator("tr[data-step='Clean'] .jo-value")).to_have_text("list of 66")
    expect(first_view.locator(".jo-title")).to_contain_text("0 to run on materialize()")
    _shoot(page, "browser-light-widget-materialized.png")


def test_example_in_the_dark_theme(lab, page):
    lab.set_theme("JupyterLab Dark")
    try:
        panel = _open_and_run_all(page, lab, lab.copy_example())
        expect(page.locator("body")).to_have_attribute("data-jp-theme-name", "JupyterLab Dark")
        expect(panel.locator("table.jo-plan-table").first).to_be_visible()
        # Badges keep dark text on their own fill whatever the theme.
        badge = panel.locator("table.jo-plan-table span[title='cached']").first
        expect(badge).to_have_css("color", "rgb(27, 27, 27)")
        _shoot(page, "browser-dark-notebook.png")
        widget = panel.locator(".jo-pipeline-widget")
        widget.scroll_into_view_if_needed()
        _shoot(page, "browser-dark-widget.png")
    finally:
        lab.set_theme("JupyterLab Light")


# -- the edit loop: redefine a class cell, rebind; stop a run, resume it; the kernel reads Busy meanwhile ---------
EDIT_LOOP = [
    """import time
from job_orchestra import Context, Step
ctx = Context()
class Load(Step):
    def run(self):
        return 2
class Train(Step):
    def run(self, x):
        return x * 10
head = Train(Load(ctx=ctx), ctx=ctx)
head.execution_plan()""",
    "head.materialize()",
    """class Train(Step):  # the cell edited and run again
    def run(self, x):
        return x * 100""",
    "from jupyter_ext import show\nshow(head.execution_plan(), live=False)  # a picture of this moment",
    "head.rebind()",
    "head.materialize()",
]
STOP_AND_RESUME = [
    """import time
from job_orchestra import Context, Step
class Slow(Step):
    def __init__(self, k, **kwargs):
        super().__init__(**kwargs)
        self.k = k
    def run(self, *inputs):
        time.sleep(2)
        return self.k
ctx = Context()
step = None
for k in range(8):
    step = Slow(k, depends_on=[step] if step else None, ctx=ctx, name_alias=f"s{k}")
slow = step
slow.execution_plan()""",
    "slow.materialize()",
    "slow.materialize()  # run again after the stop: only what is left",
]


def _write_notebook(lab, cells: list[str]) -> str:
    import nbformat

    name = f"loop-{uuid.uuid4().hex[:8]}.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, lab.root / name)
    return name


def _open(page, lab, name: str):
    page.goto(f"{lab.url}/lab/workspaces/{uuid.uuid4().hex[:8]}/tree/{name}?token={TOKEN}")
    expect(page.locator(".jp-StatusBar-TextItem", has_text="Python 3 (ipykernel) | Idle")).to_be_visible()
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def _run_all(page, panel) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator("li[data-command='runmenu:run-all']").click()


def _wait_done(panel, upto: int) -> None:
    prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt")
    for i in range(upto):
        expect(prompts.nth(i)).to_have_text(re.compile(r"\[\d+\]:"))


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_the_edit_loop_marks_a_redefined_class_and_rebind_runs_the_new_code(lab, page, theme):
    lab.set_theme(theme)
    tag = "dark" if "Dark" in theme else "light"
    try:
        panel = _open(page, lab, _write_notebook(lab, EDIT_LOOP))
        _run_all(page, panel)
        _wait_done(panel, len(EDIT_LOOP))
        cells = panel.locator(".jp-CodeCell")
        assert cells.nth(1).locator(".jp-OutputArea-output").last.inner_text().strip() == "20"
        # Cell 4 showed the plan right after the class cell ran again: the step is marked, with the reason.
        marked = cells.nth(3).locator("table.jo-plan-table tr[data-step='Train']")
        expect(marked.locator(".jo-redefined")).to_have_text("class Train was redefined after this step was built")
        expect(cells.nth(3).locator(".jo-title")).to_contain_text("call Train.rebind()")
        # After rebind() the step runs the new code (2 * 100), and the first live view follows: no mark left.
        expect(cells.nth(5).locator(".jp-OutputArea-output").last).to_have_text("200")
        expect(cells.nth(0).locator(".jo-redefined")).to_have_count(0)
        expect(cells.nth(0).locator(".jo-title")).to_contain_text("0 to run on materialize()")
        cells.nth(3).scroll_into_view_if_needed()
        _shoot(page, f"browser-{tag}-edit-loop.png")
    finally:
        lab.set_theme("JupyterLab Light")


def test_the_stop_button_shows_an_interrupt_and_the_next_run_resumes(lab, page):
    lab.set_theme("JupyterLab Light")
    panel = _open(page, lab, _write_notebook(lab, STOP_AND_RESUME))
    _run_all(page, panel)
    cells = panel.locator(".jp-CodeCell")
    run_cell = cells.nth(1)
    progress = run_cell.locator(".jo-progress")
    expect(progress).to_contain_text(re.compile(r"[23]/8 steps, running"))
    # The kernel reads Busy while the pipeline runs (progress traffic must not make it look Idle).
    expect(page.locator(".jp-StatusBar-TextItem", has_text="Python 3 (ipykernel) | Busy")).to_be_visible()
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar [data-command='notebook:interrupt-kernel']").click()
    stopped = run_cell.locator(".jo-static-progress")
    expect(stopped).to_contain_text(re.compile(r"interrupted: (\d) of 8 steps done, kept; \d left"))
    expect(stopped).not_to_contain_text("failed")
    error = run_cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    expect(error).to_contain_text("KeyboardInterrupt")
    expect(error).not_to_contain_text("scheduler.py")
    done = int(re.search(r"interrupted: (\d) of 8", stopped.inner_text()).group(1))
    _shoot(page, "browser-light-interrupted.png")

    expect(page.locator(".jp-StatusBar-TextItem", has_text="Python 3 (ipykernel) | Idle")).to_be_visible()
    cells.nth(2).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    resumed = cells.nth(2).locator(".jo-static-progress")
    expect(resumed).to_contain_text(f"{8 - done}/{8 - done} steps, done")
    expect(cells.nth(2).locator(".jp-OutputArea-output").last).to_have_text("7")
    _shoot(page, "browser-light-resumed.png")


# -- a mapped step: one group row / one stacked node, expanded on request, light and dark ----------------------
MAPPED = [
    """from job_orchestra import Context, Step
class Fold(Step):
    def __init__(self, k=0, **kwargs):
        super().__init__(**kwargs)
        self.k = k
    def run(self):
        return self.k
class Report(Step):
    def run(self, folds):
        return sum(folds)
ctx = Context()
folds = Fold.map(k=range(20), ctx=ctx, name_alias="cv_fold")
for item in folds.items[:7]:
    item.materialize()
head = Report(depends_on=[folds], ctx=ctx)
head.execution_plan()""",
    "head.dependency_graph()",
    "head.dependency_graph(expand=True)",
]


def _luminance(css_rgb: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css_rgb)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_a_mapped_step_is_one_group_in_the_plan_and_the_graph(lab, page, theme, tmp_path):
    lab.set_theme(theme)
    dark = "Dark" in theme
    try:
        panel = _open(page, lab, _write_notebook(lab, MAPPED))
        _run_all(page, panel)
        _wait_done(panel, len(MAPPED))
        expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false" if dark else "true")
        cells = panel.locator(".jp-CodeCell")
        plan = cells.nth(0).locator("table.jo-plan-table")
        group = plan.locator("tr.jo-group-row[data-group='cv_fold']")
        expect(group.locator(".jo-counts")).to_have_text("\u00d720: 7 cached, 13 to run")
        expect(plan.locator(":scope > tbody > tr")).to_have_count(2)  # the group and Report: no item rows
        first_item = group.locator("tr[data-step='cv_fold[0]']")
        expect(first_item).to_be_hidden()  # collapsed: 20 items > the 12 shown open
        summary = group.locator("summary.jo-group-head")
        expect(summary).to_have_css("cursor", "pointer")
        colour = summary.evaluate("e => getComputedStyle(e).color")
        assert (_luminance(colour) > 0.6) is dark  # the counts follow the theme's text colour: readable on both
        expect(group.locator("span[title='cached']").first).to_have_css("color", "rgb(27, 27, 27)")
        cells.nth(0).scroll_into_view_if_needed()
        expect(page.locator("#jupyterlab-splash")).to_have_count(0)
        page.screenshot(path=str(tmp_path / "plan-collapsed.png"))
        summary.click()  # a <details>: opens without any script (works in untrusted notebooks too)
        expect(first_item).to_be_visible()
        expect(group.locator("table.jo-group-items tr[data-step]")).to_have_count(20)
        expect(group.locator("tr[data-step='cv_fold[7]'] span[title='runs on materialize()']")).to_be_visible()
        page.screenshot(path=str(tmp_path / "plan-expanded.png"))

        # The graph (an <img> of image/svg+xml): one stacked node by default, every item with expand=True.
        images = panel.locator(".jp-OutputArea-output[data-mime-type='image/svg+xml'] img")
        expect(images).to_have_count(2)
        collapsed = urllib.parse.unquote(images.nth(0).get_attribute("src"))
        expanded = urllib.parse.unquote(images.nth(1).get_attribute("src"))
        assert 'id="group&#45;cv_fold"' in collapsed and "step&#45;cv_fold[" not in collapsed
        assert "20: 7 cached, 13 to run" in collapsed
        assert expanded.count('id="step&#45;cv_fold[') == 20 and 'id="cluster&#45;cv_fold"' in expanded
        heights = [images.nth(i).evaluate("e => e.naturalHeight") for i in range(2)]
        assert heights[1] > 3 * heights[0] > 0  # the items stack up when drawn
        images.nth(0).scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "graph-collapsed.png"))
        images.nth(1).scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "graph-expanded.png"))
    finally:
        lab.set_theme("JupyterLab Light")
