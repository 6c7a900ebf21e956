"""Re-quantization: the verified repair of an int8 quantization fault (CL205).

A full-integer target whose layers lose far more than their quantization step is repaired by
quantizing the float source again, with the user's calibration data (``--calibration``), and
keeping it quantized: first as it was (calibration that covers the inputs' range cures clipping),
then with the layers at fault kept in float (TFLite selective quantization through
``QuantizationDebugOptions(denylisted_nodes=...)``; ``nodes_to_exclude`` for onnxruntime's
``quantize_static``). Each candidate is judged by the int8 check itself (``verify``: within int8
noise or not); a candidate that moves the fault to another layer (an outlier range passed on to
the layer that reads it) grows its keep-in-float set by the layers that check names, for a few
rounds. The first candidate within int8 noise is kept, written to a new file, and reported with
the accuracy it recovers against the size it costs. Converting the whole model back to float is a
different trade: it is named as an alternative, never made the repair.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convlint.analyzers import rules as R
from convlint.analyzers.report.findings import Repair

ROUNDS = 4  # keep-in-float rounds: each adds the layers the previous candidate still loses
MAX_KEPT_SHARE = 1 / 3  # never keep more than this share of the model's layers in float:
#                           beyond it the repair is no longer a quantized model


def calibration_samples(path: str, source, target, diff) -> list[dict]:
    """The calibration data as samples keyed by the source's input names (as ``--inputs``)."""
    from convlint.analyzers.differential.inputs import load_inputs, plan_inputs

    plan = plan_inputs(source.input_specs(), target.input_specs(), diff.input_shapes)
    return load_inputs(path, plan, scale=diff.scale, mean=diff.mean, std=diff.std,
                       flag="--calibration")


def _tflite(source, target, samples: list, keep: list) -> bytes:
    """A full-integer TFLite conversion of ``source`` calibrated on ``samples``, with the tensors
    ``keep`` (target tensor names, which TFLiteConverter gives again) left in float."""
    from convlint.analyzers.models.tf_common import import_tf

    tf = import_tf()
    source.load()
    if source.format == "keras":
        conv = tf.lite.TFLiteConverter.from_keras_model(source.model)
    else:
        conv = tf.lite.TFLiteConverter.from_saved_model(source.path)
    names = [s.name for s in source.input_specs()]

    def representative():
        for s in samples:
            yield [s[n] for n in names]

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    io_types = {str(s.dtype) for s in target.input_specs()}
    if io_types <= {"int8", "uint8"}:  # the target took integer inputs and outputs
        conv.inference_input_type = conv.inference_output_type = (
            tf.int8 if io_types == {"int8"} else tf.uint8)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if not keep:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            return conv.convert()
        opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(keep))
        dbg = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=representative, debug_options=opts)
        return dbg.get_nondebug_quantized_model()


def _onnx(source, samples: list, keep: list, out: str, per_channel: bool) -> None:
    """onnxruntime's ``quantize_static`` (QDQ) of the float ONNX source, with ``keep`` (node names,
    which the QDQ model shares with its float source) in ``nodes_to_exclude``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(samples)

        def get_next(self):
            return next(self.it, None)

    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" warnings: quiet output
    try:
        quantize_static(source.path, out, Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, nodes_to_exclude=list(keep))
    finally:
        root.setLevel(level)


def _per_channel(path: str) -> bool:
    import onnx

    m = onnx.load(path, load_external_data=False)
    return any(n.op_type == "DequantizeLinear" and any(
        i.name == n.input[1] and len(i.dims) == 1 and i.dims[0] > 1 for i in m.graph.initializer)
        for n in m.graph.node)


ELEMENTWISE = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish",
               "Elu", "Selu", "PRelu", "Gelu", "Softplus", "MaxPool"}


def _node_count(path: str) -> int:
    import onnx

    g = onnx.load(path, load_external_data=False).graph
    return sum(n.op_type not in ("Constant", "Identity") for n in g.node)


def _chain(path: str, nodes: list) -> list:
    """The nodes of the float ONNX model whose tensors carry the same range as the outputs of
    ``nodes``: back through element-wise activations and max-pooling to the node that computes
    it, and on to the nodes that read it (through such ops too). Keeping only one of them in float
    leaves the range quantized at the others' QDQ pairs."""
    import onnx

    g = onnx.load(path, load_external_data=False).graph
    producer = {o: n for n in g.node for o in n.output}
    readers: dict = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    chain = [n for n in g.node if n.name in nodes]
    for n in list(chain):  # back to the node that computes the range
        while n.op_type in ELEMENTWISE and n.input and n.input[0] in producer:
            n = producer[n.input[0]]
            chain.append(n)
    found = [n.name for n in chain]
    todo = list(chain)
    while todo:  # on to the nodes that read it, through range-carrying ops
        for o in todo.pop().output:
            for r in readers.get(o, []):
                if r.name and r.name not in found:
                    found.append(r.name)
                    if r.op_type in ELEMENTWISE:
                        todo.append(r)
    return [x for x in found if x not in nodes]


