"""Speed and peak memory of Guard's file encryption, beside Fernet and (if installed) age.

Run: python benchmarks/bench_crypto.py [--size-mib 2048] [--dir /tmp] [--fernet-mib N] [--skip-age]

Every measurement runs in a fresh child process, so its peak resident memory (``ru_maxrss`` from
``wait4``) belongs to that one operation; the first row is a child that only imports Guard's
crypto package, the floor under every Guard row. Times are wall-clock around the operation
itself (Guard and Fernet: inside the child, after imports; age: the whole process) and include
an fsync of the output, which Guard does as part of its atomic write and which is added for
Fernet and age, so that no tool is timed writing into the page cache only. The input is read
from the page cache (it was just written). GB/s is 10**9 bytes of plaintext per second.
Prints a Markdown table for docs/benchmarks-crypto.md; deletes its files at the end.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

import cryptography

_GUARD_CHILD = """
import json, os, shutil, sys, time
from pathlib import Path
from guard.defenses.crypto import RawKey, decrypt_file, encrypt_file
op, src, dst, key = sys.argv[1:5]
def copy(src, dst, key):  # the I/O floor: same read, write and fsync, no cryptography
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
fn = {"encrypt": encrypt_file, "decrypt": decrypt_file, "copy": copy}.get(op)
start = time.perf_counter()
if fn is not None:
    fn(Path(src), Path(dst), RawKey(bytes.fromhex(key), "bench"))
seconds = time.perf_counter() - start
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": seconds, "hwm_kib": int(hwm)}))
"""

_FERNET_CHILD = """
import json, os, sys, time
from cryptography.fernet import Fernet
op, src, dst, key = sys.argv[1:5]
start = time.perf_counter()
with open(src, "rb") as fh:
    data = fh.read()
f = Fernet(key.encode())
out = f.encrypt(data) if op == "encrypt" else f.decrypt(data)
with open(dst, "wb") as fh:
    fh.write(out)
    fh.flush()
    os.fsync(fh.fileno())
