CREATE TABLE auth_sessions_old (
    id              TEXT PRIMARY KEY NOT NULL,
    rp_id           TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    request         TEXT NOT NULL,
    connector_id    TEXT REFERENCES connectors(id),
    connector_state TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    consumed_at     BIGINT
);
INSERT INTO auth_sessions_old (id, rp_id, request, connector_id, connector_state, created_at, expires_at, consumed_at)
    SELECT id, rp_id, request, connector_id, connector_state, created_at, expires_at, consumed_at FROM auth_sessions
    WHERE rp_id IN (SELECT id FROM relying_parties);
DROP TABLE auth_sessions;
ALTER TABLE auth_sessions_old RENAME TO auth_sessions;
CREATE INDEX auth_sessions_expiry ON auth_sessions(expires_at);
