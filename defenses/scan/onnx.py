"""ONNX models (``ModelProto``), read from bytes without onnx or onnxruntime.

An ONNX file holds no code, but loading one still reaches outside it in two ways:

- a tensor's data may live in an external file named by its ``external_data`` ``location``;
  onnx and onnxruntime join that name to the model's folder and read it, so an absolute name,
  ``..`` or a URL reads any file the process can (CVE-2022-25882, CVE-2024-27318,
  CVE-2024-27319); onnxruntime's ``EPContext`` node with ``embed_mode=0`` names a file the
  same way;
- a node whose domain is not one that onnx or onnxruntime implement needs a native custom-op
  library (``SessionOptions.register_custom_ops_library``): native code from somewhere.

Every graph is walked: the main graph, subgraphs in node attributes (``If``/``Loop``/``Scan``
bodies, recursively), model-local functions and training graphs, and every tensor in
initializers, sparse initializers and attributes. A node that calls a model-local function
(``ModelProto.functions``, as torch's exporter writes) is not a custom op.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from guard.defenses.scan.context import Budget, Findings, LimitReached
from guard.defenses.scan.protobuf import LEN, VARINT, Field, ProtobufError, ProtoReader, signed64
from guard.defenses.scan.results import Severity

STANDARD_DOMAINS = frozenset({
    "", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training",
    # onnxruntime's own kernels (onnxruntime/core/graph/constants.h)
    "com.microsoft", "com.microsoft.experimental", "com.microsoft.nchwc", "com.ms.internal.nhwc",
    "com.microsoft.dml", "org.pytorch.aten",
    # execution providers shipped with onnxruntime builds (OpenVINO/nGraph, Vitis AI)
    "com.intel.ai", "com.xilinx",
})
"""Domains onnx or onnxruntime implement; any other needs a custom-op library."""

_DRIVE = re.compile(r"^[A-Za-z]:")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")
_SEPARATORS = re.compile(r"[\\/]+")
_MAX_TEXT = 1 << 16
_DEFAULT_TIMEOUT_S = 120.0

RULE_HELP: dict[str, str] = {
    "onnx-external-path": "A tensor's external data (or an EPContext node's cache file) is named by an "
                          "absolute path, '..', a drive letter, a URL or a NUL byte: onnx and "
                          "onnxruntime read whatever file that names (CVE-2022-25882, CVE-2024-27318, "
                          "CVE-2024-27319). Only load it with its data files beside it, named relative "
                          "to the model's own folder.",
    "onnx-custom-op": "A node, function or opset import uses a domain that neither onnx nor onnxruntime "
                      "implements, so running the model needs a native custom-op library: native code "
                      "that the model's author chose. A human should check where that library comes "
                      "from before loading it.",
    "onnx-external-data": "Tensors keep their data in files beside the model (ordinary external data); "
                          "those files are read on load and must travel with the model.",
}


def external_path_problem(location: str) -> str | None:
    """Why a file name from a model reaches outside the model's folder, or None if it does not."""
    if "\x00" in location:
        return "contains a NUL byte"
    if location.startswith(("/", "\\")):
        return "is an absolute path"
    if _DRIVE.match(location):
        return "names a drive"
    if _SCHEME.match(location):
        return "is a URL or names a stream"
    if ".." in _SEPARATORS.split(location):
        return "climbs out of the model's folder with '..'"
    if location.startswith("~"):
        return "starts with '~' (a home folder once expanded)"
    return None


class NotOnnx(Exception):
    """Well-formed protobuf, but not a model onnxruntime would run."""


@dataclass(slots=True)
class _Attribute:
    name: str = ""
    i: int | None = None
    s: str | None = None


@dataclass(slots=True)
class _Top:
    ir_version: int | None = None
    graphs: list[Field] = field(default_factory=list)
    opsets: list[Field] = field(default_factory=list)
    functions: list[Field] = field(default_factory=list)
    training: list[Field] = field(default_factory=list)


