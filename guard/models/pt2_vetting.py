"""Vetting of torch.export (``.pt2``) archives before torch reads them.

``torch.export.load`` unpickles sample inputs and "pickled" weights without
``weights_only``, feeds shape-expression strings to sympy (which ends in ``eval``), and
``.module()`` compiles guard code stored in the file: each was shown to run code from the
file in torch 2.13. Everything torch would read is checked here first (known entry names
only, tensors through ``weights_only``, no guard code, shape expressions against an AST
allowlist), and the loaded graph is checked again before anything runs.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

from guard.errors import ModelLoadError, UnsafeModelError

# torch.export archives: everything torch.export.load would read is checked before it does.
_PT2_ENTRY = re.compile(
    r"archive_format|archive_version|byteorder|\.data/[\w.]+|extra/[\w./-]+|models/\w+\.json"
    r"|data/sample_inputs/\w+\.pt|data/weights/(?:weight_\d+|\w+_weights_config\.json)"
    r"|data/constants/(?:tensor_\d+|\w+_constants_config\.json)"
)
_PT2_PAYLOAD = re.compile(r"(?:weight|tensor)_\d+")
_SYM_NAME = re.compile(r"[a-z]+\d+|[A-Z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*|oo|zoo|nan|pi|true|false")
_SYM_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call, ast.keyword,
    ast.Name, ast.Constant, ast.Tuple, ast.Load, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)
_UNSAFE_OPERATOR_FUNCS = frozenset({"call", "attrgetter", "itemgetter", "methodcaller"})
_PT2_REEXPORT = "re-export the model with torch.export.save, without custom objects"


def vet_exported_archive(path: Path, data: bytes) -> None:
    """Refuse a .pt2 archive holding anything torch.export.load would unpickle or execute.

    Only plain tensor payloads, JSON graphs whose shape expressions are arithmetic on
    symbols, and sample inputs that torch's restricted unpickler accepts get through.
    """
    import torch

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            inner = info.filename.partition("/")[2]
            if not _PT2_ENTRY.fullmatch(inner):
                raise UnsafeModelError(
                    f"{path}: torch.export archive holds {inner!r}, which Guard cannot vet "
                    f"(compiled code or pickled objects); {_PT2_REEXPORT}"
                )
            raw = archive.read(info)
            if inner.endswith("_config.json"):
                config = _json_of(path, inner, raw).get("config", {})
                for entry in config.values() if isinstance(config, dict) else [None]:
                    if not isinstance(entry, dict) or entry.get("use_pickle") or not (
                        _PT2_PAYLOAD.fullmatch(str(entry.get("path_name")))
                    ):
                        raise UnsafeModelError(
                            f"{path}: torch.export archive stores pickled weights or "
                            f"constants in {inner!r}; {_PT2_REEXPORT}"
                        )
            elif inner.startswith("data/sample_inputs/"):
                try:
                    torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
                except pickle.UnpicklingError as exc:
                    raise UnsafeModelError(
                        f"{path}: torch.export sample inputs hold pickled Python objects"
                        f"{unsupported_global(exc)}; {_PT2_REEXPORT}"
                    ) from exc
                except (RuntimeError, EOFError, ValueError) as exc:
                    raise ModelLoadError(f"{path}: corrupt entry {inner!r} ({exc})") from exc
            elif inner.startswith("models/"):
                _vet_program_json(path, _json_of(path, inner, raw))


def _json_of(path: Path, name: str, raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ModelLoadError(f"{path}: corrupt entry {name!r} ({exc})") from exc
    if not isinstance(doc, dict):
        raise ModelLoadError(f"{path}: corrupt entry {name!r} (not a JSON object)")
    return doc


def _vet_program_json(path: Path, program: dict[str, Any]) -> None:
    if program.get("guards_code"):
        raise UnsafeModelError(
            f"{path}: torch.export program carries guard code, which torch compiles and "
            "runs as Python; Guard refuses it"
        )
    stack: list[Any] = [program]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            expr = item.get("expr_str")
            if isinstance(expr, str) and not _sym_expr_is_safe(expr):
                raise UnsafeModelError(
                    f"{path}: torch.export program has a shape expression Guard cannot vet "
                    f"({expr[:60]!r}); torch evaluates these as Python"
                )
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and ("default_factory_module" in item or "__enum__" in item):
            raise UnsafeModelError(
                f"{path}: torch.export program has an input spec that imports Python modules "
                "by name; Guard refuses it"
            )


def _sym_expr_is_safe(expr: str) -> bool:
    """True for sympy text made of calls to capitalised functions on symbols and numbers.

    sympy's parser ends in ``eval``; without attributes, subscripts, lambdas or lowercase
    builtins there is nothing in such text that can reach Python beyond sympy's algebra.
    """
    if len(expr) > 10_000:
        return False
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
        if not isinstance(node, _SYM_NODES):
            return False
        if isinstance(node, ast.Name) and not _SYM_NAME.fullmatch(node.id):
            return False
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
            return False
        if isinstance(node, ast.keyword) and (node.arg is None or node.arg.startswith("_")):
            return False
        if isinstance(node, ast.Constant) and not (
            isinstance(node.value, int | float)
            or (isinstance(node.value, str) and _SYM_NAME.fullmatch(node.value))
        ):
            return False
    return True


def check_exported_graph(path: Path, program: Any) -> None:
    """Refuse a loaded graph that calls anything but torch operators (before it ever runs)."""
    import torch

    for sub in program.graph_module.modules():
        graph = getattr(sub, "graph", None)
        if not isinstance(graph, torch.fx.Graph):
            continue
        for node in graph.nodes:
            if node.op == "call_method" or (
                node.op == "call_function" and not _is_graph_op(node.target)
            ):
                raise UnsafeModelError(
                    f"{path}: torch.export graph calls {node.target!r}, which is not a torch "
                    "operator; Guard refuses to run it"
                )


def _is_graph_op(target: Any) -> bool:
    import torch

    if isinstance(target, torch._ops.OpOverload | torch._ops.HigherOrderOperator):
        return True
    module = getattr(target, "__module__", None)
    name = str(getattr(target, "__name__", ""))
    if module in ("_operator", "math"):
        return name not in _UNSAFE_OPERATOR_FUNCS
    return module == "torch" and name.lstrip("_").startswith("sym_")


def unsupported_global(exc: Exception) -> str:
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    return f" (it references {found.group(1)})" if found else ""
