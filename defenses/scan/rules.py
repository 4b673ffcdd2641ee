"""How risky is an import a pickle asks for? An allowlist first, a denylist second.

Every ``GLOBAL``/``STACK_GLOBAL``/``INST`` makes the unpickler import ``module`` and fetch
``name``: the import alone runs the module's top-level code, and the object fetched is what
``REDUCE``/``BUILD`` later call. Denylists miss what nobody listed yet (every published
picklescan bypass is a callable missing from its list), so the order here is:

1. names built to escape any list (dunder attribute paths) are critical;
2. the allowlist of constructors that real checkpoints need (tensor rebuilds, numpy
   reconstruction, plain containers) passes with no finding; it names exact callables, so
   it can carve a builder such as ``torch.jit._pickle`` out of a denied package;
3. known code execution is critical; network and file access are high;
4. scikit-learn and torch module classes are low: safe to import, but the file should be saved
   in a format that cannot carry code (skops, a state dict);
5. anything else is medium, "untrusted import".

The lists merge picklescan's and modelscan's denylists (so a file either flags, Guard flags
too) with the loaders and gadgets from the published bypasses. Python 2 names
(``__builtin__``, ``copy_reg``) are rated under both their old and mapped names, as the
unpickler maps them for protocols below 3.
"""

from __future__ import annotations

import _compat_pickle
import functools
import re
from dataclasses import dataclass

from guard.defenses.scan.results import Severity

ALL = frozenset({"*"})


@dataclass(frozen=True, slots=True)
class Rating:
    severity: Severity
    rule: str
    reason: str


def _table(spec: dict[str, str]) -> dict[str, frozenset[str]]:
    """``{"module": "name name" or "*"}`` -> ``{"module": frozenset(names)}``."""
    return {mod: ALL if names == "*" else frozenset(names.split()) for mod, names in spec.items()}


# Importing or calling these runs code, loads another pickle, or reaches arbitrary objects.
CODE_EXECUTION = _table({
    "builtins": "eval exec compile __import__ getattr setattr delattr open breakpoint apply "
                "execfile input globals locals vars help reload file __build_class__ exit quit",
    "os": "*", "posix": "*", "nt": "*", "subprocess": "*", "_posixsubprocess": "*", "pty": "*",
    "runpy": "*", "socket": "*", "_socket": "*", "importlib": "*", "imp": "*", "zipimport": "*",
    "ctypes": "*", "_ctypes": "*", "marshal": "*", "pickle": "*", "_pickle": "*", "cPickle": "*",
    "shelve": "*", "dill": "*", "cloudpickle": "*", "pkgutil": "*", "cProfile": "*", "profile": "*",
    "trace": "*", "pydoc": "*", "sys": "*", "code": "*", "codeop": "*", "bdb": "*", "pdb": "*",
    "doctest": "*", "timeit": "*", "idlelib": "*", "lib2to3": "*", "ensurepip": "*", "pip": "*",
    "venv": "*", "site": "*", "distutils": "*", "setuptools": "*", "test": "*", "platform": "*",
    "commands": "*", "popen2": "*", "_osx_support": "*", "_aix_support": "*", "_pyrepl": "*",
    "asyncio": "*", "multiprocessing": "*", "concurrent": "*", "logging.config": "*",
    "types": "CodeType FunctionType LambdaType MethodType ModuleType",
    "operator": "attrgetter methodcaller itemgetter",
    "_operator": "attrgetter methodcaller itemgetter",
    "uuid": "_get_command_stdout _popen _find_mac _ifconfig_getnode _ip_getnode",
    "imaplib": "IMAP4_stream",
    "numpy.f2py": "*", "numpy.testing": "*", "numpy.distutils": "*", "numpy.ctypeslib": "*",
    "numpy": "load", "numpy.lib.npyio": "load", "numpy.lib._npyio_impl": "load",
    "pandas": "read_pickle eval", "pandas.io.pickle": "read_pickle", "joblib": "load",
    "joblib.numpy_pickle": "load",
    "torch": "load from_file", "torch.serialization": "load", "torch.hub": "*", "torch.jit": "*",
    "torch.package": "*", "torch.utils.cpp_extension": "*", "torch._inductor.codecache": "*",
    "torch.utils.collect_env": "*", "torch.utils.bottleneck": "*", "torch.utils._config_module": "*",
    "torch._dynamo.guards": "*", "torch.ops": "load_library", "torch._ops": "*",
    "torch.fx.experimental.symbolic_shapes": "ShapeEnv",
    "torch.utils.data.datapipes.utils.decoder": "basichandlers",
    "keras.models": "load_model", "keras.saving": "*", "tensorflow": "*",
})

