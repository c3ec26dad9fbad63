-- Every pruner verdict, by trial and step (as on SQLite). Released: never edit.

CREATE TABLE hpo_pruner_verdicts (
    trial_id INTEGER NOT NULL REFERENCES trials (trial_id),
    step BIGINT NOT NULL,
    prune BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (trial_id, step)
);
