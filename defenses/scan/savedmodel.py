"""TensorFlow SavedModel (``saved_model.pb``), frozen ``GraphDef`` and tf.keras
``keras_metadata.pb``, read from bytes without TensorFlow.

A SavedModel is a graph of ops that TensorFlow runs as stored, so its risk is the ops it
names: ``PyFunc``/``EagerPyFunc`` call back into Python, and file-system ops read, write or
list files at paths the graph chooses. Every node is rated: the graphs of every
``MetaGraphDef`` and every function in their libraries (TF2 keeps almost everything in
functions), and function names in node attributes too (``func.name`` may name a primitive op,
which TensorFlow runs as a function).

Every SavedModel's saver holds ``SaveV2``/``RestoreV2``/``MergeV2Checkpoints``; those are
expected inside the saver (the nodes ``saver_def`` names and their name scope, and TF2's
``__inference__traced_save``/``_restore`` functions) and never flagged there. An asset file
name in ``asset_file_def`` that reaches outside the SavedModel's ``assets/`` folder is rated
like an ONNX external-data path.

``fingerprint.pb`` and other protobufs are told apart by structure: each ``scan_*`` function
returns False, reporting nothing, for bytes that are not its message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from guard.defenses.scan.context import Budget, Findings, LimitReached
from guard.defenses.scan.keras import scan_keras_config
from guard.defenses.scan.onnx import external_path_problem, scan_onnx
from guard.defenses.scan.protobuf import LEN, Field, ProtobufError, ProtoReader
from guard.defenses.scan.results import Severity

PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})

_H, _M, _L = Severity.HIGH, Severity.MEDIUM, Severity.LOW
FILE_OPS: dict[str, tuple[Severity, str]] = {
    **{op: (_H, "reads a file at a path the graph chooses") for op in (
        "ReadFile", "ImmutableConst", "WholeFileReader", "WholeFileReaderV2", "LMDBReader", "LMDBDataset",
        "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset")},
    **{op: (_H, "writes a file at a path the graph chooses") for op in (
        "WriteFile", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "SaveDataset", "SaveDatasetV2",
        "CreateSummaryFileWriter", "CreateSummaryDbWriter")},
    **{op: (_H, "dumps tensors to files or gRPC URLs the graph chooses") for op in (
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
        "DebugNumericSummaryV2")},
    "MatchingFiles": (_H, "lists files matching a pattern the graph chooses"),
    **{op: (_M, "reads files at paths the graph chooses") for op in (
        "TextLineReader", "TextLineReaderV2", "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2", "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2",
        "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2",
        "ExperimentalCSVDataset", "LoadDataset", "MatchingFilesDataset", "ExperimentalMatchingFilesDataset",
        "LoadAndRemapMatrix", "GenerateVocabRemapping", "DecodeProtoV2", "EncodeProto")},
    **{op: (_M, "reads and writes files at a path the graph chooses") for op in (
        "SnapshotDataset", "SnapshotDatasetV2", "CacheDataset", "CacheDatasetV2")},
    **{op: (_L, "reads a vocabulary file (normally one of the SavedModel's assets)") for op in (
        "InitializeTableFromTextFile", "InitializeTableFromTextFileV2")},
}
"""File-system ops and how risky each is (Python-calling ops are :data:`PYTHON_OPS`)."""

SAVER_OPS: dict[str, tuple[Severity, str]] = {
    "Save": (_H, "writes tensors to a file at a path the graph chooses"),
    "SaveSlices": (_H, "writes tensors to a file at a path the graph chooses"),
    "Restore": (_M, "reads a checkpoint file at a path the graph chooses"),
    "RestoreSlice": (_M, "reads a checkpoint file at a path the graph chooses"),
    "SaveV2": (_L, "writes a checkpoint outside the saver"),
    "RestoreV2": (_L, "reads a checkpoint outside the saver"),
    "MergeV2Checkpoints": (_L, "merges and deletes checkpoint files outside the saver"),
}
"""Checkpoint ops: expected (and not rated) inside the saver, rated as listed outside it."""

_SAVER_FUNCTION = re.compile(r"__inference__traced_(save|restore)_\d+")
_OP_NAME = re.compile(r"[A-Za-z0-9_.>/\-]+")
_MAX_TEXT = 1 << 16
_MAX_METADATA = 64 << 20
_DEFAULT_TIMEOUT_S = 120.0

RULE_HELP: dict[str, str] = {
    "tf-python-op": "The TensorFlow graph calls back into Python (PyFunc, PyFuncStateless, EagerPyFunc): "
                    "whatever function the loading process registered under that token runs, and a "
                    "crafted model pairs it with code that registers one. Do not serve this model.",
    "tf-file-op": "The TensorFlow graph reads, writes or lists files (ReadFile, WriteFile, MatchingFiles, "
                  "PrintV2 to a file://, ImmutableConst, dataset writers, V1 Save outside the saver, ...) "
                  "at paths it chooses, each time it runs.",
    "tf-asset-path": "A SavedModel asset's file name is absolute, climbs out with '..' or is a URL: "
                     "loading reads that file in place of one from the model's assets/ folder.",
}


@dataclass(slots=True)
class _Saver:
    nodes: set[str] = field(default_factory=set)
    scopes: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)

    def holds_node(self, name: str) -> bool:
        return name in self.nodes or any(name.startswith(scope) for scope in self.scopes)


@dataclass(slots=True)
class _Node:
    name: str = ""
    op: str = ""
    strings: dict[str, list[str]] = field(default_factory=dict)
    functions: list[str] = field(default_factory=list)


class NotThisFormat(Exception):
    """The bytes parse as protobuf but are not the message asked for."""


class _TfWalker:
    def __init__(self, reader: ProtoReader, findings: Findings, member: str, base: int) -> None:
        self.r = reader
        self.findings = findings
        self.member = member
        self.base = base
        self.nodes = 0
        self.keras_texts: list[Field] = []

    def report(self, severity: Severity, rule: str, global_name: str, detail: str, at: int) -> None:
        self.findings.report(severity, rule, global_name, detail, at - self.base, self.member)

    # -- SavedModel ------------------------------------------------------------------------------
    def saved_model(self, start: int, end: int) -> None:
        metas = [f for f in self.r.fields(start, end, 0) if f.number == 2 and f.wire_type == LEN]
        if not metas:
            raise NotThisFormat("no meta_graphs")
        for f in metas:
            self.meta_graph(f, 1)
        if self.nodes == 0:
            raise NotThisFormat("no graph nodes")

    def meta_graph(self, f: Field, depth: int) -> None:
        graphs: list[Field] = []
        saver = _Saver()
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type != LEN:
                continue
            if g.number == 2:
                graphs.append(g)
            elif g.number == 3:
                self.saver_def(g, depth + 1, saver)
            elif g.number == 6:
                self.asset(g, depth + 1)
            elif g.number == 7:
                self.object_graph(g, depth + 1)
        for g in graphs:
            self.graph_def(g, depth + 1, saver)

    def saver_def(self, f: Field, depth: int, saver: _Saver) -> None:
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type == LEN and g.number in (1, 2, 3):  # filename/save tensor, restore op
                name = self.r.text(g, _MAX_TEXT).split(":", 1)[0]
                if not name:
                    continue
                saver.nodes.add(name)
                if "/" in name:
                    saver.scopes.add(name.split("/", 1)[0] + "/")

    def object_graph(self, f: Field, depth: int) -> None:
        """TF 2.0-2.4 tf.keras kept each layer's config in ``SavedUserObject.metadata``."""
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type != LEN or g.number != 1:
                continue
            for h in self.r.fields(g.start, g.end, depth + 1):
                if h.wire_type != LEN or h.number != 4:  # user_object
                    continue
                identifier, metadata = "", None
                for k in self.r.fields(h.start, h.end, depth + 2):
                    if k.wire_type == LEN and k.number == 1:
                        identifier = self.r.text(k, _MAX_TEXT)
                    elif k.wire_type == LEN and k.number == 3:
                        metadata = k
                if metadata is not None and metadata.value and identifier.startswith("_tf_keras"):
                    self.keras_texts.append(metadata)

    def asset(self, f: Field, depth: int) -> None:
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type == LEN and g.number == 2:
                filename = self.r.text(g, _MAX_TEXT)
                problem = external_path_problem(filename)
                if problem is not None:
                    self.report(Severity.HIGH, "tf-asset-path", filename[:200], f"asset file "
                                f"{filename[:200]!r} {problem}: loading reads it as a model asset", g.offset)

    # -- graphs ----------------------------------------------------------------------------------
    def graph_def(self, f: Field, depth: int, saver: _Saver) -> None:
        """Nodes first (the saver's calls name its functions), then the function library."""
        libraries: list[Field] = []
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type != LEN:
                continue
            if g.number == 1:
                node = self.node(g, depth + 1)
                in_saver = saver.holds_node(node.name)
                if in_saver:
                    saver.functions.update(node.functions)
                self.rate(node, in_saver, g.offset, "")
            elif g.number == 2:
                libraries.append(g)
        for g in libraries:
            self.library(g, depth + 1, saver)

    def library(self, f: Field, depth: int, saver: _Saver) -> None:
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type == LEN and g.number == 1:
                self.function(g, depth + 1, saver)

    def function(self, f: Field, depth: int, saver: _Saver) -> None:
        name = ""
        bodies: list[Field] = []
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type != LEN:
                continue
            if g.number == 1:  # signature: OpDef, whose field 1 is the function's name
                for h in self.r.fields(g.start, g.end, depth + 1):
                    if h.wire_type == LEN and h.number == 1:
                        name = self.r.text(h, _MAX_TEXT)
            elif g.number == 3:
                bodies.append(g)
        in_saver = name in saver.functions or bool(_SAVER_FUNCTION.fullmatch(name))
        for g in bodies:
            self.rate(self.node(g, depth + 1), in_saver, g.offset, name)

    def node(self, f: Field, depth: int) -> _Node:
        node = _Node()
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type != LEN:
                continue
            if g.number == 1:
                node.name = self.r.text(g, _MAX_TEXT)
            elif g.number == 2:
                node.op = self.r.text(g, _MAX_TEXT)
            elif g.number == 5:  # attr: map<string, AttrValue>
                key, value = "", None
                for h in self.r.fields(g.start, g.end, depth + 1):
                    if h.wire_type == LEN and h.number == 1:
                        key = self.r.text(h, _MAX_TEXT)
                    elif h.wire_type == LEN and h.number == 2:
                        value = h
                if value is not None:
                    self.attr_value(value, depth + 2, key, node)
        if not node.op or not _OP_NAME.fullmatch(node.op):
            raise NotThisFormat("a node without a valid op name")
        self.nodes += 1
        return node

    def attr_value(self, f: Field, depth: int, key: str, node: _Node) -> None:
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type != LEN:
                continue
            if g.number == 2:  # s
                node.strings.setdefault(key, []).append(self.r.text(g, _MAX_TEXT))
            elif g.number == 10:  # func: NameAttrList
                self.name_attr_list(g, depth + 1, node)
            elif g.number == 1:  # list: ListValue
                for h in self.r.fields(g.start, g.end, depth + 1):
                    if h.wire_type != LEN:
                        continue
                    if h.number == 2 and len(node.strings.get(key, ())) < 64:
                        node.strings.setdefault(key, []).append(self.r.text(h, _MAX_TEXT))
                    elif h.number == 9:
                        self.name_attr_list(h, depth + 2, node)

    def name_attr_list(self, f: Field, depth: int, node: _Node) -> None:
        for g in self.r.fields(f.start, f.end, depth):
            if g.wire_type != LEN:
                continue
            if g.number == 1:
                node.functions.append(self.r.text(g, _MAX_TEXT))
            elif g.number == 2:  # attr map: the values may name functions in turn
                for h in self.r.fields(g.start, g.end, depth + 1):
                    if h.wire_type == LEN and h.number == 2:
                        self.attr_value(h, depth + 2, "", node)

    # -- rating ----------------------------------------------------------------------------------
    def rate(self, node: _Node, in_saver: bool, at: int, function: str) -> None:
        where = f"node {node.name[:200]!r}" + (f" of function {function[:200]!r}" if function else "")
        self.rate_op(node.op, in_saver, at, where, node)
        for name in node.functions:
            if name in PYTHON_OPS or name in FILE_OPS or name in SAVER_OPS:
                self.rate_op(name, in_saver, at, f"{where} (as a function attribute)", None)

    def rate_op(self, op: str, in_saver: bool, at: int, where: str, node: _Node | None) -> None:
        if op in PYTHON_OPS:
            self.report(Severity.CRITICAL, "tf-python-op", op, f"{where} runs {op}, which calls a "
                        "Python function", at)
        elif op in FILE_OPS:
            severity, why = FILE_OPS[op]
            self.report(severity, "tf-file-op", op, f"{where} runs {op}: {why}", at)
        elif op in SAVER_OPS and not in_saver:
            severity, why = SAVER_OPS[op]
            self.report(severity, "tf-file-op", op, f"{where} runs {op}: {why}", at)
        elif op == "PrintV2" and node is not None:
            for stream in node.strings.get("output_stream", ()):
                if stream.startswith("file://"):
                    self.report(Severity.HIGH, "tf-file-op", op, f"{where} prints to "
                                f"{stream[:200]!r}: writes a file the graph chooses", at)

    # -- GraphDef and keras metadata -------------------------------------------------------------
    def frozen_graph(self, start: int, end: int) -> None:
        saver = _Saver()
        whole = Field(0, LEN, end - start, start, end, start)
        self.graph_def(whole, 0, saver)
        if self.nodes == 0:
            raise NotThisFormat("no graph nodes")

    def keras_metadata(self, start: int, end: int) -> None:
        """Collect the metadata JSON of every Keras object in a SavedMetadata message."""
        keras_objects = 0
        for f in self.r.fields(start, end, 0):
            if f.number != 1 or f.wire_type != LEN:
                continue  # unknown to SavedMetadata: the parser keeps it aside, so do we
            identifier, metadata = "", None
            for g in self.r.fields(f.start, f.end, 1):
                if g.wire_type == LEN and g.number == 4:
                    identifier = self.r.text(g, _MAX_TEXT)
                elif g.wire_type == LEN and g.number == 5:
                    metadata = g
            keras_objects += identifier.startswith("_tf_keras")
            if metadata is not None:
                self.keras_texts.append(metadata)
        if keras_objects == 0:
            raise NotThisFormat("no Keras objects")


