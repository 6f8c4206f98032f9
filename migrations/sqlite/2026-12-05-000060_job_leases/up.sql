-- Background jobs run on one node at a time: a node takes a job's lease (until a time) with one
-- conditional UPDATE, and the others skip that round.
CREATE TABLE job_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until BIGINT NOT NULL,
    last_run_at BIGINT,
    runs BIGINT NOT NULL DEFAULT 0
);
-- One row per job (a new job adds its row in its own migration).
INSERT INTO job_leases (name, holder, until, runs) VALUES
    ('housekeeping', '', 0, 0),
    ('saml_metadata_refresh', '', 0, 0);
