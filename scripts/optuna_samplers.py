"""Optuna's GPSampler and TPESampler on the problems of `hpo bench samplers`.

Mirrors the first six problems of hpo's sampler benchmark
(crates/core/src/sampler/benchmark.rs, `problems()`; the functions are those of
crates/core/src/functions.rs) in Optuna terms, so hpo's samplers can be compared
with Optuna's on the same functions, spaces, seeds and trial counts:

  branin         x0 in [-5, 10], x1 in [0, 15]                  optimum 0.397887357729738
  hartmann6      x0..x5 in [0, 1]                               optimum -3.322368011415511
  rosenbrock-5d  x0..x4 in [-5, 10]                             optimum 0
  ackley-5d      x0..x4 in [-32.768, 32.768] (a=20, b=0.2, 2pi) optimum 0
  levy-5d        x0..x4 in [-10, 10]                            optimum 0
  mixed          x0..x3 in [-5, 5], c in {a, b, c}, int k in [-5, 10] (step 1)
                 with z = x - m_c: sum z_i^2 + 0.5 z_0 z_1 + off_c + 0.5 (k - 3)^2,
                 (m, off) = (1, 0) for a, (-2, 0.5) for b, (3, 1) for c; optimum 0

Every float is linear (no log scale, no step). Each (function, sampler, seed) is one
Optuna study (in memory, minimize) of --trials trials with
`GPSampler(seed=seed)` or `TPESampler(seed=seed)`, Optuna's defaults otherwise. The
simple regret after t trials is (best value among the first t) - (known optimum), as
hpo computes it. For each (function, sampler) the script prints one JSON line: the
median, first and third quartiles (linear interpolation, as hpo's `quartiles`) of
the regret after --trials trials over the seeds, the medians at 10, 25 and 50
trials, each seed's final regret, and the mean seconds per run.

Usage:
  python3 scripts/optuna_samplers.py --check
  python3 scripts/optuna_samplers.py [--samplers gp,tpe] [--functions branin,...,mixed]
      [--seeds 60] [--first-seed 0] [--trials 100] [--jobs N] [--out results.jsonl]

Needs optuna (the version is printed in each line); GPSampler also needs torch and
scipy. Runs are spread over a process pool of --jobs workers, each limited to one
thread (torch, BLAS), one run per (function, sampler, seed).
"""

from __future__ import annotations

import os

# One thread per worker: the pool supplies the parallelism. Set before numpy/torch load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

CHECKPOINTS = (10, 25, 50, 100)


# The functions, as crates/core/src/functions.rs defines them.


def branin(x0: float, x1: float) -> float:
    b = 5.1 / (4.0 * math.pi**2)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    return (x1 - b * x0 * x0 + c * x0 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x0) + 10.0


