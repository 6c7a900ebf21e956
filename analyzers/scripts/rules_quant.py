"""Static rules about full-integer quantization in a script: the calibration data it feeds the
converter (how many samples, whether they are real) and per-tensor quantization of depthwise
convolutions.

In: ``ScriptFacts`` and the rule context. Out: findings on the lines that cause them, each with a
rewrite where the script spells out what to change. Calibration data is read from TFLite's
``converter.representative_dataset`` (a generator function) and from onnxruntime's
``quantize_static(..., calibration_data_reader, ...)`` (a ``CalibrationDataReader`` subclass the
script defines). Counts are read off what the script spells out (``range(4)``, ``x[:8]``,
``ds.take(4)``, a constant name); when the count cannot be followed, the rules stay silent.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

from convlint.analyzers import rules as R
from convlint.analyzers.scripts.rules_static import Ctx, check

MIN_SAMPLES = 32  # fewer is "a handful": calibration ranges then miss the tails of real inputs
REWRITE_SAMPLES = 100  # TFLite's guide asks for about 100-500 representative samples
ORT_QUANTIZE = ("onnxruntime.quantization.quantize_static",
                "onnxruntime.quantization.quantize.quantize_static")
ORT_READER = ("onnxruntime.quantization.CalibrationDataReader",
              "onnxruntime.quantization.calibrate.CalibrationDataReader")
_RANDOM = {"numpy.random.rand", "numpy.random.randn", "numpy.random.random",
           "numpy.random.random_sample", "numpy.random.uniform", "numpy.random.normal",
           "numpy.random.standard_normal", "torch.rand", "torch.randn", "torch.rand_like",
           "torch.randn_like", "torch.normal", "tensorflow.random.uniform",
           "tensorflow.random.normal", "tensorflow.random.truncated_normal",
           "keras.random.uniform", "keras.random.normal"}
_RNG_MAKERS = {"numpy.random.default_rng", "numpy.random.RandomState", "numpy.random.Generator"}
_RNG_DRAWS = {"random", "normal", "uniform", "standard_normal", "rand", "randn"}
_REAL_DATA = {"numpy.load", "numpy.fromfile", "numpy.loadtxt", "numpy.genfromtxt"}
_DEPTHWISE = {"DepthwiseConv2D", "SeparableConv2D", "DepthwiseConv1D", "SeparableConv1D"}


@dataclass
class Calibration:
    """Where a conversion's calibration samples come from."""
    kind: str  # tflite | onnxruntime
    body: list  # the nodes that make the samples: the generator function, or the reader class
    construct: ast.Call | None  # onnxruntime: the call that builds the reader
    site: ast.AST  # where the conversion is configured with it


def _calibrations(ctx: Ctx) -> list[Calibration]:
    f = ctx.f
    out = []
    for c in f.conversions:
        rd = c.attrs.get("representative_dataset") if c.converter == "tflite" else None
        if rd is None or not isinstance(rd.node, ast.Assign):
            continue
        fn = _function(ctx, rd.node.value)
        if fn is not None:
            out.append(Calibration("tflite", [fn], None, rd.node))
    classes = {n.name: n for n in ast.walk(f.tree) if isinstance(n, ast.ClassDef)} if f.tree else {}
    for call in _ort_calls(ctx):
        reader = _arg(call, "calibration_data_reader", 2)
        if isinstance(reader, ast.Name):
            reader = f.binding(reader.id, call.lineno)
        if isinstance(reader, ast.Call) and isinstance(reader.func, ast.Name) \
                and (cls := classes.get(reader.func.id)) is not None:
            out.append(Calibration("onnxruntime", [cls], reader, call))
    return out


def _function(ctx: Ctx, node) -> ast.AST | None:
    """The generator a ``representative_dataset`` is set to (a name, a lambda, or
    ``tf.lite.RepresentativeDataset(fn)``)."""
    if isinstance(node, ast.Call) and node.args and (ctx.f.qual(node.func) or "").endswith(
            "RepresentativeDataset"):
        node = node.args[0]
    if isinstance(node, ast.Name):
        return ctx.f.functions.get(node.id)
    return node if isinstance(node, ast.Lambda) else None


