-- Every verdict of the study's pruner: at each step it judged (a rung, a step past
-- the warm-up), whether the trial continued or was pruned, and why. Optuna keeps
-- no such record; trial_system_attributes' prune_reason still holds the last one.
-- Released: never edit; add a migration.
CREATE TABLE hpo_pruner_verdicts (
    trial_id INTEGER NOT NULL REFERENCES trials (trial_id),
    step INTEGER NOT NULL,
    prune BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (trial_id, step)
) WITHOUT ROWID;
