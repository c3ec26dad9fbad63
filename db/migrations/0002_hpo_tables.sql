-- hpo's own tables, for what Optuna's schema has no place for, and indexes for
-- hpo's hot queries. Optuna ignores tables and indexes it does not know.
-- Released: never edit; add a migration.

-- The study file as written, so a resumed run can diff its search space.
CREATE TABLE hpo_study_files (
    study_id INTEGER NOT NULL PRIMARY KEY REFERENCES studies (study_id),
    spec_text TEXT NOT NULL,
    created_at DATETIME NOT NULL
);

-- Every named metric at every step (train_loss, val_loss, val_accuracy, ...).
-- Optuna's trial_intermediate_values holds only the study metric. NULL is NaN.
CREATE TABLE hpo_trial_metrics (
    trial_id INTEGER NOT NULL REFERENCES trials (trial_id),
    step INTEGER NOT NULL,
    name VARCHAR(512) NOT NULL,
    value FLOAT,
    PRIMARY KEY (trial_id, step, name)
) WITHOUT ROWID;

-- Claiming queued trials and counting the budget filter trials by state.
CREATE INDEX ix_hpo_trials_study_state ON trials (study_id, state, number);
-- The next trial number is MAX(number) + 1 within the study.
CREATE INDEX ix_hpo_trials_study_number ON trials (study_id, number);
-- Counting interrupted trials looks attributes up by key.
CREATE INDEX ix_hpo_trial_system_attributes_key ON trial_system_attributes ("key", trial_id);