def _ort_calls(ctx: Ctx) -> list[ast.Call]:
    if ctx.f.tree is None:
        return []
    return [n for n in ast.walk(ctx.f.tree)
            if isinstance(n, ast.Call) and ctx.f.qual(n.func) in ORT_QUANTIZE]


def _arg(call: ast.Call, name: str, pos: int):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return call.args[pos] if pos < len(call.args) else None


# --- how many samples ---------------------------------------------------------------------------
def _count(ctx: Ctx, it, depth: int = 0) -> tuple[int, ast.AST] | None:
    """(how many items an iterable spelled out in the script yields, the node holding that
    number), or None."""
    f = ctx.f
    if depth > 4 or it is None:
        return None
    if isinstance(it, ast.Name):
        return _count(ctx, f.binding(it.id, it.lineno), depth + 1)
    if isinstance(it, ast.Call):
        q = f.qual(it.func) or (it.func.id if isinstance(it.func, ast.Name) else "")
        vals = [f.const(a) for a in it.args]
        ints = [v for v in vals if isinstance(v, int) and not isinstance(v, bool)]
        if q == "range" and it.args and len(ints) == len(vals) <= 3:
            return len(range(*ints)), it.args[0 if len(it.args) == 1 else 1]
        if q == "itertools.islice" and len(vals) == 2 and type(vals[1]) is int:
            return vals[1], it.args[1]
        if isinstance(it.func, ast.Attribute) and it.func.attr == "take" and len(vals) == 1 \
                and type(vals[0]) is int:
            return vals[0], it.args[0]
        if q in ("enumerate", "iter", "list", "tuple") and it.args:
            return _count(ctx, it.args[0], depth + 1)
    if isinstance(it, ast.Subscript) and isinstance(it.slice, ast.Slice) and it.slice.upper:
        lo = f.const(it.slice.lower) if it.slice.lower is not None else 0
        hi = f.const(it.slice.upper)
        if type(lo) is int and type(hi) is int and it.slice.step is None and hi >= lo >= 0:
            return hi - lo, it.slice.upper
    if isinstance(it, (ast.ListComp, ast.GeneratorExp)) and len(it.generators) == 1:
        return _count(ctx, it.generators[0].iter, depth + 1)
    return None


def _generator_count(ctx: Ctx, fn) -> tuple[int, list] | None:
    """A generator function's sample count: the yields times the loops around them; with the
    loops' (count, node) from the outermost in (the distinct samples first), for the rewrite."""
    if isinstance(fn, ast.Lambda):
        return None
    total, loops_of_first = 0, None

    def walk(node, loops):
        nonlocal total, loops_of_first
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)) \
                and node is not fn:
            return True
        if isinstance(node, ast.YieldFrom):
            return False
        if isinstance(node, ast.Yield):
            n = 1
            for cnt, _ in loops:
                n *= cnt
            total += n
            if loops_of_first is None:
                loops_of_first = list(loops)
            return True
        if isinstance(node, (ast.For, ast.AsyncFor)):
            c = _count(ctx, node.iter)
            if c is None:
                return not _has_yield(node)
            return all(walk(s, [*loops, c]) for s in node.body) and all(
                walk(s, loops) for s in node.orelse)
        if isinstance(node, ast.While) and _has_yield(node):
            return False
        return all(walk(ch, loops) for ch in ast.iter_child_nodes(node))

    if not all(walk(s, []) for s in fn.body) or loops_of_first is None:
        return None
    return total, loops_of_first


def _has_yield(node) -> bool:
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(node))


def _reader_count(ctx: Ctx, cal: Calibration) -> tuple[int, list] | None:
    """An onnxruntime reader's sample count: the first count spelled out in the data it is built
    from (its constructor's arguments, then the loops and comprehensions of its methods)."""
    cands = [a for a in (cal.construct.args if cal.construct else [])] + [
        k.value for k in (cal.construct.keywords if cal.construct else [])]
    for node in cal.body:
        for n in ast.walk(node):
            if isinstance(n, (ast.ListComp, ast.GeneratorExp)):
                cands.append(n)
            elif isinstance(n, ast.For):
                cands.append(n.iter)
    for a in cands:
        c = _count(ctx, a)
        if c is not None:
            return c[0], [c]
    return None


