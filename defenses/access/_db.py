"""The shared SQLite state file: WAL journal, a busy timeout, one cached connection per
thread and process (opening one and running the schema costs most of a millisecond)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from guard.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, principal TEXT NOT NULL, digest TEXT NOT NULL,
    created REAL NOT NULL, revoked REAL
);
CREATE TABLE IF NOT EXISTS buckets (
    principal TEXT PRIMARY KEY, level REAL NOT NULL, updated REAL NOT NULL, used INTEGER NOT NULL
);
"""


_local = threading.local()


def connect(db: Path) -> sqlite3.Connection:
    """This thread's connection to ``db`` in autocommit mode (transactions are explicit
    BEGIN IMMEDIATE); a new one after a fork."""
    key = (os.getpid(), str(db))
    cache: dict[tuple[int, str], sqlite3.Connection] = _local.__dict__.setdefault("conns", {})
    conn = cache.get(key)
    if conn is None:
        conn = _open(db)
        cache[key] = conn
    return conn


def _open(db: Path) -> sqlite3.Connection:
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(SCHEMA)
    except (OSError, sqlite3.DatabaseError) as exc:
        raise ConfigError(f"{db}: cannot open the access state database: {exc}") from None
    return conn
