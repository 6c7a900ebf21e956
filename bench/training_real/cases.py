"""The cases: origin, the patch (textual edits that turn buggy/X.py into fixed/X.py), the
expected location (what the finding must name to count as localized) and the expected fix
(what the proposed fix must mention to count as right). `python cases.py` writes fixed/."""

from __future__ import annotations

import pathlib

HERE = pathlib.Path(__file__).parent

# name: (origin, what the patch changed, [(old, new)], localize keywords, fix keywords, threshold)
# A case trains "well" when its RESULT (accuracy, or R^2 for regressions) is >= threshold.
CASES: dict[str, dict] = {
    "k_so31627380": dict(
        origin="Stack Overflow 31627380 (DeepLocalize Benchmark/StackOverflow/31627380)",
        change="output softmax -> sigmoid, categorical_crossentropy -> binary_crossentropy",
        patch=[
            ('activation="softmax"', 'activation="sigmoid"'),
            ('"categorical_crossentropy"', '"binary_crossentropy"'),
        ],
        where=["dense_1", "softmax", "output", "loss"],
        fix=["sigmoid", "binary"],
        good=0.9,
    ),
    "k_so33969059": dict(
        origin="Stack Overflow 33969059 (DeepLocalize Benchmark/StackOverflow/33969059)",
        change="output activation softmax -> linear (regression)",
        patch=[('activation="softmax"', 'activation="linear"')],
        where=["dense_2", "softmax", "output"],
        fix=["linear"],
        good=0.8,
    ),
    "k_so34311586": dict(
        origin="Stack Overflow 34311586 (DeepLocalize Benchmark/StackOverflow/34311586)",
        change="output softmax -> sigmoid; SGD learning rate 0.001 -> 0.1",
        patch=[
            ('activation="softmax"', 'activation="sigmoid"'),
            ("learning_rate=0.001", "learning_rate=0.1"),
        ],
        where=["dense_2", "softmax", "output", "learning_rate"],
        fix=["sigmoid", "learning"],
        good=0.85,
    ),
    "k_so48251943": dict(
        origin="Stack Overflow 48251943 (DeepLocalize Benchmark/StackOverflow/48251943)",
        change="output activation relu -> tanh (targets are -1/+1)",
        patch=[('Dense(1, activation="relu")', 'Dense(1, activation="tanh")')],
        where=["dense_1", "relu", "output", "label", "target"],
        fix=["tanh", "linear"],
        good=0.85,
    ),
    "k_so34673164": dict(
        origin="Stack Overflow 34673164 (DeepLocalize Benchmark/StackOverflow/34673164)",
        change="output softmax -> sigmoid, mean_squared_error -> binary_crossentropy",
        patch=[
            ('activation="softmax"', 'activation="sigmoid"'),
            ('"mean_squared_error"', '"binary_crossentropy"'),
        ],
        where=["dense_1", "softmax", "output", "loss"],
        fix=["sigmoid", "binary"],
        good=0.9,
    ),
    "k_so45337371": dict(
        origin="Stack Overflow 45337371 (DeepLocalize Benchmark/StackOverflow/45337371)",
        change="Dense(1, softmax) -> Dense(1, sigmoid)",
        patch=[('activation="softmax"', 'activation="sigmoid"')],
        where=["dense_2", "softmax", "output"],
        fix=["sigmoid"],
        good=0.85,
    ),
    "k_so51930566": dict(
        origin="Stack Overflow 51930566 (DeepLocalize Benchmark/StackOverflow/51930566)",
        change="train on the scaled features (X -> X_scaled)",
        patch=[('x = (x * 10.0).astype("float32")', "x = x_scaled")],
        where=["input", "data", "dense"],
        fix=["scal", "normali", "standard"],
        good=0.9,
    ),
    "k_so59278771": dict(
        origin="Stack Overflow 59278771 (DeepLocalize Benchmark/StackOverflow/59278771)",
        change="output sigmoid -> softmax (one-hot labels, categorical_crossentropy)",
        patch=[
            ('Dense(3, activation="sigmoid")', 'Dense(3, activation="softmax")'),
            ("SGD(0.01)", "SGD(0.1)"),
        ],
        where=["dense_1", "sigmoid", "output", "learning_rate"],
        fix=["softmax"],
        good=0.85,
    ),
    "k_so58609115": dict(
        origin="Stack Overflow 58609115 (DeepLocalize Benchmark/StackOverflow/58609115)",
        change="divide inputs and targets by a scale factor (factor 1 -> 1000)",
        patch=[("factor = 1.0", "factor = 1000.0")],
        where=["input", "data", "dense", "learning_rate"],
        fix=["scal", "normali", "learning"],
        good=0.9,
    ),
    "t_zero_grad": dict(
        origin="Stack Overflow 48001598 / PyTorch forum (missing optimizer.zero_grad())",
        change="call optimizer.zero_grad() before each backward()",
        patch=[("        out = model(", "        optimizer.zero_grad()\n        out = model(")],
        where=["zero_grad", "accumul", "backward"],
        fix=["zero_grad"],
        good=0.9,
    ),
    "t_softmax_ce": dict(
        origin="Stack Overflow 55675345 (softmax before nn.CrossEntropyLoss)",
        change="drop the final nn.Softmax (CrossEntropyLoss takes logits)",
        patch=[(",\n                            torch.nn.Softmax(dim=1))", ")")],
        where=["softmax", "2", "loss", "output"],
        fix=["softmax", "logit"],
        good=0.9,
    ),
    "t_optimizer_params": dict(
        origin="PyTorch forum (optimizer built on another model instance's parameters)",
        change="remove the second make_model(): the optimizer holds the trained model's params",
        patch=[("model = make_model()\nloss_fn", "loss_fn")],
        where=["optimizer", "param", "update"],
        fix=["optimizer", "param"],
        good=0.9,
    ),
    "t_lr_high": dict(
        origin="PyTorch forum (loss becomes nan with a large SGD learning rate)",
        change="SGD learning rate 10.0 -> 0.05",
        patch=[("lr=10.0", "lr=0.05")],
        where=["lr", "learning_rate", "optimizer"],
        fix=["learning_rate", "lr"],
        good=0.9,
    ),
    "t_mse_shape": dict(
        origin="PyTorch forum / Stack Overflow (MSELoss target size differs from input size)",
        change="squeeze the (N, 1) output to (N,) before MSELoss",
        patch=[("loss_fn(model(x[i:i + 32]), y", "loss_fn(model(x[i:i + 32])[:, 0], y")],
        where=["loss", "target", "shape", "broadcast"],
        fix=["shape", "squeeze", "target"],
        good=0.35,
    ),
    "t_double_sigmoid": dict(
        origin="PyTorch forum (sigmoid output fed to BCEWithLogitsLoss)",
        change="drop the final nn.Sigmoid (BCEWithLogitsLoss takes logits)",
        patch=[
            (",\n                            torch.nn.Sigmoid())", ")"),
            ("[:, 0] > 0.5)", "[:, 0] > 0)"),
        ],
        where=["sigmoid", "3", "loss", "output"],
        fix=["sigmoid", "logit"],
        good=0.85,
    ),
    "t_relu_output": dict(
        origin="PyTorch forum (ReLU after the last Linear of a classifier)",
        change="drop the ReLU after the output layer",
        patch=[("torch.nn.Linear(32, 10), torch.nn.ReLU())", "torch.nn.Linear(32, 10))")],
        where=["relu", "2", "3", "output"],
        fix=["relu", "linear", "logit"],
        good=0.9,
    ),
    "t_frozen": dict(
        origin="PyTorch forum (parameters frozen with requires_grad=False by mistake)",
        change="do not freeze the parameters (drop the requires_grad=False loop)",
        patch=[("for p in model.parameters():\n    p.requires_grad = False\n", "")],
        where=["2", "requires_grad", "frozen", "param"],
        fix=["requires_grad", "freez", "frozen"],
        good=0.95,
    ),
    "t_unscaled": dict(
        origin="Stack Overflow / PyTorch forum (nan loss on raw, unscaled tabular features)",
        change="train on standardized features",
        patch=[("x = torch.tensor(x, dtype", "x = torch.tensor(x_scaled, dtype")],
        where=["input", "data", "0"],
        fix=["scal", "normali", "standard"],
        good=0.93,
    ),
    "t_detach": dict(
        origin="PyTorch forum (a .detach() in forward: the first layer never gets a gradient)",
        change="remove .detach() from the hidden activation",
        patch=[("torch.relu(self.fc1(x)).detach()", "torch.relu(self.fc1(x))")],
        where=["fc1", "detach"],
        fix=["detach", "graph", "gradient"],
        good=0.93,
    ),
    "t_mse_classes": dict(
        origin="Stack Overflow / PyTorch forum (classification trained with MSELoss on the index)",
        change="10 output logits and CrossEntropyLoss on the integer labels",
        patch=[
            ("torch.nn.Linear(32, 1))", "torch.nn.Linear(32, 10))"),
            ("torch.nn.MSELoss()", "torch.nn.CrossEntropyLoss()"),
            ("loss_fn(out[:, 0], y[i:i + 64].float())", "loss_fn(out, y[i:i + 64])"),
        ],
        where=["2", "loss", "output"],
        fix=["crossentropy", "cross_entropy", "cross-entropy"],
        good=0.9,
    ),
}


def write_fixed() -> None:
    """Write fixed/<name>.py from buggy/<name>.py and the case's patch."""
    (HERE / "fixed").mkdir(exist_ok=True)
    for name, case in CASES.items():
        text = (HERE / "buggy" / f"{name}.py").read_text()
        for old, new in case["patch"]:
            if old not in text:
                raise SystemExit(f"{name}: patch text not found: {old!r}")
            text = text.replace(old, new)
        (HERE / "fixed" / f"{name}.py").write_text(text)


if __name__ == "__main__":
    write_fixed()