NETWORK = _table({
    name: "*" for name in (
        "http httplib urllib urllib2 urllib3 requests aiohttp httpx ftplib smtplib smtpd telnetlib "
        "poplib nntplib imaplib socketserver ssl xmlrpc xmlrpclib webbrowser asynchat asyncore "
        "logging.handlers"
    ).split()
} | {"numpy": "DataSource", "numpy.lib._datasource": "*"})

FILE_ACCESS = _table({
    "shutil": "*", "tempfile": "*", "glob": "*", "fileinput": "*", "mmap": "*", "sqlite3": "*",
    "dbm": "*", "zipfile": "*", "tarfile": "*", "gzip": "open GzipFile", "bz2": "open BZ2File",
    "lzma": "open LZMAFile", "io": "open open_code FileIO", "_io": "open open_code FileIO",
    "codecs": "open EncodedFile", "logging": "FileHandler basicConfig", "py_compile": "*",
    "compileall": "*", "linecache": "*", "filecmp": "*",
    "numpy": "fromfile loadtxt genfromtxt memmap save savez savez_compressed savetxt tofile",
    "torch": "save", "torch.serialization": "save",
})

CALL_GADGETS = _table({"functools": "partial partialmethod reduce", "atexit": "*",
                       "_functools": "partial reduce", "threading": "Thread Timer"})

NESTED_LOADERS = _table({"torch.storage": "_load_from_bytes"})

_SAFE = _table({
    "builtins": "set frozenset list dict tuple bytearray bytes int float complex bool str slice "
                "range object",
    "copyreg": "_reconstructor __newobj__ __newobj_ex__",
    "collections": "OrderedDict defaultdict deque Counter ChainMap",
    "_codecs": "encode",
    "datetime": "datetime date time timedelta timezone",
    "decimal": "Decimal", "fractions": "Fraction",
    "numpy": "ndarray dtype matrix", "numpy.ma.core": "_mareconstruct MaskedArray",
    "numpy.matrixlib.defmatrix": "matrix", "numpy.core._internal": "_reconstruct",
    "numpy.core.multiarray": "_reconstruct scalar", "numpy._core.multiarray": "_reconstruct scalar",
    "numpy.core.numeric": "_frombuffer", "numpy._core.numeric": "_frombuffer",
    "numpy.random._pickle": "__randomstate_ctor __bit_generator_ctor __generator_ctor",
    "numpy.random.mtrand": "RandomState", "numpy.random._generator": "Generator",
    "numpy.random._mt19937": "MT19937", "numpy.random._pcg64": "PCG64 PCG64DXSM",
    "numpy.random._philox": "Philox", "numpy.random._sfc64": "SFC64",
    "numpy.random.bit_generator": "SeedSequence",
    "torch": "Size Tensor device dtype layout memory_format",
    "torch._utils": "_rebuild_tensor _rebuild_tensor_v2 _rebuild_tensor_v3 _rebuild_parameter "
                    "_rebuild_parameter_with_state _rebuild_qtensor _rebuild_sparse_tensor "
                    "_rebuild_nested_tensor _rebuild_meta_tensor_no_storage _rebuild_wrapper_subclass "
                    "_rebuild_device_tensor_from_numpy _rebuild_device_tensor_from_cpu_tensor",
    "torch._tensor": "_rebuild_from_type_v2",
    "torch.nn.parameter": "Parameter Buffer",
    "torch.serialization": "_get_layout",
    "torch.storage": "TypedStorage UntypedStorage",
    "joblib.numpy_pickle": "NumpyArrayWrapper NDArrayWrapper ZNDArrayWrapper",
    "joblib.numpy_pickle_compat": "NDArrayWrapper ZNDArrayWrapper",
})

