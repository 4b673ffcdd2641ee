"""Throughput and detection of ``guard scan`` against picklescan and modelscan on the same files.

Run: python benchmarks/bench_scan.py --other-python /tmp/benchvenv/bin/python [--repeats 3]

The other scanners are installed only in a separate virtual environment (``pip install
--no-deps picklescan modelscan`` plus modelscan's small deps: click, numpy, rich, tomlkit),
never in Guard's; each tool (Guard too) runs in its own fresh interpreter, in-process through
its Python API, on a corpus this script writes (benign checkpoints of every format, and every
malicious payload of Guard's tests). Prints a Markdown table for docs/benchmarks.md:
median wall time over ``--repeats`` warm runs (the tiny malicious files are scanned 50 times
per run), MB/s, and which malicious files each tool flags. "Flags" means picklescan's
dangerous-global count, any modelscan issue, and a Guard finding at or above ``high`` (the
default ``--fail-on``). Nothing in the corpus is ever loaded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gzip
import io
import json
import os
import pickle
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import joblib
import numpy as np
import torch

_DRIVER = r"""
import json, logging, sys, time
logging.disable(logging.CRITICAL)
from picklescan.scanner import scan_file_path
from modelscan.modelscan import ModelScan
files, repeats, loops = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def picklescan(path):
    r = scan_file_path(path)
    return r.issues_count > 0, bool(r.scan_err)
def modelscan(path):
    ms = ModelScan()
    ms.scan(path)
    return len(ms.issues.all_issues) > 0, bool(ms.errors)
out = {}
for name, fn in (("picklescan", picklescan), ("modelscan", modelscan)):
    times, flags = [], {}
    for _ in range(repeats):
        t = time.perf_counter()
        for f in files * loops:
            try:
                flags[f] = fn(f)
            except Exception as exc:  # a crash on a hostile file counts as an error, not a flag
                flags[f] = (False, True)
        times.append(time.perf_counter() - t)
    out[name] = {"times": times, "flags": flags}
print(json.dumps(out))
"""


class _Reduce:
    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (self.func, self.args)


def _zip(entries: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return buf.getvalue()


def _torch(obj: object, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def benign_corpus(folder: Path, scale: int) -> list[Path]:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {
        "state_dict.pt": _torch({f"layer{i}.weight": torch.randn(256 * scale, 512) for i in range(24)}),
        "many_tensors.pt": _torch({f"p{i}": torch.zeros(4) for i in range(5000)}),
        "legacy.pt": _torch({f"w{i}": torch.randn(128, 256) for i in range(16)},
                            _use_new_zipfile_serialization=False),
        "arrays_p4.pkl": pickle.dumps({f"a{i}": rng.random((256 * scale, 256)) for i in range(8)},
                                      protocol=4),
        "objects.pkl": pickle.dumps(
            {f"key{i}": [i, float(i), str(i), (i, i)] for i in range(100_000 * scale)}, protocol=4),
        "array.npy": b"",
        "arrays.npz": b"",
    }
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(rng.random((500, 10)),
                                                                       rng.integers(0, 3, 500))
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    np.save(folder / "array.npy", rng.random((512 * scale, 512)))
    np.savez(folder / "arrays.npz", a=rng.random((256, 512)), b=rng.integers(0, 9, (512, 512)))
    joblib.dump(model, folder / "forest.joblib")
    joblib.dump(model, folder / "forest_z.joblib", compress=3)
    (folder / "forest.pkl").write_bytes(pickle.dumps(model))
    return sorted(folder.iterdir())


def malicious_corpus(folder: Path) -> list[Path]:
    cmd = "touch /tmp/guard-bench-never"
    evil = pickle.dumps(_Reduce(os.system, cmd), protocol=2)
    u = lambda s: b"\x8c" + bytes([len(s)]) + s.encode()  # noqa: E731 - SHORT_BINUNICODE
    files: dict[str, bytes] = {f"reduce_p{p}.pkl": pickle.dumps(_Reduce(os.system, cmd), protocol=p)
                               for p in range(6)}
    files |= {
        "memo_split.pkl": b"\x80\x04" + u("os") + b"\x94" + u("system") + b"\x9400]" + u("x")
                          + b"a0h\x00h\x01\x93" + u(cmd) + b"\x85R.",
        "computed_name.pkl": b"\x80\x04" + u("os") + b"cbuiltins\nstr\n" + u("system") + b"\x85R\x93" + u(cmd)
                             + b"\x85R.",
        "proto0_text.pkl": f"cos\nsystem\n(S'{cmd}'\ntR.".encode(),
        "inst.pkl": f"(S'{cmd}'\nisubprocess\ncall\n.".encode(),
        "getattr_chain.pkl": b"\x80\x04cbuiltins\ngetattr\ncbuiltins\n__import__\n" + u("os") + b"\x85R"
                             + u("system") + b"\x86R" + u(cmd) + b"\x85R.",
        "exec.pkl": pickle.dumps(_Reduce(exec, "import os")),
        "partial.pkl": pickle.dumps(_Reduce(functools.partial(os.system, cmd))),
        "nested_loads.pkl": pickle.dumps(_Reduce(pickle.loads, evil)),
        "nested_bytes.pkl": pickle.dumps({"blob": evil}),
        "second_stream.pkl": pickle.dumps({"ok": 1}) + evil,
        "truncated_after.pkl": evil[:-1] + b"\xff",
        "zlib_renamed.pkl": __import__("zlib").compress(evil),
        "torch_evil.pt": _torch({"w": torch.zeros(2), "x": _Reduce(os.system, cmd)}),
        "torch_sidecar.pt": _zip({"archive/data.pkl": pickle.dumps({}), "archive/extra/x.bin": evil}),
        "legacy_evil.pt": _torch({"x": _Reduce(os.system, cmd)}, _use_new_zipfile_serialization=False),
        "zip_encrypted_flag.pt": _flag(_zip({"archive/data.pkl": evil})),
        "zip_bad_crc.pt": _bad_crc(_zip({"archive/data.pkl": evil})),
        "zip_no_central_dir.pt": (lambda z: z[: z.find(b"PK\x01\x02")])(_zip({"archive/data.pkl": evil})),
        "zip_odd_name.zip": _zip({"docs/readme.txt": evil}),
        "polyglot.pkl": evil + _zip({"inner.pkl": evil}),
        "nested_zip.zip": _zip({"a.zip": _zip({"b/model.pkl": evil}, zipfile.ZIP_DEFLATED)}),
        "gz_tar_like.pkl.gz": gzip.compress(evil),
    }
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    joblib.dump({"a": np.arange(10.0), "o": np.array([_Reduce(os.system, cmd)], dtype=object)},
                folder / "joblib_object_array.joblib")
    np.save(folder / "object_array.npy", np.array([_Reduce(os.system, cmd)], dtype=object), allow_pickle=True)
    return sorted(folder.iterdir())


def _flag(data: bytes) -> bytes:
    out = bytearray(data)
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = out.find(sig)
        struct.pack_into("<H", out, pos + at, struct.unpack_from("<H", out, pos + at)[0] | 1)
    return bytes(out)


def _bad_crc(data: bytes) -> bytes:
    out = bytearray(data)
    for sig, at in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        struct.pack_into("<I", out, out.find(sig) + at, 0xDEADBEEF)
    return bytes(out)


_GUARD_DRIVER = r"""
import json, sys, time
from guard.defenses.scan import Severity, scan_file
files, repeats, loops = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
times, flags = [], {}
for _ in range(repeats):
    t = time.perf_counter()
    for f in files * loops:
        flags[f] = scan_file(f).fails(Severity.HIGH)
    times.append(time.perf_counter() - t)
