"""Run the stages over one captured artifact. Pure: no runner is called here."""

from __future__ import annotations

from dataclasses import dataclass, field

from convlint.analyzers.localize import graph, hyperparameters, inputs, parameters
from convlint.analyzers.localize.align import Alignment, match_kernels
from convlint.analyzers.localize.canonical import kernels
from convlint.analyzers.localize.tool import identify


@dataclass
class Capture:
    """What localization reads: both layer tables, per-sample intermediates, metadata."""

    source_format: str
    target_format: str
    source_layers: list
    target_layers: list
    source_runs: list          # per sample {layer or tensor: array}
    target_runs: list
    target_meta: dict = field(default_factory=dict)
    source_inputs: list = field(default_factory=list)  # input names in source_runs
    layout_perm: tuple | None = None                    # the NHWC/NCHW transpose the check applied
    layouts: tuple = ("NCHW", "NCHW")                   # where each model keeps channels


@dataclass
class Localization:
    findings: list
    alignment: Alignment
    matches: list              # KernelMatch
    weights_table: list
    graph_evidence: dict
    tool: dict

    def evidence(self) -> dict:
        return {"alignment": self.alignment.to_dict(), "weights": self.weights_table,
                "layers": self.graph_evidence.get("layer_errors", []),
                "op_counts": self.graph_evidence.get("op_counts", {}),
                "conversion_tool": self.tool}


SAME_WEIGHTS = 0.5  # a kernel pair scoring below this holds unrelated weights


def not_same_model(src_k: list, matches: list, acts: list, inputs: list, rtol: float):
    """A CL102 finding when the target is not the source converted: at least two kernels, at
    most a quarter of them found in the target by their weights, and no layer output reproduced."""
    if len(src_k) < 2:
        return None
    strong = sum(1 for m in matches if m.method.startswith("weights") and m.score >= SAME_WEIGHTS)
    reproduced = [a for a in acts if a.source not in inputs and a.rel_err <= rtol]
    if strong > len(src_k) / 4 or reproduced:
        return None
    from convlint.analyzers import rules as R
    from convlint.analyzers.report.findings import Finding

    return Finding(
        R.NOT_SAME_MODEL.code,
        "error",
        "graph",
        f"the target is not this source converted: {strong} of {len(src_k)} weight-bearing "
        "layers of the source are found in the target by their weights, and no layer's "
        "output is reproduced (another architecture or another checkpoint?)",
        evidence={"kernels": len(src_k), "found_by_weights": strong},
    )


def run(c: Capture, layer_rtol: float = graph.LAYER_RTOL) -> Localization:
    src_k = kernels(c.source_layers)
    tgt_k = kernels(c.target_layers)
    matches, un_s, un_t = match_kernels(src_k, tgt_k)
    p_findings, table = parameters.stage(matches)
    acts, h_findings, g_findings, g_ev = [], [], [], {}
    if c.source_runs and c.target_runs:
        acts = graph.align_activations(
            c.source_layers, c.source_runs, c.target_runs, c.source_inputs
        )
        h_findings = hyperparameters.conv_stage(matches, c.source_layers, c.target_layers,
                                                c.layouts, c.source_runs[0], c.target_runs[0])
        h_findings += hyperparameters.activation_stage(acts, c.source_layers, c.target_layers)
        h_findings += inputs.stage(matches, c.source_layers, c.target_layers, c.source_runs,
                                   c.target_runs, c.source_inputs, c.layout_perm)
        g_findings, g_ev = graph.stage(c.source_layers, c.target_layers, acts,
                                       p_findings + h_findings, layer_rtol,
                                       frozenset(k.layer for k in src_k), matches, c.layouts)
    findings = g_findings + h_findings + list(p_findings)
    alignment = Alignment(matches, acts, un_s, un_t)
    other = not_same_model(src_k, matches, acts, c.source_inputs, layer_rtol)
    if other is not None:
        findings = [other]
    return Localization(findings, alignment, matches, table, g_ev, identify(c.target_meta))
