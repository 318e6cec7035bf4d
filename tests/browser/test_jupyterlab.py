"""The quickstart in a real browser: JupyterLab on localhost, Debian's headless Chromium driven by Playwright.

Runs every cell, checks the dashboard rendered (sliders, buttons, a plot image), moves the batch
slider, clicks Build and sees a new row in the results table, clicks Export and finds the plan file
on disk, and saves a screenshot (its path is printed). Playwright never downloads a browser here:
it drives /usr/bin/chromium (`make browser-deps` installs it).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_quickstart.ipynb"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ALL_SECONDS = 420     # every cell of the quickstart, including its three builds
BUILD_SECONDS = 120       # one Build click
NEW_BATCH = 12


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("WORKBENCH_ALLOW_NO_BROWSER") == "1":
        pytest.skip("no /usr/bin/chromium and WORKBENCH_ALLOW_NO_BROWSER=1")
    pytest.fail("the browser test needs Debian's chromium at /usr/bin/chromium: run `make browser-deps` "
                "(apt-get install chromium), or set WORKBENCH_ALLOW_NO_BROWSER=1 to skip it")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a free localhost port with a token, serving a folder with the quickstart."""
    _require_chromium()
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "MPLBACKEND": "Agg", "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no pop-up over the screenshot
    log = tmp_path / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={work}", f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
               f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False", "--allow-root"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield SimpleLab(base, token, work, log)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


class SimpleLab:
    def __init__(self, base: str, token: str, folder: Path, log: Path):
        self.base, self.token, self.folder, self.log = base, token, folder, log

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={self.token}"


@pytest.fixture
def page(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # A persistent context is how Playwright takes a fresh --user-data-dir.
        context = pw.chromium.launch_persistent_context(str(tmp_path / "chromium"), executable_path=str(CHROMIUM),
                                                        headless=True, args=CHROMIUM_FLAGS,
                                                        viewport={"width": 1400, "height": 1800})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            context.close()


def _results_rows(page) -> int:
    return page.locator(".wb-results table.wb-results-table tbody tr:not(.wb-empty)").count()


def _run_all_cells(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _set_batch(page, value: int) -> None:
    """Type into the batch slider's readout (what a user does for an exact value), then press Enter."""
    readout = page.locator(".wb-batch .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")


@pytest.fixture
def shots(page):
    """Where screenshots go; a failing test leaves failure.png there (and says so)."""
    ARTIFACTS.mkdir(exist_ok=True)
    yield ARTIFACTS
    # pytest keeps the failing test's exception in sys.last_value only after the run; checking the
    # page's state is simpler: always keep the last view, named for what it is.
    page.screenshot(path=str(ARTIFACTS / "last_page.png"))
    print(f"last page: {ARTIFACTS / 'last_page.png'}")


# JavaScript: the prompts of the code cells ("[ ]:", "[*]:", "[3]:") and the kernel's state.
PROMPTS = "() => Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')).map(e => e.textContent)"
KERNEL = "() => document.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status')"
DONE = re.compile(r"exported plan on \d+ test digits: \d")  # the last cell's output (a number, not its source)


def _kernel_ready(page) -> None:
    """The kernel is connected and idle (right after loading, the indicator says idle before it connects)."""
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=120_000)
    page.wait_for_function(f"() => ({KERNEL})() === 'idle'", timeout=120_000)


def _run_notebook(page, url: str, seconds: float) -> None:
    """Open the notebook and Run > Run All Cells until the last cell's output shows; a run that stalls
    (the kernel idle, cells never queued) is started again, once."""
    page.goto(url)
    page.locator(".jp-Notebook").wait_for()
    _kernel_ready(page)
    deadline, tries = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        if tries == 0 or _stalled(page):
            assert tries < 2, f"Run All Cells stalled twice; prompts {page.evaluate(PROMPTS)}"
            page.locator(".jp-Notebook .jp-Cell").first.click()  # focus the notebook: Run menu items act on it
            _run_all_cells(page)
            tries += 1
        if page.locator(".jp-OutputArea-output", has_text=DONE).count():
            return
        if page.locator(".jp-OutputArea-output", has_text="Traceback").count():
            raise AssertionError("a cell failed: " + page.locator(".jp-OutputArea-output", has_text="Traceback")
                                 .first.inner_text()[-2000:])
        time.sleep(2)
    raise AssertionError(f"the notebook did not finish in {seconds} s; prompts {page.evaluate(PROMPTS)}")


def _stalled(page) -> bool:
    """Idle with a cell never run, checked twice a few seconds apart (a queue being handed over looks idle)."""
    for _ in range(3):
        if page.evaluate(KERNEL) != "idle" or "[ ]:" not in page.evaluate(PROMPTS):
            return False
        time.sleep(2)
    return True


def test_quickstart_dashboard_in_chromium(lab, page, shots):
    start = time.perf_counter()
    _run_notebook(page, lab.url(NOTEBOOK.name), RUN_ALL_SECONDS)

    # Every cell ran (the last one printed the exported plan's accuracy): the dashboard is there.
    page.locator(".wb-dashboard").wait_for()
    ran_all = time.perf_counter() - start
    assert page.locator(".wb-dashboard .widget-slider").count() >= 4          # batch, workspace, opt, timing
    for css in ("wb-build", "wb-calibrate", "wb-cancel", "wb-export"):
        assert page.locator(f"button.{css}").count() == 1, css
    plot = page.locator("img.wb-plot").first
    plot.wait_for()
    assert plot.evaluate("img => img.complete && img.naturalWidth > 100")
    rows_before = _results_rows(page)
    assert rows_before >= 4  # baseline + fp32, fp16, int8

    # Move the batch slider, press Build: a new row (and this batch's baseline row) appears.
    _set_batch(page, NEW_BATCH)
    page.locator("button.wb-build").click()
    page.locator(".wb-results td", has_text=f" b{NEW_BATCH}").first.wait_for(timeout=BUILD_SECONDS * 1000)
    page.wait_for_function(f"() => !document.querySelector('button.wb-build').disabled",
                           timeout=BUILD_SECONDS * 1000)
    assert _results_rows(page) > rows_before
    assert page.locator(".wb-status", has_text="Built").count() == 1

    # Export: the plan file lands next to the notebook.
    name = page.locator(".wb-export-name input")
    name.fill("browser_export.plan")
    name.press("Enter")
    page.locator("button.wb-export").click()
    plan = lab.folder / "browser_export.plan"
    deadline = time.monotonic() + 30
    while not plan.is_file() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert plan.is_file() and plan.stat().st_size > 1000
    assert (lab.folder / "browser_export.build.json").is_file()
    page.locator(".wb-status", has_text="Exported").wait_for()

    shot = shots / "quickstart_dashboard.png"
    page.locator(".wb-dashboard").screenshot(path=str(shot))
    print(f"\nscreenshot: {shot}\nall cells ran in {ran_all:.1f} s; whole test {time.perf_counter() - start:.1f} s")
