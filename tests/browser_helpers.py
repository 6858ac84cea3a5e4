"""Helpers for the real-browser test: a private JupyterLab server and a Chromium page.

Facts this relies on (see ``shared/browser-testing.md``): Debian's Chromium at
``/usr/bin/chromium`` driven by Playwright for Python; JupyterLab started with
``--LabApp.expose_app_in_browser=True`` so that ``window.jupyterapp`` runs commands;
ipympl draws a figure on a canvas inside ``.jupyter-matplotlib`` and listens for
the mouse on the top-most canvas of that figure.

Examples
--------
::

    with LabServer(root_dir) as server, chromium_page() as page:
        nb = NotebookPage(page, server)
        nb.open("01-getting-started.ipynb")
        nb.run_all()
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now.

    Examples
    --------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """JupyterLab on 127.0.0.1 with private config, data, runtime and settings dirs.

    The kernel is this interpreter (``sys.executable``): a ``python3``
    kernelspec in the private data dir takes precedence over any other.

    Parameters
    ----------
    root_dir : Path
        What the server serves (a copy of the notebooks, so that the browser
        never saves over the originals).
    log_path : Path, optional
        Where the server's output goes.

    Examples
    --------
    ::

        with LabServer(tmp_path) as server:
            print(server.url("lab/tree/x.ipynb"))
    """

    def __init__(self, root_dir: Path, log_path: Path | None = None):
        self.root_dir = Path(root_dir)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self._home = Path(tempfile.mkdtemp(prefix="udfw-lab-"))
        self.log_path = log_path or self._home / "server.log"
        self.proc: subprocess.Popen | None = None

    def url(self, path: str = "") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={self.token}"

    def _environment(self) -> dict[str, str]:
        home = self._home
        dirs = {
            name: home / name
            for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")
        }
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        kernel_dir = dirs["data"] / "kernels" / "python3"
        kernel_dir.mkdir(parents=True, exist_ok=True)
        (kernel_dir / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "Python 3 (ipykernel)",
                    "language": "python",
                    "metadata": {"debugger": False},
                }
            )
        )
        labconfig = dirs["config"] / "labconfig"
        labconfig.mkdir(exist_ok=True)
        (labconfig / "page_config.json").write_text(
            json.dumps(
                {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
            )
        )
        docmanager = dirs["settings"] / "@jupyterlab" / "docmanager-extension"
        docmanager.mkdir(parents=True, exist_ok=True)
        (docmanager / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
        # Keep every cell in the DOM (no windowing), so off-screen outputs can be queried.
        notebook_ext = dirs["settings"] / "@jupyterlab" / "notebook-extension"
        notebook_ext.mkdir(parents=True, exist_ok=True)
        (notebook_ext / "tracker.jupyterlab-settings").write_text(
            json.dumps({"windowingMode": "none"})
        )
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
            JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
            IPYTHONDIR=str(dirs["ipython"]),
            JUPYTER_PLATFORM_DIRS="1",
        )
        env.pop("MPLBACKEND", None)
        # the kernel runs in the served folder: make it import this checkout's udfwidgets
        repo = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(
            [repo] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        return env

    def trust(self, *paths: Path) -> None:
        """Mark notebooks trusted for this server (``jupyter trust`` in its private data dir).

        JupyterLab renders an untrusted notebook's outputs with safe renderers only: its
        widgets show their static ``text/html`` fallback, not the stored widget state.
        """
        out = subprocess.run(
            [sys.executable, "-m", "jupyter", "trust", *map(str, paths)],
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"jupyter trust failed:\n{out.stdout}\n{out.stderr}")

    def start(self, timeout: float = 60.0) -> LabServer:
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={self.root_dir}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.extension_manager=readonly",
            "--ServerApp.open_browser=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd,
            env=self._environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.root_dir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited early; see {self.log_path}:\n"
                    + Path(self.log_path).read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"JupyterLab did not answer on port {self.port} in {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
        shutil.rmtree(self._home, ignore_errors=True)

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def chromium_page(viewport=(1400, 1000)) -> Iterator[Any]:
    """A Playwright page in Debian's Chromium with a fresh profile directory."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="udfw-chromium-")
    try:
        with sync_playwright() as p:
            # A fresh --user-data-dir: Playwright takes it as launch_persistent_context's
            # user_data_dir (it refuses the flag in args).
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# JavaScript run in the page. ``window.jupyterapp`` exists thanks to
# --LabApp.expose_app_in_browser; the current widget is the open notebook panel.
_JS_KERNEL_READY = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.sessionContext) return 'no-panel';
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel) return 'no-kernel';
  return kernel.connectionStatus + '/' + kernel.status;
}"""

_JS_CURRENT_PATH = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return w && w.context ? w.context.path : null;
}"""

