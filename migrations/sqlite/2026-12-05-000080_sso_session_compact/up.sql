-- Smaller single sign-on sessions (a million live ones must fit in well under 2 GB):
-- 1. A session's id is the first 128 bits of the cookie's SHA-256 (32 hex characters, was
--    64). It is stored in the session, in each served relying party, and in their indexes.
--    Existing sessions keep working: their ids are cut the same way.
-- 2. sso_session_rps is kept in its primary key's b-tree (WITHOUT ROWID), not in a table
--    plus an index that repeated the key.
-- 3. Housekeeping finds sessions that ended a day ago through sso_sessions_ended instead of
--    reading every session; only ended sessions are in it.
-- The parent ids change before the rebuilt child table is filled: the check of the foreign
-- key waits for the end of the transaction.
PRAGMA defer_foreign_keys = ON;
UPDATE sso_sessions SET id = substr(id, 1, 32) WHERE length(id) = 64;
CREATE TABLE sso_session_rps_new (
    sso_session_id TEXT NOT NULL REFERENCES sso_sessions(id) ON DELETE CASCADE,
    rp_id          TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    subject        TEXT NOT NULL,
    session_index  TEXT,
    served_at      BIGINT NOT NULL,
    PRIMARY KEY (sso_session_id, rp_id)
) WITHOUT ROWID;
INSERT INTO sso_session_rps_new (sso_session_id, rp_id, subject, session_index, served_at)
    SELECT substr(sso_session_id, 1, 32), rp_id, subject, session_index, served_at
    FROM sso_session_rps;
DROP TABLE sso_session_rps;
ALTER TABLE sso_session_rps_new RENAME TO sso_session_rps;
UPDATE oidc_codes SET sso_session_id = substr(sso_session_id, 1, 32)
    WHERE length(sso_session_id) = 64;
UPDATE oidc_tokens SET sso_session_id = substr(sso_session_id, 1, 32)
    WHERE length(sso_session_id) = 64;
CREATE INDEX sso_sessions_ended ON sso_sessions (ended_at) WHERE ended_at IS NOT NULL;
