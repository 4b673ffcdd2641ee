"""Safe loading of model files: Guard never executes code from a file it audits.

The format is told by the file's bytes (zip contents, magic numbers) before its name, so a
pickle renamed ``model.safetensors`` is still refused. The file is read once into memory and
every check and load works on those bytes, so what was vetted is what gets loaded.

- TorchScript (``torch.jit.save``): TorchScript code runs in the TorchScript interpreter and
  its pickles go through torch's restricted unpickler, not Python's.
- torch.export (``.pt2``): ``torch.export.load`` itself unpickles sample inputs and
  "pickled" weights without ``weights_only``, feeds expression strings to sympy's ``eval``,
  and ``.module()`` compiles guard code from the file (all shown to run code in torch 2.13).
  :mod:`guard.models.pt2_vetting` checks the archive first and the graph again after
  loading, before anything runs.
- state dicts (``.pt``/``.pth``/``.bin``, ``.safetensors``): ``torch.load(weights_only=True)``
  or safetensors, then the architecture from the user's own code (``--arch module:Class``).
- skops: every type in ``schema.json`` is checked, loader by loader, against one named list
  (:mod:`guard.defenses.scan.skops`); anything else is refused before skops imports it.
- pickle and joblib run arbitrary code on load: refused unless the user opts in.
"""

from __future__ import annotations

import importlib
import inspect
import io
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from guard.errors import ModelLoadError, UnsafeModelError
from guard.models.pt2_vetting import check_exported_graph, unsupported_global, vet_exported_archive

if TYPE_CHECKING:
    import torch

Framework = Literal["torch", "sklearn"]

_PICKLE_HINT = (
    "pickle files can execute code when loaded; pass --unsafe-allow-pickle to load a file "
    "you trust (a later release scans them first)"
)
_STATE_DICT_SUFFIXES = frozenset({".pt", ".pth", ".bin", ".ckpt"})
# torch.save's pre-1.6 format starts with a pickled magic number (0x1950a86a20f9469cfc6c).
_TORCH_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
_ARCH_SPEC = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_MAX_NAMED = 3


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model object read from a file, with the framework and format it came in."""

    framework: Framework
    obj: Any
    format: str


def load_model(
    path: Path,
    *,
    arch: str | None = None,
    unsafe_allow_pickle: bool = False,
    data: bytes | None = None,
) -> LoadedModel:
    """Load a torch module or scikit-learn estimator without running code from ``path``.

    ``arch`` ("module:Class") builds the network for a bare state dict; ``unsafe_allow_pickle``
    lets pickle-based files through, which run arbitrary code: only for files the user trusts.
    ``data``, when given, is the file's content already in memory (a model decrypted without
    touching the disk); ``path`` then only names it. Every failure is a
    :class:`ModelLoadError` (:class:`UnsafeModelError` when refused).
    """
    path = Path(path)
    if data is None:
        data = read_model_file(path)
    elif not data:
        raise ModelLoadError(f"{path}: model is empty")
    kind = _detect(path, data)
    if kind == "torchscript":
        return LoadedModel("torch", _load_torchscript(path, data), "torchscript")
    if kind == "torch.export":
        return LoadedModel("torch", _load_exported(path, data), "torch.export")
    if kind == "torch.save":
        return _load_torch_save(path, data, arch, unsafe_allow_pickle)
    if kind == "safetensors":
        return LoadedModel("torch", _load_safetensors(path, data, arch), "safetensors")
    if kind == "skops":
        return _classify(path, _load_skops(path, data), "skops")
    return _classify(path, _load_pickle(path, data, kind, unsafe_allow_pickle), kind)


def read_model_file(path: Path) -> bytes:
    """A model file's bytes, read once, with a one-line error for a missing, unreadable,
    empty, oversized or special (FIFO, device) file."""
    from guard.fsio import NotRegularFile, read_regular_file
    from guard.limits import describe, limit

    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory, not a model file")
    try:
        data = read_regular_file(path, limit("model_bytes"))
    except NotRegularFile as exc:
        raise ModelLoadError(f"{exc}; give the model file itself") from exc
    except ValueError:
        raise ModelLoadError(f"{path}: larger than the {describe('model_bytes')}; Guard reads a model "
                             "file into memory once, to scan, verify and load the same bytes") from None
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise ModelLoadError(f"{path}: file is empty")
    return data


def _detect(path: Path, data: bytes) -> str:
    """Name the format from the bytes first, the file extension second."""
    suffix = path.suffix.lower()
    if data[:2] == b"PK":
        return _detect_zip(path, data)
    if suffix == ".joblib":
        return "joblib"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "torch.save" if data[2:14] == _TORCH_LEGACY_MAGIC else "pickle"
    if suffix == ".safetensors" or _looks_like_safetensors(data):
        return "safetensors"
    if suffix in (".pkl", ".pickle"):
        return "pickle"
    if suffix in (".skops", ".pt2") or suffix in _STATE_DICT_SUFFIXES:
        raise ModelLoadError(f"{path}: not a valid {suffix} file (corrupt or truncated)")
    raise ModelLoadError(
        f"{path}: unknown model format; Guard reads TorchScript, torch.export (.pt2), state "
        "dicts (.pt/.pth/.bin, .safetensors) and skops files"
    )


def _looks_like_safetensors(data: bytes) -> bool:
    header = int.from_bytes(data[:8], "little") if len(data) >= 8 else 0
    return 0 < header <= len(data) - 8 and data[8:9] == b"{"


def _detect_zip(path: Path, data: bytes) -> str:
    names = _zip_names(path, data)
    if "schema.json" in names:
        return "skops"
    if "serialized_exported_program.json" in names:
        raise ModelLoadError(
            f"{path}: torch.export archive in the pre-2.7 format, which Guard does not read; "
            "save it again with a current torch"
        )
    roots = {name.partition("/")[0] for name in names}
    inner = {name.partition("/")[2] for name in names}
    if len(roots) == 1:
        if "constants.pkl" in inner or any(n.startswith("code/") for n in inner):
            return "torchscript"
        if "archive_format" in inner:
            return "torch.export"
        if "data.pkl" in inner:
            return "torch.save"
    raise ModelLoadError(f"{path}: a zip archive that is no model format Guard knows")


def _zip_names(path: Path, data: bytes) -> list[str]:
    """Entry names of a zip archive whose checksums all match (a flipped bit is an error)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelLoadError(f"{path}: corrupt or truncated zip archive ({exc})") from exc
    if bad is not None:
        raise ModelLoadError(f"{path}: corrupt archive, checksum mismatch in {bad!r}")
    if len(set(names)) != len(names):
        raise ModelLoadError(f"{path}: zip archive has duplicate entries")
    return names


