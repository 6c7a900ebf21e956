"""Training checks: rules over recorded traces (fast, synthetic traces with one planted symptom
and a healthy twin), the probes in process, and `convlint train-check` end to end on generated
training programs with a known fault and their fixed twins."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import ROOT, train_check_json
from convlint.analyzers.sandbox.record import Recorder, read_trace
from convlint.analyzers.training.rules import Thresholds, analyze

sys.path.insert(0, str(ROOT / "bench" / "training"))
import programs  # noqa: E402


def st(mean=0.0, std=1.0, absmax=3.0, norm=10.0, n=100, **kw):
    return {
        "mean": mean,
        "std": std,
        "min": -absmax,
        "max": absmax,
        "absmax": absmax,
        "norm": norm,
        "n": n,
        "frac_zero": 0.0,
        "frac_nonfinite": 0.0,
        **kw,
    }


LAYERS = [
    {
        "name": f"dense{i}",
        "index": i,
        "type": "Dense",
        "activation": a,
        "params": 100,
        "fan_in": 16,
        "file": "train.py",
        "line": 10 + i,
    }
    for i, a in enumerate(["relu", "relu", "softmax"])
]
META = {
    "framework": "keras",
    "optimizer": "SGD",
    "learning_rate": 0.05,
    "loss": "sparse_categorical_crossentropy",
    "from_logits": False,
    "output_activation": "softmax",
    "output_units": 10,
    "labels": "index",
    "optimizer_site": {"file": "train.py", "line": 20},
    "loss_site": {"file": "train.py", "line": 21},
    "fit_site": {"file": "train.py", "line": 22},
    "input_mean": 0.0,
    "input_std": 1.0,
    "input_min": -3,
    "input_max": 3,
}


def healthy(n=60, **over):
    """A trace of a run that learns: the loss falls, accuracy rises, updates ~1e-3 of W."""
    steps = []
    for i in range(n):
        layers = {}
        for la in LAYERS:
            post = st(frac_dead=0.1) if la["activation"] == "relu" else st(0.1, 0.2, 1.0)
            layers[la["name"]] = {
                "pre": st(),
                "post": post,
                "w": st(0, 0.25, 1.0, 10.0),
                "dw": st(0, 1e-3, 1e-2, 0.01),
                "gw": st(0, 0.01, 0.05, 0.1),
            }
        steps.append(
            {
                "step": i,
                "epoch": i // 20,
                "layers": layers,
                "loss": 2.3 * math.exp(-i / 20),
                "metrics": {"accuracy": min(0.97, 0.1 + i / 60)},
            }
        )
    t = {
        "meta": dict(META),
        "layers": [dict(la) for la in LAYERS],
        "steps": steps,
        "end": {"steps": n},
    }
    for k, v in over.items():
        t["meta"][k] = v
    return t


def rules_of(rep) -> set:
    return {f.rule for f in rep.findings}


def test_a_healthy_trace_has_no_finding():
    rep = analyze(healthy(), "train.py")
    assert rep.verdict == "healthy" and rep.findings == () and rep.exit_code == 0
    assert rep.to_dict()["kind"] == "training" and "metrics" not in rep.to_dict()


def test_nan_in_a_layer_is_localized_to_the_first_layer_and_the_learning_rate():
    t = healthy()
    for s in t["steps"][5:]:
        s["layers"]["dense1"]["pre"] = st(frac_nonfinite=0.5)
        s["layers"]["dense2"]["pre"] = st(frac_nonfinite=1.0)
        s["loss"] = float("nan")
    for s in t["steps"][:5]:  # the updates are huge: the learning rate is to blame
        for la in LAYERS:
            s["layers"][la["name"]]["dw"] = st(norm=5.0)
    rep = analyze(t, "train.py")
    f = next(f for f in rep.findings if f.rule == "CL502")
    assert f.layer == "dense1" and f.hyperparameter == "learning_rate" and f.stage == "forward"
    # the optimizer's line
    assert "learning_rate 0.05 → 0.01" in f.repair.description and f.location.line == 20
    assert "CL501" in rules_of(rep) and rep.verdict == "faulty" and rep.exit_code == 1


def test_nan_loss_with_finite_layers_blames_the_loss():
    t = healthy()
    t["steps"][3]["loss"] = float("inf")
    rep = analyze(t, "train.py")
    f = next(f for f in rep.findings if f.rule == "CL501")
    assert f.hyperparameter == "loss" and "log" in f.repair.description and f.location.line == 21


def test_dead_relu_and_saturated_sigmoid_are_localized_to_their_layer():
    t = healthy()
    for s in t["steps"][10:]:
        s["layers"]["dense1"]["post"] = st(frac_dead=0.95)
    rep = analyze(t, "train.py")
    f = next(f for f in rep.findings if f.rule == "CL513")
    assert (
        f.layer == "dense1"
        and f.location.line == 11
        and f.hyperparameter in ("activation", "initializer", "learning_rate")
    )
    t = healthy()
    t["layers"][0]["activation"] = "sigmoid"
    for s in t["steps"]:
        s["layers"]["dense0"]["post"] = st(frac_sat=0.97)
    rep = analyze(t, "train.py")
    f = next(f for f in rep.findings if f.rule == "CL512")
    assert (
        f.layer == "dense0" and f.hyperparameter == "activation" and "relu" in f.repair.description
    )


def test_vanishing_and_exploding_gradients():
    t = healthy()
    for s in t["steps"]:
        s["layers"]["dense0"]["gw"] = st(norm=1e-6)
    rep = analyze(t, "train.py")
    assert next(f for f in rep.findings if f.rule == "CL517").layer == "dense0"
    t = healthy()
    for i, s in enumerate(t["steps"]):
        s["layers"]["dense1"]["gw"] = st(norm=0.1 * 10 ** min(i, 6), absmax=0.1 * 10 ** min(i, 6))
    rep = analyze(t, "train.py")
    assert next(f for f in rep.findings if f.rule == "CL520").layer == "dense1"


def test_flat_loss_with_tiny_updates_blames_a_low_learning_rate():
    t = healthy(learning_rate=1e-7)
    for s in t["steps"]:
        s["loss"] = 2.30
        s["metrics"]["accuracy"] = 0.1
        for la in LAYERS:
            s["layers"][la["name"]]["dw"] = st(norm=1e-7)
    rep = analyze(t, "train.py")
    f = next(f for f in rep.findings if f.rule == "CL505")
    assert f.hyperparameter == "learning_rate" and "1e-07 → 0.01" in f.repair.description
    # too few steps for a trend: nothing is claimed
    t["steps"] = t["steps"][:10]
    assert "CL505" not in rules_of(analyze(t, "train.py"))


def test_optimizer_settings_out_of_range_are_blamed():
    t = healthy(optimizer_config={"momentum": 1.5})
    for s in t["steps"]:
        s["loss"] = 2.3
        s["metrics"]["accuracy"] = 0.1
    f = next(f for f in analyze(t, "train.py").findings if f.rule == "CL505")
    assert f.hyperparameter == "optimizer" and "momentum 1.5 → 0.9" in f.repair.description


@pytest.mark.parametrize(
    "meta, rule",
    [
        (
            {"output_activation": "softmax", "loss": "binary_crossentropy", "output_units": 1},
            "CL530",
        ),
        ({"output_activation": "relu"}, "CL531"),
        (
            {
                "output_activation": "sigmoid",
                "loss": "categorical_crossentropy",
                "labels": "onehot",
            },
            "CL532",
        ),
        ({"from_logits": True}, "CL533"),
        (
            {
                "output_activation": "sigmoid",
                "loss": "mse",
                "labels": "real",
                "label_min": 25.0,
                "label_max": 346.0,
            },
            "CL514",
        ),
        ({"input_mean": 4.8, "input_std": 6.0, "input_min": 0.0, "input_max": 16.0}, "CL534"),
    ],
)
def test_setup_faults_from_the_model_and_loss(meta, rule):
    rep = analyze(healthy(**meta), "train.py")
    assert rule in rules_of(rep), rep.findings
    f = next(f for f in rep.findings if f.rule == rule)
    assert f.repair and f.repair.kind == "change-hyperparameter" and f.hyperparameter


def test_thresholds_are_configurable_and_checked():
    t = healthy()
    for s in t["steps"][10:]:
        s["layers"]["dense1"]["post"] = st(frac_dead=0.75)
    assert "CL513" in rules_of(analyze(t, "train.py"))
    assert "CL513" not in rules_of(analyze(t, "train.py", Thresholds.from_dict({"dead": 0.8})))
    with pytest.raises(ValueError, match="unknown training threshold"):
        Thresholds.from_dict({"deadd": 0.8})


def test_config_training_table(tmp_path):
    from convlint.analyzers import config as C
    from convlint.analyzers.errors import ConvlintError

    (tmp_path / "convlint.toml").write_text("[training]\ndead = 0.8\nmin-steps = 50\n")
    cfg = C.load(tmp_path / "convlint.toml")
    assert cfg.training.dead == 0.8 and cfg.training.min_steps == 50
    (tmp_path / "convlint.toml").write_text("[training]\nded = 0.8\n")
    with pytest.raises(ConvlintError, match="training"):
        C.load(tmp_path / "convlint.toml")


def test_recorder_streams_and_a_truncated_trace_is_read(tmp_path):
    p = tmp_path / "t.jsonl"
    rec = Recorder(str(p), max_steps=3)
    rec.set_meta(framework="torch")
    rec.layer("fc", type="Linear", line=3)
    for _ in range(3):
        rec.begin_step()
        rec.put("fc", "w", st())
        reason = rec.end_step(1.0, {"accuracy": 0.5})
    assert reason == "step limit (3) reached"
    rec.begin_step()
    rec.put("fc", "w", st(frac_nonfinite=0.1))
    assert rec.end_step(float("nan")) == "the loss is not finite"
    with open(p, "a") as fh:
        fh.write('{"step": {"trunc')  # a killed run leaves half a line
    t = read_trace(str(p))
    assert (
        len(t["steps"]) == 4 and t["layers"][0]["line"] == 3 and t["meta"]["framework"] == "torch"
    )


def test_torch_probe_in_process_records_real_statistics():
    torch = pytest.importorskip("torch")
    from convlint.analyzers.training import convlint_probe

    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(inplace=True), torch.nn.Linear(16, 3)
    )
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    h = convlint_probe(m, opt)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        h.log(loss)
        opt.step()
    t = h.trace()
    assert [la["name"] for la in t["layers"]] == ["0", "2"] and t["layers"][0][
        "activation"
    ] == "relu"
    s = t["steps"][-1]["layers"]
    assert {"pre", "post", "w", "dw", "gw", "gout"} <= set(s["0"]) and 0 <= s["0"]["post"][
        "frac_dead"
    ] <= 1
    assert s["0"]["w"]["norm"] == pytest.approx(float(m[0].weight.detach().norm()), rel=1e-5)
    assert t["steps"][-1]["loss"] == pytest.approx(float(loss), rel=1e-6)
    h.remove()
    assert not m[0]._forward_hooks


# -- end to end: generated programs with a known fault, and their fixed twins ------------------
E2E = [
    "t04_lr_too_high",
    "t12_custom_loss_log0",
    "t01_bce_on_linear_output",
    "k01_relu_output",
    "k10_deep_sigmoid",
]


def _train_check(path, *extra):
    return train_check_json(path, *extra, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("name", E2E)
def test_train_check_finds_the_planted_fault_and_passes_its_fixed_twin(tmp_path, name):
    case = next(c for c in programs.cases() if c.name == name)
    bad, good = programs.sources(case)
    (tmp_path / "bad.py").write_text(bad)
    (tmp_path / "good.py").write_text(good)
    rc, rep = _train_check(tmp_path / "bad.py")
    assert rep["kind"] == "training" and rc == 1, rep
    hit = [f for f in rep["findings"] if f["rule"] in case.rules]
    assert hit, rep["findings"]
    assert any(f["hyperparameter"] == case.hyperparameter for f in rep["findings"])
    assert any(
        case.fix_word.lower() in (f["repair"] or {}).get("description", "").lower()
        for f in rep["findings"]
    )
    if case.layer:
        f = next(f for f in hit if f["layer"] == case.layer)
        line = f["location"]["line"]
        assert (
            f"name='{case.layer}'" in bad.splitlines()[line - 1]
            or f"('{case.layer}'" in bad.splitlines()[line - 1]
        )
    rc, rep = _train_check(tmp_path / "good.py")
    assert (rc, rep["verdict"], rep["findings"]) == (0, "healthy", []), rep["findings"]


def test_train_check_needs_consent_and_training(tmp_path):
    s = tmp_path / "noop.py"
    s.write_text("print('no training here')\n")
    p = subprocess.run(
        [sys.executable, "-m", "convlint", "train-check", str(s), "--format", "json"],
        capture_output=True,
        text=True,
    )
    d = json.loads(p.stdout)
    assert (
        p.returncode == 2
        and d["verdict"] == "error"
        and d["kind"] == "training"
        and "allow-exec" in d["findings"][0]["message"]
    )
    rc, d = _train_check(s)
    assert rc == 2 and d["findings"][0]["rule"] == "CL542"
    s.write_text("import sys\nx = 1\nraise ValueError('broken data')\n")
    rc, d = _train_check(s)
    assert rc == 1 and d["verdict"] == "crash" and d["findings"][0]["rule"] == "CL540"
    assert d["findings"][0]["location"]["line"] == 3
    s.write_text("import time\ntime.sleep(30)\n")
    rc, d = _train_check(s, "--timeout", "2")
    assert d["findings"][0]["rule"] == "CL541" and d["training"]["timed_out"] is True
    rc, d = _train_check(tmp_path / "missing.py")
    assert rc == 2 and "no such file" in d["findings"][0]["message"]


def test_oscillating_loss_slow_convergence_unchanged_weights_and_bad_accuracy():
    t = healthy(batch_size=1)
    for i, s in enumerate(t["steps"]):
        s["loss"] = 2.0 + (1.5 if (i // 3) % 2 else -1.5)  # swings, never converges
        s["metrics"]["accuracy"] = 0.5
    f = next(f for f in analyze(t, "train.py").findings if f.rule == "CL521")
    assert f.stage == "trend" and f.hyperparameter in ("batch_size", "learning_rate")
    t = healthy(learning_rate=1e-6)
    for i, s in enumerate(t["steps"]):
        s["loss"] = 2.3 - 0.001 * i  # falls, but barely
        s["metrics"]["accuracy"] = 0.1 + 0.3 * i / len(t["steps"])
        for la in LAYERS:
            s["layers"][la["name"]]["dw"] = st(norm=1e-5)
    f = next(f for f in analyze(t, "train.py").findings if f.rule == "CL522")
    assert f.hyperparameter == "learning_rate" and "→ 0.01" in f.repair.description
    t = healthy()
    for s in t["steps"]:
        s["layers"]["dense1"]["dw"] = st(norm=0.0)
    # one layer still while the others move: the root cause (CL506), its symptom (CL511) folded in
    f = next(f for f in analyze(t, "train.py").findings if f.rule == "CL506")
    assert f.layer == "dense1" and "CL511" in {s["rule"] for s in f.evidence["symptoms"]}
    assert "CL511" not in rules_of(analyze(t, "train.py"))
    t = healthy()
    t["steps"][7]["metrics"]["accuracy"] = 1.7
    assert "CL504" in rules_of(analyze(t, "train.py"))
    t = healthy()
    for s in t["steps"][4:]:
        s["layers"]["dense0"]["post"] = st(absmax=5e7)
    assert next(f for f in analyze(t, "train.py").findings if f.rule == "CL510").layer == "dense0"


def test_still_weights_are_not_a_cut_path_when_their_own_gradient_explains_them():
    # the twin above: a layer whose weights never move while a gradient of normal size reaches
    # it is a structural cause (CL506); here its gradient vanishes (1e-10 of the output layer's)
    # or is non-finite, which the vanishing and non-finite rules own: no CL506
    for gw in (st(0, 1e-12, 1e-11, 1e-11), st(0, 1.0, 3.0, float("nan"), frac_nonfinite=1.0)):
        t = healthy()
        for s in t["steps"]:
            s["layers"]["dense1"]["dw"] = st(norm=0.0)
            s["layers"]["dense1"]["gw"] = gw
        assert "CL506" not in rules_of(analyze(t, "train.py"))
