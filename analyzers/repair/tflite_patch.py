"""The TFLite patcher: weights in place, then the graph rewrites a TFLite target needs.

A TFLite op carries fewer attributes than the ops it was converted from: a SOFTMAX always
normalizes over the last axis alone, a FLOOR_MOD always takes the divisor's sign. When the
hyperparameter stage finds that the source computes something else there (CL305, a
``semantics`` graph edit), the op is rewritten into a small subgraph of TFLite builtins that
computes the source's semantics exactly; the op's output tensor keeps its index and name, so
its readers and the alignment are untouched. Rewrites are chosen by the op's builtin code and the
described change, never by names.
"""

from __future__ import annotations

import numpy as np

from convlint.analyzers.repair import tflite_graph as G
from convlint.analyzers.report.io import write_new_file


def patch(target: str, plan, out: str) -> list:
    """Write ``out``: ``target`` with ``plan``'s weights patched, then its ``semantics`` graph
    edits and its option edits made. Returns the keys of the steps done."""
    from convlint.analyzers.models.tflite_replay import set_attribute
    from convlint.analyzers.repair.weights import patch_tflite

    done = patch_tflite(target, plan.patches, out)
    edits = [e for e in plan.graph_edits if e.action == "semantics" and e.changes]
    if not edits and not plan.edits:
        return done
    model = G.load(out)
    done += [e.key for e in edits if _rewrite(model, e.key, dict(e.changes))]
    # an op's option set to the value the layer replay found (CL305 of the replay)
    done += [e.node for e in plan.edits if set_attribute(model, e.node, e.attribute, e.value)]
    write_new_file(out, G.dump(model), protect=(target,))
    return done


def _rewrite(model, node: str, want: dict) -> bool:
    """Make the op whose first output is named ``node`` compute ``want``; False if it cannot."""
    for sg in model.subgraphs:
        for i, op in enumerate(sg.operators):
            if len(op.outputs) and G.tensor_name(sg.tensors[op.outputs[0]]) == node:
                return _by_semantics(model, sg, i, want)
    return False


def _by_semantics(model, sg, i: int, want: dict) -> bool:
    code = G.builtin_of(model, sg.operators[i])
    ops = G.schema().BuiltinOperator
    if code in (ops.SOFTMAX, ops.LOG_SOFTMAX) and set(want) == {"normalized_axes"}:
        return _softmax_over(model, sg, i, int(want["normalized_axes"]))
    if code == ops.FLOOR_MOD and want == {"fmod": 1}:
        return _fmod(model, sg, i)
    return False


def _dtype(sg, index: int) -> np.dtype:
    code = sg.tensors[index].type
    return np.dtype(next(k for k, v in vars(G.schema().TensorType).items() if v == code).lower())


def _float(sg, index: int) -> bool:
    t = sg.tensors[index]
    return _dtype(sg, index).kind == "f" and (t.quantization is None or not t.quantization.scale)


def _reshape(model, sg, src: int, dst: int, shape: list):
    s = G.schema()
    opts = s.ReshapeOptionsT()
    opts.newShape = list(shape)
    const = G.add_tensor(model, sg, f"{G.tensor_name(sg.tensors[dst])}_convlint_shape",
                         [len(shape)], np.int32, np.asarray(shape, np.int32))
    return G.make_op(model, s.BuiltinOperator.RESHAPE, [src, const], [dst],
                     s.BuiltinOptions.ReshapeOptions, opts)


def _softmax_over(model, sg, i: int, n: int) -> bool:
    """SOFTMAX over the last ``n`` axes jointly (ONNX Softmax before opset 13):
    RESHAPE to [..., prod(last n)] -> the op itself -> RESHAPE back. Exact: a softmax over
    several axes is one over their flattening."""
    op = sg.operators[i]
    x, y = int(op.inputs[0]), int(op.outputs[0])
    shape = G.shape(sg, x)
    if n < 2 or n > len(shape) or min(shape, default=0) < 1 or not _float(sg, x):
        return False
    flat = shape[:len(shape) - n] + [int(np.prod(shape[len(shape) - n:]))]
    name = G.tensor_name(sg.tensors[y])
    x2 = G.add_like(model, sg, x, f"{name}_convlint_flat_in", flat)
    y2 = G.add_like(model, sg, y, f"{name}_convlint_flat_out", flat)
    before = _reshape(model, sg, x, x2, flat)
    after = _reshape(model, sg, y2, y, shape)
    op.inputs = [x2, *[int(k) for k in op.inputs[1:]]]
    op.outputs = [y2]
    sg.operators[i:i + 1] = [before, op, after]
    return True


def _fmod(model, sg, i: int) -> bool:
    """C fmod (the dividend's sign) from FLOOR_MOD (the divisor's): where the floor remainder
    r is not 0 and its sign differs from the dividend's, fmod = r - divisor, else r. Exact for
    integers; for floats the one subtraction undoes FLOOR_MOD's own addition of the divisor."""
    s = G.schema()
    ops, opts = s.BuiltinOperator, s.BuiltinOptions
    op = sg.operators[i]
    x, d, y = int(op.inputs[0]), int(op.inputs[1]), int(op.outputs[0])
    if not (_float(sg, x) or _dtype(sg, x) in (np.dtype(np.int32), np.dtype(np.int64))):
        return False
    name = G.tensor_name(sg.tensors[y])
    out_shape, x_shape = G.shape(sg, y), G.shape(sg, x)
    r = G.add_like(model, sg, y, f"{name}_convlint_floor_mod")
    zero = G.add_tensor(model, sg, f"{name}_convlint_zero", [], _dtype(sg, x),
                        np.zeros((), _dtype(sg, x)))

    def mask(tag: str, shape_: list) -> int:
        return G.add_tensor(model, sg, f"{name}_convlint_{tag}", shape_, np.bool_)

    x_neg, r_neg, differ, nonzero, fix = (mask("x_neg", x_shape), mask("r_neg", out_shape),
                                          mask("differ", out_shape), mask("nonzero", out_shape),
                                          mask("fix", out_shape))
    shifted = G.add_like(model, sg, y, f"{name}_convlint_shifted")
    op.outputs = [r]
    sub = s.SubOptionsT()
    new = [G.make_op(model, ops.LESS, [x, zero], [x_neg], opts.LessOptions, s.LessOptionsT()),
           G.make_op(model, ops.LESS, [r, zero], [r_neg], opts.LessOptions, s.LessOptionsT()),
           G.make_op(model, ops.NOT_EQUAL, [x_neg, r_neg], [differ], opts.NotEqualOptions,
                     s.NotEqualOptionsT()),
           G.make_op(model, ops.NOT_EQUAL, [r, zero], [nonzero], opts.NotEqualOptions,
                     s.NotEqualOptionsT()),
           G.make_op(model, ops.LOGICAL_AND, [differ, nonzero], [fix], opts.LogicalAndOptions,
                     s.LogicalAndOptionsT()),
           G.make_op(model, ops.SUB, [r, d], [shifted], opts.SubOptions, sub),
           G.make_op(model, ops.SELECT_V2, [fix, shifted, r], [y], opts.SelectV2Options,
                     s.SelectV2OptionsT())]
    sg.operators[i + 1:i + 1] = new
    return True
