-- hpo's own tables on PostgreSQL (as db/migrations/0002_hpo_tables.sql on SQLite):
-- every metric of every step, and the study file as written. Steps are 64-bit, as
-- on SQLite: Optuna's intermediate values get a BIGINT step (Optuna reads it as it
-- reads an INTEGER). Released: never edit; add a migration.

ALTER TABLE trial_intermediate_values ALTER COLUMN step TYPE BIGINT;

CREATE TABLE hpo_study_files (
    study_id INTEGER NOT NULL PRIMARY KEY REFERENCES studies (study_id),
    spec_text TEXT NOT NULL,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL
);

CREATE TABLE hpo_trial_metrics (
    trial_id INTEGER NOT NULL REFERENCES trials (trial_id),
    step BIGINT NOT NULL,
    name VARCHAR(512) NOT NULL,
    value DOUBLE PRECISION,
    PRIMARY KEY (trial_id, step, name)
);

CREATE INDEX ix_hpo_trials_study_state ON trials (study_id, state, number);
CREATE INDEX ix_hpo_trials_study_number ON trials (study_id, number);
CREATE INDEX ix_hpo_trial_system_attributes_key ON trial_system_attributes ("key", trial_id);
