"""Detection, false alarms and throughput of ``guard scan`` side by side with four peer scanners.

Run (from the repository root, in Guard's virtual environment)::

    .venv/bin/python benchmarks/bench_scan.py --other-python /tmp/h_peers/venv/bin/python \
        --tool-python modelscan=/tmp/h_peers/venv_ms/bin/python \
        --repeats 5 [--large] [--corpus DIR] [--json OUT.json|OUT.csv] [--tools guard,picklescan]

The peers (picklescan, modelscan, fickling, ModelAudit) are installed only in a separate virtual
environment (``--other-python``), never in Guard's; ``--tool-python TOOL=PYTHON`` runs one of
them under yet another one. modelscan needs it: it calls numpy's private ``_check_version`` and
``_read_array_header``, gone from ``numpy.lib.format`` in numpy 2, so with the numpy 2.4 that
ModelAudit pins it fails on every ``.npy``/``.npz`` (and skops) file; give it a venv with
``numpy<2``. The corpus comes from ``tests/scan_corpus``
(``write_corpus(folder, canary, large=...)``): ``folder/malicious/<class>/<name>`` and
``folder/benign/<class>/<name>``; every payload would touch ``canary``, and the script fails
loudly if that file exists after the runs. Nothing in the corpus is ever loaded.

Each tool runs in its own fresh interpreter, through its Python API, in-process, with logging
and warnings silenced and its stdout discarded, one tool at a time (never in parallel) and with
``OMP_NUM_THREADS=1`` (and the MKL/OpenBLAS equivalents) for all; imports happen before any
timing. A file that makes the interpreter die (segfault, memory limit) is recorded as a crash
and the tool is restarted on the files after it; a file that takes longer than
``--file-timeout`` seconds is stopped (SIGALRM) and recorded as an error.

Calls and severity mapping (a file's outcome is ``high`` if any finding maps to >= high, else
``medium`` if any maps to medium, else ``error`` if the scan raised, timed out or said it could
not finish, else ``missed`` for a malicious file / ``clean`` for a benign one; an error is
never counted as a detection, for any tool):

- Guard: ``guard.defenses.scan.scan_file(path)``; its own scale (critical and high = high,
  medium = medium; low and info are not flags). Findings whose rule only says the scan could not
  finish (``INCOMPLETE_RULES``: scan-error, resource-limit, malformed-pickle, ...) count as
  errors, not detections, although Guard rates some of them high and fails ``--fail-on high``
  on them.
- picklescan: ``picklescan.scanner.scan_file_path(path)``; a global rated ``Dangerous`` =
  high, ``Suspicious`` = medium (``Innocuous`` is not a flag); ``scan_err`` = error.
- modelscan: ``ModelScan().scan(path)``; issue severity CRITICAL or HIGH = high, MEDIUM or
  LOW = medium; any entry in ``ModelScan.errors`` = error (skipped files are "missed").
- fickling: as its own Hugging Face scanner does, ``polyglot.find_file_properties`` picks
  ``loader.scan_zip_archive`` (torch or plain zip) or ``loader.scan_file`` (pickle, or a
  pickle-like extension), both ``graceful=True``; other files are skipped. Severity is the
  maximum over the per-stream ``check_safety`` results: OVERTLY_MALICIOUS,
  LIKELY_OVERTLY_MALICIOUS, LIKELY_UNSAFE = high; SUSPICIOUS, POSSIBLY_UNSAFE = medium;
  LIKELY_SAFE = no flag. Parse and read errors (which fickling itself rates SUSPICIOUS or
  LIKELY_UNSAFE with no analysis behind them) count as errors, not flags.
- ModelAudit: ``modelaudit.core.scan_model_directory_or_file(path, cache_enabled=False)``
  (telemetry disabled); issue severity CRITICAL = high, WARNING = medium (INFO/DEBUG are not
  flags); an operational error, or an inconclusive outcome (``determine_exit_code`` == 2), =
  error.

Throughput is measured on the benign torch and joblib checkpoints of the corpus, on a set of
pickle-heavy real-library checkpoints (``--scale``; see ``_write_checkpoints``) and, with
``--large``, on a ~200 MB torch state dict: per repeat and per tool, a fresh interpreter scans
one small file of each format untimed, then each file once, timed; MB/s is 10^6 bytes over the
summed scan time. The median over ``--repeats`` is reported, with the ratio Guard/tool as a
min-max range over the repeats (repeat i of Guard against repeat i of the tool: the tools of
one repeat run back to back, so they share the machine's state).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("guard", "picklescan", "modelscan", "fickling", "modelaudit")
OUTCOMES = ("high", "medium", "error", "missed")
THROUGHPUT_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".tar", ".joblib"}

# Runs in the scanned tool's interpreter (Guard's or the peers'): argv = tool, request, results.
_DRIVER = r"""
import json, logging, os, signal, sys, time, warnings
logging.disable(logging.CRITICAL)
warnings.simplefilter("ignore")
tool, request_path, out_path = sys.argv[1:4]
with open(request_path) as fh:
    req = json.load(fh)
