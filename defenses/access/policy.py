"""The access policy: roles, their permissions and output rules, principals and budgets.

A TOML file, validated strictly at load time: an unknown role, permission or key, or a
malformed budget, is one :class:`~guard.errors.ConfigError` line naming the file and the key,
so a typo can never silently widen access.

Combination rule for a principal with several roles: permissions are the union; the output
rule for a permission is taken from the roles granting it, and among those the most
restrictive wins per field (label only if any says so, the smallest top-k, the fewest
decimals, the strongest reverse sigmoid).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.errors import ConfigError
from guard.textsafe import visible

PERMISSIONS = ("predict", "predict_proba", "explain", "export")
MAX_ROUND = 15
MAX_NAME = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class ReverseSigmoid:
    """Reverse-sigmoid perturbation parameters (Lee et al. 2019)."""

    beta: float = 1.0
    gamma: float = 0.1


@dataclass(frozen=True)
class OutputRule:
    label_only: bool = False
    top_k: int | None = None
    round: int | None = None
    reverse_sigmoid: ReverseSigmoid | None = None


@dataclass(frozen=True)
class Budget:
    per_minute: float | None = None
    total: int | None = None
    burst: int | None = None


@dataclass(frozen=True)
class Role:
    name: str
    permissions: frozenset[str]
    output: OutputRule


@dataclass(frozen=True)
class Principal:
    name: str
    roles: tuple[str, ...]
    budget: Budget | None


def _min_opt(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def combine(rules: list[OutputRule]) -> OutputRule:
    """The most restrictive combination of several output rules (see the module docstring)."""
    out = OutputRule()
    for r in rules:
        rs = out.reverse_sigmoid
        if r.reverse_sigmoid is not None and (
            rs is None or (r.reverse_sigmoid.beta, r.reverse_sigmoid.gamma) > (rs.beta, rs.gamma)
        ):
            rs = r.reverse_sigmoid
        out = OutputRule(
            label_only=out.label_only or r.label_only,
            top_k=_min_opt(out.top_k, r.top_k),
            round=_min_opt(out.round, r.round),
            reverse_sigmoid=rs,
        )
    return out


@dataclass(frozen=True)
class AccessPolicy:
    roles: dict[str, Role]
    principals: dict[str, Principal]
    state: Path
    monitor: Any = None
    source: Path | None = None

    @classmethod
    def load(cls, path: Path) -> AccessPolicy:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the access policy: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(data, base=path.parent, source=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: Path, source: Path | None = None) -> AccessPolicy:
        where = str(source) if source is not None else "access policy"
        return _Parser(where, base, source).parse(data)

    def principal(self, name: str) -> Principal:
        try:
            return self.principals[name]
        except KeyError:
            raise ConfigError(f"{self._where()}: unknown principal {name!r}") from None

    def permissions_of(self, principal: str) -> frozenset[str]:
        p = self.principal(principal)
        perms: set[str] = set()
        for r in p.roles:
            perms |= self.roles[r].permissions
        return frozenset(perms)

    def output_rule(self, principal: str, permission: str) -> OutputRule:
        p = self.principal(principal)
        rules = [self.roles[r].output for r in p.roles if permission in self.roles[r].permissions]
        return combine(rules)

    def _where(self) -> str:
        return str(self.source) if self.source is not None else "access policy"


class _Parser:
    def __init__(self, where: str, base: Path, source: Path | None) -> None:
        self.where = where
        self.base = base
        self.source = source

    def fail(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.where}: {key}: {msg}")

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "expected a table")
        return value

    def known(self, tbl: dict[str, Any], key: str, allowed: tuple[str, ...]) -> None:
        for k in tbl:
            if k not in allowed:
                raise self.fail(f"{key}.{k}" if key else k, f"unknown key (known: {', '.join(allowed)})")

    def parse(self, data: dict[str, Any]) -> AccessPolicy:
        self.known(data, "", ("roles", "principals", "state", "monitor"))
        for section in ("roles", "principals"):
            for name in self.table(data.get(section, {}), section):
                if not name or _CONTROL.search(name) or len(name) > MAX_NAME:
                    raise self.fail(f"{section}.{visible(name)[:40]}", f"a name is 1 to {MAX_NAME} "
                                    "characters without control characters (it is printed and logged)")
        roles = {
            name: self.role(name, self.table(v, f"roles.{name}"))
            for name, v in self.table(data.get("roles", {}), "roles").items()
        }
        principals = {
            name: self.principal(name, self.table(v, f"principals.{name}"), roles)
            for name, v in self.table(data.get("principals", {}), "principals").items()
        }
        state_raw = data.get("state")
        if state_raw is None:
            stem = self.source.stem if self.source is not None else "access"
            state = self.base / f"{stem}.db"
        elif isinstance(state_raw, str) and state_raw and not _CONTROL.search(state_raw):
            state = self.base / state_raw
        else:
            raise self.fail("state", "expected a non-empty file name without control characters")
        monitor = None
        if "monitor" in data:
            monitor = self.monitor(self.table(data["monitor"], "monitor"))
        return AccessPolicy(roles, principals, state, monitor, self.source)

    def monitor(self, tbl: dict[str, Any]) -> Any:
        from guard.defenses.access.monitor import MonitorSettings  # helper B's module

        try:
            return MonitorSettings(**tbl)
        except (TypeError, ValueError) as exc:
            raise self.fail("monitor", str(exc).splitlines()[0] if str(exc) else "invalid") from None

    def role(self, name: str, tbl: dict[str, Any]) -> Role:
        key = f"roles.{name}"
        self.known(tbl, key, ("permissions", "output"))
        perms = self.names(tbl.get("permissions", []), f"{key}.permissions", "permission", PERMISSIONS)
        output = self.output(self.table(tbl.get("output", {}), f"{key}.output"), f"{key}.output")
        return Role(name, frozenset(perms), output)

    def output(self, tbl: dict[str, Any], key: str) -> OutputRule:
        self.known(tbl, key, ("label_only", "top_k", "round", "reverse_sigmoid"))
        label_only = tbl.get("label_only", False)
        if not isinstance(label_only, bool):
            raise self.fail(f"{key}.label_only", "expected true or false")
        top_k = self.pos_int(tbl.get("top_k"), f"{key}.top_k", allow_zero=False)
        rnd = self.pos_int(tbl.get("round"), f"{key}.round", allow_zero=True)
        if rnd is not None and rnd > MAX_ROUND:
            raise self.fail(f"{key}.round", f"expected at most {MAX_ROUND} decimals (float32 holds no more), "
                                            f"got {rnd}")
        rs = None
        if "reverse_sigmoid" in tbl:
            rtbl = self.table(tbl["reverse_sigmoid"], f"{key}.reverse_sigmoid")
            self.known(rtbl, f"{key}.reverse_sigmoid", ("beta", "gamma"))
            beta = self.pos_float(rtbl.get("beta", 1.0), f"{key}.reverse_sigmoid.beta")
            gamma = self.pos_float(rtbl.get("gamma", 0.1), f"{key}.reverse_sigmoid.gamma")
            rs = ReverseSigmoid(beta or 1.0, gamma or 0.1)
        return OutputRule(label_only, top_k, rnd, rs)

    def principal(self, name: str, tbl: dict[str, Any], roles: dict[str, Role]) -> Principal:
        key = f"principals.{name}"
        self.known(tbl, key, ("roles", "budget"))
        rl = self.names(tbl.get("roles", []), f"{key}.roles", "role", tuple(roles))
        budget = None
        if "budget" in tbl:
            btbl = self.table(tbl["budget"], f"{key}.budget")
            self.known(btbl, f"{key}.budget", ("per_minute", "total", "burst"))
            budget = Budget(
                per_minute=self.pos_float(btbl.get("per_minute"), f"{key}.budget.per_minute"),
                total=self.pos_int(btbl.get("total"), f"{key}.budget.total", allow_zero=False),
                burst=self.pos_int(btbl.get("burst"), f"{key}.budget.burst", allow_zero=False),
            )
            if budget.per_minute is not None and budget.per_minute < 1 and budget.burst is None:
                raise self.fail(f"{key}.budget.per_minute",
                                f"{budget.per_minute:g} a minute holds less than one query: a bucket that "
                                "small never serves one (give burst = 1 or more)")
        return Principal(name, tuple(rl), budget)

    def names(self, value: Any, key: str, what: str, known: tuple[str, ...]) -> list[str]:
        """A list of names, each one of ``known``."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of {what} names")
        for v in value:
            if v not in known:
                raise self.fail(key, f"unknown {what} {v!r} (known: {', '.join(known) or 'none'})")
        return value

    def pos_int(self, v: Any, key: str, *, allow_zero: bool) -> int | None:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (v == 0 and not allow_zero):
            raise self.fail(
                key, f"expected a {'non-negative' if allow_zero else 'positive'} integer, got {v!r}"
            )
        return v

    def pos_float(self, v: Any, key: str) -> float | None:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 or v == float("inf"):
            raise self.fail(key, f"expected a positive number, got {v!r}")
        return float(v)