def _run(data: Any, start: int, end: int, member: str, findings: Findings, budget: Budget | None,
         body: Callable[[_TfWalker], None]) -> bool:
    """Run ``body`` over the bytes; on success rate the Keras configs it collected, merge, True."""
    deadline = budget.deadline if budget is not None else time.monotonic() + _DEFAULT_TIMEOUT_S
    scratch = Findings()
    walker = _TfWalker(ProtoReader(data, deadline=deadline), scratch, member, start)
    try:
        body(walker)
    except (ProtobufError, NotThisFormat):
        return False
    except LimitReached:
        if walker.nodes:
            findings.merge(scratch)
        raise
    try:
        for f in walker.keras_texts:
            if f.end - f.start > _MAX_METADATA:
                raise LimitReached(f"Keras metadata larger than {_MAX_METADATA} bytes")
            scan_keras_config(bytes(data[f.start:f.end]), member, scratch, offset=f.start - start)
    finally:
        findings.merge(scratch)
    return True


def scan_saved_model(data: Any, start: int, end: int, member: str, findings: Findings, *,
                     budget: Budget | None = None) -> bool:
    """Scan ``data[start:end]`` as a ``SavedModel`` (``saved_model.pb``); False, with nothing
    reported, unless it is one: well-formed, with at least one meta graph and graph node.

    Raises :class:`LimitReached` (after reporting what was found) past the field or time bound.
    """
    return _run(data, start, end, member, findings, budget, lambda w: w.saved_model(start, end))


