"""API tokens: random, shown once, stored only as a SHA-256 digest, compared in constant time.

A token is ``grd_<id>_<secret>``: the id (8 random hex characters) finds the row, the secret
(``secrets.token_urlsafe(32)``, 256 bits) makes it unguessable. The digest is a plain SHA-256
of the whole token, not a slow KDF: a KDF protects low-entropy passwords against guessing, and
a 256-bit random secret cannot be guessed, so a fast hash loses nothing and keeps
authentication well under a millisecond. Digests are compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from guard.defenses.access._db import connect

_TOKEN = re.compile(r"grd_([0-9a-f]{8})_([A-Za-z0-9_-]{20,})")


@dataclass(frozen=True)
class TokenInfo:
    id: str
    principal: str
    created: float
    revoked: float | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    def __init__(self, db: Path) -> None:
        self.db = Path(db)

    def create(self, principal: str) -> str:
        conn = connect(self.db)
        try:
            while True:
                tid = secrets.token_hex(4)
                token = f"grd_{tid}_{secrets.token_urlsafe(32)}"
                conn.execute("BEGIN IMMEDIATE")
                if conn.execute("SELECT 1 FROM tokens WHERE id = ?", (tid,)).fetchone():
                    conn.execute("ROLLBACK")
                    continue
                conn.execute(
                    "INSERT INTO tokens (id, principal, digest, created) VALUES (?, ?, ?, ?)",
                    (tid, principal, _digest(token), time.time()),
                )
                conn.execute("COMMIT")
                return token
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def revoke(self, token_id_or_principal: str, *, by: str = "any") -> int:
        """Revoke by token id or by principal (``by``: "id", "principal" or "any"); returns
        the number of tokens newly revoked."""
        conn = connect(self.db)
        try:
            conn.execute("BEGIN IMMEDIATE")
            clauses = {"id": "id = ?", "principal": "principal = ?", "any": "(id = ? OR principal = ?)"}
            args: tuple[str, ...] = (token_id_or_principal,) * (2 if by == "any" else 1)
            cur = conn.execute(
                f"UPDATE tokens SET revoked = ? WHERE revoked IS NULL AND {clauses[by]}",  # noqa: S608
                (time.time(), *args),
            )
            conn.execute("COMMIT")
            return int(cur.rowcount)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def authenticate(self, token: str) -> str | None:
        m = _TOKEN.fullmatch(token) if isinstance(token, str) else None
        if m is None:
            return None
        conn = connect(self.db)
        try:
            row = conn.execute(
                "SELECT principal, digest, revoked FROM tokens WHERE id = ?", (m.group(1),)
            ).fetchone()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if row is None:
            hmac.compare_digest(_digest(token), "0" * 64)  # same work for a missing id
            return None
        ok = hmac.compare_digest(_digest(token), str(row[1]))
        return str(row[0]) if ok and row[2] is None else None

    def list(self) -> list[TokenInfo]:
        conn = connect(self.db)
        try:
            rows = conn.execute(
                "SELECT id, principal, created, revoked FROM tokens ORDER BY created"
            ).fetchall()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return [TokenInfo(str(r[0]), str(r[1]), float(r[2]), r[3]) for r in rows]
