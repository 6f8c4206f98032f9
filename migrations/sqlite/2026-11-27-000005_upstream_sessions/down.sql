DROP INDEX sso_sessions_upstream;
ALTER TABLE sso_sessions DROP COLUMN upstream_subject;
ALTER TABLE sso_sessions DROP COLUMN upstream_session;
