"""Options shared by commands, parsed into typed values with click's own errors."""

from __future__ import annotations

import math
from typing import Any

import click


class FloatList(click.ParamType):  # type: ignore[type-arg]
    """Comma-separated positive numbers: ``0.05,0.1``."""

    name = "float-list"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            items = tuple(float(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers", param, ctx)
        if not items or any(not math.isfinite(v) or v <= 0 for v in items):
            self.fail(f"{value!r}: give positive finite numbers", param, ctx)
        return items


class IntList(click.ParamType):  # type: ignore[type-arg]
    """Comma-separated positive whole numbers: ``50,100,250``."""

    name = "int-list"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            items = tuple(int(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of whole numbers", param, ctx)
        if not items or any(v <= 0 for v in items):
            self.fail(f"{value!r}: give positive whole numbers", param, ctx)
        return items


class NameList(click.ParamType):  # type: ignore[type-arg]
    """Comma-separated names: ``json,html`` (lower-cased unless ``keep_case``: column names)."""

    name = "name-list"

    def __init__(self, keep_case: bool = False) -> None:
        self.keep_case = keep_case

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        items = tuple(v.strip() if self.keep_case else v.strip().lower()
                      for v in str(value).split(",") if v.strip())
        if not items:
            self.fail("give at least one name", param, ctx)
        return items


FLOAT_LIST = FloatList()
INT_LIST = IntList()
NAME_LIST = NameList()
COLUMN_LIST = NameList(keep_case=True)


class FailOn(click.ParamType):  # type: ignore[type-arg]
    """``--fail-on``: one vocabulary for every command (a severity, or ``never``)."""

    name = "fail-on"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        from guard.audit import FAIL_ON

        return "[" + "|".join(FAIL_ON) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from guard.audit import parse_fail_on
        from guard.errors import ConfigError

        try:
            return parse_fail_on(value)
        except ConfigError as exc:
            self.fail(str(exc).removeprefix("--fail-on "), param, ctx)


FAIL_ON = FailOn()
FAIL_ON_HELP = "Exit 1 when a finding at or above this severity fails the gate ('never': exit 0)."
