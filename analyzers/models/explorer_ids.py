"""The node ids Google Model Explorer's adapters give a model's nodes, for ``--model-explorer``.

convlint names a converted model's nodes by their output tensors and a torch source's by its
modules (``stem.0``, ``forward.add``); Model Explorer names them otherwise, and its node data and
sync mapping match node ids only (checked in Model Explorer 0.1.34 with model-explorer-onnx 0.4.2,
tests/test_model_explorer.py):

- ONNX (model-explorer-onnx): a node by its ONNX node name; a graph input as ``[value] <name>``.
  The adapter tags outputs with ``__tensor_tag``, not the ``tensor_name`` Model Explorer matches,
  so a tensor name alone colours nothing.
- torch.export ``.pt2`` (Model Explorer's built-in adapter): each FX node by its name
  (``conv2d_1``, ``batch_norm_1``), a user input by its placeholder's name.
- TFLite (the built-in ``builtin_tflite_flatbuffer`` adapter): the main subgraph's op ``i`` is node
  ``"i"``; its graph inputs are one ``GraphInputs`` node, numbered after the ops (``"<op count>"``).
  A tensor name ``a;b`` is the one op's name, so all its parts map to that op's id.
- Keras ``.keras``: Model Explorer 0.1.34 has no adapter for it (no ``fileExts`` names it), so a
  Keras source keeps its layer names (nothing to match them against).

In: a model path and convlint's format name. Out: {convlint's name: [Model Explorer node ids]};
empty for any other format, or when the model cannot be read (the files then keep convlint's
names).
"""

from __future__ import annotations

from typing import Any


def node_ids(path: str, fmt: str | None) -> dict[str, list[str]]:
    try:
        if fmt == "onnx":
            return _onnx(path)
        if fmt == "torch-exported":
            return _exported(path)
        if fmt == "tflite":
            return _tflite(path)
    except Exception:  # a model the check itself could read: a failure here only loses the ids
        return {}
    return {}


def _onnx(path: str) -> dict[str, list[str]]:
    import onnx

    g = onnx.load(path, load_external_data=False).graph
    init = {i.name for i in g.initializer}
    ids: dict[str, list[str]] = {
        i.name: [f"[value] {i.name}"] for i in g.input if i.name not in init
    }
    for n in g.node:
        if n.name:
            for o in n.output:
                if o:
                    ids[o] = [n.name]
    return ids


def _exported(path: str) -> dict[str, list[str]]:
    import torch

    from convlint.analyzers.models.torch_runner import _layer_of

    ep = torch.export.load(path)
    user = set(ep.graph_signature.user_inputs)
    ids: dict[str, list[str]] = {}
    for n in ep.graph.nodes:
        if n.op == "placeholder" and n.name in user:
            ids[str(n.name)] = [str(n.name)]
        elif n.op == "call_function":
            ids.setdefault(_layer_of(n)[0], []).append(str(n.name))
    return ids


def _tflite(path: str) -> dict[str, list[str]]:
    from pathlib import Path

    import tflite

    g: Any = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0).Subgraphs(0)

    def name(t: int) -> str:
        return (g.Tensors(t).Name() or b"").decode()

    ids: dict[str, list[str]] = {}
    for i in range(g.OperatorsLength()):
        for t in g.Operators(i).OutputsAsNumpy():
            if t >= 0:
                for n in dict.fromkeys([name(t)] + [p for p in name(t).split(";") if p]):
                    ids.setdefault(n, []).append(str(i))
    for t in g.InputsAsNumpy():
        ids.setdefault(name(t), [str(g.OperatorsLength())])
    return ids
