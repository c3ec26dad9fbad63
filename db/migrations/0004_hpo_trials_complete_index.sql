-- The trials finished since a moment, found through an index: a run keeps what its
-- pruner reads of the finished trials and asks only for those finished since it
-- last looked, so a trial costs the same at trial 10 and at trial 10,000.
-- Released: never edit; add a migration.
CREATE INDEX ix_hpo_trials_study_complete ON trials (study_id, datetime_complete);
