"""The workloads of `hpo bench train`, in PyTorch, for a side-by-side comparison.

Run with: python3 scripts/bench_torch.py --device cpu|cuda [--batch N] [--steps N]
    [--precision f32|bf16] [--compile eager|max-autotune-no-cudagraphs|reduce-overhead]
Prints one JSON object per workload, in the same format as `hpo bench train --json`
(with `mode`: eager, or the torch.compile mode). Same data (digits from
crates/train/data, fashion-mnist and jargon from $HPO_DATA_DIR or Debian's packages),
same models, AdamW (lr 1e-3, weight decay 0.01), TF32 off; bf16 is autocast around
the forward pass and the loss (products in bf16, parameters and optimizer state in
f32), as hpo's `precision = "bf16"`. A compiled model warms up for 10 steps (the
compilation, and CUDA graph recording under reduce-overhead) before the timing.
"""

import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find(folder, debian, name):
    for base in [os.environ.get("HPO_DATA_DIR")]:
        if base:
            for path in (os.path.join(base, folder, name), os.path.join(base, name)):
                if os.path.exists(path):
                    return path
    return os.path.join(debian, name)


def digits():
    rows = np.loadtxt(gzip.open(os.path.join(ROOT, "crates/train/data/digits/digits.csv.gz")), delimiter=",")
    return torch.tensor(rows[:, :64] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8), torch.tensor(rows[:, 64], dtype=torch.long)


def fashion():
    path = lambda n: find("fashion-mnist", "/usr/share/datasets/fashion-mnist", n)
    images = np.frombuffer(gzip.open(path("train-images-idx3-ubyte.gz")).read()[16:], dtype=np.uint8)
    labels = np.frombuffer(gzip.open(path("train-labels-idx1-ubyte.gz")).read()[8:], dtype=np.uint8)
    return torch.tensor(images / 255.0, dtype=torch.float32).reshape(-1, 1, 28, 28), torch.tensor(labels, dtype=torch.long)


def jargon():
    text = gzip.open(find("jargon-file", "/usr/share/doc/jargon-text", "jargon.txt.gz")).read().decode("utf-8")
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    return torch.tensor([index[c] for c in text], dtype=torch.long), len(vocab)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 7 * 7, 128)
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.out(F.relu(self.fc(x.flatten(1))))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads) + mask[:t, :t]
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class Gpt(nn.Module):
    def __init__(self, vocab, context=128, d=128, heads=4, layers=2):
        super().__init__()
        self.tok = nn.Parameter(torch.randn(vocab, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(context, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.register_buffer("mask", torch.triu(torch.full((context, context), -1e9), 1))

    def forward(self, x):
        h = self.tok[x] + self.pos[: x.shape[1]]
        for block in self.blocks:
            h = block(h, self.mask)
        return self.ln(h) @ self.tok.T


def run(name, device, batch, steps, precision="f32", mode="eager"):
    torch.manual_seed(0)
    if name == "jargon-transformer":
        tokens, vocab = jargon()
        model, context = Gpt(vocab).to(device), 128
        starts = [[(b * batch + i) * 997 % (int(len(tokens) * 0.8) - context - 1) for i in range(batch)] for b in range(8)]
        batches = [
            (torch.stack([tokens[s : s + context] for s in ss]).to(device), torch.stack([tokens[s + 1 : s + context + 1] for s in ss]).to(device))
            for ss in starts
        ]
        per_batch, unit = batch * context, "tokens/s"
    else:
        xs, ys = digits() if name == "digits-mlp" else fashion()
        model = (Mlp() if name == "digits-mlp" else Cnn()).to(device)
        order = torch.randperm(len(ys))
        batches = [(xs[order[i * batch : (i + 1) * batch]].to(device), ys[order[i * batch : (i + 1) * batch]].to(device)) for i in range(8)]
        per_batch, unit = batch, "samples/s"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    forward = model if mode == "eager" else torch.compile(model, mode=mode)
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(i):
        x, y = batches[i % len(batches)]
        with autocast:
            logits = forward(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(3 if mode == "eager" else 10):
        step(i)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"impl": "pytorch", "mode": mode, "precision": precision, "workload": name, "device": device, "batch": batch, "steps": steps, "seconds": seconds, "throughput": steps * per_batch / seconds, "unit": unit}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workload", default="digits-mlp,fashion-cnn,jargon-transformer")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    parser.add_argument("--compile", choices=["eager", "max-autotune-no-cudagraphs", "reduce-overhead"], default="eager")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(os.cpu_count())
    defaults = {"digits-mlp": 64, "fashion-cnn": 128, "jargon-transformer": 32}
    for name in args.workload.split(","):
        print(json.dumps(run(name, args.device, args.batch or defaults[name], args.steps, args.precision, args.compile)), flush=True)


if __name__ == "__main__":
    main()
