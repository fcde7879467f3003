"""Example: the loss landscape of your own model on your own data, from Python.

    python examples/custom_model.py [FIGURE.png]

Trains a small MLP on scikit-learn's 8x8 digits, then draws the contour plot (under a minute on
2 CPU cores) of its loss around the trained weights along two filter-normalized random directions.
"""

import sys
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

import landscape

out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/out/custom_model.png")

digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # (N, 64)
y = torch.tensor(digits.target)  # (N,) class labels 0..9
train, test = (x[:1400], y[:1400]), (x[1400:], y[1400:])

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for _ in range(200):
    loss = nn.functional.cross_entropy(model(train[0]), train[1])
    opt.zero_grad()
    loss.backward()
    opt.step()

surface = landscape.loss_surface(
    model, {"train": train, "test": test}, x=(-1, 1, 15), y=(-1, 1, 15), seed=0
)
print(surface)
out.parent.mkdir(parents=True, exist_ok=True)
surface.plot("contour", metric="test_loss").savefig(out, dpi=100)
print(f"wrote {out}")