_SAFE_PATTERNS = re.compile(
    r"torch(\.cuda)?(\.sparse)?\.\w+(Storage|Tensor)"
    r"|torch\.(u?int\d+|float\d+\w*|bfloat16|complex\d+|bool|bits\w+|q(u)?int\w+|half|double|long"
    r"|short|cfloat|cdouble|strided|sparse_\w+|_mkldnn|contiguous_format|channels_last(_3d)?"
    r"|preserve_format|per_\w+)"
    r"|torch\.jit\._pickle\.\w+"
    r"|__torch__\..+"
    r"|numpy\.dtypes\.\w+DType"
    r"|numpy\.(u?int\d*|float\d*|complex\d*|bool_?|str_|bytes_|object_|void|datetime64|timedelta64"
    r"|longdouble|half|single|double|intc|uintc|longlong|ulonglong|short|ushort|byte|ubyte|intp|uintp"
    r"|clongdouble|csingle|cdouble)"
    r"|scipy\.sparse\.(_\w+\.)?(csr|csc|coo|bsr|dia|dok|lil)_(matrix|array)"
)

_LOW = (
    ("sklearn", "sklearn-types", "scikit-learn object: load with skops instead"),
    ("torch.nn.modules", "torch-module-types", "a whole torch module: save a state_dict instead"),
)


def _listed(table: dict[str, frozenset[str]], module: str, name: str) -> bool:
    """True if ``module.name`` or any parent module is listed (``*``), or the name is listed."""
    head = name.split(".", 1)[0]
    names = table.get(module)
    if names is not None and (names is ALL or name in names or head in names):
        return True
    parts = module.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if table.get(".".join(parts[:i])) is ALL:
            return True
    return False


def _is_dunder_path(name: str) -> bool:
    parts = name.split(".")
    return len(parts) > 1 and any(p.startswith("__") and p.endswith("__") for p in parts)


def _rate_one(module: str, name: str) -> Rating | None:
    full = f"{module}.{name}"
    if _is_dunder_path(name):
        return Rating(Severity.CRITICAL, "attribute-traversal",
                      "reaches objects through dunder attributes, a way around every list")
    safe = _SAFE.get(module)
    if (safe is not None and name in safe) or _SAFE_PATTERNS.fullmatch(full):
        return None
    if _listed(CODE_EXECUTION, module, name):
        return Rating(Severity.CRITICAL, "code-execution", "can execute code or load another pickle")
    if _listed(NETWORK, module, name):
        return Rating(Severity.HIGH, "network-access", "can open network connections")
    if _listed(FILE_ACCESS, module, name):
        return Rating(Severity.HIGH, "file-access", "can read, write or delete files")
    if _listed(CALL_GADGETS, module, name):
        return Rating(Severity.HIGH, "call-gadget", "composes or defers calls to other callables")
    if _listed(NESTED_LOADERS, module, name):
        return Rating(Severity.MEDIUM, "nested-loader",
                      "unpickles embedded bytes (scanned as a nested stream)")
    for prefix, rule, reason in _LOW:
        if module == prefix or module.startswith(prefix + "."):
            if "." in name:
                break
            return Rating(Severity.LOW, rule, reason)
    if module == "__main__":
        return Rating(Severity.MEDIUM, "untrusted-import",
                      "defined in the saving script's __main__: runs whatever that code does")
    return Rating(Severity.MEDIUM, "untrusted-import", "outside the allowlist of safe constructors")


