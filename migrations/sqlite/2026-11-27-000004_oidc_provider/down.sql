DROP TABLE oidc_registration_tokens;
DROP TABLE oidc_par;
DROP INDEX oidc_tokens_session;
ALTER TABLE oidc_tokens DROP COLUMN sso_session_id;
ALTER TABLE oidc_tokens DROP COLUMN grant_data;
