"""Root causes before symptoms (analyzers/training/causes.py): structural faults of the training
loop (CL506-CL508), labels against the loss and the output layer (CL535-CL538), one finding
per root cause, no no-op fix, and a verdict judged against what the data allows. Each fault
program has a healthy twin that raises nothing."""

from __future__ import annotations

import pytest
from test_training import healthy, rules_of, st
from training_faults import FAULTS, torch_program

from conftest import train_check_json
from convlint.analyzers.training.causes import noop
from convlint.analyzers.training.rules import analyze


# -- end to end: PyTorch programs on load_digits ---------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAULTS))
def test_torch_structural_and_label_faults_are_the_root_cause(tmp_path, name):
    change, rule = FAULTS[name]
    s = tmp_path / f"{name}.py"
    s.write_text(torch_program(**change))
    rc, rep = train_check_json(s)
    assert rc == 1, rep
    roots = [f for f in rep["findings"] if f["rule"] != "CL540"]
    assert roots and roots[0]["rule"] == rule, rep["findings"]
    assert all(f["hyperparameter"] != "learning_rate" for f in rep["findings"]), rep["findings"]
    assert roots[0]["location"]["line"], roots[0]


@pytest.mark.slow
def test_the_healthy_torch_twin_raises_nothing(tmp_path):
    s = tmp_path / "healthy.py"
    s.write_text(torch_program())
    rc, rep = train_check_json(s)
    assert (rc, rep["verdict"], rep["findings"]) == (0, "healthy", []), rep["findings"]


KERAS = """import numpy as np
import keras
from sklearn import datasets

keras.utils.set_random_seed(0)
X, y = datasets.load_iris(return_X_y=True)
X = (X - X.mean(0)) / X.std(0)
Y = {labels}
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(3, activation="softmax")])
model.compile(optimizer="adam", loss="{loss}", metrics=["accuracy"])
model.fit(X, Y, epochs=30, batch_size=16, verbose=0)
"""


@pytest.mark.slow
def test_keras_one_hot_labels_with_a_sparse_loss_and_the_fixed_twin(tmp_path):
    s = tmp_path / "bad.py"
    s.write_text(
        KERAS.format(
            labels="keras.utils.to_categorical(y, 3)", loss="sparse_categorical_crossentropy"
        )
    )
    rc, rep = train_check_json(s)
    f = next(f for f in rep["findings"] if f["rule"] == "CL536")
    assert (
        rc == 1
        and "categorical_crossentropy" in f["repair"]["description"]
        and f["location"]["line"] == 11
    )
    s = tmp_path / "good.py"
    s.write_text(
        KERAS.format(labels="keras.utils.to_categorical(y, 3)", loss="categorical_crossentropy")
    )
    rc, rep = train_check_json(s)
    assert (rc, rep["verdict"], rep["findings"]) == (0, "healthy", []), rep["findings"]


# -- over traces: the rules alone
# --------------------------------------------------------------------
def _labels(**meta):
    t = healthy()
    t["meta"].update(meta)
    if meta.get("output_activation", "softmax") is None:  # a softmax outside the model's layers
        t["layers"][-1]["activation"] = None
    return analyze(t, "train.py")


@pytest.mark.parametrize(
    "meta, rule, fix_word",
    [
        (
            {"labels": "onehot", "num_classes": 10, "label_min": 0.0, "label_max": 1.0},
            "CL536",
            "categorical_crossentropy",
        ),
        (
            {
                "loss": "categorical_crossentropy",
                "labels": "index",
                "label_min": 0.0,
                "label_max": 9.0,
            },
            "CL536",
            "sparse_categorical_crossentropy",
        ),
        (
            {"labels": "index", "label_min": 0.0, "label_max": 9.0, "output_units": 4},
            "CL537",
            "4 → 10",
        ),
        ({"labels": "index", "label_min": 1.0, "label_max": 10.0}, "CL535", "labels - 1"),
        (
            {
                "loss": "binary_crossentropy",
                "output_activation": "sigmoid",
                "output_units": 1,
                "labels": "real",
                "label_min": 0.0,
                "label_max": 255.0,
                "label_integral": True,
            },
            "CL535",
            "/ 255",
        ),
        (
            {
                "framework": "torch",
                "loss": "cross_entropy",
                "output_activation": None,
                "output_is_probability": True,
                "labels": "index",
                "label_min": 0.0,
                "label_max": 9.0,
            },
            "CL538",
            "logits",
        ),
    ],
)
def test_labels_against_the_loss_and_the_output_layer(meta, rule, fix_word):
    rep = _labels(**meta)
    f = rep.findings[0]
    assert f.rule == rule and fix_word in f.repair.description and rep.verdict == "faulty", (
        rep.findings
    )


