"""A minimal, bounded reader of the protobuf wire format, for scanning ONNX and TensorFlow files.

Nothing is decoded that is not asked for: :meth:`ProtoReader.fields` yields each field's number,
wire type and either its integer value or the span of its payload (``start``/``end`` offsets
into the buffer, never a copy), so a 2 GiB ``raw_data`` costs nothing to step over. The reader
works on anything indexable by byte (``bytes``, ``bytearray``, ``memoryview``, ``mmap``).

The reader follows what protobuf parsers accept, so that a file a loader reads is never
"not protobuf" here:

- a declared length past the end of its message, a varint longer than 10 bytes, field number 0
  or wire types 6 and 7 are malformed (:class:`ProtobufError`): the loader refuses them too;
- groups (wire types 3 and 4, deprecated since proto2) are skipped as parsers skip unknown
  groups, matched start to end and bounded in depth; ``skip_groups=False`` rejects them;
- a known field number with the wrong wire type is the caller's to skip: parsers keep such a
  field as an unknown field rather than fail.

Bounds: ``max_depth`` nested messages (the C++ parser's default recursion limit is 100, so a
deeper file is not loadable either and is reported malformed), ``max_fields`` fields read in
all and a wall-clock ``deadline``, both of which raise :class:`LimitReached` (a file that
costs this much to read costs a loader as much).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from guard.defenses.scan.context import LimitReached

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
MAX_FIELD_NUMBER = (1 << 29) - 1
DEFAULT_MAX_DEPTH = 100
DEFAULT_MAX_FIELDS = 50_000_000
_CLOCK_EVERY = 1 << 14


class ProtobufError(Exception):
    """The bytes are not valid protobuf from ``offset`` on (a loader's parser fails there too)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Field:
    """One field: ``value`` is the integer for varint/fixed fields, the payload length for LEN.

    ``start``/``end`` delimit the payload (LEN) or the value bytes; ``offset`` is the tag's.
    """

    number: int
    wire_type: int
    value: int
    start: int
    end: int
    offset: int


class ProtoReader:
    """Reads fields from one buffer, counting every field against one budget."""

    def __init__(self, data: Any, *, max_depth: int = DEFAULT_MAX_DEPTH,
                 max_fields: int = DEFAULT_MAX_FIELDS, deadline: float | None = None,
                 skip_groups: bool = True) -> None:
        self.data = data
        self.max_depth = max_depth
        self.max_fields = max_fields
        self.deadline = deadline
        self.skip_groups = skip_groups
        self.fields_read = 0

    # -- primitives ----------------------------------------------------------------------------
    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """(value, next position) of the varint at ``pos``; at most 10 bytes, within ``end``."""
        data = self.data
        result = shift = 0
        at = pos
        while True:
            if at >= end:
                raise ProtobufError("truncated varint", pos)
            byte = data[at]
            at += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result & 0xFFFFFFFFFFFFFFFF, at
            shift += 7
            if shift >= 70:
                raise ProtobufError("varint longer than 10 bytes", pos)

    def _count(self) -> None:
        """Check the bounds; ``fields`` calls it past the field budget and every 16384 fields."""
        if self.fields_read > self.max_fields:
            raise LimitReached(f"more than {self.max_fields} protobuf fields")
        if self.deadline is not None and self.fields_read % _CLOCK_EVERY == 0 \
                and time.monotonic() > self.deadline:
            raise LimitReached("protobuf scan ran past its time limit")

    # -- fields --------------------------------------------------------------------------------
    def fields(self, start: int, end: int, depth: int = 0) -> Iterator[Field]:
        """Every field of the message in ``data[start:end]``, nested ``depth`` messages deep.

        Raises :class:`ProtobufError` when the bytes are not a well-formed message (checked as
        far as iteration goes: stop early and the rest is unchecked).
        """
        if depth > self.max_depth:
            raise ProtobufError(f"messages nested deeper than {self.max_depth}", start)
        data = self.data
        pos = start
        while pos < end:
            tag_at = pos
            tag = data[pos]
            if tag < 0x80:  # one-byte tags and values are the common case: no call
                pos += 1
            else:
                tag, pos = self.varint(pos, end)
            number, wire = tag >> 3, tag & 7
            if number == 0 or number > MAX_FIELD_NUMBER:
                raise ProtobufError(f"invalid field number {number}", tag_at)
            self.fields_read += 1
            if self.fields_read > self.max_fields or self.fields_read % _CLOCK_EVERY == 0:
                self._count()
            if wire == VARINT:
                value_at = pos
                value, pos = self.varint(pos, end)
                yield Field(number, wire, value, value_at, pos, tag_at)
            elif wire == LEN:
                if pos < end and data[pos] < 0x80:
                    length, body = data[pos], pos + 1
                else:
                    length, body = self.varint(pos, end)
                if length > end - body:
                    raise ProtobufError(f"field {number} declares {length} bytes, "
                                        f"{end - body} remain", tag_at)
                pos = body + length
                yield Field(number, wire, length, body, pos, tag_at)
            elif wire == I64 or wire == I32:
                size = 8 if wire == I64 else 4
                if pos + size > end:
                    raise ProtobufError(f"truncated fixed{size * 8} field", tag_at)
                value = int.from_bytes(bytes(self.data[pos:pos + size]), "little")
                yield Field(number, wire, value, pos, pos + size, tag_at)
                pos += size
            elif wire == SGROUP:
                if not self.skip_groups:
                    raise ProtobufError("group fields are not supported", tag_at)
                pos = self._skip_group(number, pos, end, depth + 1, tag_at)
            elif wire == EGROUP:
                raise ProtobufError("end-group without a start-group", tag_at)
            else:
                raise ProtobufError(f"invalid wire type {wire}", tag_at)

    def _skip_group(self, number: int, pos: int, end: int, depth: int, tag_at: int) -> int:
        """Position after the end-group tag matching ``number``; nested groups count as depth."""
        if depth > self.max_depth:
            raise ProtobufError(f"groups nested deeper than {self.max_depth}", tag_at)
        while pos < end:
            at = pos
            tag, pos = self.varint(pos, end)
            inner, wire = tag >> 3, tag & 7
            if inner == 0 or inner > MAX_FIELD_NUMBER:
                raise ProtobufError(f"invalid field number {inner}", at)
            self.fields_read += 1
            self._count()
            if wire == EGROUP:
                if inner != number:
                    raise ProtobufError(f"end-group {inner} closes group {number}", at)
                return pos
            if wire == VARINT:
                _, pos = self.varint(pos, end)
            elif wire == LEN:
                length, body = self.varint(pos, end)
                if length > end - body:
                    raise ProtobufError(f"field {inner} declares {length} bytes, "
                                        f"{end - body} remain", at)
                pos = body + length
            elif wire == I64 or wire == I32:
                pos += 8 if wire == I64 else 4
                if pos > end:
                    raise ProtobufError("truncated fixed field", at)
            elif wire == SGROUP:
                pos = self._skip_group(inner, pos, end, depth + 1, at)
            else:
                raise ProtobufError(f"invalid wire type {wire}", at)
        raise ProtobufError(f"group {number} is never closed", tag_at)

    def check(self, start: int, end: int, depth: int = 0) -> None:
        """Raise :class:`ProtobufError` unless ``data[start:end]`` is a well-formed message
        (its own fields only: nested payloads are bytes until someone reads them)."""
        for _ in self.fields(start, end, depth):
            pass

    def is_message(self, start: int, end: int, depth: int = 0) -> bool:
        """True if ``data[start:end]`` reads as one well-formed message (top level only)."""
        try:
            self.check(start, end, depth)
        except ProtobufError:
            return False
        return True

    # -- values --------------------------------------------------------------------------------
    def raw(self, f: Field, limit: int = 1 << 16) -> bytes:
        """The first ``limit`` payload bytes of a LEN field (a copy of at most ``limit`` bytes)."""
        return bytes(self.data[f.start:min(f.end, f.start + limit)])

    def text(self, f: Field, limit: int = 1 << 16) -> str:
        """A LEN field as text (UTF-8, undecodable bytes replaced), cut at ``limit`` bytes."""
        return self.raw(f, limit).decode("utf-8", "replace")


def signed64(value: int) -> int:
    """A varint read as int64 (protobuf writes negative int32/int64 as 10-byte varints)."""
    return value - (1 << 64) if value >= 1 << 63 else value
