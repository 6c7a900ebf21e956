"""Localization through a crash: the target cannot be loaded or run in its runtime.

The node the runtime names is cut out of the target together with everything downstream of it;
the part that does run is captured on the same inputs as the source and aligned with it (by
values, not names), and the first source layer the runnable part no longer reproduces is the one
the failing node came from. A source layer whose name is a scope of the failing node's name
confirms it. Stage ``conversion-tool``: the converter wrote a node the runtime rejects.

Repairs, each written to a new file and verified by checking the pair again: the refused node
rewritten into an equivalent form the runtime accepts (``repair.legalize``: a non-standard op by
its standard equivalent, an attribute or rank the kernel refuses by an exact rewrite), then, for
ONNX, the re-conversion search (``repair.reconvert``); for a torch target (TorchScript or
torch.export) the negative indices of a gather wrapped in its graph.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from convlint.analyzers import rules as R
from convlint.analyzers.report.findings import Finding, Location, Repair

log = logging.getLogger(__name__)


def split_op(op: str) -> tuple | None:
    """``("name", "OpType")`` from a runtime's ``"name (OpType)"``, or None."""
    m = re.match(r"^(.*) \((\w+)\)$", op or "")
    return (m.group(1), m.group(2)) if m else None


def failing_nodes(model, op: str | None, loads=None) -> list:
    """The target nodes a runtime's message names (by node name, or by op type); when it names
    none, the first node without which the graph loads, found by bisecting the node order with
    ``loads(model) -> bool``."""
    if not op:
        return _bisect(model, loads) if loads else []
    name, op_type = split_op(op) or (op, op)
    nodes = [n for n in model.graph.node if n.name == name]
    if not nodes:  # a runtime's own copy of a node is named after it or its output
        pre = [(len(k), n) for n in model.graph.node for k in (n.name, *n.output)
               if k and name.startswith(k) and n.op_type == op_type]
        nodes = [max(pre, key=lambda p: p[0])[1]] if pre else []
    if not nodes:
        nodes = [n for n in model.graph.node if n.op_type == op_type]
    if len(nodes) > 1 and loads is not None:  # several of that type: the one that fails
        return _bisect(model, loads) or nodes
    return nodes


def _bisect(model, loads) -> list:
    """The first node (in the graph's topological order) whose prefix no longer loads."""
    nodes = list(model.graph.node)
    lo, hi = 0, len(nodes)  # invariant: the first lo nodes load, the first hi do not
    if loads(_first(model, hi)):
        return []
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if loads(_first(model, mid)):
            lo = mid
        else:
            hi = mid
    return [nodes[hi - 1]]


def _first(model, k: int):
    """The model's first ``k`` nodes, every tensor they make an output."""
    return runnable_prefix(model, list(model.graph.node)[k:], cut_descendants=False)


