"""Issue 5's reference study in Optuna + PyTorch, to run on the machine hpo ran on.

The digits MLP study of `studies/digits-mlp-pruning.toml` as the issue describes its
Python reference: TPE (seed 0), SQLite, 60 trials, an MLP with width [16, 512] log,
depth 1-3, lr [1e-4, 1e-1] log, weight decay [1e-6, 1e-1] log, dropout [0, 0.6],
batch {32, 64, 128}, AdamW, at most 50 epochs, early stopping with patience 5 on the
validation loss, a 60/20/20 split, MedianPruner(n_warmup_steps=5) on val_accuracy,
2 torch threads, one trial at a time. Like hpo, a trial's value is its best
val_accuracy over its epochs, and its test accuracy is that epoch's weights'.
It trains on hpo's own split (1,078 / 359 / 360 rows), which it asks of
`cargo run --release -p hpo-train --example split_order`, so the two tools'
val_accuracy is measured on the same 359 images.

Needs torch and optuna: python3 -m venv v && v/bin/pip install torch optuna
Run with: v/bin/python scripts/digits_optuna.py [--pruner median|none] [--seed 0]
[--label-smoothing 0.1] (the issue's reference trains without it; hpo's study with it)
Prints one JSON line: wall seconds, epochs trained, pruned trials, best val_accuracy
and its trial's test accuracy.
"""

import argparse
import copy
import gzip
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import optuna
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def splits():
    rows = np.loadtxt(gzip.open(os.path.join(ROOT, "crates/train/data/digits/digits.csv.gz")), delimiter=",")
    order = json.loads(subprocess.run(
        ["cargo", "run", "-q", "--release", "-p", "hpo-train", "--example", "split_order", "--", str(len(rows))],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    x = torch.tensor(rows[:, :64] / 16.0, dtype=torch.float32)
    y = torch.tensor(rows[:, 64], dtype=torch.long)
    return tuple((x[order[part]], y[order[part]]) for part in ("train", "val", "test"))


def mlp(hidden, depth, dropout):
    layers, width = [], 64
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, 10))


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(x)
        return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pruner", choices=["median", "none"], default="median")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--label-smoothing", type=float, default=0.0,
                        help="0.1 is what studies/digits-mlp-pruning.toml fixes for hpo")
    args = parser.parse_args()
    torch.set_num_threads(2)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (xt, yt), (xv, yv), (xs, ys) = splits()
    # Like `hpo bench pruning`, the clock starts once the data is loaded.
    start = time.perf_counter()
    epochs = 0

    def objective(trial):
        nonlocal epochs
        hidden = trial.suggest_int("hidden", 16, 512, log=True)
        depth = trial.suggest_int("depth", 1, 3)
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
        dropout = trial.suggest_float("dropout", 0.0, 0.6)
        batch = trial.suggest_categorical("batch_size", [32, 64, 128])
        torch.manual_seed(trial.number)
        model = mlp(hidden, depth, dropout)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        best_acc, best_state, best_loss, stale = -1.0, None, float("inf"), 0
        for epoch in range(1, 51):
            model.train()
            for idx in torch.randperm(len(xt)).split(batch):
                opt.zero_grad()
                F.cross_entropy(model(xt[idx]), yt[idx], label_smoothing=args.label_smoothing).backward()
                opt.step()
            epochs += 1
            val_loss, val_acc = evaluate(model, xv, yv)
            if val_acc > best_acc:
                best_acc, best_state = val_acc, copy.deepcopy(model.state_dict())
            trial.report(val_acc, epoch)
            # As in hpo, early stopping is asked first: a trial it ends completes.
            if val_loss < best_loss:
                best_loss, stale = val_loss, 0
            else:
                stale += 1
                if stale >= 5:
                    break
            if trial.should_prune():
                raise optuna.TrialPruned()
        model.load_state_dict(best_state)
        trial.set_user_attr("test_accuracy", evaluate(model, xs, ys)[1])
        return best_acc

    pruner = optuna.pruners.MedianPruner(n_warmup_steps=5) if args.pruner == "median" else optuna.pruners.NopPruner()
    with tempfile.TemporaryDirectory() as tmp:
        study = optuna.create_study(
            storage=f"sqlite:///{tmp}/digits.db",
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=args.seed),
            pruner=pruner,
        )
        study.optimize(objective, n_trials=args.trials)
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
        best = study.best_trial
        print(json.dumps({
            "pruner": args.pruner, "seed": args.seed, "label_smoothing": args.label_smoothing, "seconds": round(time.perf_counter() - start, 1),
            "epochs": epochs, "pruned": pruned, "best": round(best.value, 4),
            "test": round(best.user_attrs["test_accuracy"], 4),
        }))


if __name__ == "__main__":
    main()
