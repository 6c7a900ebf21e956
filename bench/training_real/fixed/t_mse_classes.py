# Stack Overflow / PyTorch forum (a classifier trained as a regression on the class index):
# one output unit and MSELoss against the digit label, instead of 10 logits and CrossEntropyLoss.
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

torch.manual_seed(0)
x, y = load_digits(return_X_y=True)
x = torch.tensor(StandardScaler().fit_transform(x), dtype=torch.float32)
y = torch.tensor(y)
model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(10):
    for i in range(0, len(x), 64):
        optimizer.zero_grad()
        out = model(x[i:i + 64])
        loss = loss_fn(out, y[i:i + 64])
        loss.backward()
        optimizer.step()
with torch.no_grad():
    out = model(x)
    pred = out.argmax(1) if out.shape[1] > 1 else out[:, 0].round().long()
    print("RESULT", float((pred == y).float().mean()))
