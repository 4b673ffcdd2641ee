"""skops files: the one list of types Guard lets skops rebuild, and the scan of ``schema.json``.

A skops file is a zip whose ``schema.json`` describes a tree of nodes; each node names a loader
(``ObjectNode``, ``DictNode``, ...) and a type (``__module__`` + ``__class__``). skops 0.16
rebuilds them like this (``skops/io/_general.py``, ``_numpy.py``, ``_scipy.py``, ``_sklearn.py``):

- ``ObjectNode``: ``getattr(importlib.import_module(module), cls)``, then ``cls.__new__(cls)``
  and ``instance.__setstate__(attrs)`` (or ``__dict__.update``). The type's ``__setstate__``
  runs with a state taken from the file, so the type decides what runs. scikit-learn's
  ``BaseEstimator.__setstate__`` only pops ``_sklearn_version`` and updates ``__dict__``; a
  ``scipy.stats`` distribution (``rv_generic`` and every ``*_gen``, ``rv_histogram``, ...;
  ``rv_frozen`` objects carry one) ``exec``\\ s its ``_parse_arg_template``, a string from the
  file, and sklearn's ``ScoringMonitor`` connects to an address from the file.
- ``ConstructorFromReduceNode`` calls the type with arguments from the file; ``LossNode`` does
  too, then ``__setstate__``; ``DictNode``, ``ListNode``, ``SetNode``, ``TupleNode`` (namedtuples),
  ``NdArrayNode`` (non-``ndarray`` classes) and ``RandomStateNode`` call the named type with
  file data. ``RandomGeneratorNode`` calls a ``numpy.random`` bit generator named in the file.
- ``FunctionNode`` and ``TypeNode`` import the named object and hand it back uncalled; whatever
  holds it (``FunctionTransformer.func``, a defaultdict's factory, a dict's key types) calls it
  later, with data. ``MethodNode`` does ``getattr(obj, name)``, ``OperatorFuncNode`` builds an
  ``operator.attrgetter``/``itemgetter``/``methodcaller`` and ``PartialNode`` a ``functools.partial``.
- Fixed rebuilds that run nothing named in the file: ``TreeNode`` (always ``sklearn`` ``Tree``),
  ``SparseMatrixNode`` (``scipy.sparse.load_npz``, no pickles), ``MaskedArrayNode``, ``DTypeNode``,
  ``SliceNode``, ``BytesNode``, ``JsonNode`` (``json.loads``), ``DefaultDictNode``.

skops checks each node's type against defaults *per loader* plus whatever ``trusted=`` adds,
and a type trusted for one loader is trusted for all. Guard therefore keeps its own table,
loader by loader (:func:`trusted_by_loader`), walks every node of the schema itself and
refuses what is outside it; :func:`trusted_types` is the flat union the loader checks skops'
own report against. Nothing here imports a name taken from a file.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from guard.defenses.scan.context import Findings
from guard.defenses.scan.results import Severity
from guard.defenses.scan.rules import rate_import

MAX_SCHEMA_BYTES = 64 << 20
"""Largest ``schema.json`` read (the biggest real forests stay far below)."""
MAX_DEPTH = 200
"""Deepest JSON nesting walked; skops itself recurses a few frames per level."""
MAX_NODES = 2_000_000
"""Most JSON values walked in one schema."""

RULE_UNTRUSTED = "skops-untrusted-type"
RULE_CODE = "skops-code-type"
RULE_MALFORMED = "malformed-archive"

_PROTOCOL_MAX = 64  # sanity bound; skops itself refuses protocols newer than its own
_EXCLUDED_PARTS = frozenset({"testing", "_testing", "tests", "externals"})
_NO_TYPE_LOADERS = frozenset({"CachedNode"})
_CODE_DETAIL = {
    "scipy.stats": "rebuilding a scipy.stats distribution execs its _parse_arg_template, a string "
                   "the file supplies",
    "sklearn.callback": "rebuilding it connects to a network address the file supplies",
}

# scikit-learn classes outside ``all_estimators()`` that fitted models hold; each is checked
# by :func:`_rebuild_is_data_only` like the estimators.
_SKLEARN_PARTS = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.multiclass._ConstantPredictor",
    "sklearn.metrics._scorer._PassthroughScorer",
    "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
    *(f"sklearn.gaussian_process.kernels.{name}" for name in (
        "RBF", "Matern", "ConstantKernel", "WhiteKernel", "RationalQuadratic", "ExpSineSquared",
        "DotProduct", "PairwiseKernel", "Sum", "Product", "Exponentiation", "CompoundKernel")),
    *(f"sklearn.model_selection._split.{name}" for name in (
        "KFold", "StratifiedKFold", "GroupKFold", "StratifiedGroupKFold", "ShuffleSplit",
        "StratifiedShuffleSplit", "GroupShuffleSplit", "RepeatedKFold", "RepeatedStratifiedKFold",
        "TimeSeriesSplit", "LeaveOneOut", "LeavePOut", "LeaveOneGroupOut", "LeavePGroupsOut",
        "PredefinedSplit")),
)
# Pure functions sklearn estimators hold as parameters (SelectKBest's score_func).
_SKLEARN_FUNCTIONS = (
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.feature_selection._univariate_selection.r_regression",
    "sklearn.feature_selection._univariate_selection.chi2",
    "sklearn.feature_selection._mutual_info.mutual_info_classif",
    "sklearn.feature_selection._mutual_info.mutual_info_regression",
)
_SPARSE_FORMATS = ("csr", "csc", "coo", "bsr", "dia")  # what scipy.sparse.load_npz rebuilds


# --------------------------------------------------------------------------- the trusted list


def _type_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__name__}"


def _resolve(full: str) -> Any:
    """The object a trusted name (never a name from a file) stands for, or None."""
    import importlib

    module, _, name = full.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


@functools.cache
def _reviewed_hooks() -> frozenset[Any]:
    """``__setstate__``/``__new__`` implementations read and found to run nothing from the file:
    sklearn's ``BaseEstimator`` (pops the version, updates ``__dict__``), ``IsotonicRegression``
    (rebuilds ``interp1d`` from its arrays), ``TreePredictor`` (casts ``nodes``), ``Bunch`` (no-op)
    and the ``FutureWarning`` wrapper ``@deprecated`` puts on ``__new__``."""
    hooks: set[Any] = set()
    for full, attr in (("sklearn.base.BaseEstimator", "__setstate__"),
                       ("sklearn.isotonic.IsotonicRegression", "__setstate__"),
                       ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                        "__setstate__"),
                       ("sklearn.utils._bunch.Bunch", "__setstate__")):
        cls = _resolve(full)
        if cls is not None and attr in vars(cls):
            hooks.add(vars(cls)[attr])
    return frozenset(hooks)


def _is_deprecation_new(func: Any) -> bool:
    func = getattr(func, "__func__", func)
    return (getattr(func, "__module__", "") == "sklearn.utils.deprecation"
            and getattr(func, "__qualname__", "").startswith("deprecated._decorate_class"))


def _rebuild_is_data_only(cls: type) -> bool:
    """True if ``ObjectNode``'s ``cls.__new__(cls)`` + ``__setstate__``/``__dict__.update`` runs
    only code reviewed above. Cython classes (Tree, KDTree, metrics, losses) define their
    ``__setstate__`` in C: they assign arrays and numbers to fields, checked by name below."""
    if not cls.__module__.startswith("sklearn.") or _EXCLUDED_PARTS.intersection(
            cls.__module__.split(".")):
        return False
    reviewed = _reviewed_hooks()
    for klass in cls.__mro__:
        if klass is object:
            continue
        own = vars(klass)
        for hook in ("__setstate__", "__reduce__", "__reduce_ex__"):
            impl = own.get(hook)
            if impl is None or impl in reviewed:
                continue
            if inspect.isfunction(impl) or inspect.ismethod(impl):
                return False  # Python code nobody here has read
        new = own.get("__new__")
        if new is not None and not _is_deprecation_new(new) and inspect.isfunction(
                getattr(new, "__func__", new)):
            return False
    return True


def _sklearn_estimators() -> set[str]:
    from sklearn.utils import all_estimators

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = all_estimators()
    return {_type_name(cls) for _, cls in found if _rebuild_is_data_only(cls)}


def _named_sklearn(names: Iterable[str]) -> set[str]:
    out = set()
    for full in names:
        cls = _resolve(full)
        if isinstance(cls, type) and _type_name(cls) == full and _rebuild_is_data_only(cls):
            out.add(full)
    return out


def _distance_metrics() -> set[str]:
    """Every concrete DistanceMetric except PyFuncDistance, which calls a function it holds."""
    from sklearn.metrics import _dist_metrics

    out = set()
    for mapping in ("METRIC_MAPPING64", "METRIC_MAPPING32"):
        for cls in getattr(_dist_metrics, mapping, {}).values():
            if isinstance(cls, type) and not cls.__name__.startswith("PyFunc"):
                out.add(_type_name(cls))
    return out


@functools.cache
def trusted_by_loader() -> Mapping[str, frozenset[str]]:
    """skops loader -> the exact type names Guard lets that loader rebuild.

    skops' own defaults (``skops.io._trusted_types``, read at run time) for each loader, the
    scikit-learn estimators whose rebuild is checked to run no code from the file, the named
    internal types fitted models hold, and the exact NumPy/SciPy array, dtype, sparse and
    random-state types. Loaders absent here (``MethodNode``, ``PartialNode``,
    ``OperatorFuncNode``, ``ConstructorFromReduceNode`` beyond frozenset, ...) trust nothing.
    """
    import numpy as np
    import scipy.sparse
    from skops.io import _trusted_types as skops_defaults
    from skops.io._sklearn import ALLOWED_LOSSES

    primitives = set(skops_defaults.PRIMITIVE_TYPE_NAMES)
    dtypes = set(skops_defaults.NUMPY_DTYPE_TYPE_NAMES)
    objects = (_sklearn_estimators() | _named_sklearn(skops_defaults.SKLEARN_INTERNAL_TYPE_NAMES)
               | _named_sklearn(_SKLEARN_PARTS) | _distance_metrics())
    functions = set(skops_defaults.NUMPY_UFUNC_TYPE_NAMES) | set(skops_defaults.SCIPY_UFUNC_TYPE_NAMES)
    functions |= {name for name in _SKLEARN_FUNCTIONS if _resolve(name) is not None}
    sparse = {_type_name(scipy.sparse.spmatrix)}
    sparse |= {_type_name(getattr(scipy.sparse, f"{fmt}_{kind}"))
               for fmt in _SPARSE_FORMATS for kind in ("matrix", "array")
               if hasattr(scipy.sparse, f"{fmt}_{kind}")}
    if hasattr(scipy.sparse, "sparray"):
        sparse.add(_type_name(scipy.sparse.sparray))
    table = {
        "ObjectNode": objects,
        "DictNode": {"builtins.dict", "collections.OrderedDict", "sklearn.utils._bunch.Bunch"},
        "DefaultDictNode": {"collections.defaultdict"},
        "ListNode": {"builtins.list"},
        "SetNode": {"builtins.set"},
        "TupleNode": {"builtins.tuple"},
        "ConstructorFromReduceNode": {"builtins.frozenset"},
        "SliceNode": {"builtins.slice"},
        "JsonNode": primitives,
        "BytesNode": {"builtins.bytes"},
        "BytearrayNode": {"builtins.bytearray"},
        "FunctionNode": functions,
        "TypeNode": primitives | set(skops_defaults.CONTAINER_TYPE_NAMES) | dtypes,
        "NdArrayNode": {_type_name(np.ndarray)} | dtypes,
        "MaskedArrayNode": {_type_name(np.ma.MaskedArray)},
        "DTypeNode": {"numpy.dtype"},
        "RandomStateNode": {_type_name(np.random.RandomState)},
        "RandomGeneratorNode": {_type_name(np.random.Generator)},
        "SparseMatrixNode": sparse,
        "TreeNode": {"sklearn.tree._tree.Tree"},
        "LossNode": {_type_name(cls) for cls in ALLOWED_LOSSES},
    }
    return {loader: frozenset(names) for loader, names in table.items()}


@functools.cache
def bit_generators() -> frozenset[str]:
    """``numpy.random.<name>`` of the bit generators a ``RandomGeneratorNode`` may name."""
    from skops.io._trusted_types import NUMPY_RANDOM_BIT_GENERATOR_TYPE_NAMES

    return frozenset(NUMPY_RANDOM_BIT_GENERATOR_TYPE_NAMES)


@functools.cache
def trusted_types() -> frozenset[str]:
    """Every type name Guard lets skops rebuild (under the loader :func:`trusted_by_loader`
    gives it), plus the bit generators: what the loader may pass to ``skops.io.loads``."""
    names: set[str] = set(bit_generators())
    for allowed in trusted_by_loader().values():
        names |= allowed
    return frozenset(names)


@functools.cache
def _distribution_types() -> frozenset[str]:
    """Every class in scipy.stats whose rebuild execs a template (rv_generic and its
    subclasses) or that holds such an object (rv_frozen and its subclasses)."""
    import scipy.stats
    from scipy.stats import _distn_infrastructure as infra

    bases = tuple(getattr(infra, name) for name in ("rv_generic", "rv_frozen") if hasattr(infra, name))
    _ = scipy.stats
    found: set[str] = set()
    for mod_name, module in list(sys.modules.items()):
        if not mod_name.startswith("scipy.stats") or module is None:
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, type) and bases and issubclass(obj, bases):
                found.add(_type_name(obj))
    return frozenset(found)


def code_type_reason(module: str, name: str) -> str | None:
    """Why rebuilding ``module.name`` runs code the file supplies, or None if it is not known to."""
    if module == "scipy.stats" or module.startswith("scipy.stats."):
        if (name.endswith(("_gen", "_frozen")) or name.startswith("rv_")
                or f"{module}.{name}" in _distribution_types()):
            return _CODE_DETAIL["scipy.stats"]
    if module.startswith("sklearn.callback") and name == "ScoringMonitor":
        return _CODE_DETAIL["sklearn.callback"]
    return None


# --------------------------------------------------------------------------- the schema walk


@dataclass(frozen=True, slots=True)
class _Untrusted:
    loader: str
    module: str
    name: str  # what rate_import is given: a class, a function, or "Class.method"

    @property
    def global_name(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(slots=True)
class _Audit:
    untrusted: list[_Untrusted] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)

    def flag(self, loader: str, module: str, name: str) -> None:
        key = (loader, f"{module}.{name}")
        if key not in self.seen:
            self.seen.add(key)
            self.untrusted.append(_Untrusted(loader, module, name))


def _dotted_ok(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _check_node(node: dict[str, Any], audit: _Audit, table: Mapping[str, frozenset[str]]) -> None:
    loader = node.get("__loader__")
    module, name = node.get("__module__"), node.get("__class__")
    if not isinstance(loader, str):
        audit.problems.append("a node's __loader__ is not a string")
        return
    if loader in _NO_TYPE_LOADERS:
        return
    if not isinstance(module, str) or not isinstance(name, str):
        audit.problems.append(f"a {loader} has no string __module__/__class__")
        return
    if not _dotted_ok(module) or not name.isidentifier():
        # skops joins the two with "." to check and imports them separately: a split the
        # list never saw (or a name no import can produce) is refused, not guessed at.
        audit.flag(loader, module, name)
        return
    if loader == "MethodNode":
        content = node.get("content")
        func = content.get("func") if isinstance(content, dict) else None
        owner = content.get("obj") if isinstance(content, dict) else None
        if isinstance(owner, dict) and isinstance(func, str):
            o_mod, o_cls = owner.get("__module__"), owner.get("__class__")
            audit.flag(loader, str(o_mod), f"{o_cls}.{func}")
        else:
            audit.flag(loader, module, name)
        return
    allowed = table.get(loader)
    if allowed is None or f"{module}.{name}" not in allowed:
        audit.flag(loader, module, name)
    if loader == "RandomGeneratorNode":
        generator = _bit_generator_name(node)
        if generator is None:
            audit.problems.append("a numpy Generator without a bit generator name")
        elif not generator.isidentifier() or f"numpy.random.{generator}" not in bit_generators():
            audit.flag(loader, "numpy.random", generator)


def _bit_generator_name(node: dict[str, Any]) -> str | None:
    try:
        raw = node["content"]["bit_generator"]["content"]["bit_generator"]["content"]
        value = json.loads(raw)
    except (KeyError, TypeError, ValueError):
        return None
    return value if isinstance(value, str) else None


def _walk(root: dict[str, Any], audit: _Audit) -> None:
    """Every JSON value under ``root``, iteratively: each dict with a ``__loader__`` is a node,
    and every container (content, children, attrs, key_types, __reduce__ args, ...) is
    entered, whatever the loader, so no place skops reads nodes from is skipped."""
    table = trusted_by_loader()
    stack: list[tuple[Any, int]] = [(root, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            audit.problems.append(f"more than {MAX_NODES} values in schema.json")
            return
        if depth > MAX_DEPTH:
            audit.problems.append(f"schema.json nests deeper than {MAX_DEPTH} levels")
            return
        if isinstance(value, dict):
            if "__loader__" in value:
                _check_node(value, audit, table)
            stack.extend((child, depth + 1) for child in value.values()
                         if isinstance(child, (dict, list)))
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value if isinstance(child, (dict, list)))


def _audit(schema: bytes) -> _Audit:
    audit = _Audit()
    if len(schema) > MAX_SCHEMA_BYTES:
        audit.problems.append(f"schema.json is larger than {MAX_SCHEMA_BYTES} bytes")
        return audit
    try:
        root = json.loads(schema)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        audit.problems.append(f"schema.json is not valid JSON ({type(exc).__name__})")
        return audit
    if not isinstance(root, dict) or "__loader__" not in root:
        audit.problems.append("schema.json is not a skops schema (no root node)")
        return audit
    protocol = root.get("protocol")
    if isinstance(protocol, bool) or not isinstance(protocol, int) or not 0 <= protocol <= _PROTOCOL_MAX:
        audit.problems.append(f"schema.json has no valid skops protocol ({protocol!r})")
        return audit
    _walk(root, audit)
    return audit


def _severity(item: _Untrusted, floor: Severity) -> tuple[Severity, str]:
    rating = rate_import(item.module, item.name)
    if rating is None or rating.severity < floor:
        return floor, "" if rating is None else rating.reason
    return rating.severity, rating.reason


def scan_skops_schema(schema: bytes, member: str, findings: Findings) -> None:
    """Report every type the skops ``schema`` would make skops import or rebuild that is
    outside :func:`trusted_by_loader`: ``skops-untrusted-type`` (at least medium, rated by
    :func:`rate_import`), plus ``skops-code-type`` (at least high) for types whose rebuild
    runs code the file supplies; a schema that is no valid skops schema is
    ``malformed-archive``. ``member`` is the zip entry (``schema.json``) it came from."""
    audit = _audit(schema)
    for item in audit.untrusted:
        severity, reason = _severity(item, Severity.MEDIUM)
        detail = (f"skops would rebuild {item.global_name} ({item.loader}), which is outside "
                  "Guard's trusted list")
        findings.report(severity, RULE_UNTRUSTED, item.global_name,
                        f"{detail}: {reason}" if reason else detail, 0, member)
        code = code_type_reason(item.module, item.name)
        if code is not None:
            severity, _ = _severity(item, Severity.HIGH)
            findings.report(severity, RULE_CODE, item.global_name, code, 0, member)
    for problem in dict.fromkeys(audit.problems):
        findings.report(Severity.MEDIUM, RULE_MALFORMED, "", problem, 0, member)


def untrusted_types(schema: bytes) -> list[str]:
    """Sorted names of the types in ``schema`` outside Guard's trusted list (the same walk as
    :func:`scan_skops_schema`). Raises ValueError for a schema that cannot be vetted whole
    (not JSON, not skops, past a bound) and has no untrusted type to name."""
    audit = _audit(schema)
    names = sorted({item.global_name for item in audit.untrusted})
    if audit.problems and not names:
        raise ValueError(audit.problems[0])
    return names


def read_schema(archive: Any, limit: int = MAX_SCHEMA_BYTES) -> bytes:
    """``schema.json`` of an open :class:`zipfile.ZipFile`, refused (ValueError) past ``limit``
    bytes before it is inflated; KeyError if there is none."""
    info = archive.getinfo("schema.json")
    if info.file_size > limit:
        raise ValueError(f"schema.json is larger than {limit} bytes")
    data: bytes = archive.read(info)
    return data


__all__: list[str] = ["MAX_DEPTH", "MAX_NODES", "MAX_SCHEMA_BYTES", "RULE_CODE", "RULE_MALFORMED",
                      "RULE_UNTRUSTED", "bit_generators", "code_type_reason", "read_schema",
                      "scan_skops_schema", "trusted_by_loader", "trusted_types", "untrusted_types"]
