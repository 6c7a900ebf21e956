"""Repair planning (repair/plan.py) is pure: each localized finding becomes the patch its rule
calls for, in a target format that can take it; anything else is left unplanned."""

from convlint.analyzers import rules as R
from convlint.analyzers.repair.plan import PLANNERS, plan_repairs
from convlint.analyzers.report.findings import Finding, Location, Repair


def _f(rule, target="/conv/Conv", severity="error", **evidence):
    r = R.get(rule)
    return Finding(
        rule,
        severity,
        r.stage,
        "m",
        layer="conv",
        location=Location(target_node=target),
        evidence=evidence,
    )


def test_attribute_graph_and_input_findings_become_their_patches():
    fs = [_f(R.CONV_GEOMETRY.code, attribute="pads", source=[0, 0, 0, 0]),
          _f(R.OP_SEMANTICS.code, changes=[("alpha", 0.2)]),
          _f(R.EXTRA_OP.code, nodes=["/t/Transpose"]),
          _f(R.MISSING_OP.code, op="floor-divide", node="/div/Div"),
          _f(R.INPUT_SCALING.code, scale=2.0, shift=1.0, tensor="x")]
    plan = plan_repairs(fs, [], "onnx")
    kinds = [plan.steps[id(f)].kind for f in fs]
    assert kinds == [
        "patch-attributes",
        "patch-attributes",
        "patch-graph",
        "patch-graph",
        "patch-graph",
    ]
    assert [(e.attribute, e.value) for e in plan.edits] == [("pads", [0, 0, 0, 0]), ("alpha", 0.2)]
    assert [e.action for e in plan.graph_edits] == ["remove", "floor-divide", "insert-affine"]
    assert plan.graph_edits[2].affine == (0.5, -0.5)
    assert plan.steps[id(fs[0])].description == "set /conv/Conv's pads to the source's [0, 0, 0, 0]"


def test_nothing_is_planned_where_no_patch_applies():
    # a TFLite target takes no geometry edit (only options); a repaired, a non-error or an unknown
    # finding is skipped
    geometry = _f(R.CONV_GEOMETRY.code, attribute="pads", source=[0, 0, 0, 0])
    assert not plan_repairs([geometry], [], "tflite").steps
    done = geometry.with_(repair=Repair("patch-attributes", "x", "out.onnx", True))
    assert not plan_repairs(
        [
            done,
            _f(R.CONV_GEOMETRY.code, severity="warning", attribute="pads", source=[0] * 4),
            _f(R.MODEL_CRASH.code),
        ],
        [],
        "onnx",
    ).steps
    # a weight finding with no aligned layer cannot be patched
    assert not plan_repairs([_f(R.WEIGHTS_CORRUPTED.code)], [], "onnx").steps
    # every planner's rule is a registered rule
    assert all(code in R.RULES for code in PLANNERS)
