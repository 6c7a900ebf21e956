"""The static script rules: functions over ``ScriptFacts`` that yield findings with fixes.

In: the facts of one script. Out: ``Finding``s located on the script's lines; where a safe
rewrite exists, ``repair`` is a ``rewrite-call`` with text edits (``evidence["fixes"]`` lists
alternative fixes). Every rule here is documented in ``docs/rules.md``.
"""

from __future__ import annotations

import ast
import os

from convlint.analyzers import rules as R
from convlint.analyzers.report.findings import Finding, Location, Repair
from convlint.analyzers.scripts import edits as E
from convlint.analyzers.scripts.facts import Conversion, ScriptFacts, Span, Sym

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


# minimum ONNX opsets, each verified against the pinned converters (see docs/rules.md#cl420)
TF2ONNX_MIN_OPSET = {  # (layer, interpolation) -> opset; tf2onnx writes an invalid Resize below it
    ("UpSampling2D", "bilinear"): 11, ("UpSampling2D", "bicubic"): 11, ("Resizing", "bilinear"): 11,
    ("Resizing", "bicubic"): 11, ("resize", "bilinear"): 11, ("resize", "bicubic"): 11,
}
TORCH_MIN_OPSET = {"align_corners": 11, "grid_sample": 16}
KERAS_BN_EPS, TORCH_BN_EPS = 1e-3, 1e-5


class Ctx:
    """What the rules share: the facts, an editor, and the finding factory."""

    def __init__(self, facts: ScriptFacts):
        self.f = facts
        self.ed = E.Editor(facts.text, facts.tree, facts.alone)
        self.base = os.path.dirname(os.path.abspath(facts.path)) if facts.path else None

    def finding(self, rule: R.Rule, node_or_span, message: str, *, edits=(), fix: str | None = None,
                alternatives=(), evidence=None, layer=None, hyperparameter=None) -> Finding:
        n = node_or_span if isinstance(node_or_span, Span) else Span.of(node_or_span)
        lines = self.ed.lines
        loc = Location(file=self.f.path, line=n.line, column=E.char_col(lines, n.line, n.col),
                       end_line=n.end_line, end_column=E.char_col(lines, n.end_line, n.end_col))
        ev = dict(evidence or {})
        # edits are safe by construction (see edits.Editor); apply() re-checks when they are used
        repair = Repair("rewrite-call", fix, None, False, None,
                        tuple(e.to_dict(self.f.path) for e in edits)) if fix and edits else None
        alts = [{"description": d, "edits": [e.to_dict(self.f.path) for e in es]}
                for d, es in alternatives if es]
        if alts:
            ev["fixes"] = alts
        return Finding(rule.code, rule.severity, rule.stage, message, layer=layer, location=loc,
                       hyperparameter=hyperparameter, evidence=ev, repair=repair)

    # --- what a conversion's source model holds ------------------------------------------
    def layers_of(self, conv: Conversion, framework: str) -> list[tuple[str, dict, object]]:
        """[(class, config, node)] of the model a conversion converts: the .keras file it was
        loaded from, else the layers of that framework built in the script."""
        src = conv.args[0].node if conv.args else None
        name = src.id if isinstance(src, ast.Name) else None
        m = self.f.models.get(name) if name else None
        if m is not None and m.origin == "load":
            from convlint.analyzers.models.keras_config import keras_layers  # reads a zip: lazily

            peeked = keras_layers(m.path, self.base)
            return [(c, cfg, m.span) for c, cfg in peeked] if peeked is not None else []
        return self.built(framework)

    def built(self, framework: str) -> list[tuple[str, dict, object]]:
        out = []
        for lb in self.f.layers:
            if not lb.call.startswith(framework + ".") and not (
                    framework == "keras" and lb.call.startswith("tensorflow.")):
                continue
            cfg = {k: a.value for k, a in lb.kwargs.items()}
            for i, a in enumerate(lb.args):
                cfg[f"#{i}"] = a.value
            out.append((lb.call.rsplit(".", 1)[-1], cfg, lb.node))
        return out


def _syms(v) -> list:
    vals = v if isinstance(v, list) else [v]
    return [x for x in vals if isinstance(x, Sym)]