seconds = time.perf_counter() - start
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": seconds, "hwm_kib": int(hwm)}))
"""


def _hwm_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM")), 0)
    except OSError:
        return 0


def measure(cmd: list[str], output: Path | None = None) -> tuple[float, float]:
    """Run ``cmd`` as a child; return (seconds, peak RSS in MiB).

    Seconds come from the child's JSON line when it prints one, else wall time around the process
    plus an fsync of ``output``. Peak RSS is VmHWM, reported by the child itself or polled from
    /proc every 5 ms: ``wait4``'s ru_maxrss would count this (larger) parent's memory too, since a
    spawned child starts on the parent's address space before it execs.
    """
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    peak = 0
    while True:
        if child.poll() is not None:
            break
        peak = max(peak, _hwm_kib(child.pid))
        time.sleep(0.005)
    assert child.stdout is not None
    text = child.stdout.read()
    if child.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed with exit code {child.returncode}")
    if output is not None:
        fd = os.open(output, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    seconds = time.perf_counter() - start
    if text.strip():
        report = json.loads(text)
        seconds, peak = float(report["seconds"]), max(peak, int(report["hwm_kib"]))
    return seconds, peak / 1024


def make_input(path: Path, size: int) -> None:
    """Random bytes (a 64 MiB random block repeated: AES-GCM's speed does not depend on content)."""
    block = os.urandom(64 * 1024 * 1024)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            fh.write(block[: min(left, len(block))])
            left -= len(block)


def same_content(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 24), fb.read(1 << 24)
            if x != y:
                return False
            if not x:
                return True


def row(tool: str, op: str, size: int, seconds: float, rss: float) -> str:
    rate = f"{size / seconds / 1e9:.2f}" if seconds > 0 and size else "-"
    return f"| {tool} | {op} | {size / 2**20:.0f} MiB | {seconds:.2f} | {rate} | {rss:.0f} |"


def round_trips(tool: str, paths: tuple[Path, Path, Path], size: int, cmds: tuple[list[str], list[str]],
                fsync_outputs: bool, repeats: int) -> list[str]:
    """Encrypt then decrypt ``repeats`` times; the median time and the largest peak RSS of each.

    The median matters on a virtual disk: writing blocks for the first time costs the host an
    allocation, so one run can be several times slower than the next depending on where it lands.
    """
    src, enc, dec = paths
    results: dict[str, list[tuple[float, float]]] = {"encrypt": [], "decrypt": []}
    for _ in range(repeats):
        results["encrypt"].append(measure(cmds[0], enc if fsync_outputs else None))
        results["decrypt"].append(measure(cmds[1], dec if fsync_outputs else None))
        if not same_content(src, dec):
            raise RuntimeError(f"{tool}'s round trip changed the data")
        enc.unlink()
        dec.unlink()
    return [
        row(tool, op, size, statistics.median(t for t, _ in runs), max(r for _, r in runs))
        for op, runs in results.items()
    ]


def bench_guard(work: Path, src: Path, size: int, repeats: int) -> list[str]:
    key = os.urandom(32).hex()
    py = [sys.executable, "-c", _GUARD_CHILD]
    enc, dec = work / "in.bin.enc", work / "in.bin.dec"
    rows = [row("Guard (import only)", "-", 0, *measure([*py, "none", "-", "-", key]))]
    floor = []
    for _ in range(repeats):
        floor.append(measure([*py, "copy", str(src), str(dec), key]))
        dec.unlink()
    seconds = statistics.median(t for t, _ in floor)
    rows.append(row("plain copy + fsync (I/O floor)", "copy", size, seconds, max(r for _, r in floor)))
    cmds = ([*py, "encrypt", str(src), str(enc), key], [*py, "decrypt", str(enc), str(dec), key])
    return rows + round_trips("Guard", (src, enc, dec), size, cmds, False, repeats)


def bench_fernet(work: Path, src: Path, size: int) -> list[str]:
    """Once only: at about 0.1 GB/s, with the whole file (and two copies of it) in memory."""
    from cryptography.fernet import Fernet

    if size != src.stat().st_size:
        make_input(work / "fernet.bin", size)
        src = work / "fernet.bin"
    key = Fernet.generate_key().decode()
    py = [sys.executable, "-c", _FERNET_CHILD]
    enc, dec = work / "f.enc", work / "f.dec"
    cmds = ([*py, "encrypt", str(src), str(enc), key], [*py, "decrypt", str(enc), str(dec), key])
    rows = round_trips("Fernet", (src, enc, dec), size, cmds, False, 1)
    (work / "fernet.bin").unlink(missing_ok=True)
    return rows


def bench_age(work: Path, src: Path, size: int, repeats: int) -> list[str]:
    age, keygen = shutil.which("age"), shutil.which("age-keygen")
    if age is None or keygen is None:
        return ["| age | not installed | | | | |"]
    identity = work / "age.key"
    subprocess.run([keygen, "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run([keygen, "-y", str(identity)], check=True, capture_output=True, text=True)
    enc, dec = work / "a.age", work / "a.dec"
    cmds = (
        [age, "-r", recipient.stdout.strip(), "-o", str(enc), str(src)],
        [age, "-d", "-i", str(identity), "-o", str(dec), str(enc)],
    )
    return round_trips("age 1.1.1" if "1.1.1" in _age_version(age) else "age", (src, enc, dec), size, cmds,
                       True, repeats)


def _age_version(age: str) -> str:
    return subprocess.run([age, "--version"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048, help="Input size (default 2048 MiB).")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="Working folder.")
    parser.add_argument("--fernet-mib", type=int, help="Fernet's input size (default: --size-mib; 0 skips).")
    parser.add_argument("--skip-age", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per Guard/age/copy row (median).")
    args = parser.parse_args()
    size = args.size_mib * 2**20
    fernet_size = (args.fernet_mib if args.fernet_mib is not None else args.size_mib) * 2**20
    work = Path(tempfile.mkdtemp(prefix="guard-bench-", dir=args.dir))
    try:
        src = work / "in.bin"
        make_input(src, size)
        rows = bench_guard(work, src, size, args.repeats)
        if fernet_size:
            rows += bench_fernet(work, src, fernet_size)
        if not args.skip_age:
            rows += bench_age(work, src, size, args.repeats)
    finally:
        shutil.rmtree(work)
    lines = [
        f"{dt.date.today()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · cryptography {cryptography.__version__} · folder {args.dir} · "
        f"median of {args.repeats} (Fernet: 1)",
        "",
        "| tool | operation | plaintext | seconds | GB/s | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(lines))  # noqa: T201  (a benchmark script reports on stdout)


if __name__ == "__main__":
    main()