def _keep_names(faults: list, target_format: str) -> list:
    """What to keep in float for these CL205 findings: the tensor (TFLite) or the node (ONNX)."""
    out = []
    for f in faults:
        name = f.location.target_node if target_format == "tflite" else f.layer
        if name and name not in out:
            out.append(name)
    return out


def candidates_possible(source, target) -> bool:
    return (target.format == "tflite" and source.format in ("keras", "savedmodel")) or (
        target.format == "onnx" and source.format == "onnx")


def search(source, target, faults: list, report_before, popts, progress: Callable,
           verify: Callable) -> tuple[Repair | None, dict]:
    """``(repair, evidence)``: the first re-quantization within int8 noise, written to a new file,
    or ``None`` with what was tried. ``verify(source, path, popts)`` is the int8 check.

    Candidates, in order: the target's own settings recalibrated; for a per-tensor QDQ target,
    per-channel weights (per-tensor scales crush the small channels of depthwise kernels); then,
    on the better of those, the layers at fault kept in float, growing by the layers each
    candidate still loses (or, for ONNX, the readers of a kept layer), for ``ROUNDS`` rounds.
    Each round adds the faults root cause first, each with the nodes that carry its range; a
    fault whose group would pass ``MAX_KEPT_SHARE`` is left out, the others still added."""
    from convlint.analyzers.repair.weights import repaired_path
    from convlint.analyzers.report.io import write_new_file

    samples = calibration_samples(popts.calibration, source, target, popts.diff)
    # what the kept layers are counted against: the float graph's nodes (ONNX, whose names the
    # keep set holds) or the target's quantized tensors (TFLite, whose tensor names it holds)
    layers = (_node_count(source.path) if target.format == "onnx"
              else len(target.activation_quantization() or {}))
    per_channel = target.format == "tflite" or _per_channel(target.path)
    suffix = ".tflite" if target.format == "tflite" else ".onnx"
    tried: list = []
    with tempfile.TemporaryDirectory(prefix="convlint-requantize-") as d:

        def attempt(keep: list, pc: bool) -> tuple[Any, str]:
            what = ("recalibrated" if not keep else "with " + ", ".join(keep) + " kept in float")
            progress(f"repair search: re-quantizing {what}" + ("" if pc == per_channel else
                                                             ", per-channel weights"))
            path = str(Path(d) / f"candidate{len(tried)}{suffix}")
            row: dict = {"keep_in_float": list(keep), "per_channel": pc}
            tried.append(row)
            try:
                if target.format == "tflite":
                    Path(path).write_bytes(_tflite(source, target, samples, keep))
                else:
                    _onnx(source, samples, keep, path, pc)
                r = verify(source, path, popts)
            except Exception as e:  # noqa: BLE001 - a candidate the converter refuses is evidence
                row["error"] = " ".join(str(e).split())[:200]
                return None, path
            row.update(verdict=r.verdict, max_abs=r.metrics.get("max_abs"),
                       top1_agreement=r.metrics.get("top1_agreement"),
                       bytes=Path(path).stat().st_size)
            return r, path

        def done(r, path, keep, pc):
            out = repaired_path(target.path, popts.output)
            write_new_file(out, Path(path).read_bytes(), protect=(target.path, source.path))
            return _repair(target, keep, pc != per_channel, report_before, r, out, tried)

        firsts: list[tuple[bool, Any, str]] = [(per_channel, *attempt([], per_channel))]
        if firsts[0][1] is not None and firsts[0][1].verdict != "equivalent" and not per_channel:
            firsts.append((True, *attempt([], True)))
        ok = [(pc, r, p) for pc, r, p in firsts if r is not None]
        for pc, r, path in ok:
            if r.verdict == "equivalent":
                return done(r, path, [], pc), {"tried": tried}
        if not ok:
            return None, {"tried": tried}
        pc, r, _ = min(ok, key=lambda t: t[1].metrics.get("max_abs") or float("inf"))
        keep: list = []
        named = [*faults, *[f for f in r.findings if f.rule == R.INT8_FAULT.code]]
        bound = max(1, MAX_KEPT_SHARE * layers)
        for _ in range(ROUNDS):
            more: list = []
            for n in _keep_names(named, target.format):  # root cause first, greedily
                if n in keep or n in more:
                    continue
                group = [n]
                if target.format == "onnx":
                    # the range a kept layer's output carries stays quantized at the QDQ pairs
                    # of the nodes that pass it on and read it
                    group += [c for c in _chain(source.path, [n]) if c not in keep + more + [n]]
                if len(keep) + len(more) + len(group) <= bound:  # a group over the bound waits
                    more += group
            if not more:
                break
            keep += more
            r, path = attempt(keep, pc)
            if r is None:
                break
            if r.verdict == "equivalent":
                return done(r, path, keep, pc), {"tried": tried}
            named = [f for f in r.findings if f.rule == R.INT8_FAULT.code]
    return None, {"tried": tried}


