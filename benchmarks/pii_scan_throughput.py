"""Throughput and peak memory of ``guard data scan`` beside a plain regex pass (and, where a
Presidio environment is given, Presidio's structured analyzer on a sample of the same table).

Run: python benchmarks/pii_scan_throughput.py [--mb 64] [--runs 3] [--big-mb 1024]
     [--presidio-python /path/to/venv/bin/python --presidio-rows 1000] [--dir /tmp/pii_scratch]

Two tables, written once per size into ``--dir`` and deleted at the end:

* ``people``: the synthetic table of fictional people (defenses/pii/synthetic.py), 32 columns,
  every row full of personal data: the detectors' worst case;
* ``features``: a training set as most are, 40 float feature columns, an integer label, an age,
  and two columns of personal data (email, phone).

Every measurement runs in a fresh child process: its peak resident memory (VmHWM) belongs to
that scan alone; the ``import`` row is a child that only imports the scanner, the floor under
the others. Times are wall-clock around the scan inside the child (after imports), reading the
file from the page cache. MB/s is 10**6 bytes of CSV per second. ``--big-mb`` adds one scan of
a table that large (``features``, and ``people`` with ``--big-people``) to show that memory
stays flat. The regex pass is csv.reader plus one alternation of email, phone, card, IPv4 and
SSN shapes searched in every cell: no validation, no header logic, no anonymity measures.

Presidio's AnalyzerEngine needs a spaCy model that it downloads from GitHub on first use, which
an offline machine cannot do; with ``--presidio-python`` the child builds it on a *blank* spaCy
pipeline (no NER, so no PERSON entities: Presidio's pattern recognizers only) and runs
presidio-structured's PandasAnalysisBuilder over the first ``--presidio-rows`` rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

_GUARD_CHILD = """
import json, sys, time
from guard.defenses.pii.scan import scan_file
start = time.perf_counter()
report = scan_file(sys.argv[1]) if sys.argv[2] == "scan" else None
seconds = time.perf_counter() - start
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]
found = -1 if report is None else report.pii_findings + report.special_category_findings
rows = 0 if report is None else report.rows
print(json.dumps({"seconds": seconds, "hwm_kib": int(hwm), "found": found, "rows": rows}))
"""

_REGEX_CHILD = r"""
import csv, json, re, sys, time
pattern = re.compile(
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
    r"|\+?\d[\d ().-]{7,}\d"
    r"|\b(?:\d[ -]?){13,19}\b"
    r"|\b(?:\d{1,3}\.){3}\d{1,3}\b"
    r"|\b\d{3}-\d{2}-\d{4}\b")
start = time.perf_counter()
found = rows = 0
with open(sys.argv[1], newline="", encoding="utf-8") as fh:
    reader = csv.reader(fh)
    next(reader)
    search = pattern.search
    for row in reader:
        rows += 1
        for cell in row:
            if search(cell):
                found += 1
seconds = time.perf_counter() - start
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": seconds, "hwm_kib": int(hwm), "found": found, "rows": rows}))
"""

_PRESIDIO_CHILD = r"""
import json, logging, sys, tempfile, time, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
import pandas as pd, spacy
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_structured import PandasAnalysisBuilder
folder = tempfile.mkdtemp()
spacy.blank("en").to_disk(folder)  # no model can be downloaded here: a blank pipeline, no NER
conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": folder}]}
analyzer = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=conf).create_engine(),
                          supported_languages=["en"])
df = pd.read_csv(sys.argv[1], nrows=int(sys.argv[2]), dtype=str, keep_default_na=False)
start = time.perf_counter()
mapping = PandasAnalysisBuilder(analyzer=analyzer).generate_analysis(df).entity_mapping
seconds = time.perf_counter() - start
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": seconds, "hwm_kib": int(hwm), "found": len(mapping), "rows": len(df),
                  "mapping": mapping}))
