"""The HTML report in a real browser: headless Chromium, driven over the DevTools protocol.

What a reader's browser does with the page is the only proof that it is self-contained and
safe: that it logs no error, fetches nothing, draws something, and shows a model named
``<script>alert(1)</script>`` as text without running it. Chromium is driven through
``--remote-debugging-pipe`` (DevTools messages over file descriptors 3 and 4, NUL-separated
JSON), which needs no WebSocket client, so the protocol's own events are the evidence:
``Network.requestWillBeSent`` for every request, ``Runtime.consoleAPICalled``,
``Runtime.exceptionThrown`` and ``Log.entryAdded`` for errors, ``Page.javascriptDialogOpening``
for an ``alert``. The page is served by a local HTTP server whose log must show exactly one
request, and Chromium's resolver maps every other host to nothing, so a stray request would
fail rather than leave the machine. A control page with a real script proves the harness
would notice a script that ran.

Skipped, with the reason, only where Chromium is not installed.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import http.server
import json
import os
import select
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import EVIL, two_audits

from guard.reports import render_html
from guard.reports.json_report import audit_dicts
from guard.reports.pdf import find_chromium, headless_args

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium): the browser checks of the report need it")
TIMEOUT_S = 8.0
CONTROL_PAGE = """<!DOCTYPE html><title>control</title><img src="/pixel.png" alt="">
<script>document.title = 'ran'; console.error('boom'); alert(1);
fetch('https://guard.invalid/x').catch(() => 0)</script>"""
"""Everything the report must not do, done: proves each check below would notice it."""


# ---------------------------------------------------------------- a DevTools client over a pipe


class DevTools:
    """One headless Chromium and its DevTools pipe; events are kept in arrival order."""

    def __init__(self, browser: str, profile: Path, log: Path) -> None:
        to_browser_r, self._to_browser = (_high(fd) for fd in os.pipe())
        self._from_browser, from_browser_w = (_high(fd) for fd in os.pipe())
        log_fd = _high(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        args = [browser, *headless_args(profile), "--remote-debugging-pipe",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--window-size=1000,800",
                "about:blank"]
        self.pid = os.posix_spawn(browser, args, dict(os.environ), file_actions=[
            (os.POSIX_SPAWN_DUP2, to_browser_r, 3), (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1), (os.POSIX_SPAWN_DUP2, log_fd, 2),
        ])
        for fd in (to_browser_r, from_browser_w, log_fd):
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its answer; raise on a protocol error."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str, after: int = 0) -> dict[str, Any]:
        """The first event ``method`` at or after index ``after``, waiting for it if need be."""
        while True:
            for event in self.events[after:]:
                if event.get("method") == method:
                    return event
            self.events.append(self._read())

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"Chromium sent nothing for {TIMEOUT_S} s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, EOFError, TimeoutError, RuntimeError):
            os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        os.close(self._to_browser)
        os.close(self._from_browser)


def _high(fd: int) -> int:
    """``fd`` moved above 9, so the child's dup2 onto 3 and 4 cannot clobber another pipe end."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


# ---------------------------------------------------------------- the page, served locally


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """Record each request instead of printing it: the log is what the test checks."""
        self.requests.append(self.path)


@dataclass
class Visit:
    """Everything one page load produced."""

    url: str
    events: list[dict[str, Any]]
    served: list[str]
    title: str
    headings: list[str]
    scripts: int
    screenshot: bytes
    stderr: str
    dialogs: list[str] = field(default_factory=list)

    def of(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.events if e.get("method") == method]


def _visit(tools: DevTools, session: str, url: str, served: list[str], log: Path,
           expect_dialog: bool = False) -> Visit:
    """Load ``url`` and collect what happened; an expected dialog is dismissed so the page
    can finish loading (an unexpected one would block it, and the load would time out)."""
    start = len(tools.events)
    served.clear()
    tools.send("Page.navigate", session, url=url)
    if expect_dialog:
        tools.wait_for("Page.javascriptDialogOpening", after=start)
        tools.send("Page.handleJavaScriptDialog", session, accept=True)
    tools.wait_for("Page.loadEventFired", after=start)
    values = tools.send("Runtime.evaluate", session, returnByValue=True, expression=(
        "({title: document.title, scripts: document.scripts.length,"
        " headings: [...document.querySelectorAll('h2')].map(h => h.textContent)})"))["result"]["value"]
    shot = tools.send("Page.captureScreenshot", session, format="png",
                      clip={"x": 0, "y": 0, "width": 1000, "height": 800, "scale": 0.25})
    events = tools.events[start:]
    dialogs = [e["params"]["message"] for e in events if e.get("method") == "Page.javascriptDialogOpening"]
    return Visit(url, events, list(served), values["title"], values["headings"], values["scripts"],
                 base64.b64decode(shot["data"]), log.read_text(errors="replace"), dialogs)