def test_labels_that_fit_the_loss_and_the_output_raise_nothing():
    assert (
        _labels(
            labels="index", label_min=0.0, label_max=9.0, label_integral=True, majority_rate=0.11
        ).findings
        == ()
    )
    assert (
        _labels(
            labels="onehot",
            num_classes=10,
            loss="categorical_crossentropy",
            label_min=0.0,
            label_max=1.0,
        ).findings
        == ()
    )


def test_structure_faults_from_the_probes_meta():
    for s, rule in (
        ({"accumulating": 5, "checked_steps": 6}, "CL507"),
        ({"zeroed_before_step": 6, "checked_steps": 6}, "CL508"),
        ({"frozen": ["dense2"]}, "CL506"),  # the output layer frozen
        ({"all_no_grad": True}, "CL506"),
    ):
        rep = _labels(structure=s)
        assert rep.findings[0].rule == rule and rep.verdict == "faulty", (s, rep.findings)
    # a frozen backbone under a head that trains, in a run that learns: transfer learning, no
    # finding
    assert (
        _labels(structure={"frozen": ["dense0"], "accumulating": 1, "checked_steps": 6}).findings
        == ()
    )


def test_one_finding_per_root_cause_with_its_symptoms_and_no_learning_rate():
    t = healthy(structure={"accumulating": 5, "checked_steps": 6})
    for s in t["steps"]:
        s["loss"], s["metrics"]["accuracy"] = 2.3, 0.1  # flat: CL505 is its symptom
    rep = analyze(t, "train.py")
    assert [f.rule for f in rep.findings] == ["CL507"], rep.findings
    f = rep.findings[0]
    assert (
        "CL505" in {s["rule"] for s in f.evidence["symptoms"]}
        and f.hyperparameter != "learning_rate"
    )


def test_a_fix_that_leaves_the_value_unchanged_is_dropped():
    assert noop("learning_rate 0.001 → 0.001") and noop("units 10 → 10")
    assert not noop("learning_rate 0.1 → 0.01") and not noop("sigmoid → relu in the hidden layers")


def test_not_learning_is_judged_against_the_majority_class():
    t = healthy(majority_rate=0.6)
    for s in t["steps"]:
        s["metrics"]["accuracy"] = 0.6  # the loss falls, but the model predicts the majority class
    rep = analyze(t, "train.py")
    f = next(f for f in rep.findings if f.rule == "CL505")
    assert "majority" in f.message and rep.verdict == "faulty"
    assert "CL505" not in rules_of(analyze(healthy(majority_rate=0.6), "train.py"))


def test_gradients_growing_from_tiny_initial_values_are_not_exploding():
    t = healthy()
    for i, s in enumerate(t["steps"]):  # 1e-6 at step 0, then the run's scale (~0.1) from step 5 on
        s["layers"]["dense0"]["gw"]["norm"] = 1e-6 if i == 0 else 0.1
    assert "CL520" not in rules_of(analyze(t, "train.py"))
    for s in t["steps"][40:]:  # a real blow-up against the run's own scale
        s["layers"]["dense0"]["gw"]["norm"] = 1e4
    assert "CL520" in rules_of(analyze(t, "train.py"))


def test_a_softmax_over_one_unit_and_a_run_that_moves_but_learns_nothing():
    t = healthy(
        output_units=1, loss="mean_squared_error", labels="real", label_min=0.0, label_max=3.0
    )
    f = analyze(t, "train.py").findings[0]
    assert f.rule == "CL537" and "softmax → linear" in f.repair.description
    t = healthy()
    for s in t["steps"]:
        s["loss"], s["metrics"]["accuracy"] = 2.3, 0.1  # flat, while the weights move 1e-3 per step
    f = next(f for f in analyze(t, "train.py").findings if f.rule == "CL505")
    assert (
        f.hyperparameter == "data"
        and f.evidence["alternatives"][0]["hyperparameter"] == "learning_rate"
    )


def _torch_meta(**meta):
    return {
        "framework": "torch",
        "loss": "mse_loss",
        "from_logits": None,
        "output_activation": None,
        "output_units": 1,
        "labels": "real",
        "label_min": -2.0,
        "label_max": 2.0,
        "label_integral": False,
        **meta,
    }


def test_an_elementwise_loss_that_broadcasts_output_and_target_is_the_root_cause():
    t = healthy(**_torch_meta(loss_input_shape=[32, 1], loss_target_shape=[32]))
    t["layers"][-1]["activation"] = None
    for s in t["steps"]:  # the loss stays at the targets' variance: the symptom it explains
        s["loss"] = 1.0
    rep = analyze(t, "train.py")
    f = rep.findings[0]
    assert f.rule == "CL539" and rep.verdict == "faulty", rep.findings
    assert f.hyperparameter == "loss" and f.location.line == 21  # the loss's line
    assert "squeeze" in f.repair.description and f.evidence["broadcast_shape"] == [32, 32]
    # the healthy twin: the same shapes, or shapes that broadcast to nothing larger
    for a, b in (([32], [32]), ([32, 1], [32, 1]), ([32, 4], [4])):
        t = healthy(**_torch_meta(loss_input_shape=a, loss_target_shape=b))
        t["layers"][-1]["activation"] = None
        assert "CL539" not in rules_of(analyze(t, "train.py")), (a, b)


