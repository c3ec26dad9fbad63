"""The PyTorch twin of an hpo study: the same trials, one at a time, in Optuna + PyTorch.

Used by the `study` section of scripts/gpu-bench.sh to compare the wall time of a whole
hpo study (studies/fashion-cnn-whole-study.toml, several trials sharing a GPU) with
what an Optuna user gets running the same trials one after another with PyTorch.

Usage:
  python3 scripts/study_twin.py --db HPO.sqlite [--study NAME] [--device cuda]
                                [--epochs 3] [--out twin.jsonl] [--optuna-db /tmp/twin.sqlite]
  python3 scripts/study_twin.py --compare HPO.sqlite [--study NAME] [--out twin.jsonl]

Run mode reads the COMPLETE trials of hpo's study from its database (hpo writes
Optuna's own schema, so `optuna.load_study` reads it), enqueues their parameters in
a fresh Optuna study (SQLite storage, minimize) and runs `study.optimize` over
them, one trial at a time. Each trial trains hpo's fashion-mnist CNN with those
hyperparameters the way hpo's candle trainer does (crates/train/src/trainer), and
returns its best validation loss, the value hpo stores for the trial. It writes one
JSON line per trial to --out, then a summary line (also printed):
  {"impl": "optuna+pytorch", "trials": n, "wall_seconds": ..., "load_seconds": ..., ...}
`wall_seconds` is the optimize() call alone; `load_seconds` is loading the dataset
onto the device once before it (parsing, the split, the copy to the device, and
CUDA's start-up, which the first copy pays).

Compare mode prints, per trial number, hpo's value (its best val_loss) beside the
twin's, then the median of each and the mean paired difference with its standard
error, to judge whether the two reach the same final losses within noise.

What is mirrored (file names under crates/train/src):
  * data (data/parse.rs): the 60,000 training images are split 50,000 train /
    10,000 validation (n // 6 validation rows, taken first from a shuffled order),
    the 10,000 t10k images are the test split; pixels are p / 255 in float32, no
    standardization. Files from $HPO_DATA_DIR/fashion-mnist/, $HPO_DATA_DIR/ or
    /usr/share/datasets/fashion-mnist/ (Debian's dataset-fashion-mnist).
  * model (model/cnn.rs, model/layers.rs): `blocks` x [3x3 conv, padding 1, with
    bias -> batch norm if asked -> 2x2 max pool -> activation] with channels
    `channels << block` (pool before the activation for relu and tanh, which commute
    with max pooling, after it for gelu and silu, as hpo does), then flatten (c, h, w),
    a dense layer of `hidden` units, the activation, inverted dropout, and a linear
    head of 10 logits. Conv and linear weights and biases are drawn uniformly from
    +-1/sqrt(fan_in); batch norm starts at scale 1, shift 0, running mean 0, var 1,
    momentum 0.1, eps 1e-5, normalizing over (batch, h, w) with the biased variance
    and tracking the unbiased one (nn.BatchNorm2d does exactly this).
  * optimizer (optim.rs, model/mod.rs): AdamW (betas 0.9/0.999, eps 1e-8) in two
    groups: weights (conv kernels, linear matrices: ParamKind::Weight) with the
    decoupled weight decay, everything else (biases, batch-norm scale and shift)
    without. The learning rate is set before every step to
    Schedule::lr_at(epoch_index + batch_index / n_batches) (constant, cosine or
    step, with linear warmup). Optional coupled L2 on weights and global gradient
    clipping as hpo does them (both off in the study).
  * epoch loop (trainer/mod.rs): each epoch a fresh shuffle of the training rows cut
    into batches of `batch_size`, the last partial batch kept (50,000 / 128 gives
    391 steps, 80 rows in the last); the training loss is checked for a non-finite
    value one step late, as hpo does; after the epoch the WHOLE training split and
    the validation split are measured in evaluation mode in chunks of 512 (mean
    cross-entropy without label smoothing, accuracy); the epoch with the lowest
    val_loss (strictly lower than the best so far) is snapshot (parameters and
    batch-norm running statistics), restored at the end and measured on the test
    split. Hyperparameters not searched nor fixed take hpo's defaults (hyper.rs):
    activation relu, label_smoothing 0, warmup 0, ...
  * precision: float32 everywhere, TF32 off (like scripts/bench_torch.py).

What differs from hpo, and cannot be made identical:
  * the train/validation split: hpo shuffles the 60,000 training images with Rust's
    StdRng (ChaCha12) seeded by its DATA_SEED; the twin uses a numpy permutation
    seeded by the same number, a different but equally random 50,000/10,000 cut.
  * randomness: hpo draws a trial's initial weights, batch order and dropout masks
    (a SplitMix64 hash per element) from a StdRng seeded from (study seed, trial
    number); the twin seeds torch from the trial number. Same distributions,
    different draws: per-trial losses differ by seed noise, not systematically.
  * kernels: cuDNN / cuBLAS here against hpo's im2col + GEMM and its own fused
    kernels, so float rounding differs; the AdamW update formula is the same.
  * no early stopping and no pruning: the twin mirrors only studies without them
    (the whole-study benchmark has neither); trial.report() is called each epoch,
    as an Optuna user would, with a NopPruner.

Only torch, numpy and optuna are needed (compare mode needs no torch). The fixed
hyperparameters come from the study file (studies/<study>.toml, read with tomllib
when Python has it; otherwise the ones of fashion-cnn-whole-study below).
"""