out = open(out_path, "a", buffering=1)

def emit(obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()

def _version(dist):
    from importlib.metadata import version
    return version(dist)

def setup_guard():
    from guard.defenses.scan import Severity, scan_file
    try:
        from guard.defenses.scan.results import INCOMPLETE_RULES
    except ImportError:
        INCOMPLETE_RULES = frozenset({"scan-error", "resource-limit", "malformed-pickle",
                                      "malformed-archive", "zip-corrupt", "unsupported-compression"})
    def scan(path):
        r = scan_file(path)
        notes = sorted({f"{f.severity.name.lower()}:{f.rule}" + (f":{f.global_name}" if f.global_name else "")
                        for f in r.findings if f.severity >= Severity.MEDIUM})
        real = [f.severity for f in r.findings if f.rule not in INCOMPLETE_RULES]
        incomplete = any(f.rule in INCOMPLETE_RULES and f.severity >= Severity.MEDIUM for f in r.findings)
        return (any(s >= Severity.HIGH for s in real), any(s >= Severity.MEDIUM for s in real),
                incomplete, notes)
    return scan, _version("guard-ml")

def setup_picklescan():
    from picklescan.scanner import SafetyLevel, scan_file_path
    def scan(path):
        r = scan_file_path(path)
        flagged = [g for g in r.globals if g.safety in (SafetyLevel.Dangerous, SafetyLevel.Suspicious)]
        notes = sorted({f"{g.safety.value}:{g.module}.{g.name}" for g in flagged})
        high = any(g.safety == SafetyLevel.Dangerous for g in flagged)
        return high, bool(flagged), bool(r.scan_err), notes
    return scan, _version("picklescan")

def setup_modelscan():
    from modelscan.issues import IssueSeverity
    from modelscan.modelscan import ModelScan
    def scan(path):
        ms = ModelScan()
        ms.scan(path)
        sevs = [i.severity for i in ms.issues.all_issues]
        notes = sorted({f"{i.severity.name.lower()}:{getattr(i.details, 'module', '')}."
                        f"{getattr(i.details, 'operator', '')}" for i in ms.issues.all_issues})
        notes += [f"error:{type(e).__name__}:{str(e)[:120]}" for e in ms.errors]
        notes += [f"skipped:{str(getattr(s, 'message', s))[:80]}" for s in ms.skipped]
        high = any(s in (IssueSeverity.CRITICAL, IssueSeverity.HIGH) for s in sevs)
        return high, bool(sevs), bool(ms.errors), notes
    return scan, _version("modelscan")

def setup_fickling():
    import zipfile
    from fickling.analysis import Severity
    from fickling.loader import scan_file, scan_zip_archive
    high_levels = (Severity.LIKELY_UNSAFE, Severity.LIKELY_OVERTLY_MALICIOUS, Severity.OVERTLY_MALICIOUS)
    def scan(path):
        with open(path, "rb") as fh:
            head = fh.read(8)
        if head.startswith(b"\x93NUMPY"):
            return False, False, False, ["skipped: numpy file (fickling does not scan them)"]
        if head.startswith(b"PK\x03\x04") or zipfile.is_zipfile(path):
            results = list(scan_zip_archive(path, graceful=True).values())
        else:
            results = [scan_file(path, graceful=True)]
        sevs = [ar.severity for r in results for ar in r.results]
        errors = [e for r in results for e in r.errors]
        notes = sorted({s.name.lower() for s in sevs if s > Severity.LIKELY_SAFE})
        notes += [f"error:{e[:120]}" for e in errors]
        high = any(s in high_levels for s in sevs)
        return high, any(s > Severity.LIKELY_SAFE for s in sevs), bool(errors), notes
    return scan, _version("fickling")

def setup_modelaudit():
    from modelaudit.core import scan_model_directory_or_file
    from modelaudit.core_results import determine_exit_code, results_have_operational_error
    def scan(path):
        res = scan_model_directory_or_file(path, cache_enabled=False)
        sev = lambda i: str(getattr(i.severity, "value", i.severity)).lower()
        flagged = [i for i in res.issues if sev(i) in ("critical", "warning")]
        incomplete = [i for i in flagged
                      if isinstance(i.details, dict) and i.details.get("analysis_incomplete")]
        real = [i for i in flagged if all(i is not j for j in incomplete)]
        notes = sorted({f"{sev(i)}:{i.rule_code or ''}:{str(i.message)[:80]}" for i in real})
        notes += sorted({f"incomplete:{sev(i)}:{i.rule_code or ''}:{str(i.message)[:60]}"
                         for i in incomplete})
        error = bool(incomplete) or results_have_operational_error(res) or determine_exit_code(res) == 2
        return any(sev(i) == "critical" for i in real), bool(real), error, notes
    return scan, _version("modelaudit")

class _Timeout(BaseException):
    pass

def _alarm(signum, frame):
    raise _Timeout()

signal.signal(signal.SIGALRM, _alarm)
if req.get("mem_bytes"):
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (req["mem_bytes"], req["mem_bytes"]))
try:
    scan, version = globals()["setup_" + tool]()
