"""A minimal reader for OpenVINO IR (v10/v11) files: the graph from the .xml and the constants from the .bin.

Enough to pull trained weights out of an IR without the OpenVINO runtime; openvino itself is only needed to
*run* the IR (parity tests, benchmarks).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_DTYPES = {"f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32, "u8": np.uint8}


@dataclass
class IRNode:
    """One layer of the IR graph; `inputs` are the ids of the producing layers, in port order."""

    id: int
    name: str
    type: str
    inputs: list[int] = field(default_factory=list)
    value: np.ndarray | None = None  # constants only


@dataclass
class IRGraph:
    """Nodes by id plus a name index."""

    nodes: dict[int, IRNode]

    def by_name(self, name: str) -> IRNode:
        for node in self.nodes.values():
            if node.name == name:
                return node
        raise KeyError(f"no IR node named {name!r}")

    def const(self, name: str) -> np.ndarray:
        node = self.by_name(name)
        if node.value is None:
            raise KeyError(f"IR node {name!r} is a {node.type}, not a constant")
        return node.value

    def consumers(self, node_id: int) -> list[IRNode]:
        return [n for n in self.nodes.values() if node_id in n.inputs]

    def input_nodes(self, node: IRNode) -> list[IRNode]:
        return [self.nodes[i] for i in node.inputs]

    def of_type(self, type_: str) -> list[IRNode]:
        return sorted((n for n in self.nodes.values() if n.type == type_), key=lambda n: n.id)


def read_ir(xml_path: str | Path, bin_path: str | Path | None = None) -> IRGraph:
    """Parse an IR .xml and its .bin into an IRGraph with constants as numpy arrays (copies)."""
    xml_path = Path(xml_path)
    bin_path = Path(bin_path) if bin_path else xml_path.with_suffix(".bin")
    root = ET.parse(xml_path).getroot()
    blob = bin_path.read_bytes()
    nodes: dict[int, IRNode] = {}
    for layer in root.find("layers"):
        node = IRNode(id=int(layer.get("id")), name=layer.get("name"), type=layer.get("type"))
        if node.type == "Const":
            data = layer.find("data")
            dtype = np.dtype(_DTYPES[data.get("element_type")])
            shape = [int(s) for s in data.get("shape").split(",")] if data.get("shape") else []
            count = int(data.get("size")) // dtype.itemsize
            node.value = np.frombuffer(blob, dtype=dtype, count=count, offset=int(data.get("offset"))).reshape(shape).copy()
        nodes[node.id] = node
    edges = sorted(((int(e.get("to-layer")), int(e.get("to-port")), int(e.get("from-layer"))) for e in root.find("edges")))
    for to_layer, _port, from_layer in edges:
        nodes[to_layer].inputs.append(from_layer)
    return IRGraph(nodes)
