"""Keras model configs (``config.json`` of a ``.keras`` archive, the ``model_config`` attribute
of a legacy HDF5 model, tf.keras SavedModel metadata), read as JSON without Keras.

Loading a Keras model rebuilds every object its config names, so the config is where code
hides:

- a ``Lambda`` layer's function saved as marshalled bytecode (``__lambda__``, or legacy
  ``function_type: "lambda"``) runs when the model is built: always in tf.keras and Keras 2,
  with ``safe_mode=False`` in Keras 3 (CVE-2024-3660);
- any object's ``module`` plus ``class_name`` (or, for functions, ``config``) is imported:
  Keras < 3.9 imported any module (CVE-2025-1550), so ``os.system`` or ``subprocess.Popen``
  could be named directly, and a ``Lambda`` may call such a function or take one in its
  ``arguments``;
- Keras' own API has gadgets reachable from a config even in safe mode: ``keras.utils.get_file``
  downloads to a path of the config's choosing (CVE-2025-8747),
  ``keras.config.enable_unsafe_deserialization`` turns safe mode off for the Lambda that follows
  (CVE-2025-9906), ``load_model`` loads another model with ``safe_mode=False``;
- some layers reach outside the file: ``TorchModuleWrapper`` unpickles a torch module,
  ``TFSMLayer`` loads a TensorFlow SavedModel from a path, lookup layers read a vocabulary file
  or URL (CVE-2025-12058).

Imports outside Keras are rated by :func:`guard.defenses.scan.rules.rate_import`, exactly as a
pickle's imports are.

HDF5 files are not parsed: attribute values are stored uncompressed, so the JSON objects in the
file's bytes are found and decoded (bounded); ``use_h5py=True`` also reads the root attributes
with h5py when it is installed (the HDF5 C library then parses an untrusted file).
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterator
from typing import Any

from guard.defenses.scan.context import Budget, Findings, LimitReached
from guard.defenses.scan.onnx import external_path_problem
from guard.defenses.scan.results import Severity
from guard.defenses.scan.rules import rate_import
from guard.defenses.scan.sniff import Window, hdf5_offset

KERAS_PACKAGES = ("keras", "tf_keras", "keras_hub", "keras_cv", "keras_nlp", "tensorflow.keras",
                  "tensorflow.python.keras", "tf.keras")
"""Modules whose objects Keras resolves itself (rated by :data:`UNSAFE_KERAS_APIS`, not as imports)."""

_CRIT, _HIGH, _MED = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM
UNSAFE_KERAS_APIS: dict[str, tuple[Severity, str]] = {
    "enable_unsafe_deserialization": (_CRIT, "turns safe_mode off for the rest of the load, so a Lambda "
                                             "that follows runs its bytecode (CVE-2025-9906)"),
    "SafeModeScope": (_CRIT, "sets safe_mode for the objects it wraps"),
    "func_load": (_CRIT, "unmarshals and runs Python bytecode"),
    "load_model": (_CRIT, "loads another model, with arguments such as safe_mode=False from this config"),
    "model_from_json": (_CRIT, "builds another model from JSON the config supplies"),
    "model_from_yaml": (_CRIT, "builds another model from YAML the config supplies"),
    "model_from_config": (_CRIT, "builds another model from a config the config supplies"),
    "deserialize_keras_object": (_CRIT, "deserializes another object, with safe_mode from this config"),
    "get_file": (_HIGH, "downloads a URL and writes it to a path of the config's choosing, and can "
                        "extract archives (CVE-2025-8747)"),
    "extract_archive": (_HIGH, "extracts an archive to a path of the config's choosing"),
    "load_weights": (_HIGH, "reads a weights file from a path of the config's choosing"),
    "save_model": (_HIGH, "writes a file to a path of the config's choosing"),
    "save_weights": (_HIGH, "writes a file to a path of the config's choosing"),
    "save_img": (_HIGH, "writes a file to a path of the config's choosing"),
    "load_img": (_HIGH, "reads a file from a path of the config's choosing"),
    "image_dataset_from_directory": (_HIGH, "reads files from a folder of the config's choosing"),
    "text_dataset_from_directory": (_HIGH, "reads files from a folder of the config's choosing"),
    "audio_dataset_from_directory": (_HIGH, "reads files from a folder of the config's choosing"),
    "register_keras_serializable": (_HIGH, "registers objects under new names while loading"),
    "serialize_keras_object": (_MED, "not a modeling function"),
    "clear_session": (_MED, "resets Keras' global state while loading"),
}
"""Keras functions that are not modeling code (Keras' own ``NON_MODELING_APIS`` and more),
matched by name under any Keras module path (``keras.utils.get_file``,
``keras.src.utils.file_utils.get_file``, ``tf_keras...``)."""

_FILE_MODULES = re.compile(r"(^|\.)(file_utils|io_utils)$")
_LOOKUP_LAYERS = frozenset({"StringLookup", "IntegerLookup", "IndexLookup", "TextVectorization"})
_JSON_START = re.compile(rb'\{\s*"')
_NUL = re.compile(b"\x00")
_MAX_CONFIG_BYTES = 256 << 20
_MAX_JSON_OBJECT = 64 << 20
_MAX_DECODED = 512 << 20
_MAX_NODES = 10_000_000
_MAX_NAME = 256

RULE_HELP: dict[str, str] = {
    "keras-lambda": "A Lambda layer (or another function argument) holds marshalled Python bytecode, "
                    "which runs when the model is built: in tf.keras and Keras 2 always, in Keras 3 "
                    "whenever safe_mode is off (CVE-2024-3660). Never load it from an untrusted "
                    "source; rebuild the model in code and load only its weights.",
    "keras-unsafe-api": "The config calls a Keras function that is not modeling code: one that turns "
                        "safe mode off (CVE-2025-9906), downloads or writes files (keras.utils.get_file, "
                        "CVE-2025-8747), or loads another model. Keras resolves these even in safe mode "
                        "in affected versions.",
    "keras-pickle": "A TorchModuleWrapper layer holds a pickled torch module, which Keras unpickles "
                    "with torch.load(weights_only=False) when safe mode is off or in Keras < 3.11: any "
                    "code can run.",
    "keras-external-model": "A TFSMLayer loads a TensorFlow SavedModel from a path in the config; that "
                            "SavedModel's ops run with the model (CVE-2026-1462).",
    "keras-file-reference": "A lookup layer's vocabulary is a file path or URL, which Keras reads on load "
                            "(CVE-2025-12058): an absolute path, '..' or URL reads any file or fetches "
                            "from the network.",
}


def is_keras_module(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in KERAS_PACKAGES)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_NAME else text[:_MAX_NAME] + "..."


class _ConfigRater:
    """Rates every object of one decoded config into ``findings``."""

    def __init__(self, findings: Findings, member: str, offset: int) -> None:
        self.findings, self.member, self.offset = findings, member, offset
        self.nodes = 0

    def report(self, severity: Severity, rule: str, global_name: str, detail: str) -> None:
        self.findings.report(severity, rule, global_name, detail, self.offset, self.member)

    def walk(self, root: Any) -> None:
        stack = [root]
        while stack:
            obj = stack.pop()
            self.nodes += 1
            if self.nodes > _MAX_NODES:
                raise LimitReached(f"Keras config with more than {_MAX_NODES} values")
            if isinstance(obj, dict):
                self.rate(obj)
                stack.extend(v for v in obj.values() if isinstance(v, dict | list))
            elif isinstance(obj, list):
                stack.extend(v for v in obj if isinstance(v, dict | list))

    def rate(self, d: dict[str, Any]) -> None:
        cn = d.get("class_name")
        if not isinstance(cn, str):
            return
        cfg = d.get("config")
        if cn == "__lambda__":
            self.report(Severity.CRITICAL, "keras-lambda", "", "a function saved as marshalled Python "
                        "bytecode (a lambda), run when the model is built")
        elif cn == "Lambda" and isinstance(cfg, dict):
            self.legacy_lambda(cfg)
        elif cn == "TorchModuleWrapper":
            self.report(Severity.CRITICAL, "keras-pickle", "", "TorchModuleWrapper layer: a pickled "
                        "torch module that Keras loads with torch.load(weights_only=False)")
        elif cn == "TFSMLayer":
            path = cfg.get("filepath") if isinstance(cfg, dict) else None
            where = f" from {_short(path)!r}" if isinstance(path, str) else ""
            self.report(Severity.HIGH, "keras-external-model", "", f"TFSMLayer loads a TensorFlow "
                        f"SavedModel{where}; its ops run with this model")
        elif cn in _LOOKUP_LAYERS and isinstance(cfg, dict):
            vocabulary = cfg.get("vocabulary")
            if isinstance(vocabulary, str):
                problem = external_path_problem(vocabulary)
                severity = Severity.HIGH if problem else Severity.MEDIUM
                why = f", which {problem}" if problem else ""
                self.report(severity, "keras-file-reference", _short(vocabulary), f"{cn} reads its "
                            f"vocabulary from {_short(vocabulary)!r}{why}")
        module = d.get("module")
        if isinstance(module, str) and module:
            is_function = cn == "function"
            name = cfg if is_function and isinstance(cfg, str) else cn
            if not is_function or isinstance(cfg, str):
                self.reference(module, name, function=is_function)

    def legacy_lambda(self, cfg: dict[str, Any]) -> None:
        """tf.keras/Keras 2 Lambda: ``function_type`` says whether ``function`` is bytecode."""
        for fn_key, type_key, module_key in (("function", "function_type", "module"),
                                             ("output_shape", "output_shape_type", "output_shape_module")):
            kind, fn = cfg.get(type_key), cfg.get(fn_key)
            if kind == "lambda" and fn is not None:
                self.report(Severity.CRITICAL, "keras-lambda", "", f"Lambda layer whose {fn_key} is "
                            "marshalled Python bytecode, run when the model is built")
            elif kind == "function" and isinstance(fn, str):
                module = cfg.get(module_key)
                if isinstance(module, str) and module:
                    self.reference(module, fn, function=True)

    def reference(self, module: str, name: str, *, function: bool) -> None:
        """A module and a name that the loader imports and fetches."""
        module, name = _short(module), _short(name)
        full = f"{module}.{name}"
        if is_keras_module(module):
            tail = name.rsplit(".", 1)[-1]
            hit = UNSAFE_KERAS_APIS.get(tail)
            if hit is None and (_FILE_MODULES.search(module) or tail.startswith("plot_")):
                hit = (Severity.HIGH, "reads or writes files at paths of the config's choosing")
            if hit is not None:
                self.report(hit[0], "keras-unsafe-api", full, f"config calls {full}: {hit[1]}")
            return
        if function and module == "builtins" and not hasattr(builtins, name):
            return  # Keras looks such names up in its own modules (activations, losses, ...)
        rating = rate_import(module, name)
        if rating is None:
            return
        self.report(rating.severity, rating.rule, full, f"config imports {full}: {rating.reason}")


def _rate_config(obj: Any, member: str, findings: Findings, offset: int) -> None:
    _ConfigRater(findings, member, offset).walk(obj)


def scan_keras_config(text: bytes, member: str, findings: Findings, *, offset: int = 0) -> None:
    """Rate a Keras config (``config.json``, an HDF5 ``model_config``, SavedModel metadata).

    JSON that does not parse is reported as ``malformed-archive`` (Keras cannot load it either);
    a config over 256 MiB raises :class:`LimitReached`.
    """
    if len(text) > _MAX_CONFIG_BYTES:
        raise LimitReached(f"Keras config larger than {_MAX_CONFIG_BYTES} bytes")
    try:
        obj = json.loads(bytes(text))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        findings.report(Severity.MEDIUM, "malformed-archive", "", f"Keras config is not JSON ({exc})",
                        offset, member)
        return
    _rate_config(obj, member, findings, offset)


# -- HDF5 ------------------------------------------------------------------------------------
def _json_objects(data: Any, start: int, end: int) -> Iterator[tuple[int, Any]]:
    """JSON objects stored anywhere in ``data[start:end]``, with their offsets.

    Valid JSON holds no NUL byte, and HDF5 pads strings with NULs, so each candidate ``{"``
    is decoded up to the next NUL (64 MiB at most); objects found inside an object already
    decoded are skipped. Raises :class:`LimitReached` past 512 MiB decoded in all.
    """
    decoder = json.JSONDecoder()
    covered = start
    decoded = 0
    for m in _JSON_START.finditer(data, start, end):
        p = m.start()
        if p < covered:
            continue
        limit = min(end, p + _MAX_JSON_OBJECT)
        nul = _NUL.search(data, p, limit)
        stop = nul.start() if nul is not None else limit
        decoded += stop - p
        if decoded > _MAX_DECODED:
            raise LimitReached(f"more than {_MAX_DECODED} bytes of JSON candidates in an HDF5 file")
        raw = bytes(data[p:stop])
        text = raw.decode("utf-8", "surrogateescape")
        try:
            obj, used = decoder.raw_decode(text)
        except (ValueError, RecursionError):
            continue
        covered = p + len(text[:used].encode("utf-8", "surrogateescape"))
        yield p - start, obj


def _h5py_configs(data: Any, start: int, end: int) -> list[Any]:
    """The root ``model_config``/``training_config`` attributes as h5py reads them (if installed)."""
    try:
        import h5py  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return []
    out: list[Any] = []
    try:
        with h5py.File(Window(data, start, end), "r") as f:
            for key in ("model_config", "training_config"):
                if key in f.attrs:
                    value = f.attrs[key]
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "replace")
                    if isinstance(value, str) and len(value) <= _MAX_CONFIG_BYTES:
                        out.append(json.loads(value))
    except Exception:  # noqa: BLE001 - h5py raises any of a dozen types on a hostile file
        return out
    return out


def scan_h5(data: Any, start: int, end: int, member: str, findings: Findings, *,
            budget: Budget | None = None, use_h5py: bool = False) -> bool:
    """Scan ``data[start:end]`` as a Keras HDF5 file; False (nothing reported) if it is not HDF5.

    Every JSON object in the file is rated as a Keras config (``model_config``,
    ``training_config``, and anything else stored as JSON); a ``.keras`` archive's
    ``model.weights.h5`` holds none and comes out clean. ``budget`` is accepted for symmetry
    with the other format scanners (the work here is bounded by bytes, not time).
    """
    if hdf5_offset(data, start, end) is None:
        return False
    for offset, obj in _json_objects(data, start, end):
        _rate_config(obj, member, findings, offset)
    if use_h5py:
        for obj in _h5py_configs(data, start, end):
            _rate_config(obj, member, findings, 0)
    return True