# --- TFLite ------------------------------------------------------------------------------------
@check
def tflite_flags(ctx: Ctx):
    for c in ctx.f.conversions:
        if c.converter != "tflite":
            continue
        a = c.attrs
        opt = a.get("optimizations")
        types = a.get("target_spec.supported_types")
        fp16 = types is not None and any(s.endswith("float16") for s in _syms(types.value))
        optimizing = opt is not None and any(
            s.endswith("DEFAULT", "OPTIMIZE_FOR_SIZE", "OPTIMIZE_FOR_LATENCY")
            for s in _syms(opt.value)
        )
        if optimizing and opt is not None and "representative_dataset" not in a and not fp16:
            stmt = opt.node
            alt_f16 = [ctx.ed.insert_line_after(stmt, f"{c.var}.target_spec.supported_types = "
                                                f"[{_tf_name(ctx)}.float16]")]
            yield ctx.finding(
                R.TFLITE_DYNAMIC_RANGE,
                stmt,
                "Optimize.DEFAULT without a representative_dataset: TFLiteConverter stores weight "
                "tensors of more than 1024 elements as int8 (dynamic-range quantization), so the "
                "model's outputs drift from the source's",
                edits=[ctx.ed.delete_statement(stmt)],
                fix="remove the optimizations setting (float model)",
                alternatives=[("keep float16 weights instead (half size, small drift)", alt_f16)],
                evidence={"converter": "tflite", "conversion_line": c.span.line},
            )
        if fp16 and types is not None:
            dels = [ctx.ed.delete_statement(types.node)] + (
                [ctx.ed.delete_statement(opt.node)] if opt else []
            )
            yield ctx.finding(
                R.TFLITE_FLOAT16, types.node,
                "float16 target types: weights are stored as float16 and lose precision "
                "(about 3 significant digits)", edits=dels,
                fix="remove the float16 settings (float32 model)",
                evidence={"converter": "tflite", "conversion_line": c.span.line})
        for key in ("inference_input_type", "inference_output_type"):
            v = a.get(key)
            if v is not None and any(s.endswith("int8", "uint8", "int16") for s in _syms(v.value)):
                yield ctx.finding(
                    R.TFLITE_INT_IO, v.node,
                    f"{key} is {_syms(v.value)[0].name.rsplit('.', 1)[-1]}: callers must quantize "
                    "inputs (and dequantize outputs) with the tensor's scale and zero point; float "
                    "inference code fed to this model computes garbage",
                    edits=[ctx.ed.delete_statement(v.node)], fix=f"remove {key} (keep float I/O)",
                    evidence={"conversion_line": c.span.line})
        custom = a.get("allow_custom_ops")
        if custom is not None and custom.value is True:
            yield ctx.finding(R.TFLITE_EXTRA_RUNTIME, custom.node,
                              "allow_custom_ops=True: ops TFLite lacks are written as custom ops "
                              "that no stock runtime can run; the model fails to load on device")
        ops = a.get("target_spec.supported_ops")
        if ops is not None and any(s.endswith("SELECT_TF_OPS") for s in _syms(ops.value)):
            yield ctx.finding(R.TFLITE_EXTRA_RUNTIME, ops.node,
                              "SELECT_TF_OPS: the model needs the Flex delegate (TensorFlow ops "
                              "linked into the runtime); stock TFLite and TVM cannot run it")
        legacy = a.get("experimental_new_converter")
        if legacy is not None and legacy.value is False:
            yield ctx.finding(
                R.TFLITE_LEGACY,
                legacy.node,
                "experimental_new_converter=False selects the deprecated TOCO "
                "converter, which mis-converts control flow and newer ops",
                edits=[ctx.ed.delete_statement(legacy.node)],
                fix="use the MLIR converter (the default)",
            )


def _tf_name(ctx: Ctx) -> str:
    return next((k for k, v in ctx.f.aliases.items() if v == "tensorflow"), "tf")