print(json.dumps({"times": times, "flags": flags}))
"""


def run_guard(files: list[Path], repeats: int, loops: int) -> tuple[list[float], dict[str, bool]]:
    """Guard in a fresh interpreter too, importing only the scanner, as the others run."""
    names = json.dumps([str(f) for f in files])
    argv = [sys.executable, "-c", _GUARD_DRIVER, names, str(repeats), str(loops)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=3600)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["times"], out["flags"]


def run_others(python: str, files: list[Path], repeats: int, loops: int) -> dict[str, dict[str, object]]:
    argv = [python, "-c", _DRIVER, json.dumps([str(f) for f in files]), str(repeats), str(loops)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other-python", default="/tmp/benchvenv/bin/python")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=1, help="multiply the large files' sizes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        benign_dir, evil_dir = Path(tmp, "benign"), Path(tmp, "malicious")
        benign_dir.mkdir()
        evil_dir.mkdir()
        benign, evil = benign_corpus(benign_dir, args.scale), malicious_corpus(evil_dir)
        rows = []
        # The malicious files are tiny: scan them 50 times per run so timings rise above noise.
        for label, files, loops in (("benign", benign, 1), ("malicious", evil, 50)):
            size_mb = sum(f.stat().st_size for f in files) * loops / 1e6
            g_times, g_flags = run_guard(files, args.repeats, loops)
            others = run_others(args.other_python, files, args.repeats, loops)
            results = {"guard": (g_times, g_flags)} | {
                k: (v["times"], {f: flag[0] for f, flag in v["flags"].items()})  # type: ignore[index, union-attr]
                for k, v in others.items()}
            for tool, (times, flags) in results.items():
                t = statistics.median(times)
                flagged = sum(flags.values())
                rows.append(f"| {label} | {tool} | {len(files) * loops} | {size_mb:.1f} | {t:.3f} | "
                            f"{size_mb / t:.1f} | {len(files) * loops / t:.0f} | {flagged}/{len(files)} |")
            if label == "malicious":
                missed = {tool: sorted(Path(f).name for f, hit in flags.items() if not hit)
                          for tool, (_, flags) in results.items()}
                guard_missed = [Path(f).name for f, hit in g_flags.items() if not hit]
                theirs = {Path(f).name for tool in others for f, hit in results[tool][1].items() if hit}
                not_by_guard = sorted(theirs & set(guard_missed))
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}; {dt.date.today()}; median of {args.repeats} warm runs",
             "", "| corpus | tool | files | MB | median s | MB/s | files/s | flagged (>= high) |",
             "|---|---|---|---|---|---|---|---|", *rows, "", "Missed malicious files:"]
    lines += [f"- {tool}: {', '.join(names) if names else 'none'}" for tool, names in missed.items()]
    lines.append(f"\nFiles another tool flags that Guard misses: {', '.join(not_by_guard) or 'none'}")
    print("\n".join(lines))  # noqa: T201  (a benchmark script reports on stdout)

if __name__ == "__main__":
    main()
