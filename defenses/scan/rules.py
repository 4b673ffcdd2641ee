"""How risky is an import a pickle asks for? An allowlist, then what the callable can do.

Every ``GLOBAL``/``STACK_GLOBAL``/``INST`` makes the unpickler import ``module`` and fetch
``name``: the import alone runs the module's top-level code, and the object fetched is what
``REDUCE``/``BUILD`` later call. Denylists miss what nobody listed yet (every published
picklescan bypass is a callable missing from its list), so the order here is:

1. names built to escape any list (dunder attribute paths) are critical; a dotted name
   (``pathlib.os.system``) is rated as every object it could resolve to, and the worst wins;
2. the allowlist of what real ML files reference (tensor rebuilds, numpy reconstruction,
   plain containers, numpy ufuncs) passes with no finding; it names exact callables, so it
   can carve a builder such as ``torch.jit._pickle`` out of a denied package;
3. known code execution is critical; network and file access are high; so are the
   callables that compose other calls;
4. families close what no list names: any other standard-library or CPython-internal
   callable is high (``mailcap.findmatch`` runs a shell command, and ML files need none
   outside the allowlist), any other torch-internal callable is high (``collect_env.run``,
   ``_import_dotted_name``), test helpers of any package are high, and scipy.stats
   distributions are high (rebuilding one ``exec``s a template string from the file);
5. scikit-learn classes and torch module classes are low: safe to import, but the file
   should be saved in a format that cannot carry code (skops, a state dict);
6. anything else (third-party and ``__main__`` code) is medium, "untrusted import".

The lists merge picklescan's and modelscan's denylists (so a file either flags, Guard flags
too) with the loaders and gadgets from the published bypasses. Python 2 names
(``__builtin__``, ``copy_reg``) are rated under both their old and mapped names, as the
unpickler maps them for protocols below 3. How each callable is rated: docs/scan.md.
"""

from __future__ import annotations

import _compat_pickle
import functools
import re
import sys
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
    "torch._utils": "_import_dotted_name", "torch.fx.graph_module": "_exec_with_source _forward_from_src",
    "torch.jit.unsupported_tensor_ops": "*", "torch._export.serde": "*", "torch.export": "load",
    "torch.distributed": "*", "torch.multiprocessing": "*", "torch.utils.data.datapipes": "*",
    "torch._dynamo": "*", "torch._inductor": "*", "torch.compiler": "*", "torch._C": "*",
    "numpy.lib.utils": "*", "numpy.lib._utils_impl": "*",
    "mailcap": "findmatch subst", "cgitb": "*", "turtledemo": "*", "tkinter": "*", "_tkinter": "*",
    "_thread": "start_new_thread start_new", "_xxsubinterpreters": "*", "_interpreters": "*",
    "_frozen_importlib": "*", "_frozen_importlib_external": "*", "_imp": "*", "_bootsubprocess": "*",
    "_sitebuiltins": "*", "ctypes.util": "*",
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
    "decimal": "Decimal", "fractions": "Fraction", "uuid": "UUID", "argparse": "Namespace",
    "types": "SimpleNamespace", "array": "array _array_reconstructor",
    "pathlib": "Path PosixPath WindowsPath PurePath PurePosixPath PureWindowsPath",
    "numpy": "ndarray dtype matrix", "numpy.ma.core": "_mareconstruct MaskedArray",
    "numpy.matrixlib.defmatrix": "matrix", "numpy.core._internal": "_reconstruct",
    "numpy.core.multiarray": "_reconstruct scalar", "numpy._core.multiarray": "_reconstruct scalar",
    "numpy.core.numeric": "_frombuffer", "numpy._core.numeric": "_frombuffer",
    "numpy.random._pickle": "__randomstate_ctor __bit_generator_ctor __generator_ctor",
    "numpy.random.mtrand": "RandomState", "numpy.random._generator": "Generator",
    "numpy.random._mt19937": "MT19937", "numpy.random._pcg64": "PCG64 PCG64DXSM",
    "numpy.random._philox": "Philox", "numpy.random._sfc64": "SFC64",
    "numpy.random.bit_generator": "SeedSequence SeedlessSeedSequence __pyx_unpickle_SeedSequence "
                                  "__pyx_unpickle_SeedlessSeedSequence",
    "torch": "Size Tensor device dtype layout memory_format",
    "torch._utils": "_rebuild_tensor _rebuild_tensor_v2 _rebuild_tensor_v3 _rebuild_parameter "
                    "_rebuild_parameter_with_state _rebuild_qtensor _rebuild_sparse_tensor "
                    "_rebuild_nested_tensor _rebuild_meta_tensor_no_storage _rebuild_wrapper_subclass "
                    "_rebuild_device_tensor_from_numpy _rebuild_device_tensor_from_cpu_tensor",
    "torch._tensor": "_rebuild_from_type_v2",
    "torch.nn.parameter": "Parameter Buffer",
    "torch.serialization": "_get_layout",
    "torch.storage": "TypedStorage UntypedStorage",
    "torch.torch_version": "TorchVersion",
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

