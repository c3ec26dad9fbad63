-- The trials that finished since a time, found through an index (as on SQLite).
-- Released: never edit.

CREATE INDEX ix_hpo_trials_study_complete ON trials (study_id, datetime_complete);