# --- tf2onnx and Keras export to ONNX -----------------------------------------------------------
def _keras_min_opset(layers) -> tuple[int, str, object] | None:
    need = None
    for cls, cfg, node in layers:
        interp = cfg.get(
            "interpolation", "bilinear" if cls in ("Resizing", "resize") else "nearest"
        )
        if cls == "resize":
            interp = cfg.get("method", "bilinear")
        interp = interp.name.rsplit(".", 1)[-1].lower() if isinstance(interp, Sym) else interp
        v = TF2ONNX_MIN_OPSET.get((cls, interp))
        if v and (need is None or v > need[0]):
            need = (v, f"{cls}(interpolation='{interp}')", node)
    return need


def _gelu_name(v) -> bool:
    if isinstance(v, Sym):
        return v.name.rsplit(".", 1)[-1] == "gelu"
    if isinstance(v, dict):  # a serialized activation
        return v.get("config") == "gelu" or v.get("class_name") == "gelu"
    return v == "gelu"


def _exact_gelu(layers) -> tuple[str, object] | None:
    """Keras and TF GELUs default to the exact (erf) form; only approximate=True avoids it."""
    for cls, cfg, node in layers:
        if cls == "gelu" and cfg.get("approximate") is not True:
            return "gelu(approximate=False)", node
        if _gelu_name(cfg.get("activation")) or (cls == "Activation" and _gelu_name(cfg.get("#0"))):
            return f"{cls}(activation='gelu')", node
    return None


@check
def tf2onnx_model_ops(ctx: Ctx):
    for c in ctx.f.conversions:
        onnx_export = c.converter == "keras.export" and c.kw("format") == "onnx"
        if c.converter != "tf2onnx" and not onnx_export:
            continue
        layers = ctx.layers_of(c, "keras")
        key = "opset" if c.converter == "tf2onnx" else "opset_version"
        opset = c.kw(key)
        fault = tf2onnx_opset_fault(layers, opset)
        if fault:
            needs, op, new = fault
            yield ctx.finding(
                R.OPSET_TOO_LOW, c.arg_node(key).node if key in c.kwargs else c.span,
                opset_message(f"{key}={opset}", needs, op),
                edits=[ctx.ed.set_keyword(c.node, key, str(new))] if c.node is not None else (),
                fix=f"convert with {key}={new}",
                evidence={"opset": opset, "needs": needs, "op": op, "conversion_line": c.span.line})
        gelu = _exact_gelu(layers) if c.converter == "tf2onnx" else None
        if gelu:
            yield ctx.finding(R.TF2ONNX_EXACT_GELU, c.span, gelu_message("the model", gelu[0]),
                              evidence={"op": gelu[0], "conversion_line": c.span.line})


def tf2onnx_opset_fault(layers, opset) -> tuple[int, str, int] | None:
    """(the opset the layers need, the op that needs it, the opset to rewrite to) when ``opset``
    is too low for tf2onnx; shared by the Python rule and the command-line rule."""
    need = _keras_min_opset(layers)
    if need and isinstance(opset, int) and not isinstance(opset, bool) and opset < need[0]:
        return need[0], need[1], max(need[0], 13)
    return None


def opset_message(asked: str, needs: int, op: str) -> str:
    return (f"{asked} is too low for {op}: below opset {needs} tf2onnx writes a Resize that ONNX "
            "runtimes reject as an invalid graph")


def gelu_message(what: str, op: str) -> str:
    return (f"{what} uses exact GELU ({op}); tf2onnx converts it to an Erfc node, which is not an "
            "ONNX op, so onnxruntime rejects the model (INVALID_GRAPH). Build the model with "
            "gelu(approximate=True), or convert through TFLite (tf2onnx.convert.from_tflite)")


# --- torch.onnx.export ------------------------------------------------------------------------
_TORCH_STATEFUL = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "BatchNorm1d",
                   "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm")


