#!/usr/bin/env python3
"""A PyTorch training program for hpo's command objective: a small CNN on
Fashion-MNIST, trained epoch by epoch on the GPU hpo gives it (or the CPU).

After every epoch it prints one JSON line with its train and validation metrics,
which hpo reads as a step (examples/fashion-torch.toml):

    {"step": 3, "train_loss": 0.31, "train_accuracy": 0.89, "val_loss": 0.33, "val_accuracy": 0.88}

The last line also carries `test_loss` and `test_accuracy` on the 10,000 test
images, which hpo keeps as the trial's test metrics. The data: the four IDX files
of Fashion-MNIST (`train-images-idx3-ubyte.gz`, ...) in `--data`, by default
`$HPO_DATA_DIR/fashion-mnist` or Debian's `/usr/share/datasets/fashion-mnist`.
The last 10,000 training images are the validation set.

hpo sets CUDA_VISIBLE_DEVICES to the trial's GPU, so the program uses `cuda`
(device 0 of those it sees) and never picks a GPU itself.

Usage: train_torch.py --lr 0.01 --weight-decay 1e-4 --dropout 0.25 --channels 32
                      --batch-size 128 --epochs 10 [--seed 0] [--data DIR]
"""

import argparse
import gzip
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def default_data():
    for root in [os.environ.get("HPO_DATA_DIR"), "/usr/share/datasets"]:
        if root and os.path.exists(os.path.join(root, "fashion-mnist", "train-images-idx3-ubyte.gz")):
            return os.path.join(root, "fashion-mnist")
    return os.path.join(os.environ.get("HPO_DATA_DIR") or "/usr/share/datasets", "fashion-mnist")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=4 + 4 * dims).reshape(shape)


def load(folder, device):
    def images(name):
        x = read_idx(os.path.join(folder, name)).float().div_(255.0)
        return ((x - 0.2860) / 0.3530).unsqueeze(1).to(device)

    def labels(name):
        return read_idx(os.path.join(folder, name)).long().to(device)

    train_x, train_y = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
    test_x, test_y = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
    return (train_x[:50000], train_y[:50000]), (train_x[50000:], train_y[50000:]), (test_x, test_y)


class Net(nn.Module):
    def __init__(self, channels, dropout):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * channels)
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Linear(2 * channels * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = self.drop(torch.flatten(x, 1))
        return self.fc2(self.drop(F.relu(self.fc1(x))))


@torch.no_grad()
def evaluate(model, x, y, batch=2000):
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch])
        loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
        correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    return loss / len(x), correct / len(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=default_data())
    args = p.parse_args()
    if not os.path.exists(os.path.join(args.data, "train-images-idx3-ubyte.gz")):
        sys.exit(f"train_torch.py: no Fashion-MNIST in {args.data}: pass --data DIR or set HPO_DATA_DIR")

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = load(args.data, device)
    model = Net(args.channels, args.dropout).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    generator = torch.Generator(device=device).manual_seed(args.seed)

    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_x), device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            out = model(train_x[idx])
            loss = F.cross_entropy(out, train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
            correct += (out.argmax(1) == train_y[idx]).sum()
        sched.step()
        val_loss, val_acc = evaluate(model, val_x, val_y)
        line = {
            "step": epoch,
            "train_loss": loss_sum.item() / len(order),
            "train_accuracy": correct.item() / len(order),
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "epoch_seconds": time.perf_counter() - started,
        }
        if epoch == args.epochs:
            line["test_loss"], line["test_accuracy"] = evaluate(model, test_x, test_y)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
