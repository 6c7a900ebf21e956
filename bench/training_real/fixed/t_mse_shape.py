# Stack Overflow / PyTorch forum (the "Using a target size that is different to the input size"
# UserWarning): MSELoss on an (N, 1) output and an (N,) target broadcasts to (N, N).
import torch
from sklearn.datasets import load_diabetes

torch.manual_seed(0)
x, y = load_diabetes(return_X_y=True)
x = torch.tensor(x / x.std(0), dtype=torch.float32)
y = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32)
model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
loss_fn = torch.nn.MSELoss()
for epoch in range(40):
    for i in range(0, len(x), 32):
        optimizer.zero_grad()
        loss = loss_fn(model(x[i:i + 32])[:, 0], y[i:i + 32])
        loss.backward()
        optimizer.step()
with torch.no_grad():
    pred = model(x)[:, 0]
    print("RESULT", float(1 - ((pred - y) ** 2).mean() / y.var()))