def test_a_relu_on_the_logits_of_a_loss_that_takes_logits_is_the_root_cause():
    meta = {
        "framework": "torch",
        "loss": "cross_entropy",
        "from_logits": True,
        "output_activation": None,
        "labels": "index",
        "label_min": 0.0,
        "label_max": 9.0,
        "label_integral": True,
    }
    t = healthy(**meta)
    t["layers"][-1]["activation"] = "relu"
    rep = analyze(t, "train.py")
    f = rep.findings[0]
    assert f.rule == "CL533" and f.layer == "dense2" and f.location.line == 12, rep.findings
    assert "drop the relu" in f.repair.description and rep.verdict == "faulty"
    t = healthy(**meta)  # the healthy twin: linear logits
    t["layers"][-1]["activation"] = None
    assert analyze(t, "train.py").findings == ()


def test_the_relu_after_the_output_layer_is_dropped_by_the_fix_edit():
    from convlint.analyzers.report.findings import Finding, Location, Repair
    from convlint.analyzers.scripts.edits import apply as apply_edits
    from convlint.analyzers.training.verify import edits_for

    src = (
        "import torch\n"
        "model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),\n"
        "                            torch.nn.Linear(8, 3), torch.nn.ReLU())\n"
    )
    f = Finding(
        "CL533",
        "error",
        "loss",
        "m",
        location=Location(file="t.py", line=3),
        evidence={"fix_edit": {"kind": "drop-module", "classes": ["ReLU"]}},
        repair=Repair("change-hyperparameter", "drop the relu"),
    )
    out = apply_edits(src, edits_for(f, "drop the relu", src, {}))
    assert out.splitlines()[2].strip() == "torch.nn.Linear(8, 3))", out
    assert "torch.nn.Linear(4, 8), torch.nn.ReLU()," in out  # the hidden ReLU is kept


def test_output_activation_fixes_carry_an_edit_at_the_output_layer():
    from convlint.analyzers.scripts.edits import apply as apply_edits
    from convlint.analyzers.training.verify import edits_for

    src = (
        "import keras\n"
        "model = keras.Sequential([keras.layers.Dense(16, activation='relu'),\n"
        "                          keras.layers.Dense(1, activation='relu')])\n"
    )
    t = healthy(
        loss="mean_squared_error", output_activation="relu", output_units=1, labels="real",
        label_min=-1.0, label_max=1.0, label_integral=True,
    )
    t["layers"][-1].update(activation="relu", line=3)
    f = next(f for f in analyze(t, "train.py").findings if f.rule == "CL514")
    out = apply_edits(src, edits_for(f, f.repair.description, src, {}))
    assert "Dense(1, activation='linear')" in out and "Dense(16, activation='relu')" in out
    t = healthy(loss="binary_crossentropy", output_units=1, labels="binary",
                label_min=0.0, label_max=1.0)
    f = next(f for f in analyze(t, "train.py").findings if f.rule == "CL530")
    assert f.evidence["fix_edit"]["new"] == "sigmoid"
    # the healthy twins: a linear output for the same targets, a sigmoid for binary ones
    t = healthy(loss="mean_squared_error", output_activation="linear", output_units=1,
                labels="real", label_min=-1.0, label_max=1.0)
    t["layers"][-1]["activation"] = "linear"
    assert not {"CL514", "CL530"} & rules_of(analyze(t, "train.py"))


def test_a_layer_whose_gradient_grows_from_near_zero_to_the_runs_scale_is_not_exploding():
    # attention's query/key gradients start near zero (a uniform softmax) for most of a short run,
    # then grow to the scale the other layers had from the start: a healthy run (tiny BERT)
    t = healthy()
    for i, s in enumerate(t["steps"]):
        s["layers"]["dense0"]["gw"]["norm"] = 1e-6 if i < 40 else 0.05
    assert "CL520" not in rules_of(analyze(t, "train.py"))
    # the fault twin: the same layer grows far beyond every layer's early scale
    for s in t["steps"][40:]:
        s["layers"]["dense0"]["gw"]["norm"] = 50.0
    assert "CL520" in rules_of(analyze(t, "train.py"))


