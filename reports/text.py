"""Numbers and values as the reports print them, shared by every human-readable format.

One formatter for all formats, so the HTML page, the Markdown comment and the PDF say
``41.0% [36.8–45.4%]`` for the same measurement and a reader comparing them never wonders
which one rounded differently. Nothing here escapes: each format escapes for its own syntax.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RATE_SUFFIXES = ("_accuracy", "_rate", "_share")
RATE_NAMES = frozenset({"accuracy", "fidelity", "advantage", "tpr", "fpr"})


@dataclass(frozen=True, slots=True)
class Estimate:
    """A formatted measurement: ``41.2%``, its interval ``37.0–45.6%`` and its n."""

    value: str
    interval: str = ""
    n: str = ""


def is_rate(name: str) -> bool:
    """Whether a metric is a share of samples, printed as a percentage."""
    return name.endswith(RATE_SUFFIXES) or name in RATE_NAMES


def estimate(name: str, metric: Mapping[str, Any]) -> Estimate:
    """Rates as percentages with their interval; other quantities to four digits."""
    value = metric.get("value")
    n = metric.get("n")
    ci = metric.get("ci95")
    n_text = "" if n is None else str(n)
    if value is None:
        return Estimate("not measured", "", n_text)
    if is_rate(name):
        interval = pct_range(ci[0], ci[1], 1) if ci else ""
        return Estimate(pct(value, 1), interval, n_text)
    interval = f"{ci[0]:.4g}–{ci[1]:.4g}" if ci else ""
    return Estimate(f"{value:.4g}", interval, n_text)


def pct(value: float, digits: int = 0) -> str:
    """A percentage that never rounds a non-zero rate to 0% or a shortfall to 100%."""
    text = f"{value * 100:.{digits}f}"
    for extra in (1, 2):
        if not ((value > 0 and float(text) == 0) or (value < 1 and float(text) == 100)):
            break
        text = f"{value * 100:.{digits + extra}f}"
    return text + "%"


def pct_range(lo: float, hi: float, digits: int = 0) -> str:
    """``37–45%``: one percent sign reads more easily than two."""
    return f"{pct(lo, digits).removesuffix('%')}–{pct(hi, digits)}"


def value_of(metric: Mapping[str, Any]) -> float:
    """The metric's value as a float, NaN when it was not finite (written as null)."""
    value = metric.get("value")
    return float(value) if isinstance(value, (int, float)) else float("nan")


def count(value: Any) -> str:
    """A whole number as ``12,345`` (a count the JSON may hold as ``12345.0``); anything else,
    a fraction or a string a hostile file put there, as :func:`text` shows it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return text(value)


def metric_value(metrics: Mapping[str, Any], name: str) -> float | None:
    """The finite value of ``metrics[name]``, or ``None`` where it is absent, null or not a number."""
    metric = metrics.get(name)
    value = metric.get("value") if isinstance(metric, Mapping) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={text(v)}" for k, v in params.items())


def text(value: Any) -> str:
    """Any JSON value as display text (escaping is each format's job, not this one's)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 control``, ``3 controls``."""
    return f"{count} {word if count == 1 else (many or word + 's')}"
