-- A single logout in progress: which relying parties still have to be told.
CREATE TABLE logout_sessions (
    id          TEXT PRIMARY KEY NOT NULL,  -- SHA-256 of the handle carried in RelayState
    state       TEXT NOT NULL,              -- JSON
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
