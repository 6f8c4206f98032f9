-- fedhub schema, SQLite. Keep identical in shape to ../../postgres (store tests run on both).
-- Times are Unix seconds (BIGINT); identifiers are UUID text; JSON is stored as text.

CREATE TABLE agencies (
    code        TEXT PRIMARY KEY NOT NULL,             -- V1V2V3.Z1Z2.Y1Y2.X1X2X3, validated before insert
    parent_code TEXT REFERENCES agencies(code),         -- NULL only at level 1
    level       INTEGER NOT NULL CHECK (level BETWEEN 1 AND 4),
    name_vi     TEXT NOT NULL,
    name_en     TEXT,
    kind        TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX agencies_parent ON agencies(parent_code);

CREATE TABLE accounts (
    id           TEXT PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('citizen', 'organisation', 'agency')),
    display_name TEXT NOT NULL,
    search_name  TEXT NOT NULL,                          -- lower case, diacritics folded, for name search
    national_id  TEXT UNIQUE,                            -- CCCD or CMND (citizens)
    tax_code     TEXT UNIQUE,                            -- organisations
    agency_code  TEXT REFERENCES agencies(code),         -- state-agency accounts
    phone        TEXT,
    email        TEXT,
    status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX accounts_phone ON accounts(phone);
CREATE INDEX accounts_name ON accounts(search_name);
CREATE INDEX accounts_agency ON accounts(agency_code);

CREATE TABLE connectors (
    id           TEXT PRIMARY KEY NOT NULL,             -- short slug used in URLs
    kind         TEXT NOT NULL CHECK (kind IN ('oidc', 'saml', 'certificate', 'simpki', 'dev')),
    display_name TEXT NOT NULL,
    config       TEXT NOT NULL,                          -- JSON, secrets sealed
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE upstream_links (
    id            TEXT PRIMARY KEY NOT NULL,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    connector_id  TEXT NOT NULL REFERENCES connectors(id),
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    UNIQUE (connector_id, issuer, subject)
);
CREATE INDEX upstream_links_account ON upstream_links(account_id);

CREATE TABLE relying_parties (
    id                  TEXT PRIMARY KEY NOT NULL,
    protocol            TEXT NOT NULL CHECK (protocol IN ('saml', 'oidc')),
    entity_id           TEXT NOT NULL UNIQUE,            -- SAML entityID or OIDC client_id
    display_name        TEXT NOT NULL,
    owner_agency_code   TEXT NOT NULL REFERENCES agencies(code),
    config              TEXT NOT NULL,                   -- JSON: protocol settings
    requires_membership BOOLEAN NOT NULL DEFAULT TRUE,
    enabled             BOOLEAN NOT NULL DEFAULT TRUE,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE rp_connectors (
    rp_id        TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    connector_id TEXT NOT NULL REFERENCES connectors(id),
    PRIMARY KEY (rp_id, connector_id)
);

CREATE TABLE roles (
    id         TEXT PRIMARY KEY NOT NULL,
    rp_id      TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    builtin    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    UNIQUE (rp_id, name)
);

CREATE TABLE memberships (
    id                TEXT PRIMARY KEY NOT NULL,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    rp_id             TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    unit_agency_code  TEXT REFERENCES agencies(code),
    status            TEXT NOT NULL DEFAULT 'not_activated' CHECK (status IN ('not_activated', 'activated', 'locked')),
    user_group        TEXT,
    subject           TEXT NOT NULL,                     -- the RP's stable subject for this person
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (account_id, rp_id),
    UNIQUE (rp_id, subject)
);
CREATE INDEX memberships_rp_unit ON memberships(rp_id, unit_agency_code);

CREATE TABLE membership_roles (
    membership_id TEXT NOT NULL REFERENCES memberships(id) ON DELETE CASCADE,
    role_id       TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (membership_id, role_id)
);

CREATE TABLE admin_grants (
    id                   TEXT PRIMARY KEY NOT NULL,
    account_id           TEXT NOT NULL REFERENCES accounts(id),
    rp_id                TEXT REFERENCES relying_parties(id) ON DELETE CASCADE, -- NULL: federation-wide (operator)
    level                TEXT NOT NULL CHECK (level IN ('operator', 'top', 'level1', 'level2', 'level3')),
    scope_agency_code    TEXT REFERENCES agencies(code),  -- NULL only for the operator
    delegated_office_code TEXT REFERENCES agencies(code), -- subordinate office authorised in writing
    granted_by           TEXT REFERENCES admin_grants(id),
    created_at           BIGINT NOT NULL,
    revoked_at           BIGINT
);
CREATE INDEX admin_grants_account ON admin_grants(account_id);

CREATE TABLE legacy_accounts (
    id               TEXT PRIMARY KEY NOT NULL,
    rp_id            TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    username         TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    unit_agency_code TEXT REFERENCES agencies(code),
    user_group       TEXT,
    roles            TEXT NOT NULL DEFAULT '[]',          -- JSON array of role names
    password_hash    TEXT NOT NULL,                       -- as imported (never clear text)
    hash_scheme      TEXT NOT NULL,
    subject          TEXT NOT NULL,                       -- the RP's subject for the legacy account
    converted_to     TEXT REFERENCES accounts(id),
    converted_at     BIGINT,
    created_at       BIGINT NOT NULL,
    UNIQUE (rp_id, username)
);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY NOT NULL,
    purpose         TEXT NOT NULL CHECK (purpose IN ('saml', 'oidc')),
    alg             TEXT NOT NULL,
    public_der      BLOB NOT NULL,
    private_sealed  BLOB NOT NULL,                        -- AES-256-GCM under the at-rest key
    state           TEXT NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired')),
    created_at      BIGINT NOT NULL,
    activated_at    BIGINT,
    retire_at       BIGINT
);

CREATE TABLE auth_sessions (
    id              TEXT PRIMARY KEY NOT NULL,            -- SHA-256 of the random handle
    rp_id           TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    request         TEXT NOT NULL,                        -- JSON RpRequest
    connector_id    TEXT REFERENCES connectors(id),
    connector_state TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    consumed_at     BIGINT
);
CREATE INDEX auth_sessions_expiry ON auth_sessions(expires_at);

CREATE TABLE sso_sessions (
    id           TEXT PRIMARY KEY NOT NULL,               -- SHA-256 of the cookie value
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    connector_id TEXT REFERENCES connectors(id),
    authn        TEXT NOT NULL,                           -- JSON: acr, amr, auth_time
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX sso_sessions_account ON sso_sessions(account_id);
CREATE INDEX sso_sessions_expiry ON sso_sessions(expires_at);

CREATE TABLE sso_session_rps (
    sso_session_id TEXT NOT NULL REFERENCES sso_sessions(id) ON DELETE CASCADE,
    rp_id          TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    subject        TEXT NOT NULL,
    session_index  TEXT,
    served_at      BIGINT NOT NULL,
    PRIMARY KEY (sso_session_id, rp_id)
);

CREATE TABLE oidc_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL,
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    sso_session_id TEXT,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    nonce          TEXT,
    scope          TEXT NOT NULL,
    claims         TEXT NOT NULL,                         -- JSON snapshot of released claims
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    consumed_at    BIGINT
);
CREATE INDEX oidc_codes_expiry ON oidc_codes(expires_at);

CREATE TABLE oidc_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    client_id   TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    code_hash   TEXT,                                     -- the code that issued it, for reuse revocation
    family_id   TEXT NOT NULL,                            -- refresh rotation family
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    replaced_by TEXT
);
CREATE INDEX oidc_tokens_code ON oidc_tokens(code_hash);
CREATE INDEX oidc_tokens_family ON oidc_tokens(family_id);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens(expires_at);

CREATE TABLE saml_replay (
    id         TEXT PRIMARY KEY NOT NULL,                 -- issuer + '!' + assertion/request ID
    expires_at BIGINT NOT NULL
);
CREATE INDEX saml_replay_expiry ON saml_replay(expires_at);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    token_hash   TEXT NOT NULL UNIQUE,                    -- SHA-256, the token is shown once
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

-- Bumped on every change to something nodes cache (RPs, metadata, keys, agencies).
CREATE TABLE change_counters (
    name    TEXT PRIMARY KEY NOT NULL,
    version BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    rp_id      TEXT,
    outcome    TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    request_id TEXT,
    detail     TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);

-- The audit log is append-only, enforced by the engine so no code path can forget it.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
