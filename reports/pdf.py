"""report.pdf: the HTML report printed by headless Chromium.

A PDF is what a data-protection officer files. Rather than a second layout engine (and a
second look that drifts from the page), the HTML report is printed as a browser prints it,
with the page's print CSS (a page per target, no table row cut in half). Chromium is an
optional system dependency: without it the ``pdf`` format is a clear error naming the
package to install, never a traceback; every other format works without it.

Chromium runs fully offline: a fresh profile in a temporary folder, no background
networking, no component updates, no sync, and the page itself loads nothing (its
Content-Security-Policy forbids every fetch).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from guard.errors import ConfigError
from guard.fsio import atomic_write_bytes, atomic_write_text

from .html import render_html

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ENV = "GUARD_CHROMIUM"
"""An explicit browser path, for a Chromium outside PATH."""
INSTALL_HINT = "pdf needs Chromium: apt-get install chromium"
PRINT_TIMEOUT_S = 120
_STDERR_SHOWN = 400


def find_chromium() -> str | None:
    """The Chromium to print with: ``$GUARD_CHROMIUM`` if set, else the first on PATH."""
    explicit = os.environ.get(CHROMIUM_ENV)
    if explicit:
        return explicit if Path(explicit).is_file() and os.access(explicit, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def headless_args(profile: Path) -> list[str]:
    """Flags for a headless, offline, throw-away Chromium (also used by the browser tests)."""
    return [
        "--headless",
        "--no-sandbox",  # root in containers and CI cannot use Chromium's setuid sandbox
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ]


def write_pdf(audits: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Print the HTML report of ``audits`` to ``path`` (atomically).

    Raises :class:`ConfigError` when Chromium is missing, fails, or produces no PDF.
    """
    browser = find_chromium()
    if browser is None:
        if os.environ.get(CHROMIUM_ENV):
            raise ConfigError(f"{INSTALL_HINT} (${CHROMIUM_ENV} is set but is not an executable file)")
        raise ConfigError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="guard-pdf-") as tmp:
        folder = Path(tmp)
        page = folder / "report.html"
        printed = folder / "report.pdf"
        atomic_write_text(page, render_html(audits))
        args = [browser, *headless_args(folder / "profile"), f"--print-to-pdf={printed}",
                "--no-pdf-header-footer", page.as_uri()]
        try:
            done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,  # noqa: S603
                                  timeout=PRINT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ConfigError(f"Chromium ({browser}) did not print the report within "
                              f"{PRINT_TIMEOUT_S} s") from None
        except OSError as exc:
            raise ConfigError(f"cannot run Chromium ({browser}): {exc}") from None
        data = printed.read_bytes() if printed.is_file() else b""
        if done.returncode != 0 or not data.startswith(b"%PDF-"):
            stderr = done.stderr.decode("utf-8", "replace").strip()[-_STDERR_SHOWN:]
            raise ConfigError(f"Chromium ({browser}) could not print the report (exit code "
                              f"{done.returncode}){': ' + stderr if stderr else ''}")
    atomic_write_bytes(Path(path), data)