# Allowlisted rebuilds that call one of their arguments (by position): torch's
# ``_rebuild_from_type_v2(func, new_type, args, state)`` returns ``func(*args)``.
CALLS_ARGUMENT: dict[str, int] = {"torch._tensor._rebuild_from_type_v2": 0}

_STDLIB = frozenset(sys.stdlib_module_names) | {"__builtin__", "copy_reg", "cPickle", "commands",
                                                "popen2", "urllib2", "httplib", "xmlrpclib"}
_TEST_PARTS = frozenset({"testing", "_testing", "tests", "test", "conftest", "_pytest", "pytest"})
_MODULE_CLASSES = ("torch.nn.", "torch.optim.", "torch.ao.nn.", "torch.distributions.")


@functools.lru_cache(maxsize=1)
def _numpy_ufuncs() -> frozenset[str]:
    """Names of the installed numpy's ufuncs: pure arithmetic, safe to call with any argument
    (``FunctionTransformer(np.log1p)`` pickles one by name)."""
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy is a dependency
        return frozenset()
    return frozenset(n for n in dir(numpy) if isinstance(getattr(numpy, n, None), numpy.ufunc))


def _listed(table: dict[str, frozenset[str]], module: str, name: str) -> bool:
    """True if ``module.name`` or any parent module is listed (``*``), or the name is listed."""
    head, tail = name.split(".", 1)[0], name.rsplit(".", 1)[-1]
    names = table.get(module)
    if names is not None and (names is ALL or name in names or head in names or tail in names):
        return True  # the tail too: numpy.ndarray.tofile writes files like numpy's tofile
    parts = module.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if table.get(".".join(parts[:i])) is ALL:
            return True
    return False


def is_nested_loader(module: str, name: str) -> bool:
    """A callable that unpickles the bytes it is given (``torch.storage._load_from_bytes``)."""
    return _listed(NESTED_LOADERS, module, name)


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
    if module == "numpy" and name in _numpy_ufuncs():
        return None
    listed = _listed_rating(module, name)
    if listed is not None:
        return listed
    return _family_rating(module, name)


def _listed_rating(module: str, name: str) -> Rating | None:
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
    return None


def _family_rating(module: str, name: str) -> Rating:
    """What no list names, rated by the family it belongs to."""
    parts = module.split(".")
    top = parts[0]
    if _TEST_PARTS.intersection(parts):
        return Rating(Severity.HIGH, "test-helper",
                      "a test helper: test utilities run subprocesses and code strings")
    if top in _STDLIB:
        return Rating(Severity.HIGH, "stdlib-callable",
                      "a standard-library callable outside the allowlist; ML files need none, and "
                      "several run commands or code")
    if top == "torch":
        if module.startswith(_MODULE_CLASSES) and name.lstrip("_")[:1].isupper() and "." not in name:
            return Rating(Severity.LOW, "torch-module-types",
                          "a whole torch module: save a state_dict instead")
        return Rating(Severity.HIGH, "torch-internal",
                      "a torch-internal callable outside the allowlist of tensor rebuilds; several "
                      "run commands or import arbitrary code")
    if top == "scipy" and len(parts) > 1 and parts[1] == "stats":
        return Rating(Severity.HIGH, "code-on-rebuild",
                      "rebuilding a scipy.stats distribution execs a template string stored in the file")
    if top == "sklearn" and "." not in name and (
            name.lstrip("_")[:1].isupper() or name.startswith("__pyx_unpickle_")):
        if "datasets" in parts:
            return Rating(Severity.HIGH, "network-access", "scikit-learn dataset helpers read files "
                          "and download data")
        return Rating(Severity.LOW, "sklearn-types", "scikit-learn object: load with skops instead")
    if module == "__main__":
        return Rating(Severity.MEDIUM, "untrusted-import",
                      "defined in the saving script's __main__: runs whatever that code does")
    return Rating(Severity.MEDIUM, "untrusted-import", "outside the allowlist of safe constructors")


