-- A sign-in to the admin console is an auth session too, for the relying party
-- 'fedhub-console' which is not a registered relying party: auth_sessions.rp_id no longer
-- references relying_parties. (SQLite cannot drop a constraint: the table is rebuilt.)
CREATE TABLE auth_sessions_new (
    id              TEXT PRIMARY KEY NOT NULL,            -- SHA-256 of the random handle
    rp_id           TEXT NOT NULL,                        -- a relying party, or 'fedhub-console'
    request         TEXT NOT NULL,                        -- JSON RpRequest
    connector_id    TEXT REFERENCES connectors(id),
    connector_state TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    consumed_at     BIGINT
);
INSERT INTO auth_sessions_new (id, rp_id, request, connector_id, connector_state, created_at, expires_at, consumed_at)
    SELECT id, rp_id, request, connector_id, connector_state, created_at, expires_at, consumed_at FROM auth_sessions;
DROP TABLE auth_sessions;
ALTER TABLE auth_sessions_new RENAME TO auth_sessions;
CREATE INDEX auth_sessions_expiry ON auth_sessions(expires_at);
