from pathlib import Path

from guard.defenses.access.tokens import TokenStore


def test_create_authenticate_revoke(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = TokenStore(db)
    tok = store.create("alice")
    assert tok.startswith("grd_") and store.authenticate(tok) == "alice"
    assert tok.encode() not in db.read_bytes()
    assert store.authenticate(tok[:-1] + ("A" if tok[-1] != "A" else "B")) is None
    assert store.authenticate("nonsense") is None
    other = store.create("alice")
    assert store.revoke(tok.split("_")[1], by="id") == 1
    assert store.authenticate(tok) is None and store.authenticate(other) == "alice"
    assert store.revoke("alice", by="principal") == 1
    infos = store.list()
    assert len(infos) == 2 and all(i.revoked is not None for i in infos)
