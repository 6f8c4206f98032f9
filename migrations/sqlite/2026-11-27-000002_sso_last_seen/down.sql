ALTER TABLE sso_sessions DROP COLUMN last_seen_at;
