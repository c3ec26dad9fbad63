"""Optuna's side of hpo's interop tests (run by tests/optuna.rs with Optuna 5.0.0).

  python optuna_interop.py read   DB STUDY   prints the study as Optuna sees it, as JSON
  python optuna_interop.py write  DB STUDY   writes a study with Optuna, prints it as JSON
  python optuna_interop.py pareto DB STUDY   prints a study of several objectives as
                                             Optuna sees it: directions, values, best_trials
  python optuna_interop.py write-nsga2 DB STUDY   writes a two-objective study with
                                             NSGA-II and a constraint, prints it as `pareto`

DB is an SQLite file or a postgresql:// URL.
"""

import json
import math
import sys

import optuna
from optuna.distributions import distribution_to_json


def number(v):
    if v is None:
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def dump(study):
    trials = []
    for t in study.get_trials(deepcopy=False):
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": number(t.value),
                "params": t.params,
                "distributions": {k: json.loads(distribution_to_json(d)) for k, d in t.distributions.items()},
                "intermediate_values": {str(k): number(v) for k, v in t.intermediate_values.items()},
                "user_attrs": {k: number(v) for k, v in t.user_attrs.items()},
                "system_attrs": t.system_attrs,
            }
        )
    return {
        "study": study.study_name,
        "direction": study.direction.name,
        "metric_names": study.metric_names,
        "user_attrs": {k: number(v) for k, v in study.user_attrs.items()},
        "best_trial": study.best_trial.number if any(t["state"] == "COMPLETE" for t in trials) else None,
        "trials": trials,
    }


def write(storage, name):
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    study.set_user_attr("owner", "vision team")

    def objective(trial):
        x = trial.suggest_float("x", -2.0, 2.0)
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        k = trial.suggest_int("k", 1, 9, step=2)
        kind = trial.suggest_categorical("kind", ["a", "b", 3])
        if trial.number == 3:
            raise RuntimeError("this trial fails on purpose")
        for step in range(3):
            trial.report(x * (step + 1), step)
        if trial.number == 4:
            raise optuna.TrialPruned()
        trial.set_user_attr("note", f"trial {trial.number}")
        return -(x**2) + k / 10 + (0.5 if kind == "b" else 0.0) + lr

    study.optimize(objective, n_trials=6, catch=(RuntimeError,))
    return dump(study)


def pareto(study):
    """A study of several objectives: what Optuna's best_trials (its Pareto front) holds."""
    return {
        "study": study.study_name,
        "directions": [d.name for d in study.directions],
        "metric_names": study.metric_names,
        "values": {str(t.number): [number(v) for v in t.values] for t in study.trials if t.values},
        "best_trials": sorted(t.number for t in study.best_trials),
    }


def write_nsga2(storage, name):
    """Size against error, with NSGA-II, and a constraint that some trials break."""
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=["minimize", "maximize"],
        sampler=optuna.samplers.NSGAIISampler(
            population_size=8, seed=3, constraints_func=lambda t: [t.user_attrs["over"]]
        ),
    )

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 4.0)
        y = trial.suggest_float("y", 0.0, 4.0)
        # A constraint: x + y at most 5 (a positive value breaks it).
        trial.set_user_attr("over", x + y - 5.0)
        return x * x + y, -((x - 2.0) ** 2) - y

    study.optimize(objective, n_trials=24)
    return pareto(study)


def main():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mode, db, name = sys.argv[1:4]
    # An SQLite file, or a PostgreSQL URL (through psycopg2).
    if db.startswith("postgresql://"):
        storage = db.replace("postgresql://", "postgresql+psycopg2://", 1)
    else:
        storage = f"sqlite:///{db}"
    if mode == "read":
        out = dump(optuna.load_study(storage=storage, study_name=name))
    elif mode == "write":
        out = write(storage, name)
    elif mode == "pareto":
        out = pareto(optuna.load_study(storage=storage, study_name=name))
    elif mode == "write-nsga2":
        out = write_nsga2(storage, name)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