@pytest.fixture(scope="module")
def visits() -> Iterator[dict[str, Visit]]:
    """The report page and the control page, each loaded once in one browser."""
    with tempfile.TemporaryDirectory(prefix="guard-browser-") as tmp:
        root = Path(tmp)
        (root / "site").mkdir()
        (root / "site" / "report.html").write_text(render_html(audit_dicts(two_audits())), encoding="utf-8")
        (root / "site" / "control.html").write_text(CONTROL_PAGE, encoding="utf-8")
        served: list[str] = []
        handler = type("Handler", (_QuietHandler,), {"requests": served})
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(root / "site")))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        tools = DevTools(str(CHROMIUM), root / "profile", root / "chromium.log")
        try:
            target = tools.send("Target.createTarget", url="about:blank")["targetId"]
            session = tools.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                tools.send(f"{domain}.enable", session)
            report = _visit(tools, session, f"{base}/report.html", served, root / "chromium.log")
            control = _visit(tools, session, f"{base}/control.html", served, root / "chromium.log",
                             expect_dialog=True)
        finally:
            tools.close()
            server.shutdown()
            server.server_close()
        yield {"report": report, "control": control}


# ---------------------------------------------------------------- the checks


def test_no_console_error_and_no_exception(visits: dict[str, Visit]) -> None:
    page = visits["report"]
    console = [c for c in page.of("Runtime.consoleAPICalled") if c["type"] in ("error", "assert", "warning")]
    logged = [e["entry"] for e in page.of("Log.entryAdded") if e["entry"]["level"] in ("error", "warning")]
    assert console == [] and logged == [] and page.of("Runtime.exceptionThrown") == []


def test_no_request_but_the_page_itself(visits: dict[str, Visit]) -> None:
    page = visits["report"]
    requested = [r["request"]["url"] for r in page.of("Network.requestWillBeSent")]
    assert requested == [page.url]
    assert page.served == ["/report.html"], "the local server saw more than the page"
    assert page.of("Network.loadingFailed") == []


def test_screenshot_is_not_blank(visits: dict[str, Visit]) -> None:
    width, height, pixels = decode_png(visits["report"].screenshot)
    assert (width, height) == (250, 200)
    colours = set(pixels)
    inked = sum(1 for p in pixels if p[:3] != (255, 255, 255)) / len(pixels)
    assert len(colours) > 20 and 0.02 < inked < 0.9, (len(colours), inked)


def test_a_script_named_target_is_text_and_runs_nothing(visits: dict[str, Visit]) -> None:
    page = visits["report"]
    assert page.dialogs == [] and page.scripts == 0
    assert page.title == f"Guard audit report: digits-cnn, {EVIL}"
    assert EVIL in page.headings  # the heading's text is the name, character for character


def test_the_harness_would_notice_what_it_checks_for(visits: dict[str, Visit]) -> None:
    """On the control page: a script ran (title changed), its alert, console error, fetch of
    an outside host (failed: the resolver maps it to nothing) and image load were all seen."""
    control = visits["control"]
    assert control.title == "ran" and control.dialogs == ["1"] and control.scripts == 1
    assert [c["args"][0]["value"] for c in control.of("Runtime.consoleAPICalled")] == ["boom"]
    requested = [r["request"]["url"] for r in control.of("Network.requestWillBeSent")]
    assert "https://guard.invalid/x" in requested and control.url in requested
    assert "/pixel.png" in control.served


# ---------------------------------------------------------------- PNG, without Pillow


def decode_png(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """Width, height and RGB(A) pixels of an 8-bit truecolour PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour_type in (2, 6), (depth, colour_type)
    bpp = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    previous = bytearray(stride)
    pixels: list[tuple[int, ...]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for x in range(stride):
            left = line[x - bpp] if x >= bpp else 0
            up, corner = previous[x], (previous[x - bpp] if x >= bpp else 0)
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        pixels += [tuple(line[i:i + bpp]) for i in range(0, stride, bpp)]
        previous = line
    return width, height, pixels
