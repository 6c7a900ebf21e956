"""Repair by re-conversion: convert the source again with other settings of the converter that
made the target, and keep the first conversion that makes the pair equivalent.

Candidates come from the converter the target's metadata names, for every converter convlint can
run here: tf2onnx (other opsets, and through TFLite), torch.onnx.export (TorchScript-based and
dynamo exporters, other opsets) and TFLiteConverter (float). Each candidate is checked natively
first (no TVM: milliseconds to seconds); only the one kept is written to the output (a new file)
and verified with the full check. The finding names the setting that removes the fault (stage
``conversion-tool``) with the converter call to use.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from convlint.analyzers import rules as R
from convlint.analyzers.report.findings import Finding, Location, Repair


def candidates(source, target, producer: str | None) -> list:
    """``[(setting, call, suffix, convert)]``: ``convert(path)`` writes the converted model."""
    out = []
    if source.format in ("keras", "savedmodel") and target.format == "onnx" and producer == "tf2onnx":
        opset = (target.metadata().get("opset") or {}).get("ai.onnx")
        for o in (13, 15, 17, 18):
            if o != opset:
                out.append((f"tf2onnx opset {o}", f"tf2onnx.convert.from_keras(model, opset={o}, ...)",
                            ".onnx", lambda p, o=o: _tf2onnx(source, p, o)))
        out.append(("tf2onnx through TFLite", "tf2onnx.convert.from_tflite(<TFLiteConverter float "
                    "conversion of the model>, opset=17, ...)", ".onnx", lambda p: _tf2onnx_tflite(source, p)))
    if source.format == "torch-exported" and target.format == "onnx" and producer == "torch.onnx.export":
        for dynamo, o in ((False, 17), (True, 18), (False, 13)):
            out.append((f"torch.onnx.export dynamo={dynamo} opset {o}",
                        f"torch.onnx.export(model.eval(), args, path, dynamo={dynamo}, opset_version={o})",
                        ".onnx", lambda p, d=dynamo, o=o: _torch_onnx(source, p, d, o)))
    if source.format in ("keras", "savedmodel") and target.format == "tflite":
        out.append(("TFLiteConverter float", "converter = tf.lite.TFLiteConverter.from_keras_model(model)",
                    ".tflite", lambda p: Path(p).write_bytes(_tflite(source))))
    return out


def search(source, target, findings: list, popts, progress, verify) -> list:
    """``findings`` plus a CL403 finding whose repair is the first re-conversion that verifies."""
    from convlint.analyzers.differential.check import check_pair, target_producer
    from convlint.analyzers.models import open_model
    from convlint.analyzers.repair.weights import repaired_path
    from convlint.analyzers.report.io import write_new_file

    producer = target_producer(target)
    cands = candidates(source, target, producer)
    if not cands:
        return findings
    native = replace(popts.diff, use_tvm=False)
    tried = {}
    with tempfile.TemporaryDirectory(prefix="convlint-reconvert-") as d:
        for i, (setting, call, suffix, convert) in enumerate(cands):
            progress(f"repair search: re-converting with {setting}")
            path = str(Path(d) / f"candidate{i}{suffix}")
            try:
                convert(path)
                with open_model(path, unsafe_load=popts.unsafe_load) as cand:
                    r = check_pair(source, cand, native)
            except Exception as e:  # noqa: BLE001 - a setting the converter refuses is evidence
                tried[setting] = {"error": " ".join(str(e).split())[:200]}
                continue
            tried[setting] = {"verdict": r.verdict, "max_abs": r.metrics.get("max_abs")}
            if r.verdict != "equivalent":
                continue
            from convlint.analyzers.pipeline import _after

            out = repaired_path(target.path, popts.output)
            write_new_file(out, Path(path).read_bytes(), protect=(target.path, source.path))
            full = verify(source, out, popts)
            layer = _layer(findings)
            f = Finding(R.CONVERTER_SETTING.code, "error", "conversion-tool",
                        f"re-converting the source with {setting} gives an equivalent model: the "
                        f"setting the target was made with ({producer}) is what changed it",
                        layer=layer, location=Location(source_node=layer),
                        evidence={"converter": producer, "setting": setting, "tried": tried},
                        repair=Repair("rewrite-call", f"convert with {setting}: {call}", out,
                                      full.verdict == "equivalent", _after(full)))
            return [*findings, f]
    return findings


def _layer(findings) -> str | None:
    for rule in (R.TARGET_NODE_REJECTED.code, R.FIRST_DIVERGENT.code):
        f = next((x for x in findings if x.rule == rule), None)
        if f is not None:
            return f.layer
    return None


def _signature(source):
    from convlint.analyzers.models.tf_common import import_tf

    tf = import_tf()
    return tuple(tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in source.input_specs())


def _tf2onnx(source, path: str, opset: int) -> None:
    import tf2onnx

    from convlint.analyzers.models.tf_common import import_tf

    tf = import_tf()
    source.load()
    sig = _signature(source)
    if source.format == "keras":
        tf2onnx.convert.from_keras(source.model, input_signature=sig, opset=opset, output_path=path)
    else:
        fn = tf.saved_model.load(source.path).signatures["serving_default"]
        tf2onnx.convert.from_function(tf.function(lambda *x: fn(*x)), input_signature=sig,
                                      opset=opset, output_path=path)


def _tflite(source) -> bytes:
    from convlint.analyzers.models.convert import tflite_from

    return tflite_from(source)


def _tf2onnx_tflite(source, path: str) -> None:
    import tf2onnx

    with tempfile.NamedTemporaryFile(suffix=".tflite") as t:
        t.write(_tflite(source))
        t.flush()
        tf2onnx.convert.from_tflite(t.name, opset=17, output_path=path)


def _torch_onnx(source, path: str, dynamo: bool, opset: int) -> None:
    import contextlib
    import io
    import logging

    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # its registry warns of torchvision

    from convlint.analyzers.differential.inputs import plan_inputs, random_inputs

    source.load()
    plan = plan_inputs(source.input_specs(), source.input_specs(), {})
    x = random_inputs(plan, 1, 0)[0]
    args = tuple(torch.from_numpy(v) for v in x.values())
    kw = {"dynamo": dynamo, "opset_version": opset}
    if dynamo:
        kw["external_data"] = False
        kw["verbose"] = False
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
            torch.onnx.export(source.ep, args, path, **kw)
        return
    # the TorchScript-based exporter calls train(False), which the module an ExportedProgram
    # unlifts refuses: a plain Module calls it without registering it as a child
    inner = source.ep.module()
    for p in inner.parameters():
        p.requires_grad_(False)

    class Unlifted(torch.nn.Module):
        def forward(self, *xs):
            return inner(*xs)

    torch.onnx.export(Unlifted(), args, path, **kw)