def runnable_prefix(model, bad: list, cut_descendants: bool = True):
    """A copy of ``model`` without ``bad`` nodes and their descendants, every remaining tensor
    an output."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    dead = {o for n in bad for o in n.output}
    gone = {i for i, n in enumerate(model.graph.node) if any(n is b for b in bad)}
    keep = []
    for i, n in enumerate(m.graph.node):
        if i in gone or (cut_descendants and any(x in dead for x in n.input)):
            dead.update(n.output)
            continue
        keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    del m.graph.output[:]
    for n in keep:
        if n.op_type != "Constant":
            for o in n.output:
                if o:
                    m.graph.output.append(onnx.helper.make_empty_tensor_value_info(o))
    return m


def _loads(target):
    """``loads(model)``: the runtime creates a session for it and runs it on one input."""
    from convlint.analyzers.models.onnx_runner import _spec

    inits = {i.name for i in target.model.graph.initializer}
    specs = [_spec(v) for v in target.model.graph.input if v.name not in inits]
    feeds = {s.name: np.zeros([d or 1 for d in s.shape], s.dtype) for s in specs}

    def loads(model) -> bool:
        try:
            sess = target.session(model)
            sess.run(None, {k: v for k, v in feeds.items()
                            if k in {i.name for i in sess.get_inputs()}})
            return True
        except Exception:  # noqa: BLE001 - the runtime refused it: that is the answer
            return False

    return loads


def scope_layer(node_name: str, layer_names: list) -> str | None:
    """The source layer whose name is a scope of ``node_name`` (tf2onnx, torch.onnx and
    TFLiteConverter keep layer scopes: ``model/dense_1/Gelu/Erfc``, ``/block/act/Gelu``,
    ``functional_1/flip_1/ReverseV2``; Keras 3 suffixes a scope with ``_N``), the longest first."""
    parts = [p for p in re.split(r"[/.:;]", node_name) if p]
    hits = [n for n in layer_names if n and (
        any(re.fullmatch(re.escape(n) + r"(_\d+)?", p) for p in parts)
        or ("." in n and n.replace(".", "/") in node_name))]
    return max(hits, key=len) if hits else None


def tflite_layer(source, target, op: str | None) -> tuple:
    """``(source layer, target op name)`` for a TFLite node named ``node N (OP)``: by the node's
    own weights against the source's kernels, else by the scope of its output tensor's name."""
    m = re.match(r"node (\d+) \((\w+)\)", op or "")
    if not m or not hasattr(target, "static_layers"):
        return None, None
    ops = target.static_layers()
    k = int(m.group(1))
    if k >= len(ops):
        return None, None
    layers = source.layers()
    names = [x.name for x in layers]
    by_weights = _weight_match(layers, ops[k][0], ops[k][2])
    if by_weights:  # the node's own weights name its source layer, whatever the names say
        return by_weights, (ops[k][1] or [None])[0]
    # a node that fuses several layers (a FULLY_CONNECTED with its ReLU) starts at the earliest
    hits = [(names.index(layer), layer, out) for out in ops[k][1] for part in out.split(";")
            if (layer := scope_layer(part, names))]
    if hits:
        _, layer, out = min(hits)
        return layer, out
    return None, (ops[k][1] or [None])[0]


def localize(source, target, report, popts, progress):
    """``report`` (verdict crash) with the failing node's source layer named, and a repair."""
    crash = next((f for f in report.findings if f.rule == R.MODEL_CRASH.code), None)
    if crash is None or crash.evidence.get("model") != "target":
        return report
    if target.format == "tflite":
        return _localize_tflite(source, target, report, crash, popts, progress)
    if target.format in ("torch-exported", "torchscript"):
        report = _localize_by_scope(source, report, crash)
        return _wrap_gather(source, target, report, popts, progress) if popts.repair else report
    if target.format != "onnx" or getattr(target, "model", None) is None:
        return report
    bad = failing_nodes(target.model, crash.evidence.get("op"), _loads(target))
    if not bad:
        return report
    progress(f"localizing the crash: running the target without {bad[0].name}")
    from convlint.analyzers.localize import stages
    from convlint.analyzers.models import open_model
    from convlint.analyzers.pipeline import capture

    layer, evidence = None, {}
    with tempfile.TemporaryDirectory(prefix="convlint-crash-") as d:
        path = str(Path(d) / "runnable_prefix.onnx")
        import onnx

        onnx.save(runnable_prefix(target.model, bad), path)
        try:
            with open_model(path) as prefix:
                cap = capture(source, prefix, popts.diff)
                loc = stages.run(cap, layer_rtol=max(popts.diff.rtol, 1e-6))
            first = next((f for f in loc.findings if f.rule == R.FIRST_DIVERGENT.code), None)
            layer = first.layer if first else None
            evidence["aligned_until"] = layer
        except Exception as e:  # noqa: BLE001 - the prefix may fail too: fall back on scopes
            evidence["prefix_error"] = " ".join(str(e).split())[:300]
        names = [x.name for x in source.layers()]
    scoped = scope_layer(bad[0].name or "", names)
    if scoped and (layer is None or layer != scoped):
        evidence["scope"] = scoped
        layer = scoped if layer is None or _downstream(names, layer, scoped) else layer
    if layer is None:
        return report
    ops = sorted({n.op_type for n in bad})
    report = _rejected(report, crash, layer, [n.name for n in bad],
                       f"{bad[0].name} ({', '.join(ops)})", ops, evidence)
    findings = list(report.findings)
    if popts.repair:
        findings[-1] = legalized(source, target, findings[-1], {n.op_type for n in bad}, popts,
                                 progress)
        if not findings[-1].repair or not findings[-1].repair.verified:
            from convlint.analyzers.pipeline import _verify
            from convlint.analyzers.repair import reconvert

            findings = reconvert.search(source, target, findings, popts, progress, _verify)
    return replace(report, findings=tuple(findings))