def _rewrite_count(ctx: Ctx, total: int, loops: list):
    """An edit that raises the sample count to ``REWRITE_SAMPLES``: the outermost loop whose count
    is a literal (or a name bound to one) is scaled."""
    for cnt, node in loops:
        lit = node
        if isinstance(node, ast.Name):
            lit = ctx.f.binding(node.id, node.lineno)
        if not (isinstance(lit, ast.Constant) and type(lit.value) is int) or cnt <= 0:
            continue
        other = total // cnt
        want = math.ceil(REWRITE_SAMPLES / max(other, 1))
        return ctx.ed.replace(lit, str(lit.value + want - cnt))
    return None


@check
def calibration_rules(ctx: Ctx):
    for cal in _calibrations(ctx):
        counted = (_generator_count(ctx, cal.body[0]) if cal.kind == "tflite"
                   else _reader_count(ctx, cal))
        if counted is not None and counted[0] < MIN_SAMPLES:
            total, loops = counted
            where = loops[0][1] if loops else cal.site
            edit = _rewrite_count(ctx, total, loops)
            yield ctx.finding(
                R.CALIBRATION_FEW_SAMPLES, where,
                f"the {_what(cal)} gives the converter {total} sample{'s' * (total != 1)}: "
                f"calibration ranges from so few miss the tails of real inputs, which are then "
                f"clipped (TFLite's guide asks for about 100-500 representative samples)",
                edits=[edit] if edit else (), fix=f"calibrate on {REWRITE_SAMPLES} samples",
                evidence={"samples": total, "minimum": MIN_SAMPLES, "converter": cal.kind})
        for call in _random_calls(ctx, cal):
            real = _real_data(ctx)
            edits = []
            if real is not None:
                var = _loop_var(ctx, cal, call)
                sl = f"{real}[{var}:{var} + 1]" if var else f"{real}[:1]"
                edits = [ctx.ed.replace(call, sl)]
            yield ctx.finding(
                R.CALIBRATION_RANDOM, call,
                f"the {_what(cal)} feeds random data ({ctx.f.segment(call.func)}): the converter "
                "calibrates every activation range on noise, not on the inputs the model will "
                "see, and real inputs are then clipped or quantized coarsely",
                edits=edits, fix=f"calibrate on real samples ({real})" if real else None,
                evidence={"converter": cal.kind, "real_data": real})


def _what(cal: Calibration) -> str:
    return "representative_dataset" if cal.kind == "tflite" else "calibration data reader"


def _random_calls(ctx: Ctx, cal: Calibration) -> list[ast.Call]:
    """The random-data calls in the nodes that make the samples, and in the module-level
    bindings of the names they read."""
    f = ctx.f
    nodes = list(cal.body) + ([cal.construct] if cal.construct else [])
    local = {n.id for node in nodes for n in ast.walk(node)
             if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    seen, out = set(), []
    for node in list(nodes):
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in local \
                    and (b := f.binding(n.id, 10**9)) is not None and id(b) not in seen:
                seen.add(id(b))
                nodes.append(b)
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Call) and _is_random(ctx, n) and n not in out:
                out.append(n)
    return out


def _is_random(ctx: Ctx, call: ast.Call) -> bool:
    q = ctx.f.qual(call.func)
    if q in _RANDOM or (q or "").startswith("keras.random.") and q != "keras.random.SeedGenerator":
        return True
    fn = call.func
    if isinstance(fn, ast.Attribute) and fn.attr in _RNG_DRAWS:
        base = fn.value
        if isinstance(base, ast.Name):
            base = ctx.f.binding(base.id, call.lineno)
        return isinstance(base, ast.Call) and ctx.f.qual(base.func) in _RNG_MAKERS
    return False