HARTMANN_ALPHA = (1.0, 1.2, 3.0, 3.2)
HARTMANN_A = (
    (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
    (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
    (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
    (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
)
HARTMANN_P = (
    (0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886),
    (0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991),
    (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650),
    (0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381),
)


def hartmann6(x: list[float]) -> float:
    total = 0.0
    for i in range(4):
        inner = sum(HARTMANN_A[i][j] * (x[j] - HARTMANN_P[i][j]) ** 2 for j in range(6))
        total += HARTMANN_ALPHA[i] * math.exp(-inner)
    return -total


def rosenbrock(x: list[float]) -> float:
    return sum(100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2 for a, b in zip(x, x[1:]))


def ackley(x: list[float]) -> float:
    d = len(x)
    sum_sq = sum(v * v for v in x)
    sum_cos = sum(math.cos(2.0 * math.pi * v) for v in x)
    return -20.0 * math.exp(-0.2 * math.sqrt(sum_sq / d)) - math.exp(sum_cos / d) + 20.0 + math.e


def levy(x: list[float]) -> float:
    w = [1.0 + (v - 1.0) / 4.0 for v in x]
    head = math.sin(math.pi * w[0]) ** 2
    middle = sum((wi - 1.0) ** 2 * (1.0 + 10.0 * math.sin(math.pi * wi + 1.0) ** 2) for wi in w[:-1])
    last = w[-1]
    tail = (last - 1.0) ** 2 * (1.0 + math.sin(2.0 * math.pi * last) ** 2)
    return head + middle + tail


def mixed(x: list[float], c: str, k: float) -> float:
    m, off = {"a": (1.0, 0.0), "b": (-2.0, 0.5)}.get(c, (3.0, 1.0))
    z = [v - m for v in x]
    cross = 0.5 * z[0] * z[1] if len(z) >= 2 else 0.0
    return sum(v * v for v in z) + cross + off + 0.5 * (k - 3.0) ** 2


# The problems of benchmark.rs: (floats as (low, high), function of the trial, optimum).


def _floats(dim: int, low: float, high: float) -> list[tuple[float, float]]:
    return [(low, high)] * dim


PROBLEMS = {
    "branin": ([(-5.0, 10.0), (0.0, 15.0)], lambda xs, t: branin(xs[0], xs[1]), 0.397887357729738),
    "hartmann6": (_floats(6, 0.0, 1.0), lambda xs, t: hartmann6(xs), -3.322368011415511),
    "rosenbrock-5d": (_floats(5, -5.0, 10.0), lambda xs, t: rosenbrock(xs), 0.0),
    "ackley-5d": (_floats(5, -32.768, 32.768), lambda xs, t: ackley(xs), 0.0),
    "levy-5d": (_floats(5, -10.0, 10.0), lambda xs, t: levy(xs), 0.0),
    "mixed": (
        _floats(4, -5.0, 5.0),
        lambda xs, t: mixed(
            xs,
            t.suggest_categorical("c", ["a", "b", "c"]),
            float(t.suggest_int("k", -5, 10)),
        ),
        0.0,
    ),
}


def objective_for(name: str):
    bounds, function, _ = PROBLEMS[name]

    def objective(trial) -> float:
        xs = [trial.suggest_float(f"x{i}", low, high) for i, (low, high) in enumerate(bounds)]
        return function(xs, trial)

    return objective


def check() -> bool:
    """Each function at its known minimizer against the optimum hpo uses."""
    at = {
        "branin": [
            branin(-math.pi, 12.275),
            branin(math.pi, 2.275),
            branin(9.42478, 2.475),
        ],
        "hartmann6": [hartmann6([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])],
        "rosenbrock-5d": [rosenbrock([1.0] * 5)],
        "ackley-5d": [ackley([0.0] * 5)],
        "levy-5d": [levy([1.0] * 5)],
        "mixed": [mixed([1.0] * 4, "a", 3.0)],
    }
    # Values hpo's tests also check away from the optimum.
    away = [
        ("rosenbrock([0, 0])", rosenbrock([0.0, 0.0]), 1.0),
        ("mixed([-1]*4, 'b', 1)", mixed([-1.0] * 4, "b", 1.0), 7.0),
    ]
    ok = True
    for name, values in at.items():
        optimum = PROBLEMS[name][2]
        for value in values:
            gap = value - optimum
            good = abs(gap) < 1e-5
            ok &= good
            print(f"{name:14s} value at minimizer {value:.12g}  optimum {optimum:.12g}  "
                  f"diff {gap:+.2e}  {'ok' if good else 'MISMATCH'}")
    for label, value, want in away:
        good = abs(value - want) < 1e-12
        ok &= good
        print(f"{label:22s} = {value:.12g} (want {want})  {'ok' if good else 'MISMATCH'}")
    return ok


def _init_worker() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def make_sampler(kind: str, seed: int):
    import optuna

    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise ValueError(f"unknown sampler {kind!r} (gp, tpe)")


def run_one(job: tuple[str, str, int, int]) -> tuple[str, str, int, list[float], float]:
    """One study; returns the regret at each checkpoint within --trials and its seconds."""
    import optuna

    function, kind, seed, trials = job
    started = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=make_sampler(kind, seed))
    study.optimize(objective_for(function), n_trials=trials)
    seconds = time.perf_counter() - started
    optimum = PROBLEMS[function][2]
    best = math.inf
    regret = []
    for number, trial in enumerate(study.trials, start=1):
        best = min(best, trial.value)
        if number in CHECKPOINTS or number == trials:
            regret.append(best - optimum)
    return function, kind, seed, regret, seconds


def quartiles(values: list[float]) -> tuple[float, float, float]:
    s = sorted(values)

    def at(q: float) -> float:
        pos = q * (len(s) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    return at(0.5), at(0.25), at(0.75)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", default="gp,tpe")
    parser.add_argument("--functions", default=",".join(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=60)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", help="also append the JSON lines to this file")
    parser.add_argument("--check", action="store_true",
                        help="print each function at its minimizer against the optimum, then exit")
    args = parser.parse_args()
    if args.check:
        return 0 if check() else 1

    import optuna

    samplers = [s for s in args.samplers.split(",") if s]
    functions = [f for f in args.functions.split(",") if f]
    for f in functions:
        if f not in PROBLEMS:
            parser.error(f"unknown function {f!r}; known: {', '.join(PROBLEMS)}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    jobs = [(f, s, seed, args.trials) for s in samplers for f in functions for seed in seeds]
    results: dict[tuple[str, str], dict[int, tuple[list[float], float]]] = {}
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.jobs, initializer=_init_worker) as pool:
        for function, kind, seed, regret, seconds in pool.imap_unordered(run_one, jobs):
            results.setdefault((function, kind), {})[seed] = (regret, seconds)
            cell = results[(function, kind)]
            if len(cell) == len(seeds):
                line = summarize(function, kind, seeds, cell, args.trials, optuna.__version__)
                text = json.dumps(line)
                print(text, flush=True)
                if args.out:
                    with open(args.out, "a") as out:
                        out.write(text + "\n")
    print(f"# {len(jobs)} runs in {time.perf_counter() - started:.1f} s on {args.jobs} workers",
          file=sys.stderr)
    return 0


def summarize(function, kind, seeds, cell, trials, version) -> dict:
    checkpoints = [c for c in CHECKPOINTS if c < trials] + [trials]
    finals = [cell[s][0][-1] for s in seeds]
    median, q1, q3 = quartiles(finals)
    return {
        "function": function,
        "sampler": f"optuna-{kind}",
        "optuna": version,
        "trials": trials,
        "seeds": f"{seeds[0]}-{seeds[-1]}",
        "median": median,
        "q1": q1,
        "q3": q3,
        "median_at": {str(c): quartiles([cell[s][0][i] for s in seeds])[0]
                      for i, c in enumerate(checkpoints)},
        "regret": finals,
        "mean_seconds_per_run": sum(cell[s][1] for s in seeds) / len(seeds),
    }


if __name__ == "__main__":
    sys.exit(main())