import argparse
import gzip
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import optuna

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # compare mode needs no torch
    torch = nn = F = None

try:
    import tomllib
except ImportError:  # Python < 3.11: fall back to the built-in fixed knobs
    tomllib = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# hpo's crates/train/src/data/mod.rs DATA_SEED; here it seeds numpy, so the split is
# a different (equally random) one than hpo's.
DATA_SEED = 20_261_128

# Evaluation chunk of hpo's trainer (EVAL_CHUNK).
EVAL_CHUNK = 512

# The defaults of every knob of hpo's cnn model (crates/train/src/hyper.rs: CNN,
# CLASSIFICATION and TRAINING tables).
HPO_DEFAULTS = {
    "lr": 1e-3,
    "optimizer": "adamw",
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 0.0,
    "l2": 0.0,
    "label_smoothing": 0.0,
    "grad_clip": 0.0,
    "precision": "f32",
    "schedule": "constant",
    "warmup_epochs": 0.0,
    "step_size": 10,
    "step_gamma": 0.1,
    "dropout": 0.0,
    "train_fraction": 1.0,
    "batch_size": 64,
    "activation": "relu",
    "augment": "none",
    "blocks": 2,
    "channels": 16,
    "hidden": 128,
    "batch_norm": False,
}

# [objective] fixed of studies/fashion-cnn-whole-study.toml, used when the study
# file can't be read.
WHOLE_STUDY_FIXED = {"blocks": 2, "batch_size": 128, "schedule": "cosine", "augment": "none"}


class Diverged(Exception):
    """A non-finite training loss: hpo fails such a trial, and so does the twin."""


# ---------------------------------------------------------------------------------
# Data


def find(folder, debian, name):
    """A dataset file: $HPO_DATA_DIR/folder/name, $HPO_DATA_DIR/name, or Debian's path."""
    base = os.environ.get("HPO_DATA_DIR")
    if base:
        for path in (os.path.join(base, folder, name), os.path.join(base, name)):
            if os.path.exists(path):
                return path
    return os.path.join(debian, name)


def read_idx(name, magic):
    """The payload of a gzipped IDX file and its dimensions, checking the magic number."""
    path = find("fashion-mnist", "/usr/share/datasets/fashion-mnist", name)
    with gzip.open(path) as f:
        data = f.read()
    if int.from_bytes(data[:4], "big") != magic:
        sys.exit(f"{path}: not an IDX file of the expected kind")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != math.prod(dims):
        sys.exit(f"{path}: expected {dims} bytes of data, found {payload.size}")
    return payload.reshape(dims)


def images(name):
    """[n, 1, 28, 28] float32 pixels p / 255 (a float32 division, as hpo's parser)."""
    raw = read_idx(name, 0x0803)
    if raw.shape[1:] != (28, 28):
        sys.exit(f"{name}: expected 28x28 images, found {raw.shape[1:]}")
    return (raw.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)


def load_fashion(device):
    """Fashion-MNIST on `device`: {"train": (x, y), "val": (x, y), "test": (x, y)}.

    The 60,000 training images are shuffled by a numpy permutation (seeded by
    DATA_SEED): the first n // 6 are the validation split, the rest the training
    split, as hpo cuts its (StdRng) shuffle. The t10k images are the test split.
    """
    train_x, train_y = images("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz", 0x0801)
    test_x, test_y = images("t10k-images-idx3-ubyte.gz"), read_idx("t10k-labels-idx1-ubyte.gz", 0x0801)
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        sys.exit("fashion-mnist: image and label counts differ")
    order = np.random.default_rng(DATA_SEED).permutation(len(train_y))
    n_val = len(train_y) // 6
    parts = {
        "train": (train_x[order[n_val:]], train_y[order[n_val:]]),
        "val": (train_x[order[:n_val]], train_y[order[:n_val]]),
        "test": (test_x, test_y),
    }
    return {
        name: (torch.from_numpy(np.ascontiguousarray(x)).to(device), torch.from_numpy(y.astype(np.int64)).to(device))
        for name, (x, y) in parts.items()
    }


