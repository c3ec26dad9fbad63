-- Which call made each trial: a random token per call that creates, claims or
-- queues a trial, written in the same transaction. A call run again after its
-- connection was lost finds its token when the first try had committed, and
-- returns that trial instead of making a second. PostgreSQL only (an SQLite call
-- never loses its connection). Released: never edit; add a migration.

CREATE TABLE hpo_call_tokens (
    token BIGINT NOT NULL PRIMARY KEY,
    trial_id INTEGER NOT NULL REFERENCES trials (trial_id)
);
