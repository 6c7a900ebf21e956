"""Small training programs with one structural or label fault each, and their healthy twins
(tests/test_training_causes.py, tests/test_training_verify.py). PyTorch on scikit-learn's
load_digits; a few seconds each.

``torch_program(**change)`` returns the source; with no change it is the healthy twin.
"""

from __future__ import annotations

TORCH = """import torch
from torch import nn
from sklearn import datasets

torch.manual_seed(0)
X, y = datasets.load_digits(return_X_y=True)
X = torch.tensor(X / 16.0, dtype=torch.float32)
y = torch.tensor(y{label_shift}, dtype=torch.long)
model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, {units}){out_act})
optimizer = torch.optim.Adam({params}, lr={lr})
loss_fn = nn.CrossEntropyLoss()
for epoch in range({epochs}):
    for i in range(0, len(X), 64):
        xb, yb = X[i:i + 64], y[i:i + 64]
{loop}
"""

LOOPS = {
    "healthy": """        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()""",
    "no_zero_grad": """        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()""",
    "zero_grad_late": """        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()""",
    "softmax_before_loss": """        optimizer.zero_grad()
        loss = loss_fn(model(xb).softmax(dim=1), yb)
        loss.backward()
        optimizer.step()""",
}


def torch_program(
    loop: str = "healthy",
    units: int = 10,
    label_shift: str = "",
    out_act: str = "",
    params: str = "model.parameters()",
    lr: str = "1e-2",
    epochs: int = 6,
) -> str:
    return TORCH.format(
        loop=LOOPS[loop],
        units=units,
        label_shift=label_shift,
        out_act=out_act,
        params=params,
        lr=lr,
        epochs=epochs,
    )


FAULTS = {  # name -> (change, the rule that names its root cause)
    "no_zero_grad": ({"loop": "no_zero_grad"}, "CL507"),
    "zero_grad_late": ({"loop": "zero_grad_late"}, "CL508"),
    "head_not_in_optimizer": ({"params": "model[0].parameters()"}, "CL506"),
    # the optimizer holds another instance's parameters (the model is built twice)
    "optimizer_on_another_model": (
        {"params": "nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).parameters()"},
        "CL506",
    ),
    "output_too_narrow": ({"units": 5}, "CL537"),
    "labels_one_based": ({"label_shift": " + 1"}, "CL535"),
    "softmax_before_cross_entropy": ({"loop": "softmax_before_loss"}, "CL538"),
}