def _real_data(ctx: Ctx) -> str | None:
    """A module-level array of real samples the script loads (``np.load``, ``load_data()``)."""
    if ctx.f.tree is None:
        return None
    for stmt in ctx.f.tree.body:
        if not isinstance(stmt, ast.Assign) or not any(
                isinstance(n, ast.Call) and (ctx.f.qual(n.func) in _REAL_DATA or (
                    isinstance(n.func, ast.Attribute) and n.func.attr == "load_data"))
                for n in ast.walk(stmt.value)):
            continue
        names = [n.id for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        xs = [n for n in names if not n.lower().startswith("y")]
        if xs:
            return xs[-1]  # (x_train, y_train), (x_test, y_test): the held-out set
    return None


def _loop_var(ctx: Ctx, cal: Calibration, call: ast.Call) -> str | None:
    """The name of the loop (or comprehension) variable counting the samples around ``call``."""
    for node in cal.body:
        for n in ast.walk(node):
            if isinstance(n, ast.For) and isinstance(n.target, ast.Name) and any(
                    m is call for s in n.body for m in ast.walk(s)):
                return n.target.id
            if isinstance(n, (ast.ListComp, ast.GeneratorExp)) and isinstance(
                    n.generators[0].target, ast.Name) and any(m is call for m in ast.walk(n.elt)):
                return n.generators[0].target.id
    return None


# --- per-tensor quantization of depthwise convolutions -----------------------------------------
def _depthwise(layers) -> list[str]:
    out = []
    for cls, cfg, _ in layers:
        if cls in _DEPTHWISE:
            out.append(cls)
        elif cls in ("Conv2d", "Conv1d"):
            g, cin = cfg.get("groups"), cfg.get("#0", cfg.get("in_channels"))
            if type(g) is int and g > 1 and g == cin:
                out.append(f"{cls}(groups={g})")
    return out


@check
def depthwise_per_tensor(ctx: Ctx):
    for c in ctx.f.conversions:
        off = c.attrs.get("_experimental_disable_per_channel") if c.converter == "tflite" else None
        if off is None or off.value is not True:
            continue
        layers = ctx.layers_of(c, "keras")
        dw = _depthwise(layers)
        if layers and not dw and not any("Conv" in cls for cls, _, _ in layers):
            continue
        yield ctx.finding(
            R.DEPTHWISE_PER_TENSOR, off.node,
            "_experimental_disable_per_channel=True quantizes every convolution kernel per tensor"
            + (f" ({', '.join(sorted(set(dw)))} here)" if dw else "") + ": a depthwise kernel's "
            "channels differ by orders of magnitude, so one scale rounds the small channels to "
            "zero", edits=[ctx.ed.delete_statement(off.node)],
            fix="quantize kernels per channel (the default)",
            evidence={"converter": "tflite", "depthwise": dw})
    for call in _ort_calls(ctx):
        pc = _arg(call, "per_channel", 5)
        if pc is not None and ctx.f.const(pc) is not False:
            continue
        dw = _depthwise(_layers_for(ctx, call))
        if not dw:
            continue
        where = next((k for k in call.keywords if k.arg == "per_channel"), call)
        yield ctx.finding(
            R.DEPTHWISE_PER_TENSOR, where,
            "quantize_static quantizes weights per tensor (per_channel is False"
            + (" by default" if pc is None else "") + f") on a model with depthwise convolutions "
            f"({', '.join(sorted(set(dw)))}): their channels differ by orders of magnitude, so one "
            "scale rounds the small channels to zero",
            edits=[ctx.ed.set_keyword(call, "per_channel", "True")] if pc is None
            or where is not call else [],
            fix="quantize weights per channel (per_channel=True)",
            evidence={"converter": "onnxruntime", "depthwise": dw})


def _layers_for(ctx: Ctx, call: ast.Call) -> list:
    """The layers of the model ``quantize_static`` quantizes: the conversion that wrote that
    ONNX file in the script, else every layer the script builds."""
    path = ctx.f.const(_arg(call, "model_input", 0))
    for c in ctx.f.conversions:
        if isinstance(path, str) and c.output and c.output.endswith(path.lstrip("./")):
            return ctx.layers_of(c, "torch" if c.converter == "torch.onnx" else "keras")
    return ctx.built("torch") + ctx.built("keras")
