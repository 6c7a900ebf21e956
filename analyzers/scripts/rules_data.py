"""Static rules about the data a script feeds its models: layout (NCHW/NHWC), input
normalization, and BatchNorm epsilons in hand-written weight ports.

In: ``ScriptFacts`` and the rule context. Out: findings on the feeding or building lines. Shapes
and normalization constants are read off expressions the script spells out (``np.zeros((1, 3,
224, 224))``, ``(x - 127.5) / 127.5``, helper functions with one ``return``); when an expression
cannot be followed, the rules stay silent rather than guess.
"""

from __future__ import annotations

import ast
import os

from convlint.analyzers import rules as R
from convlint.analyzers.lazy import numpy as np
from convlint.analyzers.scripts.facts import UNKNOWN, Conversion, Sym
from convlint.analyzers.scripts.rules_static import KERAS_BN_EPS, TORCH_BN_EPS, Ctx, check

_SHAPED = {
    "numpy.zeros",
    "numpy.ones",
    "numpy.empty",
    "numpy.random.rand",
    "numpy.random.randn",
    "numpy.random.random",
    "numpy.random.uniform",
    "numpy.random.normal",
    "numpy.full",
    "torch.randn",
    "torch.rand",
    "torch.zeros",
    "torch.ones",
    "torch.empty",
    "numpy.random.default_rng().random",
    "tensorflow.random.normal",
    "tensorflow.random.uniform",
    "tensorflow.zeros",
    "tensorflow.ones",
    "keras.random.normal",
    "keras.random.uniform",
}
_PASS = {"astype", "float", "numpy", "to", "cpu", "contiguous", "detach", "copy", "half", "double"}
_PASS_FN = {
    "numpy.asarray",
    "numpy.array",
    "numpy.float32",
    "torch.from_numpy",
    "torch.tensor",
    "torch.as_tensor",
    "tensorflow.constant",
    "tensorflow.convert_to_tensor",
    "numpy.ascontiguousarray",
}


def _ints(v) -> tuple | None:
    if isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return tuple(v)
    return None


def shape_of(ctx: Ctx, node, before: int, depth: int = 0) -> tuple | None:
    """The shape of an array expression the script spells out, else None."""
    f = ctx.f
    if node is None or depth > 10:
        return None
    if isinstance(node, ast.Name):
        return shape_of(ctx, f.binding(node.id, before), before, depth + 1)
    if isinstance(node, ast.Tuple) and node.elts:  # torch export args: (x,)
        return shape_of(ctx, node.elts[0], before, depth + 1)
    if isinstance(node, ast.Subscript):  # x[None], x[np.newaxis]
        inner = shape_of(ctx, node.value, before, depth + 1)
        sl = node.slice
        if inner is not None and (isinstance(sl, ast.Constant) and sl.value is None or
                                  f.qual(sl) == "numpy.newaxis"):
            return (1, *inner)
        return None
    if isinstance(node, ast.BinOp):
        for side, other in ((node.left, node.right), (node.right, node.left)):
            if f.const(other, before) is not UNKNOWN:
                return shape_of(ctx, side, before, depth + 1)
        return shape_of(ctx, node.left, before, depth + 1)
    if not isinstance(node, ast.Call):
        return None
    q = f.qual(node.func)
    vals = [f.const(a, before) for a in node.args]
    kws = {k.arg: f.const(k.value, before) for k in node.keywords}
    if q in _SHAPED:
        if "size" in kws or "shape" in kws:
            return _ints(kws.get("size", kws.get("shape")))
        if vals and _ints(vals[0]):
            return _ints(vals[0])
        return _ints(vals)
    if q in _PASS_FN and node.args:
        return shape_of(ctx, node.args[0], before, depth + 1)
    if q in ("numpy.expand_dims", "torch.unsqueeze") and len(vals) > 1 and vals[1] == 0:
        inner = shape_of(ctx, node.args[0], before, depth + 1)
        return (1, *inner) if inner else None
    if q in ("numpy.transpose", "torch.permute") and len(node.args) > 1 and _ints(vals[1]):
        inner = shape_of(ctx, node.args[0], before, depth + 1)
        return _permute(inner, _ints(vals[1]))
    if q == "numpy.reshape" and len(vals) > 1 and _ints(vals[1]):
        return _ints(vals[1])
    if isinstance(node.func, ast.Attribute):
        attr, recv = node.func.attr, node.func.value
        if attr in _PASS:
            return shape_of(ctx, recv, before, depth + 1)
        if attr in ("reshape", "view") and vals:
            s = _ints(vals[0]) or _ints(vals)
            return s if s and -1 not in s else None
        if attr in ("transpose", "permute") and vals:
            return _permute(shape_of(ctx, recv, before, depth + 1), _ints(vals[0]) or _ints(vals))
        if attr == "unsqueeze" and vals == [0]:
            inner = shape_of(ctx, recv, before, depth + 1)
            return (1, *inner) if inner else None
    return None