except BaseException as exc:
    emit({"setup_error": f"{type(exc).__name__}: {exc}"})
    sys.exit(3)
emit({"version": version})

def one(path):
    high = medium = error = False
    notes, crash = [], ""
    limit = req["timeout"] + os.path.getsize(path) / 1e6  # plus a second per MB
    signal.setitimer(signal.ITIMER_REAL, limit)
    t = time.perf_counter()
    try:
        high, medium, error, notes = scan(path)
    except _Timeout:
        crash = f"timeout after {limit:.0f} s"
    except BaseException as exc:
        crash = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return {"high": bool(high), "medium": bool(medium or high), "error": bool(error or crash),
            "crash": crash, "notes": [" ".join(str(n).split()) for n in notes][:12],
            "time": time.perf_counter() - t}

for path in req["warm"]:
    one(path)
for i, path in enumerate(req["files"]):
    emit({"start": i})
    emit({"i": i, **one(path)})
"""


@dataclass
class Record:
    """One tool's verdict on one file."""

    high: bool = False
    medium: bool = False
    error: bool = False
    crash: str = ""
    notes: list[str] = field(default_factory=list)
    time: float = 0.0

    @property
    def outcome(self) -> str:
        if self.high:
            return "high"
        if self.medium:
            return "medium"
        return "error" if self.error else "missed"


