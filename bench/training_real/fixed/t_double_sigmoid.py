# PyTorch forum ("BCEWithLogitsLoss and sigmoid" threads): a sigmoid output layer fed to
# BCEWithLogitsLoss, which applies the sigmoid again.
import torch
from sklearn.datasets import make_classification

torch.manual_seed(0)
x, y = make_classification(n_samples=1000, n_features=20, n_informative=6, random_state=2)
x = torch.tensor(x, dtype=torch.float32)
y = torch.tensor(y, dtype=torch.float32)
model = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
loss_fn = torch.nn.BCEWithLogitsLoss()
for epoch in range(5):
    for i in range(0, len(x), 32):
        optimizer.zero_grad()
        loss = loss_fn(model(x[i:i + 32])[:, 0], y[i:i + 32])
        loss.backward()
        optimizer.step()
with torch.no_grad():
    print("RESULT", float(((model(x)[:, 0] > 0).float() == y).float().mean()))