# ---------------------------------------------------------------------------------
# Model, optimizer, schedule


def activation_module(name):
    """hpo's activations by name (gelu is the exact erf form, as hpo's)."""
    return {"tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}.get(name, nn.ReLU)()


def init_uniform(layer, fan_in):
    """hpo's (and PyTorch's default) init: weight and bias uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.uniform_(layer.bias, -bound, bound)
    return layer


def build_cnn(h, in_channels=1, size=28, n_out=10):
    """hpo's Cnn (crates/train/src/model/cnn.rs) as an nn.Sequential."""
    layers = []
    channels_in = in_channels
    monotone = h["activation"] in ("relu", "tanh")
    for block in range(h["blocks"]):
        channels_out = h["channels"] << block
        layers.append(init_uniform(nn.Conv2d(channels_in, channels_out, 3, padding=1), channels_in * 9))
        if h["batch_norm"]:
            layers.append(nn.BatchNorm2d(channels_out, eps=1e-5, momentum=0.1))
        # Max pooling commutes with a non-decreasing activation, so hpo pools first
        # (the activation then runs on a quarter of the values); otherwise it pools
        # the activated map.
        pool_then_activate = [nn.MaxPool2d(2), activation_module(h["activation"])]
        layers.extend(pool_then_activate if monotone else pool_then_activate[::-1])
        channels_in = channels_out
        size //= 2
    if size == 0:
        raise ValueError(f"{h['blocks']} conv blocks halve a 28x28 image to nothing")
    flat = channels_in * size * size
    layers += [
        nn.Flatten(),
        init_uniform(nn.Linear(flat, h["hidden"]), flat),
        activation_module(h["activation"]),
        nn.Dropout(h["dropout"]) if h["dropout"] > 0 else nn.Identity(),
        init_uniform(nn.Linear(h["hidden"], n_out), h["hidden"]),
    ]
    return nn.Sequential(*layers)


def weights_and_others(model):
    """hpo's ParamKind split: conv kernels and linear matrices are weights (decayed,
    penalized by l2); biases and batch-norm scales and shifts are not."""
    weights, others = [], []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            weights.append(module.weight)
            others.append(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            others += [module.weight, module.bias]
    return weights, others


def lr_at(h, max_epochs, epoch):
    """hpo's Schedule::lr_at: the learning rate at fractional `epoch` (2.5 is half-way
    through the third), linear warmup times constant / cosine / step decay."""
    warmup_epochs = h["warmup_epochs"]
    warmup = min(epoch / warmup_epochs, 1.0) if warmup_epochs > 0 else 1.0
    if h["schedule"] == "cosine":
        span = max(max_epochs - warmup_epochs, 1e-9)
        t = min(max((epoch - warmup_epochs) / span, 0.0), 1.0)
        decay = 0.5 * (1.0 + math.cos(math.pi * t))
    elif h["schedule"] == "step":
        decay = h["step_gamma"] ** math.floor(epoch / h["step_size"])
    else:
        decay = 1.0
    return h["lr"] * warmup * decay


# ---------------------------------------------------------------------------------
# Training


def evaluate(model, x, y, n_rows=None):
    """Mean cross-entropy (no label smoothing) and accuracy of the first `n_rows` rows,
    in evaluation mode, in chunks of EVAL_CHUNK rows (hpo's Trainer::evaluate). The
    sums stay on the device and are read once, at the end."""
    model.eval()
    n_rows = len(y) if n_rows is None else n_rows
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with torch.no_grad():
        for start in range(0, n_rows, EVAL_CHUNK):
            end = min(start + EVAL_CHUNK, n_rows)
            logits = model(x[start:end])
            loss_sum += F.cross_entropy(logits, y[start:end], reduction="sum").double()
            correct += (logits.argmax(dim=1) == y[start:end]).sum()
    return loss_sum.item() / max(n_rows, 1), correct.item() / max(n_rows, 1)


def train_trial(h, data, epochs, seed, device, report=None):
    """Trains hpo's CNN with the resolved hyperparameters `h` (hpo's Trainer::train).

    `report(epoch, metrics)` is called after every epoch (1-based, as hpo's steps).
    Returns the best epoch's metrics (by val_loss) plus test_loss and test_accuracy
    of that epoch's state; raises Diverged on a non-finite loss.
    """
    for knob, allowed in (("optimizer", "adamw"), ("augment", "none"), ("precision", "f32")):
        if h[knob] != allowed:
            raise ValueError(f"the twin mirrors only {knob} = {allowed!r}, not {h[knob]!r}")
    torch.manual_seed(seed)  # initial weights and dropout masks
    shuffle = torch.Generator().manual_seed(seed)  # batch order, drawn on the CPU like hpo's
    model = build_cnn(h).to(device)
    weights, others = weights_and_others(model)
    optimizer = torch.optim.AdamW(
        [{"params": weights, "weight_decay": h["weight_decay"]}, {"params": others, "weight_decay": 0.0}],
        lr=h["lr"],
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    train_x, train_y = data["train"]
    # train_fraction keeps the head of the (already shuffled) training split; Rust's
    # round() rounds halves away from zero, Python's to even, hence floor(x + 0.5).
    fraction = min(max(h["train_fraction"], 0.0), 1.0)
    n_train = min(max(math.floor(len(train_y) * fraction + 0.5), 1), len(train_y))
    batch_size = max(h["batch_size"], 1)
    n_batches = math.ceil(n_train / batch_size)  # the last partial batch is kept

    best = None  # (val_loss, metrics, state)
    pending = None  # the previous step's loss, read one step late
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(n_train, generator=shuffle).to(device)
        for idx in range(n_batches):
            lr = lr_at(h, epochs, (epoch - 1) + idx / n_batches)
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = order[idx * batch_size : (idx + 1) * batch_size]
            logits = model(train_x[rows])
            loss = F.cross_entropy(logits, train_y[rows], label_smoothing=h["label_smoothing"])
            if h["l2"] > 0:
                loss = loss + h["l2"] / 2 * sum(w.square().sum() for w in weights)
            # Like hpo, read the previous step's loss now, with this step's forward
            # pass already queued, and fail on a non-finite value.
            if pending is not None and not math.isfinite(pending.item()):
                raise Diverged(f"training loss became {pending.item()} in epoch {epoch}; the learning rate ({h['lr']}) may be too high")
            pending = loss.detach()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if h["grad_clip"] > 0:
                nn.utils.clip_grad_norm_(model.parameters(), h["grad_clip"])
            optimizer.step()
        if pending is not None and not math.isfinite(pending.item()):
            raise Diverged(f"training loss became {pending.item()} in epoch {epoch}; the learning rate ({h['lr']}) may be too high")
        pending = None
        train_seconds = time.perf_counter() - started
        train_loss, train_accuracy = evaluate(model, train_x, train_y, n_train)
        val_loss, val_accuracy = evaluate(model, *data["val"])
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise Diverged(f"loss became non-finite in epoch {epoch} (train {train_loss}, val {val_loss})")
        metrics = {
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "generalization_gap": val_loss - train_loss,
            "lr": lr_at(h, epochs, epoch - 1e-9),
            "epoch_seconds": time.perf_counter() - started,
            "samples_per_second": n_train / max(train_seconds, 1e-9),
        }
        if best is None or val_loss < best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = (val_loss, dict(metrics, best_step=epoch), state)
        if report is not None:
            report(epoch, metrics)
    _, metrics, state = best
    model.load_state_dict(state)
    test_loss, test_accuracy = evaluate(model, *data["test"])
    n_params = sum(p.numel() for p in model.parameters())
    return dict(metrics, test_loss=test_loss, test_accuracy=test_accuracy, epochs_trained=epochs, parameters=n_params)


# ---------------------------------------------------------------------------------
# The study


def suggest(trial, name, distribution):
    """`trial.suggest_*` for one of hpo's stored distributions; an enqueued trial
    returns the enqueued value, and the twin's study records the same space."""
    d = optuna.distributions
    if isinstance(distribution, d.FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log, step=distribution.step)
    if isinstance(distribution, d.IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log, step=distribution.step)
    if isinstance(distribution, d.CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise ValueError(f"unsupported distribution of {name}: {distribution}")


def study_objective(study_name, epochs):
    """The fixed knobs of the study file studies/<study_name>.toml, after checking
    that the twin can mirror that study."""
    path = os.path.join(ROOT, "studies", f"{study_name}.toml")
    if tomllib is None or not os.path.exists(path):
        print(f"note: using fashion-cnn-whole-study's fixed knobs ({path} not read)", file=sys.stderr)
        return dict(WHOLE_STUDY_FIXED)
    with open(path, "rb") as f:
        spec = tomllib.load(f)
    objective = spec.get("objective", {})
    problems = []
    if (objective.get("model"), objective.get("dataset")) != ("cnn", "fashion-mnist"):
        problems.append("the twin trains only the cnn model on fashion-mnist")
    if spec.get("study", {}).get("metric", "val_loss") != "val_loss" or spec.get("study", {}).get("direction") != "minimize":
        problems.append("the twin minimizes val_loss")
    for section in ("early_stopping", "pruner"):
        if section in spec:
            problems.append(f"the twin has no [{section}]")
    if problems:
        sys.exit(f"{path}: " + "; ".join(problems))
    if objective.get("max_epochs", epochs) != epochs:
        print(f"warning: {path} has max_epochs = {objective['max_epochs']}, the twin trains --epochs {epochs}", file=sys.stderr)
    return dict(objective.get("fixed", {}))


def completed_trials(db, study_name):
    """hpo's COMPLETE trials, by trial number."""
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{db}")
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return sorted(trials, key=lambda t: t.number)


def run_twin(args):
    if torch is None:
        sys.exit("the twin needs torch")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda, but torch sees no GPU")
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count())
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    hpo_trials = completed_trials(args.db, args.study)
    if not hpo_trials:
        sys.exit(f"{args.db}: study {args.study} has no COMPLETE trial")
    by_number = {t.number: t for t in hpo_trials}
    fixed = study_objective(args.study, args.epochs)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    started = time.perf_counter()
    data = load_fashion(device)
    sync()
    load_seconds = time.perf_counter() - started

    for path in (args.optuna_db, args.optuna_db + "-journal", args.optuna_db + "-wal", args.optuna_db + "-shm"):
        if os.path.exists(path):
            os.remove(path)
    study = optuna.create_study(
        study_name=args.study,
        storage=f"sqlite:///{args.optuna_db}",
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=0),  # never samples: every trial is enqueued
        pruner=optuna.pruners.NopPruner(),
    )
    for t in hpo_trials:
        study.enqueue_trial(t.params, user_attrs={"hpo_number": t.number})

    out = open(args.out, "w")

    def objective(trial):
        trial_started = time.perf_counter()
        number = trial.user_attrs["hpo_number"]
        params = {name: suggest(trial, name, dist) for name, dist in by_number[number].distributions.items()}
        h = {**HPO_DEFAULTS, **fixed, **params}

        def report(epoch, metrics):
            trial.report(metrics["val_loss"], epoch)

        line = {"number": number, "twin_number": trial.number, "params": params}
        try:
            result = train_trial(h, data, args.epochs, seed=number, device=device, report=report)
        except Diverged as err:
            line.update(failed=str(err), seconds=time.perf_counter() - trial_started)
            out.write(json.dumps(line) + "\n")
            out.flush()
            print(f"trial {number}: failed: {err}", flush=True)
            raise
        sync()
        seconds = time.perf_counter() - trial_started
        for key in ("best_step", "train_loss", "train_accuracy", "val_accuracy", "test_loss", "test_accuracy", "epochs_trained", "parameters"):
            trial.set_user_attr(key, result[key])
        trial.set_user_attr("seconds", seconds)
        line.update(
            val_loss=result["val_loss"],
            val_accuracy=result["val_accuracy"],
            test_loss=result["test_loss"],
            test_accuracy=result["test_accuracy"],
            best_step=result["best_step"],
            seconds=seconds,
        )
        out.write(json.dumps(line) + "\n")
        out.flush()
        print(
            f"trial {number}: val_loss {result['val_loss']:.4f} (epoch {result['best_step']}), "
            f"val_accuracy {result['val_accuracy']:.4f}, test_accuracy {result['test_accuracy']:.4f}, {seconds:.1f} s",
            flush=True,
        )
        return result["val_loss"]

    started = time.perf_counter()
    study.optimize(objective, n_trials=len(hpo_trials), catch=(Diverged,))
    sync()
    wall_seconds = time.perf_counter() - started

    values = [t.value for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    summary = {
        "impl": "optuna+pytorch",
        "study": args.study,
        "trials": len(hpo_trials),
        "complete": len(values),
        "epochs": args.epochs,
        "wall_seconds": wall_seconds,
        "load_seconds": load_seconds,
        "median_val_loss": statistics.median(values) if values else None,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
    }
    out.write(json.dumps(summary) + "\n")
    out.close()
    print(json.dumps(summary), flush=True)


# ---------------------------------------------------------------------------------
# Comparison


def paired_summary(what, hv, tv):
    """Medians of hpo's and the twin's values, and their mean paired difference
    with its standard error."""
    diffs = [b - a for a, b in zip(hv, tv)]
    print(f"{what}: median hpo {statistics.median(hv):.4f}, twin {statistics.median(tv):.4f}")
    mean = statistics.fmean(diffs)
    if len(diffs) > 1:
        se = statistics.stdev(diffs) / math.sqrt(len(diffs))
        t_stat = mean / se if se > 0 else float("inf")
        verdict = "within noise" if abs(t_stat) < 2 else "NOT within noise"
        print(
            f"  mean paired difference (twin - hpo): {mean:+.4f} +- {se:.4f} (standard error), t = {t_stat:+.2f}: "
            f"{verdict}; median |difference| {statistics.median(abs(d) for d in diffs):.4f}"
        )
    else:
        print(f"  mean paired difference (twin - hpo): {mean:+.4f} (one pair: no standard error)")


def compare(args):
    """hpo's value (best val_loss) against the twin's, per trial number, and summary
    statistics of the paired differences."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    hpo = {t.number: t for t in completed_trials(args.compare, args.study)}
    twin, summary = {}, None
    with open(args.out) as f:
        for text in f:
            if not text.strip():
                continue
            row = json.loads(text)
            if row.get("impl"):
                summary = row
            elif row.get("val_loss") is not None:
                twin[row["number"]] = row
    paired = sorted(set(hpo) & set(twin))

    def fmt(value, spec=".4f"):
        return format(value, spec) if isinstance(value, (int, float)) else "-"

    print(f"{'trial':>5} {'hpo val_loss':>12} {'twin val_loss':>13} {'twin - hpo':>10} {'hpo val_acc':>11} {'twin val_acc':>12}")
    for number in sorted(set(hpo) | set(twin)):
        h, t = hpo.get(number), twin.get(number)
        hv, tv = (h.value if h else None), (t["val_loss"] if t else None)
        diff = tv - hv if h and t else None
        print(
            f"{number:>5} {fmt(hv):>12} {fmt(tv):>13} {fmt(diff, '+.4f'):>10} "
            f"{fmt(h.user_attrs.get('val_accuracy') if h else None):>11} {fmt(t['val_accuracy'] if t else None):>12}"
        )

    print(f"paired trials: {len(paired)} (hpo: {len(hpo)} complete, twin: {len(twin)} complete)")
    if not paired:
        return
    paired_summary("val_loss", [hpo[n].value for n in paired], [twin[n]["val_loss"] for n in paired])
    # The validation splits differ (see the module docs); the test split is the
    # same t10k file in both, so its losses pair exactly.
    with_test = [n for n in paired if hpo[n].user_attrs.get("test_loss") is not None and twin[n].get("test_loss") is not None]
    if with_test:
        paired_summary(
            "test_loss (same test images)",
            [hpo[n].user_attrs["test_loss"] for n in with_test],
            [twin[n]["test_loss"] for n in with_test],
        )
    if summary:
        print(
            f"twin: {summary['complete']}/{summary['trials']} trials in {summary['wall_seconds']:.1f} s "
            f"(+ {summary['load_seconds']:.1f} s loading) on {summary['device']}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="hpo's SQLite database (the study's trials are read from it)")
    parser.add_argument("--study", default="fashion-cnn-whole-study", help="the study's name")
    parser.add_argument("--device", default="cuda", help="torch device: cuda, cuda:1, cpu")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (the study's max_epochs)")
    parser.add_argument("--out", default="/tmp/twin.jsonl", help="JSON lines: one per trial, then a summary")
    parser.add_argument("--optuna-db", default="/tmp/twin.sqlite", help="the twin's own Optuna storage (deleted first)")
    parser.add_argument("--compare", metavar="HPO_DB", help="compare hpo's study in HPO_DB with the twin's --out, then exit")
    args = parser.parse_args()
    if args.compare:
        compare(args)
    elif args.db:
        run_twin(args)
    else:
        parser.error("give --db HPO_DB to run the twin, or --compare HPO_DB")


if __name__ == "__main__":
    main()
