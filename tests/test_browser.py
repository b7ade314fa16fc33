"""What a student gets in JupyterLab: notebook 02's simulator widget in a real browser, and
notebooks that open, run and save without changing a tracked file.

:func:`test_notebook_02_in_jupyterlab` (marker ``browser``) starts JupyterLab on a free local
port with a token, in a temporary folder holding a copy of ``notebooks/02_...py``; drives
Debian's headless Chromium with selenium to open it as a notebook (jupytext's viewer, as
``jupytext-config set-default-viewer python`` sets it up), runs all cells from the *Run*
menu, screenshots the simulator's figure, moves the *seed* slider one step with the arrow key,
screenshots the figure again and compares the two, then saves with Ctrl+S and checks that the
copy is byte-identical to the tracked file.  It is skipped, with the reason, where selenium,
``chromium`` or ``chromedriver`` is missing (``apt-get install chromium chromium-driver``;
``.ci/run`` does that).  ``SPINNET_CHROMIUM`` / ``SPINNET_CHROMEDRIVER`` point it at other
binaries.  Screenshots and the server log stay in pytest's ``tmp_path``.

The other tests need no browser: each notebook survives jupytext's round trip byte for byte,
with the metadata JupyterLab adds on a run, and the installed ``python3`` kernel has the
display name the notebooks' headers record (JupyterLab writes the running kernel's name back
into the file on save).
"""
from __future__ import annotations

import difflib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
NOTEBOOK_02 = ROOT / "notebooks" / "02_coded_mask_simulator.py"
KERNEL = "python3"


# ---------------------------------------------------------------------------------------
# No browser needed: the tracked .py files stay as they are
# ---------------------------------------------------------------------------------------
def _diff(a: str, b: str, name: str) -> str:
    return "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), name, f"{name} (saved)", n=1))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_jupytext_round_trip_is_byte_identical(path):
    """Read and write back, as JupyterLab's jupytext contents manager does on save, after
    adding what opening and running adds (kernel and language info, widget state, cell
    execution metadata): the file must not change."""
    import jupytext
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    text = path.read_text(encoding="utf-8")
    nb = jupytext.reads(text, fmt="py:percent")
    assert jupytext.writes(nb, fmt="py:percent") == text, _diff(text, jupytext.writes(nb, fmt="py:percent"), path.name)
    try:
        display_name = KernelSpecManager().get_kernel_spec(KERNEL).display_name
    except NoSuchKernel:
        display_name = nb.metadata["kernelspec"]["display_name"]
    nb.metadata["kernelspec"] = {"display_name": display_name, "language": "python", "name": KERNEL}
    nb.metadata["language_info"] = {"name": "python", "version": sys.version.split()[0],
                                    "mimetype": "text/x-python", "file_extension": ".py"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    nb.metadata.setdefault("jupytext", {}).setdefault("text_representation", {})["jupytext_version"] = "0.0.0"
    for i, cell in enumerate(nb.cells):
        cell.metadata.update(trusted=True, scrolled=True, editable=True, slideshow={"slide_type": ""},
                             execution={"iopub.status.idle": "2026-01-01T00:00:00Z"},
                             jupyter={"outputs_hidden": False, "source_hidden": False})
        if cell.cell_type == "code":
            cell.execution_count = i + 1
            cell.outputs = [{"output_type": "stream", "name": "stdout", "text": "x\n"}]
    saved = jupytext.writes(nb, fmt="py:percent")
    assert saved == text, "saving from JupyterLab would change the file:\n" + _diff(text, saved, path.name)


def test_installed_kernel_matches_notebook_headers():
    """JupyterLab writes the running kernel's display name into the notebook on save."""
    import jupytext
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(f"no Jupyter kernel named {KERNEL!r}: python -m ipykernel install --sys-prefix --name {KERNEL}")
    for path in NOTEBOOKS:
        kernelspec = jupytext.read(path).metadata.get("kernelspec", {})
        assert kernelspec.get("name") == KERNEL, path.name
        assert kernelspec.get("display_name") == spec.display_name, (
            f"{path.name} records kernel display name {kernelspec.get('display_name')!r} but the installed "
            f"{KERNEL!r} kernel ({spec.resource_dir}) is {spec.display_name!r}: JupyterLab would rewrite the "
            f"header on save. Reinstall it: python -m ipykernel install --sys-prefix --name {KERNEL} "
            f"--display-name {kernelspec.get('display_name')!r} (the Makefile does)")


# ---------------------------------------------------------------------------------------
# The real browser
# ---------------------------------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1600,1200", "--force-device-scale-factor=1"]
LAB_SETTINGS = {  # a fresh settings folder: .py opens as a notebook, no news or update checks
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": '{"defaultViewers": {"python": "Jupytext Notebook"}}',
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": '{"fetchNews": "false", "checkForUpdates": false}',
}
# The simulator's cell (found by its code, not by anything the widget sets), its widget and
# the image the widget shows.
CELL_JS = ("const cell = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')]"
           ".find(c => (c.querySelector('.jp-InputArea')?.textContent || '').includes('simulator_widget('));")
FIGURE_JS = CELL_JS + "const img = cell && cell.querySelector('.jp-OutputArea .jupyter-widgets img');"
#: Run All waits this long for the whole notebook (its default mode, as a student runs it).
RUN_ALL_TIMEOUT = float(os.environ.get("SPINNET_BROWSER_RUN_TIMEOUT", 900))
WIDGET_JS = CELL_JS + ("return cell && [...cell.querySelectorAll('.jp-OutputArea .jupyter-widgets')]"
                       ".find(w => w.querySelector('.widget-slider') && w.querySelector('.widget-output'));")


def _browser_binaries() -> tuple[str, str]:
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install -e '.[notebooks]')")
    pytest.importorskip("jupytext", reason="jupytext is not installed (pip install -e '.[notebooks]')")
    chromium = os.environ.get("SPINNET_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = os.environ.get("SPINNET_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, p in (("chromium", chromium), ("chromedriver", driver)) if not p]
    if missing:
        pytest.skip(f"no {' or '.join(missing)} on PATH: the browser test needs Chromium and its driver "
                    f"(Debian: apt-get install chromium chromium-driver; .ci/run installs them)")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """JupyterLab serving ``root`` on a free local port (the test's own server and settings)."""

    def __init__(self, root: Path, work: Path):
        self.root, self.token = root, "spinnet-lite-browser-test"
        env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "JUPYTER_TOKEN")}
        for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                         ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                         ("IPYTHONDIR", "ipython")):
            env[var] = str(work / sub)
        for rel, text in LAB_SETTINGS.items():
            (work / "settings" / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / "settings" / rel).write_text(text)
        self.log_path = work / "jupyterlab.log"
        for attempt in range(3):  # the free port can be taken between probe and bind
            self.port = _free_port()
            self.log = open(self.log_path, "w")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={self.port}",
                 "--port-retries=0", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                 f"--ServerApp.root_dir={root}", "--LabApp.extension_manager=readonly", "--LabApp.news_url=None"],
                cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
            if self._wait_ready(180):
                return
            self.stop()
        pytest.fail(f"JupyterLab did not start; log:\n{self.log_path.read_text()[-3000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url('api/status')}", timeout=2) as r:
                    if r.status == 200:
                        return True
            except OSError:
                time.sleep(0.3)
        return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def _chrome(chromium: str, driver_path: str, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # with both paths given, selenium downloads nothing
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver_path))


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def _assert_figure(pixels: np.ndarray, what: str) -> None:
    """A drawn figure: mostly white page with a good share of dark/coloured image pixels."""
    assert pixels.shape[0] > 100 and pixels.shape[1] > 400, f"{what}: figure area only {pixels.shape[:2]} px"
    ink = float((pixels.min(axis=2) < 200).mean())
    assert 0.05 < ink < 0.95, f"{what}: {ink:.1%} of the figure area is drawn (blank or not a figure)"
    assert pixels.std() > 30, f"{what}: the figure area is nearly uniform"


