# Stack Overflow / PyTorch forum ("loss is nan from the first epoch" on raw tabular data):
# unscaled inputs (breast_cancer features up to ~4000) into an MLP trained with SGD.
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

torch.manual_seed(0)
x, y = load_breast_cancer(return_X_y=True)
x_scaled = StandardScaler().fit_transform(x)
x = torch.tensor(x_scaled, dtype=torch.float32)
y = torch.tensor(y)
model = torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(20):
    for i in range(0, len(x), 32):
        optimizer.zero_grad()
        loss = loss_fn(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        optimizer.step()
with torch.no_grad():
    print("RESULT", float((model(x).argmax(1) == y).float().mean()))
