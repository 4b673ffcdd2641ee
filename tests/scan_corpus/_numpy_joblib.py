"""Class ``numpy-joblib``: object arrays whose "data" is a pickle, however their dtype is spelled.

``np.load(allow_pickle=True)`` unpickles an .npy's data whenever ``dtype.hasobject``, and the
header is a Python literal that numpy parses with ``ast.literal_eval``: any spelling numpy
accepts for an object dtype, any literal formatting, works. joblib reads a
``NumpyArrayWrapper`` and, if its dtype has objects, unpickles the bytes that follow with the
pure-Python unpickler (which also accepts a FRAME longer than the file). Compressed joblib
files are sniffed by magic (zlib, gzip, bz2, xz, lzma, lz4, and joblib < 0.10's "ZF").
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
import zlib
from pathlib import Path

from . import _build as b
from ._common import Spec

# (stem, header descr literal as written in the file, what it is)
_DESCRS = [
    ("descr-O", "'O'", "the canonical '|O' spelled 'O'"),
    ("descr-pipe-O", "'|O'", "'|O', what np.save writes"),
    ("descr-object-word", "'object'", "the word 'object'"),
    ("descr-object-underscore", "'object_'", "'object_' (numpy's scalar type name)"),
    ("descr-O8", "'O8'", "'O8' (sized object code)"),
    ("descr-O4-bigendian", "'>O4'", "'>O4' (byte order + size; numpy ignores both)"),
    ("descr-comma-struct", "'i8,O'", "'i8,O': a comma-string structured dtype with an object field"),
    ("descr-subarray-string", "'(2,)O'", "'(2,)O': a subarray-of-object dtype string"),
    ("descr-subarray-tuple", "('O', (2,))", "a (base, shape) tuple descr"),
    ("descr-struct-list", "[('w', '<f8'), ('meta', '|O')]", "a structured list with one object field"),
    ("descr-struct-nested", "[('outer', [('inner', 'O')])]", "a nested structured descr"),
    ("descr-struct-title", "[(('weights title', 'w'), 'O')]", "a field with a (title, name) pair"),
    ("descr-struct-padding", "[('', '|V8'), ('x', 'O')]", "an object field after a padding field"),
    ("descr-escaped", "'\\x4f'", "'\\x4f', an escaped 'O' that literal_eval decodes"),
    ("descr-concat", "'ob' 'ject'", "implicit string concatenation 'ob' 'ject'"),
]


def _header(descr: str, *, shape: str = "(1,)", fortran: str = "False", style: str = "np") -> str:
    if style == "np":
        return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    if style == "dq-reordered":
        return f'{{"shape": {shape}, "fortran_order": {fortran}, "descr": {descr}}}'
    if style == "spaced":
        return f"{{ 'descr' :{descr} ,\n 'fortran_order':{fortran},'shape':{shape} }}"
    raise ValueError(style)


def _joblib_wrapper(dtype_ops: bytes, shape_ops: bytes, inner: bytes, *, order: str = "C",
                    head: bytes = b"", wrapper_ops: bytes | None = None) -> bytes:
    """A joblib file: a dict {"model": NumpyArrayWrapper(...)} whose array bytes are ``inner``."""
    wrapper = wrapper_ops if wrapper_ops is not None else (
        b.sglob("joblib.numpy_pickle", "NumpyArrayWrapper") + b.EMPTY_TUPLE + b.NEWOBJ)
    state = b.pdict([
        (b.ustr("subclass"), b.sglob("numpy", "ndarray")),
        (b.ustr("shape"), shape_ops),
        (b.ustr("order"), b.ustr(order)),
        (b.ustr("dtype"), dtype_ops),
        (b.ustr("allow_mmap"), b.NEWFALSE),
        (b.ustr("numpy_array_alignment_bytes"), b.pint(16)),
    ])
    return (b.proto(4) + head + b.EMPTY_DICT + b.MARK + b.ustr("model") + wrapper + state + b.BUILD
            + inner + b.SETITEMS + b.STOP)


def _dtype(*args: bytes, state: bool = False) -> bytes:
    ops = b.call(b.sglob("numpy", "dtype"), *args)
    if state:
        ops += b.tup(b.pint(3), b.ustr("|"), b.NONE, b.NONE, b.NONE, b.pint(-1), b.pint(-1),
                     b.pint(63)) + b.BUILD
    return ops


def build(canary: Path) -> list[Spec]:
    specs: list[Spec] = []
    inner_sys = b.stream(b.system_call(canary), 3)  # np.save pickles object data with protocol 3
    inner_exe = b.stream(b.exec_call(canary), 5)    # joblib with protocol 5
    b.check_pickle(inner_sys)
    b.check_pickle(inner_exe)

    # -- .npy object arrays -------------------------------------------------------------------
    for i, (stem, descr, what) in enumerate(_DESCRS):
        payload = inner_sys if i % 2 == 0 else inner_exe
        specs.append(Spec(f"npy-{stem}.npy", "numpy-joblib",
                          f".npy whose descr is {what}; np.load(allow_pickle=True) unpickles the data",
                          b.npy(_header(descr), payload)))
    specs += [
        Spec("npy-v2-header.npy", "numpy-joblib", ".npy format 2.0 (4-byte header length), object "
             "dtype", b.npy(_header("'|O'"), inner_sys, version=(2, 0))),
        Spec("npy-v3-utf8-header.npy", "numpy-joblib", ".npy format 3.0 (UTF-8 header, a non-ASCII "
             "field title), object field", b.npy(_header("[(('poids é', 'w'), '|O')]"), inner_exe,
                                                   version=(3, 0))),
        Spec("npy-dq-reordered-header.npy", "numpy-joblib", ".npy header with double quotes and keys "
             "in another order (literal_eval accepts it)",
             b.npy(_header("'O'", style="dq-reordered"), inner_sys)),
        Spec("npy-spaced-header.npy", "numpy-joblib", ".npy header with odd spacing and a newline "
             "inside the dict", b.npy(_header("'object'", style="spaced"), inner_exe)),
        Spec("npy-empty-shape.npy", "numpy-joblib", "object .npy with shape (0,): numpy still "
             "unpickles the data", b.npy(_header("'|O'", shape="(0,)"), inner_sys)),
        Spec("npy-fortran-order.npy", "numpy-joblib", "object .npy with fortran_order True and a 2-D "
             "shape", b.npy(_header("'|O'", shape="(2, 3)", fortran="True"), inner_exe)),
        Spec("npy-huge-header.npy", "numpy-joblib", "object .npy with a 70 KB header (over numpy's "
             "10000 limit, which allow_pickle=True lifts)",
             b.npy(_header("'|O'") + " " * 70000, inner_sys, version=(2, 0))),
    ]

    # -- .npz ------------------------------------------------------------------------------
    obj_npy = b.npy(_header("'|O'"), inner_sys)
    clean_npy = b.npy(_header("'<f8'", shape="(2,)"), b"\x00" * 16)
    for method, label in ((zipfile.ZIP_LZMA, "lzma"), (zipfile.ZIP_BZIP2, "bzip2"),
                          (zipfile.ZIP_DEFLATED, "deflate")):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=method) as zf:
            for name, data in (("weights.npy", clean_npy), ("meta.npy", obj_npy)):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                zf.writestr(info, data)
        specs.append(Spec(f"npz-{label}-object.npz", "numpy-joblib",
                          f".npz whose object-array entry is compressed with ZIP_{label.upper()} "
                          f"(np.load reads every zipfile method)", buf.getvalue()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("README.txt", date_time=(1980, 1, 1, 0, 0, 0)), obj_npy)
    specs.append(Spec("npz-entry-named-txt.npz", "numpy-joblib",
                      ".npz whose object .npy entry is named README.txt: NpzFile parses any entry "
                      "that starts with the npy magic", buf.getvalue()))

    # -- joblib NumpyArrayWrapper ----------------------------------------------------------
    one = b.tup(b.pint(1))
    wrappers = [
        ("joblib-dtype-O8-canonical", _dtype(b.ustr("O8"), b.NEWFALSE, b.NEWTRUE, state=True),
         "dtype('O8') with its BUILD state, exactly as joblib.dump writes an object array"),
        ("joblib-dtype-object-word", _dtype(b.ustr("object"), b.NEWFALSE, b.NEWTRUE),
         "dtype written as numpy.dtype('object') (the word)"),
        ("joblib-dtype-object-underscore", _dtype(b.ustr("object_")),
         "dtype written as numpy.dtype('object_')"),
        ("joblib-dtype-pipe-O", _dtype(b.ustr("|O")), "dtype written as numpy.dtype('|O')"),
        ("joblib-dtype-structured", _dtype(b.plist(b.tup(b.ustr("w"), b.ustr("<f8")),
                                                   b.tup(b.ustr("meta"), b.ustr("O")))),
         "a structured dtype [('w','<f8'),('meta','O')] built from a list"),
        ("joblib-dtype-subarray", _dtype(b.tup(b.ustr("O"), b.tup(b.pint(2)))),
         "a subarray dtype ('O', (2,))"),
        ("joblib-dtype-ObjectDType", b.call(b.sglob("numpy.dtypes", "ObjectDType")),
         "dtype made by numpy.dtypes.ObjectDType() (no dtype string at all)"),
        ("joblib-dtype-comma-string", _dtype(b.ustr("f8,O")), "dtype('f8,O'): a comma string"),
    ]
    for i, (stem, dtype_ops, what) in enumerate(wrappers):
        specs.append(Spec(f"{stem}.joblib", "numpy-joblib",
                          f"joblib NumpyArrayWrapper, {what}; joblib.load unpickles the array bytes",
                          _joblib_wrapper(dtype_ops, one, inner_exe if i % 2 else inner_sys)))
    # the dtype object is memoized in a decoy entry first and fetched back for the wrapper
    memo_head = (b.EMPTY_DICT + b.ustr("note") + _dtype(b.ustr("O")) + b"q\x07" + b.SETITEM + b.POP)
    specs.append(Spec("joblib-dtype-from-memo.joblib", "numpy-joblib",
                      "joblib wrapper whose dtype is BINGET of an object dtype memoized earlier",
                      _joblib_wrapper(b"h\x07", one, inner_sys, head=memo_head)))
    specs.append(Spec("joblib-huge-shape.joblib", "numpy-joblib",
                      "object-dtype wrapper claiming shape (10**12,): joblib ignores the count and "
                      "unpickles; a scanner that skips shape*itemsize bytes skips the payload",
                      _joblib_wrapper(_dtype(b.ustr("O")), b.tup(b.pint(10**12)), inner_exe)))
    specs.append(Spec("joblib-wrapper-reconstructor.joblib", "numpy-joblib",
                      "the wrapper made with copyreg._reconstructor (protocol 2 style) instead of "
                      "NEWOBJ, state via BUILD",
                      _joblib_wrapper(_dtype(b.ustr("O")), one, inner_sys, wrapper_ops=b.call(
                          b.sglob("copyreg", "_reconstructor"),
                          b.sglob("joblib.numpy_pickle", "NumpyArrayWrapper"),
                          b.sglob("builtins", "object"), b.NONE))))
    # raw float64 data that reads as 'N.' to a scanner that cannot compute its size (the shape is
    # a numpy scalar, not a literal); the payload follows the raw bytes in the outer stream.
    shape_scalar = b.tup(b.call(b.sglob("numpy.core.multiarray", "scalar"),
                                _dtype(b.ustr("i8"), b.NEWFALSE, b.NEWTRUE, state=False),
                                b.pbytes((2).to_bytes(8, "little"))))
    raw = b"\x0f" + b"\xff" * 15 + b"N." + b"\x00" * 14  # padding byte + 15 pad, then 16 data bytes
    outer = (b.proto(4) + b.EMPTY_DICT + b.MARK + b.ustr("w")
             + b.sglob("joblib.numpy_pickle", "NumpyArrayWrapper") + b.EMPTY_TUPLE + b.NEWOBJ
             + b.pdict([(b.ustr("subclass"), b.sglob("numpy", "ndarray")), (b.ustr("shape"), shape_scalar),
                        (b.ustr("order"), b.ustr("C")), (b.ustr("dtype"), _dtype(b.ustr("<f8"))),
                        (b.ustr("allow_mmap"), b.NEWFALSE),
                        (b.ustr("numpy_array_alignment_bytes"), b.pint(16))])
             + b.BUILD + raw + b.ustr("post") + b.system_call(canary) + b.SETITEMS + b.STOP)
    specs.append(Spec("joblib-raw-decoy-stop.joblib", "numpy-joblib",
                      "float64 wrapper whose shape is a numpy scalar and whose raw bytes read 'N.' "
                      "(NONE, STOP); the payload follows the raw data in the outer pickle", outer))

    # FRAME declared longer than the file: pickle._Unpickler (joblib) accepts, _pickle refuses.
    body = b.ustr("weights") + b.POP + b.system_call(canary) + b.STOP
    specs.append(Spec("joblib-frame-overlong.joblib", "numpy-joblib",
                      "FRAME declaring 1000 bytes more than remain: joblib's pure-Python unpickler "
                      "reads what is there and runs it (the C unpickler says truncated)",
                      b.proto(4) + b.frame(body, declared=len(body) + 1000)))
    body2 = b.exec_call(canary) + b.STOP
    specs.append(Spec("joblib-frame-overlong-by-one.pkl", "numpy-joblib",
                      "FRAME declaring one byte more than remains, exec payload (joblib.load path)",
                      b.proto(5) + b.frame(body2, declared=len(body2) + 1)))

    # -- compressed joblib ------------------------------------------------------------------
    canonical = _joblib_wrapper(_dtype(b.ustr("O8"), b.NEWFALSE, b.NEWTRUE, state=True), one, inner_sys)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as fh:
        fh.write(canonical)
    comp = {
        "zlib": zlib.compress(canonical, 3),
        "gzip": gz.getvalue(),
        "bz2": bz2.compress(canonical),
        "xz": lzma.compress(canonical, format=lzma.FORMAT_XZ),
        "lzma": lzma.compress(canonical, format=lzma.FORMAT_ALONE),
    }
    for label, data in comp.items():
        specs.append(Spec(f"joblib-compress-{label}.joblib", "numpy-joblib",
                          f"joblib.dump(compress='{label}') layout: object-array wrapper + payload, "
                          f"{label}-compressed (joblib sniffs the magic)", data))
    specs.append(Spec("joblib-compress-lz4.joblib", "numpy-joblib",
                      "joblib.dump(compress='lz4') layout: an LZ4 frame with stored (uncompressed) "
                      "blocks holding the object-array wrapper + payload", b.lz4_frame(canonical)))
    specs.append(Spec("joblib-compress-lz4-small-blocks.pkl", "numpy-joblib",
                      "LZ4 frame split in 64-byte stored blocks, no content checksum, exec payload",
                      b.lz4_frame(b.proto(4) + b.exec_call(canary) + b.STOP, block=64,
                                  content_checksum=False)))
    zf_data = b.proto(2) + b.system_call(canary) + b.STOP
    zfile = b"ZF" + f"{len(zf_data):#x}".ljust(19).encode() + zlib.compress(zf_data)
    specs.append(Spec("joblib-zfile-compat.pkl", "numpy-joblib",
                      "joblib < 0.10 'ZF' z-file: 'ZF' + hex length + zlib(pickle); joblib.load still "
                      "reads it (load_compatibility)", zfile))
    return specs