_JS_CELLS = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  return nb.widgets.map(c => ({type: c.model.type, source: c.model.sharedModel.getSource()}));
}"""

_JS_RUN_CELL = """async (i) => {
  const panel = window.jupyterapp.shell.currentWidget;
  panel.content.activeCellIndex = i;
  const timeout = new Promise((_, reject) => setTimeout(
      () => reject(new Error('cell ' + i + ' still running after 120 s')), 120000));
  const ok = await Promise.race([
      window.jupyterapp.commands.execute('notebook:run-cell'), timeout]);
  const cell = panel.content.widgets[i];
  const outputs = cell.model.type === 'code' ? cell.model.outputs.toJSON() : [];
  return {ok: ok, outputs: outputs};
}"""

_JS_KERNEL_EXEC = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code: code, store_history: false});
  let out = '';
  future.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === 'stream') out += msg.content.text;
    else if (t === 'execute_result') out += msg.content.data['text/plain'] + '\\n';
    else if (t === 'error') out += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
  };
  const timeout = new Promise((_, reject) => setTimeout(
      () => reject(new Error('kernel code still running after 60 s: ' + code)), 60000));
  await Promise.race([future.done, timeout]);
  return out;
}"""

_JS_START_CELL = """(i) => {
  const panel = window.jupyterapp.shell.currentWidget;
  panel.content.activeCellIndex = i;
  window.__udfwCell = {done: false, ok: null};
  window.jupyterapp.commands.execute('notebook:run-cell').then(
    (ok) => { window.__udfwCell = {done: true, ok: ok}; },
    (err) => { window.__udfwCell = {done: true, ok: false, error: String(err)}; });
}"""

_JS_CELL_STATE = """(i) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
  const state = window.__udfwCell || {done: true, ok: null};
  return {done: state.done, ok: state.ok, error: state.error || null,
          outputs: cell.model.type === 'code' ? cell.model.outputs.toJSON() : []};
}"""

_JS_TEXTS = """([i, selector]) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
  return Array.from(cell.node.querySelectorAll(selector)).map(e => e.textContent);
}"""

# A fingerprint of the image shown by every ipympl figure in a cell's output:
# its first canvas holds the rendered figure (the others are overlays).
_JS_CANVAS_IMAGES = """(i) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
  const figs = cell.node.querySelectorAll('.jupyter-matplotlib-figure');
  return Array.from(figs).map(f => {
    const c = f.querySelector('canvas');
    return c ? c.toDataURL() : '';
  });
}"""


# In-page latency probe: note when the pointer moves over (or is released on) a figure's
# top canvas, then poll another figure's picture every animation frame until it changes.
_JS_PROBE_START = """([cellIndex, sourceFigure, targetFigure, eventName]) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[cellIndex];
  const figs = cell.node.querySelectorAll('.jupyter-matplotlib-figure');
  const source = Array.from(figs[sourceFigure].querySelectorAll('canvas')).pop();
  const target = figs[targetFigure].querySelector('canvas');
  const ctx = target.getContext('2d');
  const fingerprint = () => {
    const d = ctx.getImageData(0, 0, target.width, target.height).data;
    let h = 0;
    for (let i = 0; i < d.length; i += 53) h = (h * 31 + d[i]) | 0;
    return h;
  };
  const probe = {t0: null, t1: null, before: fingerprint()};
  window.__udfwProbe = probe;
  const onEvent = (e) => { if (probe.t0 === null) probe.t0 = e.timeStamp; };
  source.addEventListener(eventName, onEvent, {once: true, capture: true});
  probe.done = new Promise((resolve) => {
    const started = performance.now();
    const step = () => {
      if (probe.t0 !== null && fingerprint() !== probe.before) {
        probe.t1 = performance.now();
        return resolve(probe.t1 - probe.t0);
      }
      if (performance.now() - started > 20000) return resolve(null);
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
  return probe.before;
}"""

_JS_PROBE_WAIT = """async () => await window.__udfwProbe.done"""