def test_a_warning_that_explains_a_training_that_ended_short_makes_the_verdict_faulty():
    # raw features (std in the thousands) and an accuracy that ends at 0.75
    raw = {"input_mean": 945.0, "input_std": 2900.0, "input_min": 1.7, "input_max": 16800.0}
    t = healthy(**raw)
    for i, s in enumerate(t["steps"]):
        s["metrics"]["accuracy"] = min(0.75, 0.1 + i / 60)
    rep = analyze(t, "train.py")
    f = rep.findings[0]
    assert (f.rule, f.severity, rep.verdict) == ("CL534", "error", "faulty"), rep.findings
    assert f.evidence["ended_short"]["accuracy_last"] < 0.95 and "normalize" in f.repair.description
    # the healthy twins: the same inputs in a run that learns (a warning only), and a run that
    # ends short with nothing to explain it (no finding: it may be what the task allows)
    rep = analyze(healthy(**raw), "train.py")
    assert rep.verdict == "healthy" and rules_of(rep) == {"CL534"}
    t = healthy()
    for i, s in enumerate(t["steps"]):
        s["metrics"]["accuracy"] = min(0.75, 0.1 + i / 60)
    assert analyze(t, "train.py").verdict == "healthy"


def test_a_softmax_module_before_cross_entropy_gets_the_drop_module_fix():
    meta = {"framework": "torch", "loss": "cross_entropy", "from_logits": True,
            "output_activation": None, "labels": "index", "label_min": 0.0, "label_max": 9.0}
    t = healthy(**meta)
    t["layers"][-1].update(activation="softmax", activation_module="3")
    f = analyze(t, "train.py").findings[0]
    assert f.rule == "CL533" and f.evidence["fix_edit"]["classes"] == ["Softmax"], f
    assert "drop the nn.Softmax" in f.repair.description and f.location.line == 12
    t = healthy(**meta)  # the healthy twin: logits
    t["layers"][-1]["activation"] = None
    assert analyze(t, "train.py").findings == ()


def test_unnormalized_inputs_explain_a_blow_up_before_the_learning_rate():
    raw = {"input_mean": 300.0, "input_std": 800.0, "input_min": 0.0, "input_max": 4000.0}
    for extra, hp in ((raw, "data"), ({}, "learning_rate")):  # the twin: normalized inputs
        t = healthy(**extra)
        for s in t["steps"][5:]:
            s["loss"] = float("nan")
        for s in t["steps"][:5]:  # huge first updates
            for la in t["layers"]:
                s["layers"][la["name"]]["dw"] = st(norm=5.0)
        f = next(f for f in analyze(t, "train.py").findings if f.rule == "CL501")
        assert f.hyperparameter == hp, (hp, f)
    assert f.evidence.get("alternatives") is None


def test_class_indices_fitted_as_a_regression():
    meta = {
        "framework": "torch",
        "loss": "mse_loss",
        "from_logits": None,
        "output_activation": None,
        "output_units": 1,
        "labels": "real",
        "label_min": 0.0,
        "label_max": 9.0,
        "label_integral": True,
        "label_distinct": 10,
        "label_std": 2.87,
    }
    t = healthy(**meta)
    t["layers"][-1]["activation"] = None
    for s in t["steps"]:
        s["loss"], s["metrics"] = 2.0, {}  # R² about 0.76: ended short
    rep = analyze(t, "train.py")
    f = rep.findings[0]
    assert (f.rule, f.severity, rep.verdict) == ("CL536", "error", "faulty"), rep.findings
    assert "cross_entropy" in f.repair.description and f.hyperparameter == "loss"
    t = healthy(**meta)  # the twin that learns (the loss falls to 0.12, R² 0.98): a warning
    t["layers"][-1]["activation"] = None
    for s in t["steps"]:
        s["metrics"] = {}
    rep = analyze(t, "train.py")
    assert rep.verdict == "healthy" and rules_of(rep) == {"CL536"}, rep.findings
    t = healthy(**{**meta, "label_distinct": None, "label_integral": False})  # real targets
    t["layers"][-1]["activation"] = None
    assert "CL536" not in rules_of(analyze(t, "train.py"))


def test_the_detach_fix_keeps_the_forward_pass_in_the_graph():
    from convlint.analyzers.report.findings import Finding, Location, Repair
    from convlint.analyzers.scripts.edits import apply as apply_edits
    from convlint.analyzers.training.verify import edits_for

    src = (
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        h = torch.relu(self.fc1(x)).detach()\n"
        "        return self.fc2(h)\n"
        "y = torch.zeros(3).detach()\n"  # outside forward(): not the fault, kept
    )
    f = Finding(
        "CL506",
        "error",
        "backward",
        "m",
        location=Location(file="t.py", line=4),
        evidence={"fix_edit": {"kind": "detach", "layer": "fc1"}},
        repair=Repair("change-hyperparameter", "keep fc1's output in the graph"),
    )
    out = apply_edits(src, edits_for(f, "keep fc1's output in the graph", src, {}))
    assert "h = torch.relu(self.fc1(x))\n" in out and "torch.zeros(3).detach()" in out, out