# Runs in the page: records the figure area's height and the number of images in it at every
# animation frame and DOM change, from now until read back: a redraw that empties the area
# (flicker, a jump of the page) shows up as a zero count or a drop in height.
WATCH_JS = """
const box = arguments[0].querySelector('.widget-output');
const rec = window.__spinnetWatch = {minHeight: Infinity, minImages: Infinity, frames: 0, stop: false};
const look = () => {
  rec.minHeight = Math.min(rec.minHeight, box.getBoundingClientRect().height);
  rec.minImages = Math.min(rec.minImages, box.querySelectorAll('img').length);
};
new MutationObserver(look).observe(box, {childList: true, subtree: true, attributes: true});
const frame = () => { look(); rec.frames++; if (!rec.stop) requestAnimationFrame(frame); };
requestAnimationFrame(frame);
return box.getBoundingClientRect().height;
"""


@pytest.mark.browser
@pytest.mark.slow
def test_notebook_02_in_jupyterlab(tmp_path):
    chromium, driver_path = _browser_binaries()
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    copy = root / "notebooks" / NOTEBOOK_02.name
    original = NOTEBOOK_02.read_bytes()
    copy.write_bytes(original)
    lab = Lab(root, tmp_path)
    browser = None
    step = "starting Chromium"
    try:
        browser = _chrome(chromium, driver_path, tmp_path / "chromium-profile")

        def js(script, *args):
            return browser.execute_script(script, *args)

        def wait(seconds, condition, message):
            nonlocal step
            step = message
            try:
                return WebDriverWait(browser, seconds, poll_frequency=0.2).until(condition, message)
            except TimeoutException:
                browser.save_screenshot(str(tmp_path / "timeout.png"))
                raise

        # open notebook 02 as a notebook; its kernel starts
        browser.get(lab.url(f"lab/tree/notebooks/{copy.name}"))
        wait(60, EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook .jp-Cell")),
             "notebook 02 did not open as a notebook")
        kernel_name = ".jp-NotebookPanel .jp-KernelName"
        status = ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator"
        wait(180, lambda b: js(f"return document.querySelector('{kernel_name}')?.textContent") not in (None, "", "No Kernel")
             and js(f"return document.querySelector('{status}')?.getAttribute('data-status')") == "idle",
             "the notebook's kernel did not start")

        # Run > Run All Cells
        browser.find_element(By.XPATH, "//li[contains(@class,'lm-MenuBar-item')][.//*[text()='Run']]").click()
        wait(10, EC.element_to_be_clickable((By.CSS_SELECTOR, "li.lm-Menu-item[data-command='runmenu:run-all']")),
             "no 'Run All Cells' in the Run menu").click()
        wait(RUN_ALL_TIMEOUT, lambda b: js(f"return document.querySelector('{status}')?.getAttribute('data-status')") == "idle"
             and js("const p = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]"
                    ".map(e => e.textContent.trim()); return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t))"),
             "not every cell of notebook 02 ran")
        tracebacks = js("return [...document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output')]"
                        ".map(e => e.textContent).filter(t => t.includes('Traceback (most recent call last)'))")
        assert not tracebacks, f"notebook 02 raised:\n{tracebacks[0][:3000]}"
        wait(5, lambda b: js(CELL_JS + "return !!cell"), "no cell of notebook 02 calls simulator_widget(")
        figure = wait(20, lambda b: js(FIGURE_JS + "return img && img.complete && img.naturalWidth > 0 ? img : null"),
                      "the simulator widget showed no figure after Run All")

        # the figure: first screenshot
        step = "screenshots"
        js("arguments[0].scrollIntoView({block: 'center'})", figure)
        first_src = figure.get_attribute("src")
        first = figure.screenshot_as_png
        (tmp_path / "figure_before.png").write_bytes(first)
        before = _pixels(first)
        _assert_figure(before, "before the slider moved")

        # move the seed slider one step with the keyboard, watching the figure area meanwhile
        widget = js(WIDGET_JS)
        assert widget is not None, "the simulator's sliders did not render"
        labels = [e.text for e in widget.find_elements(By.CSS_SELECTOR, ".widget-slider .widget-label")]
        handles = widget.find_elements(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
        readouts = widget.find_elements(By.CSS_SELECTOR, ".widget-slider .widget-readout")
        assert len(labels) == len(handles) == len(readouts) and "seed" in labels, labels
        i = labels.index("seed")
        seed0 = int(readouts[i].text)
        height0 = js(WATCH_JS, widget)
        handles[i].click()
        handles[i].send_keys(Keys.ARROW_RIGHT)
        wait(30, lambda b: readouts[i].text == str(seed0 + 1), "the seed slider did not move")
        figure = wait(180, lambda b: js(FIGURE_JS + "return img && img.src !== arguments[0] && img.complete "
                                       "&& img.naturalWidth > 0 ? img : null", first_src),
                      "the figure was not redrawn after the slider moved")
        time.sleep(0.3)  # a few more animation frames for the watcher
        watch = js("window.__spinnetWatch.stop = true; return window.__spinnetWatch")
        second = figure.screenshot_as_png
        (tmp_path / "figure_after.png").write_bytes(second)
        browser.save_screenshot(str(tmp_path / "page_after.png"))
        after = _pixels(second)
        _assert_figure(after, "after the slider moved")
        assert after.shape == before.shape, f"the figure changed size: {before.shape} -> {after.shape}"
        changed = float((np.abs(after - before).max(axis=2) > 40).mean())
        assert changed > 0.02, f"only {changed:.2%} of the figure's pixels changed when the seed changed"
        assert watch["frames"] > 0 and watch["minImages"] >= 1, f"the figure area was emptied during the redraw: {watch}"
        assert watch["minHeight"] >= 0.9 * height0, f"the figure area collapsed during the redraw: {watch}, {height0}"
        assert js(CELL_JS + "return cell.querySelectorAll('.jp-OutputArea .jupyter-widgets img').length") == 1, \
            "the old figure was not replaced"

        # save with Ctrl+S (command mode on the widget cell): the file must not change
        step = "saving"
        mtime = copy.stat().st_mtime_ns
        widget.find_element(By.XPATH, "ancestor::div[contains(@class,'jp-CodeCell')]//div[contains(@class,"
                                      "'jp-InputPrompt')]").click()
        ActionChains(browser).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
        wait(60, lambda b: copy.stat().st_mtime_ns != mtime and not js(
            "return !!document.querySelector('.jp-mod-current.jp-mod-dirty, .lm-TabBar-tab.jp-mod-current.jp-mod-dirty')"),
             "Ctrl+S did not save the notebook")
        step = "comparing the saved file with the tracked one"
        saved = copy.read_bytes()
        assert saved == original, ("opening, running and saving notebook 02 in JupyterLab changed it:\n"
                                   + _diff(original.decode(), saved.decode(), NOTEBOOK_02.name))
    except Exception as exc:
        if browser is not None:
            try:
                browser.save_screenshot(str(tmp_path / "failure.png"))
            except Exception:
                pass
        raise AssertionError(f"browser test failed while {step!r} (screenshots, server log in {tmp_path})") from exc
    finally:
        if browser is not None:
            browser.quit()
        lab.stop()
