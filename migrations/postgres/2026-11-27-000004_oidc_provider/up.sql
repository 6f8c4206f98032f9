-- The OpenID Provider: what a code or token was issued for (subject, sid, auth time, released
-- claims), kept with the token so userinfo and introspection answer without recomputing.
ALTER TABLE oidc_tokens ADD COLUMN grant_data TEXT NOT NULL DEFAULT '{}';
ALTER TABLE oidc_tokens ADD COLUMN sso_session_id TEXT;
CREATE INDEX oidc_tokens_session ON oidc_tokens(sso_session_id);

-- Pushed authorization requests (RFC 9126): single use, short-lived.
CREATE TABLE oidc_par (
    id          TEXT PRIMARY KEY NOT NULL,   -- SHA-256 of the request_uri
    client_id   TEXT NOT NULL,
    params      TEXT NOT NULL,               -- JSON of the authorization parameters
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX oidc_par_expiry ON oidc_par(expires_at);

-- Initial access tokens for dynamic client registration (RFC 7591), issued by a federation
-- admin for one owner agency; single use.
CREATE TABLE oidc_registration_tokens (
    token_hash        TEXT PRIMARY KEY NOT NULL,
    owner_agency_code TEXT NOT NULL REFERENCES agencies(code),
    created_by        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    used_at           BIGINT,
    used_for          TEXT
);
