"""Re-conversion: convert the source again with other settings of the converter that made the
target. Stage 1 (``explain_quantization``) names the TFLiteConverter setting that quantized the
weights; the repair search (``search``) keeps the first conversion that makes the pair equivalent.

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
from convlint.analyzers.report.findings import ConversionReport, Finding, Location, Repair


def candidates(source, target, producer: str | None) -> list:
    """``[(setting, call, suffix, convert)]``: ``convert(path)`` writes the converted model."""
    out = []
    if (
        source.format in ("keras", "savedmodel")
        and target.format == "onnx"
        and producer == "tf2onnx"
    ):
        opset = (target.metadata().get("opset") or {}).get("ai.onnx")
        for o in (13, 15, 17, 18):
            if o != opset:
                out.append(
                    (
                        f"tf2onnx opset {o}",
                        f"tf2onnx.convert.from_keras(model, opset={o}, ...)",
                        ".onnx",
                        lambda p, o=o: _tf2onnx(source, p, o),
                    )
                )
        out.append(
            (
                "tf2onnx through TFLite",
                "tf2onnx.convert.from_tflite(<TFLiteConverter float "
                "conversion of the model>, opset=17, ...)",
                ".onnx",
                lambda p: _tf2onnx_tflite(source, p),
            )
        )
    if (
        source.format == "torch-exported"
        and target.format == "onnx"
        and producer == "torch.onnx.export"
    ):
        for dynamo, o in ((False, 17), (True, 18), (False, 13)):
            out.append(
                (
                    f"torch.onnx.export dynamo={dynamo} opset {o}",
                    f"torch.onnx.export(model.eval(), args, path, dynamo={dynamo}, "
                    f"opset_version={o})",
                    ".onnx",
                    lambda p, d=dynamo, o=o: _torch_onnx(source, p, d, o),
                )
            )
    if source.format in ("onnx", "torch-exported") and target.format == "openvino" \
            and producer == "openvino":
        out.append(("openvino.save_model compress_to_fp16=False",
                    "ov.save_model(ov.convert_model(model), path, compress_to_fp16=False)  # the "
                    "default compresses every float weight to float16", ".xml",
                    lambda p: _openvino(source, p)))
    if source.format in ("keras", "savedmodel") and target.format == "tflite":
        out.append(
            (
                "TFLiteConverter float",
                "converter = tf.lite.TFLiteConverter.from_keras_model(model)",
                ".tflite",
                lambda p: Path(p).write_bytes(_tflite(source)),
            )
        )
    return out


def _judge(source, convert, path: str, popts) -> dict:
    """Convert into ``path`` and check the pair natively (no TVM): ``{"verdict", "max_abs"}``,
    or ``{"error"}`` when the converter (or the converted model) fails, which is evidence too."""
    from convlint.analyzers.differential.check import check_pair
    from convlint.analyzers.models import open_model

    try:
        convert(path)
        with open_model(path, unsafe_load=popts.unsafe_load) as cand:
            r = check_pair(source, cand, replace(popts.diff, use_tvm=False))
    except Exception as e:  # noqa: BLE001 - a setting the converter refuses is evidence
        return {"error": " ".join(str(e).split())[:200]}
    return {"verdict": r.verdict, "max_abs": r.metrics.get("max_abs")}


def _keep(source, target, path: str, popts, verify) -> tuple[str, ConversionReport]:
    """Copy the kept conversion to the repair's output (a new file) and verify it with the full
    check (TVM included): ``(output, report)``."""
    from convlint.analyzers.repair.weights import repaired_path
    from convlint.analyzers.report.io import write_new_file

    out = repaired_path(target.path, popts.output)
    if path.endswith(".xml"):  # an OpenVINO IR: its weights go beside it, named after it
        write_new_file(
            str(Path(out).with_suffix(".bin")),
            Path(path).with_suffix(".bin").read_bytes(),
            protect=(target.path, source.path, str(Path(target.path).with_suffix(".bin"))),
        )
    write_new_file(out, Path(path).read_bytes(), protect=(target.path, source.path))
    return out, verify(source, out, popts)


def search(source, target, findings: list, popts, progress, verify) -> list:
    """``findings`` plus a CL403 finding whose repair is the first re-conversion that verifies."""
    from convlint.analyzers.differential.check import target_producer
    from convlint.analyzers.pipeline import _after

    producer = target_producer(target)
    cands = candidates(source, target, producer)
    if not cands:
        return findings
    tried = {}
    with tempfile.TemporaryDirectory(prefix="convlint-reconvert-") as d:
        for i, (setting, call, suffix, convert) in enumerate(cands):
            progress(f"repair search: re-converting with {setting}")
            path = str(Path(d) / f"candidate{i}{suffix}")
            tried[setting] = _judge(source, convert, path, popts)
            if tried[setting].get("verdict") != "equivalent":
                continue
            out, full = _keep(source, target, path, popts, verify)
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


def explain_quantization(source, target, loc, popts, progress, verify) -> list:
    """Stage 1 for a Keras -> TFLite pair whose weights came out quantized or float16: convert
    the source with each TFLiteConverter setting, name the setting that reproduces the fault and
    the one that removes it (CL401), with that conversion as the repair when asked."""
    quantized = [
        f for f in loc.findings if f.rule in (R.WEIGHTS_QUANTIZED.code, R.WEIGHTS_FP16.code)
    ]
    if not quantized or target.format != "tflite" or source.format not in ("keras", "savedmodel"):
        return []
    from convlint.analyzers.models.convert import TFLITE_CALLS, TFLITE_SETTINGS, tflite_from
    from convlint.analyzers.pipeline import _after

    results, paths = {}, {}
    with tempfile.TemporaryDirectory(prefix="convlint-reconvert-") as d:
        for name, kw in TFLITE_SETTINGS.items():
            progress(f"stage 1: re-converting with {name}")
            paths[name] = str(Path(d) / f"{name.replace(' ', '_').replace('+', 'and')}.tflite")
            results[name] = _judge(
                source,
                lambda p, kw=kw: Path(p).write_bytes(tflite_from(source, **kw)),
                paths[name],
                popts,
            )
        clean = [n for n, v in results.items() if v.get("verdict") == "equivalent"]
        faulty = [n for n, v in results.items() if v.get("verdict") == "divergent"]
        cause = next((n for n in faulty if n != "float"), None)
        if not clean or not cause:
            return []
        repair = Repair("rewrite-call", f"convert without the setting: {TFLITE_CALLS[clean[0]]}",
                        None, False, None)
        if popts.repair:
            out, r = _keep(source, target, paths[clean[0]], popts, verify)
            repair = replace(repair, output=out, verified=r.verdict == "equivalent",
                             metrics_after=_after(r))
    layers = ", ".join(str(f.layer) for f in quantized)
    msg = (f"TFLiteConverter with {cause} quantized the weights of {layers}; re-converting with "
           f"{clean[0]} gives an equivalent model")
    if cause == "Optimize.DEFAULT":
        msg += (" (Optimize.DEFAULT without a representative_dataset stores weight tensors of more "
                "than 1024 elements as int8)")
    return [Finding(R.CONVERTER_QUANTIZED.code, "error", "conversion-tool", msg,
                    layer=quantized[0].layer,
                    location=Location(target_node=quantized[0].location.target_node),
                    evidence={"converter": loc.tool, "reconversions": results}, repair=repair)]


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


def _openvino(source, path: str) -> None:
    """ONNX or a torch.export program -> OpenVINO IR with float weights kept float32."""
    import openvino as ov

    source.load()
    model = ov.convert_model(source.path if source.format == "onnx" else source.ep)
    ov.save_model(model, path, compress_to_fp16=False)


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