# Bounding boxes of every visible toolbar element and of every figure's canvas and axes area.
_JS_BOXES = """() => {
  const box = (e) => { const r = e.getBoundingClientRect();
                       return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const visible = (e) => { const s = getComputedStyle(e); const r = e.getBoundingClientRect();
    return s.display !== 'none' && s.visibility !== 'hidden' && parseFloat(s.opacity) > 0
           && r.width > 0 && r.height > 0; };
  const toolbars = Array.from(document.querySelectorAll(
      '.jp-Notebook .jupyter-matplotlib-toolbar, .jp-Notebook .jupyter-matplotlib-toolbar *, ' +
      '.jp-Notebook .udfw-figure-toolbar button')).filter(visible).map(box);
  const canvases = Array.from(document.querySelectorAll(
      '.jp-Notebook .jupyter-matplotlib-figure')).map(f => {
        const c = f.querySelector('canvas'); return c && visible(c) ? box(c) : null; })
      .filter(b => b);
  return {toolbars: toolbars, canvases: canvases};
}"""


def overlaps(a: dict, b: dict) -> bool:
    """Whether two boxes ``{x, y, w, h}`` share any area.

    Examples
    --------
    >>> overlaps({"x": 0, "y": 0, "w": 2, "h": 2}, {"x": 1, "y": 1, "w": 2, "h": 2})
    True
    >>> overlaps({"x": 0, "y": 0, "w": 2, "h": 2}, {"x": 2, "y": 0, "w": 2, "h": 2})
    False
    """
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


class CellError(AssertionError):
    """A notebook cell raised an error in the browser's kernel."""


