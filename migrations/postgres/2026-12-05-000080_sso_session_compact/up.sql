-- Smaller single sign-on sessions (a million live ones must fit in well under 2 GB):
-- 1. A session's id is the first 128 bits of the cookie's SHA-256 (32 hex characters, was
--    64). It is stored in the session, in each served relying party, and in their indexes.
--    Existing sessions keep working: their ids are cut the same way (the foreign key is
--    set aside while parent and child change).
-- 2. Housekeeping finds sessions that ended a day ago through sso_sessions_ended instead of
--    reading every session; only ended sessions are in it.
ALTER TABLE sso_session_rps DROP CONSTRAINT sso_session_rps_sso_session_id_fkey;
UPDATE sso_sessions SET id = substr(id, 1, 32) WHERE length(id) = 64;
UPDATE sso_session_rps SET sso_session_id = substr(sso_session_id, 1, 32)
    WHERE length(sso_session_id) = 64;
ALTER TABLE sso_session_rps ADD CONSTRAINT sso_session_rps_sso_session_id_fkey
    FOREIGN KEY (sso_session_id) REFERENCES sso_sessions(id) ON DELETE CASCADE;
UPDATE oidc_codes SET sso_session_id = substr(sso_session_id, 1, 32)
    WHERE length(sso_session_id) = 64;
UPDATE oidc_tokens SET sso_session_id = substr(sso_session_id, 1, 32)
    WHERE length(sso_session_id) = 64;
CREATE INDEX sso_sessions_ended ON sso_sessions (ended_at) WHERE ended_at IS NOT NULL;
