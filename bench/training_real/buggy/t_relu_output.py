# PyTorch forum ("network outputs all zeros / loss stuck"): a ReLU after the last Linear layer
# of a classifier, before CrossEntropyLoss; with a high learning rate the logits die at zero.
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

torch.manual_seed(0)
x, y = load_digits(return_X_y=True)
x = torch.tensor(StandardScaler().fit_transform(x), dtype=torch.float32)
y = torch.tensor(y)
model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                            torch.nn.Linear(32, 10), torch.nn.ReLU())
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(5):
    for i in range(0, len(x), 32):
        optimizer.zero_grad()
        loss = loss_fn(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        optimizer.step()
with torch.no_grad():
    print("RESULT", float((model(x).argmax(1) == y).float().mean()))