class NotebookPage:
    """Drive one notebook in JupyterLab: open it, run cells, read the kernel's state.

    Parameters
    ----------
    page : playwright.sync_api.Page
    server : LabServer

    Examples
    --------
    ::

        nb = NotebookPage(page, server)
        nb.open("01-getting-started.ipynb")
        for i in nb.code_cells():
            nb.run_cell(i)
        print(nb.kernel_exec("print(1 + 1)"))
    """

    def __init__(self, page: Any, server: LabServer):
        self.page = page
        self.server = server

    def open(self, name: str, timeout: float = 60.0) -> None:
        """Open ``name`` (``?reset``: no other notebook restored from an earlier layout)."""
        self.page.goto(self.server.url(f"lab/tree/{name}?reset"))
        self.page.wait_for_selector(".jp-Notebook", timeout=timeout * 1000)
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            dialog = self.page.locator(".jp-Dialog button:has-text('Select')")
            if dialog.count():
                dialog.first.click()
            path = self.page.evaluate(_JS_CURRENT_PATH)
            state = self.page.evaluate(_JS_KERNEL_READY) if path == name else f"at {path}"
            if state == "connected/idle":
                return
            time.sleep(0.25)
        raise TimeoutError(f"the kernel of {name} did not become idle (last state: {state})")

    def cells(self) -> list[dict[str, str]]:
        return self.page.evaluate(_JS_CELLS)

    def code_cells(self) -> list[int]:
        return [i for i, c in enumerate(self.cells()) if c["type"] == "code"]

    def run_cell(self, index: int) -> list[dict]:
        """Run one cell, wait until it finished, raise :class:`CellError` on an error output."""
        result = self.page.evaluate(_JS_RUN_CELL, index)
        errors = [o for o in result["outputs"] if o.get("output_type") == "error"]
        if errors or not result["ok"]:
            src = self.cells()[index]["source"]
            detail = "; ".join(f"{e.get('ename')}: {e.get('evalue')}" for e in errors)
            raise CellError(f"cell {index} failed ({detail or 'not ok'}):\n{src}")
        return result["outputs"]

    def start_cell(self, index: int) -> None:
        """Start running a cell and return at once (see :meth:`cell_finished`)."""
        self.page.evaluate(_JS_START_CELL, index)

    def cell_finished(self, index: int) -> bool:
        """Whether the cell started by :meth:`start_cell` is done; raise if it failed."""
        state = self.page.evaluate(_JS_CELL_STATE, index)
        if not state["done"]:
            return False
        errors = [o for o in state["outputs"] if o.get("output_type") == "error"]
        if errors or not state["ok"]:
            detail = "; ".join(f"{e.get('ename')}: {e.get('evalue')}" for e in errors)
            raise CellError(f"cell {index} failed ({detail or state['error'] or 'not ok'})")
        return True

    def texts(self, index: int, selector: str) -> list[str]:
        """``textContent`` of the elements matching ``selector`` in cell ``index``."""
        return self.page.evaluate(_JS_TEXTS, [index, selector])

    def count(self, selector: str) -> int:
        """How many elements in the notebook match ``selector``."""
        return self.page.locator(f".jp-Notebook {selector}").count()

    def kernel_exec(self, code: str) -> str:
        """Run ``code`` in the notebook's kernel (not as a cell); return what it printed."""
        out = self.page.evaluate(_JS_KERNEL_EXEC, code)
        if "ERROR " in out:
            raise CellError(f"kernel_exec failed: {out}\ncode:\n{code}")
        return out

    def kernel_json(self, expression: str) -> Any:
        """Evaluate a Python expression in the kernel and return it through JSON."""
        out = self.kernel_exec(f"import json as _j\nprint(_j.dumps({expression}))")
        return json.loads(out.strip().splitlines()[-1])

    def canvas_images(self, index: int) -> list[str]:
        """Fingerprints (sha1 of the PNG) of the figures shown in cell ``index``."""
        urls = self.page.evaluate(_JS_CANVAS_IMAGES, index)
        return [hashlib.sha1(u.encode()).hexdigest() if u else "" for u in urls]

    def wait_pictures_settled(self, index: int, quiet: float = 0.4, timeout: float = 30.0) -> bool:
        """Wait until no figure of cell ``index`` changed its picture for ``quiet`` seconds.

        A picture asked for earlier (ipympl draws when the browser asks) may still be on its
        way: a latency probe started before it lands would time that one instead.
        """
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            images = self.canvas_images(index)
            if images != last:
                last, since = images, time.monotonic()
            elif time.monotonic() - since >= quiet and images and all(images):
                return True
            time.sleep(0.05)
        return False

    def cell_locator(self, index: int):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def figure_canvas(self, index: int, figure: int = 0):
        """The top-most canvas of a figure (the one with ipympl's mouse listeners)."""
        fig = self.cell_locator(index).locator(".jupyter-matplotlib-figure").nth(figure)
        return fig.locator("canvas").last

    def drag(self, locator, start: tuple[float, float], end: tuple[float, float]) -> None:
        """Press at ``start``, move to ``end``, release; positions are fractions of the box."""
        locator.scroll_into_view_if_needed()
        box = locator.bounding_box()
        x0 = box["x"] + start[0] * box["width"]
        y0 = box["y"] + start[1] * box["height"]
        x1 = box["x"] + end[0] * box["width"]
        y1 = box["y"] + end[1] * box["height"]
        mouse = self.page.mouse
        mouse.move(x0, y0)
        mouse.down()
        mouse.move(x1, y1, steps=15)
        self.page.wait_for_timeout(200)
        mouse.up()

    def probe_start(
        self, cell: int, source_figure: int, target_figure: int, event: str = "mousemove"
    ) -> None:
        """Start timing: from the next ``event`` on one figure to a change of another's picture."""
        self.page.evaluate(_JS_PROBE_START, [cell, source_figure, target_figure, event])

    def probe_wait(self) -> float | None:
        """Milliseconds from the event to the changed picture (None: no change within 20 s)."""
        return self.page.evaluate(_JS_PROBE_WAIT)

    def boxes(self) -> dict:
        """Page boxes of visible toolbar elements and of figure canvases."""
        return self.page.evaluate(_JS_BOXES)

    def output_text(self) -> str:
        """The text of every output area of the notebook."""
        return self.page.evaluate(
            "() => Array.from(document.querySelectorAll('.jp-Notebook .jp-OutputArea'))"
            ".map(e => e.textContent).join('\\n')"
        )

    def figure_pixels(self) -> list[int]:
        """Per figure shown (ipympl canvas or <img>), how many of its pixels are not blank."""
        return self.page.evaluate("""() => {
          const out = [];
          const count = (w, h, draw) => {
            const c = document.createElement('canvas'); c.width = w; c.height = h;
            const x = c.getContext('2d'); draw(x);
            const d = x.getImageData(0, 0, w, h).data; let n = 0;
            for (let i = 0; i < d.length; i += 4) {
              if (d[i + 3] > 0 && (d[i] < 245 || d[i + 1] < 245 || d[i + 2] < 245)) n++; }
            return n; };
          document.querySelectorAll('.jp-Notebook .jupyter-matplotlib-figure').forEach(f => {
            const c = f.querySelector('canvas');
            if (c && c.width > 0 && c.height > 0) out.push(count(c.width, c.height,
                                                                 x => x.drawImage(c, 0, 0)));
          });
          document.querySelectorAll('.jp-Notebook .jp-OutputArea img').forEach(img => {
            if (img.naturalWidth > 0) out.push(count(img.naturalWidth, img.naturalHeight,
                                                     x => x.drawImage(img, 0, 0)));
          });
          return out;
        }""")

    def screenshot(self, path: Path, index: int | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if index is None:
            self.page.screenshot(path=str(path))
        else:
            loc = self.cell_locator(index)
            loc.scroll_into_view_if_needed()
            loc.screenshot(path=str(path))
        return path