def _repair(target, keep: list, to_per_channel: bool, before, after, out: str,
            tried: list) -> Repair:
    size0, size1 = Path(target.path).stat().st_size, Path(out).stat().st_size
    m0, m1 = before.metrics, after.metrics
    if target.format == "tflite":
        call = ("converter.representative_dataset = <the calibration data>" if not keep else
                "tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset="
                "representative_dataset, debug_options=tf.lite.experimental."
                f"QuantizationDebugOptions(denylisted_nodes={keep!r})).get_nondebug_quantized_model()")
    else:
        args = (["per_channel=True"] if to_per_channel else []) + (
            [f"nodes_to_exclude={keep!r}"] if keep else [])
        call = "quantize_static(model, out, <the calibration data>" + "".join(
            ", " + a for a in args) + ")"
    what = ("re-quantize with the calibration data" if not keep else
            f"re-quantize with {len(keep)} layer(s) kept in float") + (
        ", per-channel weights" if to_per_channel else "")
    desc = (f"{what}: {call}; max_abs {m0.get('max_abs') or 0:.3g} -> {m1.get('max_abs') or 0:.3g}"
            f", top-1 agreement {m0.get('top1_agreement')} -> {m1.get('top1_agreement')}, size "
            f"{size0:,} -> {size1:,} bytes ({(size1 - size0) / max(size0, 1):+.0%}); the model "
            "stays quantized (converting it wholly to float is another trade, not this repair)")
    metrics = {"max_abs": m1.get("max_abs"), "top1_agreement": m1.get("top1_agreement"),
               "verdict": after.verdict, "bytes_before": size0, "bytes_after": size1,
               "keep_in_float": list(keep), "per_channel": to_per_channel or None,
               "tried": tried}
    return Repair("rewrite-call", desc, out, True, metrics)
