import multiprocessing as mp
import threading
from pathlib import Path

from guard.defenses.access.budget import BudgetLedger
from guard.defenses.access.policy import Budget


def test_token_bucket_and_total(tmp_path: Path) -> None:
    led = BudgetLedger(tmp_path / "s.db")
    b = Budget(per_minute=60, total=100, burst=10)
    assert led.charge("a", 10, b, now=0.0).allowed
    c = led.charge("a", 1, b, now=0.0)
    assert not c.allowed and c.retry_after_s is not None and 0.9 < c.retry_after_s <= 1.01
    assert led.charge("a", 5, b, now=5.0).allowed
    assert led.charge("a", 11, b, now=100.0).allowed is False  # over burst: never
    c = led.charge("a", 3, b, now=100.0)
    assert c.allowed and c.remaining_total == 82


def _worker(db: str, n: int, out: "mp.Queue[int]") -> None:
    led = BudgetLedger(Path(db))
    b = Budget(per_minute=None, total=300, burst=None)
    out.put(sum(2 for _ in range(n) if led.charge("p", 2, b).allowed))


def test_total_exact_across_processes(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    BudgetLedger(Path(db))  # noqa: B018
    q: mp.Queue[int] = mp.get_context("spawn").Queue()
    ps = [mp.get_context("spawn").Process(target=_worker, args=(db, 60, q)) for _ in range(4)]
    for p in ps:
        p.start()
    got = sum(q.get(timeout=60) for _ in ps)
    for p in ps:
        p.join(60)
    assert got == 300  # 4 x 60 x 2 = 480 asked


def test_total_exact_across_threads(tmp_path: Path) -> None:
    led = BudgetLedger(tmp_path / "s.db")
    b = Budget(per_minute=None, total=101, burst=None)
    served: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(30):
            if led.charge("p", 3, b).allowed:
                with lock:
                    served.append(3)

    ts = [threading.Thread(target=run) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(served) == 99  # 33 requests of 3; the 34th would pass 101
