# PyTorch forum ("requires_grad=False by mistake, loss does not change"): every parameter is
# frozen before training (meant for a pretrained backbone only) and only the output bias is
# unfrozen again, so the network cannot learn the features.
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

torch.manual_seed(0)
x, y = load_breast_cancer(return_X_y=True)
x = torch.tensor(StandardScaler().fit_transform(x), dtype=torch.float32)
y = torch.tensor(y)
model = torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
model[2].bias.requires_grad = True
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(50):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
with torch.no_grad():
    print("RESULT", float((model(x).argmax(1) == y).float().mean()))