def _load_torchscript(path: Path, data: bytes) -> torch.nn.Module:
    import torch

    try:
        module: torch.nn.Module = torch.jit.load(  # type: ignore[no-untyped-call]
            io.BytesIO(data), map_location="cpu"
        )
    except RuntimeError as exc:
        raise ModelLoadError(f"{path}: cannot load TorchScript ({_first_line(exc)})") from exc
    return module


def _load_exported(path: Path, data: bytes) -> torch.nn.Module:
    import torch

    vet_exported_archive(path, data)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as exc:  # torch raises many types here (SerializeError, SpecViolation...)
        raise ModelLoadError(
            f"{path}: cannot load torch.export program ({_first_line(exc)})"
        ) from exc
    check_exported_graph(path, program)
    # Guard code is Python compiled from the file; the vetting refuses it, and it is never run.
    if "check_guards" in inspect.signature(program.module).parameters:
        module: torch.nn.Module = program.module(check_guards=False)
    else:  # torch < 2.9 has no guard code
        module = program.module()
    # torch.export replaces train()/eval() on the module with stubs that raise; the graph's
    # behaviour was fixed at export, so nn.Module's own flag setters are safe to restore.
    vars(module).pop("train", None)
    vars(module).pop("eval", None)
    return module


def _load_torch_save(
    path: Path, data: bytes, arch: str | None, unsafe_allow_pickle: bool
) -> LoadedModel:
    import torch

    try:
        obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        if not unsafe_allow_pickle:
            raise UnsafeModelError(
                f"{path}: holds pickled Python objects, not only tensors"
                f"{unsupported_global(exc)}; save a state_dict or TorchScript instead, or "
                f"{_PICKLE_HINT}"
            ) from exc
        obj = _torch_load_unsafe(path, data)
    except (RuntimeError, EOFError, ValueError) as exc:
        raise ModelLoadError(f"{path}: corrupt torch file ({_first_line(exc)})") from exc
    if isinstance(obj, torch.nn.Module):
        return LoadedModel("torch", obj, "pickle")
    state = _state_dict_of(path, obj)
    return LoadedModel("torch", _module_with_weights(path, state, arch), "state_dict")


def _torch_load_unsafe(path: Path, data: bytes) -> Any:
    import torch

    try:
        return torch.load(io.BytesIO(data), weights_only=False, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, AttributeError, ImportError, EOFError) as exc:
        raise ModelLoadError(f"{path}: cannot unpickle ({_first_line(exc)})") from exc


def _load_safetensors(path: Path, data: bytes, arch: str | None) -> torch.nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        state = load(data)
    except SafetensorError as exc:
        raise ModelLoadError(f"{path}: corrupt safetensors file ({exc})") from exc
    return _module_with_weights(path, state, arch)