def _py3_names(module: str, name: str) -> tuple[str, str]:
    """The names Python 3's unpickler imports for a protocol 0-2 pickle written by Python 2."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


@functools.lru_cache(maxsize=8192)
def rate_import(module: str, name: str) -> Rating | None:
    """Rate one import; None means allowlisted.

    A Python 2 name is rated under both spellings and the worse wins, except that the raw
    spelling's "unknown module" is dropped: Python 3 has no ``__builtin__`` to import.
    """
    mapped = _py3_names(module, name)
    if mapped == (module, name):
        return _rate_one(module, name)
    raw = _rate_one(module, name)
    if raw is not None and raw.rule == "untrusted-import":
        raw = None
    new = _rate_one(*mapped)
    if raw is None or (new is not None and new.severity > raw.severity):
        return new
    return raw


IMPORT_RULES = frozenset({"code-execution", "attribute-traversal", "network-access", "file-access",
                          "call-gadget", "nested-loader", "untrusted-import", "sklearn-types",
                          "torch-module-types"})
"""Rules an import's rating gives (as opposed to stream structure or container anomalies)."""

RULE_HELP: dict[str, str] = {
    "code-execution": "Imports a callable that runs code, a shell command or another unpickler. "
                      "Never load this file; ask for safetensors, a state dict or skops.",
    "attribute-traversal": "Names an object through dunder attributes (__globals__, __builtins__, ...): "
                           "a way to reach anything while naming something harmless.",
    "unresolved-import": "STACK_GLOBAL's module or name is computed at load time, not a literal: "
                         "no legitimate writer does this; it hides the import from scanners.",
    "network-access": "Imports a callable that opens network connections.",
    "file-access": "Imports a callable that reads, writes or deletes files.",
    "call-gadget": "Imports a callable that composes or defers calls (functools.partial, atexit): "
                   "used to chain other imports into code execution.",
    "indirect-call": "REDUCE/NEWOBJ calls a value computed at load time rather than an import: "
                     "the hallmark of a getattr chain.",
    "nested-loader": "Unpickles bytes embedded in the file; those bytes are scanned as well.",
    "extension-code": "Imports through the copyreg extension registry: whatever the loading process "
                      "registered runs.",
    "untrusted-import": "Imports something outside the allowlist of safe constructors: it runs that "
                        "code's constructors and __setstate__ on load.",
    "sklearn-types": "scikit-learn objects are safe to import but need a full unpickler: load with "
                     "skops instead, which refuses unknown types.",
    "torch-module-types": "A whole torch module was pickled: save a state_dict (or TorchScript) so "
                          "weights_only loading works.",
    "malformed-pickle": "The opcode stream cannot be parsed past some point; what came before was "
                        "scanned, the rest could not be.",
    "malformed-archive": "A container (npy, tar, compressed stream) is corrupt; its contents could not "
                         "all be scanned.",
    "resource-limit": "The scan stopped at a bound (opcodes, memo, nesting, inflated bytes, time): "
                      "a file built to exhaust a scanner exhausts loaders too.",
    "scan-error": "The file could not be read or parsed.",
    "zip-corrupt": "The zip's central directory is missing or broken; loaders disagree on what it "
                   "holds.",
    "zip-crc-mismatch": "A zip entry's CRC-32 is wrong: readers that skip the check (torch) load bytes "
                        "that checked readers refuse.",
    "zip-duplicate-name": "Two zip entries share a name: different readers load different ones.",
    "zip-header-mismatch": "A zip entry's local header disagrees with the central directory.",
    "zip-odd-flags": "A zip entry carries unusual flags (e.g. encrypted) that make some readers "
                     "skip it while torch loads it.",
    "zip-hidden-entry": "Bytes with a local header but no central directory entry.",
    "unsupported-compression": "Compressed with a method Guard cannot open, so not inspected.",
    "polyglot-file": "The file parses as two formats at once (e.g. a pickle and a zip).",
    "nested-file": "A bytes value inside a pickle holds a whole file, scanned in turn.",
}
