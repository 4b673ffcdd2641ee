"""Class ``multi-stream``: files that a loader unpickles more than once.

A pre-1.6 ``torch.save`` file (``_use_new_zipfile_serialization=False``) is five pickles in a
row (magic number, protocol, sys_info, the object, the storage keys) and then raw storage
bytes; ``torch.load`` unpickles all five. A scanner that stops at the first STOP, or treats
what follows the main object as data, misses a payload in any other slot.
"""

from __future__ import annotations

from pathlib import Path

from . import _build as b
from ._common import Spec, torch_legacy_base

_SLOTS = ("magic", "protocol", "sys_info", "main", "keys")


def _legacy_with(slot: str, payload: bytes) -> bytes:
    base = torch_legacy_base()
    spans = b.split_pickles(base, 5)
    parts = [base[s:e] for s, e in spans]
    parts[_SLOTS.index(slot)] = payload
    return b"".join(parts) + base[spans[-1][1]:]


def build(canary: Path) -> list[Spec]:
    sys_pl = b.stream(b.system_call(canary), 2)
    exe_pl = b.stream(b.exec_call(canary), 2)
    specs = [
        Spec("legacy-torch-sysinfo-slot.pt", "multi-stream",
             "real pre-1.6 torch.save file with its 3rd pickle (sys_info) replaced by a payload; "
             "torch.load's legacy path unpickles it before the model", _legacy_with("sys_info", sys_pl)),
        Spec("legacy-torch-keys-slot.pt", "multi-stream",
             "real pre-1.6 torch.save file, payload in the 5th pickle (storage keys) that follows "
             "the main object", _legacy_with("keys", exe_pl)),
        Spec("legacy-torch-protocol-slot.bin", "multi-stream",
             "real pre-1.6 torch.save file, payload in the 2nd pickle (protocol version)",
             _legacy_with("protocol", sys_pl)),
    ]
    return specs
