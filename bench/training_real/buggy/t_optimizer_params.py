# PyTorch forum (recurring "loss does not decrease": the optimizer was given the parameters of
# another model instance): the model that is trained is re-created after the optimizer.
import torch
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler


def make_model():
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


torch.manual_seed(0)
x, y = load_iris(return_X_y=True)
x = torch.tensor(StandardScaler().fit_transform(x), dtype=torch.float32)
y = torch.tensor(y)
model = make_model()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
model = make_model()
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(100):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
with torch.no_grad():
    print("RESULT", float((model(x).argmax(1) == y).float().mean()))
