"""``train-check --verify-fix`` (analyzers/training/verify.py): a fix is applied to a copy of the
script and verified by a rerun only when the symptom is gone and the metric improved; a wrong
fix is refused; the user's script is never modified."""

from __future__ import annotations

import pytest
from training_faults import torch_program

from conftest import train_check_json
from convlint.analyzers.report.findings import Finding, Location, Repair, ScriptReport
from convlint.analyzers.training.check import TrainOptions, _train_check
from convlint.analyzers.training.verify import edits_for, verify


@pytest.mark.slow
def test_verify_fix_verifies_the_zero_grad_fix_and_writes_the_fixed_copy(tmp_path):
    s = tmp_path / "train.py"
    src = torch_program(loop="no_zero_grad")
    s.write_text(src)
    out = tmp_path / "train.fixed.py"
    rc, rep = train_check_json(s, "--verify-fix", "--write-fixed", str(out))
    f = next(f for f in rep["findings"] if f["rule"] == "CL507")
    assert f["repair"]["verified"] is True and f["repair"]["output"] == str(out), f
    assert f["repair"]["metrics_after"]["verdict"] == "healthy"
    assert (
        "optimizer.zero_grad()" in out.read_text() and s.read_text() == src
    )  # the script is untouched
    rc, rep = train_check_json(s, "--write-fixed", str(s))
    assert rc == 2 and "script itself" in rep["findings"][0]["message"]


@pytest.mark.slow
def test_a_wrong_fix_is_not_verified(tmp_path):
    """A learning-rate change offered for gradients that accumulate: the rerun still accumulates."""
    s = tmp_path / "train.py"
    s.write_text(torch_program(loop="no_zero_grad"))
    opts = TrainOptions(allow_exec=True, cwd=str(tmp_path))
    rep = _train_check(str(s), s, None, opts, lambda m: None)
    f = next(f for f in rep.findings if f.rule == "CL507")
    wrong = f.with_(
        repair=Repair("change-hyperparameter", "learning_rate 0.01 → 0.001"),
        evidence={"structure": f.evidence["structure"]},
    )
    rep = ScriptReport(rep.script, rep.verdict, (wrong,), kind="training", extra=rep.extra)

    def rerun(path, seconds):
        return _train_check(path, type(s)(path), None, opts, lambda m: None)

    got = verify(rep, str(s), rerun, 600).findings[0]
    assert got.repair.verified is False
    assert got.evidence["verification"][0]["result"] == "the symptom persists"


def test_fixes_become_source_edits():
    src = torch_program(loop="zero_grad_late", params="model[0].parameters()", units=5)
    lines = src.splitlines()
    opt_line = next(i for i, ln in enumerate(lines, 1) if "torch.optim" in ln)
    out_line = next(i for i, ln in enumerate(lines, 1) if "nn.Sequential" in ln)
    sites = {"optimizer": opt_line, "output": out_line}

    def apply(rule, fix, kind=None, line=None):
        f = Finding(
            rule,
            "error",
            "loss",
            "m",
            location=Location(file="t.py", line=line),
            evidence={"fix_edit": {"kind": kind}} if kind else {},
            repair=Repair("change-hyperparameter", fix),
        )
        from convlint.analyzers.scripts.edits import apply as apply_edits

        return apply_edits(src, edits_for(f, fix, src, sites))

    moved = apply("CL508", "move", "move-zero-grad")
    body = [ln.strip() for ln in moved.splitlines()[-4:]]
    assert body == ["optimizer.zero_grad()", "loss.backward()", "optimizer.step()"] or body[
        -3:
    ] == ["optimizer.zero_grad()", "loss.backward()", "optimizer.step()"], moved
    assert "Adam(model.parameters()" in apply("CL506", "pass all", "optimizer-params")
    assert "nn.Linear(32, 10)" in apply("CL537", "output units 5 → 10", line=out_line)
    assert "lr=0.001" in apply("CL505", "learning_rate 0.01 → 0.001")