def _state_dict_of(path: Path, obj: Any) -> dict[str, torch.Tensor]:
    """The tensors of a state dict, also when nested in a training checkpoint."""
    import torch

    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            state: dict[str, torch.Tensor] = obj
            return state
    raise ModelLoadError(
        f"{path}: holds a {type(obj).__name__} that is not a state dict of tensors"
    )


def _module_with_weights(
    path: Path, state: dict[str, torch.Tensor], arch: str | None
) -> torch.nn.Module:
    if arch is None:
        raise ModelLoadError(
            f"{path}: holds only weights (a state dict); name the network class that takes "
            "them with --arch module:Class"
        )
    module = _build_arch(arch)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    resized = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{label}: {', '.join(keys[:_MAX_NAMED])}{' ...' if len(keys) > _MAX_NAMED else ''}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatch (file vs model)", resized),
        )
        if keys
    ]
    if problems:
        raise ModelLoadError(f"{path}: weights do not fit {arch}: {'; '.join(problems)}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{path}: weights do not fit {arch} ({_first_line(exc)})") from exc
    return module


def _build_arch(arch: str) -> torch.nn.Module:
    """Import the user's own network class (their code, not the audited file) and build it."""
    import torch

    if not _ARCH_SPEC.fullmatch(arch):
        raise ModelLoadError(f"--arch {arch!r}: expected module:Class, e.g. mynet.models:Net")
    module_name, _, class_path = arch.partition(":")
    cwd = str(Path.cwd())
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(f"--arch {arch!r}: cannot import {module_name} ({exc})") from exc
    except Exception as exc:  # the user's module failed while importing: report, don't crash
        raise ModelLoadError(
            f"--arch {arch!r}: importing {module_name} failed "
            f"({type(exc).__name__}: {_first_line(exc)})"
        ) from exc
    finally:
        if added:
            sys.path.remove(cwd)
    for part in class_path.split("."):
        if not hasattr(target, part):
            raise ModelLoadError(f"--arch {arch!r}: {module_name} has no attribute {part!r}")
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, torch.nn.Module)):
        raise ModelLoadError(f"--arch {arch!r}: {class_path} is not a torch.nn.Module class")
    try:
        built: torch.nn.Module = target()
    except Exception as exc:  # the user's constructor: any failure is reported as theirs
        raise ModelLoadError(
            f"--arch {arch!r}: {class_path}() failed; the class must build with no arguments "
            f"({type(exc).__name__}: {_first_line(exc)})"
        ) from exc
    return built


def _load_skops(path: Path, data: bytes) -> Any:
    """Guard's own walk of every node in ``schema.json`` first (skops trusts types per loader,
    and a type trusted anywhere passes everywhere), then skops' audit against the same list;
    ``trusted=`` is exactly what skops flagged, all of it on Guard's list."""
    import skops.io

    from guard.defenses.scan.skops import read_schema, untrusted_types

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = read_schema(archive)
        refused = untrusted_types(schema)
        flagged = [] if refused else skops.io.get_untrusted_types(data=data)
        refused += [name for name in flagged if not _skops_type_is_trusted(name)]
        if refused:
            more = " ..." if len(refused) > _MAX_NAMED else ""
            raise UnsafeModelError(
                f"{path}: refused, the skops file holds types outside Guard's trusted list "
                f"({', '.join(refused[:_MAX_NAMED])}{more}); rebuilding them could run code "
                "from the file"
            )
        return skops.io.loads(data, trusted=flagged)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, EOFError, OSError,
            NotImplementedError, RecursionError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{path}: corrupt skops file ({_first_line(exc)})") from exc


def _skops_type_is_trusted(name: str) -> bool:
    from guard.defenses.scan.skops import trusted_types

    return name in trusted_types()


def _load_pickle(path: Path, data: bytes, kind: str, unsafe_allow_pickle: bool) -> Any:
    if not unsafe_allow_pickle:
        raise UnsafeModelError(f"{path}: refused, {_PICKLE_HINT}")
    try:
        if kind == "joblib":
            import joblib

            return joblib.load(io.BytesIO(data))
        return pickle.loads(data)
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ImportError,
        IndexError,
        TypeError,
        ValueError,
    ) as exc:
        raise ModelLoadError(f"{path}: cannot unpickle ({_first_line(exc)})") from exc


def _classify(path: Path, obj: Any, fmt: str) -> LoadedModel:
    import torch

    if isinstance(obj, torch.nn.Module):
        return LoadedModel("torch", obj, fmt)
    if hasattr(obj, "predict"):
        return LoadedModel("sklearn", obj, fmt)
    raise ModelLoadError(
        f"{path}: holds a {type(obj).__name__}, not a torch module or scikit-learn estimator"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