@check
def torch_export(ctx: Ctx):
    for c in ctx.f.conversions:
        if c.converter != "torch.onnx":
            continue
        call = c.node
        training = c.kw("training")
        src = c.args[0].node if c.args else None
        name = src.id if isinstance(src, ast.Name) else None
        in_eval = name is not None and _in_eval(ctx, name, c.span.line)
        if isinstance(training, Sym) and (training.endswith("TRAINING") or
                                          (training.endswith("PRESERVE") and in_eval is False)):
            kw = c.kwargs["training"].node
            yield ctx.finding(
                R.TORCH_EXPORT_TRAINING,
                kw,
                f"training={'.'.join(training.name.rsplit('.', 2)[-2:])}: the ONNX graph computes "
                "dropout and batch statistics as in training, so its outputs differ from the "
                "model's inference outputs",
                edits=[ctx.ed.delete_keyword(call, kw)] if call is not None else (),
                fix="export in inference mode (drop the training argument)",
                evidence={"conversion_line": c.span.line},
            )
        elif in_eval is False and _has_stateful(ctx):
            stmt = c.stmt_node
            yield ctx.finding(
                R.TORCH_EXPORT_NOT_EVAL,
                c.span,
                f"{name} is exported without {name}.eval(): it is still in training mode. The "
                "exporter switches to eval for the export, but the script's own reference outputs "
                f"({name}(x)) use dropout and batch statistics and will not match the ONNX model",
                edits=[ctx.ed.insert_line_before(stmt, f"{name}.eval()")]
                if stmt is not None
                else (),
                fix=f"call {name}.eval() before exporting",
                evidence={"conversion_line": c.span.line},
            )
        if c.kw("export_params") is False:
            kw = c.kwargs["export_params"].node
            yield ctx.finding(
                R.TORCH_EXPORT_NO_PARAMS,
                kw,
                "export_params=False: the ONNX file has no weights; every runtime needs them fed "
                "as inputs, and loading it alone fails or computes with zeros",
                edits=[ctx.ed.delete_keyword(call, kw)] if call is not None else (),
                fix="export the parameters (drop export_params=False)",
                evidence={"conversion_line": c.span.line},
            )
        opset = c.kw("opset_version")
        need = _torch_min_opset(ctx)
        if need and isinstance(opset, int) and opset < need[0]:
            kw = c.kwargs["opset_version"].node
            yield ctx.finding(
                R.OPSET_TOO_LOW,
                kw,
                f"opset_version={opset} is too low for {need[1]} (needs opset {need[0]}): the "
                "exporter fails, or approximates the op",
                edits=[ctx.ed.set_keyword(call, "opset_version", str(max(need[0], 17)))]
                if call is not None
                else (),
                fix=f"export with opset_version={max(need[0], 17)}",
                evidence={
                    "opset": opset,
                    "needs": need[0],
                    "op": need[1],
                    "conversion_line": c.span.line,
                },
            )


def _in_eval(ctx: Ctx, name: str, line: int) -> bool | None:
    """True when the model was put in eval mode before ``line``; False when it certainly was
    not (built in the script, or train() after the last eval()); None when unknown."""
    evals = [n for n in ctx.f.eval_lines.get(name, []) if n < line]
    trains = [n for n in ctx.f.train_lines.get(name, []) if n < line]
    if evals and (not trains or max(evals) > max(trains)):
        return True
    if trains:
        return False
    m = ctx.f.models.get(name)
    return False if m is not None and m.origin == "build" and m.framework == "torch" else None


def _has_stateful(ctx: Ctx) -> bool:
    return any(lb.call.rsplit(".", 1)[-1] in _TORCH_STATEFUL for lb in ctx.f.layers) or any(
        m.framework == "torch" and m.origin == "build" and not ctx.f.layers
        for m in ctx.f.models.values()
    )


def _torch_min_opset(ctx: Ctx):
    need = None
    for lb in ctx.f.layers:
        short = lb.call.rsplit(".", 1)[-1]
        mode = lb.kwargs.get("mode").value if "mode" in lb.kwargs else None
        v = None
        if (
            short in ("Upsample", "interpolate")
            and mode in ("bilinear", "bicubic", "trilinear")
            and "align_corners" in lb.kwargs
            and lb.kwargs["align_corners"].value is True
        ):
            v, what = (
                TORCH_MIN_OPSET["align_corners"],
                f"{short}(mode='{mode}', align_corners=True)",
            )
        elif short == "grid_sample":
            v, what = TORCH_MIN_OPSET["grid_sample"], "grid_sample"
        if v and (need is None or v > need[0]):
            need = (v, what)
    return need
