"""Headless Chromium, driven over the Chrome DevTools Protocol on a pipe
(`--remote-debugging-pipe`: JSON messages separated by NUL bytes on file descriptors 3 and 4),
so the test needs no WebDriver and no websocket package. Not a test module.

`Chromium.look(path, screenshot)` loads one page as a person would and returns what the page
showed: its text, every image (decoded or not), every metric cell with its row and column
headers, the console errors and exceptions; the screenshot is a PNG of the whole page.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

# What the page shows, read in the page itself after every image is decoded (or failed to).
_READ_PAGE = """(async () => {
  const shown = el => el.checkVisibility({opacityProperty: true, visibilityProperty: true})
                      && el.getBoundingClientRect().width > 0 && el.getBoundingClientRect().height > 0;
  const images = [...document.images];
  const decoded = await Promise.all(images.map(img => img.decode().then(() => true, () => false)));
  return {
    text: document.body.innerText,
    headings: [...document.querySelectorAll("h2")].map(h => h.innerText.trim()),
    images: images.map((img, i) => ({decoded: decoded[i], width: img.naturalWidth,
                                     height: img.naturalHeight, shown: shown(img)})),
    cells: [...document.querySelectorAll("td[data-metric]")].map(td => {
      const table = td.closest("table");
      return {split: td.dataset.split, metric: td.dataset.metric, title: td.title,
              text: td.innerText.trim(), shown: shown(td),
              row: td.closest("tr").cells[0].innerText.trim(),
              column: table.tHead.rows[0].cells[td.cellIndex].innerText.trim()};
    }),
  };
})()"""


_TRAMPOLINE = ("import os, sys\n"
               "for fd, at in zip(map(int, sys.argv[1:3]), (3, 4)):\n"
               "    os.dup2(fd, at)\n"
               "    os.close(fd)\n"
               "os.execv(sys.argv[3], sys.argv[3:])")


def find_chromium() -> str | None:
    """Debian's `chromium`, or another Chromium-family browser on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _above_ten(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class ProtocolError(RuntimeError):
    pass


class Chromium:
    """One headless browser for many pages; use as a context manager."""

    def __init__(self, executable: str, profile: Path, timeout: float = 60.0):
        self.timeout = timeout
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # Chromium's ends moved to 10 and above, so that putting them on 3 and 4 cannot
        # overwrite one with the other.
        commands_read, replies_write = (_above_ten(fd) for fd in (commands_read, replies_write))
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        profile.mkdir(parents=True, exist_ok=True)
        self._stderr = open(profile / "chromium.log", "wb")
        # A small trampoline puts the two pipe ends on 3 and 4, where Chromium expects them.
        self.process = subprocess.Popen(
            [sys.executable, "-c", _TRAMPOLINE, str(commands_read), str(replies_write), executable,
             "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
             "--hide-scrollbars", "--mute-audio", "about:blank"],
            pass_fds=(commands_read, replies_write), stdin=subprocess.DEVNULL,
            stdout=self._stderr, stderr=self._stderr)
        os.close(commands_read)
        os.close(replies_write)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (ProtocolError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stderr.close()

    # The protocol ---------------------------------------------------------------------------

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == message["id"], timeout, what=method)
        if "error" in reply:
            raise ProtocolError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait_event(self, method: str, session: str, timeout: float | None = None) -> dict:
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                self.events.remove(event)
                return event
        return self._wait(lambda m: m.get("method") == method and m.get("sessionId") == session,
                          timeout, what=method)

    def _wait(self, wanted, timeout: float | None, what: str) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if wanted(message):
                    return message
                if "method" in message:
                    self.events.append(message)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"{what}: no answer from chromium in {timeout or self.timeout:g} s")
            ready, _, _ = select.select([self._replies], [], [], left)
            if ready:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise ProtocolError(f"{what}: chromium exited (code {self.process.poll()}); "
                                        f"see {self._stderr.name}")
                self._buffer += chunk

    # A page as a person sees it -------------------------------------------------------------

    def look(self, path: Path, screenshot: Path, width: int = 1280, max_height: int = 8000) -> dict:
        """Open `path`, wait for it to load, read what it shows, write a full-page PNG."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable", session=session)
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
            navigated = self.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session)
            if navigated.get("errorText"):
                raise ProtocolError(f"{path}: {navigated['errorText']}")
            self.wait_event("Page.loadEventFired", session)
            evaluated = self.send("Runtime.evaluate", {"expression": _READ_PAGE, "awaitPromise": True,
                                                        "returnByValue": True}, session)
            if "exceptionDetails" in evaluated:
                raise ProtocolError(f"reading the page: {evaluated['exceptionDetails'].get('text')}")
            seen = evaluated["result"]["value"]
            size = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
            height = min(int(size["height"]) + 1, max_height)
            shot = self.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}, session)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            seen["page_height"] = int(size["height"])
            seen["errors"] = self._errors(session)
            return seen
        finally:
            self.send("Target.closeTarget", {"targetId": target})

    def _errors(self, session: str) -> list[str]:
        """Console errors, uncaught exceptions and failed loads the page caused."""
        found = []
        for event in [e for e in self.events if e.get("sessionId") == session]:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console." + params["type"] + ": " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif event["method"] == "Log.entryAdded" and params["entry"].get("level") == "error":
                entry = params["entry"]
                found.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
        self.events = [e for e in self.events if e.get("sessionId") != session]
        return found


def chromium_version(executable: str) -> str:
    result = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=60)
    return result.stdout.strip()