def _localize_tflite(source, target, report, crash, popts, progress):
    """A TFLite node the interpreter refuses, named by its index, traced to its source layer
    (``tflite_layer``), and with ``--repair`` rewritten into an equivalent form."""
    try:
        layer, node = tflite_layer(source, target, crash.evidence.get("op"))
    except Exception:  # noqa: BLE001 - an unreadable flatbuffer or source: nothing to name
        return report
    if layer is None:
        return report
    report = _rejected(report, crash, layer, [node], crash.evidence.get("op"),
                       [crash.evidence.get("op")], {"scope": layer})
    if not popts.repair:
        return report
    findings = list(report.findings)
    findings[-1] = legalized(source, target, findings[-1], {tflite_op(crash.evidence.get("op"))},
                             popts, progress)
    return replace(report, findings=tuple(findings))


def tflite_op(op: str | None) -> str | None:
    """``"REVERSE_V2"`` from the interpreter's ``"node 1 (REVERSE_V2)"``."""
    m = re.match(r"node \d+ \((\w+)\)", op or "")
    return m.group(1) if m else None


def _weight_match(src_layers: list, op: str, consts: list) -> str | None:
    """The source layer whose kernel is the TFLite node's weight tensor (layout-normalized)."""
    from convlint.analyzers.localize.align import channel_score
    from convlint.analyzers.localize.canonical import _canon, kernels
    from convlint.analyzers.models.base import LayerInfo
    from convlint.analyzers.models.describe import tflite as describe_tflite

    sem = describe_tflite(LayerInfo("?", op)).get("kernel")
    if sem is None or not consts or consts[0].ndim != (4 if sem["kind"] == "conv" else 2):
        return None
    w = _canon(consts[0].astype(np.float64), sem["layout"])
    best = max(((channel_score(k.weight, w), k.layer) for k in kernels(src_layers)
                if k.weight.shape == w.shape), default=(0.0, None))
    return best[1] if best[0] >= 0.9 else None


def _localize_by_scope(source, report, crash):
    """A target whose runtime names the failing module (``"module (op)"``): the source layer by
    scope (onnx2torch names a module after its ONNX node; a torch source keeps module paths)."""
    parts = split_op(crash.evidence.get("op"))
    if parts is None:
        return report
    module, op = parts
    names = [x.name for x in source.layers()]
    layer = module if module in names else scope_layer(module, names)
    if layer is None:
        return report
    return _rejected(report, crash, layer, [module], f"{module} ({op})", [op], {"scope": layer})


