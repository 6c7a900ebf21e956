# PyTorch forum ("first layer weights never change": a .detach() in forward cuts the graph),
# so only the output layer learns.
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 8)
        self.fc2 = torch.nn.Linear(8, 10)

    def forward(self, x):
        h = torch.relu(self.fc1(x)).detach()
        return self.fc2(h)


torch.manual_seed(0)
x, y = load_digits(return_X_y=True)
x = torch.tensor(StandardScaler().fit_transform(x), dtype=torch.float32)
y = torch.tensor(y)
model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(10):
    for i in range(0, len(x), 64):
        optimizer.zero_grad()
        loss = loss_fn(model(x[i:i + 64]), y[i:i + 64])
        loss.backward()
        optimizer.step()
with torch.no_grad():
    print("RESULT", float((model(x).argmax(1) == y).float().mean()))