def scan_graph_def(data: Any, start: int, end: int, member: str, findings: Findings, *,
                   budget: Budget | None = None) -> bool:
    """Scan ``data[start:end]`` as a bare (frozen) ``GraphDef``; False unless it is one."""
    return _run(data, start, end, member, findings, budget, lambda w: w.frozen_graph(start, end))


def scan_keras_metadata(data: Any, start: int, end: int, member: str, findings: Findings, *,
                        budget: Budget | None = None) -> bool:
    """Scan ``data[start:end]`` as tf.keras' ``keras_metadata.pb`` (SavedMetadata): each
    object's JSON metadata is rated as a Keras config. False unless it is one."""
    return _run(data, start, end, member, findings, budget, lambda w: w.keras_metadata(start, end))

def scan_protobuf_model(data: Any, start: int, end: int, member: str, findings: Findings, *,
                        budget: Budget | None = None) -> str | None:
    """Try each protobuf model format in turn, most specific first; the format's name, or None.

    ONNX (``onnx``), SavedModel (``tf-savedmodel``), tf.keras metadata (``keras-metadata``),
    frozen GraphDef (``tf-graphdef``).
    """
    if scan_onnx(data, start, end, member, findings, budget=budget):
        return "onnx"
    if scan_saved_model(data, start, end, member, findings, budget=budget):
        return "tf-savedmodel"
    if scan_keras_metadata(data, start, end, member, findings, budget=budget):
        return "keras-metadata"
    if scan_graph_def(data, start, end, member, findings, budget=budget):
        return "tf-graphdef"
    return None
