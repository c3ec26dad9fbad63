#!/usr/bin/env python3
"""A training program for hpo's command objective: multinomial logistic regression
on the UCI digits (crates/train/data/digits/digits.csv.gz), trained epoch by epoch
with minibatch SGD and L2, in Python's standard library alone.

After every epoch it prints one JSON line with its train and validation metrics,
which hpo reads as a step (studies/digits-command.toml):

    {"step": 3, "train_loss": 0.41, "val_loss": 0.45, "train_accuracy": 0.9, "val_accuracy": 0.88}

Usage: digits_logreg.py --lr 0.1 --l2 1e-4 --batch-size 32 --epochs 10 [--seed 0]
"""

import argparse
import gzip
import json
import math
import os
import random
import sys

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "train", "data", "digits", "digits.csv.gz")


def load():
    rows = []
    with gzip.open(DATA, "rt") as f:
        for line in f:
            values = [int(v) for v in line.strip().split(",")]
            rows.append(([v / 16.0 for v in values[:64]] + [1.0], values[64]))
    return rows


def scores(weights, x):
    return [sum(w * v for w, v in zip(row, x)) for row in weights]


def softmax(z):
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = sum(e)
    return [v / total for v in e]


def evaluate(weights, rows):
    loss, hits = 0.0, 0
    for x, y in rows:
        p = softmax(scores(weights, x))
        loss -= math.log(max(p[y], 1e-12))
        hits += max(range(10), key=lambda k: p[k]) == y
    return loss / len(rows), hits / len(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = load()
    # A fixed split (the same for every trial); the seed shuffles the batches.
    random.Random(1234).shuffle(rows)
    n_val = len(rows) // 5
    val, train = rows[:n_val], rows[n_val:]
    rng = random.Random(args.seed)
    weights = [[0.0] * 65 for _ in range(10)]
    for epoch in range(1, args.epochs + 1):
        rng.shuffle(train)
        for start in range(0, len(train), args.batch_size):
            batch = train[start:start + args.batch_size]
            grad = [[0.0] * 65 for _ in range(10)]
            for x, y in batch:
                p = softmax(scores(weights, x))
                p[y] -= 1.0
                for k in range(10):
                    if p[k] != 0.0:
                        g, pk = grad[k], p[k]
                        for j in range(65):
                            g[j] += pk * x[j]
            scale = args.lr / len(batch)
            decay = 1.0 - args.lr * args.l2
            for k in range(10):
                w, g = weights[k], grad[k]
                for j in range(65):
                    w[j] = w[j] * decay - scale * g[j]
        train_loss, train_accuracy = evaluate(weights, train)
        val_loss, val_accuracy = evaluate(weights, val)
        print(json.dumps({
            "step": epoch,
            "train_loss": round(train_loss, 6),
            "val_loss": round(val_loss, 6),
            "train_accuracy": round(train_accuracy, 6),
            "val_accuracy": round(val_accuracy, 6),
        }), flush=True)


if __name__ == "__main__":
    sys.exit(main())
