"""Compressed streams a loader would open: gzip, bz2, xz, lzma, zlib, LZ4 frames, zip's LZMA.

Each codec is a streaming decompressor that takes a cap on its output, so a bomb stops at
the cap rather than at the memory limit. LZ4 (joblib's ``compress="lz4"``) uses the ``lz4``
package when it is installed (``pip install guard-ml[lz4]``) and otherwise a small bounded
decoder of the frame and block formats written here, so a plain install still opens it.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable
from typing import Any

Decompress = Callable[[bytes, int], bytes]
"""``decompress(chunk, room)``: at most ``room`` more bytes of output for the next chunk."""

_FIRST_BYTES = frozenset(b"\x1fB\xfd\x5dZx\x047")
LZ4_MAGIC = b"\x04\x22\x4d\x18"
ZIP_METHODS = {8: "deflate", 12: "bz2", 14: "zip-lzma"}
"""Zip compression methods Guard opens (``np.load`` reads all three)."""


class CorruptStream(ValueError):
    """The compressed bytes cannot be decoded past some point."""


def codec(head: bytes) -> str | None:
    """The compression a stream starting with ``head`` uses, or None."""
    if not head or head[0] not in _FIRST_BYTES:
        return None
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):
        return "lzma"
    if head.startswith(b"ZF"):
        return "zfile"
    if len(head) > 1 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    if head.startswith(LZ4_MAGIC):
        return "lz4"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    return None


def decompressor(name: str) -> tuple[Decompress, Callable[[], bool]]:
    """(decompress, reached_end_of_stream) for one stream of codec ``name``."""
    if name in ("deflate", "zlib", "gzip"):
        wbits = {"deflate": -15, "zlib": 15, "gzip": 31}[name]
        z = zlib.decompressobj(wbits)
        return (lambda chunk, room: z.decompress(z.unconsumed_tail + chunk, room)), (lambda: z.eof)
    if name == "bz2":
        b = bz2.BZ2Decompressor()
        return b.decompress, (lambda: b.eof)
    if name == "zip-lzma":
        return _zip_lzma()
    if name == "lz4":
        return _lz4()
    fmt = lzma.FORMAT_ALONE if name == "lzma" else lzma.FORMAT_XZ
    x = lzma.LZMADecompressor(format=fmt)
    return x.decompress, (lambda: x.eof)


def _zip_lzma() -> tuple[Decompress, Callable[[], bool]]:
    """Zip method 14: a 4-byte header (version, properties size), LZMA1 properties, raw data."""
    state: dict[str, Any] = {"head": b"", "dec": None}

    def decompress(chunk: bytes, room: int) -> bytes:
        dec = state["dec"]
        if dec is None:
            head = state["head"] + chunk
            if len(head) < 4:
                state["head"] = head
                return b""
            (size,) = struct.unpack_from("<H", head, 2)
            if len(head) < 4 + size:
                state["head"] = head
                return b""
            try:
                props = lzma._decode_filter_properties(lzma.FILTER_LZMA1, head[4:4 + size])  # type: ignore[attr-defined]
            except lzma.LZMAError as exc:
                raise CorruptStream(f"bad LZMA properties ({exc})") from None
            dec = state["dec"] = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[props])
            chunk = head[4 + size:]
        out: bytes = dec.decompress(chunk, room)
        return out

    return decompress, (lambda: state["dec"] is not None and state["dec"].eof)


def _lz4() -> tuple[Decompress, Callable[[], bool]]:
    try:
        import lz4.frame
    except ImportError:
        return _Lz4Frames().as_decompressor()
    d = lz4.frame.LZ4FrameDecompressor()

    def decompress(chunk: bytes, room: int) -> bytes:
        try:
            out: bytes = d.decompress(chunk, max_length=max(room, 1))
        except RuntimeError as exc:  # lz4 reports corrupt frames as RuntimeError
            raise CorruptStream(str(exc)) from None
        return out

    return decompress, (lambda: bool(d.eof))


class _Lz4Frames:
    """A bounded decoder of the LZ4 frame format (https://github.com/lz4/lz4/blob/dev/doc/),
    fed in chunks. Checksums are not verified (the loader's concern, not a scan's); the output
    is what a decoder would produce, capped by the caller."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.out = bytearray()
        self.sent = 0
        self.header_done = False
        self.block_checksum = False
        self.content_checksum = False
        self.eof = False

    def as_decompressor(self) -> tuple[Decompress, Callable[[], bool]]:
        return self.decompress, (lambda: self.eof)

    def decompress(self, chunk: bytes, room: int) -> bytes:
        self.buf += chunk
        while not self.eof and len(self.out) - self.sent < room and self._step():
            pass
        end = min(len(self.out), self.sent + room)
        piece = bytes(self.out[self.sent:end])
        self.sent = end
        if len(self.out) > 1 << 16:  # keep the 64 KiB window matches may reach back into
            drop = len(self.out) - (1 << 16)
            drop = min(drop, self.sent)
            del self.out[:drop]
            self.sent -= drop
        return piece

    def _step(self) -> bool:
        """Decode one header or block from ``buf``; False when more input is needed."""
        buf = self.buf
        if not self.header_done:
            if len(buf) < 7:
                return False
            if bytes(buf[:4]) != LZ4_MAGIC:
                raise CorruptStream("not an LZ4 frame")
            flg = buf[4]
            if flg >> 6 != 1:
                raise CorruptStream("unknown LZ4 frame version")
            size = 7 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
            if len(buf) < size:
                return False
            self.block_checksum = bool(flg & 0x10)
            self.content_checksum = bool(flg & 0x04)
            self.header_done = True
            del buf[:size]
            return True
        if len(buf) < 4:
            return False
        (word,) = struct.unpack_from("<I", buf, 0)
        if word == 0:
            need = 4 + (4 if self.content_checksum else 0)
            if len(buf) < need:
                return False
            del buf[:need]
            self.eof = True
            return False
        size = word & 0x7FFFFFFF
        if size > 4 << 20:
            raise CorruptStream("LZ4 block larger than the 4 MiB maximum")
        need = 4 + size + (4 if self.block_checksum else 0)
        if len(buf) < need:
            return False
        block = bytes(buf[4:4 + size])
        del buf[:need]
        if word & 0x80000000:
            self.out += block
        else:
            _lz4_block(block, self.out)
        return True


def _lz4_block(block: bytes, out: bytearray) -> None:
    """Append the decoded LZ4 block to ``out`` (earlier output is the match window)."""
    pos, end = 0, len(block)
    while pos < end:
        token = block[pos]
        pos += 1
        literal = token >> 4
        if literal == 15:
            while True:
                if pos >= end:
                    raise CorruptStream("LZ4 literal length truncated")
                extra = block[pos]
                pos += 1
                literal += extra
                if extra != 255:
                    break
        if pos + literal > end:
            raise CorruptStream("LZ4 literals run past the block")
        out += block[pos:pos + literal]
        pos += literal
        if pos >= end:
            return  # the last sequence has literals only
        if pos + 2 > end:
            raise CorruptStream("LZ4 match offset truncated")
        offset = block[pos] | block[pos + 1] << 8
        pos += 2
        if offset == 0 or offset > len(out):
            raise CorruptStream("LZ4 match offset outside the window")
        length = (token & 15) + 4
        if token & 15 == 15:
            while True:
                if pos >= end:
                    raise CorruptStream("LZ4 match length truncated")
                extra = block[pos]
                pos += 1
                length += extra
                if extra != 255:
                    break
        start = len(out) - offset
        while length > 0:  # an overlapping match repeats the last ``offset`` bytes
            piece = out[start:start + min(length, offset)]
            out += piece
            start += len(piece)
            length -= len(piece)