def _wrap_gather(source, target, report, popts, progress):
    """``report`` with a verified repair on its CL402 finding when the failing module's op is a
    gather (torch rejects the negative indices ONNX allows): the target format's graph edit
    (``repair.apply.GATHER_WRAPS``) wraps them, into a new file checked again."""
    from convlint.analyzers.pipeline import _after, _verify
    from convlint.analyzers.repair.apply import GATHER_WRAPS
    from convlint.analyzers.repair.weights import repaired_path
    from convlint.analyzers.report.io import write_new_file

    findings = list(report.findings)
    k = next((i for i, f in enumerate(findings) if f.rule == R.TARGET_NODE_REJECTED.code), None)
    wrap = GATHER_WRAPS.get(target.format)
    if k is None or wrap is None or "gather" not in findings[k].evidence.get("ops", []):
        return report
    f = findings[k]
    try:
        done, data = wrap(target.path, list(f.evidence.get("nodes") or []))
    except Exception:  # noqa: BLE001 - a graph this edit does not know: no repair
        log.debug("gather wrap failed", exc_info=True)
        return report
    if not done or data is None:
        return report
    out = repaired_path(target.path, popts.output)
    progress(f"repair: wrapping the negative gather indices of {', '.join(done)} into {out}")
    write_new_file(out, data, protect=(target.path, source.path))
    r = _verify(source, out, popts)
    findings[k] = f.with_(repair=Repair(
        "patch-graph", f"wrap negative indices (idx + dim size) before the gather of "
        f"{', '.join(done)}", out, r.verdict == "equivalent", _after(r)))
    return replace(report, findings=tuple(findings))


def _rejected(report, crash, layer: str, nodes: list, what: str, ops: list, evidence: dict):
    """``report`` with the CL402 finding (last) naming ``layer`` for the target ``nodes`` the
    runtime refused, and the localization's culprit."""
    from convlint.analyzers.pipeline import culprit

    f = Finding(R.TARGET_NODE_REJECTED.code, "error", "conversion-tool",
                f"the converter wrote {what}, which {crash.evidence.get('backend')} cannot "
                f"{crash.evidence.get('step')}; it computes source layer {layer}",
                layer=layer, location=Location(source_node=layer, target_node=nodes[0]),
                evidence={"nodes": nodes, "ops": ops, "runtime_message": crash.message, **evidence})
    findings = [*report.findings, f]
    extra = dict(report.extra, localization={"culprit": culprit(findings),
                                             "crash": {"nodes": nodes, **evidence}})
    return replace(report, findings=tuple(findings), extra=extra)


def name_runtime_faults(source, target, findings: list, popts=None, progress=None) -> list:
    """CL015 findings (a delegate refused a node) with the source layer the node came from, and
    with ``popts.repair`` the node rewritten into a form the default runtime takes."""
    out = []
    for f in findings:
        if (f.rule == R.RUNTIME_KERNEL_REFUSED.code and f.layer is None
                and target.format == "tflite" and f.evidence.get("model") == "target"):
            try:
                layer, _ = tflite_layer(source, target, f.evidence.get("op"))
            except Exception:  # noqa: BLE001 - no layer to name: the finding stands without
                layer = None
            f = f.with_(layer=layer) if layer else f
            if popts is not None and popts.repair:
                f = legalized(source, target, f, {tflite_op(f.evidence.get("op"))}, popts,
                              progress or (lambda m: None))
        out.append(f)
    return out


def _downstream(names: list, a: str, b: str) -> bool:
    """True when ``b`` comes at or after ``a`` in the source's forward order."""
    return a in names and b in names and names.index(b) >= names.index(a)


def legalized(source, target, f: Finding, ops: set, popts, progress) -> Finding:
    """``f`` with a verified repair when ``repair.legalize`` rewrites the refused ``ops`` into a
    form the runtime accepts: written to a new file, verified by checking the pair again."""
    from convlint.analyzers.pipeline import _after, _verify
    from convlint.analyzers.repair import legalize
    from convlint.analyzers.repair.weights import repaired_path
    from convlint.analyzers.report.io import write_new_file

    try:
        done = legalize.legalize(target, ops, source)
    except Exception:  # noqa: BLE001 - a graph the rewrites cannot read: no repair to offer
        return f
    if done is None:
        return f
    data, what = done
    out = repaired_path(target.path, popts.output)
    progress(f"repair: rewriting {', '.join(sorted(str(o) for o in ops))} into an equivalent "
             f"form into {out}")
    write_new_file(out, data, protect=(target.path, source.path))
    r = _verify(source, out, popts)
    return f.with_(repair=Repair("patch-graph", "rewrite " + "; ".join(sorted(set(what))), out,
                                 r.verdict == "equivalent", _after(r)))
