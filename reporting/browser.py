"""Open a page in headless Chromium and say what a reader would see: ``python -m reporting.browser PAGE``.

It drives the browser over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages, NUL-terminated, on the browser's file descriptors 3 and 4), so it needs no
websocket client and no Python package beyond the standard library. It loads the page,
waits for its load event, then collects:

* console errors: ``console.error`` calls, uncaught exceptions, and the browser's own error
  log entries (a resource that failed to load is one: ``Failed to load resource ...``);
* every ``<img>``: its URL, whether it finished loading, and its ``naturalWidth`` (0 when
  the picture did not load);
* a PNG screenshot of the whole page.

The browser: ``$CHROMIUM`` if set, else ``chromium``, ``chromium-browser`` or
``google-chrome`` on the PATH (Debian: ``apt-get install chromium``). It runs with the flags
of :data:`FLAGS` (no sandbox, no GPU, no network side traffic) and a fresh profile folder.
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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

FLAGS: Final = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--window-size=1400,1000")
CANDIDATES: Final = ("chromium", "chromium-browser", "google-chrome")


class BrowserError(RuntimeError):
    """The browser did not start, answer or load the page in time; the message says which."""


@dataclass
class PageCheck:
    """What the browser saw."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)  # {"src", "complete", "natural_width"}
    screenshot: bytes = b""  # PNG

    @property
    def broken_images(self) -> list[str]:
        return [im["src"] for im in self.images if not im["complete"] or im["natural_width"] <= 0]


def find_browser() -> str | None:
    """The Chromium executable to use, or None."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return shutil.which(configured) or (configured if Path(configured).is_file() else None)
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def _high_fd(fd: int) -> int:
    """``fd`` moved to a number >= 10, close-on-exec (so the shell's redirections cannot collide with it)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class _Pipe:
    """The DevTools protocol over the browser's pipe: commands, their results, and the events between."""

    def __init__(self, browser: str, profile: str, timeout_s: float):
        to_browser_r, self.to_browser = map(_high_fd, os.pipe())
        self.from_browser, from_browser_w = map(_high_fd, os.pipe())
        self.timeout_s = timeout_s
        # bash: the browser reads commands on fd 3 and writes answers on fd 4
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self.process = subprocess.Popen(
            ["bash", "-c", script, browser, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"],
            pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if ready:
                data = os.read(self.from_browser, 1 << 20)
                if not data:
                    raise BrowserError(f"the browser closed its pipe: {self.stderr_tail()}")
                self.buffer += data
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        request: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            request["sessionId"] = session
        try:
            os.write(self.to_browser, json.dumps(request).encode() + b"\0")
            deadline = time.monotonic() + self.timeout_s
            while True:
                message = self._receive(deadline)
                if message.get("id") == self.next_id:
                    if "error" in message:
                        raise BrowserError(f"{method}: {message['error'].get('message')}")
                    return message.get("result", {})
                self.events.append(message)
        except TimeoutError:
            raise BrowserError(f"{method}: no answer within {self.timeout_s:g} s") from None
        except BrokenPipeError:
            raise BrowserError(f"the browser exited: {self.stderr_tail()}") from None

    def wait_for(self, method: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        try:
            while not any(e.get("method") == method for e in self.events):
                self.events.append(self._receive(deadline))
        except TimeoutError:
            raise BrowserError(f"no {method} within {self.timeout_s:g} s") from None

    def stderr_tail(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return "(still running)"
        lines = self.process.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit code {self.process.returncode}"

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                os.write(self.to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, 9)
                self.process.wait(10)
        for fd in (self.to_browser, self.from_browser):
            os.close(fd)
        if self.process.stderr is not None:
            self.process.stderr.close()


IMAGES_JS: Final = ("JSON.stringify(Array.from(document.images).map(i => "
                    "({src: i.currentSrc || i.src, complete: i.complete, natural_width: i.naturalWidth})))")


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            out.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
    return out


def check_page(page: str | Path, browser: str | None = None, timeout_s: float = 30.0) -> PageCheck:
    """Load ``page`` (a local file) in headless Chromium and report what it saw (BrowserError if it could not)."""
    browser = browser or find_browser()
    if browser is None:
        raise BrowserError("no Chromium found: set CHROMIUM or install it (Debian: apt-get install chromium)")
    url = Path(page).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="recstream-chromium-") as profile:
        pipe = _Pipe(browser, profile, timeout_s)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call("Page.navigate", {"url": url}, session=session)
            pipe.wait_for("Page.loadEventFired")
            images = pipe.call("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True}, session=session)
            shot = pipe.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
            return PageCheck(url=url, console_errors=_errors(pipe.events),
                             images=json.loads(images["result"]["value"]), screenshot=base64.b64decode(shot["data"]))
        finally:
            pipe.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m reporting.browser",
                                description="Open a page in headless Chromium: console errors, images, a screenshot.")
    p.add_argument("page", help="the HTML file (e.g. reports/index.html)")
    p.add_argument("--screenshot", default=None, help="write the screenshot here (PNG)")
    args = p.parse_args(argv)
    if not Path(args.page).is_file():
        print(f"python -m reporting.browser: error: {args.page}: no such file", file=sys.stderr)
        return 2
    try:
        result = check_page(args.page)
    except BrowserError as e:
        print(f"python -m reporting.browser: error: {e}", file=sys.stderr)
        return 2
    if args.screenshot:
        Path(args.screenshot).write_bytes(result.screenshot)
    print(f"{result.url}: {len(result.images)} images, {len(result.broken_images)} not loaded, "
          f"{len(result.console_errors)} console errors")
    for line in result.console_errors + [f"not loaded: {src}" for src in result.broken_images]:
        print("  " + line)
    return 1 if result.console_errors or result.broken_images else 0


if __name__ == "__main__":
    sys.exit(main())
