"""What every corpus builder returns, and the real torch archives the forgeries start from."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

from ._build import ZipMember, build_zip, torch_zip_with


@dataclass(frozen=True)
class Spec:
    """A malicious file before it is written: its bytes and what it stands for."""

    name: str
    klass: str
    description: str
    data: bytes


@functools.lru_cache(maxsize=1)
def torch_base() -> bytes:
    """A real ``torch.save`` archive of a two-tensor state dict (the forgeries' starting point)."""
    import torch

    buf = io.BytesIO()
    torch.save({"weight": torch.arange(8, dtype=torch.float32).reshape(2, 4),
                "bias": torch.zeros(2)}, buf)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def torch_legacy_base() -> bytes:
    """A real pre-1.6 (non-zip) ``torch.save`` file: five pickles, then raw storage bytes."""
    import torch

    buf = io.BytesIO()
    torch.save({"weight": torch.arange(8, dtype=torch.float32)}, buf,
               _use_new_zipfile_serialization=False)
    return normalize_legacy_keys(buf.getvalue())


def normalize_legacy_keys(data: bytes) -> bytes:
    """Replace a legacy torch file's storage keys (decimal memory addresses, different every
    run) by same-length fixed digits, so the file is reproducible and still loads."""
    import pickletools

    keys: list[str] = []
    buf = io.BytesIO(data)
    for _ in range(5):
        for op, arg, _pos in pickletools.genops(buf):
            if op.name == "STOP":
                break
            if isinstance(arg, str) and len(arg) >= 8 and arg.isdigit() and arg not in keys:
                keys.append(arg)
    head_end = buf.tell()
    head = data[:head_end]
    for i, key in enumerate(keys):
        head = head.replace(key.encode(), str(i + 1).rjust(len(key), "0").encode())
    return head + data[head_end:]


def torch_zip(data_pkl: bytes, **overrides: object) -> bytes:
    """A real torch archive with ``archive/data.pkl`` replaced (CRCs recomputed: a valid zip).

    ``overrides`` are ``ZipMember`` fields applied to the data.pkl entry (flags, crc, ...).
    """
    members = torch_zip_with(torch_base(), {"data.pkl": data_pkl})
    for m in members:
        if m.name.endswith("/data.pkl"):
            for key, value in overrides.items():
                setattr(m, key, value)
    return build_zip(members)


def torch_members(data_pkl: bytes) -> list[ZipMember]:
    return torch_zip_with(torch_base(), {"data.pkl": data_pkl})
