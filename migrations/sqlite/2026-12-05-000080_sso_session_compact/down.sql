-- Back to a table plus a key index. Session ids stay cut: the older version does not find
-- those sessions, so people sign in again.
DROP INDEX sso_sessions_ended;
CREATE TABLE sso_session_rps_old (
    sso_session_id TEXT NOT NULL REFERENCES sso_sessions(id) ON DELETE CASCADE,
    rp_id          TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    subject        TEXT NOT NULL,
    session_index  TEXT,
    served_at      BIGINT NOT NULL,
    PRIMARY KEY (sso_session_id, rp_id)
);
INSERT INTO sso_session_rps_old (sso_session_id, rp_id, subject, session_index, served_at)
    SELECT sso_session_id, rp_id, subject, session_index, served_at FROM sso_session_rps;
DROP TABLE sso_session_rps;
ALTER TABLE sso_session_rps_old RENAME TO sso_session_rps;