def _resolutions(module: str, name: str) -> list[tuple[str, str]]:
    """Every (module, name) a dotted ``name`` may resolve to: ``pathlib.os.system`` reaches
    ``os.system`` through the module attribute ``pathlib.os``, so each prefix of the name may
    itself be a module (of ``module``'s package, or one it imported under that name)."""
    parts = name.split(".")
    found = [(module, name)]
    for i in range(1, len(parts)):
        head, tail = ".".join(parts[:i]), ".".join(parts[i:])
        found.append((f"{module}.{head}", tail))
        for j in range(i):
            found.append((".".join(parts[j:i]), tail))
            found.append((".".join(p.lstrip("_") for p in parts[j:i]), tail))  # tempfile._os is os
    return found


def _rate_dotted(module: str, name: str) -> Rating | None:
    if "." not in name or _is_dunder_path(name):
        return _rate_one(module, name)
    worst: Rating | None = None
    for mod, tail in _resolutions(module, name):
        rating = _rate_one(mod, tail)
        if rating is not None and (worst is None or rating.severity > worst.severity):
            worst = rating
    if worst is None or worst.severity < Severity.MEDIUM:
        return Rating(Severity.MEDIUM, "untrusted-import",
                      "a dotted name resolved through attributes, outside the allowlist")
    return Rating(worst.severity, worst.rule, f"{worst.reason}, reached through a dotted name")


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
        return _rate_dotted(module, name)
    raw = _rate_dotted(module, name)
    if raw is not None and raw.rule in ("untrusted-import", "stdlib-callable"):
        raw = None
    new = _rate_dotted(*mapped)
    if raw is None or (new is not None and new.severity > raw.severity):
        return new
    return raw


IMPORT_RULES = frozenset({"code-execution", "attribute-traversal", "network-access", "file-access",
                          "call-gadget", "nested-loader", "untrusted-import", "sklearn-types",
                          "torch-module-types", "stdlib-callable", "torch-internal", "test-helper",
                          "code-on-rebuild", "call-through", "skops-untrusted-type", "skops-code-type"})
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
    "stdlib-callable": "Imports a standard-library or CPython-internal callable outside the allowlist. "
                       "ML files need none beyond plain containers, and many (mailcap.findmatch, "
                       "timeit, cProfile, ...) run commands or code.",
    "torch-internal": "Imports a torch-internal callable outside the allowlist of tensor and storage "
                      "rebuilds; several import arbitrary names or run commands.",
    "test-helper": "Imports a test helper (a testing/tests module): such helpers run subprocesses and "
                   "code strings.",
    "code-on-rebuild": "Rebuilding this object runs code taken from the file (a scipy.stats "
                       "distribution execs a template string).",
    "skops-untrusted-type": "The skops schema names a type outside Guard's trusted list for its loader: "
                            "skops would import it and rebuild it from the file's data.",
    "skops-code-type": "The skops schema names a type whose rebuild runs code the file supplies (a "
                       "scipy.stats distribution execs a template string from the file).",
    "call-through": "An allowlisted rebuild function is handed a callable outside the allowlist, "
                    "which it calls: the rebuild launders the call.",
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
    "zip-odd-flags": "A zip entry carries unusual flags (e.g. flagged encrypted while its bytes are a "
                     "readable pickle) that make some readers skip it while torch loads it.",
    "zip-hidden-entry": "Bytes with a local header but no central directory entry.",
    "zip-encrypted-entry": "A truly encrypted zip entry (a password-protected archive): its bytes are no "
                           "pickle or archive any loader reads.",
    "unsupported-compression": "Compressed with a method Guard cannot open, so not inspected.",
    "polyglot-file": "The file parses as two formats at once (e.g. a pickle and a zip).",
    "nested-file": "A bytes value inside a pickle holds a whole file, scanned in turn.",
}
