"""Polygraphy, run side by side on the ONNX-target cases, as its users run it:

    polygraphy run TARGET.onnx --onnxrt --onnx-outputs mark all \\
        --load-inputs inputs.json --load-outputs source.json --atol X --rtol X

The source's per-layer outputs (from convlint's runner) and its final outputs (named like the
target's) are saved as Polygraphy RunResults. Polygraphy pairs tensors by name; when names
differ it assumes a correspondence. We record whether it fails the comparison, the first
target tensor it fails, the source tensor it paired with it, and whether that source layer is
the one the fault is in.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path


def run(source_path: str, target_path: str, tol: float, n: int = 2) -> dict:
    from polygraphy.comparator import IterationResult, RunResults
    from polygraphy.json import save_json

    from convlint.analyzers.differential.inputs import plan_inputs, random_inputs
    from convlint.analyzers.models import open_model

    src, tgt = open_model(source_path), open_model(target_path)
    plan = plan_inputs(src.input_specs(), tgt.input_specs())
    xs = random_inputs(plan, n, 0)
    its, feeds = [], []
    out_names = [s.name for s in tgt.output_specs()]
    for x in xs:
        outs = dict(src.intermediates(x))
        for name, v in zip(out_names, src.run(x).values(), strict=False):
            outs[name] = v
        its.append(IterationResult(outs, runner_name="source"))
        feeds.append(plan.for_target(x))
    with tempfile.TemporaryDirectory(prefix="convlint-polygraphy-") as d:
        rr = RunResults()
        rr.append(("source", its))
        rr.save(str(Path(d) / "source.json"))
        save_json(feeds, str(Path(d) / "inputs.json"))
        exe = str(Path(sys.executable).with_name("polygraphy"))
        cmd = [
            exe,
            "run",
            target_path,
            "--onnxrt",
            "--onnx-outputs",
            "mark",
            "all",
            "--load-inputs",
            str(Path(d) / "inputs.json"),
            "--load-outputs",
            str(Path(d) / "source.json"),
            "--atol",
            str(tol),
            "--rtol",
            str(tol),
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    text = p.stdout + p.stderr
    paired = dict(re.findall(r"Assuming source output: (\S+) corresponds to output: (\S+)", text))
    paired_rev = {v: k for k, v in paired.items()}
    failed = re.findall(r"FAILED \| Output: '([^']+)'", text)
    first = failed[0] if failed else None
    return {"detected": p.returncode != 0, "first_failed": first,
            "paired_source": paired_rev.get(first, first) if first else None,
            "compared": len(re.findall(r"Comparing Output:", text)) // max(n, 1)}
