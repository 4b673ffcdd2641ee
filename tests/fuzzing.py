"""Driving the real CLI with generated input: the contract every property test checks.

Whatever the input, ``guard`` ends with exit 0, 1 or 2 and a one-line error; never exit 3,
never a traceback, never a run over its time or memory budget. Each property test writes its
generated file to disk and calls :func:`assert_handled` on the command that reads it.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass

from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings

from guard.cli import cli

# Bounded for CI: the examples per file kind, and what one invocation may cost.
EXAMPLES = 60
SECONDS = 20.0
MEMORY_BYTES = 1 << 30

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the time budget is asserted per invocation below, with a clear message
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples every run: a CI failure reproduces locally
    database=None,
)


@dataclass(frozen=True)
class Handled:
    result: Result
    seconds: float


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def assert_handled(args: Sequence[str], *, allowed: Sequence[int] = (0, 1, 2)) -> Handled:
    """Run ``guard ARGS`` in-process; fail unless it ended as a handled outcome.

    The peak resident size only grows, so a rise of more than the budget over one call
    means that call used more than the budget.
    """
    before = _peak_rss()
    start = time.perf_counter()
    result = CliRunner().invoke(cli, list(args), catch_exceptions=True)
    seconds = time.perf_counter() - start
    grown = _peak_rss() - before
    output = result.output
    command = "guard " + " ".join(args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"guard {' '.join(args)} raised {type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in output, f"guard {' '.join(args)} printed a traceback:\n{output[-2000:]}"
    assert result.exit_code in allowed, (
        f"{command} exited {result.exit_code}, expected one of {tuple(allowed)}:\n{output[-2000:]}"
    )
    if result.exit_code == 2:
        assert output.strip(), f"guard {' '.join(args)} exited 2 without saying why"
    assert seconds < SECONDS, f"guard {' '.join(args)} took {seconds:.1f} s (budget {SECONDS} s)"
    assert grown < MEMORY_BYTES, f"guard {' '.join(args)} grew the peak memory by {grown >> 20} MiB"
    return Handled(result, seconds)
