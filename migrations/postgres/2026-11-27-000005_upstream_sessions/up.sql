-- What logging out at the upstream needs (SAML NameID + SessionIndex, OIDC ID token),
-- kept with the SSO session that upstream started, and the upstream's subject so an
-- upstream logout request finds its sessions by index.
ALTER TABLE sso_sessions ADD COLUMN upstream_session TEXT;
ALTER TABLE sso_sessions ADD COLUMN upstream_subject TEXT;
CREATE INDEX sso_sessions_upstream ON sso_sessions (connector_id, upstream_subject);
