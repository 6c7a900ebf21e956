# PyTorch forum / Stack Overflow 48001598 ("Why do we need to call zero_grad()"): the training loop
# never clears the gradients, so they accumulate across steps.
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

torch.manual_seed(0)
x, y = load_digits(return_X_y=True)
x = torch.tensor(StandardScaler().fit_transform(x), dtype=torch.float32)
y = torch.tensor(y)
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(5):
    for i in range(0, len(x), 64):
        out = model(x[i:i + 64])
        loss = loss_fn(out, y[i:i + 64])
        loss.backward()
        optimizer.step()
with torch.no_grad():
    print("RESULT", float((model(x).argmax(1) == y).float().mean()))