def _permute(shape, perm):
    if not shape or not perm or len(shape) != len(perm):
        return None
    return tuple(shape[p] for p in perm)


def layout_of(shape) -> str | None:
    if not shape or len(shape) != 4:
        return None
    _, a, b, c = shape
    if a in (1, 3, 4) and c not in (1, 3, 4) and b > 4:
        return "NCHW"
    if c in (1, 3, 4) and a > 4:
        return "NHWC"
    return None


def _same_path(ctx: Ctx, a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    base = ctx.base or "."
    return os.path.normpath(os.path.join(base, a)) == os.path.normpath(os.path.join(base, b))


def _feeds_of(ctx: Ctx, conv: Conversion):
    for fd in ctx.f.feeds:
        if fd.role != "target" or not fd.model:
            continue
        if (
            fd.model.startswith("var:")
            and fd.model[4:] == conv.result_var
            or _same_path(ctx, fd.model, conv.output)
        ):
            yield fd


def _converted_layout(ctx: Ctx, c: Conversion) -> tuple[str, str] | None:
    """The layout the converted model expects, and why."""
    if c.converter == "torch.onnx":
        a = c.arg_node("args", 1)
        lay = layout_of(shape_of(ctx, a.node if a else None, c.span.line))
        return (lay, "the export's example input") if lay else None
    if c.converter == "tf2onnx":
        if c.kw("inputs_as_nchw") not in (None, UNKNOWN, []):
            return "NCHW", "inputs_as_nchw"
        shapes = [_sig_shape(ctx, n) for n in ast.walk(c.kwargs["input_signature"].node)] \
            if "input_signature" in c.kwargs else []
        lay = next((layout_of(s) for s in shapes if layout_of(s)), None)
        return (lay, "the input_signature") if lay else None
    if c.converter == "onnx2tf":
        keep = c.kw("keep_ncw_or_nchw_or_ncdhw_input_names")
        return (
            None
            if keep not in (None, UNKNOWN)
            else ("NHWC", "onnx2tf (it transposes NCHW inputs to NHWC)")
        )
    return None


def _sig_shape(ctx: Ctx, node):
    if isinstance(node, ast.Call) and (ctx.f.qual(node.func) or "").endswith("TensorSpec"):
        v = ctx.f.const(node.args[0] if node.args else next(
            (k.value for k in node.keywords if k.arg == "shape"), None))
        if isinstance(v, list):
            return tuple(1 if x is None else x for x in v)
    return None


@check
def layout(ctx: Ctx):
    for c in ctx.f.conversions:
        expected = _converted_layout(ctx, c)
        if not expected:
            continue
        for fd in _feeds_of(ctx, c):
            shape = shape_of(ctx, fd.data, fd.span.line)
            got = layout_of(shape)
            if got and shape is not None and got != expected[0]:  # a layout needs a shape
                yield ctx.finding(
                    R.LAYOUT_MISMATCH, fd.span,
                    f"the converted model expects {expected[0]} input ({expected[1]}), but this "
                    f"feeds it a {got} array of shape {list(shape)}: the model reads the axes "
                    "permuted and computes garbage without an error",
                    evidence={"expected": expected[0], "fed": got, "shape": list(shape),
                              "conversion_line": c.span.line})


# --- normalization ---------------------------------------------------------------------------
def affine_of(ctx: Ctx, node, before: int, env: dict | None = None, depth: int = 0):
    """(base, scale, shift) with value = base * scale + shift, or None."""
    f = ctx.f
    env = env or {}
    if node is None or depth > 12:
        return None
    if isinstance(node, ast.Name):
        if node.id in env:
            return affine_of(ctx, env[node.id], before, None, depth + 1)
        b = f.binding(node.id, before)
        return (node.id, 1.0, 0.0) if b is None else affine_of(ctx, b, before, None, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        lc, rc = _num(ctx, node.left, before, env), _num(ctx, node.right, before, env)
        if rc is not None and lc is None:
            inner = affine_of(ctx, node.left, before, env, depth + 1)
            if inner is None:
                return None
            b, s, t = inner
            op = type(node.op)
            if op is ast.Add:
                return b, s, t + rc
            if op is ast.Sub:
                return b, s, t - rc
            if op is ast.Mult:
                return b, s * rc, t * rc
            return (
                (b, s / rc, t / rc) if (rc != 0 if type(rc) is float else np.all(rc != 0)) else None
            )
        if lc is not None and rc is None and isinstance(node.op, (ast.Add, ast.Mult, ast.Sub)):
            inner = affine_of(ctx, node.right, before, env, depth + 1)
            if inner is None:
                return None
            b, s, t = inner
            if isinstance(node.op, ast.Add):
                return b, s, t + lc
            if isinstance(node.op, ast.Mult):
                return b, s * lc, t * lc
            return b, -s, lc - t
        return None
    if isinstance(node, ast.Call):
        q = f.qual(node.func)
        if q in _PASS_FN or q in ("numpy.expand_dims", "numpy.transpose", "torch.unsqueeze"):
            return affine_of(ctx, node.args[0], before, env, depth + 1) if node.args else None
        if isinstance(node.func, ast.Attribute) and node.func.attr in _PASS | {
            "unsqueeze",
            "transpose",
            "permute",
        }:
            return affine_of(ctx, node.func.value, before, env, depth + 1)
        if isinstance(node.func, ast.Name) and node.func.id in f.functions:
            fn = f.functions[node.func.id]
            ret = [s for s in fn.body if isinstance(s, ast.Return)]
            params = [a.arg for a in fn.args.args]
            if len(ret) == 1 and ret[0].value is not None and len(node.args) == len(params):
                local = dict(zip(params, node.args, strict=True))
                for s in fn.body:  # simple local assignments
                    if (
                        isinstance(s, ast.Assign)
                        and len(s.targets) == 1
                        and isinstance(s.targets[0], ast.Name)
                    ):
                        local[s.targets[0].id] = _subst(s.value, local)
                return affine_of(ctx, _subst(ret[0].value, local), before, {}, depth + 1)
        return (_key(node), 1.0, 0.0)
    if isinstance(node, ast.Subscript):
        return affine_of(ctx, node.value, before, env, depth + 1)
    return (_key(node), 1.0, 0.0)


def _subst(node, env: dict):
    """Replace parameter names by the caller's expressions (a copy of the tree)."""
    import copy

    class T(ast.NodeTransformer):
        def visit_Name(self, n):
            return copy.deepcopy(env[n.id]) if n.id in env else n

    return T().visit(copy.deepcopy(node))


def _key(node) -> str:
    return ast.dump(node) if node is not None else ""


def _num(ctx: Ctx, node, before: int, env: dict):
    if isinstance(node, ast.Name) and node.id in env:
        node = env[node.id]
    v = ctx.f.const(node, before)
    if isinstance(v, bool) or v is UNKNOWN or isinstance(v, (str, Sym)):
        return None
    # the common case: a plain float (numpy only for per-channel lists)
    if type(v) is int or type(v) is float:
        return float(v)
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    except ModuleNotFoundError:  # the editor's bundled server beside no numpy: plain floats only
        return None
    return a if a.ndim <= 1 else None


@check
def preprocessing(ctx: Ctx):
    srcs = [fd for fd in ctx.f.feeds if fd.role == "source"]
    tgts = [fd for fd in ctx.f.feeds if fd.role == "target"]
    if not srcs or not tgts:
        return
    seen = set()
    src_affines = [(s, affine_of(ctx, s.data, s.span.line)) for s in srcs]
    for t in tgts:
        at = affine_of(ctx, t.data, t.span.line)
        for s, a_s in src_affines:
            if at is None or a_s is None or at[0] != a_s[0]:
                continue
            same = _close(a_s[1], at[1], 1e-4, 1e-8) and _close(a_s[2], at[2], 1e-4, 1e-6)
            if same or (t.span.line in seen):
                continue
            seen.add(t.span.line)
            yield ctx.finding(
                R.PREPROCESSING_MISMATCH, t.span,
                f"the converted model gets x*{_fmt(at[1])}{_sgn(at[2])}, but the source model "
                f"(line {s.span.line}) gets x*{_fmt(a_s[1])}{_sgn(a_s[2])} of the same data: any "
                "comparison between them measures the preprocessing, not the conversion",
                evidence={"source_line": s.span.line, "source": [_lst(a_s[1]), _lst(a_s[2])],
                          "target": [_lst(at[1]), _lst(at[2])]}, hyperparameter="data")


def _close(a, b, rtol: float, atol: float) -> bool:
    """np.allclose(a, b, rtol, atol), without numpy for two plain floats."""
    if type(a) is float and type(b) is float:
        return abs(a - b) <= atol + rtol * abs(b)
    return bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _lst(v):
    return np.asarray(v).tolist()


def _fmt(v) -> str:
    a = np.asarray(v)
    return f"{float(a):.6g}" if a.ndim == 0 else "[" + ", ".join(f"{x:.4g}" for x in a) + "]"


def _sgn(v) -> str:
    a = np.asarray(v)
    if a.ndim == 0:
        return "" if float(a) == 0 else f" {'+' if a > 0 else '-'} {abs(float(a)):.6g}"
    return f" + {_fmt(a)}"


# --- BatchNorm epsilon in a hand-written port --------------------------------------------------
@check
def bn_epsilon_port(ctx: Ctx):
    f = ctx.f
    text = f.text
    torch_bns = [
        lb
        for lb in f.layers
        if lb.call.rsplit(".", 1)[-1] in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")
        and lb.call.startswith("torch.")
    ]
    if not torch_bns:  # nothing to port to: no file needs reading
        return
    keras_bns = [
        lb
        for lb in f.layers
        if lb.call.startswith("keras.") and lb.call.endswith("BatchNormalization")
    ]
    keras_eps = {float(lb.kwargs["epsilon"].value) if "epsilon" in lb.kwargs and isinstance(
        lb.kwargs["epsilon"].value, (int, float)) else KERAS_BN_EPS for lb in keras_bns}
    for m in f.models.values():  # a loaded .keras file's BatchNorms
        if m.framework == "keras" and m.origin == "load":
            from convlint.analyzers.models.keras_config import keras_layers

            for cls, cfg in keras_layers(m.path, ctx.base) or []:
                if cls == "BatchNormalization":
                    keras_eps.add(float(cfg.get("epsilon", KERAS_BN_EPS)))
    reads_keras = (
        any(s in text for s in ("moving_mean", "moving_variance", "get_weights(")) or keras_bns
    )
    writes_torch = any(s in text for s in ("running_mean", "running_var", "load_state_dict"))
    writes_keras = "set_weights(" in text or ".assign(" in text
    if not torch_bns or not (keras_bns or keras_eps) or not reads_keras:
        return
    if writes_torch and len(keras_eps) == 1:  # Keras -> PyTorch: fix the torch side
        want = next(iter(keras_eps))
        for lb in torch_bns:
            eps = lb.kwargs["eps"].value if "eps" in lb.kwargs else TORCH_BN_EPS
            if isinstance(eps, (int, float)) and not _close(float(eps), float(want), 1e-3, 1e-8):
                yield ctx.finding(
                    R.BN_EPSILON_PORT,
                    lb.node,
                    f"{lb.call.rsplit('.', 1)[-1]} gets Keras BatchNormalization weights, but "
                    f"keeps eps={eps:g} while the Keras layer uses epsilon={want:g}: every "
                    f"normalized activation is scaled by sqrt((var+eps_keras)/(var+eps_torch))",
                    edits=[ctx.ed.set_keyword(lb.node, "eps", f"{want:g}")],
                    fix=f"construct it with eps={want:g}",
                    hyperparameter="layers",
                    evidence={"keras_epsilon": want, "torch_eps": eps},
                )
    elif writes_keras and not writes_torch:  # PyTorch -> Keras: fix the Keras side
        want = {lb.kwargs["eps"].value if "eps" in lb.kwargs else TORCH_BN_EPS for lb in torch_bns}
        if len(want) != 1:
            return
        w = next(iter(want))
        for lb in keras_bns:
            eps = lb.kwargs["epsilon"].value if "epsilon" in lb.kwargs else KERAS_BN_EPS
            if (
                isinstance(eps, (int, float))
                and isinstance(w, (int, float))
                and not _close(float(eps), float(w), 1e-3, 1e-8)
            ):
                yield ctx.finding(
                    R.BN_EPSILON_PORT, lb.node,
                    f"BatchNormalization gets PyTorch BatchNorm weights, but keeps epsilon={eps:g} "
                    f"while the PyTorch layer uses eps={w:g}",
                    edits=[ctx.ed.set_keyword(lb.node, "epsilon", f"{w:g}")],
                    fix=f"construct it with epsilon={w:g}", hyperparameter="layers",
                    evidence={"keras_epsilon": eps, "torch_eps": w})