class _OnnxWalker:
    def __init__(self, reader: ProtoReader, findings: Findings, member: str, base: int) -> None:
        self.r = reader
        self.findings = findings
        self.member = member
        self.base = base
        self.local_functions: set[tuple[str, str]] = set()
        self.function_domains: set[str] = set()
        self.graph_items = 0

    def report(self, severity: Severity, rule: str, global_name: str, detail: str, at: int) -> None:
        self.findings.report(severity, rule, global_name, detail, at - self.base, self.member)

    # -- model ---------------------------------------------------------------------------------
    def top(self, start: int, end: int) -> _Top | None:
        """The ModelProto's top-level fields, or None if they do not make a model."""
        top = _Top()
        for f in self.r.fields(start, end, 0):
            if f.number == 1 and f.wire_type == VARINT:
                top.ir_version = signed64(f.value)
            elif f.wire_type != LEN:
                continue
            elif f.number == 7:
                top.graphs.append(f)
            elif f.number == 8:
                top.opsets.append(f)
            elif f.number == 25:
                top.functions.append(f)
            elif f.number == 20:
                top.training.append(f)
        # onnxruntime refuses only versions above its own, so 0 and negative ones load too
        if top.ir_version is None or top.ir_version > 100 or not top.graphs:
            return None
        return top

    def model(self, top: _Top) -> None:
        for f in top.functions:
            name = domain = ""
            for g in self.r.fields(f.start, f.end, 1):
                if g.wire_type == LEN and g.number == 1:
                    name = self.r.text(g, _MAX_TEXT)
                elif g.wire_type == LEN and g.number == 10:
                    domain = self.r.text(g, _MAX_TEXT)
            self.local_functions.add((_domain(domain), name))
            self.function_domains.add(_domain(domain))
        for f in top.opsets:
            self.opset(f, 1)
        for f in top.graphs:
            self.graph(f, 1)
        if self.graph_items == 0:
            raise NotOnnx("the graph has no node and no initializer")
        for f in top.functions:
            self.function(f, 1)
        for f in top.training:
            for g in self.r.fields(f.start, f.end, 1):
                if g.wire_type == LEN and g.number in (1, 2):  # initialization, algorithm
                    self.graph(g, 2)

    def opset(self, f: Field, depth: int) -> None:
        domain = ""
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type == LEN and g.number == 1:
                domain = self.r.text(g, _MAX_TEXT)
        domain = _domain(domain)
        if domain not in STANDARD_DOMAINS and domain not in self.function_domains:
            self.report(Severity.MEDIUM, "onnx-custom-op", domain,
                        f"imports operator set {domain!r}, which only a custom-op library provides",
                        f.offset)

    def function(self, f: Field, depth: int) -> None:
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type != LEN:
                continue
            if g.number == 7:
                self.node(g, depth + 1)
            elif g.number == 9:
                self.opset(g, depth + 1)
            elif g.number == 11:
                self.attribute(g, depth + 1)

    # -- graphs --------------------------------------------------------------------------------
    def graph(self, f: Field, depth: int) -> None:
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type != LEN:
                continue
            if g.number in (1, 5, 15):
                self.graph_items += 1
            if g.number == 1:
                self.node(g, depth + 1)
            elif g.number == 5:
                self.tensor(g, depth + 1)
            elif g.number == 15:
                self.sparse_tensor(g, depth + 1)
            elif g.number in (11, 12, 13):  # input, output, value_info: well-formed, no data
                self.r.check(g.start, g.end, depth + 1)

    def node(self, f: Field, depth: int) -> None:
        op_type = domain = name = ""
        attributes: list[_Attribute] = []
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type != LEN:
                continue
            if g.number == 4:
                op_type = self.r.text(g, _MAX_TEXT)
            elif g.number == 7:
                domain = self.r.text(g, _MAX_TEXT)
            elif g.number == 3:
                name = self.r.text(g, _MAX_TEXT)
            elif g.number == 5:
                attributes.append(self.attribute(g, depth + 1))
        domain = _domain(domain)
        if domain not in STANDARD_DOMAINS and (domain, op_type) not in self.local_functions:
            self.report(Severity.MEDIUM, "onnx-custom-op", f"{domain}.{op_type}",
                        f"node {name!r} runs {op_type!r} from domain {domain!r}, which needs a native "
                        "custom-op library", f.offset)
        if op_type == "EPContext" and domain == "com.microsoft":
            self.ep_context(attributes, name, f.offset)

    def ep_context(self, attributes: list[_Attribute], name: str, at: int) -> None:
        embed_mode, cache = 1, None
        for a in attributes:
            if a.name == "embed_mode" and a.i is not None:
                embed_mode = a.i
            elif a.name == "ep_cache_context" and a.s is not None:
                cache = a.s
        if embed_mode == 0 and cache is not None:
            self.location(cache, f"EPContext node {name!r} loads its cache from", at)

    def attribute(self, f: Field, depth: int) -> _Attribute:
        out = _Attribute()
        for g in self.r.fields(f.start, f.end, depth):
            if g.number == 3 and g.wire_type == VARINT:
                out.i = signed64(g.value)
                continue
            if g.wire_type != LEN:
                continue
            if g.number == 1:
                out.name = self.r.text(g, _MAX_TEXT)
            elif g.number == 4:
                out.s = self.r.text(g, _MAX_TEXT)
            elif g.number in (5, 10):  # t, tensors
                self.tensor(g, depth + 1)
            elif g.number in (6, 11):  # g, graphs
                self.graph(g, depth + 1)
            elif g.number in (22, 23):  # sparse_tensor, sparse_tensors
                self.sparse_tensor(g, depth + 1)
        return out

    # -- tensors -------------------------------------------------------------------------------
    def sparse_tensor(self, f: Field, depth: int) -> None:
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type == LEN and g.number in (1, 2):  # values, indices
                self.tensor(g, depth + 1)

    def tensor(self, f: Field, depth: int) -> None:
        external = False
        name = ""
        locations: list[str] = []
        for g in self.r.fields(f.start, f.end, depth):
            if g.number == 14 and g.wire_type == VARINT:
                external = external or g.value == 1
            elif g.wire_type == LEN and g.number == 8:
                name = self.r.text(g, _MAX_TEXT)
            elif g.wire_type == LEN and g.number == 13:
                key: str | None = None
                value = ""
                for h in self.r.fields(g.start, g.end, depth + 1):
                    if h.wire_type == LEN and h.number == 1:
                        key = self.r.text(h, _MAX_TEXT)
                    elif h.wire_type == LEN and h.number == 2:
                        value = self.r.text(h, _MAX_TEXT)
                if key == "location":
                    locations.append(value)
        if external:
            for location in locations:
                self.location(location, f"tensor {name!r} reads its data from", f.offset)

    def location(self, location: str, what: str, at: int) -> None:
        problem = external_path_problem(location)
        if problem is None:
            self.report(Severity.INFO, "onnx-external-data", "",
                        f"{what} {location[:200]!r}, a file beside the model", at)
        else:
            self.report(Severity.HIGH, "onnx-external-path", location[:200],
                        f"{what} {location[:200]!r}, which {problem}: the loader reads that file", at)


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def scan_onnx(data: Any, start: int, end: int, member: str, findings: Findings, *,
              budget: Budget | None = None) -> bool:
    """Scan ``data[start:end]`` as an ONNX ``ModelProto``; False (and nothing reported) unless
    it is one: well-formed protobuf throughout, with an ``ir_version`` (100 at most) and a
    ``graph`` holding at least one node or initializer.

    Raises :class:`LimitReached` (after reporting what was found so far) when the model has
    more fields than the reader's bound or the scan runs past ``budget``'s deadline.
    """
    deadline = budget.deadline if budget is not None else time.monotonic() + _DEFAULT_TIMEOUT_S
    reader = ProtoReader(data, deadline=deadline)
    scratch = Findings()
    walker = _OnnxWalker(reader, scratch, member, start)
    try:
        top = walker.top(start, end)
        if top is None:
            return False
        walker.model(top)
    except (ProtobufError, NotOnnx):
        return False
    except LimitReached:
        findings.merge(scratch)
        raise
    findings.merge(scratch)
    return True
