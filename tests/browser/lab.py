"""Drive a real JupyterLab in headless Chromium, the way a learner uses the course.

Widgets that work when driven from Python can still fail in the browser: the
front-end extension missing, JupyterLab swallowing a keyboard shortcut, an image that
never shows. Only a real browser on a real JupyterLab sees those, so this module
starts one of each:

- :class:`JupyterLabServer` runs ``jupyter lab`` on 127.0.0.1 (a free port, a random
  token) with throwaway config, settings, workspace and runtime folders, so nothing a
  developer has configured leaks in and no news popup covers the page. It stops the
  server and every kernel it started, even when the test fails.
- :func:`launch_chromium` starts Debian's ``chromium`` through Playwright for Python
  (Playwright's own browser download is neither needed nor wanted offline).
- :func:`open_and_run_notebook` opens a notebook, waits until its kernel really
  exists, runs every cell and fails with the notebook's own error text if a cell
  raised.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# JupyterLab's notification plugin fetches news and checks for updates, then shows a
# popup over the notebook; both are off in the throwaway settings folder.
NOTIFICATION_SETTINGS = {"fetchNews": "false", "checkForUpdates": False}


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is missing; the message says how to install them."""


def find_chromium() -> str:
    """The path of Debian's ``chromium``; :class:`BrowserUnavailable` says how to get it."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserUnavailable(
        "no `chromium` on PATH: install Debian's browser with `apt-get install -y chromium` "
        "(as root; .ci/run does this). Playwright's own browser download is not used."
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLabServer:
    """A private ``jupyter lab`` serving ``root_dir``; use it as a context manager.

    ``env`` is added to the server's environment and so reaches every kernel it
    starts (kernels inherit it), which is how a test points a notebook at its own
    catalog folder.
    """

    def __init__(self, root_dir: Path, state_dir: Path, env: dict[str, str] | None = None):
        self.root_dir = Path(root_dir)
        self.state_dir = Path(state_dir)
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.state_dir / "jupyterlab.log"
        self._proc: subprocess.Popen | None = None
        self._log = None

    def _environment(self) -> dict[str, str]:
        config = self.state_dir / "config"
        settings = self.state_dir / "lab-settings"
        plugin = settings / "@jupyterlab" / "apputils-extension"
        plugin.mkdir(parents=True, exist_ok=True)
        (plugin / "notification.jupyterlab-settings").write_text(json.dumps(NOTIFICATION_SETTINGS))
        config.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(config),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(self.state_dir / "workspaces"),
            JUPYTER_RUNTIME_DIR=str(self.state_dir / "runtime"),
            JUPYTER_DATA_DIR=str(self.state_dir / "data"),  # the notebook-signing key
            IPYTHONDIR=str(self.state_dir / "ipython"),
            TF_CPP_MIN_LOG_LEVEL="3",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 90) -> JupyterLabServer:
        """Start the server and wait until ``/api/status`` answers with the token."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            # window.jupyterapp lets the test run JupyterLab commands (run all cells)
            # instead of guessing menu positions.
            "--LabApp.expose_app_in_browser=True",
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # A session of its own: Ctrl+C in pytest's terminal reaches pytest only, whose
        # teardown then stops the server and its kernels in order.
        self._proc = subprocess.Popen(
            cmd,
            env=self._environment(),
            cwd=self.root_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.stop()
                raise RuntimeError(
                    f"jupyter lab exited with code {self._proc.returncode} before it answered;"
                    f" its log:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url("/api/status"), timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"jupyter lab did not answer within {timeout} s; its log:\n{self.log_tail()}"
        )

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={self.token}"

    def api(self, path: str) -> list | dict:
        """GET a REST path of the server (``/api/kernels`` ...) as JSON."""
        with urllib.request.urlopen(self.url(path), timeout=10) as resp:
            return json.loads(resp.read())

    def log_tail(self, chars: int = 4000) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def stop(self, grace: float = 10) -> None:
        """Stop the server, which shuts its kernels down; kill what is left after ``grace``.

        Kernels run in sessions of their own (jupyter_client starts them so), so they
        are found as the server's child processes, not by its process group.
        """
        import psutil

        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                children = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # jupyter_server then shuts its kernels down
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=grace)
            _, alive = psutil.wait_procs(children, timeout=grace)
            for child in alive:  # a kernel that ignored the shutdown request
                child.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> JupyterLabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def launch_chromium(playwright, executable: str | None = None):
    """Start headless Chromium from ``executable`` (default: Debian's ``chromium``)."""
    path = executable or find_chromium()
    try:
        return playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
    except Exception as exc:  # Playwright raises its own Error with the browser's stderr
        raise BrowserUnavailable(f"{path} did not start under Playwright: {exc}") from exc


def wait_for_kernel(page, timeout_ms: int = 60_000) -> None:
    """Wait until the notebook's kernel exists and is idle.

    The execution indicator reads "idle" for about half a second before the kernel has
    started, so the kernel's display name in the toolbar is waited for as well.
    """
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            if (!panel) return false;
            const name = panel.querySelector('.jp-KernelName, [data-jp-item-name="kernelName"]');
            const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
            const label = name ? name.textContent.trim() : '';
            return label !== '' && !/no kernel|starting|connecting/i.test(label)
                && status && status.getAttribute('data-status') === 'idle';
        }""",
        timeout=timeout_ms,
    )
    page.wait_for_function(
        """() => {
            const app = window.jupyterapp;
            const w = app && app.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session
                && w.sessionContext.session.kernel;
            return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
        }""",
        timeout=timeout_ms,
    )


# What the notebook's model says, not its DOM: an error output renders like any stderr
# text, and a cell's prompt text differs between JupyterLab versions.
_RUN_STATE = """() => {
    const widget = window.jupyterapp.shell.currentWidget;
    const cells = widget.content.model.cells;
    const errors = [];
    let pending = false;
    for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i);
        if (cell.type !== 'code') continue;
        if (cell.executionCount === null) pending = true;
        for (let j = 0; j < cell.outputs.length; j++) {
            const out = cell.outputs.get(j).toJSON();
            if (out.output_type === 'error') {
                errors.push([out.ename + ': ' + out.evalue, ...(out.traceback || [])].join('\\n'));
            }
        }
    }
    const kernel = widget.sessionContext.session.kernel;
    return {errors, done: !pending && kernel.status === 'idle'};
}"""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def notebook_state(page) -> tuple[list[str], bool]:
    """The open notebook's error outputs (tracebacks, colour codes removed) and whether
    every code cell has run with the kernel idle again."""
    state = page.evaluate(_RUN_STATE)
    return [_ANSI.sub("", e) for e in state["errors"]], state["done"]


def open_and_run_notebook(page, server: JupyterLabServer, notebook: str, timeout_ms=120_000):
    """Open ``notebook`` (relative to the server's root), run all cells, wait for the end.

    Fails with the notebook's own traceback as soon as a cell raises, so a broken widget
    shows its error in the test report instead of a selector timeout.
    """
    page.goto(server.url(f"/lab/tree/{notebook}"), wait_until="domcontentloaded")
    page.wait_for_function("() => !!window.jupyterapp && window.jupyterapp.shell", timeout=60_000)
    wait_for_kernel(page)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        f"() => {{ const s = ({_RUN_STATE})(); return s.done || s.errors.length > 0; }}",
        timeout=timeout_ms,
    )
    errors, _ = notebook_state(page)
    if errors:
        raise AssertionError(f"{notebook} raised while running:\n" + "\n\n".join(errors))
