"""Headless Chromium driven over the DevTools protocol (CDP), for the dashboard's e2e test.

Only what the test needs: start the distribution's `chromium` with a throwaway profile,
open one page, evaluate JavaScript in it and collect the page's uncaught exceptions and
console errors. The DevTools endpoint is a websocket; the `websockets` package (already a
dependency) talks to it, so no Selenium / Playwright and no browser download.
"""

import json
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from websockets.sync.client import connect

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1")
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")


def find_chromium() -> str | None:
    """The Chromium binary, or None (the distribution's package is `chromium`)."""
    for c in CANDIDATES:
        path = shutil.which(c)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, binary: str, start_timeout_s: float = 30.0):
        self.profile = tempfile.TemporaryDirectory(prefix="perpchain-chromium-")
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile.name}",
                                      "about:blank"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.problems: list[str] = []   # the page's uncaught exceptions and console errors
        self._next_id = 0
        self._stack = ExitStack()   # the DevTools websocket (websockets wants a context manager)
        try:
            port = self._devtools_port(start_timeout_s)
            pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            url = next(t["webSocketDebuggerUrl"] for t in pages if t["type"] == "page")
            self.ws = self._stack.enter_context(connect(url, max_size=None, open_timeout=10))
            self.send("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout_s: float) -> int:
        """Chromium writes the port it chose to <profile>/DevToolsActivePort."""
        f = Path(self.profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}: "
                                   f"{self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            if f.exists() and f.read_text().strip():
                return int(f.read_text().split()[0])
            time.sleep(0.1)
        raise RuntimeError(f"chromium wrote no DevTools port within {timeout_s:g}s")

    def send(self, method: str, timeout_s: float = 30.0, **params) -> dict:
        """Call a CDP method; its result (events read meanwhile go to `problems`)."""
        self._next_id += 1
        my_id = self._next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            msg = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"CDP {method} failed: {msg['error']}")
                return msg["result"]
            self._note(msg)

    def _note(self, msg: dict) -> None:
        p = msg.get("params", {})
        if msg.get("method") == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.problems.append(d.get("exception", {}).get("description") or d.get("text"))
        elif msg.get("method") == "Runtime.consoleAPICalled" and p.get("type") == "error":
            self.problems.append(" ".join(str(a.get("value", a.get("description")))
                                          for a in p.get("args", [])))

    def open(self, url: str, timeout_s: float = 30.0) -> None:
        """Navigate to `url` and wait until its document has loaded."""
        loader = self.send("Page.navigate", url=url).get("loaderId")
        check = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        deadline = time.monotonic() + timeout_s
        while not self.evaluate(check):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} (loader {loader}) did not load in {timeout_s:g}s")
            time.sleep(0.05)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression!r} threw: {r['exceptionDetails']}")
        return r["result"].get("value")

    def close(self) -> None:
        self._stack.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stderr.close()
        self.profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