"""

FEATURES = 40


def write_people(path: Path, mb: float) -> int:
    from guard.defenses.pii.synthetic import COLUMNS, iter_rows, write_csv

    target = int(mb * 1e6)
    rows = max(1, target // 344)  # about 344 bytes a row
    with path.open("wb") as fh:
        write_csv(fh, (cells for cells, _ in iter_rows(rows, seed=0)), COLUMNS)
    return rows


def write_features(path: Path, mb: float) -> int:
    rng = random.Random(0)
    header = [*(f"f{i}" for i in range(FEATURES)), "age", "email", "phone", "label"]
    target, rows, size = int(mb * 1e6), 0, 0
    with path.open("w", encoding="utf-8") as fh:
        fh.write(",".join(header) + "\n")
        while size < target:
            values = [f"{rng.gauss(0, 1):.6f}" for _ in range(FEATURES)]
            line = ",".join([*values, str(rng.randint(18, 90)), f"user{rows}@example.org",
                             f"+44 7700 900{rows % 1000:03d}", str(rng.randint(0, 1))]) + "\n"
            fh.write(line)
            size += len(line)
            rows += 1
    return rows


def child(python: str, code: str, *args: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    done = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if len(values) == 1 or format(lo, fmt) == format(hi, fmt) \
        else f"{format(lo, fmt)}–{format(hi, fmt)}"


def row(name: str, tool: str, path: Path, results: list[dict[str, object]]) -> str:
    size = path.stat().st_size / 1e6
    seconds = [float(str(r["seconds"])) for r in results]
    mem = [int(str(r["hwm_kib"])) / 1024 for r in results]
    rows = int(str(results[0]["rows"]))
    rate = [size / s for s in seconds] if rows else [0.0]
    per_row = [rows / s for s in seconds] if rows else [0.0]
    found = results[0]["found"]
    shown = f"{size:,.0f}" if size >= 10 else f"{size:.2f}"
    rate_fmt = ".1f" if min(rate) >= 1 else ".3f"
    return (f"| {name} | {shown} MB, {rows:,} rows | {tool} | {len(results)} | {span(seconds, '.2f')} s | "
            f"{span(rate, rate_fmt)} MB/s | {span(per_row, ',.0f')} rows/s | {span(mem, '.0f')} MiB | "
            f"{found} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=64.0, help="size of each table for the repeated runs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-mb", type=float, default=0.0, help="also scan one table this large, once")
    parser.add_argument("--big-people", action="store_true", help="the big scan also on the people table")
    parser.add_argument("--presidio-python",
                        help="python of an environment with presidio-structured and spaCy")
    parser.add_argument("--presidio-rows", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/pii_scratch"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    lines = ["| table | size | tool | runs | time | throughput | rows/s | peak RSS | found |",
             "|---|---|---|---|---|---|---|---|---|"]
    made: list[Path] = []
    try:
        for name, writer in (("people", write_people), ("features", write_features)):
            path = args.dir / f"bench_{name}.csv"
            made.append(path)
            writer(path, args.mb)
            floor = child(python, _GUARD_CHILD, str(path), "import")
            floor_mib = int(str(floor["hwm_kib"])) / 1024
            lines.append(f"| {name} | | import only (floor) | 1 | | | | {floor_mib:.0f} MiB | |")
            lines.append(row(name, "guard data scan", path,
                             [child(python, _GUARD_CHILD, str(path), "scan") for _ in range(args.runs)]))
            lines.append(row(name, "plain regex pass", path,
                             [child(python, _REGEX_CHILD, str(path)) for _ in range(args.runs)]))
            if args.presidio_python:
                sample = args.dir / f"bench_{name}_sample.csv"
                made.append(sample)
                with path.open(encoding="utf-8") as src, sample.open("w", encoding="utf-8") as dst:
                    for _, text in zip(range(args.presidio_rows + 1), src, strict=False):
                        dst.write(text)
                results = [child(args.presidio_python, _PRESIDIO_CHILD, str(sample), str(args.presidio_rows))]
                lines.append(row(name, "presidio-structured (blank spaCy, no NER)", sample, results))
                same = [child(python, _GUARD_CHILD, str(sample), "scan") for _ in range(args.runs)]
                lines.append(row(name, "guard data scan, same sample", sample, same))
                print(f"# presidio's column entities on {name}: {results[0]['mapping']}")  # noqa: T201
        if args.big_mb:
            for name, writer in (("features", write_features), ("people", write_people)):
                if name == "people" and not args.big_people:
                    continue
                path = args.dir / f"bench_big_{name}.csv"
                made.append(path)
                start = time.perf_counter()
                writer(path, args.big_mb)
                print(f"# wrote {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)  # noqa: T201
                once = [child(python, _GUARD_CHILD, str(path), "scan")]
                lines.append(row(name, "guard data scan", path, once))
                path.unlink()
    finally:
        for path in made:
            path.unlink(missing_ok=True)
    print(f"# {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}")  # noqa: T201
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
