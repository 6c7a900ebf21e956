# PyTorch forum ("loss becomes nan" threads): SGD with a learning rate of 10 on a small MLP.
import torch
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

torch.manual_seed(0)
x, y = load_wine(return_X_y=True)
x = torch.tensor(StandardScaler().fit_transform(x), dtype=torch.float32)
y = torch.tensor(y)
model = torch.nn.Sequential(torch.nn.Linear(13, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(30):
    for i in range(0, len(x), 16):
        optimizer.zero_grad()
        loss = loss_fn(model(x[i:i + 16]), y[i:i + 16])
        loss.backward()
        optimizer.step()
with torch.no_grad():
    print("RESULT", float((model(x).argmax(1) == y).float().mean()))