@dataclass
class ToolRun:
    version: str = ""
    setup_error: str = ""
    records: list[Record] = field(default_factory=list)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = "1"
    env.update(PROMPTFOO_DISABLE_TELEMETRY="1", NO_ANALYTICS="1", PYTHONWARNINGS="ignore",
               TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _mem_limit() -> int:
    """Address-space cap for a tool's interpreter: half the machine, so a bomb cannot take it all."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError):
        return 0


def run_tool(python: str, tool: str, files: Sequence[Path], warm: Sequence[Path], timeout: float,
             scratch: Path) -> ToolRun:
    """Scan ``files`` with ``tool`` in fresh interpreters, restarting after a file kills one."""
    run = ToolRun(records=[Record() for _ in files])
    done = [False] * len(files)
    remaining = list(range(len(files)))
    while remaining:
        req, out, log = scratch / f"{tool}.req.json", scratch / f"{tool}.out", scratch / f"{tool}.log"
        req.write_text(json.dumps({"files": [str(files[i]) for i in remaining],
                                   "warm": [str(w) for w in warm], "timeout": timeout,
                                   "mem_bytes": _mem_limit()}))
        out.write_text("")
        with log.open("w") as log_fh:
            proc = subprocess.Popen([python, "-c", _DRIVER, tool, str(req), str(out)], cwd=REPO,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_fh,
                                    env=_child_env())
            size, last = 0, time.monotonic()
            stall = sum(timeout + w.stat().st_size / 1e6 for w in warm) + 120 + max(
                timeout + files[i].stat().st_size / 1e6 for i in remaining)
            while proc.poll() is None:
                time.sleep(0.2)
                if out.stat().st_size != size:
                    size, last = out.stat().st_size, time.monotonic()
                elif time.monotonic() - last > stall:
                    proc.kill()  # stuck where SIGALRM cannot reach (C code)
                    proc.wait()
        started = None
        for line in out.read_text().splitlines():
            msg = json.loads(line)
            if "setup_error" in msg:
                run.setup_error = msg["setup_error"]
                return run
            if "version" in msg:
                run.version = msg["version"]
            elif "start" in msg:
                started = remaining[msg["start"]]
            elif "i" in msg:
                idx = remaining[msg.pop("i")]
                run.records[idx], done[idx] = Record(**msg), True
                started = None
        if proc.returncode != 0 and run.version == "" and started is None:
            run.setup_error = f"interpreter exited {proc.returncode}: {_tail(log)}"
            return run
        if started is None and not all(done[i] for i in remaining):
            started = next(i for i in remaining if not done[i])  # died before saying which file
        if started is not None:
            run.records[started] = Record(error=True, crash=f"interpreter died (exit {proc.returncode}): "
                                                             f"{_tail(log)}")
            done[started] = True
        remaining = [i for i in remaining if not done[i]]
    return run


def _tail(path: Path, n: int = 200) -> str:
    text = path.read_text(errors="replace").strip().replace("\n", " | ")
    return text[-n:] or "no message"


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def _guard_commit() -> str:
    try:
        proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "defenses/scan"],
                               capture_output=True, text=True, check=False, timeout=10).stdout.strip()
        return proc.stdout.strip() + ("+local changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _write_checkpoints(folder: Path, scale: int) -> list[Path]:
    """Real-library checkpoints whose pickles are large, where a scanner's opcode walk is the cost:
    a torch zip state dict, a zip of 5,000 small tensors, a legacy torch file, a pickle of large
    arrays, a pickle of a 100,000*scale-entry dict of small objects, .npy, .npz, a 50-tree forest
    as joblib (plain, compressed) and as a pickle. The same set as earlier runs of this benchmark."""
    import io
    import pickle

    import joblib
    import numpy as np
    import torch
    from sklearn.ensemble import RandomForestClassifier

    def saved(obj: object, **kwargs: Any) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf, **kwargs)
        return buf.getvalue()

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    files = {
        "state_dict.pt": saved({f"layer{i}.weight": torch.randn(256 * scale, 512, generator=gen)
                                for i in range(24)}),
        "many_tensors.pt": saved({f"p{i}": torch.zeros(4) for i in range(5000)}),
        "legacy.pt": saved({f"w{i}": torch.randn(128, 256, generator=gen) for i in range(16)},
                           _use_new_zipfile_serialization=False),
        "arrays_p4.pkl": pickle.dumps({f"a{i}": rng.random((256 * scale, 256)) for i in range(8)},
                                      protocol=4),
        "objects.pkl": pickle.dumps(
            {f"key{i}": [i, float(i), str(i), (i, i)] for i in range(100_000 * scale)}, protocol=4),
    }
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    np.save(folder / "array.npy", rng.random((512 * scale, 512)))
    np.savez(folder / "arrays.npz", a=rng.random((256, 512)), b=rng.integers(0, 9, (512, 512)))
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(rng.random((500, 10)),
                                                                       rng.integers(0, 3, 500))
    joblib.dump(model, folder / "forest.joblib")
    joblib.dump(model, folder / "forest_z.joblib", compress=3)
    (folder / "forest.pkl").write_bytes(pickle.dumps(model))
    return sorted(folder.iterdir())


def _write_large_state_dict(path: Path) -> None:
    import torch

    gen = torch.Generator().manual_seed(0)
    torch.save({f"layer{i}.weight": torch.randn(1024, 1024, generator=gen) for i in range(48)}, path)


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.3f}"


def _table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def detection_report(corpus: Sequence[Any], runs: dict[str, ToolRun]) -> list[str]:
    tools = [t for t, r in runs.items() if not r.setup_error]
    mal = [i for i, f in enumerate(corpus) if f.kind == "malicious"]
    ben = [i for i, f in enumerate(corpus) if f.kind == "benign"]
    out = ["## Detection of malicious files", "",
           "Cells: caught at >= high / at medium only / missed / errors (no flag, scan failed).", ""]
    classes = sorted({corpus[i].klass for i in mal})

    def cell(tool: str, idx: Sequence[int]) -> str:
        got = [runs[tool].records[i].outcome for i in idx]
        return " / ".join(str(got.count(o)) for o in OUTCOMES)

    rows = [[k, sum(corpus[i].klass == k for i in mal),
             *[cell(t, [i for i in mal if corpus[i].klass == k]) for t in tools]] for k in classes]
    rows.append(["**all**", len(mal), *[f"**{cell(t, mal)}**" for t in tools]])
    out += _table(["class", "files", *tools], rows)
    if "guard" in tools:
        gaps = [(i, [t for t in tools if t != "guard" and runs[t].records[i].high])
                for i in mal if not runs["guard"].records[i].high]
        out += ["", "Malicious files Guard does not flag at >= high:"]
        out += [f"- {corpus[i].klass}/{corpus[i].name} (guard: {_outcome(runs['guard'].records[i])}; "
                f"caught at >= high by: {', '.join(by) or 'none'})" for i, by in gaps] or ["- none"]
    out += ["", "## False alarms on benign files", ""]
    rows = []
    for t in tools:
        got = [runs[t].records[i] for i in ben]
        rows.append([t, len(ben), sum(r.high for r in got), sum(r.medium and not r.high for r in got),
                     sum(r.outcome == "error" for r in got)])
    out += _table(["tool", "benign files", ">= high", "medium only", "errors"], rows)
    out += ["", "Benign files a tool flags (or fails on):"]
    listed = False
    for t in tools:
        for i in ben:
            r = runs[t].records[i]
            if r.outcome != "missed":
                listed = True
                why = r.crash or "; ".join(r.notes[:4])
                out.append(f"- {t}: {corpus[i].klass}/{corpus[i].name}: {r.outcome} ({why})")
    if not listed:
        out.append("- none")
    crashes = [(t, corpus[i], r.crash) for t in tools for i, r in enumerate(runs[t].records) if r.crash]
    out += ["", "Crashes and timeouts (an exception out of the tool's API, a dead interpreter):"]
    out += [f"- {t}: {f.kind}/{f.klass}/{f.name}: {c}" for t, f, c in crashes] or ["- none"]
    return out


def _outcome(r: Record) -> str:
    return r.outcome + (f": {r.crash}" if r.crash else "")


def throughput_report(sets: dict[str, list[Path]], times: dict[str, dict[str, list[float | None]]],
                      repeats: int) -> list[str]:
    out = ["## Throughput on real checkpoints", "",
           f"MB/s = 10^6 bytes / summed scan time; median of {repeats} runs (min-max in brackets); "
           "Guard/tool = ratio of MB/s, min-max over the paired repeats. A torch zip costs its "
           "central directory and pickles, not its tensor bytes, so MB/s there mostly measures "
           "per-file overhead.", ""]
    rows = []
    for label, files in sets.items():
        mb = sum(f.stat().st_size for f in files) / 1e6
        guard = times[label].get("guard", [])
        for tool, ts in times[label].items():
            rates = [mb / t if t else None for t in ts]
            ok = [r for r in rates if r is not None]
            med = statistics.median(ok) if ok else None
            rng = f"[{_fmt(min(ok))}-{_fmt(max(ok))}]" if ok else ""
            ratios = [g and r and (mb / g) / r for g, r in zip(guard, rates, strict=False)]
            ratios_ok = [x for x in ratios if x]
            ratio = (f"{min(ratios_ok):.2f}-{max(ratios_ok):.2f}x" if ratios_ok and tool != "guard" else "")
            fps = [len(files) / t for t in ts if t]
            rows.append([label, tool, len(files), f"{mb:.1f}", f"{_fmt(med)} {rng}",
                         _fmt(statistics.median(fps) if fps else None), ratio])
    out += _table(["files", "tool", "n", "MB", "median MB/s", "files/s", "Guard/tool"], rows)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other-python", default="/tmp/h_peers/venv/bin/python",
                        help="interpreter of the virtual environment holding the peer scanners")
    parser.add_argument("--tool-python", action="append", default=[], metavar="TOOL=PYTHON",
                        help="run one peer under another interpreter (repeatable)")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per tool")
    parser.add_argument("--corpus", type=Path, help="write (and keep) the corpus here; default: a temp dir")
    parser.add_argument("--large", action="store_true", help="add a ~200 MB state dict to the throughput")
    parser.add_argument("--scale", type=int, default=4,
                        help="size of the pickle-heavy checkpoints (4: about 100 MB)")
    parser.add_argument("--json", type=Path, help="per-file dump: .csv for a table, anything else JSON")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {TOOLS}")
    parser.add_argument("--file-timeout", type=float, default=120.0, help="seconds per file per tool")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if unknown := set(tools) - set(TOOLS):
        parser.error(f"unknown tools: {sorted(unknown)}")

    sys.path.insert(0, str(REPO / "tests"))
    from scan_corpus import write_corpus

    scratch = Path(tempfile.mkdtemp(prefix="bench_scan_"))
    canary = scratch / "canary" / "PAYLOAD_RAN"
    canary.parent.mkdir()
    folder = args.corpus or scratch / "corpus"
    folder.mkdir(parents=True, exist_ok=True)  # an existing corpus is rewritten in place, never deleted
    try:
        corpus = sorted(write_corpus(folder, canary, large=args.large),
                        key=lambda f: (f.kind, f.klass, f.name))
        paths = [Path(f.path) for f in corpus]
        pythons = {t: sys.executable if t == "guard" else args.other_python for t in tools}
        pythons |= dict(item.split("=", 1) for item in args.tool_python)

        runs: dict[str, ToolRun] = {}
        for tool in tools:  # one tool at a time: never two scanners competing for the 2 cores
            print(f"[detect] {tool} on {len(paths)} files", file=sys.stderr)  # noqa: T201
            runs[tool] = run_tool(pythons[tool], tool, paths, [], args.file_timeout, scratch)

        benign = [Path(f.path) for f in corpus if f.kind == "benign"]
        ckpts = [p for f, p in zip(corpus, paths, strict=True) if f.kind == "benign" and (
            p.suffix.lower() in THROUGHPUT_SUFFIXES
            or any(k in f.klass.lower() for k in ("torch", "joblib")))]
        sets = {"benign torch/joblib checkpoints": [p for p in ckpts if p.stat().st_size < 100e6],
                f"pickle-heavy checkpoints (scale {args.scale})":
                    _write_checkpoints(scratch / "checkpoints", args.scale)}
        if args.large:
            big = [p for p in benign if p.stat().st_size >= 100e6]
            if not big:
                big = [scratch / "large_state_dict.pt"]
                _write_large_state_dict(big[0])
            sets["large state dict"] = big
        ok_tools = [t for t in tools if not runs[t].setup_error]
        times: dict[str, dict[str, list[float | None]]] = {k: {t: [] for t in ok_tools} for k in sets}
        for label, files in sets.items():
            warm = list({p.suffix: p for p in sorted(ckpts, key=lambda p: -p.stat().st_size)}.values())
            for rep in range(args.repeats):
                for tool in ok_tools:
                    print(f"[time] {label} #{rep + 1} {tool}", file=sys.stderr)  # noqa: T201
                    run = run_tool(pythons[tool], tool, files, warm, args.file_timeout, scratch)
                    crashed = run.setup_error or any(r.crash for r in run.records)
                    times[label][tool].append(None if crashed else sum(r.time for r in run.records))

        versions = ", ".join(f"{t} {runs[t].version or 'n/a'}" + (f" (guard commit {_guard_commit()})"
                                                                  if t == "guard" else "") for t in tools)
        lines = [f"# `guard scan` side by side: {dt.date.today()}", "",
                 f"Machine: {_machine()}. Tools: {versions}.",
                 f"Corpus: {sum(f.kind == 'malicious' for f in corpus)} malicious, "
                 f"{sum(f.kind == 'benign' for f in corpus)} benign files (tests/scan_corpus"
                 f"{', large' if args.large else ''}).", ""]
        lines += [f"- {t} could not run: {runs[t].setup_error}" for t in tools if runs[t].setup_error]
        lines += detection_report(corpus, runs) + [""] + throughput_report(sets, times, args.repeats)
        touched = canary.exists()
        if touched:
            lines += ["", "**CANARY TOUCHED: a payload ran during the benchmark.**"]
        print("\n".join(lines))  # noqa: T201  (a benchmark reports on stdout)
        if args.json:
            _dump(args.json, corpus, runs, times)
        return 1 if touched else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _dump(out: Path, corpus: Sequence[Any], runs: dict[str, ToolRun],
          times: dict[str, dict[str, list[float | None]]]) -> None:
    rows = [{"tool": t, "kind": f.kind, "klass": f.klass, "name": f.name, "size": Path(f.path).stat().st_size,
             "outcome": "clean" if f.kind == "benign" and r.outcome == "missed" else r.outcome,
             "high": r.high, "medium": r.medium, "error": r.error, "crash": r.crash,
             "time_s": round(r.time, 6), "notes": "; ".join(r.notes)}
            for t, run in runs.items() for f, r in zip(corpus, run.records, strict=False)]
    if out.suffix.lower() == ".csv":
        with out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["tool"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        out.write_text(json.dumps({
            "versions": {t: r.version for t, r in runs.items()},
            "setup_errors": {t: r.setup_error for t, r in runs.items() if r.setup_error},
            "descriptions": {f"{f.kind}/{f.klass}/{f.name}": f.description for f in corpus},
            "files": rows, "throughput_s": times}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
